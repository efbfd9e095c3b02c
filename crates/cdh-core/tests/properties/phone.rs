//! The phone fast path and cache must give exactly the phonenumber crate's answers.
//!
//! Generated numbers in many shapes are parsed three ways (crate, fast path with fallback,
//! cached normaliser) and compared; fixed cases check that the fast path really answers for
//! the common shapes instead of quietly deferring everything to the crate.

use cdh_core::phone::{
    Phone, PhoneError, PhoneNormalizer, Region, parse, parse_fast, parse_with_crate,
};
use proptest::prelude::*;
use proptest::sample::select;

/// The default regions every generated value is tried against.
const REGIONS: [&str; 6] = ["TW", "US", "JP", "GB", "TH", "HK"];

fn region(code: &str) -> Region {
    Region::parse(code).expect("known region")
}

/// 600 cases a property (a few seconds in all), or `PROPTEST_CASES` for a longer hunt.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(600)
}

/// `parse` and `parse_fast` agree with the crate for `raw` in every test region.
fn check_all_regions(raw: &str) -> Result<(), TestCaseError> {
    for code in REGIONS {
        let r = region(code);
        let expected = parse_with_crate(raw, r);
        prop_assert_eq!(parse(raw, r), expected, "parse {:?} in {}", raw, code);
        if let Some(fast) = parse_fast(raw, r) {
            prop_assert_eq!(fast, expected, "parse_fast {:?} in {}", raw, code);
        }
    }
    Ok(())
}

/// `n` random decimal digits.
fn digits(n: impl Into<proptest::sample::SizeRange>) -> impl Strategy<Value = String> {
    proptest::collection::vec(0u8..10, n)
        .prop_map(|ds| ds.into_iter().map(|d| char::from(b'0' + d)).collect())
}

/// A separator to put after a digit: mostly none, sometimes the usual ones.
fn separator() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        6 => Just(""),
        2 => Just(" "),
        2 => Just("-"),
        1 => Just("."),
        1 => Just("/"),
        1 => Just(") "),
        1 => Just("("),
        1 => Just("  "),
    ]
}

/// A separator without spaces: such values go through the crate's RFC 3966 front end first.
fn tight_separator() -> impl Strategy<Value = &'static str> {
    prop_oneof![6 => Just(""), 3 => Just("-"), 1 => Just("."), 1 => Just("("), 1 => Just(")")]
}

/// `number` with random separators between its characters, sometimes never a space.
fn spaced(number: String) -> impl Strategy<Value = String> {
    let n = number.chars().count();
    prop_oneof![
        proptest::collection::vec(separator().boxed(), n),
        proptest::collection::vec(tight_separator().boxed(), n),
    ]
    .prop_map(move |seps| {
        let mut out = String::new();
        for (c, sep) in number.chars().zip(seps) {
            out.push(c);
            out.push_str(sep);
        }
        out.trim_end_matches([' ', '(']).to_owned()
    })
}

/// A national significant number for one of the countries people here mostly have.
fn national_significant() -> impl Strategy<Value = (&'static str, String)> {
    let tw = prop_oneof![
        digits(8).prop_map(|d| format!("9{d}")),
        (2u8..9, digits(7..=8)).prop_map(|(a, d)| format!("{a}{d}")),
        digits(6..=10),
    ];
    prop_oneof![
        4 => tw.prop_map(|n| ("886", n)),
        1 => (2u8..10, digits(2), 2u8..10, digits(6))
            .prop_map(|(a, b, c, d)| ("1", format!("{a}{b}{c}{d}"))),
        1 => (select(vec!["70", "80", "90", "3", "6", "45"]), digits(7..=8))
            .prop_map(|(p, d)| ("81", format!("{p}{d}"))),
        1 => (select(vec!["7", "20", "121", "1632"]), digits(6..=9))
            .prop_map(|(p, d)| ("44", format!("{p}{d}"))),
        1 => (select(vec!["5", "6", "9", "2", "3"]), digits(7)).prop_map(|(p, d)| ("852", format!("{p}{d}"))),
        1 => (select(vec!["8", "9", "6", "2"]), digits(7..=8)).prop_map(|(p, d)| ("66", format!("{p}{d}"))),
        1 => (select(vec!["8", "9", "6"]), digits(7)).prop_map(|(p, d)| ("65", format!("{p}{d}"))),
        1 => (select(vec!["1", "3", "4"]), digits(7..=9)).prop_map(|(p, d)| ("60", format!("{p}{d}"))),
    ]
}

/// A number written the way people write it: national with a trunk 0, bare, `+`code, IDD.
fn written_number() -> impl Strategy<Value = String> {
    (
        national_significant(),
        select(vec![
            "0", "", "+", "+ ", "00", "002", "011", "001", "010", "+0", "1",
        ]),
        any::<bool>(),
        select(vec!["", "", "", " ", "(", " ("]),
    )
        .prop_flat_map(|((code, nsn), form, paren, lead)| {
            let number = match form {
                "0" | "" | "1" => format!("{form}{nsn}"),
                _ if paren => format!("{form}{code}0{nsn}"),
                _ => format!("{form}{code}{nsn}"),
            };
            spaced(number).prop_map(move |s| format!("{lead}{s}"))
        })
}

/// Any digit string of 1 to 17 digits, with or without a `+`, with separators.
fn random_digits() -> impl Strategy<Value = String> {
    (any::<bool>(), digits(1..=17))
        .prop_flat_map(|(plus, d)| spaced(if plus { format!("+{d}") } else { d }))
}

/// A written number with some digits typed as letters (vanity numbers, typos), or a short value
/// with a letter such as `09-12A`.
fn lettered_number() -> impl Strategy<Value = String> {
    let letter = prop_oneof![
        8 => proptest::char::range('a', 'z'),
        8 => proptest::char::range('A', 'Z'),
        1 => select(vec!['x', 'X', 'I', 'n', 't']),
    ];
    let typed = (
        written_number(),
        proptest::collection::vec((any::<proptest::sample::Index>(), letter.clone()), 1..4),
    )
        .prop_map(|(number, swaps)| {
            let mut chars: Vec<char> = number.chars().collect();
            for (at, letter) in swaps {
                let i = at.index(chars.len());
                if chars[i].is_ascii_digit() {
                    chars[i] = letter;
                }
            }
            chars.into_iter().collect::<String>()
        });
    let short = (
        digits(1..=5),
        select(vec!["", "-", " ", "."]),
        digits(0..=3),
        letter,
    )
        .prop_map(|(a, sep, b, l)| format!("{a}{sep}{b}{l}"));
    prop_oneof![3 => typed, 1 => short]
}

/// Whether the fast path promises to answer a value with letters itself.
fn fast_letter_shape(raw: &str) -> bool {
    let lower = raw.to_ascii_lowercase();
    raw.starts_with(|c: char| c.is_ascii_digit())
        && raw.ends_with(|c: char| c.is_ascii_alphanumeric())
        && raw.chars().filter(char::is_ascii_digit).count()
            + raw.chars().filter(char::is_ascii_alphabetic).count()
            <= 24
        && !lower.contains(['x', '+'])
        && !lower.contains("int")
        && !lower.contains("anexo")
}

/// Strings over the characters phone fields really contain, plus some that break the shape.
fn noisy() -> impl Strategy<Value = String> {
    "[0-9+ ()./xX#*,;:a-zA-Z\\-]{0,22}"
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn written_numbers_match_the_crate(raw in written_number()) {
        check_all_regions(&raw)?;
    }

    #[test]
    fn random_digit_strings_match_the_crate(raw in random_digits()) {
        check_all_regions(&raw)?;
    }

    #[test]
    fn noisy_strings_match_the_crate(raw in noisy()) {
        check_all_regions(&raw)?;
    }

    #[test]
    fn lettered_numbers_match_the_crate(raw in lettered_number()) {
        check_all_regions(&raw)?;
    }

    #[test]
    fn lettered_numbers_take_the_fast_path(raw in lettered_number(), r in select(REGIONS.to_vec())) {
        // Only the letter shapes it replays; values of one or two characters stay with the crate.
        let n = raw.chars().filter(char::is_ascii_alphanumeric).count();
        if fast_letter_shape(&raw) && n >= 3 {
            prop_assert!(parse_fast(&raw, region(r)).is_some(), "{:?} fell back in {}", raw, r);
        }
    }

    #[test]
    fn arbitrary_strings_match_the_crate(raw in any::<String>()) {
        check_all_regions(&raw)?;
    }

    #[test]
    fn common_shapes_take_the_fast_path(raw in written_number(), r in select(REGIONS.to_vec())) {
        // Written numbers have at least six digits and only the handled characters.
        prop_assert!(parse_fast(&raw, region(r)).is_some(), "{:?} fell back in {}", raw, r);
    }

    #[test]
    fn the_normaliser_equals_parse_with_repeats(
        raws in proptest::collection::vec(prop_oneof![written_number(), random_digits(), noisy(), lettered_number()], 1..40),
        picks in proptest::collection::vec(any::<proptest::sample::Index>(), 0..80),
        r in select(REGIONS.to_vec()),
    ) {
        let r = region(r);
        let mut normalizer = PhoneNormalizer::new(r);
        prop_assert_eq!(normalizer.region(), r);
        let repeats = picks.iter().map(|i| &raws[i.index(raws.len())]);
        for raw in raws.iter().chain(repeats) {
            prop_assert_eq!(normalizer.normalize(raw), parse(raw, r), "{:?}", raw);
        }
    }
}

/// The crate's own example numbers for every region, in national and international form, with
/// that region and TW as default: reaches metadata the generators above never do (transform
/// rules, several regions per code, non-geographic codes).
#[test]
fn every_regions_examples_match_the_crate() {
    use phonenumber::metadata::DATABASE;
    let tw = region("TW");
    let (mut checked, mut answered, mut expected_answers) = (0, 0, 0);
    for meta in DATABASE.iter() {
        let d = meta.descriptors();
        let examples = [d.fixed_line(), d.mobile(), d.toll_free(), d.voip(), d.uan()]
            .into_iter()
            .flatten()
            .filter_map(|desc| desc.example());
        let home = Region::parse(meta.id()).ok();
        for example in examples {
            let prefix = meta.national_prefix().unwrap_or("");
            let code = meta.country_code();
            let forms = [
                format!("+{code} {example}"),
                format!("+{code}-{example}"),
                format!("{prefix}{example}"),
                format!("{code}{example}"),
                example.to_owned(),
            ];
            // Without the area code: where a transform rule puts it back (NANPA islands, GG).
            let local = (3..=4)
                .filter_map(|cut| example.get(cut..))
                .map(str::to_owned);
            for raw in forms.iter().chain(&local.collect::<Vec<_>>()) {
                for r in home.into_iter().chain([tw]) {
                    let expected = parse_with_crate(raw, r);
                    assert_eq!(parse(raw, r), expected, "{raw:?} in {r:?}");
                    checked += 1;
                    // Under three digits is left to the crate by design.
                    let plain = raw.bytes().filter(u8::is_ascii_digit).count() >= 3;
                    expected_answers += usize::from(plain);
                    answered += usize::from(plain && parse_fast(raw, r).is_some());
                }
            }
        }
    }
    assert!(checked > 2000, "only {checked} examples");
    // Every region's rules compile: the fast path answers all these plain shapes.
    assert_eq!(answered, expected_answers, "the fast path fell back");
}

/// All regions but the six above, with numbers that mostly have no trunk prefix, so that the
/// national-prefix rules (transforms, carrier codes, several regions per code) get exercised.
#[test]
fn other_regions_match_the_crate() {
    use phonenumber::metadata::DATABASE;
    let mut ids: Vec<&str> = DATABASE.iter().map(|m| m.id()).collect();
    ids.sort_unstable();
    ids.dedup();
    let regions: Vec<Region> = ids.iter().filter_map(|id| Region::parse(id).ok()).collect();
    assert!(regions.len() > 200);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: cases() / 30 + 1,
        ..ProptestConfig::default()
    });
    for r in regions {
        let raws = proptest::collection::vec(prop_oneof![random_digits(), written_number()], 30);
        let outcome = runner.run(&raws, |raws| {
            for raw in &raws {
                prop_assert_eq!(
                    parse(raw, r),
                    parse_with_crate(raw, r),
                    "{:?} in {:?}",
                    raw,
                    r
                );
            }
            Ok(())
        });
        if let Err(e) = outcome {
            panic!("{e}");
        }
    }
}

/// The RFC 3966 front end reads a space-free `+` number's code up to the first `-.()`,
/// literally; the natural parser takes the shortest known code. Both must be replayed.
#[test]
fn rfc3966_quirks_are_replayed() {
    let tw = region("TW");
    for raw in [
        "+8869-12345678",
        "+8869 12345678",
        "+886-12",
        "+886-123",
        "+0886-912-345-678",
        "+886/9-12345678",
        "+886(912)345678",
        "+(886)912345678",
        "+886.912.345.678",
        "+886-912/345-678",
        "(+886)912-345-678",
    ] {
        let expected = parse_with_crate(raw, tw);
        assert_eq!(parse_fast(raw, tw), Some(expected), "{raw:?}");
    }
    assert_eq!(parse("+8869-12345678", tw), Err(PhoneError::NotANumber));
    assert_eq!(
        parse("+8869 12345678", tw).map(|p| p.digits()),
        Ok(886_912_345_678)
    );
}

#[test]
fn the_fast_path_handles_the_common_shapes() {
    let cases = [
        ("TW", "0912-345-678", "+886912345678"),
        ("TW", "0912345678", "+886912345678"),
        ("TW", "+886 912 345 678", "+886912345678"),
        ("TW", "+886-912-345-678", "+886912345678"),
        ("TW", "+886912345678", "+886912345678"),
        ("TW", "002-886-912-345-678", "+886912345678"),
        ("TW", "02-2345-6789", "+886223456789"),
        ("TW", "(02) 2345 6789", "+886223456789"),
        ("TW", "+1 (415) 555-0123", "+14155550123"),
        ("TW", "+1 415-555-0123", "+14155550123"),
        ("TW", "+81 90-1234-5678", "+819012345678"),
        ("TW", "+44 20 7946 0958", "+442079460958"),
        ("US", "(415) 555-0123", "+14155550123"),
        ("US", "1 415 555 0123", "+14155550123"),
        ("JP", "090-1234-5678", "+819012345678"),
        ("GB", "020 7946 0958", "+442079460958"),
        ("HK", "9123 4567", "+85291234567"),
        ("TH", "081 234 5678", "+66812345678"),
    ];
    for (r, raw, e164) in cases {
        let r = region(r);
        let fast = parse_fast(raw, r);
        assert_eq!(fast, Some(parse_with_crate(raw, r)), "{raw:?}");
        let phone = fast
            .and_then(Result::ok)
            .unwrap_or_else(|| panic!("{raw:?} not handled"));
        assert_eq!(phone.to_string(), e164, "{raw:?}");
    }
}

#[test]
fn the_fast_path_reads_letters_as_the_crate_does() {
    let tw = region("TW");
    let us = region("US");
    let cases = [
        // Short values with a letter: invalid, or not a number with under three digits first.
        (tw, "09-12A", Some(Err(PhoneError::Invalid))),
        (tw, "0912Z", Some(Err(PhoneError::Invalid))),
        (tw, "09A", Some(Err(PhoneError::NotANumber))),
        (tw, "09-A123", Some(Err(PhoneError::NotANumber))),
        // A vanity number is its keypad digits, in either case.
        (us, "1-800-FLOWERS", Some(Ok(18_003_569_377))),
        (us, "1-800-flowers", Some(Ok(18_003_569_377))),
        (tw, "0912-345-6Q8", Some(Ok(886_912_345_678))),
        // Shapes left to the crate: a plus, an extension, text in front or behind.
        (tw, "+886 912 345 67B", None),
        (us, "415 555 0123 x12", None),
        (us, "415 555 0123 int 2", None),
        (tw, "tel 0912345678", None),
        (tw, "0912-345-67B (", None),
    ];
    for (r, raw, expected) in cases {
        let fast = parse_fast(raw, r);
        assert_eq!(
            fast.map(|f| f.map(|p| p.digits())),
            expected,
            "{raw:?} in {}",
            r.code()
        );
        assert_eq!(parse(raw, r), parse_with_crate(raw, r), "{raw:?}");
    }
}

#[test]
fn tw_national_and_international_forms_agree() {
    let tw = region("TW");
    let national = parse("0912-345-678", tw);
    assert_eq!(national, parse("+886 912 345 678", tw));
    assert_eq!(national, parse("+886-912-345-678", tw));
    assert_eq!(national.map(|p| p.digits()), Ok(886_912_345_678));
    assert_eq!(parse("02-2345-6789", tw), parse("+886 2 2345 6789", tw));
}

#[test]
fn too_short_numbers_are_rejected() {
    let tw = region("TW");
    for raw in ["0912", "0912-345", "123", "+886 912", "+886 91"] {
        let got = parse(raw, tw);
        assert!(got.is_err(), "{raw:?} gave {got:?}");
        assert_eq!(got, parse_with_crate(raw, tw), "{raw:?}");
    }
    assert_eq!(parse("0912-345", tw), Err(PhoneError::Invalid));
}

#[test]
fn letters_empty_and_blank_are_not_numbers() {
    let tw = region("TW");
    for raw in [
        "", " ", "   ", "\t", "abc", "phone", "-", "()", "+", "N/A", "12AB",
    ] {
        assert_eq!(parse(raw, tw), Err(PhoneError::NotANumber), "{raw:?}");
        assert_eq!(
            parse_with_crate(raw, tw),
            Err(PhoneError::NotANumber),
            "{raw:?}"
        );
        assert_eq!(
            PhoneNormalizer::new(tw).normalize(raw),
            Err(PhoneError::NotANumber)
        );
    }
}

#[test]
fn regions_and_phones_round_trip() {
    assert_eq!(region("tw"), region("TW"));
    assert_eq!(region("TW").code(), "TW");
    assert_eq!(format!("{:?}", region("JP")), "Region(\"JP\")");
    assert!(Region::parse("XX").is_err());
    assert!(Region::parse("001").is_err());
    assert!(Region::parse("").is_err());
    let phone = Phone::from_e164_digits(886_912_345_678).expect("15 digits or fewer");
    assert_eq!(phone.to_string(), "+886912345678");
    assert_eq!(Phone::from_e164_digits(0), None);
    assert_eq!(Phone::from_e164_digits(1_000_000_000_000_000), None);
}
