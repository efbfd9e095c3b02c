//! Storage for the hub: the store port, its SQLite and PostgreSQL adapters, and the
//! invariants every stored hub keeps.
//!
//! # How it fits together
//!
//! - [`port`]: what the server asks of storage, one object-safe trait per concern; [`Store`]
//!   is all of them. [`AnyStore`] is whichever adapter [`open`] picked from the URL, as
//!   `dyn Store`.
//! - `ops`: each port trait implemented once, generic over the adapter contract
//!   (`sql::Adapter`), in the module of its concern. An operation reads with the backend's
//!   statements, decides with a pure function of `plan` where the decision is more than a
//!   line, and writes.
//! - `plan`: the decisions without IO (an upsert's, an apply's, a preview's, the invariants),
//!   unit-tested without a database.
//! - `sql`: the adapter contract, the small query layer the operations are written in, and
//!   the statements both adapters run.
//! - [`sqlite`] and [`postgres`]: the adapters. Each embeds its migrations and runs them at
//!   start-up; each writes upserts and applies its own way, for speed.
//! - [`model`], [`ids`], [`error`], [`clock`], [`rules`]: the values the store takes and
//!   returns, the ids that cannot be mixed up, its errors, where it takes the time from, and
//!   pure rules shared with the server.
//!
//! # The data
//!
//! Every table's key leads with `hub_id` (the tenant) and every statement filters on it; no
//! statement joins across hubs. A **contact** is one channel's view of a person, keyed by
//! `(channel, external id)`, with its fields as JSON and its **identifiers**, the normalised
//! values of its identifier fields, indexed by `(hub, field, value, scope)`: a scope (`o<org>`
//! or `g<connection>`, with `:<product>` unless cross-product) says which contacts may unify
//! together. A **profile** is a set of contacts named by its oldest; an absorbed profile keeps
//! its row and names its survivor in `merged_into`, always the live one (a merge re-points
//! earlier chains), so an old id resolves in one read.
//!
//! **Memberships never move.** A contact's membership names the profile it was first placed in
//! (its bucket), for good. Its live profile is that profile, or the one that profile names
//! (`sql::text::to_live_profile`: two primary-key searches); a live profile's members are those
//! of its own bucket and of the buckets of the profiles merged into it (`buckets_of`). A merge
//! therefore writes a row per profile it absorbs, whatever their sizes, and no member row.
//!
//! **One identifier row per value.** Within a scope every unify-key value is in exactly one
//! live profile, so an upsert's tie query reads one identifier row per value, however many
//! contacts share it.
//!
//! The **merge ledger** records every merge with the value that tied it and its cause (a
//! contact's write, a setting's apply); the **events** feed numbers `profile.created`,
//! `profile.updated` and `profile.merged` in commit order (see `postgres::events` for how,
//! with concurrent writers, and `merged_range` for an apply's one row standing for all its
//! merges). Webhook endpoints walk that feed, one event at a time.
//!
//! # Invariants
//!
//! Checked by [`port::Diagnostics::check_invariants`] after every test scenario: every contact
//! is in exactly one live profile; within a scope every unify-key value is in one profile;
//! every merged-away profile names a live survivor and has a ledger row; the stored profiles
//! equal the core's resolution of the stored identifiers on top of the ledger's merges. An
//! upsert changes all of it in one transaction; an apply changes a hub's profiles all at once
//! or not at all. Every time stored comes from the store's [`Clock`].

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
pub use ops::conflicts::MAX_CONFLICTS_PAGE;
pub use port::{
    Access, ApplyOptions, Contacts, Diagnostics, Events, ExportSink, ProfileRecord, Profiles,
    ProgressHook, Setup, Store, Tasks, Transfers, Unification,
};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;
