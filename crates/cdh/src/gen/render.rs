//! Writing fields into the row buffer: phones, emails, names, numbers and timestamps, without
//! allocating.

use super::data::{GIVEN_CJK, GIVEN_LATIN, SURNAMES};
use super::people::{Person, Phone};

/// Writes a phone in one of the forms people type: national (`0912-345-678`, `0912345678`,
/// `(02)2700-1234`) for Taiwan, or international (`+886 912 345 678`, `+886912345678`).
pub(super) fn push_phone(buf: &mut Vec<u8>, p: &Phone, form: u32) {
    let mut digits = [0u8; 12];
    let d = &mut digits[..p.len];
    let mut v = p.nsn;
    for slot in d.iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
    let national = p.cc == "886" && form < 66;
    // Some landlines get their area code in parentheses: (02)2700-1234.
    let paren = national && p.groups[0] == 1 && form.is_multiple_of(3);
    let sep: &[u8] = if national {
        match form {
            0..30 => b"-",
            30..58 => b"",
            _ => b" ",
        }
    } else {
        buf.push(b'+');
        buf.extend_from_slice(p.cc.as_bytes());
        let (lead, sep): (&[u8], &[u8]) = match form % 8 {
            0..3 => (b" ", b" "),
            3..6 => (b"", b""),
            6 => (b"-", b"-"),
            _ => (b" ", b"-"),
        };
        buf.extend_from_slice(lead);
        sep
    };
    if national {
        buf.extend_from_slice(if paren { b"(0" } else { b"0" });
    }
    let mut at = 0;
    for (i, &g) in p.groups.iter().enumerate() {
        if i > 0 {
            buf.extend_from_slice(if paren && i == 1 { b")" } else { sep });
        }
        buf.extend_from_slice(&d[at..at + g]);
        at += g;
    }
}

/// An invalid phone that a simple rule spots: 4 to 7 digits (`12345`), or a short value with a
/// letter (`09-12A`). Even read as a vanity number it has too few digits to be valid.
pub(super) fn push_bad_phone(buf: &mut Vec<u8>, r: u32) {
    if r & 1 == 0 {
        buf.push(b"12357"[(r >> 1) as usize % 5]);
        for i in 0..3 + (r >> 4) % 4 {
            buf.push(b'0' + (r >> (8 + i * 3)) as u8 % 10);
        }
    } else {
        buf.extend_from_slice(b"09-");
        push_padded(buf, u64::from(r >> 8) % 100, 2);
        buf.push(b'A' + (r >> 1) as u8 % 26);
    }
}

/// Writes the person's address: a name-based local part made unique by the person's index,
/// lower-case mostly, capitalised (`Alice.Chen12@Gmail.com`) or upper-case now and then,
/// sometimes with spaces around, and rarely broken (`alice.chen12@`, no `@`, no dot).
pub(super) fn push_email(buf: &mut Vec<u8>, p: &Person, case: u32, space: u32, bad: Option<u32>) {
    if space < 10 {
        buf.push(b' ');
    }
    let start = buf.len();
    let given = if p.cjk {
        GIVEN_CJK[p.given].1
    } else {
        GIVEN_LATIN[p.given]
    };
    let surname = SURNAMES[p.surname].0;
    match p.email_style {
        0 => push(buf, &[given, ".", surname]),
        1 => push(buf, &[given, surname]),
        2 => push(buf, &[surname, ".", given]),
        3 => push(buf, &[given, "_"]),
        _ => push(buf, &[&given[..1], surname]),
    }
    push_u64(buf, p.id + 1);
    match bad.map(|r| r % 3) {
        Some(0) => buf.push(b'@'),
        Some(1) => {}
        Some(_) => {
            buf.push(b'@');
            buf.extend_from_slice(p.domain.split('.').next().unwrap_or("mail").as_bytes());
        }
        None => {
            buf.push(b'@');
            buf.extend_from_slice(p.domain.as_bytes());
        }
    }
    let text = &mut buf[start..];
    match case {
        0..700 => text.make_ascii_lowercase(),
        700..900 => {
            // Capitalise each part of the local part and the domain's first label.
            let (mut up, mut in_domain) = (true, false);
            for b in text.iter_mut() {
                *b = if up {
                    b.to_ascii_uppercase()
                } else {
                    b.to_ascii_lowercase()
                };
                up = match *b {
                    b'@' => {
                        in_domain = true;
                        true
                    }
                    b'.' | b'_' => !in_domain,
                    _ => false,
                };
            }
        }
        _ => text.make_ascii_uppercase(),
    }
    if (5..15).contains(&space) {
        buf.push(b' ');
    }
}

/// Writes a display name, Latin or Chinese, in the forms contacts arrive with; quotes the ones
/// with a comma or a quote (RFC 4180), which no other field has.
pub(super) fn push_name(buf: &mut Vec<u8>, p: &Person, form: u32) {
    let (surname, surname_cjk) = SURNAMES[p.surname];
    if p.cjk {
        let (given, romanised) = GIVEN_CJK[p.given];
        match form {
            0..50 => {}
            50..700 => push(buf, &[surname_cjk, given]),
            700..800 => push(buf, &[given]),
            800..900 => push(buf, &[romanised, " ", surname]),
            900..950 => push(buf, &["\"", surname, ", ", romanised, "\""]),
            _ if p.given < GIVEN_CJK.len() / 2 => push(buf, &[surname_cjk, "小姐"]),
            _ => push(buf, &[surname_cjk, "先生"]),
        }
    } else {
        let given = GIVEN_LATIN[p.given];
        match form {
            0..50 => {}
            50..600 => push(buf, &[given, " ", surname]),
            600..700 => push(buf, &[given]),
            700..780 => {
                let start = buf.len();
                push(buf, &[given, " ", surname]);
                buf[start..].make_ascii_lowercase();
            }
            780..840 => push(buf, &["\"", surname, ", ", given, "\""]),
            840..900 => push(buf, &[surname, " ", given]),
            900..995 => push(buf, &[given, " ", &surname[..1], "."]),
            _ => push(buf, &["\"", given, " ", surname, " \"\"VIP\"\"\""]),
        }
    }
}

fn push(buf: &mut Vec<u8>, parts: &[&str]) {
    for s in parts {
        buf.extend_from_slice(s.as_bytes());
    }
}

pub(super) fn push_hex(buf: &mut Vec<u8>, v: u128) {
    for i in (0..32).rev() {
        buf.push(b"0123456789abcdef"[(v >> (i * 4)) as usize & 15]);
    }
}

pub(super) fn push_u64(buf: &mut Vec<u8>, mut v: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

/// `v` in exactly `width` digits, zero-padded (`v` must fit).
pub(super) fn push_padded(buf: &mut Vec<u8>, mut v: u64, width: usize) {
    let start = buf.len();
    buf.resize(start + width, b'0');
    for slot in buf[start..].iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

pub(super) fn push_date(buf: &mut Vec<u8>, y: u64, m: u64, d: u64) {
    push_padded(buf, y, 4);
    buf.push(b'-');
    push_padded(buf, m, 2);
    buf.push(b'-');
    push_padded(buf, d, 2);
}

/// RFC 3339 UTC, `2025-03-01T12:34:56Z`, from Unix seconds (Hinnant's civil-from-days).
pub(super) fn push_timestamp(buf: &mut Vec<u8>, secs: u64) {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let z = days + 719_468;
    let (era, doe) = (z / 146_097, z % 146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    push_date(buf, y, m, d);
    buf.push(b'T');
    push_padded(buf, rem / 3600, 2);
    buf.push(b':');
    push_padded(buf, rem / 60 % 60, 2);
    buf.push(b':');
    push_padded(buf, rem % 60, 2);
    buf.push(b'Z');
}
