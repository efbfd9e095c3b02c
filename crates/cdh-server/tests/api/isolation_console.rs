//! The isolation matrix of the console: every route of the console's router x every kind of
//! caller (signed out, the owner's agent and admin, the admin of an organization of the same
//! brand not connected, of a connected one, and of another hub) gets the expected status, and
//! no page shown to another organization carries the owner's values. The paths are read from
//! `console::paths()`, the list the router is built from: a page without a row fails here.

use reqwest::StatusCode;
use serde_json::json;

use crate::console::{Console, Page, user};
use crate::isolation::{SECRETS, World, world};
use crate::support::{OPERATOR, TestApp};

/// Who may open a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    /// Anyone (sign-in, sign-out, assets).
    Public,
    /// Any signed-in user of the organization.
    User,
    /// Its admins.
    Admin,
}

/// Whose resource the path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owner {
    /// The caller's own pages.
    Caller,
    /// The owner organization's (a profile, an export).
    Organization,
    /// The owner's realm (a preview, an apply task): a connected organization shares it.
    Realm,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Caller {
    SignedOut,
    OwnerAgent,
    OwnerAdmin,
    SameBrand,
    Connected,
    OtherHub,
}

const CALLERS: [Caller; 6] = [
    Caller::SignedOut,
    Caller::OwnerAgent,
    Caller::OwnerAdmin,
    Caller::SameBrand,
    Caller::Connected,
    Caller::OtherHub,
];

/// The row of a console path: its methods, who may use it, whose resource it names.
fn row(path: &str) -> Option<(&'static [&'static str], Access, Owner)> {
    use Access::*;
    use Owner::*;
    Some(match path {
        "/" => (&["GET"], Public, Caller),
        "/sign-in" => (&["GET"], Public, Caller),
        "/sign-out" => (&["POST"], Public, Caller),
        "/assets/console.css" | "/assets/htmx.min.js" | "/assets/console.js" => {
            (&["GET"], Public, Caller)
        }
        "/contacts" | "/data" => (&["GET"], User, Caller),
        "/data/exports" => (&["POST"], User, Caller),
        "/data/imports" => (&["POST"], User, Caller),
        "/data/exports/{id}/download" => (&["GET"], User, Organization),
        "/profiles/{id}" => (&["GET"], User, Organization),
        "/profiles/{id}/notes" => (&["POST"], User, Organization),
        "/profiles/{id}/fields" => (&["POST"], Admin, Organization),
        "/settings/unification"
        | "/settings/unification/edit"
        | "/settings/unification/conflicts.csv" => (&["GET"], Admin, Caller),
        "/settings/unification/previews" => (&["POST"], Admin, Caller),
        "/settings/unification/previews/{id}" => (&["GET"], Admin, Realm),
        "/settings/unification/previews/{id}/apply" => (&["POST"], Admin, Realm),
        "/settings/hub" => (&["GET", "POST"], Admin, Caller),
        "/settings/channels" => (&["GET", "POST"], Admin, Caller),
        "/settings/tokens" => (&["GET", "POST"], Admin, Caller),
        "/settings/tokens/{id}/revoke" => (&["POST"], Admin, Organization),
        "/tasks/{id}" | "/tasks/{id}/status" => (&["GET"], User, Realm),
        _ => return None,
    })
}

/// The status a caller should get: `None` means let in (not 403 or 404, never a 5xx).
fn expect(access: Access, owner: Owner, caller: Caller) -> Option<StatusCode> {
    use Caller as C;
    match (access, caller) {
        (Access::Public, _) => None,
        (_, C::SignedOut) => Some(StatusCode::SEE_OTHER),
        (Access::Admin, C::OwnerAgent) => Some(StatusCode::FORBIDDEN),
        (_, C::SameBrand | C::OtherHub) if owner != Owner::Caller => Some(StatusCode::NOT_FOUND),
        (_, C::Connected) if owner == Owner::Organization => Some(StatusCode::NOT_FOUND),
        _ => None,
    }
}

async fn signed_in<'a>(app: &'a TestApp, org: &str, email: &str) -> Console<'a> {
    let mut console = Console::new(app);
    console.sign_in(org, email).await;
    console
}

/// The path with the owner's resources in it (a fresh token to revoke each time).
async fn path(app: &TestApp, world: &World, template: &str) -> String {
    let id = if template.starts_with("/profiles/") {
        world.profile.clone()
    } else if template.starts_with("/settings/unification/previews/") {
        world.preview.clone()
    } else if template.starts_with("/data/exports/") {
        world.export_task.clone()
    } else if template.starts_with("/settings/tokens/") {
        app.post(
            &format!("/v1/organizations/{}/tokens", world.owner.id),
            OPERATOR,
            json!({"name": "to revoke", "scopes": ["profiles:read"]}),
        )
        .await
        .expect(201)
        .str("id")
    } else {
        world.apply_task.clone()
    };
    template.replace("{id}", &id)
}

/// Sends the route's method with a form that would pass its checks.
async fn send(console: &mut Console<'_>, method: &str, template: &str, path: &str) -> Page {
    // A fresh CSRF value for the form (a signed-out browser gets one from the sign-in page).
    console.get("/sign-in").await;
    if method == "GET" {
        return console.get(path).await;
    }
    match template {
        "/data/imports" => {
            console
                .upload(
                    path,
                    &[("import_key", "customer_id")],
                    b"customer_id,display_name\nc-none,Nobody\n",
                )
                .await
        }
        "/profiles/{id}/notes" => console.post(path, &[("body", "called")]).await,
        "/profiles/{id}/fields" => console.post(path, &[("gender", "f")]).await,
        "/settings/unification/previews" => console.post(path, &[("keys", "display_email")]).await,
        "/settings/hub" => console.post(path, &[]).await,
        "/settings/channels" => {
            console
                .post(
                    path,
                    &[("type", "sms"), ("product", "caac"), ("name", "SMS")],
                )
                .await
        }
        "/settings/tokens" => {
            console
                .post(path, &[("name", "t"), ("scopes", "profiles:read")])
                .await
        }
        "/data/exports" => console.post(path, &[("format", "csv")]).await,
        _ => console.post(path, &[]).await,
    }
}

async fn console_matrix(app: &TestApp) {
    let world = world(app).await;
    for (org, email, role) in [
        (&world.owner, "agent@owner.example", "agent"),
        (&world.owner, "admin@owner.example", "admin"),
        (&world.same_brand, "admin@same.example", "admin"),
        (&world.connected, "admin@connected.example", "admin"),
        (&world.other_hub, "admin@other.example", "admin"),
    ] {
        user(app, org, email, role).await;
    }
    let paths = cdh_server::console::paths();
    assert!(paths.len() >= 24, "{paths:?}");
    for template in paths {
        let (methods, access, owner) =
            row(template).unwrap_or_else(|| panic!("{template} has no row in the matrix"));
        for method in methods {
            for caller in CALLERS {
                // Signing out ends the session: each call gets a browser of its own.
                let mut console = match caller {
                    Caller::SignedOut => Console::new(app),
                    Caller::OwnerAgent => {
                        signed_in(app, &world.owner.id, "agent@owner.example").await
                    }
                    Caller::OwnerAdmin => {
                        signed_in(app, &world.owner.id, "admin@owner.example").await
                    }
                    Caller::SameBrand => {
                        signed_in(app, &world.same_brand.id, "admin@same.example").await
                    }
                    Caller::Connected => {
                        signed_in(app, &world.connected.id, "admin@connected.example").await
                    }
                    Caller::OtherHub => {
                        signed_in(app, &world.other_hub.id, "admin@other.example").await
                    }
                };
                let path = path(app, &world, template).await;
                let page = send(&mut console, method, template, &path).await;
                let what = format!("{caller:?} {method} {path}: {}", page.status);
                assert!(!page.status.is_server_error(), "{what} {}", page.html);
                match expect(access, owner, caller) {
                    Some(status) => assert_eq!(page.status, status, "{what} {}", page.html),
                    None => assert!(
                        ![StatusCode::FORBIDDEN, StatusCode::NOT_FOUND].contains(&page.status),
                        "expected to be let in: {what} {}",
                        page.html
                    ),
                }
                if matches!(
                    caller,
                    Caller::SameBrand | Caller::OtherHub | Caller::SignedOut
                ) {
                    for secret in SECRETS {
                        assert!(!page.html.contains(secret), "foreign value in {what}");
                    }
                }
            }
        }
    }
}
crate::both_driven!(
    every_console_route_and_caller_gets_its_expected_answer,
    console_matrix
);
