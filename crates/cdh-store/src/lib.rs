//! Storage for the hub: the store port, its SQLite and PostgreSQL adapters, and invariants.
//!
//! `open` picks the adapter from the URL. Both adapters run the same shared statements
//! (`src/shared/`), embed their own migrations and run them at start-up.

pub mod error;
pub mod model;
pub mod port;
pub mod postgres;
pub mod rules;
pub mod sqlite;

mod any;
mod merged_range;

pub use any::{AnyStore, open};
pub use error::{StoreError, StoreResult};
pub use port::{ApplyOptions, ExportSink, ProgressHook, Store};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;
