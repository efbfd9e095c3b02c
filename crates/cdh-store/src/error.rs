//! The storage domain error: what went wrong, in the store's own terms.

use std::fmt;

/// Why a store operation failed. Driver errors are mapped into these variants and keep only
/// their text (for logs), never the driver's error value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The named resource does not exist in this hub.
    NotFound(&'static str),
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
            sqlx::Error::RowNotFound => Self::NotFound("row"),
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

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        Self::Corrupt(e.to_string())
    }
}

/// The result of a store operation.
pub type StoreResult<T> = Result<T, StoreError>;
