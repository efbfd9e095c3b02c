//! Request extractors that answer the contract's errors: JSON bodies and query strings.
//!
//! `ApiJson<T>` reads the body (within the router's `DefaultBodyLimit`, else `413
//! payload_too_large`), then deserializes it: not JSON is `400 invalid_json`; an unknown
//! field (every request type has `#[serde(deny_unknown_fields)]`) is `422 unknown_field`; a
//! missing one `422 missing_field`; a wrong type `422 invalid_field`. The field's path is in
//! `details.field`. `ApiQuery<T>` does the same for query strings.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::error::{ApiError, ErrorCode};

/// A JSON body parsed into `T`, or the contract's error.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|rejection| body_error(rejection.status(), &rejection.body_text()))?;
        parse_json(&bytes).map(ApiJson)
    }
}

impl<T: Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Parses a JSON document into `T` with the contract's errors.
pub fn parse_json<'de, T: serde::Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, ApiError> {
    parse_from(serde_json::Deserializer::from_slice(bytes))
}

/// Parses a JSON document read from `reader` into `T`, with the errors of [`parse_json`]:
/// for a large body, whose pieces can be let go of as they are read.
pub fn parse_json_reader<T: DeserializeOwned>(reader: impl std::io::Read) -> Result<T, ApiError> {
    parse_from(serde_json::Deserializer::from_reader(
        std::io::BufReader::new(reader),
    ))
}

fn parse_from<'de, R: serde_json::de::Read<'de>, T: serde::Deserialize<'de>>(
    mut de: serde_json::Deserializer<R>,
) -> Result<T, ApiError> {
    let value: Result<T, _> = serde_path_to_error::deserialize(&mut de);
    if value.is_ok() {
        // Trailing bytes after the document make it invalid JSON as a whole.
        de.end().map_err(|e| {
            ApiError::new(
                ErrorCode::InvalidJson,
                format!(
                    "the body is not valid JSON: {}",
                    strip_position(&e.to_string())
                ),
            )
        })?;
    }
    value.map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                ApiError::new(
                    ErrorCode::InvalidJson,
                    format!(
                        "the body is not valid JSON: {}",
                        strip_position(&inner.to_string())
                    ),
                )
            }
            serde_json::error::Category::Io => ApiError::new(
                ErrorCode::InvalidJson,
                format!("the body could not be read: {inner}"),
            ),
            serde_json::error::Category::Data => data_error(&path, &inner.to_string()),
        }
    })
}

/// A query string parsed into `T`, or the contract's error.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(ApiQuery)
            .map_err(|e| {
                let path = e.path().to_string();
                data_error(&path, &e.into_inner().to_string())
            })
    }
}

/// Maps serde's data errors ("unknown field `x`", "missing field `x`", ...) to codes.
fn data_error(path: &str, message: &str) -> ApiError {
    let quoted = |prefix: &str| {
        message
            .strip_prefix(prefix)
            .and_then(|rest| rest.split('`').next())
            .map(str::to_owned)
    };
    let join = |name: &str| {
        if path == name || path.ends_with(&format!(".{name}")) {
            path.to_owned()
        } else if path.is_empty() || path == "." {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        }
    };
    let message = strip_position(message);
    if let Some(name) = quoted("unknown field `") {
        let field = join(&name);
        return ApiError::new(
            ErrorCode::UnknownField,
            format!("unknown field `{field}`; check its spelling"),
        )
        .with_details(json!({ "field": field }));
    }
    if let Some(name) = quoted("missing field `") {
        let field = join(&name);
        return ApiError::new(ErrorCode::MissingField, format!("missing field `{field}`"))
            .with_details(json!({ "field": field }));
    }
    let field = if path.is_empty() || path == "." {
        None
    } else {
        Some(path.to_owned())
    };
    let text = match &field {
        Some(f) => format!("invalid value for `{f}`: {message}"),
        None => format!("invalid request: {message}"),
    };
    ApiError::new(ErrorCode::InvalidField, text).with_details(json!({ "field": field }))
}

/// serde_json appends " at line 1 column 9", which says nothing to an API caller.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// Maps a body-reading rejection (size limit, broken stream) to the contract's error.
fn body_error(status: StatusCode, text: &str) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            "the request body is larger than this endpoint accepts",
        )
    } else {
        ApiError::new(
            ErrorCode::InvalidJson,
            format!("the body could not be read: {text}"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        n: Option<u32>,
    }

    #[test]
    fn bad_json_is_invalid_json() {
        let e = parse_json::<Body>(b"{\"name\":").unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidJson);
    }

    #[test]
    fn unknown_field_names_it() {
        let e = parse_json::<Body>(br#"{"name":"a","nme":"b"}"#).unwrap_err();
        assert_eq!(e.code, ErrorCode::UnknownField);
        assert_eq!(e.details["field"], "nme");
    }

    #[test]
    fn missing_and_invalid_fields_are_named() {
        let e = parse_json::<Body>(br#"{}"#).unwrap_err();
        assert_eq!(e.code, ErrorCode::MissingField);
        assert_eq!(e.details["field"], "name");
        let e = parse_json::<Body>(br#"{"name":"a","n":"x"}"#).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidField);
        assert_eq!(e.details["field"], "n");
    }
}
