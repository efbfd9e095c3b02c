//! The store's decisions, without IO: plain functions over the rows the adapters read,
//! unit-tested without a database and compiled once for both adapters.
//!
//! - [`contact`]: what an upsert writes for the contact itself.
//! - [`unify`]: what an upsert does to the profiles the contact ties to.
//! - [`conflicts`]: which of them it may join (unique fields), and the conflicts it records.
//! - [`apply`]: what applying a unify setting merges and restages.
//! - [`preview`]: the report of what a setting would do.
//! - [`check`]: the invariants every stored hub keeps.

pub(crate) mod apply;
pub(crate) mod apply_unique;
pub(crate) mod check;
pub(crate) mod conflicts;
pub(crate) mod contact;
pub(crate) mod preview;
pub(crate) mod unify;
