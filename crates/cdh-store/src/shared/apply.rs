// Applying a new unify setting over all of a hub's contacts, shared by both adapters.
//
// Three phases: read a snapshot and resolve it with the core in memory on top of the stored
// partition (merges are permanent); write the changed memberships into `apply_staging` in
// batches, with progress on the task; then one transaction checks nothing was written since
// the snapshot and swaps everything in. A crash before the swap leaves only staging rows
// (ignored and cleared by the next run); the swap itself is atomic.

/// A contact whose bucket or scope the apply changes.
#[derive(Clone, Debug)]
pub(crate) struct StagedRow {
    contact_id: i64,
    bucket_id: Option<i64>,
    scope: Option<String>,
}

/// One merge the apply performs.
struct PlannedMerge {
    survivor: i64,
    target_bucket: i64,
    member_count: i64,
    oldest_contact: i64,
    absorbed: Vec<i64>,
    /// Absorbed profiles grouped by the (field, value) that ties them in.
    by_value: BTreeMap<(String, String), Vec<i64>>,
}

/// What the resolution decided.
struct ApplyPlan {
    marker: i64,
    staged: Vec<StagedRow>,
    merges: Vec<PlannedMerge>,
    profiles_before: usize,
    profiles_after: usize,
}

/// A contact (id, channel, scope) and its live profile (id, bucket, members, oldest contact).
type ContactProfileRow = (
    i64,
    i64,
    String,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

/// A contact's values of the (up to three) unify keys, in the keys' order.
type KeyValuesRow = (i64, Option<String>, Option<String>, Option<String>);

/// A stored profile as the apply sees it.
#[derive(Clone, Copy)]
struct StoredProfile {
    id: i64,
    bucket: i64,
    count: i64,
    oldest: i64,
}

fn setting_params(setting: &UnifySetting, actor: &str) -> serde_json::Value {
    serde_json::json!({ "keys": setting.keys, "excluded": setting.excluded, "actor": actor })
}

impl ThisStore {
    async fn start_apply_impl(
        &self,
        hub: HubId,
        setting: &UnifySetting,
        actor: &str,
    ) -> StoreResult<TaskId> {
        parse_keys(&setting.keys)?;
        normalizer("TW", setting)?;
        self.create_task_impl(hub, "apply", &setting_params(setting, actor))
            .await
    }

    async fn run_apply_impl(
        &self,
        hub: HubId,
        task_id: TaskId,
        options: &ApplyOptions,
    ) -> StoreResult<Task> {
        let task = self.get_task_impl(hub, task_id).await?;
        if task.kind != "apply" {
            return Err(StoreError::Invalid(format!(
                "task {task_id} is not an apply"
            )));
        }
        if task.status == "succeeded" || task.status == "failed" {
            return Ok(task);
        }
        let setting = UnifySetting {
            keys: serde_json::from_value(task.params["keys"].clone())?,
            excluded: serde_json::from_value(task.params["excluded"].clone())?,
        };
        let actor = task.params["actor"].as_str().unwrap_or_default().to_owned();
        let mut attempt = 0;
        let outcome = loop {
            match self
                .apply_attempt(hub, task_id, &setting, &actor, options)
                .await
            {
                Err(StoreError::Conflict(_) | StoreError::Contention { .. })
                    if attempt < MAX_APPLY_ATTEMPTS =>
                {
                    attempt += 1
                }
                other => break other,
            }
        };
        if let Err(e) = &outcome {
            self.finish_task_impl(hub, task_id, Err(e.to_string()))
                .await?;
        }
        self.get_task_impl(hub, task_id).await
    }

    async fn plan_apply(&self, hub: HubId, setting: &UnifySetting) -> StoreResult<ApplyPlan> {
        let keys = parse_keys(&setting.keys)?;
        let line_is_key = keys.contains(&IdentifierField::LineUid);
        let mut tx = self.begin_snapshot().await?;
        let (marker, cross): (i64, i64) = sqlx::query_as(&format!(
            "SELECT {WRITTEN_EVENTS}, h.cross_product FROM hubs h WHERE h.hub_id = $1"
        ))
                .bind(hub)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound("hub"))?;
        let channels: Vec<(i64, i64, String, String, String, Option<i64>)> = sqlx::query_as(
            "SELECT ch.id, ch.organization_id, ch.channel_type, ch.product, o.default_region, cm.connection_id \
             FROM channels ch JOIN organizations o ON o.hub_id = ch.hub_id AND o.id = ch.organization_id \
             LEFT JOIN connection_members cm ON cm.hub_id = ch.hub_id AND cm.organization_id = ch.organization_id \
             WHERE ch.hub_id = $1",
        )
        .bind(hub)
        .fetch_all(&mut *tx)
        .await?;
        let mut channel_scope: HashMap<i64, (String, String)> = HashMap::new();
        let mut normalizers: HashMap<String, Normalizer> = HashMap::new();
        for (id, org, kind, product, region, group) in channels {
            let scope = scope_name(
                org,
                group,
                cross != 0,
                &product,
                kind == "line",
                line_is_key,
            );
            if !normalizers.contains_key(&region) {
                normalizers.insert(region.clone(), normalizer(&region, setting)?);
            }
            channel_scope.insert(id, (scope, region));
        }
        let mut key_names: Vec<&str> = keys.iter().map(|k| k.name()).collect();
        // Up to three keys; the rest are padded with a name no field has.
        key_names.resize(3, "");
        let (contact_rows, identifiers) = self
            .read_contacts_and_keys(&mut tx, hub, [key_names[0], key_names[1], key_names[2]])
            .await?;
        tx.commit().await?;

        let mut contacts: Vec<(i64, i64, String)> = Vec::with_capacity(contact_rows.len());
        let mut stored: Vec<StoredProfile> = Vec::with_capacity(contact_rows.len());
        for (contact, channel, scope, id, bucket, count, oldest) in contact_rows {
            let (Some(id), Some(bucket), Some(count), Some(oldest)) = (id, bucket, count, oldest)
            else {
                return Err(StoreError::Corrupt(format!(
                    "contact {contact} has no profile"
                )));
            };
            if contacts.last().is_some_and(|last| last.0 == contact) {
                return Err(StoreError::Corrupt(format!(
                    "contact {contact} is in two live profiles"
                )));
            }
            contacts.push((contact, channel, scope));
            stored.push(StoredProfile {
                id,
                bucket,
                count,
                oldest,
            });
        }

        // The key graph over contacts in age order, on top of the stored partition.
        let slots: Vec<Slot> = keys
            .iter()
            .map(|f| Slot {
                field: f.clone(),
                merges: true,
                unique: false,
            })
            .collect();
        let mut graph = KeyGraph::with_capacity(slots, contacts.len(), identifiers.len() * keys.len());
        let mut scope_ids: HashMap<String, u32> = HashMap::new();
        let mut ids = identifiers.iter().peekable();
        let mut staged = Vec::new();
        for (contact, channel, old_scope) in &contacts {
            let (scope, region) = channel_scope
                .get(channel)
                .ok_or(StoreError::NotFound("channel"))?;
            let next_scope = scope_ids.len() as u32;
            let scope_id = *scope_ids.entry(scope.clone()).or_insert(next_scope);
            let normalizer = &normalizers[region];
            let mut values: Vec<(u8, &str)> = Vec::new();
            if let Some((_, v0, v1, v2)) = ids.next_if(|row| row.0 == *contact) {
                for (slot, value) in [v0, v1, v2].into_iter().enumerate() {
                    if let Some(value) = value
                        && !is_excluded(normalizer, key_names[slot], value)
                    {
                        values.push((slot as u8, value.as_str()));
                    }
                }
            }
            graph.add_contact(scope_id, values);
            if scope != old_scope {
                staged.push(StagedRow {
                    contact_id: *contact,
                    bucket_id: None,
                    scope: Some(scope.clone()),
                });
            }
        }
        let mut prior_uf = UnionFind::new(contacts.len());
        let mut first_of_profile: HashMap<i64, u32> = HashMap::new();
        for (i, p) in stored.iter().enumerate() {
            let first = *first_of_profile.entry(p.id).or_insert(i as u32);
            prior_uf.union(first, i as u32);
        }
        let prior = Partition::from_union_find(&mut prior_uf);
        let resolved = resolve(&graph, Some(&prior));

        // Group contacts of each resolved profile; more than one stored profile means a merge.
        let members = resolved.members();
        let mut merges = Vec::new();
        let mut scope_rows: HashMap<i64, usize> = staged
            .iter()
            .enumerate()
            .map(|(i, r)| (r.contact_id, i))
            .collect();
        for p in 0..members.n_profiles() as u32 {
            let group = members.of(p);
            let mut profiles: Vec<StoredProfile> =
                group.iter().map(|&c| stored[c as usize]).collect();
            profiles.sort_by_key(|s| s.id);
            profiles.dedup_by_key(|s| s.id);
            if profiles.len() < 2 {
                continue;
            }
            let survivor = *profiles
                .iter()
                .min_by_key(|s| (s.oldest, s.id))
                .expect("two profiles");
            let target = *profiles
                .iter()
                .max_by_key(|s| (s.count, s.id == survivor.id))
                .expect("two profiles");
            // Which stored profiles hold each value, to name the value that ties each one in.
            let mut holders: HashMap<u32, Vec<i64>> = HashMap::new();
            for &c in group {
                for &v in graph.values_of(c) {
                    let h = holders.entry(v).or_default();
                    if !h.contains(&stored[c as usize].id) {
                        h.push(stored[c as usize].id);
                    }
                }
            }
            let mut by_value: BTreeMap<(String, String), Vec<i64>> = BTreeMap::new();
            let mut shared: Vec<(&u32, &Vec<i64>)> =
                holders.iter().filter(|(_, h)| h.len() > 1).collect();
            shared.sort_by_key(|(v, _)| **v);
            for s in profiles.iter().filter(|s| s.id != survivor.id) {
                let via = shared
                    .iter()
                    .find(|(_, h)| h.contains(&s.id))
                    .map(|(v, _)| {
                        let (slot, value) = graph.value(**v);
                        (slot.field.name().to_owned(), value.to_owned())
                    })
                    .unwrap_or_default();
                by_value.entry(via).or_default().push(s.id);
            }
            for &c in group {
                if stored[c as usize].bucket != target.bucket {
                    let contact_id = contacts[c as usize].0;
                    match scope_rows.get(&contact_id) {
                        Some(&i) => staged[i].bucket_id = Some(target.bucket),
                        None => {
                            scope_rows.insert(contact_id, staged.len());
                            staged.push(StagedRow {
                                contact_id,
                                bucket_id: Some(target.bucket),
                                scope: None,
                            });
                        }
                    }
                }
            }
            merges.push(PlannedMerge {
                survivor: survivor.id,
                target_bucket: target.bucket,
                member_count: group.len() as i64,
                oldest_contact: contacts[group[0] as usize].0.min(survivor.oldest),
                absorbed: profiles
                    .iter()
                    .map(|s| s.id)
                    .filter(|&id| id != survivor.id)
                    .collect(),
                by_value,
            });
        }
        staged.sort_by_key(|r| r.contact_id);
        Ok(ApplyPlan {
            marker,
            staged,
            merges,
            profiles_before: prior.n_profiles(),
            profiles_after: resolved.n_profiles(),
        })
    }

    async fn apply_attempt(
        &self,
        hub: HubId,
        task_id: TaskId,
        setting: &UnifySetting,
        actor: &str,
        options: &ApplyOptions,
    ) -> StoreResult<()> {
        let plan = self.plan_apply(hub, setting).await?;
        let total = plan.staged.len() as i64;
        self.progress_impl(hub, task_id, 0, total).await?;
        let mut tx = self.begin_write().await?;
        for table in ["apply_staging", "apply_profile_staging"] {
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE hub_id = $1 AND task_id = $2"
            ))
            .bind(hub)
            .bind(task_id)
            .execute(&mut *tx)
            .await?;
        }
        write_profile_staging(&mut tx, hub, task_id, &plan.merges).await?;
        tx.commit().await?;
        let mut done = 0i64;
        for batch in plan.staged.chunks(options.batch_size.max(1)) {
            let mut tx = self.begin_write().await?;
            write_staging(&mut tx, hub, task_id, batch).await?;
            done += batch.len() as i64;
            sqlx::query(
                "UPDATE tasks SET status = 'running', done = $3 WHERE hub_id = $1 AND id = $2",
            )
            .bind(hub)
            .bind(task_id)
            .bind(done)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            if let Some(hook) = &options.on_batch {
                hook(done, total);
            }
        }
        self.swap_in(hub, task_id, setting, actor, &plan).await
    }

    /// The one transaction that makes the apply visible.
    async fn swap_in(
        &self,
        hub: HubId,
        task_id: TaskId,
        setting: &UnifySetting,
        actor: &str,
        plan: &ApplyPlan,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let conn: &mut Conn = &mut tx;
        lock_hub_exclusive(conn, hub).await?;
        let (marker,): (i64,) = sqlx::query_as(&format!(
            "SELECT {WRITTEN_EVENTS} FROM hubs h WHERE h.hub_id = $1"
        ))
        .bind(hub)
        .fetch_one(&mut *conn)
        .await?;
        if marker != plan.marker {
            return Err(StoreError::Conflict(
                "contacts changed while the apply was computed".into(),
            ));
        }
        for (table, column) in [
            ("memberships", "bucket_id"),
            ("contacts", "scope"),
            ("identifiers", "scope"),
        ] {
            let key = if table == "contacts" {
                "id"
            } else {
                "contact_id"
            };
            sqlx::query(&format!(
                "UPDATE {table} SET {column} = s.{column} FROM apply_staging s \
                 WHERE {table}.hub_id = $1 AND s.hub_id = $1 AND s.task_id = $2 \
                 AND s.contact_id = {table}.{key} AND s.{column} IS NOT NULL"
            ))
            .bind(hub)
            .bind(task_id)
            .execute(&mut *conn)
            .await?;
        }
        let now = now_ms();
        let version = load_setting(conn, hub).await?.version + 1;
        let cause_id = version.to_string();
        let mut events = Vec::new();
        let n_ledger: usize = plan.merges.iter().map(|m| m.by_value.len()).sum();
        let seqs = next_ids(conn, hub, n_ledger).await?;
        swap_profiles(conn, hub, task_id, now).await?;
        let mut ledger = Vec::with_capacity(n_ledger);
        for m in &plan.merges {
            for ((field, value), merged) in &m.by_value {
                ledger.push((m.survivor, merged, field.as_str(), value.as_str()));
                events.push(merged_event(m.survivor, merged, field, value));
            }
        }
        insert_setting_ledger(conn, hub, &seqs, &ledger, now, &cause_id, actor).await?;
        sqlx::query("INSERT INTO unify_settings (hub_id, version, keys, excluded, actor, task_id, applied_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(hub)
            .bind(version)
            .bind(serde_json::to_string(&setting.keys)?)
            .bind(serde_json::to_string(&setting.excluded)?)
            .bind(actor.to_owned())
            .bind(task_id)
            .bind(now)
            .execute(&mut *conn)
            .await?;
        sqlx::query("DELETE FROM apply_staging WHERE hub_id = $1 AND task_id = $2")
            .bind(hub)
            .bind(task_id)
            .execute(&mut *conn)
            .await?;
        let result = serde_json::json!({
            "version": version,
            "merges": plan.merges.len(),
            "contacts_moved": plan.staged.iter().filter(|r| r.bucket_id.is_some()).count(),
            "profiles_before": plan.profiles_before,
            "profiles_after": plan.profiles_after,
        });
        finish_task_in(conn, hub, task_id, Ok(result)).await?;
        append_events(conn, hub, &events).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// How often an apply recomputes after writes raced it before it gives up.
const MAX_APPLY_ATTEMPTS: u32 = 5;

/// Stages each merge's profile changes: the survivor's new bucket, count and oldest contact
/// (`merged_into` NULL), and each absorbed profile's survivor.
async fn write_profile_staging(
    conn: &mut Conn,
    hub: HubId,
    task: TaskId,
    merges: &[PlannedMerge],
) -> StoreResult<()> {
    type Row = (i64, Option<i64>, Option<i64>, Option<i64>, Option<i64>);
    let rows: Vec<Row> = merges
        .iter()
        .flat_map(|m| {
            std::iter::once((
                m.survivor,
                Some(m.target_bucket),
                Some(m.member_count),
                Some(m.oldest_contact),
                None,
            ))
            .chain(
                m.absorbed
                    .iter()
                    .map(|&a| (a, None, None, None, Some(m.survivor))),
            )
        })
        .collect();
    for chunk in rows.chunks(rows_per_statement(7)) {
        let sql = format!(
            "INSERT INTO apply_profile_staging (hub_id, task_id, profile_id, bucket_id, \
             member_count, oldest_contact, merged_into) VALUES {}",
            values_list(chunk.len(), 7)
        );
        let mut q = sqlx::query(&sql);
        for (profile, bucket, count, oldest, merged_into) in chunk {
            q = q
                .bind(hub)
                .bind(task)
                .bind(*profile)
                .bind(*bucket)
                .bind(*count)
                .bind(*oldest)
                .bind(*merged_into);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Applies the staged profile changes: survivors take their new bucket and counts; every
/// profile merged into an absorbed one, then the absorbed ones, point at the survivor, so
/// resolving an old id stays one read.
async fn swap_profiles(conn: &mut Conn, hub: HubId, task: TaskId, at: Millis) -> StoreResult<()> {
    for sql in [
        "UPDATE profiles SET bucket_id = s.bucket_id, member_count = s.member_count, \
         oldest_contact = s.oldest_contact, updated_at = $3 FROM apply_profile_staging s \
         WHERE profiles.hub_id = $1 AND s.hub_id = $1 AND s.task_id = $2 \
         AND s.profile_id = profiles.id AND s.merged_into IS NULL",
        // An IN list rather than a join: SQLite, planning with bound parameters, may
        // otherwise scan the hub's profiles once per staged row.
        "UPDATE profiles SET merged_into = (SELECT s.merged_into FROM apply_profile_staging s \
         WHERE s.hub_id = $1 AND s.task_id = $2 AND s.profile_id = profiles.merged_into), \
         updated_at = $3 WHERE profiles.hub_id = $1 AND profiles.merged_into IN \
         (SELECT s.profile_id FROM apply_profile_staging s \
          WHERE s.hub_id = $1 AND s.task_id = $2 AND s.merged_into IS NOT NULL)",
        "UPDATE profiles SET merged_into = s.merged_into, updated_at = $3 \
         FROM apply_profile_staging s WHERE profiles.hub_id = $1 AND s.hub_id = $1 \
         AND s.task_id = $2 AND s.profile_id = profiles.id AND s.merged_into IS NOT NULL",
        "DELETE FROM apply_profile_staging WHERE hub_id = $1 AND task_id = $2 AND $3 = $3",
    ] {
        sqlx::query(sql)
            .bind(hub)
            .bind(task)
            .bind(at)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// The apply's ledger rows (survivor, absorbed, field, value), many per statement.
async fn insert_setting_ledger(
    conn: &mut Conn,
    hub: HubId,
    seqs: &[i64],
    rows: &[(i64, &Vec<i64>, &str, &str)],
    at: Millis,
    cause_id: &str,
    actor: &str,
) -> StoreResult<()> {
    if seqs.len() < rows.len() {
        return Err(StoreError::Corrupt("ran out of ledger ids".into()));
    }
    let per = rows_per_statement(10);
    for (n, chunk) in rows.chunks(per).enumerate() {
        let sql = format!(
            "INSERT INTO merge_ledger (hub_id, seq, at, survivor_id, absorbed_ids, key_field, \
             key_value, cause_kind, cause_id, actor) VALUES {}",
            values_list(chunk.len(), 10)
        );
        let mut q = sqlx::query(&sql);
        for (i, (survivor, absorbed, field, value)) in chunk.iter().enumerate() {
            q = q
                .bind(hub)
                .bind(seqs[n * per + i])
                .bind(at)
                .bind(*survivor)
                .bind(serde_json::to_string(absorbed)?)
                .bind((*field).to_owned())
                .bind((*value).to_owned())
                .bind("setting")
                .bind(cause_id.to_owned())
                .bind(actor.to_owned());
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Each contact with its live profile (`$1` the hub), in contact order: one read, since a row
/// costs more than the join (two reads of 1M rows took 3.3 s of a 1M apply through sqlx).
const APPLY_CONTACTS_SQL: &str = "SELECT c.id, c.channel_id, c.scope, p.id, p.bucket_id, \
     p.member_count, p.oldest_contact \
     FROM contacts c \
     LEFT JOIN memberships m ON m.hub_id = c.hub_id AND m.contact_id = c.id \
     LEFT JOIN profiles p ON p.hub_id = m.hub_id AND p.bucket_id = m.bucket_id \
       AND +p.merged_into IS NULL \
     WHERE c.hub_id = $1 ORDER BY c.id";

/// One row per contact with its value of each key field `$2`, `$3`, `$4` (a contact holds at
/// most one value per field: the primary key is hub, contact, field). Rows, not SQL, are what
/// a read costs here: three rows per contact took 4.7 s of a 1M apply through sqlx.
const APPLY_KEYS_SQL: &str = "SELECT contact_id, \
     max(CASE WHEN field = $2 THEN value END), \
     max(CASE WHEN field = $3 THEN value END), \
     max(CASE WHEN field = $4 THEN value END) \
     FROM identifiers WHERE hub_id = $1 AND field IN ($2, $3, $4) \
     GROUP BY contact_id ORDER BY contact_id";
