//! Console sessions and CSRF: who is signed in (a signed cookie naming the user, checked
//! against the store on every request) and the per-browser token every form must echo.
//!
//! The session cookie holds `hub.user.expiry`, signed with the console key (kept in the data
//! directory so sessions survive a restart). The user is read back on each request, so a
//! removed user or a changed role takes effect at once. CSRF is a signed double-submit
//! cookie: forms carry the cookie's value in a hidden `csrf` field and a POST whose field
//! differs is refused before anything changes.

use std::path::Path;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum_extra::extract::SignedCookieJar;
use axum_extra::extract::cookie::{Cookie, Key, SameSite};
use cdh_store::model::{ConsoleUser, HubId, Role, TokenId, UserId};
use rand::RngCore;

use crate::auth::OrgCaller;
use crate::console::page::PageError;
use crate::state::AppState;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "cdh_session";
/// The CSRF cookie's name (the forms' hidden field is `csrf`).
pub const CSRF_COOKIE: &str = "cdh_csrf";
/// How long a sign-in lasts.
pub const SESSION_HOURS: i64 = 12;
/// The file in the data directory that keeps the key sessions are signed with.
pub const KEY_FILE: &str = "console_session.key";

/// The signed-in user of a console request.
#[derive(Clone, Debug)]
pub struct Viewer {
    /// The user's hub.
    pub hub: HubId,
    /// The user.
    pub user: ConsoleUser,
    /// The organization's display name.
    pub org_name: String,
    /// The value forms must echo.
    pub csrf: String,
}

impl Viewer {
    /// Whether the user may change settings.
    pub fn is_admin(&self) -> bool {
        self.user.role == Role::Admin
    }

    /// The user as an API caller: admins hold every scope, agents read and write contacts.
    pub fn caller(&self) -> OrgCaller {
        let scopes: &[&str] = match self.user.role {
            Role::Admin => &["admin"],
            Role::Agent => &["profiles:read", "profiles:write"],
        };
        OrgCaller {
            hub: self.hub,
            org: self.user.organization_id,
            token_id: TokenId(0),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// Who to record as the actor of a change.
    pub fn actor(&self) -> String {
        let org = crate::wire::OrgRef {
            hub: self.hub,
            org: self.user.organization_id,
        };
        format!("user:{} of {org}", self.user.email)
    }

    /// Passes admins; agents get `403` with a page that says why.
    pub fn admin(&self) -> Result<(), PageError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(PageError::AdminOnly)
        }
    }
}

impl FromRef<AppState> for Key {
    fn from_ref(state: &AppState) -> Self {
        state.console_key.clone()
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        let jar = SignedCookieJar::<Key>::from_request_parts(parts, state)
            .await
            .map_err(|_| PageError::SignIn)?;
        let session = jar
            .get(SESSION_COOKIE)
            .and_then(|c| parse_session(c.value()))
            .ok_or(PageError::SignIn)?;
        if session.expires <= state.now() {
            return Err(PageError::SignIn);
        }
        let user = match state.store.get_user(session.hub, session.user).await {
            Ok(user) => user,
            Err(cdh_store::StoreError::NotFound(_)) => return Err(PageError::SignIn),
            Err(e) => return Err(PageError::from(crate::ApiError::from(e))),
        };
        // Signing out moved the user's epoch on: a cookie of an earlier one is over, even
        // if a copy of it survived in another browser.
        if user.session_epoch != session.epoch {
            return Err(PageError::SignIn);
        }
        let hub = session.hub;
        let org = state
            .store
            .get_organization(hub, user.organization_id)
            .await
            .map_err(|e| PageError::from(crate::ApiError::from(e)))?;
        let csrf = jar
            .get(CSRF_COOKIE)
            .map(|c| c.value().to_owned())
            .unwrap_or_default();
        Ok(Self {
            hub,
            user,
            org_name: org.name,
            csrf,
        })
    }
}

/// The cookie that signs `user` in until `now` + [`SESSION_HOURS`], or until they sign out
/// (which moves their session epoch on).
pub fn session_cookie(hub: HubId, user: &ConsoleUser, now: i64, secure: bool) -> Cookie<'static> {
    let expires = now + SESSION_HOURS * 3_600_000;
    let value = format!("{hub}.{}.{expires}.{}", user.id, user.session_epoch);
    let mut cookie = Cookie::new(SESSION_COOKIE, value);
    cookie.set_secure(secure);
    cookie.set_http_only(true);
    cookie.set_same_site(SameSite::Lax);
    cookie.set_path("/");
    cookie.set_max_age(time::Duration::hours(SESSION_HOURS));
    cookie
}

/// The cookie that ends a session.
pub fn removal(name: &'static str) -> Cookie<'static> {
    let mut cookie = Cookie::from(name);
    cookie.set_path("/");
    cookie
}

/// What a session cookie says (its signature already checked).
#[derive(Debug, PartialEq, Eq)]
struct Session {
    hub: HubId,
    user: UserId,
    expires: i64,
    epoch: i64,
}

fn parse_session(value: &str) -> Option<Session> {
    let mut parts = value.split('.');
    let session = Session {
        hub: parts.next()?.parse().ok()?,
        user: parts.next()?.parse().ok()?,
        expires: parts.next()?.parse().ok()?,
        epoch: parts.next()?.parse().ok()?,
    };
    parts.next().is_none().then_some(session)
}

/// Whether console cookies are `Secure`: when browsers reach the server over https.
pub fn secure_cookies(state: &AppState) -> bool {
    state
        .config
        .public_url
        .as_deref()
        .is_some_and(|url| url.trim().to_ascii_lowercase().starts_with("https://"))
}

/// The browser's CSRF value, and the jar with a new one when it had none (set it on the
/// response that renders the form).
pub fn ensure_csrf(jar: SignedCookieJar, secure: bool) -> (SignedCookieJar, String) {
    if let Some(value) = jar.get(CSRF_COOKIE).map(|c| c.value().to_owned())
        && !value.is_empty()
    {
        return (jar, value);
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let value = hex::encode(bytes);
    let mut cookie = Cookie::new(CSRF_COOKIE, value.clone());
    cookie.set_secure(secure);
    cookie.set_http_only(true);
    cookie.set_same_site(SameSite::Strict);
    cookie.set_path("/");
    (jar.add(cookie), value)
}

/// Whether a form's `csrf` field matches the browser's cookie (compared in constant time).
pub fn csrf_matches(jar: &SignedCookieJar, given: &str) -> bool {
    let Some(cookie) = jar.get(CSRF_COOKIE) else {
        return false;
    };
    let expected = cookie.value();
    !expected.is_empty() && cdh_store::rules::constant_time_eq(expected, given)
}

/// The key kept in `data_dir`, or a new one written there at first start.
pub fn load_or_create_key(data_dir: &Path) -> anyhow::Result<Key> {
    use anyhow::Context;
    let path = data_dir.join(KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let bytes = hex::decode(text.trim())
                .ok()
                .filter(|b| b.len() >= 64)
                .with_context(|| format!("{} does not hold a 64-byte hex key", path.display()))?;
            Ok(Key::from(&bytes))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data_dir)
                .with_context(|| format!("creating {}", data_dir.display()))?;
            let key = Key::generate();
            std::fs::write(&path, hex::encode(key.master()))
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_values_round_trip_and_reject_garbage() {
        assert_eq!(
            parse_session("3.7.1000.2"),
            Some(Session {
                hub: HubId(3),
                user: UserId(7),
                expires: 1000,
                epoch: 2
            })
        );
        assert_eq!(
            parse_session("3.7.1000"),
            None,
            "a cookie from before epochs"
        );
        assert_eq!(parse_session("3.7"), None);
        assert_eq!(parse_session("3.7.1000.9.1"), None);
        assert_eq!(parse_session("a.7.1000.0"), None);
    }

    #[test]
    fn the_key_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create_key(dir.path()).unwrap();
        let again = load_or_create_key(dir.path()).unwrap();
        assert_eq!(first.master(), again.master());
        std::fs::write(dir.path().join(KEY_FILE), "short").unwrap();
        assert!(load_or_create_key(dir.path()).is_err());
    }
}
