//! Key normalisation: raw identifier values in, canonical values (or the reason there is none) out.
//!
//! Parse, don't validate: [`Email`], [`LineUid`] and [`crate::phone::Phone`] can only be built
//! from valid input, and everything past this module trusts them.

use std::fmt;

use crate::blocklist::{BlockReason, Blocklist};
use crate::field::{FieldKind, IdentifierField};
use crate::phone::{PhoneError, PhoneNormalizer, Region};

/// A LINE user id: `U` followed by 32 hex digits. Compared exactly, never case-folded.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LineUid(String);

impl LineUid {
    /// Accepts `U` + 32 hex digits (surrounding spaces trimmed).
    pub fn parse(raw: &str) -> Result<Self, InvalidReason> {
        let s = raw.trim();
        if is_line_uid(s) {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidReason::NotALineUid)
        }
    }

    /// The uid as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_line_uid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 33 && b[0] == b'U' && b[1..].iter().all(u8::is_ascii_hexdigit)
}

/// An email address, trimmed and lower-cased.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Email(String);

impl Email {
    /// Trims, lower-cases and checks the address's shape.
    pub fn parse(raw: &str) -> Result<Self, InvalidReason> {
        let mut out = String::new();
        write_email(raw, &mut out)?;
        Ok(Self(out))
    }

    /// The address as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Writes the canonical form of `raw` into `out` (cleared first) if it is a plausible address:
/// one `@`, a local part of 1 to 64 characters without spaces, and a domain of dot-separated
/// labels of letters, digits and hyphens with at least one dot.
fn write_email(raw: &str, out: &mut String) -> Result<(), InvalidReason> {
    out.clear();
    let s = raw.trim();
    if has_hidden_chars(s) {
        return Err(InvalidReason::HiddenCharacters);
    }
    let Some((local, domain)) = s.split_once('@') else {
        return Err(InvalidReason::NotAnEmail);
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local.bytes().all(|b| {
            b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b) || b >= 0x80
        });
    let domain_ok = domain.len() <= 253
        && domain.contains('.')
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b >= 0x80)
        });
    if !(local_ok && domain_ok) {
        return Err(InvalidReason::NotAnEmail);
    }
    out.reserve(s.len());
    for c in s.chars() {
        if c.is_ascii() {
            out.push(c.to_ascii_lowercase());
        } else {
            out.extend(c.to_lowercase());
        }
    }
    Ok(())
}

/// Whether a text holds control characters, or invisible formatting characters that make it
/// read as something it is not: bidirectional marks, embeddings, overrides and isolates
/// (U+202E before a phone number shows it reversed), zero-width characters and the BOM.
pub fn has_hidden_chars(text: &str) -> bool {
    // Printable ASCII, by far the common case, is settled by one pass over the bytes.
    if text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return false;
    }
    text.chars().any(|c| {
        c.is_control()
            || matches!(
                c,
                '\u{061c}'
                    | '\u{200b}'..='\u{200f}'
                    | '\u{202a}'..='\u{202e}'
                    | '\u{2060}'..='\u{2069}'
                    | '\u{feff}'
            )
    })
}

/// Why a value can't be used to merge although it is not empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum InvalidReason {
    /// Not `U` + 32 hex digits.
    NotALineUid,
    /// Not a phone number at all.
    NotAPhone,
    /// A number the phone rules of its region do not accept.
    InvalidPhone,
    /// Not a plausible email address.
    NotAnEmail,
    /// Holds control or invisible formatting characters ([`has_hidden_chars`]).
    HiddenCharacters,
}

impl InvalidReason {
    /// A stable snake_case code for reports and the API.
    pub fn code(self) -> &'static str {
        match self {
            Self::NotALineUid => "not_a_line_uid",
            Self::NotAPhone => "not_a_phone",
            Self::InvalidPhone => "invalid_phone",
            Self::NotAnEmail => "not_an_email",
            Self::HiddenCharacters => "hidden_characters",
        }
    }
}

impl fmt::Display for InvalidReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotALineUid => "not a LINE user id (U followed by 32 hex digits)",
            Self::NotAPhone => "not a phone number",
            Self::InvalidPhone => "not a valid phone number for its region",
            Self::NotAnEmail => "not an email address",
            Self::HiddenCharacters => "holds control or invisible formatting characters",
        })
    }
}

/// What normalising one raw value gave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The canonical value was written to the output buffer.
    Valid,
    /// Nothing was given (absent, or only spaces).
    Empty,
    /// A value that does not parse; kept as given, reported, never used to merge.
    Invalid(InvalidReason),
    /// A value that parses but must never merge (a placeholder, or excluded by an admin).
    Blocked(BlockReason),
}

/// Normalises identifier values for one organization: its phone region and its blocklist.
///
/// Holds a phone cache, so one normaliser per thread; a clone starts with an empty cache.
#[derive(Debug)]
pub struct Normalizer {
    phones: PhoneNormalizer,
    blocklist: Blocklist,
}

impl Clone for Normalizer {
    fn clone(&self) -> Self {
        Self::new(self.region(), self.blocklist.clone())
    }
}

impl Normalizer {
    /// A normaliser for `region` with the built-in blocklist and the admin's exclusions.
    pub fn new(region: Region, blocklist: Blocklist) -> Self {
        Self {
            phones: PhoneNormalizer::new(region),
            blocklist,
        }
    }

    /// The phone region used for national numbers.
    pub fn region(&self) -> Region {
        self.phones.region()
    }

    /// The blocklist in force.
    pub fn blocklist(&self) -> &Blocklist {
        &self.blocklist
    }

    /// Normalises `raw` as a value of `field`, writing the canonical value into `out` (cleared
    /// first) when the outcome is [`Outcome::Valid`]. Allocates nothing once `out` has capacity.
    pub fn normalize_into(
        &mut self,
        field: &IdentifierField,
        raw: &str,
        out: &mut String,
    ) -> Outcome {
        out.clear();
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Outcome::Empty;
        }
        if has_hidden_chars(trimmed) {
            return Outcome::Invalid(InvalidReason::HiddenCharacters);
        }
        if let Some(reason) = Blocklist::built_in_raw(trimmed) {
            return Outcome::Blocked(reason);
        }
        let kind = field.kind();
        match kind {
            FieldKind::LineUid => {
                if !is_line_uid(trimmed) {
                    return Outcome::Invalid(InvalidReason::NotALineUid);
                }
                out.push_str(trimmed);
            }
            FieldKind::Email => {
                if let Err(reason) = write_email(trimmed, out) {
                    return Outcome::Invalid(reason);
                }
            }
            FieldKind::Phone => {
                if let Some(reason) = Blocklist::built_in_phone(trimmed) {
                    return Outcome::Blocked(reason);
                }
                match self.phones.normalize(trimmed) {
                    Ok(phone) => write_phone(phone.digits(), out),
                    Err(PhoneError::NotANumber) => {
                        return Outcome::Invalid(InvalidReason::NotAPhone);
                    }
                    Err(PhoneError::Invalid) => {
                        return Outcome::Invalid(InvalidReason::InvalidPhone);
                    }
                }
            }
            FieldKind::Exact => out.push_str(trimmed),
        }
        if let Some(reason) = self.blocklist.check_normalized(field, kind, out) {
            out.clear();
            return Outcome::Blocked(reason);
        }
        Outcome::Valid
    }

    /// Normalises `raw` into a fresh string; for callers off the hot path.
    pub fn normalize(&mut self, field: &IdentifierField, raw: &str) -> Result<String, Outcome> {
        let mut out = String::new();
        match self.normalize_into(field, raw, &mut out) {
            Outcome::Valid => Ok(out),
            other => Err(other),
        }
    }
}

/// `+` and the E.164 digits, without going through `format!`.
fn write_phone(mut digits: u64, out: &mut String) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (digits % 10) as u8;
        digits /= 10;
        if digits == 0 {
            break;
        }
    }
    out.push('+');
    for &b in &buf[i..] {
        out.push(b as char);
    }
}

#[cfg(test)]
#[path = "normalize_tests.rs"]
mod tests;
