//! What every console page shares: the layout's data, rendering a template, the security
//! headers, and errors shown as pages in words (through the API's one error table).

use askama::Template;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};

use crate::console::session::Viewer;
use crate::error::{ApiError, ErrorCode};

/// The frame around a page: who is signed in, which menu entry is current, the CSRF value
/// for its forms, and a message to show once.
#[derive(Clone, Debug, Default)]
pub struct Layout {
    /// The page's title.
    pub title: String,
    /// The current menu entry (`contacts`, `unification`, `hub`, `data`, `tokens`).
    pub nav: &'static str,
    /// The signed-in user's email (empty on the sign-in page).
    pub email: String,
    /// The organization's name.
    pub org_name: String,
    /// Whether the user is an admin (settings are shown only to admins).
    pub is_admin: bool,
    /// The value every form echoes in its `csrf` field.
    pub csrf: String,
    /// A message for the top of the page: (`success`|`error`|`warning`, text).
    pub flash: Option<(&'static str, String)>,
}

impl Layout {
    /// The frame of a page of a signed-in user.
    pub fn new(viewer: &Viewer, nav: &'static str, title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            nav,
            email: viewer.user.email.clone(),
            org_name: viewer.org_name.clone(),
            is_admin: viewer.is_admin(),
            csrf: viewer.csrf.clone(),
            flash: None,
        }
    }

    /// With a message shown once at the top.
    pub fn flash(mut self, kind: &'static str, text: impl Into<String>) -> Self {
        self.flash = Some((kind, text.into()));
        self
    }
}

/// Renders a template as an HTML page (a template bug is logged and shown as a 500).
pub fn render<T: Template>(template: &T) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => PageError::Api(ApiError::internal(format!("template: {e}"))).into_response(),
    }
}

/// Renders with a status other than 200.
pub fn render_status<T: Template>(status: StatusCode, template: &T) -> Response {
    let mut response = render(template);
    if response.status() == StatusCode::OK {
        *response.status_mut() = status;
    }
    response
}

/// Why a console request did not produce its page.
#[derive(Debug)]
pub enum PageError {
    /// No session, or an expired one: go to the sign-in page.
    SignIn,
    /// An agent opened a settings page.
    AdminOnly,
    /// A form came without the browser's CSRF value.
    BadCsrf,
    /// Anything the API would answer with an error.
    Api(ApiError),
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}

impl From<cdh_store::StoreError> for PageError {
    fn from(e: cdh_store::StoreError) -> Self {
        Self::Api(ApiError::from(e))
    }
}

/// The page shown for an error.
#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage {
    l: Layout,
    heading: String,
    message: String,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, heading, message) = match self {
            Self::SignIn => return Redirect::to("/sign-in").into_response(),
            Self::AdminOnly => (
                StatusCode::FORBIDDEN,
                "Admins only",
                "Only an admin of your organization can open settings. Ask an admin to change \
                 this for you."
                    .to_owned(),
            ),
            Self::BadCsrf => (
                StatusCode::FORBIDDEN,
                "This form has expired",
                "The form was sent without a valid security token. Go back, reload the page \
                 and try again."
                    .to_owned(),
            ),
            Self::Api(e) => {
                let status = e.code.status();
                if e.code == ErrorCode::Internal {
                    tracing::error!(cause = ?e.cause, "console request failed");
                    (
                        status,
                        "Something went wrong",
                        "The server could not finish this request. Nothing was changed by \
                         this page; try again in a moment."
                            .to_owned(),
                    )
                } else if e.code == ErrorCode::NotFound {
                    (
                        status,
                        "Not found",
                        "There is nothing here, or it belongs to another organization.".to_owned(),
                    )
                } else {
                    (status, "That did not work", e.message)
                }
            }
        };
        let page = ErrorPage {
            l: Layout {
                title: heading.to_owned(),
                ..Layout::default()
            },
            heading: heading.to_owned(),
            message: message.clone(),
        };
        let mut response = render_status(status, &page);
        // `with_navigation` renders it again inside the signed-in user's frame.
        response.extensions_mut().insert(ShownError {
            heading: heading.to_owned(),
            message,
        });
        response
    }
}

/// An error page's words, kept on its response for [`with_navigation`].
#[derive(Clone, Debug)]
struct ShownError {
    heading: String,
    message: String,
}

/// Middleware: an error page of a signed-in user keeps the console's frame (menu, user,
/// sign-out), so the way back is one click; without a session it stays a bare page. The
/// session is read only for error pages.
pub async fn with_navigation(
    axum::extract::State(state): axum::extract::State<crate::state::AppState>,
    request: Request,
    next: Next,
) -> Response {
    // The session lives in the cookie; only it is kept, and only a copy of a header value.
    let cookie = request.headers().get(header::COOKIE).cloned();
    let response = next.run(request).await;
    let Some(shown) = response.extensions().get::<ShownError>().cloned() else {
        return response;
    };
    let Some(cookie) = cookie else {
        return response;
    };
    let mut probe = axum::http::Request::new(());
    probe.headers_mut().insert(header::COOKIE, cookie);
    let (mut parts, ()) = probe.into_parts();
    let Ok(viewer) =
        <Viewer as axum::extract::FromRequestParts<_>>::from_request_parts(&mut parts, &state)
            .await
    else {
        return response;
    };
    let page = ErrorPage {
        l: Layout::new(&viewer, "", shown.heading.clone()),
        heading: shown.heading,
        message: shown.message,
    };
    let status = response.status();
    let mut framed = render_status(status, &page);
    for (name, value) in response.headers() {
        if name != header::CONTENT_LENGTH && name != header::CONTENT_TYPE {
            framed.headers_mut().insert(name.clone(), value.clone());
        }
    }
    framed
}

/// The content security policy: everything from this server, no inline scripts or styles.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'; object-src 'none'";

/// Adds the console's security headers to every console response.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
