//! The pure identity-resolution engine: key normalisation, batch and incremental resolution,
//! golden records, previews and explanations.
//!
//! Invariant: this crate does no IO, spawns no threads, and knows nothing of SQL, HTTP or serde.
//! Every function is a plain synchronous function over plain types.

pub mod blocklist;
pub mod constrained;
pub mod explain;
pub mod field;
pub mod golden;
pub mod graph;
pub mod incremental;
pub mod interner;
pub mod normalize;
pub mod phone;
pub mod preview;
pub mod resolve;
pub mod scope;
pub mod unify_keys;
pub mod why;

pub use blocklist::{BlockReason, Blocklist};
pub use constrained::{Clash, Refusal, Resolved, resolve_holding, resolve_refusing};
pub use explain::{Chain, Tie, TieGraph};
pub use field::{FieldKind, IdentifierField, UnknownField};
pub use golden::{GoldenRecord, MemberRecord, Timestamp, golden_record};
pub use graph::{ContactIdx, KeyGraph, Slot};
pub use incremental::{IncrementalResolver, Resolution};
pub use interner::{ScopeId, ValueId, ValueInterner};
pub use normalize::{Email, InvalidReason, LineUid, Normalizer, Outcome};
pub use phone::{Phone, PhoneError, Region};
pub use preview::{Preview, PreviewOptions, RefusedMerge, preview};
pub use resolve::{Partition, UnionFind, resolve};
pub use scope::{Product, ScopeGroup, Scopes};
pub use unify_keys::{UnifyKeys, UnifyKeysError};
