// Applying a new unify setting over all of a hub's contacts, shared by both adapters.
//
// Three phases: read a snapshot and resolve it with the core in memory on top of the stored
// partition (merges are permanent); stage the plan's rows (profile changes, and contacts whose
// scope changes) in batches, with progress on the task; then one transaction checks nothing
// was written since the snapshot and swaps everything in. A crash before the swap leaves only
// staged rows (ignored and cleared by the next run); the swap itself is atomic. No membership
// is written: an absorbed profile keeps its members and names its survivor (see
// `to_live_profile`). The plan is shared; each adapter writes it its own way
// (`postgres_apply.rs`, `sqlite/apply_write.rs`) through `start_staging`, `stage_batch` and
// `swap_in`.

/// A contact whose scope the apply changes.
#[derive(Clone, Debug)]
pub(crate) struct StagedRow {
    contact_id: i64,
    scope: String,
}

/// A profile the apply changes: a survivor takes its new member count and oldest contact
/// (`merged_into` `None`), an absorbed profile its survivor.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ProfileChange {
    profile_id: i64,
    member_count: Option<i64>,
    oldest_contact: Option<i64>,
    merged_into: Option<i64>,
}

/// One merge the apply performs.
struct PlannedMerge {
    survivor: i64,
    /// Absorbed profiles grouped by the (field, value) that ties them in.
    by_value: BTreeMap<(String, String), Vec<i64>>,
}

/// What the resolution decided.
struct ApplyPlan {
    marker: i64,
    /// Contacts whose scope changes, by contact id.
    staged: Vec<StagedRow>,
    /// Each merge's survivor, then the profiles it absorbs.
    profile_changes: Vec<ProfileChange>,
    merges: Vec<PlannedMerge>,
    /// Contacts that end in another profile than they were in.
    contacts_moved: usize,
    profiles_before: usize,
    profiles_after: usize,
}

/// A contact (id, channel, scope) and its live profile (id, oldest contact).
type ContactProfileRow = (i64, i64, String, Option<i64>, Option<i64>);

/// A contact's values of the (up to three) unify keys, in the keys' order.
type KeyValuesRow = (i64, Option<String>, Option<String>, Option<String>);

/// A stored profile as the apply sees it.
#[derive(Clone, Copy)]
struct StoredProfile {
    id: i64,
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
        // Per channel: its scope's name and number, and its region's normalizer.
        let mut channel_scope: HashMap<i64, (String, u32, usize)> = HashMap::new();
        let mut scope_ids: HashMap<String, u32> = HashMap::new();
        let mut regions: Vec<(String, Normalizer)> = Vec::new();
        for (id, org, kind, product, region, group) in channels {
            let scope = scope_name(
                org,
                group,
                cross != 0,
                &product,
                kind == "line",
                line_is_key,
            );
            let next_scope = scope_ids.len() as u32;
            let scope_id = *scope_ids.entry(scope.clone()).or_insert(next_scope);
            let region = match regions.iter().position(|(r, _)| *r == region) {
                Some(i) => i,
                None => {
                    regions.push((region.clone(), normalizer(&region, setting)?));
                    regions.len() - 1
                }
            };
            channel_scope.insert(id, (scope, scope_id, region));
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
        for (contact, channel, scope, id, oldest) in contact_rows {
            let (Some(id), Some(oldest)) = (id, oldest) else {
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
            stored.push(StoredProfile { id, oldest });
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
        let mut ids = identifiers.iter().peekable();
        let mut staged = Vec::new();
        let mut values: Vec<(u8, &str)> = Vec::with_capacity(3);
        // Contacts come in runs of one channel: look the channel up once per run.
        let mut last: Option<(i64, &(String, u32, usize))> = None;
        for (contact, channel, old_scope) in &contacts {
            let (scope, scope_id, region) = match last {
                Some((id, found)) if id == *channel => found,
                _ => {
                    let found = channel_scope
                        .get(channel)
                        .ok_or(StoreError::NotFound("channel"))?;
                    last = Some((*channel, found));
                    found
                }
            };
            let normalizer = &regions[*region].1;
            values.clear();
            if let Some((_, v0, v1, v2)) = ids.next_if(|row| row.0 == *contact) {
                for (slot, value) in [v0, v1, v2].into_iter().enumerate() {
                    if let Some(value) = value
                        && !is_excluded(normalizer, key_names[slot], value)
                    {
                        values.push((slot as u8, value.as_str()));
                    }
                }
            }
            graph.add_contact(*scope_id, values.iter().copied());
            if scope != old_scope {
                staged.push(StagedRow {
                    contact_id: *contact,
                    scope: scope.clone(),
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
        let mut profile_changes = Vec::new();
        let mut contacts_moved = 0;
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
            // Which stored profiles hold each value, to name the value that ties each one in:
            // (value, profile) pairs, sorted, so each value's holders are a run.
            let mut holders: Vec<(u32, i64)> = group
                .iter()
                .flat_map(|&c| {
                    let id = stored[c as usize].id;
                    graph.values_of(c).iter().map(move |&v| (v, id))
                })
                .collect();
            holders.sort_unstable();
            holders.dedup();
            let mut shared: Vec<&[(u32, i64)]> = holders
                .chunk_by(|a, b| a.0 == b.0)
                .filter(|run| run.len() > 1)
                .collect();
            shared.sort_by_key(|run| run[0].0);
            let mut by_value: BTreeMap<(String, String), Vec<i64>> = BTreeMap::new();
            for s in profiles.iter().filter(|s| s.id != survivor.id) {
                let via = shared
                    .iter()
                    .find(|run| run.iter().any(|h| h.1 == s.id))
                    .map(|run| {
                        let (slot, value) = graph.value(run[0].0);
                        (slot.field.name().to_owned(), value.to_owned())
                    })
                    .unwrap_or_default();
                by_value.entry(via).or_default().push(s.id);
            }
            contacts_moved += group
                .iter()
                .filter(|&&c| stored[c as usize].id != survivor.id)
                .count();
            profile_changes.push(ProfileChange {
                profile_id: survivor.id,
                member_count: Some(group.len() as i64),
                oldest_contact: Some(contacts[group[0] as usize].0.min(survivor.oldest)),
                merged_into: None,
            });
            profile_changes.extend(profiles.iter().filter(|s| s.id != survivor.id).map(|s| {
                ProfileChange {
                    profile_id: s.id,
                    member_count: None,
                    oldest_contact: None,
                    merged_into: Some(survivor.id),
                }
            }));
            merges.push(PlannedMerge {
                survivor: survivor.id,
                by_value,
            });
        }
        Ok(ApplyPlan {
            marker,
            staged,
            profile_changes,
            merges,
            contacts_moved,
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
        let plan = std::sync::Arc::new(self.plan_apply(hub, setting).await?);
        let rows = plan.n_rows();
        self.progress_impl(hub, task_id, 0, rows as i64).await?;
        self.start_staging(hub, task_id, &plan).await?;
        let mut done = 0;
        while done < rows {
            let end = (done + options.batch_size.max(1)).min(rows);
            self.stage_batch(hub, task_id, &plan, done..end).await?;
            done = end;
            if let Some(hook) = &options.on_batch {
                hook(done as i64, rows as i64);
            }
        }
        self.swap_in(hub, task_id, setting, actor, &plan).await
    }
}

/// How often an apply recomputes after writes raced it before it gives up.
const MAX_APPLY_ATTEMPTS: u32 = 5;

impl ApplyPlan {
    /// The rows the apply stages: its contacts whose scope changes, then its profile changes.
    fn n_rows(&self) -> usize {
        self.staged.len() + self.profile_changes.len()
    }

    /// Rows `rows` of the staged rows (numbered as in `n_rows`): the contacts and the profile
    /// changes among them.
    fn rows(&self, rows: std::ops::Range<usize>) -> (&[StagedRow], &[ProfileChange]) {
        let n = self.staged.len();
        let contacts = &self.staged[rows.start.min(n)..rows.end.min(n)];
        let profiles = &self.profile_changes[rows.start.max(n) - n..rows.end.max(n) - n];
        (contacts, profiles)
    }

    /// The staged columns the swap moves into their tables, as (table, column, the table's
    /// contact column): none when no contact changes scope, since each statement reads every
    /// staged row.
    fn staged_columns(&self) -> Vec<(&'static str, &'static str, &'static str)> {
        if self.staged.is_empty() {
            return Vec::new();
        }
        vec![("contacts", "scope", "id"), ("identifiers", "scope", "contact_id")]
    }

    /// The merges' ledger rows (survivor, absorbed, field, value), one per merge and value
    /// that ties profiles in; each also makes one `profile.merged` event.
    fn merge_records(&self) -> impl Iterator<Item = (i64, &Vec<i64>, &str, &str)> {
        self.merges.iter().flat_map(|m| {
            m.by_value
                .iter()
                .map(|((field, value), merged)| (m.survivor, merged, field.as_str(), value.as_str()))
        })
    }

    /// The task's result once the swap is in.
    fn result(&self, version: i64) -> serde_json::Value {
        serde_json::json!({
            "version": version,
            "merges": self.merges.len(),
            "contacts_moved": self.contacts_moved,
            "profiles_before": self.profiles_before,
            "profiles_after": self.profiles_after,
        })
    }
}

/// Moves one staged column from `staging` into its table (`$1` the hub, `$2` the task); see
/// `ApplyPlan::staged_columns`.
fn swap_staged_sql(staging: &str, (table, column, key): (&str, &str, &str)) -> String {
    format!(
        "UPDATE {table} SET {column} = s.{column} FROM {staging} s \
         WHERE {table}.hub_id = $1 AND s.hub_id = $1 AND s.task_id = $2 \
         AND s.contact_id = {table}.{key}"
    )
}

/// Records that the staged rows up to `$3` are written, for task `$2` of hub `$1`.
const STAGED_DONE_SQL: &str =
    "UPDATE tasks SET status = 'running', done = $3 WHERE hub_id = $1 AND id = $2";

/// The unify-settings row an apply adds (`$1` hub .. `$7` applied at).
const INSERT_SETTING_SQL: &str = "INSERT INTO unify_settings (hub_id, version, keys, excluded, \
     actor, task_id, applied_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// Each contact with its live profile (`$1` the hub), in contact order: one read, since a row
/// costs more than the join (two reads of 1M rows took 3.3 s of a 1M apply through sqlx).
/// Outer joins, so that a contact without a profile shows (as corrupt) rather than vanishing.
const APPLY_CONTACTS_SQL: &str = "SELECT c.id, c.channel_id, c.scope, p.id, p.oldest_contact \
     FROM contacts c \
     LEFT JOIN memberships m ON m.hub_id = c.hub_id AND m.contact_id = c.id \
     LEFT JOIN profiles o ON o.hub_id = m.hub_id AND o.id = m.bucket_id \
     LEFT JOIN profiles p ON p.hub_id = o.hub_id AND p.id = COALESCE(o.merged_into, o.id) \
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
