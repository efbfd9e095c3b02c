//! [`Unification`] for every backend: a realm's setting in force and its history, previews
//! stored with a fingerprint of the realm, and applies run as tasks. Every operation starts
//! from the caller's organization and works on its realm only (`ops::realms`).
//!
//! An apply runs in three phases: read a snapshot and plan it (`plan::apply`); stage the
//! plan's rows in batches, with progress on the task; then one transaction checks nothing was
//! written since the snapshot and swaps everything in. A crash before the swap leaves only
//! staged rows (ignored and cleared by the next run); the swap itself is atomic. Each adapter
//! stages and swaps its own way ([`crate::sql::ApplyWrites`]:
//! start, stage and swap).

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use cdh_core::IdentifierField;

use crate::error::{Rejection, Resource, StoreError, StoreResult};
use crate::model::{
    AppliedSetting, ChannelId, ConflictRecord, ContactId, HubId, OrganizationId, PreviewId,
    ProfileId, Realm, RealmSettings, StoredPreview, Task, TaskId, TaskKind, UnifySetting,
};
use crate::ops::realms::{covered_realms, load_realm, realm_written, settings_of_realm};
use crate::ops::setup::{load_history, load_setting};
use crate::plan::apply::{
    ApplyInput, ApplyPlan, ScopedChannelRow, plan_apply, realm_channels, retain_realm_contacts,
};
use crate::plan::preview::{PreviewInput, preview_report};
use crate::port::{ApplyOptions, Tasks, Unification};
use crate::rules::{normalizer, parse_keys, parse_unique_fields};
use crate::sql::text::{CHANNEL_SCOPES_SQL, to_live_profile};
use crate::sql::{Adapter, fetch_one, query};

/// How often an apply recomputes after writes raced it before it gives up.
const MAX_APPLY_ATTEMPTS: u32 = 5;

#[async_trait]
impl<B: Adapter> Unification for B {
    async fn unify_setting(&self, hub: HubId, org: OrganizationId) -> StoreResult<AppliedSetting> {
        let mut conn = self.acquire().await?;
        let realm = load_realm::<B>(&mut conn, hub, org).await?.realm;
        load_setting::<B>(&mut conn, hub, realm).await
    }

    async fn unify_history(
        &self,
        hub: HubId,
        org: OrganizationId,
    ) -> StoreResult<Vec<AppliedSetting>> {
        let mut conn = self.acquire().await?;
        let realm = load_realm::<B>(&mut conn, hub, org).await?.realm;
        load_history::<B>(&mut conn, hub, realm).await
    }

    async fn create_preview(
        &self,
        hub: HubId,
        org: OrganizationId,
        setting: &UnifySetting,
        suspicious_threshold: u32,
    ) -> StoreResult<StoredPreview> {
        let mut tx = self.begin_snapshot().await?;
        let realm = load_realm::<B>(&mut tx, hub, org).await?;
        let fingerprint = realm_fingerprint::<B>(&mut tx, hub, &realm).await?;
        check_preview_setting::<B>(&mut tx, hub, &realm.organizations, setting).await?;
        parse_unique_fields(&setting.unique_fields)?;
        let setting = UnifySetting {
            unique_fields: setting
                .unique_fields
                .iter()
                .map(|f| f.trim().to_owned())
                .collect(),
            keys: setting.keys.iter().map(|k| k.trim().to_owned()).collect(),
            excluded: setting.excluded.clone(),
        };
        let input = read_preview_input::<B>(&mut tx, hub, &realm).await?;
        B::commit(tx).await?;
        let report = preview_report(&setting, suspicious_threshold, input)?;

        let mut tx = self.begin_write().await?;
        let id = PreviewId(B::next_id(&mut tx, hub).await?);
        let created_at = self.clock().now();
        B::execute(
            &mut tx,
            query(
                "INSERT INTO unify_previews (hub_id, id, keys, excluded, report, fingerprint, \
                 created_at, realm, unique_fields) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(hub)
            .bind(id)
            .bind(serde_json::to_string(&setting.keys)?)
            .bind(serde_json::to_string(&setting.excluded)?)
            .bind(serde_json::to_string(&report)?)
            .bind(fingerprint.as_str())
            .bind(created_at)
            .bind(realm.realm.key())
            .bind(serde_json::to_string(&setting.unique_fields)?),
        )
        .await?;
        B::commit(tx).await?;
        Ok(StoredPreview {
            id,
            keys: setting.keys,
            excluded: setting.excluded,
            unique_fields: setting.unique_fields,
            report,
            fingerprint,
            created_at,
        })
    }

    async fn get_preview(
        &self,
        hub: HubId,
        org: OrganizationId,
        id: PreviewId,
    ) -> StoreResult<StoredPreview> {
        let mut conn = self.acquire().await?;
        let realm = load_realm::<B>(&mut conn, hub, org).await?.realm;
        load_preview::<B>(&mut conn, hub, realm, id).await
    }

    async fn apply_preview(
        &self,
        hub: HubId,
        org: OrganizationId,
        id: PreviewId,
        actor: &str,
    ) -> StoreResult<TaskId> {
        let mut tx = self.begin_write().await?;
        let realm = load_realm::<B>(&mut tx, hub, org).await?;
        let preview = load_preview::<B>(&mut tx, hub, realm.realm, id).await?;
        let now = realm_fingerprint::<B>(&mut tx, hub, &realm).await?;
        B::commit(tx).await?;
        if now != preview.fingerprint {
            return Err(StoreError::PreviewStale { preview_id: id });
        }
        let setting = UnifySetting {
            unique_fields: preview.unique_fields,
            keys: preview.keys,
            excluded: preview.excluded,
        };
        self.start_apply(hub, org, &setting, actor).await
    }

    async fn start_apply(
        &self,
        hub: HubId,
        org: OrganizationId,
        setting: &UnifySetting,
        actor: &str,
    ) -> StoreResult<TaskId> {
        parse_keys(&setting.keys)?;
        parse_unique_fields(&setting.unique_fields)?;
        normalizer("TW", setting)?;
        let params = serde_json::json!({
            "keys": setting.keys,
            "excluded": setting.excluded,
            "unique_fields": setting.unique_fields,
            "actor": actor,
        });
        let mut tx = self.begin_write().await?;
        let realm = load_realm::<B>(&mut tx, hub, org).await?.realm;
        let id = TaskId(B::next_id(&mut tx, hub).await?);
        // An apply belongs to its realm, not to the organization that asked (the actor names
        // that); applies queue one after another, so it takes no organization's one slot.
        B::execute(
            &mut tx,
            query(
                "INSERT INTO tasks (hub_id, id, kind, status, done, total, params, created_at, \
                 realm) VALUES ($1, $2, $3, 'queued', 0, 0, $4, $5, $6)",
            )
            .bind(hub)
            .bind(id)
            .bind(TaskKind::Apply.as_str())
            .bind(params.to_string())
            .bind(self.clock().now())
            .bind(realm.key()),
        )
        .await?;
        B::commit(tx).await?;
        Ok(id)
    }

    async fn conflicts(
        &self,
        hub: HubId,
        org: OrganizationId,
        after: Option<(ContactId, String)>,
        limit: u32,
    ) -> StoreResult<Vec<ConflictRecord>> {
        crate::ops::conflicts::conflicts_page(self, hub, org, after, limit).await
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
            // Applies queued before unique fields existed take the default.
            unique_fields: match task.params.get("unique_fields") {
                Some(fields) => serde_json::from_value(fields.clone())?,
                None => crate::model::default_unique_fields(),
            },
            keys: serde_json::from_value(task.params["keys"].clone())?,
            excluded: serde_json::from_value(task.params["excluded"].clone())?,
        };
        let actor = task.params["actor"].as_str().unwrap_or_default().to_owned();
        let mut attempt = 0;
        let outcome = loop {
            let realm = match task.realm {
                Some(realm) => realm,
                None => {
                    break Err(StoreError::Invalid(format!(
                        "apply task {task_id} names no realm (queued before realms)"
                    )));
                }
            };
            // The last try holds the hub's contact writes off, so that a hub written to
            // without pause still gets its apply (`sql::gates`).
            let _closed = if attempt == MAX_APPLY_ATTEMPTS {
                Some(self.apply_gates().close(hub).await)
            } else {
                None
            };
            match apply_attempt(self, hub, task_id, realm, &setting, &actor, options).await {
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
    realm: Realm,
    setting: &UnifySetting,
    actor: &str,
    options: &ApplyOptions,
) -> StoreResult<()> {
    let plan = Arc::new(read_and_plan(store, hub, realm, setting).await?);
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

/// Reads one snapshot of the realm's contacts and plans the apply of `setting` over it.
async fn read_and_plan<B: Adapter>(
    store: &B,
    hub: HubId,
    realm: Realm,
    setting: &UnifySetting,
) -> StoreResult<ApplyPlan> {
    let keys = parse_keys(&setting.keys)?;
    let mut tx = store.begin_snapshot().await?;
    let realm = settings_of_realm::<B>(&mut tx, hub, realm).await?;
    let covered = covered_realms(&realm);
    let marker = realm_written::<B>(&mut tx, hub, &covered).await?;
    let all_channels: Vec<ScopedChannelRow> =
        B::fetch_all(&mut tx, query(CHANNEL_SCOPES_SQL).bind(hub)).await?;
    let n_channels = all_channels.len();
    let channels = realm_channels(all_channels, realm.realm, &realm.organizations);
    let mut key_names: Vec<&str> = keys.iter().map(IdentifierField::name).collect();
    // Up to three keys; the rest are padded with a name no field has.
    key_names.resize(3, "");
    let (mut contacts, mut key_values) = store
        .read_contacts_and_keys(&mut tx, hub, [key_names[0], key_names[1], key_names[2]])
        .await?;
    // A unique field that is a key comes with the keys' values.
    let unique_not_keys: Vec<String> = setting
        .unique_fields
        .iter()
        .filter(|f| !setting.keys.contains(f))
        .cloned()
        .collect();
    let mut unique =
        crate::ops::conflicts::read_unique_input::<B>(&mut tx, hub, &unique_not_keys).await?;
    B::commit(tx).await?;
    // A hub of one organization (the common case) has nothing to leave out.
    if channels.len() < n_channels {
        retain_realm_contacts(&mut contacts, &mut key_values, &channels);
        let kept: HashSet<ContactId> = contacts.iter().map(|c| c.contact_id).collect();
        unique.values.retain(|(c, _, _)| kept.contains(c));
        let profiles: HashSet<ProfileId> = contacts.iter().filter_map(|c| c.profile_id).collect();
        unique.held.retain(|p, _| profiles.contains(p));
    }
    plan_apply(
        setting,
        ApplyInput {
            realm: realm.realm,
            covered,
            marker,
            cross_product: realm.cross_product,
            channels,
            contacts,
            key_values,
            unique,
        },
    )
}

/// What a preview of the realm reads: its channels, contacts, identifiers and profiles.
async fn read_preview_input<B: Adapter>(
    tx: &mut B::Conn,
    hub: HubId,
    realm: &RealmSettings,
) -> StoreResult<PreviewInput> {
    let all_channels: Vec<ScopedChannelRow> =
        B::fetch_all(tx, query(CHANNEL_SCOPES_SQL).bind(hub)).await?;
    let channels = realm_channels(all_channels, realm.realm, &realm.organizations);
    let channel_ids: HashSet<ChannelId> = channels.iter().map(|c| c.id).collect();
    let mut contacts: Vec<(ContactId, ChannelId)> = B::fetch_all(
        tx,
        query("SELECT id, channel_id FROM contacts WHERE hub_id = $1 ORDER BY id").bind(hub),
    )
    .await?;
    contacts.retain(|(_, channel)| channel_ids.contains(channel));
    let contact_ids: HashSet<ContactId> = contacts.iter().map(|(id, _)| *id).collect();
    let mut identifiers: Vec<(ContactId, String, String)> = B::fetch_all(
        tx,
        query(
            "SELECT contact_id, field, value FROM identifiers WHERE hub_id = $1 \
             ORDER BY contact_id",
        )
        .bind(hub),
    )
    .await?;
    identifiers.retain(|(contact, _, _)| contact_ids.contains(contact));
    let mut members: Vec<(ContactId, ProfileId)> = B::fetch_all(
        tx,
        query(format!(
            "SELECT m.contact_id, p.id FROM memberships m {} WHERE m.hub_id = $1",
            to_live_profile::<B>()
        ))
        .bind(hub),
    )
    .await?;
    members.retain(|(contact, _)| contact_ids.contains(contact));
    Ok(PreviewInput {
        cross_product: realm.cross_product,
        channels,
        contacts,
        identifiers,
        members,
    })
}

/// The state of the realm a preview depends on: every contact write of the realm (or of its
/// organizations' own realms) appends an event, an apply bumps the setting version, and
/// scope changes show in cross-product and the realm's organizations.
async fn realm_fingerprint<B: Adapter>(
    conn: &mut B::Conn,
    hub: HubId,
    realm: &RealmSettings,
) -> StoreResult<String> {
    let written = realm_written::<B>(conn, hub, &covered_realms(realm)).await?;
    let version = load_setting::<B>(conn, hub, realm.realm).await?.version;
    Ok(format!(
        "e{written}.c{}.m{}.v{version}",
        i64::from(realm.cross_product),
        realm.organizations.len()
    ))
}

/// Checks a setting's keys with stable codes: at most 3, no duplicates, each a built-in
/// identifier or a custom field some contact of the realm's organizations carries (another
/// organization's fields are not even named in the answer).
async fn check_preview_setting<B: Adapter>(
    conn: &mut B::Conn,
    hub: HubId,
    organizations: &[OrganizationId],
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
            let mut found = false;
            for org in organizations {
                let row: Option<(i64,)> = B::fetch_optional(
                    conn,
                    query(format!(
                        "SELECT c.id FROM channels ch {} contacts c \
                         ON c.hub_id = ch.hub_id AND c.channel_id = ch.id \
                         WHERE ch.hub_id = $1 AND ch.organization_id = $2 \
                           AND c.custom_fields LIKE $3 LIMIT 1",
                        B::ORDERED_JOIN
                    ))
                    .bind(hub)
                    .bind(*org)
                    .bind(format!("%\"{name}\":%")),
                )
                .await?;
                if row.is_some() {
                    found = true;
                    break;
                }
            }
            found
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
    unique_fields: String,
    report: String,
    fingerprint: String,
    created_at: i64,
}

/// A preview of the realm; another realm's is `NotFound`.
async fn load_preview<B: Adapter>(
    conn: &mut B::Conn,
    hub: HubId,
    realm: Realm,
    id: PreviewId,
) -> StoreResult<StoredPreview> {
    let row: PreviewRow = fetch_one::<B, _>(
        conn,
        query(
            "SELECT keys, excluded, unique_fields, report, fingerprint, created_at \
             FROM unify_previews \
             WHERE hub_id = $1 AND id = $2 AND realm = $3",
        )
        .bind(hub)
        .bind(id)
        .bind(realm.key()),
        Resource::Preview,
    )
    .await?;
    Ok(StoredPreview {
        id,
        keys: serde_json::from_str(&row.keys)?,
        excluded: serde_json::from_str(&row.excluded)?,
        unique_fields: serde_json::from_str(&row.unique_fields)?,
        report: serde_json::from_str(&row.report)?,
        fingerprint: row.fingerprint,
        created_at: row.created_at,
    })
}
