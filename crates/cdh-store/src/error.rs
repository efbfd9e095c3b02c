//! The storage domain error: what went wrong, in the store's own terms.

use std::fmt;

use crate::model::{PreviewId, TaskId, TaskKind};

/// Why a store operation failed. Driver errors are mapped into these variants and keep only
/// their text (for logs), never the driver's error value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The named resource does not exist in this hub.
    NotFound(Resource),
    /// The input breaks a rule (unknown field, bad unify keys, bad region, ...).
    Invalid(String),
    /// The operation conflicts with the current state (for example an apply raced writes).
    Conflict(String),
    /// Another transaction held what this one needed; retrying may succeed.
    Contention {
        /// The backend's message, for logs.
        cause: String,
    },
    /// The database could not be reached or opened.
    Unavailable {
        /// The backend's message, for logs.
        cause: String,
    },
    /// Any other database failure.
    Backend {
        /// The backend's message, for logs.
        cause: String,
    },
    /// Stored data that cannot be read back (bad JSON, a dangling reference).
    Corrupt(String),
    /// The input breaks a rule that has a stable code; the server answers 422 with it.
    Rejected {
        /// Which rule.
        reason: Rejection,
        /// A human sentence.
        message: String,
    },
    /// A preview no longer describes the hub: contacts changed since it was computed.
    PreviewStale {
        /// The preview.
        preview_id: PreviewId,
    },
    /// A task of this kind is already queued or running for the organization.
    TaskInProgress {
        /// `Import` or `Export`.
        kind: TaskKind,
        /// The task in the way.
        task_id: TaskId,
    },
}

/// A kind of stored thing, as a missing one is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    /// A hub (tenant).
    Hub,
    /// An organization of a hub.
    Organization,
    /// A channel.
    Channel,
    /// A contact.
    Contact,
    /// A profile.
    Profile,
    /// A task.
    Task,
    /// An API token.
    Token,
    /// A unification preview.
    Preview,
    /// A webhook endpoint.
    Webhook,
    /// A console user.
    User,
    /// An identifier field.
    Field,
    /// A partner connection.
    Connection,
}

impl Resource {
    /// The name in messages and in the API's `details.resource`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hub => "hub",
            Self::Organization => "organization",
            Self::Channel => "channel",
            Self::Contact => "contact",
            Self::Profile => "profile",
            Self::Task => "task",
            Self::Token => "token",
            Self::Preview => "preview",
            Self::Webhook => "webhook",
            Self::User => "user",
            Self::Field => "field",
            Self::Connection => "connection",
        }
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An input rule the store enforces, each with a stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rejection {
    /// More than three unify keys.
    TooManyKeys,
    /// A unify key or excluded field that is neither built in nor carried by a contact.
    UnknownField,
    /// A unify key listed twice.
    DuplicateKey,
    /// A profile edit that edits nothing.
    EmptyPatch,
    /// A field name that is not one (profile edits, import rows).
    InvalidField,
    /// An import key the import cannot match on, or a row's value of it.
    InvalidImportKey,
    /// A webhook URL that is not an http(s) URL.
    InvalidUrl,
    /// A webhook secret of the wrong length.
    InvalidSecret,
    /// An export's writer failed.
    ExportWriteFailed,
    /// An organization to connect is already in a partner connection (the server answers
    /// 409).
    AlreadyConnected,
}

impl Rejection {
    /// The stable snake_case code.
    pub fn code(self) -> &'static str {
        match self {
            Self::TooManyKeys => "too_many_keys",
            Self::UnknownField => "unknown_field",
            Self::DuplicateKey => "duplicate_key",
            Self::EmptyPatch => "empty_patch",
            Self::InvalidField => "invalid_field",
            Self::InvalidImportKey => "invalid_import_key",
            Self::InvalidUrl => "invalid_url",
            Self::InvalidSecret => "invalid_secret",
            Self::ExportWriteFailed => "export_write_failed",
            Self::AlreadyConnected => "already_connected",
        }
    }
}

impl StoreError {
    /// A stable snake_case code for the error, for the server's one error table.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "not_found",
            Self::Invalid(_) => "invalid",
            Self::Conflict(_) => "conflict",
            Self::Contention { .. } => "contention",
            Self::Unavailable { .. } => "unavailable",
            Self::Backend { .. } => "backend",
            Self::Corrupt(_) => "corrupt",
            Self::Rejected { reason, .. } => reason.code(),
            Self::PreviewStale { .. } => "preview_stale",
            Self::TaskInProgress {
                kind: TaskKind::Export,
                ..
            } => "export_in_progress",
            Self::TaskInProgress { .. } => "import_in_progress",
        }
    }

    pub(crate) fn rejected(reason: Rejection, message: impl Into<String>) -> Self {
        Self::Rejected {
            reason,
            message: message.into(),
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound(what) => write!(f, "{what} not found"),
            Self::Invalid(why) => write!(f, "invalid input: {why}"),
            Self::Conflict(why) => write!(f, "conflict: {why}"),
            Self::Contention { cause } => write!(f, "database contention: {cause}"),
            Self::Unavailable { cause } => write!(f, "database unavailable: {cause}"),
            Self::Backend { cause } => write!(f, "database error: {cause}"),
            Self::Corrupt(why) => write!(f, "corrupt stored data: {why}"),
            Self::Rejected { message, .. } => f.write_str(message),
            Self::PreviewStale { preview_id } => write!(
                f,
                "preview {preview_id} is stale: contacts changed since it was computed; preview again"
            ),
            Self::TaskInProgress { kind, task_id } => write!(
                f,
                "an {} is already in progress for this organization (task {task_id})",
                kind.as_str()
            ),
        }
    }
}

impl std::error::Error for StoreError {}

/// SQLSTATEs (PostgreSQL) and result codes (SQLite) that mean "try the transaction again".
const RETRYABLE_CODES: &[&str] = &["40001", "40P01", "5", "6", "517"];

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        let cause = e.to_string();
        match &e {
            // The store reads a row that must exist with `sql::fetch_one`, which names the
            // resource; sqlx's own "no rows" means a statement that should have returned one
            // did not.
            sqlx::Error::RowNotFound => Self::Backend { cause },
            sqlx::Error::Database(db) => {
                let code = db.code();
                if code
                    .as_deref()
                    .is_some_and(|c| RETRYABLE_CODES.contains(&c))
                {
                    Self::Contention { cause }
                } else {
                    Self::Backend { cause }
                }
            }
            sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut => {
                Self::Unavailable { cause }
            }
            _ => Self::Backend { cause },
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        let cause = e.to_string();
        match &e {
            rusqlite::Error::SqliteFailure(failure, _)
                if RETRYABLE_CODES.contains(&failure.extended_code.to_string().as_str()) =>
            {
                Self::Contention { cause }
            }
            _ => Self::Backend { cause },
        }
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        Self::Corrupt(e.to_string())
    }
}

/// The result of a store operation.
pub type StoreResult<T> = Result<T, StoreError>;
