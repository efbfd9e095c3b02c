// The console's own script (no inline scripts: the content security policy forbids them).
// Everything here is an enhancement; every form also works without it.
(function () {
  "use strict";

  // A form with data-max-checked="N" lets at most N of its checkboxes be ticked: the rest
  // are disabled once N are, and enabled again when one is unticked.
  function limitChecked(form) {
    var max = parseInt(form.getAttribute("data-max-checked"), 10);
    var boxes = form.querySelectorAll('input[type="checkbox"][data-limited]');
    var hint = form.querySelector("[data-limit-hint]");
    function update() {
      var n = 0;
      boxes.forEach(function (b) { if (b.checked) { n += 1; } });
      boxes.forEach(function (b) { b.disabled = !b.checked && n >= max; });
      if (hint) { hint.hidden = n < max; }
    }
    boxes.forEach(function (b) { b.addEventListener("change", update); });
    update();
  }

  // A submit button with data-confirm="question" asks before its form is sent.
  function confirmFirst(event) {
    var button = event.submitter;
    if (button && button.hasAttribute("data-confirm")) {
      if (!window.confirm(button.getAttribute("data-confirm"))) {
        event.preventDefault();
      }
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-max-checked]").forEach(limitChecked);
    document.addEventListener("submit", confirmFirst, true);
  });
})();
