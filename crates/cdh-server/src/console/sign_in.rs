//! Signing in (organization, email and password, checked against the argon2 hash) and out.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::SignedCookieJar;
use serde::Deserialize;

use crate::console::forms::{CsrfForm, NoFields};
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
pub async fn page(jar: SignedCookieJar, Query(query): Query<SignInQuery>) -> Response {
    let (jar, csrf) = session::ensure_csrf(jar);
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

/// `POST /sign-in`: a session cookie and the contacts page, or the form again with a reason.
pub async fn submit(
    State(state): State<AppState>,
    jar: SignedCookieJar,
    CsrfForm(form): CsrfForm<SignInForm>,
) -> Result<Response, PageError> {
    let account = OrgRef::parse(form.organization.trim())
        .ok()
        .map(|org| (org.hub, org.org, form.email.trim().to_lowercase()));
    if let Some(wait) = account
        .as_ref()
        .and_then(|a| state.sign_in_failures.blocked(a, state.now()))
    {
        let minutes = wait.div_ceil(60);
        let message = format!(
            "Too many wrong passwords for this account. Try again in {minutes} minute(s), or \
             ask an admin to check the account."
        );
        return Ok(sign_in_again(
            &jar,
            form,
            StatusCode::TOO_MANY_REQUESTS,
            message,
        ));
    }
    let user = match &account {
        Some((hub, org, _)) => {
            crate::users::sign_in(&state, *hub, *org, &form.email, &form.password)
                .await?
                .map(|user| (*hub, user))
        }
        None => None,
    };
    if let Some(account) = account {
        if user.is_some() {
            state.sign_in_failures.clear(&account);
        } else {
            state.sign_in_failures.record(account, state.now());
        }
    }
    let Some((hub, user)) = user else {
        let message = "That organization, email and password do not match an account. Check \
                       them and try again.";
        return Ok(sign_in_again(
            &jar,
            form,
            StatusCode::UNAUTHORIZED,
            message.into(),
        ));
    };
    tracing::info!(%hub, user = %user.id, "console sign-in");
    let jar = jar.add(session::session_cookie(hub, &user, state.now()));
    Ok((jar, Redirect::to("/contacts")).into_response())
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

/// `POST /sign-out`.
pub async fn sign_out(jar: SignedCookieJar, CsrfForm(_): CsrfForm<NoFields>) -> Response {
    let jar = jar.remove(session::removal(SESSION_COOKIE));
    (jar, Redirect::to("/sign-in")).into_response()
}

/// `GET /`: the contacts when signed in, else the sign-in page.
pub async fn home(viewer: Result<Viewer, PageError>) -> Redirect {
    match viewer {
        Ok(_) => Redirect::to("/contacts"),
        Err(_) => Redirect::to("/sign-in"),
    }
}
