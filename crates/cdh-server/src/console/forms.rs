//! Form bodies of the console: URL-encoded (repeated fields allowed, for checkboxes) or
//! multipart (file uploads), each refused before anything changes when its `csrf` field does
//! not match the browser's CSRF cookie.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Multipart, Request};
use axum_extra::extract::SignedCookieJar;
use axum_extra::extract::cookie::Key;
use serde::de::DeserializeOwned;

use crate::console::page::PageError;
use crate::console::session::csrf_matches;
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

/// A URL-encoded form whose `csrf` field matched.
#[derive(Debug)]
pub struct CsrfForm<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for CsrfForm<T> {
    type Rejection = PageError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, PageError> {
        let (jar, request) = cookies_of(request, state).await?;
        let bytes = Bytes::from_request(request, state).await.map_err(|_| {
            PageError::Api(ApiError::new(
                ErrorCode::PayloadTooLarge,
                "the form is larger than the server accepts",
            ))
        })?;
        let given = form_urlencoded::parse(&bytes)
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        if !csrf_matches(&jar, &given) {
            return Err(PageError::BadCsrf);
        }
        serde_html_form::from_bytes(&bytes).map(Self).map_err(|e| {
            PageError::Api(ApiError::new(
                ErrorCode::InvalidField,
                format!("the form could not be read: {e}"),
            ))
        })
    }
}

/// The request's signed cookies, and the request to read the body from.
async fn cookies_of(
    request: Request,
    state: &AppState,
) -> Result<(SignedCookieJar, Request), PageError> {
    let (mut parts, body) = request.into_parts();
    let jar = SignedCookieJar::<Key>::from_request_parts(&mut parts, state)
        .await
        .map_err(|_| PageError::BadCsrf)?;
    Ok((jar, Request::from_parts(parts, body)))
}

/// A form with nothing but its CSRF field (sign out, confirm, revoke).
#[derive(Debug, serde::Deserialize)]
pub struct NoFields {}

/// A multipart form (an upload) whose `csrf` field, sent before the file, matched.
#[derive(Debug)]
pub struct UploadForm {
    /// Text fields, in order.
    pub fields: Vec<(String, String)>,
    /// The uploaded file: its name and bytes (`None` when no file was chosen).
    pub file: Option<(String, Bytes)>,
}

impl UploadForm {
    /// The first value of a text field.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl FromRequest<AppState> for UploadForm {
    type Rejection = PageError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, PageError> {
        let (jar, request) = cookies_of(request, state).await?;
        let mut multipart = Multipart::from_request(request, state)
            .await
            .map_err(|e| PageError::Api(ApiError::new(ErrorCode::InvalidField, e.body_text())))?;
        let mut form = UploadForm {
            fields: Vec::new(),
            file: None,
        };
        let unreadable = |e: axum::extract::multipart::MultipartError| {
            PageError::Api(ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("the upload could not be read: {}", e.body_text()),
            ))
        };
        while let Some(field) = multipart.next_field().await.map_err(unreadable)? {
            let name = field.name().unwrap_or_default().to_owned();
            if let Some(file_name) = field.file_name().map(str::to_owned) {
                let csrf = form.field("csrf").unwrap_or_default();
                // The token comes first in the form, so a forged upload is never read.
                if !csrf_matches(&jar, csrf) {
                    return Err(PageError::BadCsrf);
                }
                let bytes = field.bytes().await.map_err(unreadable)?;
                if !file_name.is_empty() || !bytes.is_empty() {
                    form.file = Some((file_name, bytes));
                }
            } else {
                let text = field.text().await.map_err(unreadable)?;
                form.fields.push((name, text));
            }
        }
        if !csrf_matches(&jar, form.field("csrf").unwrap_or_default()) {
            return Err(PageError::BadCsrf);
        }
        Ok(form)
    }
}
