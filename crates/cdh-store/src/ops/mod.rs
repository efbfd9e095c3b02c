//! The store's operations, written once for both adapters: each port trait is implemented
//! here for every adapter ([`crate::sql::Adapter`]), in the module of its concern.
//!
//! | trait | module |
//! | --- | --- |
//! | [`crate::port::Setup`] | [`setup`] |
//! | [`crate::port::Contacts`] | [`contacts`] (the sqlx upsert path in [`upsert`]) |
//! | [`crate::port::Profiles`] | [`profiles`] (merged records in [`golden`], names in [`name_search`], edits in [`profile_edits`]) |
//! | [`crate::port::Unification`] | [`unification`] (the conflicts list in [`conflicts`]) |
//! | [`crate::port::Tasks`] | [`tasks`] |
//! | [`crate::port::Transfers`] | [`transfers`] (import pieces in [`import`]) |
//! | [`crate::port::Events`] | [`events`] (the feed in [`feed`]) |
//! | [`crate::port::Access`] | [`access`] |
//! | [`crate::port::Diagnostics`] | [`diagnostics`] |
//!
//! An operation reads with the backend's statements, decides with a pure function of
//! [`crate::plan`] where the decision is more than a line, and writes.

pub(crate) mod access;
pub(crate) mod conflicts;
pub(crate) mod contacts;
pub(crate) mod diagnostics;
pub(crate) mod events;
pub(crate) mod feed;
pub(crate) mod golden;
pub(crate) mod import;
pub(crate) mod import_chunks;
pub(crate) mod name_search;
pub(crate) mod profile_edits;
pub(crate) mod profiles;
pub(crate) mod realms;
pub(crate) mod setup;
pub(crate) mod tasks;
pub(crate) mod transfers;
pub(crate) mod unification;
pub(crate) mod upsert;
