//! Signing in (organization, email and password, checked against the argon2 hash) and out.

use askama::Template;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::SignedCookieJar;
use serde::Deserialize;

use crate::console::forms::{CsrfForm, NoFields};
use crate::console::guard::Attempt;
use crate::console::page::{Layout, PageError, render_status};
use crate::console::session::{self, SESSION_COOKIE, Viewer};
use crate::state::AppState;
use crate::wire::OrgRef;

/// The sign-in page.
#[derive(Template)]
#[template(path = "console/sign_in.html")]
struct SignInPage {
    l: Layout,
    organization: String,
    email: String,
    error: Option<String>,
}

/// `?org=` prefills the organization (the address `cdh admin create-user` prints).
#[derive(Debug, Deserialize)]
pub struct SignInQuery {
    org: Option<String>,
}

/// `GET /sign-in`.
pub async fn page(
    State(state): State<AppState>,
    jar: SignedCookieJar,
    Query(query): Query<SignInQuery>,
) -> Response {
    let (jar, csrf) = session::ensure_csrf(jar, session::secure_cookies(&state));
    let page = SignInPage {
        l: Layout {
            title: "Sign in".into(),
            csrf,
            ..Layout::default()
        },
        organization: query.org.unwrap_or_default(),
        email: String::new(),
        error: None,
    };
    (jar, render_status(StatusCode::OK, &page)).into_response()
}

/// The sign-in form.
#[derive(Debug, Deserialize)]
pub struct SignInForm {
    organization: String,
    email: String,
    password: String,
}

/// At most this many characters in a submitted email (RFC 5321's limit).
const MAX_EMAIL_CHARS: usize = 254;

/// `POST /sign-in`: a session cookie and the contacts page, or the form again with a reason.
/// A malformed organization or email is answered without being recorded or checked; each
/// failure makes this client wait longer before its next try at this account.
pub async fn submit(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    jar: SignedCookieJar,
    CsrfForm(form): CsrfForm<SignInForm>,
) -> Result<Response, PageError> {
    let attempt = OrgRef::parse(form.organization.trim())
        .ok()
        .filter(|_| form.email.len() <= MAX_EMAIL_CHARS * 4)
        .filter(|_| form.email.trim().chars().count() <= MAX_EMAIL_CHARS)
        .and_then(|org| {
            let email = crate::users::normalize_email(form.email.trim()).ok()?;
            Some(Attempt {
                hub: org.hub,
                org: org.org,
                email,
                client: client.ip(),
            })
        });
    let Some(attempt) = attempt else {
        return Ok(no_match(&jar, form));
    };
    let guard = &state.sign_in_guard;
    if let Some(wait) = guard.wait(&attempt, state.now()) {
        let message = format!(
            "Too many wrong passwords for this account from here. Try again in {wait} \
             second(s)."
        );
        let mut page = sign_in_again(&jar, form, StatusCode::TOO_MANY_REQUESTS, message);
        page.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(wait));
        return Ok(page);
    }
    let Some(_slot) = guard.verification_slot().await else {
        let message = "The server is busy checking other sign-ins. Try again in a moment.";
        let mut page = sign_in_again(&jar, form, StatusCode::SERVICE_UNAVAILABLE, message.into());
        page.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(1));
        return Ok(page);
    };
    let user = crate::users::sign_in(
        &state,
        attempt.hub,
        attempt.org,
        &attempt.email,
        &form.password,
    )
    .await?;
    let Some(user) = user else {
        guard.failed(attempt, state.now());
        return Ok(no_match(&jar, form));
    };
    guard.succeeded(&attempt);
    let hub = attempt.hub;
    tracing::info!(%hub, user = %user.id, "console sign-in");
    let secure = session::secure_cookies(&state);
    let jar = jar.add(session::session_cookie(hub, &user, state.now(), secure));
    Ok((jar, Redirect::to("/contacts")).into_response())
}

/// The form again, saying the account was not found (whichever part was wrong).
fn no_match(jar: &SignedCookieJar, form: SignInForm) -> Response {
    let message = "That organization, email and password do not match an account. Check them \
                   and try again.";
    sign_in_again(jar, form, StatusCode::UNAUTHORIZED, message.into())
}

/// The form again, filled in but for the password, with why it did not work.
fn sign_in_again(
    jar: &SignedCookieJar,
    form: SignInForm,
    status: StatusCode,
    error: String,
) -> Response {
    let csrf = jar
        .get(session::CSRF_COOKIE)
        .map(|c| c.value().to_owned())
        .unwrap_or_default();
    let page = SignInPage {
        l: Layout {
            title: "Sign in".into(),
            csrf,
            ..Layout::default()
        },
        organization: form.organization,
        email: form.email,
        error: Some(error),
    };
    render_status(status, &page)
}

/// `POST /sign-out`: ends every session of the user at once (their epoch moves on, so a
/// copy of the cookie elsewhere opens nothing either).
pub async fn sign_out(
    State(state): State<AppState>,
    viewer: Result<Viewer, PageError>,
    jar: SignedCookieJar,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Result<Response, PageError> {
    if let Ok(viewer) = viewer {
        state
            .store
            .end_sessions(viewer.hub, viewer.user.id)
            .await
            .map_err(|e| PageError::from(crate::ApiError::from(e)))?;
    }
    let jar = jar.remove(session::removal(SESSION_COOKIE));
    Ok((jar, Redirect::to("/sign-in")).into_response())
}

/// `GET /`: the contacts when signed in, else the sign-in page.
pub async fn home(viewer: Result<Viewer, PageError>) -> Redirect {
    match viewer {
        Ok(_) => Redirect::to("/contacts"),
        Err(_) => Redirect::to("/sign-in"),
    }
}
