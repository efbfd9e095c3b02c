//! Bounded fuzzing against the running server: cursors and page sizes made of odd text, and
//! JSON bodies with bytes changed or cut, are answered with 2xx or a 4xx carrying a code,
//! never a 5xx. A fixed seed keeps the suite repeatable; `CDH_FUZZ_CASES=5000` runs longer.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::json;

use crate::both_manual;
use crate::support::{Reply, TestApp};

fn n_cases() -> usize {
    std::env::var("CDH_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(120)
}

/// Text a cursor parser trips on: digits, signs, dots, huge numbers, odd Unicode.
fn odd_text(rng: &mut StdRng) -> String {
    const PIECES: [&str; 14] = [
        "0",
        "9",
        "-",
        ".",
        "+",
        "e",
        "99999999999999999999",
        "\u{202e}",
        "%00",
        " ",
        "é",
        "\u{feff}",
        "1.2",
        "NaN",
    ];
    let n = rng.random_range(0..8);
    (0..n)
        .map(|_| PIECES[rng.random_range(0..PIECES.len())])
        .collect()
}

fn assert_answered(reply: &Reply, what: &str) {
    let status = reply.status.as_u16();
    assert!(status < 500, "{what}: {status} {}", reply.text);
    if status >= 400 {
        assert!(
            reply.body["error"]["code"]
                .as_str()
                .is_some_and(|c| !c.is_empty()),
            "{what}: {}",
            reply.text
        );
    }
}

async fn cursors_and_bodies(app: &TestApp) {
    let org = app.org("brand").await;
    let line = app.channel(&org.admin, "line", "caac").await;
    let profile = app
        .contact(&org.admin, &line, "u1", json!({"display_name": "Ann"}))
        .await
        .expect(200)
        .str("profile_id");
    let mut rng = StdRng::seed_from_u64(24);
    for _ in 0..n_cases() {
        let text = odd_text(&mut rng);
        let q: String = url::form_urlencoded::byte_serialize(text.as_bytes()).collect();
        for path in [
            format!("/v1/events?after={q}"),
            format!("/v1/events?limit={q}"),
            format!("/v1/profiles?cursor={q}"),
            format!("/v1/profiles?limit={q}"),
            format!("/v1/profiles?updated_since={q}"),
            format!("/v1/profiles?display_mobile={q}"),
            format!("/v1/profiles?display_email={q}"),
            format!("/v1/profiles/{profile}/timeline?cursor={q}"),
        ] {
            let reply = app.get(&path, &org.admin).await;
            assert_answered(&reply, &path);
        }
    }
    let patch = format!("/v1/profiles/{profile}");
    let valid = [
        (
            Method::POST,
            "/v1/contacts",
            json!({"channel_id": line, "external_id": "u2", "display_mobile": "0912345678",
                   "tags": ["a"], "custom_fields": {"tier": "gold"}}),
        ),
        (
            Method::POST,
            "/v1/unification/previews",
            json!({"keys": ["display_mobile"], "excluded_values": [{"field": "display_mobile", "value": "0900000000"}]}),
        ),
        (
            Method::PATCH,
            patch.as_str(),
            json!({"fields": {"display_name": "Ann Chen", "gender": null}}),
        ),
    ];
    for _ in 0..n_cases() {
        let (method, path, body) = &valid[rng.random_range(0..valid.len())];
        let mut bytes = body.to_string().into_bytes();
        for _ in 0..rng.random_range(1..4) {
            let at = rng.random_range(0..bytes.len());
            bytes[at] = rng.random();
        }
        let keep = rng.random_range(bytes.len() / 2..=bytes.len());
        bytes.truncate(keep);
        let reply = app.call_raw(method.clone(), path, &org.admin, bytes).await;
        assert_answered(&reply, path);
    }
}
both_manual!(
    odd_cursors_and_broken_bodies_get_4xx_never_5xx,
    cursors_and_bodies
);
