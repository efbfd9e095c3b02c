//! Bounded fuzzing of an import's parsers, on stable Rust with proptest: any bytes as CSV and
//! any mutation of a JSON import body never panic, and every refusal is a 4xx with a stable
//! code. `PROPTEST_CASES=100000 cargo test -p cdh-server --lib fuzz` hunts longer.

use proptest::prelude::*;

use super::ImportRequest;
use super::rows::from_csv;
use super::{FramesReader, MAX_ROWS};
use crate::json::parse_json_reader;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(400)
}

/// CSV-ish bytes: the separators, quotes and line ends a parser trips on, mixed with text.
fn csv_like() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b",".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"customer_id".to_vec()),
        Just(b"tags".to_vec()),
        Just(b"custom_fields.".to_vec()),
        Just("\u{202e}".as_bytes().to_vec()),
        Just(vec![0xff, 0xfe]),
        "[a-z0-9 ;@.+]{0,12}".prop_map(String::into_bytes),
    ];
    proptest::collection::vec(piece, 0..60).prop_map(|parts| parts.concat())
}

/// A valid import body with some of its bytes replaced, cut or repeated.
fn json_like() -> impl Strategy<Value = Vec<u8>> {
    let body = br#"{"import_key":"customer_id","on_unmatched":"report","profiles":[{"customer_id":"c1","display_name":"Ann","tags":["a"],"custom_fields":{"tier":"gold"}},{"customer_id":"c2","display_email":null}]}"#;
    (
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        any::<prop::sample::Index>(),
    )
        .prop_map(move |(edits, cut)| {
            let mut bytes = body.to_vec();
            for (at, byte) in edits {
                let i = at.index(bytes.len());
                bytes[i] = byte;
            }
            bytes.truncate(cut.index(bytes.len() + 1).max(bytes.len() / 2));
            bytes
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn any_csv_is_read_or_refused_with_a_4xx(bytes in prop_oneof![csv_like(), any::<Vec<u8>>()]) {
        match from_csv(bytes.as_slice()) {
            Ok(parsed) => {
                for failed in &parsed.rejected {
                    prop_assert!(!failed.code.is_empty());
                }
            }
            Err(e) => prop_assert!(e.code.status().is_client_error(), "{:?}", e),
        }
    }

    #[test]
    fn any_json_import_is_read_or_refused_with_a_4xx(bytes in json_like()) {
        // Read as the server reads a body: in pieces, here of up to 7 bytes.
        let frames = bytes.chunks(7).map(axum::body::Bytes::copy_from_slice).collect();
        match parse_json_reader::<ImportRequest>(FramesReader::new(frames)) {
            Ok(request) => {
                let profiles = request.profiles;
                prop_assert_eq!(profiles.parsed.total(), profiles.given.min(MAX_ROWS));
            }
            Err(e) => prop_assert!(e.code.status().is_client_error(), "{:?}", e),
        }
    }
}
