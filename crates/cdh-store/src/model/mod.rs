//! The plain values the store takes and returns, one module per concern of the port. Ids are
//! newtypes (`crate::ids`); times are milliseconds since the Unix epoch.

mod access;
mod contacts;
mod profiles;
mod setup;
mod tasks;
mod unification;

pub use crate::ids::{
    ChannelId, ConnectionId, ContactId, HubId, OrganizationId, PreviewId, ProfileId, TaskId,
    TimelineEntryId, TokenId, UserId, WebhookId,
};

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

pub use access::{
    ConsoleUser, Delivery, DeliveryLog, EventsPage, IssuedToken, Role, TokenGrant, TokenInfo,
    UserChange, WebhookEndpoint,
};
pub use contacts::{
    Contact, ContactInput, FieldValue, InvalidField, TimelineEntry, Unification, Upserted,
};
pub use profiles::{Cause, Event, LedgerEntry, MANUAL_SOURCE, Page, Profile, ProfileMember};
pub use setup::{Channel, Connection, NewChannel, Organization, Realm, RealmSettings};
pub use tasks::{
    ExportRow, FailedRow, IMPORT_CHUNK_ROWS, ImportChunk, ImportOutcome, ImportRow, ImportRows,
    ImportRowsWriter, Task, TaskKind, TaskStatus,
};
pub use unification::{
    AppliedSetting, ChainLink, ConflictRecord, PreviewConflict, PreviewProfile, PreviewReport,
    PreviewSample, StoredPreview, SuspiciousValue, UnifySetting, default_unique_fields,
};
