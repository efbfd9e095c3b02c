//! The isolation matrix: every operation of the served OpenAPI document x every kind of
//! caller (none, a bad token, the operator, another hub's admin, an organization of the same
//! brand not connected, a connected one, and the owner's read, write and admin tokens) gets
//! the expected status, and no answer to anyone but the owner carries the owner's values.
//! The operations are read from `/openapi.json`: one without a row here fails the test.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{OPERATOR, Org, Reply, TestApp};
use crate::tasks::{contact, run_tasks};

/// Values only the owner's customers carry.
pub const SECRETS: [&str; 3] = ["owner.secret@a.example", "912000333", "Secret Owner"];

/// Who may call an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    /// Anyone.
    Public,
    /// The operator only.
    Operator,
    /// The operator, or the admin of the organization the path names.
    Manager,
    /// An organization's token with this scope (admin holds every scope).
    Token(Scope),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    Read,
    Write,
    Admin,
}

/// Whose resource the path (or body) names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owner {
    /// Nobody's: the caller's own collection.
    Caller,
    /// The owner organization's (a contact, profile, import, export, webhook, token).
    Organization,
    /// The owner's realm (a preview, an apply task): a connected organization shares it.
    Realm,
    /// A field of the body names the owner's channel: another organization's write is refused
    /// as naming no channel of its own (422), before anything is written.
    Body,
}

/// A kind of caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Caller {
    Nobody,
    BadToken,
    Operator,
    OtherHub,
    SameBrand,
    Connected,
    OwnerRead,
    OwnerWrite,
    OwnerAdmin,
}

const CALLERS: [Caller; 9] = [
    Caller::Nobody,
    Caller::BadToken,
    Caller::Operator,
    Caller::OtherHub,
    Caller::SameBrand,
    Caller::Connected,
    Caller::OwnerRead,
    Caller::OwnerWrite,
    Caller::OwnerAdmin,
];

/// What a caller should get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// Let in: not 401, 403 or 404, and never a 5xx.
    Allowed,
    Status(u16),
}

/// The row of an operation: who may call it, and whose resource it names.
fn row(method: &str, path: &str) -> Option<(Access, Owner)> {
    use Access::*;
    use Owner::*;
    use Scope::{Admin, Read, Write};
    Some(match (method, path) {
        ("GET", "/healthz" | "/readyz") => (Public, Caller),
        ("GET", "/metrics") => (Operator, Caller),
        ("POST", "/v1/organizations") => (Operator, Caller),
        ("POST", "/v1/partner/connections") => (Operator, Caller),
        ("GET" | "POST", "/v1/organizations/{id}/tokens") => (Manager, Organization),
        ("DELETE", "/v1/organizations/{id}/tokens/{token_id}") => (Manager, Organization),
        ("GET" | "POST", "/v1/organizations/{id}/users") => (Manager, Organization),
        ("PATCH" | "DELETE", "/v1/organizations/{id}/users/{user_id}") => (Manager, Organization),
        ("GET", "/v1/channels") => (Token(Read), Caller),
        ("POST", "/v1/channels") => (Token(Admin), Caller),
        ("POST", "/v1/contacts") => (Token(Write), Body),
        ("GET", "/v1/contacts/{id}") => (Token(Read), Organization),
        ("POST", "/v1/contacts/{id}/notes" | "/v1/contacts/{id}/conversations") => {
            (Token(Write), Organization)
        }
        ("GET", "/v1/profiles") => (Token(Read), Caller),
        (
            "GET",
            "/v1/profiles/{id}" | "/v1/profiles/{id}/lineage" | "/v1/profiles/{id}/timeline",
        ) => (Token(Read), Organization),
        ("PATCH", "/v1/profiles/{id}") => (Token(Admin), Organization),
        ("GET", "/v1/events") => (Token(Read), Caller),
        (
            "GET",
            "/v1/hub"
            | "/v1/unification"
            | "/v1/unification/conflicts"
            | "/v1/unification/conflicts/export",
        ) => (Token(Read), Caller),
        ("PUT", "/v1/hub") => (Token(Admin), Caller),
        ("POST", "/v1/unification/previews") => (Token(Admin), Caller),
        ("POST", "/v1/unification/apply") => (Token(Admin), Realm),
        ("GET", "/v1/tasks/{task_id}") => (Token(Read), Realm),
        ("POST", "/v1/imports") => (Token(Write), Caller),
        ("GET", "/v1/imports/{task_id}") => (Token(Read), Organization),
        ("POST", "/v1/exports") => (Token(Read), Caller),
        ("GET", "/v1/exports/{task_id}" | "/v1/exports/{task_id}/download") => {
            (Token(Read), Organization)
        }
        ("GET" | "POST", "/v1/webhooks") => (Token(Admin), Caller),
        ("DELETE", "/v1/webhooks/{webhook_id}") => (Token(Admin), Organization),
        ("GET", "/v1/webhooks/{webhook_id}/deliveries") => (Token(Admin), Organization),
        _ => return None,
    })
}

fn expect(access: Access, owner: Owner, caller: Caller) -> Expect {
    use Caller as C;
    let scope_of = |c: Caller| match c {
        C::OwnerRead => Some(Scope::Read),
        C::OwnerWrite => Some(Scope::Write),
        C::OwnerAdmin | C::OtherHub | C::SameBrand | C::Connected => Some(Scope::Admin),
        _ => None,
    };
    match (access, caller) {
        (Access::Public, _) => Expect::Allowed,
        (_, C::Nobody | C::BadToken) => Expect::Status(401),
        (Access::Operator, C::Operator) => Expect::Allowed,
        (Access::Operator, _) => Expect::Status(403),
        (Access::Manager, C::Operator | C::OwnerAdmin) => Expect::Allowed,
        (Access::Manager, C::OwnerRead | C::OwnerWrite) => Expect::Status(403),
        (Access::Manager, _) => Expect::Status(404),
        (Access::Token(_), C::Operator) => Expect::Status(403),
        (Access::Token(needed), c) => {
            // Scopes do not imply each other; admin holds them all.
            let has = scope_of(c).is_some_and(|s| s == Scope::Admin || s == needed);
            let outsider = matches!(c, C::OtherHub | C::SameBrand | C::Connected);
            let refused = match owner {
                Owner::Caller => None,
                Owner::Organization if outsider => Some(404),
                Owner::Realm if matches!(c, C::OtherHub | C::SameBrand) => Some(404),
                Owner::Body if outsider => Some(422),
                Owner::Organization | Owner::Realm | Owner::Body => None,
            };
            if !has {
                Expect::Status(403)
            } else if let Some(code) = refused {
                Expect::Status(code)
            } else {
                Expect::Allowed
            }
        }
    }
}

/// The owner's world, and the callers around it.
pub struct World {
    pub owner: Org,
    pub owner_read: String,
    pub owner_write: String,
    pub other_hub: Org,
    pub same_brand: Org,
    pub connected: Org,
    pub channel: String,
    pub contact: String,
    pub profile: String,
    pub preview: String,
    pub apply_task: String,
    pub import_task: String,
    pub export_task: String,
    pub webhook: String,
}

pub async fn world(app: &TestApp) -> World {
    let owner = app.org("Owner").await;
    let same_brand = app.org_in_brand("Same brand", &owner).await;
    let connected = app.org_in_brand("Connected", &owner).await;
    let other_hub = app.org("Other hub").await;
    app.post(
        "/v1/partner/connections",
        OPERATOR,
        json!({"organization_ids": [owner.id, connected.id],
               "disclosure_url": "https://brand.example/privacy"}),
    )
    .await
    .expect(201);
    let owner_read = app.token(&owner.id, OPERATOR, &["profiles:read"]).await;
    let owner_write = app.token(&owner.id, OPERATOR, &["profiles:write"]).await;
    let channel = app.channel(&owner.admin, "line", "caac").await;
    for org in [&same_brand, &connected, &other_hub] {
        let theirs = app.channel(&org.admin, "line", "caac").await;
        contact(
            app,
            &org.admin,
            &theirs,
            "u1",
            json!({"display_name": "Someone Else"}),
        )
        .await;
    }
    let upserted = contact(
        app,
        &owner.admin,
        &channel,
        "u1",
        json!({"display_name": SECRETS[2], "display_email": SECRETS[0],
               "display_mobile": "0912000333", "customer_id": "c-owner"}),
    )
    .await;
    contact(
        app,
        &owner.admin,
        &channel,
        "u2",
        json!({"display_email": SECRETS[0]}),
    )
    .await;
    let preview = app
        .post(
            "/v1/unification/previews",
            &owner.admin,
            json!({"keys": ["display_email"], "suspicious_threshold": 1}),
        )
        .await
        .expect(201)
        .str("preview_id");
    let apply_task = app
        .post(
            "/v1/unification/apply",
            &owner.admin,
            json!({"preview_id": preview}),
        )
        .await
        .expect(202)
        .str("task_id");
    let import_task = app
        .post(
            "/v1/imports",
            &owner.admin,
            json!({"import_key": "customer_id", "profiles": [{"customer_id": "c-owner", "gender": "f"}]}),
        )
        .await
        .expect(202)
        .str("task_id");
    run_tasks(app).await;
    let export_task = app
        .post("/v1/exports", &owner.admin, json!({"format": "csv"}))
        .await
        .expect(202)
        .str("task_id");
    run_tasks(app).await;
    let webhook = app
        .post(
            "/v1/webhooks",
            &owner.admin,
            json!({"url": "https://crm.example.com/hook"}),
        )
        .await
        .expect(201)
        .str("id");
    // The profile after the apply: the survivor holds both contacts.
    let profile = app
        .get(
            &format!("/v1/contacts/{}", upserted["id"].as_str().unwrap()),
            &owner.admin,
        )
        .await
        .expect(200)
        .str("profile_id");
    World {
        owner_read,
        owner_write,
        other_hub,
        same_brand,
        connected,
        channel,
        contact: upserted["id"].as_str().unwrap().to_owned(),
        profile,
        preview,
        apply_task,
        import_task,
        export_task,
        webhook,
        owner,
    }
}

impl World {
    fn token(&self, caller: Caller) -> Option<&str> {
        Some(match caller {
            Caller::Nobody => return None,
            Caller::BadToken => "cdh_not-a-token-at-all",
            Caller::Operator => OPERATOR,
            Caller::OtherHub => &self.other_hub.admin,
            Caller::SameBrand => &self.same_brand.admin,
            Caller::Connected => &self.connected.admin,
            Caller::OwnerRead => &self.owner_read,
            Caller::OwnerWrite => &self.owner_write,
            Caller::OwnerAdmin => &self.owner.admin,
        })
    }

    /// The path with the owner's resources in it (a fresh token, user or webhook to change or
    /// delete each time).
    async fn path(&self, app: &TestApp, method: &str, template: &str, n: usize) -> String {
        let mut path = template.replace(
            "/organizations/{id}",
            &format!("/organizations/{}", self.owner.id),
        );
        if path.contains("{token_id}") {
            let fresh = app
                .post(
                    &format!("/v1/organizations/{}/tokens", self.owner.id),
                    OPERATOR,
                    json!({"name": "to revoke", "scopes": ["profiles:read"]}),
                )
                .await
                .expect(201)
                .str("id");
            path = path.replace("{token_id}", &fresh);
        }
        if path.contains("{user_id}") {
            let fresh = app
                .post(
                    &format!("/v1/organizations/{}/users", self.owner.id),
                    OPERATOR,
                    json!({"email": format!("fresh-{n}@a.example"),
                        "password": "a long password", "role": "agent"}),
                )
                .await
                .expect(201)
                .str("id");
            path = path.replace("{user_id}", &fresh);
        }
        let id = if path.starts_with("/v1/contacts/") {
            &self.contact
        } else {
            &self.profile
        };
        let task = if path.starts_with("/v1/imports/") {
            &self.import_task
        } else if path.starts_with("/v1/exports/") {
            &self.export_task
        } else {
            &self.apply_task
        };
        let webhook = if method == "DELETE" {
            app.post(
                "/v1/webhooks",
                &self.owner.admin,
                json!({"url": "https://crm.example.com/to-delete"}),
            )
            .await
            .expect(201)
            .str("id")
        } else {
            self.webhook.clone()
        };
        path.replace("{id}", id)
            .replace("{task_id}", task)
            .replace("{webhook_id}", &webhook)
    }

    /// A valid body for the operation, naming the owner's resources where it names any.
    fn body(&self, method: &str, path: &str, n: usize) -> Option<Value> {
        Some(match (method, path) {
            ("POST", "/v1/organizations") => {
                json!({"name": format!("new {n}"), "default_region": "TW"})
            }
            ("POST", "/v1/partner/connections") => json!({
                "organization_ids": [self.owner.id, self.connected.id],
                "disclosure_url": "https://brand.example/privacy"}),
            ("POST", "/v1/organizations/{id}/tokens") => {
                json!({"name": "t", "scopes": ["profiles:read"]})
            }
            ("POST", "/v1/organizations/{id}/users") => json!({
                "email": format!("user{n}@a.example"), "password": "a long password", "role": "agent"}),
            ("POST", "/v1/channels") => json!({"type": "sms", "product": "caac", "name": "sms",
                "external_account_id": format!("acct-{n}")}),
            ("POST", "/v1/contacts") => {
                json!({"channel_id": self.channel, "external_id": format!("x{n}")})
            }
            ("POST", "/v1/contacts/{id}/notes") => json!({"text": "called", "author": "ann"}),
            ("POST", "/v1/contacts/{id}/conversations") => json!({"direction": "in", "text": "hi",
                "sent_at": "2026-12-01T00:00:00Z"}),
            ("PATCH", "/v1/profiles/{id}") => json!({"fields": {"gender": "f"}}),
            ("PATCH", "/v1/organizations/{id}/users/{user_id}") => {
                json!({"password": "another long password"})
            }
            ("PUT", "/v1/hub") => json!({"cross_product": false}),
            ("POST", "/v1/unification/previews") => {
                json!({"keys": ["display_email"], "suspicious_threshold": 1})
            }
            ("POST", "/v1/unification/apply") => json!({"preview_id": self.preview}),
            ("POST", "/v1/imports") => {
                json!({"import_key": "customer_id", "profiles": [{"customer_id": "c-none"}]})
            }
            ("POST", "/v1/exports") => json!({"format": "jsonl"}),
            ("POST", "/v1/webhooks") => json!({"url": format!("https://crm.example.com/h{n}")}),
            _ => return None,
        })
    }
}

async fn matrix(app: &TestApp) {
    let world = world(app).await;
    let doc = app
        .call(Method::GET, "/openapi.json", None, None)
        .await
        .expect(200)
        .body;
    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                operations.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    assert!(operations.len() >= 38, "{operations:?}");
    let mut n = 0;
    for (method, template) in &operations {
        let (access, owner) = row(method, template)
            .unwrap_or_else(|| panic!("{method} {template} has no row in the isolation matrix"));
        for caller in CALLERS {
            n += 1;
            let path = world.path(app, method, template, n).await;
            let body = world.body(method, template, n);
            let reply = app
                .call(
                    Method::from_bytes(method.as_bytes()).unwrap(),
                    &path,
                    world.token(caller),
                    body,
                )
                .await;
            check(&reply, expect(access, owner, caller), caller, method, &path);
        }
    }
}

fn check(reply: &Reply, expected: Expect, caller: Caller, method: &str, path: &str) {
    let status = reply.status.as_u16();
    let what = format!("{caller:?} {method} {path}: {status} {}", reply.text);
    assert!(status < 500, "{what}");
    match expected {
        Expect::Allowed => assert!(
            ![401, 403, 404].contains(&status),
            "expected to be let in: {what}"
        ),
        Expect::Status(code) => {
            assert_eq!(status, code, "{what}");
            assert!(
                reply.body["error"]["code"].as_str().is_some(),
                "an error with a code: {what}"
            );
        }
    }
    let owner = matches!(
        caller,
        Caller::OwnerRead | Caller::OwnerWrite | Caller::OwnerAdmin | Caller::Operator
    );
    // A connected organization shares the owner's unification (one setting, one scope): its
    // previews and applies show the realm's values. Everything else of the owner's, events
    // included (the owner's profile holds no contact of it), stays out of its answers.
    let shared = caller == Caller::Connected && path.starts_with("/v1/unification");
    if !owner && !shared {
        for secret in SECRETS {
            assert!(!reply.text.contains(secret), "foreign value in {what}");
        }
    }
}
crate::both_driven!(every_route_and_caller_gets_its_expected_answer, matrix);
