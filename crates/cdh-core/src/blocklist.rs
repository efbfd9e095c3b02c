//! Blocked values: placeholders that must never merge contacts, built in or excluded by an admin.

use std::collections::HashSet;
use std::fmt;

use crate::field::{FieldKind, IdentifierField};

/// Raw values (compared trimmed and case-insensitively) that mean "no value" in any field.
pub const BUILT_IN_PLACEHOLDERS: &[&str] = &[
    "null",
    "(null)",
    "undefined",
    "0",
    "none",
    "n/a",
    "#n/a",
    "na",
    "nil",
    "nan",
    "-",
    "--",
    "unknown",
    "test",
    "no",
    "not available",
];

/// Email addresses (after normalisation) that stand for "no email" rather than a person.
pub const BUILT_IN_EMAILS: &[&str] = &[
    "test@test.com",
    "test@example.com",
    "example@example.com",
    "noemail@example.com",
    "no@email.com",
    "noemail@noemail.com",
    "none@none.com",
    "na@na.com",
    "email@email.com",
];

/// Why a value is blocked from merging.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BlockReason {
    /// A placeholder such as `null`, `n/a` or `test@test.com`.
    Placeholder,
    /// A phone number made of one digit repeated, such as `0000000000`.
    RepeatedDigits,
    /// A phone number of consecutive digits, such as `0123456789`.
    SequentialDigits,
    /// A value an admin excluded from merging.
    Excluded,
}

impl BlockReason {
    /// A stable snake_case code for reports and the API.
    pub fn code(self) -> &'static str {
        match self {
            Self::Placeholder => "placeholder",
            Self::RepeatedDigits => "repeated_digits",
            Self::SequentialDigits => "sequential_digits",
            Self::Excluded => "excluded",
        }
    }
}

impl fmt::Display for BlockReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Placeholder => "a placeholder value",
            Self::RepeatedDigits => "a phone number of one repeated digit",
            Self::SequentialDigits => "a phone number of consecutive digits",
            Self::Excluded => "excluded by an admin",
        })
    }
}

/// The built-in rules plus the (field, normalised value) pairs an admin excluded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Blocklist {
    excluded: HashSet<(IdentifierField, String)>,
}

impl Blocklist {
    /// Only the built-in rules.
    pub fn built_in() -> Self {
        Self::default()
    }

    /// Excludes a value that is already in its field's canonical form.
    pub fn exclude_normalized(&mut self, field: IdentifierField, normalized: String) {
        self.excluded.insert((field, normalized));
    }

    /// The excluded (field, normalised value) pairs.
    pub fn excluded(&self) -> impl Iterator<Item = (&IdentifierField, &str)> {
        self.excluded.iter().map(|(f, v)| (f, v.as_str()))
    }

    /// Whether any value is excluded by an admin.
    pub fn has_exclusions(&self) -> bool {
        !self.excluded.is_empty()
    }

    /// Checks a trimmed raw value against the placeholders every field shares.
    pub fn built_in_raw(trimmed: &str) -> Option<BlockReason> {
        // Placeholders are short; skip the comparisons for everything longer.
        if trimmed.len() > 13 {
            return None;
        }
        BUILT_IN_PLACEHOLDERS
            .iter()
            .any(|p| p.eq_ignore_ascii_case(trimmed))
            .then_some(BlockReason::Placeholder)
    }

    /// Checks a trimmed raw phone for one repeated digit or a run of consecutive digits,
    /// ignoring separators and a leading `+`. Needs at least six digits to say so.
    pub fn built_in_phone(trimmed: &str) -> Option<BlockReason> {
        let mut digits = trimmed.bytes().filter(u8::is_ascii_digit);
        let first = digits.next()?;
        let (mut n, mut same, mut ascending, mut descending) = (1usize, true, true, true);
        let mut prev = first;
        for d in digits {
            same &= d == prev;
            ascending &= d == b'0' + (prev - b'0' + 1) % 10;
            descending &= d == b'0' + (prev - b'0' + 9) % 10;
            prev = d;
            n += 1;
        }
        if n < 6 {
            None
        } else if same {
            Some(BlockReason::RepeatedDigits)
        } else if ascending || descending {
            Some(BlockReason::SequentialDigits)
        } else {
            None
        }
    }

    /// Checks a canonical value against the built-in emails and the admin's exclusions.
    pub fn check_normalized(
        &self,
        field: &IdentifierField,
        kind: FieldKind,
        normalized: &str,
    ) -> Option<BlockReason> {
        if kind == FieldKind::Email && BUILT_IN_EMAILS.contains(&normalized) {
            return Some(BlockReason::Placeholder);
        }
        if !self.excluded.is_empty()
            && self
                .excluded
                .contains(&(field.clone(), normalized.to_owned()))
        {
            return Some(BlockReason::Excluded);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_is_blocked_in_any_case() {
        for p in BUILT_IN_PLACEHOLDERS {
            assert_eq!(
                Blocklist::built_in_raw(p),
                Some(BlockReason::Placeholder),
                "{p}"
            );
            assert_eq!(
                Blocklist::built_in_raw(&p.to_uppercase()),
                Some(BlockReason::Placeholder),
                "{p}"
            );
        }
        assert_eq!(Blocklist::built_in_raw("alice"), None);
        assert_eq!(Blocklist::built_in_raw("00"), None);
    }

    #[test]
    fn repeated_and_sequential_phones_are_blocked() {
        assert_eq!(
            Blocklist::built_in_phone("0000000000"),
            Some(BlockReason::RepeatedDigits)
        );
        assert_eq!(
            Blocklist::built_in_phone("09-9999-9999"),
            None,
            "0 then 9s is not one digit"
        );
        assert_eq!(
            Blocklist::built_in_phone("1111-111-111"),
            Some(BlockReason::RepeatedDigits)
        );
        assert_eq!(
            Blocklist::built_in_phone("0123456789"),
            Some(BlockReason::SequentialDigits)
        );
        assert_eq!(
            Blocklist::built_in_phone("+1 234-567-890"),
            Some(BlockReason::SequentialDigits)
        );
        assert_eq!(
            Blocklist::built_in_phone("987654321"),
            Some(BlockReason::SequentialDigits)
        );
        assert_eq!(Blocklist::built_in_phone("0912-345-678"), None);
        assert_eq!(
            Blocklist::built_in_phone("11111"),
            None,
            "too short to judge"
        );
    }

    #[test]
    fn placeholder_emails_and_exclusions() {
        let mut list = Blocklist::built_in();
        let email = IdentifierField::DisplayEmail;
        assert_eq!(
            list.check_normalized(&email, FieldKind::Email, "test@test.com"),
            Some(BlockReason::Placeholder)
        );
        assert_eq!(
            list.check_normalized(&email, FieldKind::Email, "a@b.co"),
            None
        );
        list.exclude_normalized(IdentifierField::DisplayMobile, "+886223456789".into());
        assert_eq!(
            list.check_normalized(
                &IdentifierField::DisplayMobile,
                FieldKind::Phone,
                "+886223456789"
            ),
            Some(BlockReason::Excluded)
        );
        // An exclusion is per field: the same text in another field still merges.
        assert_eq!(
            list.check_normalized(
                &IdentifierField::CustomerId,
                FieldKind::Exact,
                "+886223456789"
            ),
            None
        );
    }
}
