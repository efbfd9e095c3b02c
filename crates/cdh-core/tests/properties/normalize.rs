//! The normaliser over any text, as a fuzzer would feed it: it never panics; a valid value is
//! non-empty, free of hidden characters and a fixed point (normalising it again gives it
//! back); and a hidden character anywhere inside a value makes it invalid, whatever the
//! field. `PROPTEST_CASES=100000 cargo test -p cdh-core --test properties normalize` runs a
//! longer hunt.

use cdh_core::blocklist::Blocklist;
use cdh_core::field::{BUILT_IN_FIELDS, IdentifierField};
use cdh_core::normalize::{InvalidReason, Normalizer, Outcome, has_hidden_chars};
use cdh_core::phone::Region;
use proptest::prelude::*;
use proptest::sample::select;

/// 600 cases a property, or `PROPTEST_CASES` for a longer hunt.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(600)
}

fn normalizer() -> Normalizer {
    Normalizer::new(Region::parse("TW").expect("TW"), Blocklist::built_in())
}

/// Characters that hide what a value is and that trimming does not remove.
const HIDDEN: [char; 8] = [
    '\u{0}', '\u{7}', '\u{1b}', '\u{200b}', '\u{200f}', '\u{202e}', '\u{2066}', '\u{feff}',
];

/// Values shaped like identifiers of every kind, valid or nearly so.
fn value_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "U[0-9a-f]{32}",
        "[a-z]{1,8}@[a-z]{1,8}\\.(com|tw|co\\.jp)",
        "(\\+886|0)9[0-9]{2}-?[0-9]{3}-?[0-9]{3}",
        "[A-Za-z0-9-]{1,12}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn any_text_normalises_to_a_clean_fixed_point_or_a_reason(
        raw in any::<String>(),
        field in select(BUILT_IN_FIELDS.to_vec()),
    ) {
        check(&field, &raw)?;
    }

    #[test]
    fn identifier_shaped_text_normalises_to_a_clean_fixed_point(
        raw in value_like(),
        field in select(BUILT_IN_FIELDS.to_vec()),
    ) {
        check(&field, &raw)?;
    }

    #[test]
    fn a_hidden_character_inside_makes_any_value_invalid(
        raw in value_like(),
        hidden in select(HIDDEN.to_vec()),
        at in any::<prop::sample::Index>(),
        field in select(BUILT_IN_FIELDS.to_vec()),
    ) {
        let chars: Vec<char> = raw.chars().collect();
        let at = at.index(chars.len() + 1);
        let mut spoiled: String = chars[..at].iter().collect();
        spoiled.push(hidden);
        spoiled.extend(&chars[at..]);
        prop_assert_eq!(
            normalizer().normalize(&field, &spoiled),
            Err(Outcome::Invalid(InvalidReason::HiddenCharacters)),
            "{:?}",
            spoiled
        );
    }
}

fn check(field: &IdentifierField, raw: &str) -> Result<(), TestCaseError> {
    let mut n = normalizer();
    if let Ok(value) = n.normalize(field, raw) {
        prop_assert!(!value.is_empty());
        prop_assert!(!has_hidden_chars(&value), "{:?} -> {:?}", raw, value);
        prop_assert_eq!(n.normalize(field, &value), Ok(value.clone()), "{:?}", raw);
    }
    Ok(())
}
