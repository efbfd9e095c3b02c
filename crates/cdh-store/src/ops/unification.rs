//! [`Unification`] for every backend: the setting in force and its history, previews stored
//! with a fingerprint of the hub, and applies run as tasks.
//!
//! An apply runs in three phases: read a snapshot and plan it (`plan::apply`); stage the
//! plan's rows in batches, with progress on the task; then one transaction checks nothing was
//! written since the snapshot and swaps everything in. A crash before the swap leaves only
//! staged rows (ignored and cleared by the next run); the swap itself is atomic. Each adapter
//! stages and swaps its own way ([`crate::sql::ApplyWrites`]:
//! start, stage and swap).

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use cdh_core::IdentifierField;

use crate::error::{Rejection, Resource, StoreError, StoreResult};
use crate::model::{
    AppliedSetting, HubId, PreviewId, StoredPreview, Task, TaskId, TaskKind, UnifySetting,
};
use crate::ops::setup::{load_history, load_setting};
use crate::plan::apply::{ApplyInput, ApplyPlan, plan_apply};
use crate::plan::preview::{PreviewInput, preview_report};
use crate::port::{ApplyOptions, Tasks, Unification};
use crate::rules::{normalizer, parse_keys};
use crate::sql::text::{CHANNEL_SCOPES_SQL, to_live_profile};
use crate::sql::{Adapter, fetch_one, query};

/// How often an apply recomputes after writes raced it before it gives up.
const MAX_APPLY_ATTEMPTS: u32 = 5;

#[async_trait]
impl<B: Adapter> Unification for B {
    async fn unify_setting(&self, hub: HubId) -> StoreResult<AppliedSetting> {
        let mut conn = self.acquire().await?;
        load_setting::<B>(&mut conn, hub).await
    }

    async fn unify_history(&self, hub: HubId) -> StoreResult<Vec<AppliedSetting>> {
        let mut conn = self.acquire().await?;
        load_history::<B>(&mut conn, hub).await
    }

    async fn create_preview(
        &self,
        hub: HubId,
        setting: &UnifySetting,
        suspicious_threshold: u32,
    ) -> StoreResult<StoredPreview> {
        let mut tx = self.begin_snapshot().await?;
        let fingerprint = hub_fingerprint::<B>(&mut tx, hub).await?;
        check_preview_setting::<B>(&mut tx, hub, setting).await?;
        let setting = UnifySetting {
            keys: setting.keys.iter().map(|k| k.trim().to_owned()).collect(),
            excluded: setting.excluded.clone(),
        };
        let (cross,): (i64,) = fetch_one::<B, _>(
            &mut tx,
            query("SELECT cross_product FROM hubs WHERE hub_id = $1").bind(hub),
            Resource::Hub,
        )
        .await?;
        let input = PreviewInput {
            cross_product: cross != 0,
            channels: B::fetch_all(&mut tx, query(CHANNEL_SCOPES_SQL).bind(hub)).await?,
            contacts: B::fetch_all(
                &mut tx,
                query("SELECT id, channel_id FROM contacts WHERE hub_id = $1 ORDER BY id")
                    .bind(hub),
            )
            .await?,
            identifiers: B::fetch_all(
                &mut tx,
                query(
                    "SELECT contact_id, field, value FROM identifiers WHERE hub_id = $1 \
                     ORDER BY contact_id",
                )
                .bind(hub),
            )
            .await?,
            members: B::fetch_all(
                &mut tx,
                query(format!(
                    "SELECT m.contact_id, p.id FROM memberships m {} WHERE m.hub_id = $1",
                    to_live_profile::<B>()
                ))
                .bind(hub),
            )
            .await?,
        };
        B::commit(tx).await?;
        let report = preview_report(&setting, suspicious_threshold, input)?;

        let mut tx = self.begin_write().await?;
        let id = PreviewId(B::next_id(&mut tx, hub).await?);
        let created_at = self.clock().now();
        B::execute(
            &mut tx,
            query(
                "INSERT INTO unify_previews (hub_id, id, keys, excluded, report, fingerprint, \
                 created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(hub)
            .bind(id)
            .bind(serde_json::to_string(&setting.keys)?)
            .bind(serde_json::to_string(&setting.excluded)?)
            .bind(serde_json::to_string(&report)?)
            .bind(fingerprint.as_str())
            .bind(created_at),
        )
        .await?;
        B::commit(tx).await?;
        Ok(StoredPreview {
            id,
            keys: setting.keys,
            excluded: setting.excluded,
            report,
            fingerprint,
            created_at,
        })
    }

    async fn get_preview(&self, hub: HubId, id: PreviewId) -> StoreResult<StoredPreview> {
        let mut conn = self.acquire().await?;
        load_preview::<B>(&mut conn, hub, id).await
    }

    async fn apply_preview(&self, hub: HubId, id: PreviewId, actor: &str) -> StoreResult<TaskId> {
        let mut tx = self.begin_write().await?;
        let preview = load_preview::<B>(&mut tx, hub, id).await?;
        let now = hub_fingerprint::<B>(&mut tx, hub).await?;
        B::commit(tx).await?;
        if now != preview.fingerprint {
            return Err(StoreError::PreviewStale { preview_id: id });
        }
        let setting = UnifySetting {
            keys: preview.keys,
            excluded: preview.excluded,
        };
        self.start_apply(hub, &setting, actor).await
    }

    async fn start_apply(
        &self,
        hub: HubId,
        setting: &UnifySetting,
        actor: &str,
    ) -> StoreResult<TaskId> {
        parse_keys(&setting.keys)?;
        normalizer("TW", setting)?;
        let params = serde_json::json!({
            "keys": setting.keys,
            "excluded": setting.excluded,
            "actor": actor,
        });
        self.create_task(hub, TaskKind::Apply, &params).await
    }

    async fn run_apply(
        &self,
        hub: HubId,
        task_id: TaskId,
        options: &ApplyOptions,
    ) -> StoreResult<Task> {
        let task = self.get_task(hub, task_id).await?;
        if task.kind != TaskKind::Apply {
            return Err(StoreError::Invalid(format!(
                "task {task_id} is not an apply"
            )));
        }
        if task.status.is_finished() {
            return Ok(task);
        }
        let setting = UnifySetting {
            keys: serde_json::from_value(task.params["keys"].clone())?,
            excluded: serde_json::from_value(task.params["excluded"].clone())?,
        };
        let actor = task.params["actor"].as_str().unwrap_or_default().to_owned();
        let mut attempt = 0;
        let outcome = loop {
            match apply_attempt(self, hub, task_id, &setting, &actor, options).await {
                Err(StoreError::Conflict(_) | StoreError::Contention { .. })
                    if attempt < MAX_APPLY_ATTEMPTS =>
                {
                    attempt += 1
                }
                other => break other,
            }
        };
        if let Err(e) = &outcome {
            self.finish_task(hub, task_id, Err(e.to_string())).await?;
        }
        self.get_task(hub, task_id).await
    }
}

/// One try at an apply: plan from a snapshot, stage in batches, swap in.
async fn apply_attempt<B: Adapter>(
    store: &B,
    hub: HubId,
    task_id: TaskId,
    setting: &UnifySetting,
    actor: &str,
    options: &ApplyOptions,
) -> StoreResult<()> {
    let plan = Arc::new(read_and_plan(store, hub, setting).await?);
    let rows = plan.n_rows();
    store
        .update_task_progress(hub, task_id, 0, rows as i64)
        .await?;
    store.start_staging(hub, task_id, &plan).await?;
    let mut done = 0;
    while done < rows {
        let end = (done + options.batch_size.max(1)).min(rows);
        store.stage_batch(hub, task_id, &plan, done..end).await?;
        done = end;
        if let Some(hook) = &options.on_batch {
            hook(done as i64, rows as i64);
        }
    }
    store.swap_in(hub, task_id, setting, actor, &plan).await
}

/// Reads one snapshot of the hub and plans the apply of `setting` over it.
async fn read_and_plan<B: Adapter>(
    store: &B,
    hub: HubId,
    setting: &UnifySetting,
) -> StoreResult<ApplyPlan> {
    let keys = parse_keys(&setting.keys)?;
    let mut tx = store.begin_snapshot().await?;
    let (marker, cross): (i64, i64) = fetch_one::<B, _>(
        &mut tx,
        query(format!(
            "SELECT {}, h.cross_product FROM hubs h WHERE h.hub_id = $1",
            B::WRITTEN_EVENTS
        ))
        .bind(hub),
        Resource::Hub,
    )
    .await?;
    let channels = B::fetch_all(&mut tx, query(CHANNEL_SCOPES_SQL).bind(hub)).await?;
    let mut key_names: Vec<&str> = keys.iter().map(IdentifierField::name).collect();
    // Up to three keys; the rest are padded with a name no field has.
    key_names.resize(3, "");
    let (contacts, key_values) = store
        .read_contacts_and_keys(&mut tx, hub, [key_names[0], key_names[1], key_names[2]])
        .await?;
    B::commit(tx).await?;
    plan_apply(
        setting,
        ApplyInput {
            marker,
            cross_product: cross != 0,
            channels,
            contacts,
            key_values,
        },
    )
}

/// The state of the hub a preview depends on: every contact write appends an event, an apply
/// bumps the setting version, and scope changes show in cross-product and connections.
async fn hub_fingerprint<B: Adapter>(conn: &mut B::Conn, hub: HubId) -> StoreResult<String> {
    let (events, cross, connected, version): (i64, i64, i64, i64) = fetch_one::<B, _>(
        conn,
        query(format!(
            "SELECT {}, h.cross_product, \
             (SELECT COUNT(*) FROM connection_members cm WHERE cm.hub_id = h.hub_id), \
             (SELECT COALESCE(MAX(version), 0) FROM unify_settings u WHERE u.hub_id = h.hub_id) \
             FROM hubs h WHERE h.hub_id = $1",
            B::WRITTEN_EVENTS
        ))
        .bind(hub),
        Resource::Hub,
    )
    .await?;
    Ok(format!("e{events}.c{cross}.m{connected}.v{version}"))
}

/// Checks a setting's keys with stable codes: at most 3, no duplicates, each a built-in
/// identifier or a custom field some contact of the hub carries.
async fn check_preview_setting<B: Adapter>(
    conn: &mut B::Conn,
    hub: HubId,
    setting: &UnifySetting,
) -> StoreResult<()> {
    if setting.keys.len() > 3 {
        return Err(StoreError::rejected(
            Rejection::TooManyKeys,
            format!("at most 3 unify keys, not {}", setting.keys.len()),
        ));
    }
    let mut seen = BTreeSet::new();
    for key in &setting.keys {
        if !seen.insert(key.trim()) {
            return Err(StoreError::rejected(
                Rejection::DuplicateKey,
                format!("unify key `{key}` is listed twice"),
            ));
        }
    }
    let names = setting
        .keys
        .iter()
        .map(|k| (k, "keys"))
        .chain(setting.excluded.iter().map(|(f, _)| (f, "excluded_values")));
    for (name, place) in names {
        let name = name.trim();
        if IdentifierField::built_in(name).is_some()
            || (place == "excluded_values" && setting.keys.iter().any(|k| k.trim() == name))
        {
            continue;
        }
        let valid_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        let carried = valid_name && {
            let found: Option<(i64,)> = B::fetch_optional(
                conn,
                query(
                    "SELECT id FROM contacts WHERE hub_id = $1 AND custom_fields LIKE $2 LIMIT 1",
                )
                .bind(hub)
                .bind(format!("%\"{name}\":%")),
            )
            .await?;
            found.is_some()
        };
        if !carried {
            let valid: Vec<&str> = cdh_core::field::BUILT_IN_FIELDS
                .iter()
                .map(|f| f.name())
                .collect();
            return Err(StoreError::rejected(
                Rejection::UnknownField,
                format!(
                    "unknown identifier field `{name}` in {place}; valid fields are {} or a \
                     custom field your contacts carry",
                    valid.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// A preview as stored.
#[derive(sqlx::FromRow)]
struct PreviewRow {
    keys: String,
    excluded: String,
    report: String,
    fingerprint: String,
    created_at: i64,
}

async fn load_preview<B: Adapter>(
    conn: &mut B::Conn,
    hub: HubId,
    id: PreviewId,
) -> StoreResult<StoredPreview> {
    let row: PreviewRow = fetch_one::<B, _>(
        conn,
        query(
            "SELECT keys, excluded, report, fingerprint, created_at FROM unify_previews \
             WHERE hub_id = $1 AND id = $2",
        )
        .bind(hub)
        .bind(id),
        Resource::Preview,
    )
    .await?;
    Ok(StoredPreview {
        id,
        keys: serde_json::from_str(&row.keys)?,
        excluded: serde_json::from_str(&row.excluded)?,
        report: serde_json::from_str(&row.report)?,
        fingerprint: row.fingerprint,
        created_at: row.created_at,
    })
}
