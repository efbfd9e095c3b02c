//! Signing in to the console cannot be turned against the server or its users: failures slow
//! down the client that made them (not the user elsewhere), are tracked only for well-formed
//! accounts, password checks run a few at a time with a busy answer beyond, forms are small,
//! sign-out ends every copy of the session, and cookies are `Secure` behind https.

use reqwest::StatusCode;
use serde_json::json;

use crate::console::{Console, PASSWORD, user};

use crate::support::{Backend, TestApp};

fn form<'a>(org: &'a str, email: &'a str, password: &'a str) -> [(&'a str, &'a str); 3] {
    [
        ("organization", org),
        ("email", email),
        ("password", password),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_slow_down_the_client_without_locking_the_user_out() {
    let clock = cdh_server::Clock::manual(1_800_000_000_000);
    let app = TestApp::start(Backend::Sqlite, |c| c.clock = clock.clone()).await;
    let org = app.org("Brand").await;
    user(&app, &org, "ann@example.com", "admin").await;
    let mut console = Console::new(&app);
    console.get("/sign-in").await;
    for _ in 0..5 {
        let page = console
            .post(
                "/sign-in",
                &form(&org.id, "ann@example.com", "wrong password"),
            )
            .await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{}", page.html);
    }
    // The sixth try from this address waits a second, even with the right password.
    let page = console
        .post("/sign-in", &form(&org.id, "ann@example.com", PASSWORD))
        .await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(page.headers["retry-after"], "1");
    assert!(
        page.html.contains("Try again in 1 second(s)"),
        "{}",
        page.html
    );
    // After the wait it goes through: no fixed lock-out.
    clock.set(1_800_000_000_000 + 1_000);
    let page = console
        .post("/sign-in", &form(&org.id, "ann@example.com", PASSWORD))
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.html);
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_accounts_are_not_tracked_and_forms_are_small() {
    let app = TestApp::sqlite().await;
    let org = app.org("Brand").await;
    let mut console = Console::new(&app);
    console.get("/sign-in").await;
    let long_email = format!("{}@example.com", "a".repeat(3_000));
    for email in [long_email.as_str(), "not an email", "ann@"] {
        let page = console.post("/sign-in", &form(&org.id, email, "x")).await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    }
    let page = console
        .post("/sign-in", &form("no-such-org", "ann@example.com", "x"))
        .await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.handle.state.sign_in_guard.n_tracked(), 0);
    // A sign-in form past 4 KiB is refused before it is read.
    let huge = "a".repeat(8 * 1024);
    let page = console
        .post("/sign-in", &form(&org.id, "ann@example.com", &huge))
        .await;
    assert_eq!(page.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", page.html);
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_checks_beyond_the_slots_get_a_busy_answer() {
    let app = TestApp::sqlite().await;
    let org = app.org("Brand").await;
    user(&app, &org, "ann@example.com", "admin").await;
    let mut console = Console::new(&app);
    console.get("/sign-in").await;
    let taken = app.handle.state.sign_in_guard.take_all_slots().await;
    let page = console
        .post("/sign-in", &form(&org.id, "ann@example.com", PASSWORD))
        .await;
    assert_eq!(
        page.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        page.html
    );
    assert_eq!(page.headers["retry-after"], "1");
    drop(taken);
    let page = console
        .post("/sign-in", &form(&org.id, "ann@example.com", PASSWORD))
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.html);
    app.finish().await;
}

async fn sign_out_everywhere(app: &TestApp) {
    let org = app.org("Brand").await;
    user(app, &org, "ann@example.com", "admin").await;
    let mut first = Console::new(app);
    first.sign_in(&org.id, "ann@example.com").await;
    // A copy of the session cookie, as another browser (or a thief) would hold it.
    let copy = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let cookie_header = first.cookie_header();
    assert!(cookie_header.contains("cdh_session"), "{cookie_header}");
    let opened = copy
        .get(app.url("/contacts"))
        .header("cookie", &cookie_header)
        .send()
        .await
        .unwrap();
    assert_eq!(
        opened.status(),
        StatusCode::OK,
        "the copy works while signed in"
    );
    let page = first.post("/sign-out", &[]).await;
    assert_eq!(page.location, "/sign-in");
    let after = copy
        .get(app.url("/contacts"))
        .header("cookie", &cookie_header)
        .send()
        .await
        .unwrap();
    assert_eq!(
        after.status(),
        StatusCode::SEE_OTHER,
        "sign-out ended the copy"
    );
    // Signing in again opens a new session.
    first.sign_in(&org.id, "ann@example.com").await;
}
crate::both!(
    signing_out_ends_every_copy_of_the_session,
    sign_out_everywhere
);

/// The id of the organization's user with this email.
async fn user_id(app: &TestApp, org: &crate::support::Org, email: &str) -> String {
    let list = app
        .get(&format!("/v1/organizations/{}/users", org.id), &org.admin)
        .await
        .expect(200);
    list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == email)
        .map(|u| u["id"].as_str().unwrap().to_owned())
        .unwrap_or_else(|| panic!("no user {email}: {}", list.body))
}

/// Whether a session cookie still opens a console page.
async fn opens(app: &TestApp, cookie_header: &str) -> bool {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = client
        .get(app.url("/contacts"))
        .header("cookie", cookie_header)
        .send()
        .await
        .unwrap();
    match response.status() {
        StatusCode::OK => true,
        StatusCode::SEE_OTHER => false,
        other => panic!("GET /contacts answered {other}"),
    }
}

/// The password the test changes to.
const NEW_PASSWORD: &str = "a brand new password";

/// A sign-in from a fresh browser with this password; the page it answers.
async fn password_sign_in(
    app: &TestApp,
    org: &str,
    email: &str,
    password: &str,
) -> crate::console::Page {
    let mut console = Console::new(app);
    console.get(&format!("/sign-in?org={org}")).await;
    console
        .post(
            "/sign-in",
            &[
                ("organization", org),
                ("email", email),
                ("password", password),
            ],
        )
        .await
}

async fn password_change_and_removal(app: &TestApp) {
    let org = app.org("Brand").await;
    // Of the same brand, so its users' ids are of the same hub as ours.
    let other = app.org_in_brand("Other", &org).await;
    user(app, &org, "ann@example.com", "admin").await;
    user(app, &org, "bob@example.com", "agent").await;
    user(app, &other, "cid@example.com", "agent").await;
    let (ann, bob) = (
        user_id(app, &org, "ann@example.com").await,
        user_id(app, &org, "bob@example.com").await,
    );
    let cid = user_id(app, &other, "cid@example.com").await;
    let mut ann_console = Console::new(app);
    ann_console.sign_in(&org.id, "ann@example.com").await;
    let mut bob_console = Console::new(app);
    bob_console.sign_in(&org.id, "bob@example.com").await;
    let (ann_cookie, bob_cookie) = (ann_console.cookie_header(), bob_console.cookie_header());
    assert!(opens(app, &ann_cookie).await && opens(app, &bob_cookie).await);
    let users = format!("/v1/organizations/{}/users", org.id);

    // A new password ends every session of the user at once; the new one signs in.
    let changed = app
        .patch(
            &format!("{users}/{ann}"),
            &org.admin,
            json!({"password": NEW_PASSWORD}),
        )
        .await
        .expect(200);
    assert_eq!(changed.body["role"], "admin", "{}", changed.body);
    assert!(changed.body.get("password").is_none(), "{}", changed.body);
    assert!(
        !opens(app, &ann_cookie).await,
        "the password change ended it"
    );
    assert!(
        opens(app, &bob_cookie).await,
        "another user's session goes on"
    );
    let old = password_sign_in(app, &org.id, "ann@example.com", PASSWORD).await;
    assert_ne!(
        old.status,
        StatusCode::SEE_OTHER,
        "the old password is over"
    );
    let new = password_sign_in(app, &org.id, "ann@example.com", NEW_PASSWORD).await;
    assert_eq!(new.status, StatusCode::SEE_OTHER, "{}", new.html);

    // A new role holds at once and ends nothing.
    let promoted = app
        .patch(
            &format!("{users}/{bob}"),
            &org.admin,
            json!({"role": "admin"}),
        )
        .await
        .expect(200);
    assert_eq!(promoted.body["role"], "admin");
    assert!(opens(app, &bob_cookie).await);

    // A removed user's sessions end with them.
    app.delete(&format!("{users}/{bob}"), &org.admin)
        .await
        .expect(204);
    assert!(!opens(app, &bob_cookie).await, "the removal ended it");
    let listed = app.get(&users, &org.admin).await.expect(200);
    assert!(!listed.text.contains("bob@"), "{}", listed.text);
    app.delete(&format!("{users}/{bob}"), &org.admin)
        .await
        .expect(404);

    // Bad changes are refused and change nothing.
    for (body, field) in [
        (json!({}), "password"),
        (json!({"password": "short"}), "password"),
        (json!({"role": "owner"}), ""),
        (
            json!({"password": "a long password", "email": "x@example.com"}),
            "",
        ),
    ] {
        let refused = app
            .patch(&format!("{users}/{ann}"), &org.admin, body.clone())
            .await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            refused.text
        );
        if !field.is_empty() {
            assert_eq!(
                refused.body["error"]["details"]["field"], field,
                "{}",
                refused.text
            );
        }
    }
    // Another organization's user is not found through this organization, nor by its admin.
    app.patch(
        &format!("{users}/{cid}"),
        &org.admin,
        json!({"role": "admin"}),
    )
    .await
    .expect(404);
    app.delete(&format!("{users}/{cid}"), &org.admin)
        .await
        .expect(404);
    app.delete(
        &format!("/v1/organizations/{}/users/{cid}", other.id),
        &org.admin,
    )
    .await
    .expect(404);
    app.delete(&format!("{users}/not-an-id"), &org.admin)
        .await
        .expect(404);
    let theirs = app
        .get(
            &format!("/v1/organizations/{}/users", other.id),
            &other.admin,
        )
        .await
        .expect(200);
    assert_eq!(theirs.body["items"][0]["role"], "agent", "{}", theirs.body);
    // The refused changes left ann's new password in force.
    let page = password_sign_in(app, &org.id, "ann@example.com", NEW_PASSWORD).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.html);
}
crate::both!(
    a_password_change_or_a_removal_ends_the_users_sessions,
    password_change_and_removal
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_are_secure_when_the_public_url_is_https() {
    for (public_url, secure) in [(None, false), (Some("https://hub.example.com"), true)] {
        let app = TestApp::start(Backend::Sqlite, |c| {
            c.public_url = public_url.map(str::to_owned);
        })
        .await;
        let org = app.org("Brand").await;
        user(&app, &org, "ann@example.com", "admin").await;
        // A plain client: a cookie jar would not send a `Secure` cookie back over http.
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let set_cookies = |r: &reqwest::Response| -> Vec<String> {
            r.headers()
                .get_all("set-cookie")
                .iter()
                .map(|v| v.to_str().unwrap().to_owned())
                .collect()
        };
        let page = client.get(app.url("/sign-in")).send().await.unwrap();
        let csrf_cookies = set_cookies(&page);
        let html = page.text().await.unwrap();
        let at = html.find("name=\"csrf\" value=\"").unwrap() + 19;
        let csrf = &html[at..at + html[at..].find('"').unwrap()];
        let cookie = csrf_cookies[0].split(';').next().unwrap().to_owned();
        let body = serde_html_form::to_string([
            ("csrf", csrf),
            ("organization", org.id.as_str()),
            ("email", "ann@example.com"),
            ("password", PASSWORD),
        ])
        .unwrap();
        let signed_in = client
            .post(app.url("/sign-in"))
            .header("cookie", cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
        let session_cookies = set_cookies(&signed_in);
        assert!(!session_cookies.is_empty());
        for cookie in csrf_cookies.iter().chain(&session_cookies) {
            assert_eq!(
                cookie.contains("; Secure"),
                secure,
                "{public_url:?}: {cookie}"
            );
            assert!(cookie.contains("HttpOnly"), "{cookie}");
        }
        app.finish().await;
    }
}
