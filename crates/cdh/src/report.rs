//! What people read: the preview and the summary of `cdh unify`, rendered as text.

use std::fmt::Write as _;

use cdh_core::{Chain, KeyGraph, Preview, Tie};

use crate::csv_scan::{RecordBuf, RecordReader};
use crate::load::{Loaded, SlotStats};

/// Formats `n` with thousands separators: `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// `contact` or `contacts`.
pub fn plural(n: u32, word: &str) -> String {
    if n == 1 {
        word.to_owned()
    } else {
        format!("{word}s")
    }
}

/// Names contacts by their `contact_id`.
pub struct ContactNames<'a> {
    loaded: &'a Loaded,
}

impl<'a> ContactNames<'a> {
    /// Names for the contacts of `loaded`.
    pub fn new(loaded: &'a Loaded) -> Self {
        Self { loaded }
    }

    /// The `contact_id` of contact `c`.
    pub fn name(&self, c: u32) -> String {
        let start = self.loaded.row_starts.get(c as usize);
        let mut rec = RecordBuf::default();
        RecordReader::default().read(&self.loaded.data[start..], &mut rec);
        String::from_utf8_lossy(rec.get(self.loaded.columns.contact_id))
            .trim()
            .to_owned()
    }
}

/// `c1 -display_mobile +886912345678-> c2 -display_email a@x.com-> c3`.
pub fn chain_text(chain: &Chain, graph: &KeyGraph, names: &ContactNames<'_>) -> String {
    let mut out = names.name(chain.start);
    for (tie, c) in &chain.hops {
        match tie {
            Tie::Value(v) => {
                let (slot, text) = graph.value(*v);
                let _ = write!(out, " -{} {}-> {}", slot.field, text, names.name(*c));
            }
            Tie::Prior => {
                let _ = write!(out, " -already merged-> {}", names.name(*c));
            }
        }
    }
    out
}

/// One line per slot: valid, empty, invalid and blocked counts with their reasons.
pub fn slot_stats_lines(loaded: &Loaded) -> String {
    let mut out = String::new();
    for (slot, st) in loaded.graph.slots().iter().zip(&loaded.stats) {
        let _ = write!(
            out,
            "  {:<16}{} valid, {} empty",
            slot.field.name(),
            thousands(st.valid),
            thousands(st.empty)
        );
        write_reasons(
            &mut out,
            "invalid",
            st.invalid.iter().map(|(r, n)| (r.code(), *n)),
        );
        write_reasons(
            &mut out,
            "blocked",
            st.blocked.iter().map(|(r, n)| (r.code(), *n)),
        );
        if !slot.merges {
            out.push_str(" (checked for conflicts only)");
        }
        out.push('\n');
    }
    out
}

fn write_reasons<'a>(out: &mut String, label: &str, reasons: impl Iterator<Item = (&'a str, u64)>) {
    let reasons: Vec<(&str, u64)> = reasons.collect();
    let total: u64 = reasons.iter().map(|r| r.1).sum();
    if total == 0 {
        return;
    }
    let detail: Vec<String> = reasons
        .iter()
        .map(|(code, n)| format!("{code} {}", thousands(*n)))
        .collect();
    let _ = write!(
        out,
        ", {} {label} ({})",
        thousands(total),
        detail.join(", ")
    );
}

/// The sum of invalid and blocked values over all slots.
pub fn totals(stats: &[SlotStats]) -> (u64, u64) {
    stats.iter().fold((0, 0), |(i, b), s| {
        (
            i + s.invalid.values().sum::<u64>(),
            b + s.blocked.values().sum::<u64>(),
        )
    })
}

/// The preview as text.
pub fn preview_text(
    preview: &Preview,
    loaded: &Loaded,
    keys: &str,
    region: &str,
    threshold: u32,
) -> String {
    let graph = &loaded.graph;
    let names = ContactNames::new(loaded);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Preview: unify keys {keys} (phone region {region}). Nothing has been changed.\n"
    );
    let _ = writeln!(
        out,
        "  contacts          {:>12}",
        thousands(preview.n_contacts as u64)
    );
    let _ = writeln!(
        out,
        "  profiles before   {:>12}",
        thousands(preview.profiles_before as u64)
    );
    let _ = writeln!(
        out,
        "  profiles after    {:>12}",
        thousands(preview.profiles_after as u64)
    );
    let _ = writeln!(
        out,
        "  contacts merged   {:>12}",
        thousands(preview.contacts_merged as u64)
    );
    let _ = writeln!(out, "\nValues\n{}", slot_stats_lines(loaded));
    let _ = writeln!(out, "Largest profiles");
    for p in &preview.largest_profiles {
        let _ = writeln!(
            out,
            "  {:<20}{:>8} {}",
            names.name(p.root),
            thousands(p.n_contacts as u64),
            plural(p.n_contacts, "contact")
        );
    }
    let _ = writeln!(
        out,
        "\nSuspicious values (shared by more than {threshold} contacts): {}",
        preview.n_suspicious_values
    );
    for s in &preview.suspicious_values {
        let (slot, text) = graph.value(s.value);
        let _ = writeln!(
            out,
            "  {:<16}{:<32}{:>8} contacts",
            slot.field.name(),
            text,
            thousands(s.n_contacts as u64)
        );
    }
    if preview.n_suspicious_values > 0 {
        let _ = writeln!(
            out,
            "  Exclude a value with --exclude FIELD=VALUE if it does not belong to one person."
        );
    }
    let _ = writeln!(
        out,
        "\nConflicts (merges refused: they would give a profile two values of a unique field): {}",
        preview.n_refused
    );
    for r in &preview.refused {
        let c = r.refusal.clash;
        let slot = &graph.slots()[c.slot as usize];
        let _ = writeln!(
            out,
            "  {} kept out of profile {}: {} {} against {}\n    via {}",
            names.name(r.refusal.contact),
            names.name(
                preview
                    .after
                    .root(preview.after.profile_of(r.refusal.holder))
            ),
            slot.field,
            graph.value(c.ours).1,
            graph.value(c.theirs).1,
            chain_text(&r.chain, graph, &names)
        );
    }
    if preview.n_conflicts > 0 {
        let _ = writeln!(
            out,
            "  Profiles that already hold two values of a unique field: {}",
            preview.n_conflicts
        );
    }
    let _ = writeln!(out, "\nSample merges");
    if preview.samples.is_empty() {
        let _ = writeln!(out, "  (none: no two contacts share a key value)");
    }
    for s in &preview.samples {
        let _ = writeln!(
            out,
            "  {} contacts: {}",
            thousands(s.n_contacts as u64),
            chain_text(&s.chain, graph, &names)
        );
    }
    out
}
