//! The console over plain HTTP (no browser): sign-in and sign-out, CSRF refusals, agents kept
//! out of settings, one organization never seeing another's contacts, the security headers,
//! and the unification, import, export and token pages end to end.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{OPERATOR, Org, TestApp};

pub const PASSWORD: &str = "correct horse battery";

/// A browser without JavaScript: a cookie jar, redirects left to the test, and the CSRF
/// value of the last page it read.
pub struct Console<'a> {
    app: &'a TestApp,
    client: reqwest::Client,
    jar: std::sync::Arc<reqwest::cookie::Jar>,
    csrf: String,
}

/// A page: its status, `Location` (for redirects) and HTML.
#[derive(Debug)]
pub struct Page {
    pub status: StatusCode,
    pub location: String,
    pub html: String,
    pub headers: reqwest::header::HeaderMap,
}

impl<'a> Console<'a> {
    pub fn new(app: &'a TestApp) -> Self {
        let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
        let client = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self {
            app,
            client,
            jar,
            csrf: String::new(),
        }
    }

    /// The `Cookie` header this browser sends (to copy its session elsewhere).
    pub fn cookie_header(&self) -> String {
        use reqwest::cookie::CookieStore;
        let url = reqwest::Url::parse(&self.app.url("/")).unwrap();
        self.jar
            .cookies(&url)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }

    async fn read(&mut self, response: reqwest::Response) -> Page {
        let status = response.status();
        let headers = response.headers().clone();
        let location = headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let html = response.text().await.unwrap();
        if let Some(at) = html.find("name=\"csrf\" value=\"") {
            let rest = &html[at + 19..];
            self.csrf = rest[..rest.find('"').unwrap()].to_owned();
        }
        Page {
            status,
            location,
            html,
            headers,
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let response = self.client.get(self.app.url(path)).send().await.unwrap();
        self.read(response).await
    }

    /// Posts a form with the CSRF value of the last page read.
    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let mut form: Vec<(&str, &str)> = vec![("csrf", &self.csrf)];
        form.extend_from_slice(fields);
        let body = serde_html_form::to_string(&form).unwrap();
        self.post_raw(path, body).await
    }

    /// Posts a URL-encoded body as it is (no CSRF value added).
    pub async fn post_raw(&mut self, path: &str, body: String) -> Page {
        let response = self
            .client
            .post(self.app.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        self.read(response).await
    }

    /// Posts a multipart form with a file.
    pub async fn upload(&mut self, path: &str, fields: &[(&str, &str)], file: &[u8]) -> Page {
        let mut form = reqwest::multipart::Form::new().text("csrf", self.csrf.clone());
        for (k, v) in fields {
            form = form.text((*k).to_owned(), (*v).to_owned());
        }
        let part = reqwest::multipart::Part::bytes(file.to_vec()).file_name("contacts.csv");
        form = form.part("file", part);
        let response = self
            .client
            .post(self.app.url(path))
            .multipart(form)
            .send()
            .await
            .unwrap();
        self.read(response).await
    }

    /// Signs in; panics unless it lands on the contacts.
    pub async fn sign_in(&mut self, org: &str, email: &str) {
        self.get(&format!("/sign-in?org={org}")).await;
        let page = self
            .post(
                "/sign-in",
                &[
                    ("organization", org),
                    ("email", email),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.html);
        assert_eq!(page.location, "/contacts");
        self.get("/contacts").await;
    }
}

/// Creates a console user through the operator API.
pub async fn user(app: &TestApp, org: &Org, email: &str, role: &str) {
    app.post(
        &format!("/v1/organizations/{}/users", org.id),
        OPERATOR,
        json!({"email": email, "password": PASSWORD, "role": role}),
    )
    .await
    .expect(201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_and_sign_out() {
    let app = TestApp::sqlite().await;
    let org = app.org("Brand").await;
    user(&app, &org, "ann@example.com", "admin").await;
    let mut console = Console::new(&app);

    let page = console.get("/contacts").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location, "/sign-in");
    let page = console.get(&format!("/sign-in?org={}", org.id)).await;
    assert!(
        page.html.contains(&format!("value=\"{}\"", org.id)),
        "prefilled"
    );
    let page = console
        .post(
            "/sign-in",
            &[
                ("organization", &org.id),
                ("email", "ann@example.com"),
                ("password", "not the password"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    assert!(page.html.contains("do not match"), "{}", page.html);

    console.sign_in(&org.id, "ANN@example.com").await;
    let page = console.get("/contacts").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.html.contains("ann@example.com"));
    assert!(
        page.html.contains("No contacts yet"),
        "an empty state in words"
    );

    let page = console.post("/sign-out", &[]).await;
    assert_eq!(page.location, "/sign-in");
    assert_eq!(console.get("/contacts").await.status, StatusCode::SEE_OTHER);
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_without_the_csrf_value_are_refused_and_change_nothing() {
    let app = TestApp::sqlite().await;
    let org = app.org("Brand").await;
    user(&app, &org, "ann@example.com", "admin").await;
    let line = app.channel(&org.admin, "line", "caac").await;
    let contact = app
        .contact(&org.admin, &line, "u1", json!({"display_name": "Amy"}))
        .await
        .expect(200);
    let profile = contact.str("profile_id");
    let mut console = Console::new(&app);
    console.sign_in(&org.id, "ann@example.com").await;

    let page = console
        .post_raw(&format!("/profiles/{profile}/notes"), "body=forged".into())
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.html.contains("expired"), "{}", page.html);
    let page = console
        .post_raw("/settings/hub", "csrf=wrong&cross_product=on".into())
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);

    let timeline = app
        .get(&format!("/v1/profiles/{profile}/timeline"), &org.admin)
        .await
        .expect(200);
    assert_eq!(
        timeline.body["items"],
        json!([]),
        "the forged note was not added"
    );
    let hub = app.get("/v1/hub", &org.admin).await.expect(200);
    assert_eq!(hub.body["cross_product"], false);

    // With the value, the same note lands.
    console.get(&format!("/profiles/{profile}")).await;
    let page = console
        .post(
            &format!("/profiles/{profile}/notes"),
            &[("body", "called back")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let page = console.get(&format!("/profiles/{profile}")).await;
    assert!(page.html.contains("called back"));
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_cannot_open_or_change_settings() {
    let app = TestApp::sqlite().await;
    let org = app.org("Brand").await;
    user(&app, &org, "agent@example.com", "agent").await;
    let mut console = Console::new(&app);
    console.sign_in(&org.id, "agent@example.com").await;
    let contacts = console.get("/contacts").await;
    assert!(
        !contacts.html.contains("nav-unification"),
        "no settings menu"
    );
    for path in ["/settings/unification", "/settings/hub", "/settings/tokens"] {
        let page = console.get(path).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{path}");
        assert!(page.html.contains("Admins only"), "{path}");
    }
    console.get("/contacts").await;
    let page = console
        .post("/settings/hub", &[("cross_product", "on")])
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    let page = console
        .post(
            "/settings/unification/previews",
            &[("keys", "display_mobile")],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    let hub = app.get("/v1/hub", &org.admin).await.expect(200);
    assert_eq!(hub.body["cross_product"], false);
    // Agents still work with contacts.
    assert_eq!(console.get("/data").await.status, StatusCode::OK);
    app.finish().await;
}

async fn organizations_are_isolated(app: &TestApp) {
    let a = app.org("Brand A").await;
    let b = app.org("Brand B").await;
    user(app, &a, "ann@a.example", "admin").await;
    let b_line = app.channel(&b.admin, "line", "caac").await;
    let theirs = app
        .contact(
            &b.admin,
            &b_line,
            "u1",
            json!({"display_name": "Bob", "display_mobile": "0912345678"}),
        )
        .await
        .expect(200);
    let their_profile = theirs.str("profile_id");
    let mut console = Console::new(app);
    console.sign_in(&a.id, "ann@a.example").await;
    let page = console.get(&format!("/profiles/{their_profile}")).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(!page.html.contains("Bob"));
    let page = console.get("/contacts?q=0912-345-678").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.html.contains("Bob") && page.html.contains("No profile has that value"));
    let page = console.get("/contacts").await;
    assert!(!page.html.contains("Bob"));
    // B's admin cannot sign in to A with B's password either: users belong to one organization.
    user(app, &b, "bea@b.example", "admin").await;
    let mut other = Console::new(app);
    other.get("/sign-in").await;
    let page = other
        .post(
            "/sign-in",
            &[
                ("organization", &a.id),
                ("email", "bea@b.example"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
}
crate::both!(
    one_organization_never_sees_another_s_contacts,
    organizations_are_isolated
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_carry_a_content_security_policy_and_escape_what_they_show() {
    let app = TestApp::sqlite().await;
    let org = app.org("Brand").await;
    user(&app, &org, "ann@example.com", "admin").await;
    let line = app.channel(&org.admin, "line", "caac").await;
    let contact = app
        .contact(
            &org.admin,
            &line,
            "u1",
            json!({"display_name": "<script>alert(1)</script>"}),
        )
        .await
        .expect(200);
    let profile = contact.str("profile_id");
    let mut console = Console::new(&app);
    console.sign_in(&org.id, "ann@example.com").await;
    let page = console.get(&format!("/profiles/{profile}")).await;
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert!(!page.html.contains("<script>alert(1)"));
    let at = page.html.find("alert(1)").expect("the name is shown");
    assert!(
        page.html[at.saturating_sub(20)..at].contains("&lt;script&gt;")
            || page.html[at.saturating_sub(20)..at].contains("&#60;script&#62;"),
        "escaped, not dropped: {}",
        &page.html[at.saturating_sub(40)..at + 20]
    );
    let css = console.get("/assets/console.css").await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(
        css.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    app.finish().await;
}

/// Two LINE contacts and a Messenger one sharing a phone; a store phone shared by 21 more.
async fn seed_for_unification(app: &TestApp, org: &Org) -> (String, String) {
    let line = app.channel(&org.admin, "line", "caac").await;
    let messenger = app.channel(&org.admin, "messenger", "caac").await;
    let first = app
        .contact(
            &org.admin,
            &line,
            "u1",
            json!({"display_name": "Amy", "display_mobile": "0912-345-678"}),
        )
        .await
        .expect(200)
        .str("profile_id");
    app.contact(
        &org.admin,
        &messenger,
        "m1",
        json!({"display_mobile": "+886 912 345 678", "display_email": "amy@example.com"}),
    )
    .await
    .expect(200);
    for n in 0..21 {
        app.contact(
            &org.admin,
            &messenger,
            &format!("shop{n}"),
            json!({"display_mobile": "02-2345-6789"}),
        )
        .await
        .expect(200);
    }
    (first, line)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unify_keys_are_previewed_then_confirmed_from_the_console() {
    let app = TestApp::start(crate::support::Backend::Sqlite, |c| c.run_worker = false).await;
    let org = app.org("Brand").await;
    user(&app, &org, "ann@example.com", "admin").await;
    let (amy, line) = seed_for_unification(&app, &org).await;
    let mut console = Console::new(&app);
    console.sign_in(&org.id, "ann@example.com").await;

    let page = console.get("/settings/unification").await;
    assert!(page.html.contains("No unify keys yet"));
    console.get("/settings/unification/edit").await;
    let four = [
        ("keys", "line_uid"),
        ("keys", "display_mobile"),
        ("keys", "display_email"),
        ("keys", "customer_id"),
    ];
    let page = console.post("/settings/unification/previews", &four).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.html.contains("at most 3"), "{}", page.html);

    let keys = [("keys", "display_mobile"), ("keys", "display_email")];
    let page = console.post("/settings/unification/previews", &keys).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.html);
    let preview = console.get(&page.location).await;
    assert!(preview.html.contains("Merges cannot be undone"));
    assert!(
        preview.html.contains("+886223456789"),
        "the store phone is suspicious"
    );
    assert!(
        preview.html.contains("id=\"profiles-before\">23<"),
        "{}",
        preview.html
    );
    assert!(preview.html.contains("id=\"profiles-after\">2<"));

    // Exclude the store phone and preview again.
    let mut with_exclusion = keys.to_vec();
    with_exclusion.push(("exclude", "display_mobile:+886223456789"));
    let page = console
        .post("/settings/unification/previews", &with_exclusion)
        .await;
    let preview_path = page.location.clone();
    let preview = console.get(&preview_path).await;
    assert!(
        preview.html.contains("id=\"profiles-after\">22<"),
        "{}",
        preview.html
    );
    assert!(
        preview
            .html
            .contains("value=\"display_mobile:+886223456789\" checked")
    );

    // The data changes before the confirm: the preview is stale and says so.
    app.contact(&org.admin, &line, "u2", json!({"display_name": "Late"}))
        .await
        .expect(200);
    let page = console.post(&format!("{preview_path}/apply"), &[]).await;
    assert!(page.location.ends_with("?stale=1"), "{}", page.location);
    let stale = console.get(&page.location).await;
    assert!(stale.html.contains("Contacts changed since this preview"));
    assert!(
        !stale.html.contains("id=\"confirm\""),
        "no confirm on a stale preview"
    );

    // A fresh preview, confirmed: the task page follows it to the end.
    let page = console
        .post("/settings/unification/previews", &with_exclusion)
        .await;
    console.get(&page.location).await;
    let page = console.post(&format!("{}/apply", page.location), &[]).await;
    assert!(page.location.starts_with("/tasks/"), "{}", page.location);
    let task_path = page.location.clone();
    let task = console.get(&task_path).await;
    assert!(
        task.html.contains("hx-get"),
        "a running task refreshes itself"
    );
    let state = &app.handle.state;
    state.worker.run_until_idle(state).await.unwrap();
    let task = console.get(&task_path).await;
    assert!(
        task.html.contains("data-status=\"succeeded\""),
        "{}",
        task.html
    );
    assert!(
        task.html.contains("23 profiles became 22") || task.html.contains("24 profiles became 23")
    );
    assert!(
        !task.html.contains("hx-get"),
        "a finished task stops refreshing"
    );

    // The merged profile: key symbols, both channels, and the chain that tied them.
    let profile = console.get(&format!("/profiles/{amy}")).await;
    assert!(
        profile
            .html
            .contains("data-field=\"display_mobile\" data-key=\"true\"")
    );
    assert!(profile.html.contains("class=\"key-symbol\""));
    assert!(profile.html.contains("data-type=\"messenger\""));
    assert!(
        profile.html.contains("phone +886912345678"),
        "{}",
        profile.html
    );
    let settings = console.get("/settings/unification").await;
    assert!(settings.html.contains("data-key=\"display_email\""));
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_imports_exports_and_tokens_work_from_the_console() {
    let app = TestApp::start(crate::support::Backend::Sqlite, |c| c.run_worker = false).await;
    let org = app.org("Brand").await;
    user(&app, &org, "ann@example.com", "admin").await;
    let line = app.channel(&org.admin, "line", "caac").await;
    app.contact(&org.admin, &line, "u1", json!({"customer_id": "C1"}))
        .await
        .expect(200);
    let mut console = Console::new(&app);
    console.sign_in(&org.id, "ann@example.com").await;
    let state = &app.handle.state;

    console.get("/data").await;
    let page = console
        .upload(
            "/data/imports",
            &[("import_key", "customer_id")],
            b"not,a\n\"broken",
        )
        .await;
    assert_eq!(
        page.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        page.html
    );
    assert!(page.html.contains("The import was not started"));
    let csv = b"customer_id,display_name,display_email\nC1,Cathy,cathy@example.com\nC2,Nobody,nobody@example.com\n,No key,x@example.com\n";
    let page = console
        .upload("/data/imports", &[("import_key", "customer_id")], csv)
        .await;
    assert!(page.location.starts_with("/tasks/"), "{}", page.html);
    state.worker.run_until_idle(state).await.unwrap();
    let task = console.get(&page.location).await;
    assert!(
        task.html.contains("data-status=\"succeeded\""),
        "{}",
        task.html
    );
    assert!(
        task.html
            .contains("3 rows: 1 matched, 0 created, 1 matched nothing, 1 failed"),
        "{}",
        task.html
    );
    assert!(
        task.html.contains("id=\"failed-rows\""),
        "the failed row is listed with its reason"
    );

    console.get("/data").await;
    let page = console.post("/data/exports", &[("format", "csv")]).await;
    assert!(page.location.starts_with("/tasks/"), "{}", page.html);
    state.worker.run_until_idle(state).await.unwrap();
    let task = console.get(&page.location).await;
    let id = page.location.trim_start_matches("/tasks/");
    assert!(task.html.contains(&format!("/data/exports/{id}/download")));
    let file = console.get(&format!("/data/exports/{id}/download")).await;
    assert_eq!(file.status, StatusCode::OK);
    assert!(file.html.contains("Cathy"), "{}", file.html);

    console.get("/settings/tokens").await;
    let page = console
        .post(
            "/settings/tokens",
            &[("name", "CRM sync"), ("scopes", "profiles:read")],
        )
        .await;
    assert_eq!(page.status, StatusCode::CREATED);
    let at = page.html.find("id=\"new-token-secret\">").unwrap() + 22;
    let secret = page.html[at..at + page.html[at..].find('<').unwrap()].to_owned();
    app.get("/v1/profiles", &secret).await.expect(200);
    let list = console.get("/settings/tokens").await;
    assert!(!list.html.contains(&secret), "a secret is shown once");
    let token_id = {
        let at = list.html.find("data-token=\"").unwrap() + 12;
        list.html[at..at + list.html[at..].find('"').unwrap()].to_owned()
    };
    let page = console
        .post(&format!("/settings/tokens/{token_id}/revoke"), &[])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    app.get("/v1/profiles", &secret)
        .await
        .expect_error(401, "unauthorized");
    let page = console.post("/settings/tokens", &[("name", " ")]).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.html.contains("The token was not created"));
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_page_is_a_page_for_browsers_and_json_for_clients() {
    let app = TestApp::sqlite().await;
    let client = reqwest::Client::new();
    let page = client
        .get(app.url("/no-such-page"))
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::NOT_FOUND);
    assert!(page.text().await.unwrap().contains("There is nothing here"));
    let api = client
        .get(app.url("/v1/no-such-route"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::NOT_FOUND);
    let body: serde_json::Value = api.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    app.finish().await;
}

async fn contacts_are_found_by_name(app: &TestApp) {
    let a = app.org("Brand A").await;
    // Another organization of the same hub: the store's organization filter keeps it out.
    let b = app.org_in_brand("Brand B", &a).await;
    user(app, &a, "ann@a.example", "agent").await;
    let a_line = app.channel(&a.admin, "line", "caac").await;
    let b_line = app.channel(&b.admin, "line", "caac").await;
    let amy = app
        .contact(&a.admin, &a_line, "u1", json!({"display_name": "Amy Chen"}))
        .await
        .expect(200);
    app.contact(&a.admin, &a_line, "u2", json!({"display_name": "Bob Amy"}))
        .await
        .expect(200);
    app.contact(&b.admin, &b_line, "u1", json!({"display_name": "Amy Lin"}))
        .await
        .expect(200);
    let mut console = Console::new(app);
    console.sign_in(&a.id, "ann@a.example").await;
    let page = console.get("/contacts").await;
    assert!(
        page.html
            .contains("Search by name, phone, email, LINE uid, customer id or connect id")
    );
    let page = console.get("/contacts?q=amy").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.html.contains("Amy Chen"), "{}", page.html);
    assert!(
        page.html
            .contains(&format!("data-profile=\"{}\"", amy.str("profile_id"))),
        "{}",
        page.html
    );
    assert!(!page.html.contains("Amy Lin"), "{}", page.html);
    assert!(!page.html.contains("Bob Amy"), "{}", page.html);
    assert!(
        page.html.contains("1 profile(s) found") && page.html.contains("connect id, name."),
        "{}",
        page.html
    );
    // A phone-shaped text is not read as a name.
    let page = console.get("/contacts?q=0912-345-678").await;
    assert!(!page.html.contains(", name."), "{}", page.html);
}
crate::both!(
    contacts_are_found_by_name_in_the_console,
    contacts_are_found_by_name
);
