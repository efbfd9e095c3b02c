//! The console in a real browser (headless chromium, SQLite): signing in, choosing unify keys
//! with a suspicious value excluded, a merged profile with its timeline, search by a national
//! phone, and cross-product unification; each saves the screenshots the README links.

#[path = "console_seed.rs"]
mod seed;

use cdh_server::Clock;
use fantoccini::Locator;
use fantoccini::elements::Element;
use serde_json::json;

use crate::browser::{Browser, WAIT};
use crate::console::{PASSWORD, user};
use crate::support::{Backend, Org, TestApp};
use seed::{STORE_PHONE_E164, WALK_INS, person, profile_of};

/// The admin every test signs in as.
const ADMIN: &str = "mei.chou@lumen-tea.example";

/// The six seeded customers, by name.
const NAMES: [&str; 6] = [
    "Chang Ya-ting",
    "Chen Yi-chun",
    "Huang Kuan-yu",
    "Lin Chih-ming",
    "Liu Chia-hao",
    "Wang Mei-ling",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signs_in() {
    let (app, org) = start(|_| {}).await;
    let ch = seed::channels(&app, &org).await;
    let people = seed::people(&app, &org, &ch).await;
    app.unify(&org, &["display_mobile", "display_email"]).await;
    let browser = open().await;

    browser
        .goto(&app.url(&format!("/sign-in?org={}", org.id)))
        .await;
    let prefilled = browser.find("#organization").await.prop("value").await;
    assert_eq!(
        prefilled.unwrap(),
        Some(org.id.clone()),
        "the org is prefilled"
    );
    browser.fill("#organization", &org.id).await;
    browser.fill("#email", ADMIN).await;
    browser.fill("#password", PASSWORD).await;
    browser.screenshot("sign-in").await;
    browser.click("#sign-in").await;

    browser.find("table#profiles").await;
    assert_eq!(browser.url().await, app.url("/contacts"));
    assert_eq!(browser.text("#signed-in-as").await, ADMIN);
    let mut names = browser
        .texts("table#profiles tbody tr td:first-child")
        .await;
    names.sort();
    assert_eq!(names, NAMES, "one row per unified customer");
    let chen = profile_of(&app, &org, &person(&people, "Chen Yi-chun").contacts[0]).await;
    let icons = attrs(
        &browser,
        &format!("tr[data-profile=\"{chen}\"] .channel-icon"),
        "data-type",
    )
    .await;
    assert_eq!(icons, ["line", "messenger"], "Chen's channels as icons");
    let wang = profile_of(&app, &org, &person(&people, "Wang Mei-ling").contacts[0]).await;
    let icons = format!("tr[data-profile=\"{wang}\"] .channel-icon");
    assert_eq!(count(&browser, &icons).await, 3);
    browser.screenshot("contacts").await;

    browser.close().await;
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sets_two_unify_keys_excludes_a_suspicious_value_and_confirms() {
    let (app, org) = start(|_| {}).await;
    let ch = seed::channels(&app, &org).await;
    let people = seed::people(&app, &org, &ch).await;
    let walk_ins = seed::walk_ins(&app, &org, &ch).await;
    let contacts = 11 + WALK_INS;
    let browser = open().await;
    sign_in(&browser, &app, &org).await;

    browser.click("#nav-unification").await;
    browser.find("#no-keys").await;
    browser.click("#edit-keys").await;
    let key = |field: &str| format!("#keys-form input[name=keys][value={field}]");
    browser.click(&key("display_mobile")).await;
    browser.click(&key("display_email")).await;
    assert!(
        enabled(&browser, &key("line_uid")).await,
        "two keys leave room"
    );
    browser.click(&key("line_uid")).await;
    for full in ["customer_id", "connect_id"] {
        assert!(
            !enabled(&browser, &key(full)).await,
            "{full}: three is the most"
        );
    }
    assert!(
        browser
            .find("#limit-hint")
            .await
            .is_displayed()
            .await
            .unwrap()
    );
    browser.click(&key("line_uid")).await;
    for field in ["customer_id", "connect_id", "line_uid"] {
        assert!(
            enabled(&browser, &key(field)).await,
            "{field} is free again"
        );
    }
    for (field, ticked) in [
        ("display_mobile", true),
        ("display_email", true),
        ("line_uid", false),
    ] {
        let selected = browser.find(&key(field)).await.is_selected().await.unwrap();
        assert_eq!(selected, ticked, "{field}");
    }
    assert!(
        !browser
            .find("#limit-hint")
            .await
            .is_displayed()
            .await
            .unwrap()
    );
    browser.screenshot("unify-keys").await;

    browser.click("#preview").await;
    // Every contact is its own profile; the store phone would glue all walk-ins into one.
    assert_eq!(browser.text("#profiles-before").await, contacts.to_string());
    assert_eq!(browser.text("#profiles-after").await, "7");
    let suspicious = format!("#suspicious tr[data-value=\"{STORE_PHONE_E164}\"]");
    let sharing = browser.text(&format!("{suspicious} td.num")).await;
    assert_eq!(
        sharing,
        WALK_INS.to_string(),
        "every walk-in gave the store phone"
    );
    assert_eq!(count(&browser, "#suspicious input[name=exclude]").await, 1);
    browser
        .click(&format!("{suspicious} input[name=exclude]"))
        .await;
    scroll_to(&browser, "#counts").await;
    browser.screenshot("preview").await;

    browser.click("#refresh-preview").await;
    wait_xpath(&browser, "//section[@id='suspicious']//td[.='excluded']").await;
    assert!(
        browser
            .find(&suspicious)
            .await
            .text()
            .await
            .unwrap()
            .contains("excluded")
    );
    assert_eq!(browser.text("#profiles-before").await, contacts.to_string());
    assert_eq!(
        browser.text("#profiles-after").await,
        (6 + WALK_INS).to_string()
    );

    browser.click("#confirm").await;
    browser.find("#task[data-status=\"succeeded\"]").await;
    let summary = browser.texts("#task-summary li").await;
    let expected = format!("{contacts} profiles became {}.", 6 + WALK_INS);
    assert!(summary.contains(&expected), "{summary:?}");
    browser.screenshot("task-done").await;

    // The people merged; the walk-ins did not, through the excluded store phone.
    for p in &people {
        let first = profile_of(&app, &org, &p.contacts[0]).await;
        for c in &p.contacts[1..] {
            assert_eq!(profile_of(&app, &org, c).await, first, "{}", p.name);
        }
    }
    assert_ne!(
        profile_of(&app, &org, &walk_ins[0]).await,
        profile_of(&app, &org, &walk_ins[1]).await
    );
    browser.close().await;
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shows_a_merged_profile() {
    const HOUR: i64 = 3_600_000;
    let now = cdh_store::Clock::system().now();
    let (app, org) = start(|c| c.clock = Clock::manual(now - 72 * HOUR)).await;
    let ch = seed::channels(&app, &org).await;
    let people = seed::people(&app, &org, &ch).await;
    app.unify(&org, &["display_mobile", "display_email"]).await;
    let wang = &person(&people, "Wang Mei-ling").contacts;
    let notes = [
        (
            now - 70 * HOUR,
            &wang[0],
            "Asked about the spring oolong tasting; sent her the schedule.",
        ),
        (
            now - 26 * HOUR,
            &wang[1],
            "Booked two seats for Saturday's matcha workshop.",
        ),
        (
            now - 3 * HOUR,
            &wang[2],
            "Wants her loyalty points moved to the new member card.",
        ),
    ];
    for (at, contact, text) in notes {
        app.handle.state.clock.set(at);
        app.post(
            &format!("/v1/contacts/{contact}/notes"),
            &org.admin,
            json!({"text": text, "author": "Store team"}),
        )
        .await
        .expect(201);
    }
    app.handle.state.clock.set(now);
    let profile = profile_of(&app, &org, &wang[0]).await;
    let browser = open().await;
    sign_in(&browser, &app, &org).await;

    browser
        .click(&format!("tr[data-profile=\"{profile}\"] a.profile-link"))
        .await;
    assert_eq!(browser.text("#profile-name").await, "Wang Mei-ling");
    assert_eq!(
        browser.url().await,
        app.url(&format!("/profiles/{profile}"))
    );
    let types = attrs(&browser, "#channels tbody tr", "data-type").await;
    assert_eq!(
        types,
        ["line", "instagram", "messenger"],
        "one row per contact"
    );
    assert_eq!(
        &attrs(&browser, "#channels tbody tr", "data-contact").await,
        wang
    );

    let keyed = count(&browser, "#identifiers tr[data-key=\"true\"]").await;
    assert!(keyed >= 2, "the phone and the email are unify keys");
    let symbols = count(&browser, "#identifiers tr[data-key=\"true\"] .key-symbol").await;
    assert_eq!(symbols, keyed, "a key symbol on every key value");
    assert!(count(&browser, "#identifiers tr[data-key=\"false\"]").await >= 2);
    let unkeyed = count(&browser, "#identifiers tr[data-key=\"false\"] .key-symbol").await;
    assert_eq!(
        unkeyed, 0,
        "no key symbol on the LINE uid or the customer id"
    );

    let chains = browser.texts("#channels ol.chain").await;
    assert_eq!(
        chains.len(),
        2,
        "both later contacts have a chain: {chains:?}"
    );
    for chain in &chains {
        assert!(chain.contains("meiling.wang@example.com"), "{chain}");
        assert!(chain.contains(&format!("contact {}", wang[0])), "{chain}");
    }

    let bodies = browser.texts("ul.timeline li.entry .body").await;
    let newest_first: Vec<&str> = notes.iter().rev().map(|n| n.2).collect();
    assert_eq!(bodies, newest_first);

    let added = "Called back: the points are on the new card now.";
    browser.fill("#note-body", added).await;
    browser.click("#save-note").await;
    wait_xpath(
        &browser,
        &format!("//ul[@class='timeline']/li[1]/div[@class='body'][.='{added}']"),
    )
    .await;
    assert_eq!(browser.texts("ul.timeline li.entry").await.len(), 4);
    let first_author = browser.text("ul.timeline li.entry .muted").await;
    assert!(first_author.contains(ADMIN), "{first_author}");
    scroll_to(&browser, "html").await;
    browser.screenshot("profile").await;
    scroll_to(&browser, "#channels").await;
    browser.screenshot("profile-channels").await;

    browser.resize(390, 844).await;
    browser
        .goto(&app.url(&format!("/profiles/{profile}")))
        .await;
    assert_eq!(browser.text("#profile-name").await, "Wang Mei-ling");
    browser.screenshot("profile-phone").await;

    browser.close().await;
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searches_by_a_national_format_phone() {
    // `TestApp::org` creates the organization with TW as its default region.
    let (app, org) = start(|_| {}).await;
    let ch = seed::channels(&app, &org).await;
    let people = seed::people(&app, &org, &ch).await;
    app.unify(&org, &["display_mobile", "display_email"]).await;
    let chen = profile_of(&app, &org, &person(&people, "Chen Yi-chun").contacts[0]).await;
    let browser = open().await;
    sign_in(&browser, &app, &org).await;

    browser.fill("form#search #q", "0912-345-678").await;
    browser.click("form#search button[type=submit]").await;
    let summary = browser.text("#search-summary").await;
    assert!(summary.starts_with("1 profile(s) found"), "{summary}");
    let rows = attrs(&browser, "table#profiles tbody tr", "data-profile").await;
    assert_eq!(rows, [chen], "the contact stored as +886912345678");
    let row = browser.text("table#profiles tbody tr").await;
    assert!(
        row.contains("Chen Yi-chun") && row.contains("+886912345678"),
        "{row}"
    );
    browser.screenshot("search").await;

    browser.close().await;
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_product_on_lets_a_maac_line_contact_join() {
    let (app, org) = start(|_| {}).await;
    let caac = seed::channel(&app, &org, "line", "caac", "Lumen Tea LINE OA (inbox)").await;
    let maac = seed::channel(&app, &org, "line", "maac", "Lumen Tea LINE OA (campaigns)").await;
    let uid = "U4af4980629a1c2b3d4e5f60718293a4b";
    let inbox = app
        .contact(&org.admin, &caac, uid,
            json!({"display_name": "Chen Yi-chun", "line_uid": uid, "display_mobile": "0912-345-678"}))
        .await
        .expect(200)
        .str("id");
    let campaigns = app
        .contact(&org.admin, &maac, uid,
            json!({"display_name": "Yi-chun", "line_uid": uid, "display_email": "yichun.chen@example.com"}))
        .await
        .expect(200)
        .str("id");
    let other = "U0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e";
    app.contact(
        &org.admin,
        &caac,
        other,
        json!({"display_name": "Liu Chia-hao", "line_uid": other}),
    )
    .await
    .expect(200);
    app.unify(&org, &["line_uid"]).await;
    assert_ne!(
        profile_of(&app, &org, &inbox).await,
        profile_of(&app, &org, &campaigns).await,
        "without the hub, CAAC and MAAC stay apart"
    );
    let browser = open().await;
    sign_in(&browser, &app, &org).await;

    browser.click("#nav-hub").await;
    let switch = browser.find("#cross-product-switch").await;
    assert!(!switch.is_selected().await.unwrap(), "off at first");
    assert_eq!(
        count(&browser, "#line-uid-warning").await,
        0,
        "line_uid is a key"
    );
    switch.click().await.unwrap();
    browser.click("#save-hub").await;
    let flash = browser.text("#flash").await;
    assert!(
        flash.starts_with("Cross-product unification is switched on"),
        "{flash}"
    );
    let pending = browser.text("#switch-pending").await;
    assert!(
        pending.contains("until the unify keys are next applied"),
        "the switch waits for an apply: {pending}"
    );
    assert!(
        browser
            .find("#cross-product-switch")
            .await
            .is_selected()
            .await
            .unwrap()
    );
    browser.screenshot("hub").await;

    browser.click("#preview-current").await;
    assert_eq!(browser.text("#profiles-before").await, "3");
    assert_eq!(browser.text("#profiles-after").await, "2");
    browser.click("#confirm").await;
    browser.find("#task[data-status=\"succeeded\"]").await;

    let profile = profile_of(&app, &org, &inbox).await;
    assert_eq!(profile_of(&app, &org, &campaigns).await, profile);
    browser
        .goto(&app.url(&format!("/profiles/{profile}")))
        .await;
    let products = attrs(&browser, "#channels tbody tr", "data-product").await;
    assert_eq!(products, ["caac", "maac"]);
    let maac_row = browser
        .text("#channels tbody tr[data-product=\"maac\"]")
        .await;
    assert!(
        maac_row.contains("LINE") && maac_row.contains(&campaigns),
        "{maac_row}"
    );

    browser.close().await;
    app.finish().await;
}

/// A SQLite app (background worker on), the tea house and its admin user.
async fn start(tweak: impl FnOnce(&mut cdh_server::Config)) -> (TestApp, Org) {
    let app = TestApp::start(Backend::Sqlite, tweak).await;
    let org = app.org("Lumen Tea House").await;
    user(&app, &org, ADMIN, "admin").await;
    (app, org)
}

/// A browser with a 1280x900 window.
async fn open() -> Browser {
    let browser = Browser::start().await;
    browser.resize(1280, 900).await;
    browser
}

/// Signs in as the admin and waits for the contacts.
async fn sign_in(browser: &Browser, app: &TestApp, org: &Org) {
    browser
        .goto(&app.url(&format!("/sign-in?org={}", org.id)))
        .await;
    browser.fill("#organization", &org.id).await;
    browser.fill("#email", ADMIN).await;
    browser.fill("#password", PASSWORD).await;
    browser.click("#sign-in").await;
    browser.find("#nav-contacts[aria-current=page]").await;
}

/// How many elements match `css` now.
async fn count(browser: &Browser, css: &str) -> usize {
    browser
        .client
        .find_all(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("find all `{css}`: {e}"))
        .len()
}

/// The `name` attribute of every element matching `css` now (empty when absent).
async fn attrs(browser: &Browser, css: &str, name: &str) -> Vec<String> {
    let mut values = Vec::new();
    for element in browser.client.find_all(Locator::Css(css)).await.unwrap() {
        values.push(element.attr(name).await.unwrap().unwrap_or_default());
    }
    values
}

/// Whether the (waited for) element matching `css` is enabled.
async fn enabled(browser: &Browser, css: &str) -> bool {
    browser.find(css).await.is_enabled().await.unwrap()
}

/// The first element matching `xpath`, waiting up to `WAIT` for it.
async fn wait_xpath(browser: &Browser, xpath: &str) -> Element {
    match browser
        .client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::XPath(xpath))
        .await
    {
        Ok(element) => element,
        Err(e) => panic!(
            "no `{xpath}` on {} after {WAIT:?}: {e}",
            browser.url().await
        ),
    }
}

/// Scrolls the element matching `css` to the top of the window, just below the sticky top
/// bar; `"html"` scrolls back to the top of the page.
async fn scroll_to(browser: &Browser, css: &str) {
    let element = browser.find(css).await;
    browser
        .client
        .execute(
            "const top = arguments[0].getBoundingClientRect().top + window.scrollY - 72;\
             window.scrollTo(0, Math.max(0, top));",
            vec![serde_json::to_value(element).unwrap()],
        )
        .await
        .unwrap_or_else(|e| panic!("scroll to `{css}`: {e}"));
}
