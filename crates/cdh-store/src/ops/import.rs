//! The pieces of an import (the vendor's semantics): rows are checked on their own first,
//! matched by an identifier within the organization, and each written as an upsert of every
//! contact it matches, or created on the organization's `api` channel.

use std::collections::{HashMap, HashSet};

use cdh_core::{IdentifierField, Normalizer, Outcome};

use crate::clock::Clock;
use crate::error::{Rejection, StoreError, StoreResult};
use crate::model::{
    ChannelId, ConnectionId, ContactInput, FailedRow, HubId, ImportOutcome, ImportRow, Millis,
    OrganizationId, TaskId,
};
use crate::ops::profiles::check_edit_field;
use crate::ops::upsert::{upsert_in, with_retries};
use crate::sql::batch::placeholders;
use crate::sql::{Adapter, query};
use serde::{Deserialize, Serialize};

/// Rows per import transaction: a queued import's chunk, so a batch reads one or two chunks.
pub(crate) const IMPORT_BATCH: usize = crate::model::IMPORT_CHUNK_ROWS;

/// Fields an import may match on.
pub(crate) const IMPORT_KEYS: [&str; 5] = [
    "line_uid",
    "display_email",
    "display_mobile",
    "connect_id",
    "customer_id",
];

/// A row that passed its check: its position in the import and its key value normalised.
pub(crate) struct CheckedRow {
    pub index: usize,
    pub key_value: String,
}

/// A checked row read again to be written: its key value normalised.
pub(crate) struct ReadyRow<'a> {
    pub row: &'a ImportRow,
    pub key_value: String,
}

/// What one row did.
#[derive(Clone, Copy, Debug)]
pub(crate) enum RowOutcome {
    Matched,
    Created,
    Unmatched,
}

/// What an import carries from row to row: the `api` channel once known, and the values it
/// created (a repeated value later in the same import is a match, not a second creation).
#[derive(Default)]
pub(crate) struct ImportState {
    pub api_channel: Option<ChannelId>,
    pub created: HashSet<String>,
}

impl ImportState {
    /// A copy to work on in a transaction that may roll back: the channel, no creations.
    pub fn fork(&self) -> Self {
        Self {
            api_channel: self.api_channel,
            created: HashSet::new(),
        }
    }

    /// Remembers what a committed row created.
    pub fn note(&mut self, ready: &ReadyRow<'_>, outcome: &RowOutcome) {
        if matches!(outcome, RowOutcome::Created) {
            self.created.insert(ready.key_value.clone());
        }
    }
}

/// Checks a row on its own: an import key value that normalises, and sound field names.
/// Returns the key value normalised.
pub(crate) fn check_import_row(
    row: &ImportRow,
    key: &IdentifierField,
    normalizer: &mut Normalizer,
) -> Result<String, FailedRow> {
    let fail = |code: &str, message: String| FailedRow {
        row: row.row,
        code: code.to_owned(),
        message,
    };
    for name in row.fields.keys() {
        check_edit_field(name).map_err(|e| fail("invalid_field", e.to_string()))?;
    }
    let raw = match row.fields.get(key.name()) {
        Some(Some(v)) if !v.trim().is_empty() => v,
        _ => {
            return Err(fail(
                "missing_import_key",
                format!("the row has no {} to match on", key.name()),
            ));
        }
    };
    match normalizer.normalize(key, raw) {
        Ok(value) => Ok(value.to_string()),
        Err(outcome) => {
            let reason = match outcome {
                Outcome::Invalid(r) => r.code().to_owned(),
                Outcome::Blocked(r) => r.code().to_owned(),
                Outcome::Empty | Outcome::Valid => "empty".to_owned(),
            };
            Err(fail(
                Rejection::InvalidImportKey.code(),
                format!("the row's {} cannot be matched on ({reason})", key.name()),
            ))
        }
    }
}

/// The scopes an organization's contacts can be stored in, so lookups use the value index.
pub(crate) async fn organization_scopes<B: Adapter>(
    conn: &mut B::Conn,
    hub: HubId,
    org: OrganizationId,
) -> StoreResult<Vec<String>> {
    let group: Option<(ConnectionId,)> = B::fetch_optional(
        conn,
        query(
            "SELECT connection_id FROM connection_members \
             WHERE hub_id = $1 AND organization_id = $2",
        )
        .bind(hub)
        .bind(org),
    )
    .await?;
    let mut bases = vec![format!("o{org}")];
    if let Some((g,)) = group {
        bases.push(format!("g{g}"));
    }
    let mut scopes = Vec::new();
    for base in bases {
        for product in ["", ":caac", ":maac"] {
            scopes.push(format!("{base}{product}"));
        }
    }
    Ok(scopes)
}

/// The contacts of the organization holding each value of `field`.
pub(crate) async fn match_contacts<B: Adapter>(
    conn: &mut B::Conn,
    hub: HubId,
    org: OrganizationId,
    scopes: &[String],
    field: &str,
    values: &[&str],
) -> StoreResult<HashMap<String, Vec<(ChannelId, String)>>> {
    let mut found: HashMap<String, Vec<(ChannelId, String)>> = HashMap::new();
    for chunk in values.chunks(500) {
        let sql = format!(
            "SELECT i.value, c.channel_id, c.external_id FROM identifiers i \
             {j} contacts c ON c.hub_id = i.hub_id AND c.id = i.contact_id \
             {j} channels ch ON ch.hub_id = c.hub_id AND ch.id = c.channel_id \
             WHERE i.hub_id = $1 AND i.field = $2 AND ch.organization_id = $3 \
             AND i.scope IN ({}) AND i.value IN ({}) ORDER BY c.id",
            placeholders(4, scopes.len()),
            placeholders(4 + scopes.len(), chunk.len()),
            j = B::ORDERED_JOIN
        );
        let q = query(sql).bind(hub).bind(field).bind(org);
        let q = scopes.iter().fold(q, |q, s| q.bind(s));
        let q = chunk.iter().fold(q, |q, v| q.bind(*v));
        let rows: Vec<(String, ChannelId, String)> = B::fetch_all(conn, q).await?;
        for (value, channel, external) in rows {
            found.entry(value).or_default().push((channel, external));
        }
    }
    Ok(found)
}

/// The organization's `api` channel, created on first use.
async fn api_channel<B: Adapter>(
    conn: &mut B::Conn,
    hub: HubId,
    org: OrganizationId,
    now: Millis,
) -> StoreResult<ChannelId> {
    let found: Option<(ChannelId,)> = B::fetch_optional(
        conn,
        query(
            "SELECT id FROM channels WHERE hub_id = $1 AND organization_id = $2 \
             AND channel_type = 'api' ORDER BY id LIMIT 1",
        )
        .bind(hub)
        .bind(org),
    )
    .await?;
    if let Some((id,)) = found {
        return Ok(id);
    }
    let id = ChannelId(B::next_id(conn, hub).await?);
    B::execute(
        conn,
        query(
            "INSERT INTO channels (hub_id, id, organization_id, channel_type, product, name, \
             external_account_id, created_at) \
             VALUES ($1, $2, $3, 'api', 'caac', 'API imports', 'import', $4)",
        )
        .bind(hub)
        .bind(id)
        .bind(org)
        .bind(now),
    )
    .await?;
    Ok(id)
}

/// Where an import writes: its hub and organization, the key it matches on, whether it
/// creates unmatched rows, who runs it, and the clock its writes are timed by.
pub(crate) struct ImportTarget<'a> {
    pub hub: HubId,
    pub org: OrganizationId,
    pub key: &'a str,
    pub create: bool,
    pub actor: &'a str,
    pub clock: &'a Clock,
}

/// Writes one checked row inside the caller's transaction.
pub(crate) async fn import_one<B: Adapter>(
    conn: &mut B::Conn,
    target: &ImportTarget<'_>,
    ready: &ReadyRow<'_>,
    matches: &HashMap<String, Vec<(ChannelId, String)>>,
    state: &mut ImportState,
) -> StoreResult<RowOutcome> {
    let contact = |channel_id: ChannelId, external_id: String| ContactInput {
        channel_id,
        external_id,
        fields: ready.row.fields.clone(),
        tags: ready.row.tags.clone(),
        custom_fields: ready.row.custom_fields.clone(),
        updated_at: None,
    };
    let (hub, actor) = (target.hub, target.actor);
    if let Some(targets) = matches.get(&ready.key_value) {
        for (channel, external) in targets {
            let input = contact(*channel, external.clone());
            upsert_in::<B>(conn, hub, &input, actor, target.clock.now()).await?;
        }
        return Ok(RowOutcome::Matched);
    }
    if !target.create {
        return Ok(RowOutcome::Unmatched);
    }
    let channel = match state.api_channel {
        Some(id) => id,
        None => {
            let id = api_channel::<B>(conn, hub, target.org, target.clock.now()).await?;
            state.api_channel = Some(id);
            id
        }
    };
    let external = format!("import:{}:{}", target.key, ready.key_value);
    upsert_in::<B>(
        conn,
        hub,
        &contact(channel, external),
        actor,
        target.clock.now(),
    )
    .await?;
    Ok(if state.created.contains(&ready.key_value) {
        RowOutcome::Matched
    } else {
        RowOutcome::Created
    })
}

/// One row in its own transaction, retried on contention: how a batch that failed is redone,
/// so that only its bad rows are lost.
pub(crate) async fn import_row_alone<B: Adapter>(
    store: &B,
    target: &ImportTarget<'_>,
    scopes: &[String],
    ready: &ReadyRow<'_>,
    state: &ImportState,
    checkpoint: Option<(TaskId, &ImportCheckpoint)>,
) -> StoreResult<RowOutcome> {
    with_retries(|| async {
        let mut tx = store.begin_write().await?;
        let matches = match_contacts::<B>(
            &mut tx,
            target.hub,
            target.org,
            scopes,
            target.key,
            &[ready.key_value.as_str()],
        )
        .await?;
        let mut row_state = state.fork();
        let mut row = import_one::<B>(&mut tx, target, ready, &matches, &mut row_state).await?;
        if state.created.contains(&ready.key_value) && matches!(row, RowOutcome::Created) {
            row = RowOutcome::Matched;
        }
        if let Some((task, base)) = checkpoint {
            B::execute(&mut tx, base.after(&[row]).save(target.hub, task)?).await?;
        }
        B::commit(tx).await?;
        Ok(row)
    })
    .await
}

/// The code a row's write failure is reported with, or `None` when the import must stop.
pub(crate) fn row_failure(error: &StoreError) -> Option<&'static str> {
    match error {
        StoreError::Unavailable { .. } | StoreError::Contention { .. } => None,
        StoreError::Rejected { reason, .. } => Some(reason.code()),
        StoreError::Invalid(_) => Some("invalid_row"),
        _ => Some("row_rejected"),
    }
}

/// Where an import stands after its last committed write: how many checked rows are written
/// and what they did. Saved in the task's `checkpoint` in the same transaction as the write,
/// so an import resumed after a crash starts after it and counts as if never interrupted.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct ImportCheckpoint {
    /// Checked rows written (or failed), in order.
    pub ready_done: usize,
    /// Their counts and failures.
    pub outcome: ImportOutcome,
}

impl ImportCheckpoint {
    /// The task's checkpoint, or the start when it has none.
    pub async fn load<B: Adapter>(
        conn: &mut B::Conn,
        hub: HubId,
        task: TaskId,
    ) -> StoreResult<Self> {
        let row: Option<(Option<String>,)> = B::fetch_optional(
            conn,
            query("SELECT checkpoint FROM tasks WHERE hub_id = $1 AND id = $2")
                .bind(hub)
                .bind(task),
        )
        .await?;
        match row.and_then(|(text,)| text) {
            Some(text) => Ok(serde_json::from_str(&text)?),
            None => Ok(Self::default()),
        }
    }

    /// The statement that saves this checkpoint as the task's.
    pub fn save(&self, hub: HubId, task: TaskId) -> StoreResult<crate::sql::Query<'static>> {
        Ok(
            query("UPDATE tasks SET checkpoint = $3 WHERE hub_id = $1 AND id = $2")
                .bind(hub)
                .bind(task)
                .bind(serde_json::to_string(self)?),
        )
    }

    /// This checkpoint after `rows` more checked rows with these outcomes.
    pub fn after(&self, outcomes: &[RowOutcome]) -> Self {
        let mut next = self.clone();
        next.ready_done += outcomes.len();
        for row in outcomes {
            count(&mut next.outcome, *row);
        }
        next
    }
}

/// Counts one row's outcome.
pub(crate) fn count(outcome: &mut ImportOutcome, row: RowOutcome) {
    match row {
        RowOutcome::Matched => outcome.matched += 1,
        RowOutcome::Created => outcome.created += 1,
        RowOutcome::Unmatched => outcome.unmatched += 1,
    }
}
