//! Unit tests for every normalisation rule.

use super::{
    BlockReason, Blocklist, Email, IdentifierField, InvalidReason, Normalizer, Outcome, Region,
};
use crate::field::IdentifierField::*;

fn tw() -> Normalizer {
    Normalizer::new(Region::parse("TW").unwrap(), Blocklist::built_in())
}

fn norm(field: IdentifierField, raw: &str) -> Result<String, Outcome> {
    tw().normalize(&field, raw)
}

#[test]
fn line_uid_is_u_and_32_hex_exact() {
    let uid = "U4af4980629a1b2c3d4e5f60718293a4b";
    assert_eq!(norm(LineUid, uid), Ok(uid.to_owned()));
    assert_eq!(
        norm(LineUid, &format!("  {uid} ")),
        Ok(uid.to_owned()),
        "trimmed"
    );
    assert_eq!(
        norm(LineUid, &uid.to_lowercase()),
        Err(Outcome::Invalid(InvalidReason::NotALineUid)),
        "a lower-case u is not a LINE uid"
    );
    assert_eq!(
        norm(LineUid, &uid[..32]),
        Err(Outcome::Invalid(InvalidReason::NotALineUid)),
        "31 hex digits"
    );
    assert_eq!(
        norm(LineUid, "U4af4980629a1b2c3d4e5f60718293a4g"),
        Err(Outcome::Invalid(InvalidReason::NotALineUid)),
        "g is not hex"
    );
    assert!(super::LineUid::parse(uid).is_ok());
    assert_eq!(super::LineUid::parse("U1"), Err(InvalidReason::NotALineUid));
}

#[test]
fn line_uid_case_is_kept_not_folded() {
    let upper = "U4AF4980629A1B2C3D4E5F60718293A4B";
    let lower = "U4af4980629a1b2c3d4e5f60718293a4b";
    // Both are valid and each keeps its own case: two values, never folded into one.
    assert_eq!(norm(LineUid, upper), Ok(upper.to_owned()));
    assert_eq!(norm(LineUid, lower), Ok(lower.to_owned()));
}

#[test]
fn phones_national_and_international_are_equal_in_e164() {
    let expected = Ok("+886912345678".to_owned());
    for raw in [
        "0912-345-678",
        "0912345678",
        "+886 912 345 678",
        "+886912345678",
        " 0912 345 678 ",
    ] {
        assert_eq!(norm(DisplayMobile, raw), expected, "{raw}");
    }
    assert_eq!(
        norm(DisplayMobile, "02-2345-6789"),
        Ok("+886223456789".to_owned())
    );
    assert_eq!(
        norm(DisplayMobile, "+1 415-555-2671"),
        Ok("+14155552671".to_owned())
    );
}

#[test]
fn invalid_phones_are_reported_not_merged() {
    assert_eq!(
        norm(DisplayMobile, "12345"),
        Err(Outcome::Invalid(InvalidReason::InvalidPhone))
    );
    assert!(matches!(
        norm(DisplayMobile, "call me"),
        Err(Outcome::Invalid(
            InvalidReason::NotAPhone | InvalidReason::InvalidPhone
        ))
    ));
}

#[test]
fn the_region_decides_national_numbers() {
    let mut us = Normalizer::new(Region::parse("US").unwrap(), Blocklist::built_in());
    assert_eq!(
        us.normalize(&DisplayMobile, "(415) 555-2671"),
        Ok("+14155552671".to_owned())
    );
    assert_ne!(
        us.normalize(&DisplayMobile, "0912-345-678"),
        Ok("+886912345678".to_owned())
    );
}

#[test]
fn emails_are_trimmed_and_lower_cased() {
    assert_eq!(
        norm(DisplayEmail, "  Alice.Chen@Example.COM "),
        Ok("alice.chen@example.com".into())
    );
    assert_eq!(Email::parse("Bob@x.io").unwrap().as_str(), "bob@x.io");
}

#[test]
fn malformed_emails_are_invalid() {
    for raw in [
        "alice@",
        "@example.com",
        "no-at-sign",
        "a@b",
        "a b@c.com",
        "a@@b.com",
        "a@b..com",
        ".a@b.com",
        "a@-b.com",
    ] {
        assert_eq!(
            norm(DisplayEmail, raw),
            Err(Outcome::Invalid(InvalidReason::NotAnEmail)),
            "{raw}"
        );
    }
}

#[test]
fn exact_fields_are_trimmed_only() {
    assert_eq!(norm(CustomerId, "  M00123 "), Ok("M00123".into()));
    assert_ne!(
        norm(CustomerId, "m00123"),
        norm(CustomerId, "M00123"),
        "case matters"
    );
    assert_eq!(norm(ConnectId, "crm-7"), Ok("crm-7".into()));
    assert_eq!(norm(Custom("member_no".into()), " 42 "), Ok("42".into()));
}

#[test]
fn empty_values_are_empty_not_invalid() {
    for field in [LineUid, DisplayMobile, DisplayEmail, CustomerId, ConnectId] {
        assert_eq!(norm(field.clone(), ""), Err(Outcome::Empty));
        assert_eq!(norm(field, "   "), Err(Outcome::Empty));
    }
}

#[test]
fn placeholders_are_blocked_in_every_field() {
    for field in [LineUid, DisplayMobile, DisplayEmail, CustomerId, ConnectId] {
        for raw in ["null", "NULL", "undefined", "0", "none", "N/A", "n/a"] {
            assert_eq!(
                norm(field.clone(), raw),
                Err(Outcome::Blocked(BlockReason::Placeholder)),
                "{field} {raw}"
            );
        }
    }
    assert_eq!(
        norm(DisplayEmail, " TEST@test.com"),
        Err(Outcome::Blocked(BlockReason::Placeholder))
    );
    assert_eq!(
        norm(DisplayMobile, "0000000000"),
        Err(Outcome::Blocked(BlockReason::RepeatedDigits))
    );
    assert_eq!(
        norm(DisplayMobile, "0123456789"),
        Err(Outcome::Blocked(BlockReason::SequentialDigits))
    );
}

#[test]
fn admin_exclusions_apply_after_normalisation() {
    let mut blocklist = Blocklist::built_in();
    let excluded = tw().normalize(&DisplayMobile, "02-2345-6789").unwrap();
    blocklist.exclude_normalized(DisplayMobile, excluded);
    let mut n = Normalizer::new(Region::parse("TW").unwrap(), blocklist);
    assert_eq!(
        n.normalize(&DisplayMobile, "+886 2 2345 6789"),
        Err(Outcome::Blocked(BlockReason::Excluded)),
        "another spelling of an excluded number is excluded too"
    );
    assert_eq!(
        n.normalize(&DisplayMobile, "0912-345-678"),
        Ok("+886912345678".into())
    );
}

#[test]
fn normalize_into_clears_the_buffer_on_failure() {
    let mut n = tw();
    let mut out = String::from("stale");
    assert_eq!(
        n.normalize_into(&DisplayEmail, "bad", &mut out),
        Outcome::Invalid(InvalidReason::NotAnEmail)
    );
    assert!(out.is_empty());
}

#[test]
fn hidden_characters_make_any_value_invalid() {
    let uid = "U4af4980629a1b2c3d4e5f60718293a4b";
    for (field, raw) in [
        (DisplayMobile, "\u{202e}0912345678"),
        (DisplayMobile, "0912\u{200b}345678"),
        (DisplayEmail, "ann\u{202e}@example.com"),
        (DisplayEmail, "ann@exam\u{2066}ple.com"),
        (CustomerId, "c1\u{0}"),
        (CustomerId, "c\n1"),
        (ConnectId, "\u{feff}k1"),
        (LineUid, &format!("{uid}\u{200f}")),
    ] {
        assert_eq!(
            norm(field, raw),
            Err(Outcome::Invalid(InvalidReason::HiddenCharacters)),
            "{raw:?}"
        );
    }
    assert_eq!(
        Email::parse("ann\u{202e}@example.com"),
        Err(InvalidReason::HiddenCharacters)
    );
    // Surrounding spaces and tabs are trimmed, not hidden; letters of any script are fine.
    assert_eq!(norm(CustomerId, "\tc1 "), Ok("c1".to_owned()));
    assert_eq!(norm(CustomerId, "會員-1"), Ok("會員-1".to_owned()));
    assert_eq!(InvalidReason::HiddenCharacters.code(), "hidden_characters");
}
