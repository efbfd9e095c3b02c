//! Storage for the hub: the store port, its SQLite and PostgreSQL adapters, and the
//! invariants every stored hub keeps.
//!
//! How it fits together:
//! - [`port`]: what the server asks of storage, one trait per concern; [`Store`] is all of
//!   them. [`AnyStore`] is whichever adapter [`open`] picked from the URL, as `dyn Store`.
//! - `ops`: each port trait implemented once, generic over the adapter contract `sql::Backend`.
//! - `plan`: the decisions without IO (an upsert's, an apply's, a preview's, the invariants),
//!   unit-tested without a database.
//! - `sql`: the adapter contract, the small query layer the operations are written in, and
//!   the statements both adapters run.
//! - [`sqlite`] and [`postgres`]: the adapters. Each embeds its migrations and runs them at
//!   start-up; each writes upserts and applies its own way, for speed.
//! - [`model`], [`error`], [`clock`], [`rules`]: the values the store takes and returns, its
//!   errors, where it takes the time from, and pure rules shared with the server.
//!
//! Invariants, checked by [`port::Diagnostics::check_invariants`] after every test scenario:
//! every contact is in exactly one live profile; within a scope every unify-key value is in
//! one profile; every merged-away profile names a live survivor and has a ledger row; the
//! stored profiles equal the core's resolution of the stored identifiers on top of the
//! ledger's merges. The hub id leads every key and every statement filters on it.

pub mod clock;
pub mod error;
pub mod ids;
pub mod model;
pub mod port;
pub mod postgres;
pub mod rules;
pub mod sqlite;

mod any;
mod merged_range;
mod ops;
mod plan;
mod sql;

pub use any::{AnyStore, open, open_with_clock};
pub use clock::Clock;
pub use error::{Rejection, Resource, StoreError, StoreResult};
pub use port::{
    Access, ApplyOptions, Contacts, Diagnostics, Events, ExportSink, ProfileRecord, Profiles,
    ProgressHook, Setup, Store, Tasks, Transfers, Unification,
};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;
