//! The one table from API errors to HTTP statuses and stable codes, and the error body.
//!
//! Every handler returns `Result<_, ApiError>`. An `ApiError` carries an [`ErrorCode`];
//! [`ErrorCode::status`] is the only place a cause becomes a status. The body is always
//! `{"error": {"code", "message", "details"}}`. Internal errors log their cause and answer
//! an opaque message.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cdh_store::model::TaskKind;
use cdh_store::{Rejection, StoreError};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

/// A stable error code: the contract's `error.code`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// The body is not JSON.
    InvalidJson,
    /// The body has a field the endpoint does not know.
    UnknownField,
    /// A required field is missing.
    MissingField,
    /// A field (or query parameter) has a value of the wrong type or form.
    InvalidField,
    /// The body is over the size limit.
    PayloadTooLarge,
    /// An import carries more rows than allowed.
    BatchTooLarge,
    /// An import by a key that only matches (`customer_id`, `connect_id`) asked to create
    /// contacts.
    UpdateOnlyKey,
    /// No token, or an unknown, wrong or revoked one.
    Unauthorized,
    /// The token lacks the scope the endpoint needs.
    Forbidden,
    /// No such resource for this caller.
    NotFound,
    /// The path exists but not with this method.
    MethodNotAllowed,
    /// More than 3 unify keys.
    TooManyKeys,
    /// A unify key is not an identifier field.
    UnknownKey,
    /// A unify key is given twice.
    DuplicateKey,
    /// The contacts changed since the preview was computed.
    PreviewStale,
    /// An import is already queued or running for the organization.
    ImportInProgress,
    /// An export is already queued or running for the organization.
    ExportInProgress,
    /// The request conflicts with the current state.
    Conflict,
    /// An organization to connect is already in a partner connection.
    AlreadyConnected,
    /// The export file is past its retention.
    ExportExpired,
    /// Too many requests; see `Retry-After`.
    RateLimited,
    /// The database is busy or unreachable; retry.
    Unavailable,
    /// Another input rule with a stable code from the store (`invalid_import_key`, ...).
    Rejected(&'static str),
    /// A bug or a broken database: logged, never detailed to the caller.
    Internal,
}

impl ErrorCode {
    /// THE table: each code's status and its text in the body.
    pub fn status_and_code(self) -> (StatusCode, &'static str) {
        use ErrorCode as C;
        match self {
            C::InvalidJson => (StatusCode::BAD_REQUEST, "invalid_json"),
            C::UnknownField => (StatusCode::UNPROCESSABLE_ENTITY, "unknown_field"),
            C::MissingField => (StatusCode::UNPROCESSABLE_ENTITY, "missing_field"),
            C::InvalidField => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
            C::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            C::BatchTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "batch_too_large"),
            C::UpdateOnlyKey => (StatusCode::UNPROCESSABLE_ENTITY, "update_only_key"),
            C::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            C::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            C::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            C::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            C::TooManyKeys => (StatusCode::UNPROCESSABLE_ENTITY, "too_many_keys"),
            C::UnknownKey => (StatusCode::UNPROCESSABLE_ENTITY, "unknown_key"),
            C::DuplicateKey => (StatusCode::UNPROCESSABLE_ENTITY, "duplicate_key"),
            C::PreviewStale => (StatusCode::CONFLICT, "preview_stale"),
            C::ImportInProgress => (StatusCode::CONFLICT, "import_in_progress"),
            C::ExportInProgress => (StatusCode::CONFLICT, "export_in_progress"),
            C::Conflict => (StatusCode::CONFLICT, "conflict"),
            C::AlreadyConnected => (StatusCode::CONFLICT, "already_connected"),
            C::ExportExpired => (StatusCode::GONE, "export_expired"),
            C::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            C::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            C::Rejected(code) => (StatusCode::UNPROCESSABLE_ENTITY, code),
            C::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// The HTTP status.
    pub fn status(self) -> StatusCode {
        self.status_and_code().0
    }

    /// The code as it appears in the body.
    pub fn as_str(self) -> &'static str {
        self.status_and_code().1
    }
}

/// An error answered to the caller.
#[derive(Debug)]
pub struct ApiError {
    /// Which cause.
    pub code: ErrorCode,
    /// A human sentence.
    pub message: String,
    /// Structured details (`{"field": ...}`, `{"row": ...}`), `{}` when none.
    pub details: Value,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
    /// What to log for a 500 (never sent).
    pub cause: Option<String>,
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The `error` object.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable snake_case code.
    pub code: String,
    /// A human sentence.
    pub message: String,
    /// Structured details, such as the field at fault.
    #[schema(value_type = Object)]
    pub details: Value,
}

impl ApiError {
    /// An error with a code and a message and no details.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: json!({}),
            retry_after: None,
            cause: None,
        }
    }

    /// Adds structured details.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    /// Names `field` in the details of a 422 that does not name one yet.
    pub fn with_field(mut self, field: &str) -> Self {
        if self.code.status() == StatusCode::UNPROCESSABLE_ENTITY
            && self.details.get("field").is_none()
            && let Some(map) = self.details.as_object_mut()
        {
            map.insert("field".into(), json!(field));
        }
        self
    }

    /// Adds a `Retry-After` header.
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// `404 not_found` for a resource kind ("contact", "profile", ...).
    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
            .with_details(json!({ "resource": what }))
    }

    /// `422 invalid_field` naming the field.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidField, message).with_details(json!({ "field": field }))
    }

    /// `401 unauthorized`.
    pub fn unauthorized() -> Self {
        Self::new(
            ErrorCode::Unauthorized,
            "a valid bearer token is required (Authorization: Bearer <token>)",
        )
    }

    /// `403 forbidden` naming the scope that is missing.
    pub fn forbidden(needed: &str) -> Self {
        Self::new(
            ErrorCode::Forbidden,
            format!("this token lacks the scope this endpoint needs ({needed})"),
        )
        .with_details(json!({ "required_scope": needed }))
    }

    /// `500 internal`: the cause is logged, not answered.
    pub fn internal(cause: impl Into<String>) -> Self {
        let mut e = Self::new(ErrorCode::Internal, "internal error");
        e.cause = Some(cause.into());
        e
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Self::not_found(what.as_str()),
            StoreError::Invalid(why) => Self::new(ErrorCode::InvalidField, why),
            StoreError::Conflict(why) => Self::new(ErrorCode::Conflict, why),
            StoreError::Rejected { reason, message } => {
                let code = match reason {
                    Rejection::TooManyKeys => ErrorCode::TooManyKeys,
                    Rejection::UnknownField => ErrorCode::UnknownKey,
                    Rejection::DuplicateKey => ErrorCode::DuplicateKey,
                    Rejection::AlreadyConnected => ErrorCode::AlreadyConnected,
                    other => ErrorCode::Rejected(other.code()),
                };
                Self::new(code, message)
            }
            StoreError::PreviewStale { preview_id } => Self::new(
                ErrorCode::PreviewStale,
                "contacts changed since this preview was computed; preview again",
            )
            .with_details(json!({ "preview_id": preview_id.to_string() })),
            StoreError::TaskInProgress { kind, task_id } => Self::new(
                if kind == TaskKind::Export {
                    ErrorCode::ExportInProgress
                } else {
                    ErrorCode::ImportInProgress
                },
                format!("an {kind} is already queued or running for this organization"),
            )
            .with_details(json!({ "task_id": task_id.to_string() })),
            StoreError::Contention { cause } => {
                tracing::warn!(%cause, "database contention");
                Self::new(ErrorCode::Unavailable, "the database is busy; retry").with_retry_after(1)
            }
            StoreError::Unavailable { cause } => {
                tracing::error!(%cause, "database unavailable");
                Self::new(ErrorCode::Unavailable, "the database is unavailable; retry")
                    .with_retry_after(5)
            }
            other @ (StoreError::Backend { .. } | StoreError::Corrupt(_)) => {
                Self::internal(other.to_string())
            }
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        Self::internal(format!("{e:#}"))
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.code.status_and_code();
        if status.is_server_error()
            && let Some(cause) = &self.cause
        {
            tracing::error!(code, %cause, "request failed");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.to_owned(),
                message: self.message,
                details: self.details,
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// The result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;
