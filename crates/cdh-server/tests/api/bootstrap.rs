//! Organizations, tokens and the auth and body errors every endpoint shares.

use reqwest::Method;
use serde_json::json;

use crate::support::{OPERATOR, TestApp};
use crate::{both, both_manual};

async fn organizations_and_tokens(app: &TestApp) {
    let org = app.org("brand").await;
    assert!(org.id.contains('-'), "org ids carry their hub: {}", org.id);

    // The organization's admin issues a read token; the list never shows secrets.
    let reader = app.token(&org.id, &org.admin, &["profiles:read"]).await;
    let list = app
        .get(&format!("/v1/organizations/{}/tokens", org.id), &org.admin)
        .await
        .expect(200);
    let items = list.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(items.iter().all(|t| t.get("token").is_none()));
    app.get("/v1/channels", &reader).await.expect(200);

    // Revocation takes effect at once.
    let reader_id = items
        .iter()
        .find(|t| t["scopes"] == json!(["profiles:read"]))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.delete(
        &format!("/v1/organizations/{}/tokens/{reader_id}", org.id),
        &org.admin,
    )
    .await
    .expect(204);
    app.get("/v1/channels", &reader)
        .await
        .expect_error(401, "unauthorized");
    app.delete(
        &format!("/v1/organizations/{}/tokens/999999", org.id),
        OPERATOR,
    )
    .await
    .expect_error(404, "not_found");
}
both!(organizations_and_tokens_work, organizations_and_tokens);

async fn auth_errors(app: &TestApp) {
    let org = app.org("brand").await;
    let other = app.org("other").await;
    app.call(Method::GET, "/v1/channels", None, None)
        .await
        .expect_error(401, "unauthorized");
    app.get("/v1/channels", "cdh_1_1_nope")
        .await
        .expect_error(401, "unauthorized");
    // Organization tokens cannot create organizations; the operator acts in none.
    app.post(
        "/v1/organizations",
        &org.admin,
        json!({"name": "x", "default_region": "TW"}),
    )
    .await
    .expect_error(403, "forbidden");
    app.get("/v1/channels", OPERATOR)
        .await
        .expect_error(403, "forbidden");
    // A read token cannot write.
    let reader = app.token(&org.id, OPERATOR, &["profiles:read"]).await;
    app.post(
        "/v1/channels",
        &reader,
        json!({"type": "line", "product": "caac", "name": "x", "external_account_id": "p"}),
    )
    .await
    .expect_error(403, "forbidden");
    // Another organization's tokens do not exist for this admin.
    app.get(
        &format!("/v1/organizations/{}/tokens", other.id),
        &org.admin,
    )
    .await
    .expect_error(404, "not_found");
    app.get("/v1/organizations/nope/tokens", OPERATOR)
        .await
        .expect_error(404, "not_found");
}
both!(auth_errors_are_401_403_404, auth_errors);

async fn body_errors(app: &TestApp) {
    app.post(
        "/v1/organizations",
        OPERATOR,
        json!({"name": "x", "default_region": "ZZ"}),
    )
    .await
    .expect_error(422, "invalid_field");
    let r = app
        .post(
            "/v1/organizations",
            OPERATOR,
            json!({"name": "x", "default_region": "TW", "regoin": "TW"}),
        )
        .await
        .expect_error(422, "unknown_field");
    assert_eq!(r.body["error"]["details"]["field"], "regoin");
    insta::assert_json_snapshot!("unknown_field_error", r.body);
    let r = app
        .post(
            "/v1/organizations",
            OPERATOR,
            json!({"default_region": "TW"}),
        )
        .await
        .expect_error(422, "missing_field");
    assert_eq!(r.body["error"]["details"]["field"], "name");
    app.call_raw(
        Method::POST,
        "/v1/organizations",
        OPERATOR,
        b"{\"name\": ".to_vec(),
    )
    .await
    .expect_error(400, "invalid_json");
    // One byte over the limit (1 MiB by default). The request is written by hand and the
    // answer read by its length: the server reads every byte sent before it answers, so it
    // never closes with unread bytes (which would reset the connection and lose the answer).
    let (status, body) = send_oversize_body(app, (1 << 20) + 1).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("\"payload_too_large\""), "{body}");
    let org = app.org("brand").await;
    app.post(
        &format!("/v1/organizations/{}/tokens", org.id),
        OPERATOR,
        json!({"name": "t", "scopes": ["profiles:delete"]}),
    )
    .await
    .expect_error(422, "invalid_field");
}
both!(body_errors_are_400_413_422, body_errors);

async fn brand_organizations_connect(app: &TestApp) {
    let first = app.org("brand tw").await;
    let second = app
        .post(
            "/v1/organizations",
            OPERATOR,
            json!({"name": "brand hk", "default_region": "HK", "brand_organization_id": first.id}),
        )
        .await
        .expect(201)
        .str("id");
    let stranger = app.org("stranger").await;
    app.post(
        "/v1/organizations",
        OPERATOR,
        json!({"name": "x", "default_region": "TW", "brand_organization_id": "999-999"}),
    )
    .await
    .expect_error(422, "invalid_field");
    let ids = json!([first.id, second]);
    app.post(
        "/v1/partner/connections",
        OPERATOR,
        json!({"organization_ids": ids, "disclosure_url": "not a url"}),
    )
    .await
    .expect_error(422, "invalid_field");
    app.post(
        "/v1/partner/connections",
        OPERATOR,
        json!({"organization_ids": [first.id, stranger.id], "disclosure_url": "https://brand.example/privacy"}),
    )
    .await
    .expect_error(422, "invalid_field");
    app.post(
        "/v1/partner/connections",
        &first.admin,
        json!({"organization_ids": ids, "disclosure_url": "https://brand.example/privacy"}),
    )
    .await
    .expect_error(403, "forbidden");
    let conn = app
        .post(
            "/v1/partner/connections",
            OPERATOR,
            json!({"organization_ids": ids, "disclosure_url": "https://brand.example/privacy"}),
        )
        .await
        .expect(201);
    assert_eq!(conn.body["disclosure_url"], "https://brand.example/privacy");
    let hub = app.get("/v1/hub", &first.admin).await.expect(200);
    assert_eq!(hub.body["connections"][0]["organization_ids"], ids);
}
both_manual!(
    brand_organizations_connect_with_disclosure,
    brand_organizations_connect
);

/// Sends `POST /v1/organizations` with a body of `len` bytes, and returns the status and body
/// of the answer.
async fn send_oversize_body(app: &TestApp, len: usize) -> (u16, String) {
    send_declared_body(app, "/v1/organizations", OPERATOR, len, true).await
}

/// Sends `POST path` declaring a body of `len` bytes, and sends them when `send` (else only the
/// head, for a server that must answer from the declared length alone); returns the status and
/// body of the answer.
pub(crate) async fn send_declared_body(
    app: &TestApp,
    path: &str,
    token: &str,
    len: usize,
    send: bool,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(app.handle.addr)
        .await
        .expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ncontent-length: {len}\r\nconnection: close\r\n\r\n",
        app.handle.addr
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    if send {
        stream.write_all(&vec![b'x'; len]).await.expect("write");
    }
    // Read the answer by its own length rather than to the end of the stream.
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    let text = loop {
        let n = stream.read(&mut chunk).await.expect("read");
        assert!(n > 0, "connection closed before a full answer");
        answer.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&answer).into_owned();
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            continue;
        };
        let length = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().ok())?
            })
            .expect("a content-length");
        if body.len() >= length {
            break text;
        }
    };
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}
