//! The store chosen at start-up from its URL: a thin choice of adapter, used as `dyn Store`.

use std::ops::Deref;

use crate::clock::Clock;
use crate::error::{StoreError, StoreResult};
use crate::port::Store;
use crate::{PgStore, SqliteStore};

/// Either adapter, so the server can hold one type whatever the URL says. It dereferences to
/// `dyn Store`: call the port's operations on it with their concern's trait in scope.
#[derive(Clone, Debug)]
pub enum AnyStore {
    /// An embedded SQLite file.
    Sqlite(SqliteStore),
    /// A PostgreSQL server.
    Postgres(PgStore),
}

impl Deref for AnyStore {
    type Target = dyn Store;

    fn deref(&self) -> &(dyn Store + 'static) {
        match self {
            Self::Sqlite(store) => store,
            Self::Postgres(store) => store,
        }
    }
}

/// Opens `sqlite://path` or `postgres://...` (also `postgresql://`) and migrates it; times
/// come from the system clock.
pub async fn open(url: &str) -> StoreResult<AnyStore> {
    open_with_clock(url, Clock::system()).await
}

/// Opens `sqlite://path` or `postgres://...` and migrates it; times come from `clock`.
pub async fn open_with_clock(url: &str, clock: Clock) -> StoreResult<AnyStore> {
    if url.starts_with("sqlite:") {
        Ok(AnyStore::Sqlite(
            SqliteStore::open_with_clock(url, clock).await?,
        ))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(AnyStore::Postgres(
            PgStore::open_with(url, None, clock).await?,
        ))
    } else {
        Err(StoreError::Invalid(format!(
            "unsupported database URL (use sqlite://path or postgres://...): {url}"
        )))
    }
}
