// Names the Profile API's shared files use (lookups, previews, profiles, imports, exports,
// webhooks); included by each adapter after `prelude.rs`.

use crate::model::{
    ChainLink, Channel, Connection, Delivery, DeliveryLog, ExportRow, FailedRow, HubSettings,
    ImportOutcome, ImportRow, Organization, PreviewConflict, PreviewProfile, PreviewReport,
    PreviewSample, StoredPreview, TokenInfo, WebhookEndpoint, WebhookId,
};
use crate::port::ExportSink;
