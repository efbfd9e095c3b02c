//! Phone numbers to E.164, with exactly the `phonenumber` crate's answers but at fast-path speed.
//!
//! [`parse_with_crate`] is the reference: `phonenumber::parse` with a default region, then
//! `is_valid`. It is slow (BENCHMARKS.md, "Core"), mostly because the crate keeps its patterns
//! in a global, mutex-guarded LRU of 100 regexes. [`parse_fast`] replays the same steps on the same metadata
//! with its own compiled patterns for the plain shapes (ASCII digits, one leading `+`, the
//! separators ` -.()/`, and keypad letters in national values) and answers `None` for anything
//! else; [`parse`] uses it and falls back to
//! the crate. [`PhoneNormalizer`] adds a bounded cache by raw value.

mod dfa;
mod fast;
mod rules;

use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};

/// A default region for numbers written without a country code, such as TW.
///
/// Only regions in the crate's metadata exist, so every `Region` can be handed to the crate.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Region(u16);

impl Region {
    /// Looks up a region by its two-letter id, ignoring ASCII case ("TW", "tw").
    pub fn parse(code: &str) -> Result<Region, UnknownRegion> {
        rules::table()
            .region_index(&code.to_ascii_uppercase())
            .map(Region)
            .ok_or_else(|| UnknownRegion(code.to_owned()))
    }

    /// The region's id in upper case, e.g. "TW".
    pub fn code(&self) -> &'static str {
        self.entry().map_or("", |e| e.id)
    }

    /// The index of the region's metadata in the rules table.
    fn index(self) -> u16 {
        self.0
    }

    fn entry(&self) -> Option<&'static rules::Entry> {
        rules::table().entries.get(self.0 as usize)
    }
}

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Region").field(&self.code()).finish()
    }
}

/// A region id that the phone metadata does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownRegion(pub String);

impl fmt::Display for UnknownRegion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown phone region {:?}", self.0)
    }
}

impl std::error::Error for UnknownRegion {}

/// A valid phone number: its E.164 digits (country code then national number) as an integer.
///
/// E.164 never starts with 0 and has at most 15 digits, so the integer is lossless.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Phone(u64);

/// One past the largest E.164 number (15 digits).
const E164_LIMIT: u64 = 1_000_000_000_000_000;

impl Phone {
    /// The phone with these E.164 digits, if they can be one (1 to 15 digits).
    pub fn from_e164_digits(digits: u64) -> Option<Phone> {
        (1..E164_LIMIT).contains(&digits).then_some(Phone(digits))
    }

    /// The E.164 digits without the `+`, e.g. 886912345678.
    pub fn digits(&self) -> u64 {
        self.0
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "+{}", self.0)
    }
}

/// Why a raw value is not a phone number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhoneError {
    /// The crate cannot parse it as a phone number at all.
    NotANumber,
    /// It parses, but is not a valid number for its country (or is longer than E.164 allows).
    Invalid,
}

impl fmt::Display for PhoneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotANumber => "not a phone number",
            Self::Invalid => "not a valid phone number",
        })
    }
}

impl std::error::Error for PhoneError {}

/// Powers of ten up to E.164's 15 digits.
const POW10: [u64; 16] = {
    let mut table = [1u64; 16];
    let mut i = 1;
    while i < 16 {
        table[i] = table[i - 1] * 10;
        i += 1;
    }
    table
};

/// The number of decimal digits of `n`, as `{}` would print it (so 0 has one).
fn decimal_len(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |l| l as usize + 1)
}

/// Builds the E.164 digits the crate's `Mode::E164` formatter writes: the code, then the
/// national number of `national_len` digits (leading zeros included) whose value is `value`.
/// Over 15 digits is `Invalid`: not a [`Phone`].
fn e164(code: u16, national_len: usize, value: u64) -> Result<Phone, PhoneError> {
    let scale = POW10
        .get(decimal_len(u64::from(code)) + national_len)
        .and(POW10.get(national_len))
        .ok_or(PhoneError::Invalid)?;
    Phone::from_e164_digits(u64::from(code) * scale + value).ok_or(PhoneError::Invalid)
}

/// The reference: the crate's full parser (`phonenumber::parse`, then `is_valid`).
///
/// Slow, and serialised across threads by the crate's global regex cache.
pub fn parse_with_crate(raw: &str, region: Region) -> Result<Phone, PhoneError> {
    let country = region
        .entry()
        .and_then(|e| e.country)
        .ok_or(PhoneError::NotANumber)?;
    let number = phonenumber::parse(Some(country), raw).map_err(|_| PhoneError::NotANumber)?;
    if !number.is_valid() {
        return Err(PhoneError::Invalid);
    }
    let national = number.national();
    let len = usize::from(national.zeros()) + decimal_len(national.value());
    e164(number.code().value(), len, national.value())
}

/// The fast path alone: the crate's answer for plain shapes, `None` ("ask the crate") otherwise.
///
/// Handled: ASCII digits with the separators space `-` `.` `(` `)` `/`, optionally led by one
/// `+` (before any digit), in national form, international form, or with the region's IDD such
/// as TW's `002`; ASCII letters (read as keypad digits, as the crate does) in values without a
/// `+` that start with a digit and end with a digit or letter. Left to the crate: other letter
/// shapes, extensions (`x`, `ext`, `#`...), Unicode digits or punctuation, `tel:` URIs, several
/// `+`, fewer than three digits, over 24 digits.
pub fn parse_fast(raw: &str, region: Region) -> Option<Result<Phone, PhoneError>> {
    fast::parse_fast(raw, region)
}

/// Parses `raw` as a phone number of `region` (unless it has a country code): the fast path,
/// else the crate. Always the same answer as [`parse_with_crate`].
pub fn parse(raw: &str, region: Region) -> Result<Phone, PhoneError> {
    parse_fast(raw, region).unwrap_or_else(|| parse_with_crate(raw, region))
}

/// Entries the cache may hold before it is cleared: just fills a table of 2^21 buckets, so it
/// never doubles again. Clearing wholesale is crude, but lookups stay a single
/// probe and memory stays bounded.
const CACHE_LIMIT: usize = (1 << 21) / 8 * 7;

/// Raw values up to this many bytes are cached; longer ones are rare and just parsed.
const KEY_BYTES: usize = 31;

/// A cache key: the raw bytes padded with zeros, the length in the last byte (so a raw value
/// that itself ends in NUL bytes cannot collide). No allocation per entry.
#[derive(PartialEq, Eq)]
struct Key([u64; 4]);

impl Key {
    fn new(raw: &str) -> Option<Key> {
        let bytes = raw.as_bytes();
        if bytes.len() > KEY_BYTES {
            return None;
        }
        // Whole words are single loads; only the tail goes byte by byte (no memcpy call).
        let mut words = [0u64; 4];
        let chunks = bytes.chunks_exact(8);
        let tail = chunks.remainder();
        let mut n = 0;
        for (word, chunk) in words.iter_mut().zip(chunks) {
            *word = <[u8; 8]>::try_from(chunk).map_or(0, u64::from_le_bytes);
            n += 1;
        }
        for (i, &b) in tail.iter().enumerate() {
            words[n] |= u64::from(b) << (8 * i);
        }
        words[3] |= (bytes.len() as u64) << 56;
        Some(Key(words))
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Four plain words: cheaper than hashing the array as a length-prefixed slice.
        for word in self.0 {
            state.write_u64(word);
        }
    }
}

/// A cached result packed in one word: 0 and `u64::MAX` are never E.164 digits.
fn pack(result: Result<Phone, PhoneError>) -> u64 {
    match result {
        Ok(phone) => phone.0,
        Err(PhoneError::NotANumber) => 0,
        Err(PhoneError::Invalid) => u64::MAX,
    }
}

fn unpack(packed: u64) -> Result<Phone, PhoneError> {
    match packed {
        0 => Err(PhoneError::NotANumber),
        u64::MAX => Err(PhoneError::Invalid),
        digits => Ok(Phone(digits)),
    }
}

/// [`parse`] for one default region, with a bounded cache by raw value so that a repeated
/// number the fast path cannot handle costs one hash lookup instead of the crate's parse. One per thread: it is `&mut self`, with no locking.
///
/// The cache holds raw values of up to 31 bytes, at most `CACHE_LIMIT` of them; when full it
/// is cleared and refills.
pub struct PhoneNormalizer {
    region: Region,
    cache: HashMap<Key, u64, foldhash::fast::RandomState>,
}

impl PhoneNormalizer {
    /// A normaliser for numbers of `region`, with an empty cache.
    pub fn new(region: Region) -> Self {
        Self {
            region,
            cache: HashMap::default(),
        }
    }

    /// The same answer as [`parse`]`(raw, self.region())`.
    ///
    /// The fast path is not cached: a lookup plus an insert costs about as much, and most raw
    /// values are seen once. Only what the fast path leaves to the crate, a hundred times
    /// slower, is cached by raw value.
    pub fn normalize(&mut self, raw: &str) -> Result<Phone, PhoneError> {
        if let Some(result) = parse_fast(raw, self.region) {
            return result;
        }
        let Some(key) = Key::new(raw) else {
            return parse_with_crate(raw, self.region);
        };
        if let Some(&packed) = self.cache.get(&key) {
            return unpack(packed);
        }
        let result = parse_with_crate(raw, self.region);
        if self.cache.len() >= CACHE_LIMIT {
            self.cache.clear();
        }
        self.cache.insert(key, pack(result));
        result
    }

    /// The default region.
    pub fn region(&self) -> Region {
        self.region
    }
}

impl fmt::Debug for PhoneNormalizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PhoneNormalizer")
            .field("region", &self.region)
            .field("cached", &self.cache.len())
            .finish()
    }
}
