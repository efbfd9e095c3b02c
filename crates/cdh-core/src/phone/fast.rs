//! The fast path: a step-by-step replay of `phonenumber::parse` and `is_valid` for plain inputs.
//!
//! Each step mirrors the crate's code (parser/mod.rs, parser/helper.rs, validator.rs of
//! 0.3.10+9.0.33), quirks included: the default region's national prefix is stripped even
//! from `+` numbers, it is stripped twice, the "does the stripped number still fit" check
//! reads general lengths the metadata never has, and so on. Matching them is the point: the
//! fast path must give the crate's answer or none. Anything it does not replay returns `None`.

use std::borrow::Cow;

use super::rules::{MAX_NSN, Rules, Table, Transform, table};
use super::{Phone, PhoneError, Region, e164};

/// Inputs with more digits than this are left to the crate: longer than any real number.
const MAX_DIGITS: usize = 24;

/// Why the replay stopped early.
enum Stop {
    /// Not replayed here: ask the crate.
    Unknown,
    /// The crate's answer is this error.
    Answer(PhoneError),
}

type Step<T> = Result<T, Stop>;

const NOT_A_NUMBER: Stop = Stop::Answer(PhoneError::NotANumber);

/// See [`super::parse_fast`].
pub(super) fn parse_fast(raw: &str, region: Region) -> Option<Result<Phone, PhoneError>> {
    match replay(raw.as_bytes(), region) {
        Ok(phone) => Some(Ok(phone)),
        Err(Stop::Answer(error)) => Some(Err(error)),
        Err(Stop::Unknown) => None,
    }
}

/// What the scan found besides the digits: whether a `+` led them, and whether the crate's
/// RFC 3966 front end takes the input (then with this many leading digits as the code).
struct Shape {
    len: usize,
    plus: bool,
    rfc_code_len: Option<usize>,
}

fn replay(bytes: &[u8], region: Region) -> Step<Phone> {
    let mut buf = [0u8; MAX_DIGITS];
    let shape = scan(bytes, &mut buf)?;
    // With one or two digits the crate's two front ends and its "short number" grammar
    // disagree in ways not worth replaying; callers block such values anyway.
    if shape.len < 3 {
        return Err(Stop::Unknown);
    }
    let table = table();
    let home = table.rules(region.index()).ok_or(Stop::Unknown)?;
    let digits = &buf[..shape.len];
    let (code, national) = match shape.rfc_code_len {
        Some(code_len) => rfc_code(table, digits, code_len)?,
        None => natural_code(table, home, digits, shape.plus)?,
    };
    let national = strip_national_prefix(home, national)?;
    finish(table, code, &national)
}

/// `starts_with` for the short prefixes here, without a `memcmp` call.
fn has_prefix(s: &[u8], prefix: &[u8]) -> bool {
    s.len() >= prefix.len() && s.iter().zip(prefix).all(|(a, b)| a == b)
}

/// The value of a short run of ASCII digits, `None` past `u16` (as `str::parse::<u16>`).
fn parse_u16(digits: &[u8]) -> Option<u16> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u16, |v, &d| {
        v.checked_mul(10)?
            .checked_add(u16::from(d.wrapping_sub(b'0')))
    })
}

/// Accepts ASCII digits, at most one `+` before the first digit, the separators space, `-`,
/// `.`, `(`, `)`, `/`, and ASCII letters as keypad digits (see [`letters_allowed`]). Anything
/// else (extensions, Unicode digits and punctuation, `tel:` URIs) is left to the crate.
fn scan(bytes: &[u8], digits: &mut [u8; MAX_DIGITS]) -> Step<Shape> {
    let mut len = 0;
    let mut plus = false;
    let mut space = false;
    // How many digits came before the first letter, if there is a letter.
    let mut digits_before_letter = None;
    for &b in bytes {
        let digit = match b {
            b'0'..=b'9' => b,
            // A second plus, or one after a digit, fails the crate's grammar in ways that
            // depend on where it is; not replayed.
            b'+' if plus || len > 0 => return Err(Stop::Unknown),
            b'+' => {
                plus = true;
                continue;
            }
            b' ' => {
                space = true;
                continue;
            }
            b'-' | b'.' | b'(' | b')' | b'/' => continue,
            // `x` starts an extension and is punctuation to the crate's grammar.
            b'x' | b'X' => return Err(Stop::Unknown),
            b'a'..=b'z' | b'A'..=b'Z' => {
                digits_before_letter.get_or_insert(len);
                keypad_digit(b)
            }
            _ => return Err(Stop::Unknown),
        };
        *digits.get_mut(len).ok_or(Stop::Unknown)? = digit;
        len += 1;
    }
    // Only separators: the crate finds no place a number could start.
    if len == 0 {
        return Err(NOT_A_NUMBER);
    }
    if let Some(before) = digits_before_letter {
        if plus || !letters_allowed(bytes) {
            return Err(Stop::Unknown);
        }
        // The crate's viability grammar wants three digits before any letter.
        if before < 3 {
            return Err(NOT_A_NUMBER);
        }
    }
    // The crate tries its RFC 3966 parser first; it refuses any space.
    let rfc_code_len = match bytes.first() {
        Some(b'+') if !space => rfc_split(bytes),
        _ => None,
    };
    Ok(Shape {
        len,
        plus,
        rfc_code_len,
    })
}

/// The digit a letter stands for on a phone keypad, as the crate's `ALPHA_PHONE_MAPPINGS`
/// (either case).
fn keypad_digit(letter: u8) -> u8 {
    const KEYPAD: &[u8; 26] = b"22233344455566677778889999";
    KEYPAD[usize::from(letter.to_ascii_lowercase() - b'a')]
}

/// Whether a value with letters (and no `+`, no `x`) reaches the crate's normalisation whole, so
/// that it is the crate's answer for its digits with each letter read as its keypad digit.
///
/// Both of the crate's front ends then take the whole value: the RFC 3966 one (hex letters,
/// no space, no `/`) as it is, the natural one because the value starts with a digit (nothing
/// cut in front), ends with a digit or letter (no unwanted end) and holds no extension marker
/// (`x`, `#`, `,`, `;`, `~`, "int", "anexo", case-insensitively). Normalisation then maps every
/// letter and drops the separators, exactly as the plain path sees the digits.
fn letters_allowed(bytes: &[u8]) -> bool {
    let starts_with_digit = bytes.first().is_some_and(u8::is_ascii_digit);
    let ends_alphanumeric = bytes.last().is_some_and(u8::is_ascii_alphanumeric);
    let has_word = |word: &[u8]| {
        bytes
            .windows(word.len())
            .any(|w| w.eq_ignore_ascii_case(word))
    };
    starts_with_digit && ends_alphanumeric && !has_word(b"int") && !has_word(b"anexo")
}

/// The RFC 3966 front end on a space-free input starting with `+`: it takes everything up to
/// the first of `-.()` as the code, then needs the rest to be digits and `-.()` only. When it
/// fails the crate falls through to its natural-language parser (`None`); when it succeeds the
/// code is read literally (`Some(its digit count)`) rather than by the shortest-known-code rule.
fn rfc_split(bytes: &[u8]) -> Option<usize> {
    let is_sep = |b: &u8| matches!(b, b'-' | b'.' | b'(' | b')');
    let cut = bytes.iter().skip(1).position(is_sep)? + 1;
    // An empty code makes the RFC parser fail on the `+`.
    if cut == 1 {
        return None;
    }
    let (code, rest) = bytes.split_at(cut);
    if !rest.iter().all(|b| b.is_ascii_digit() || is_sep(b)) {
        return None;
    }
    // The crate's normalisation drops anything but digits (here: `/`) from the code.
    Some(code.iter().filter(|b| b.is_ascii_digit()).count())
}

/// `helper::country_code` after the RFC 3966 parser: the code is the digits before the first
/// separator, parsed as `u16` (so leading zeros are fine and overflow is an error).
fn rfc_code<'a>(table: &Table, digits: &'a [u8], code_len: usize) -> Step<(u16, &'a [u8])> {
    let (code, national) = digits.split_at(code_len);
    // `is_viable` of the part after the code wants three digits.
    if national.len() < 3 {
        return Err(NOT_A_NUMBER);
    }
    let code = parse_u16(code).ok_or(NOT_A_NUMBER)?;
    if !table.has_code(code) {
        return Err(NOT_A_NUMBER);
    }
    Ok((code, national))
}

/// `helper::international_prefix` then `helper::country_code` for the natural parser.
fn natural_code<'a>(
    table: &Table,
    home: &Rules,
    digits: &'a [u8],
    plus: bool,
) -> Step<(u16, &'a [u8])> {
    let mut national = digits;
    let mut international = plus;
    // The default region's IDD (e.g. TW's 002) is stripped unless a 0 follows it; after a `+`
    // too (as in "+00886..."). The crate finds it unanchored and wants it at 0, which is the
    // same as an anchored search.
    if let Some(end) = home.idd.as_ref().and_then(|idd| idd.match_end(national)) {
        let rest = &national[end..];
        if rest.first() != Some(&b'0') {
            national = rest;
            international = true;
        }
    }
    if international {
        if national.len() <= 2 || national[0] == b'0' {
            return Err(NOT_A_NUMBER);
        }
        // The first known code of one, two or three digits wins.
        for len in 1..=3 {
            let code = parse_u16(&national[..len]).ok_or(Stop::Unknown)?;
            if table.has_code(code) {
                return Ok((code, &national[len..]));
            }
        }
        return Err(NOT_A_NUMBER);
    }
    // No international prefix: the default region's code, itself stripped if the number starts
    // with it and does not look national. With no general lengths in the metadata the length
    // test always fails, so in practice a leading country code is always stripped.
    let code_digits = home.code_digits.as_bytes();
    if has_prefix(national, code_digits)
        && (!home.general_match(national) || !home.length_possible(national.len()))
    {
        national = &national[code_digits.len()..];
    }
    Ok((home.code, national))
}

/// `helper::national_number` and the extra strip in `parser::parse_with`, both with the
/// *default* region's rules whatever the number's own country.
fn strip_national_prefix<'a>(home: &Rules, national: &'a [u8]) -> Step<Cow<'a, [u8]>> {
    let mut potential = Cow::Borrowed(national);
    if let Some(parsing) = &home.prefix_for_parsing {
        // The crate's "keep the prefix if the rest no longer fits" test compares the number
        // with itself, so it never keeps it: a match at 0 is always cut.
        if let Some(end) = parsing.match_end(national) {
            potential = Cow::Borrowed(&national[end..]);
        }
    } else if let Some(transform) = &home.transform {
        potential = apply_transform(home, transform, national)?;
    } else if let Some(prefix) = &home.national_prefix
        && has_prefix(national, prefix.as_bytes())
    {
        potential = Cow::Borrowed(&national[prefix.len()..]);
    }
    if let Some(prefix) = &home.national_prefix {
        let prefix = prefix.as_bytes();
        potential = match potential {
            Cow::Borrowed(s) if has_prefix(s, prefix) => Cow::Borrowed(&s[prefix.len()..]),
            Cow::Borrowed(s) => Cow::Borrowed(s),
            Cow::Owned(s) => match s.strip_prefix(prefix).map(<[u8]>::to_vec) {
                Some(rest) => Cow::Owned(rest),
                None => Cow::Owned(s),
            },
        };
    }
    if home.length_too_short(potential.len()) {
        return Ok(Cow::Borrowed(national));
    }
    Ok(potential)
}

/// The transform-rule branch of `helper::national_number` (e.g. AG: a 7-digit local number
/// gets its area code 268 put in front).
fn apply_transform<'a>(
    home: &Rules,
    transform: &Transform,
    national: &'a [u8],
) -> Step<Cow<'a, [u8]>> {
    let text = std::str::from_utf8(national).map_err(|_| Stop::Unknown)?;
    let mut caps = transform.regex.create_captures();
    transform.regex.captures(transform.input(text), &mut caps);
    let Some(whole) = caps.get_group(0) else {
        return Ok(Cow::Borrowed(national));
    };
    // The last group not taking part means a plain prefix: cut it.
    if caps
        .get_group(transform.groups().saturating_sub(1))
        .is_none()
    {
        return Ok(Cow::Borrowed(&national[whole.end..]));
    }
    // The crate unwraps group 1 here; without it, it would panic.
    if caps.get_group(1).is_none() {
        return Err(Stop::Unknown);
    }
    // `Regex::replace` of the match at 0: the expanded rule, then the rest.
    let mut transformed = caps.interpolate_string(text, &transform.rule);
    transformed.push_str(&text[whole.end..]);
    // A rule with something other than digits would need the crate's handling of it.
    if !transformed.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Stop::Unknown);
    }
    if home.general_match(national) && !home.general_match(transformed.as_bytes()) {
        return Ok(Cow::Borrowed(national));
    }
    Ok(Cow::Owned(transformed.into_bytes()))
}

/// The length checks, `NationalNumber::from_str`, then `is_valid` and the E.164 digits.
/// `national` is ASCII digits: scanned so, or checked after a transform.
fn finish(table: &Table, code: u16, national: &[u8]) -> Step<Phone> {
    if national.len() < 2 || national.len() > MAX_NSN {
        return Err(NOT_A_NUMBER);
    }
    // At most 17 digits: no overflow. Leading zeros add nothing to the value.
    let value = (national.iter()).fold(0u64, |v, &d| v * 10 + u64::from(d.wrapping_sub(b'0')));
    // All zeros: the crate parses an empty string (after the zeros) as u64 and fails.
    if value == 0 {
        return Err(NOT_A_NUMBER);
    }
    if value >= 1 << 56 {
        return Err(NOT_A_NUMBER);
    }
    if !is_valid(table, code, national)? {
        return Err(Stop::Answer(PhoneError::Invalid));
    }
    e164(code, national.len(), value).map_err(Stop::Answer)
}

/// `validator::is_valid_with`: pick the region for the code (by leading digits, or the first
/// region the number is valid in), then ask whether it has any number type there.
fn is_valid(table: &Table, code: u16, national: &[u8]) -> Step<bool> {
    let rules = |i: u16| table.rules(i).ok_or(Stop::Unknown);
    match table.code_entries(code) {
        [] => Ok(false),
        &[only] => {
            let entry = &table.entries[only as usize];
            // The crate can only look a region up by an id it knows.
            if entry.country.is_none() && entry.id != "001" {
                return Ok(false);
            }
            Ok(rules(only)?.is_valid_number(national))
        }
        many => {
            for &i in many {
                // The crate unwraps the id's parse here.
                if table.entries[i as usize].country.is_none() {
                    return Err(Stop::Unknown);
                }
                let r = rules(i)?;
                match &r.leading_digits {
                    Some(leading) if leading.matches(national) => {
                        return Ok(r.is_valid_number(national));
                    }
                    Some(_) => {}
                    None if r.is_valid_number(national) => return Ok(true),
                    None => {}
                }
            }
            Ok(false)
        }
    }
}
