// Auto-unifying upsert through sqlx, shared by both adapters (included by `sqlite.rs` and
// `postgres.rs`, which provide `Conn`, `FOR_UPDATE`, the lock functions, the id block and
// `finish_upsert`). What it decides is in `upsert_plan.rs`; this file does the reads and
// writes. It serves PostgreSQL's upserts (`upsert_attempt` in `postgres.rs`) and both backends'
// imports, inside the import's transaction; SQLite runs its own upserts on its writer thread
// (`sqlite/writer.rs`).
//
// The round trips are few on purpose: one read for the channel, setting, id block and stored
// contact; one for the profiles every unify-key value ties to (one identifier row per value: a
// value is in one profile per scope); then the writes, which need nothing back and are queued
// in a `WriteBatch`. PostgreSQL takes the first locks and reads the context with its `BEGIN`,
// the value locks with the tie query (which locks the tied profiles too), and sends the
// writes, events and commit as one query with literal values: three round trips. A merge
// moves no membership row (see `merge_profiles`).

impl ThisStore {
    /// An upsert, retried when another transaction got in the way.
    async fn upsert_with_retry(
        &self,
        hub: HubId,
        input: &ContactInput,
        actor: &str,
    ) -> StoreResult<Upserted> {
        reject_nul(input)?;
        let mut attempt = 0;
        loop {
            match self.upsert_attempt(hub, input, actor).await {
                Err(StoreError::Contention { .. }) if attempt < MAX_RETRIES => attempt += 1,
                other => return other,
            }
        }
    }
}

/// An upsert inside the caller's write transaction (imports batch many in one).
async fn upsert_in(
    conn: &mut Conn,
    hub: HubId,
    input: &ContactInput,
    actor: &str,
) -> StoreResult<Upserted> {
    reject_nul(input)?;
    lock_hub_and_contact(
        conn,
        hub,
        contact_lock_key(hub, input.channel_id, &input.external_id),
    )
    .await?;
    let context = load_upsert_context(conn, hub, input).await?;
    upsert_locked(conn, hub, input, context, actor, false).await
}

/// An upsert in a transaction that holds the hub lock (shared) and the contact's key lock,
/// from its first read (`context`, read under those locks). With `own_transaction`, the
/// upsert's own transaction ends with its last writes, which carry the commit (PostgreSQL:
/// see `upsert_attempt`).
async fn upsert_locked(
    conn: &mut Conn,
    hub: HubId,
    input: &ContactInput,
    context: UpsertContext,
    actor: &str,
    own_transaction: bool,
) -> StoreResult<Upserted> {
    let mut plan = plan_contact(hub, input, context)?;

    // Which live profiles the contact ties to, and through which value; each value's lock is
    // taken with the tie query, before it reads. With one writer, the tie query also reads
    // the stored contact's own profile.
    let own_in_tie_query = !plan.is_new && !ROW_LOCKS;
    let key_values: Vec<&(String, String)> = plan.key_values.iter().collect();
    let (tied, own, tied_locked) = lock_values_and_tie(
        conn,
        hub,
        &plan.scope,
        plan.contact_id,
        &key_values,
        std::mem::take(&mut plan.value_locks),
        own_in_tie_query,
    )
    .await?;
    let mut current = match &own {
        _ if plan.is_new => None,
        Some(row) => Some(row.id),
        None if own_in_tie_query => return Err(no_live_profile(plan.contact_id)),
        None => Some(profile_of_contact(conn, hub, plan.contact_id).await?),
    };
    let mut ties = tie_list(&tied, current);
    let locked = if !ROW_LOCKS {
        one_writer_rows(tied, own)
    } else {
        // Profiles the tie query locked already (PostgreSQL, a new contact) need no second
        // round trip.
        let mut prelocked: Option<Vec<ProfileRow>> =
            tied_locked.then(|| tied.into_iter().map(|t| t.0).collect());
        // Lock the profiles; one merged meanwhile is replaced by its survivor and we lock again.
        loop {
            let mut ids: Vec<i64> = ties.iter().map(|t| t.0).chain(current).collect();
            ids.sort_unstable();
            ids.dedup();
            if ids.is_empty() {
                break Vec::new();
            }
            let rows = match prelocked.take() {
                Some(mut rows) if ids.iter().all(|id| rows.iter().any(|r| r.id == *id)) => {
                    rows.retain(|r| ids.contains(&r.id));
                    rows.sort_by_key(|r| r.id);
                    rows.dedup_by_key(|r| r.id);
                    rows
                }
                _ => lock_profiles(conn, hub, &ids).await?,
            };
            let moved: Vec<(i64, i64)> = rows
                .iter()
                .filter_map(|r| r.merged_into.map(|m| (r.id, m)))
                .collect();
            if moved.is_empty() {
                break rows;
            }
            for (from, to) in moved {
                for t in ties.iter_mut().filter(|t| t.0 == from) {
                    t.0 = to;
                }
                // The contact's own profile too: left unmapped, a merged one would be locked
                // again and again.
                if current == Some(from) {
                    current = Some(to);
                }
            }
        }
    };
    let fresh_ids = plan.ids.take(conn, hub, ids_needed(locked.len())).await?;
    let settled = plan_unification(hub, &mut plan, locked, &ties, fresh_ids, actor)?;
    finish_upsert(
        conn,
        hub,
        std::mem::take(&mut plan.batch),
        (plan.ids.next, plan.event_seq),
        &settled.2,
        own_transaction,
    )
    .await?;
    Ok(upserted(plan, input, settled))
}

/// A stored contact whose profile the tie query did not find: the store is inconsistent.
fn no_live_profile(contact: ContactId) -> StoreError {
    StoreError::Corrupt(format!("contact {contact} has no live profile"))
}

/// Refuses a contact with a NUL character (U+0000) in any of its text: PostgreSQL cannot
/// store one in a text column, so both backends refuse it, before anything is written.
fn reject_nul(input: &ContactInput) -> StoreResult<()> {
    let has_nul = |s: &str| s.contains('\0');
    let culprit = if has_nul(&input.external_id) {
        Some("external_id")
    } else {
        input
            .fields
            .iter()
            .find(|(name, value)| has_nul(name) || value.as_deref().is_some_and(has_nul))
            .map(|(name, _)| name.as_str())
            .or_else(|| {
                input
                    .tags
                    .iter()
                    .flatten()
                    .any(|t| has_nul(t))
                    .then_some("tags")
            })
            .or_else(|| {
                input
                    .custom_fields
                    .iter()
                    .flatten()
                    .any(|(k, v)| has_nul(k) || has_nul(v))
                    .then_some("custom_fields")
            })
    };
    match culprit {
        Some(name) => Err(StoreError::Invalid(format!(
            "`{}` contains the NUL character (U+0000), which cannot be stored",
            name.replace('\0', "\\0")
        ))),
        None => Ok(()),
    }
}

/// How often a transaction that lost a race is retried.
const MAX_RETRIES: u32 = 20;

/// The stored contact an upsert updates.
struct StoredContact {
    id: i64,
    fields: String,
    tags: String,
    custom_fields: String,
    created_at: i64,
}

/// Everything an upsert reads before it writes, in one statement.
struct UpsertContext {
    channel: ChannelInfo,
    setting: UnifySetting,
    ids: IdBlock,
    /// The hub's last event number when the upsert read it (used where one writer keeps it).
    event_seq: i64,
    existing: Option<StoredContact>,
}

/// Ids handed out within one transaction: a block from the sequence on PostgreSQL, the
/// hub's counter on SQLite (whose one writer stores the counter back in `finish_upsert`).
struct IdBlock {
    next: i64,
    end: i64,
}

impl IdBlock {
    /// `n` ids from the block, which must hold that many.
    fn take_local(&mut self, n: usize) -> StoreResult<Vec<i64>> {
        let n = n as i64;
        if self.end - self.next < n {
            return Err(StoreError::Corrupt("the id block is used up".to_owned()));
        }
        self.next += n;
        Ok((self.next - n..self.next).collect())
    }

    /// `n` ids: from the block while it lasts, then from fresh blocks.
    async fn take(&mut self, conn: &mut Conn, hub: HubId, n: usize) -> StoreResult<Vec<i64>> {
        let mut ids = Vec::with_capacity(n);
        while ids.len() < n {
            if self.next >= self.end {
                self.next = next_id(conn, hub).await?;
                self.end = self.next + ID_BLOCK_LEN;
            }
            ids.push(self.next);
            self.next += 1;
        }
        Ok(ids)
    }
}

type ContextRow = (
    i64,
    String,
    String,
    String,
    Option<i64>,
    i64,
    i64,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    i64,
);

/// The channel, the current unify setting, a block of ids and the stored contact, if any.
async fn load_upsert_context(
    conn: &mut Conn,
    hub: HubId,
    input: &ContactInput,
) -> StoreResult<UpsertContext> {
    let row: Option<ContextRow> = sqlx::query_as(&upsert_context_sql())
        .bind(hub)
        .bind(input.channel_id)
        .bind(input.external_id.clone())
        .fetch_optional(&mut *conn)
        .await?;
    upsert_context(row)
}

/// The upsert's first read, over the hub (`$1`), the channel (`$2`) and the contact's
/// external id (`$3`): one `ContextRow`, none when the channel is not the hub's.
fn upsert_context_sql() -> String {
    format!(
        "SELECT ch.organization_id, ch.channel_type, ch.product, o.default_region, \
         cm.connection_id, h.cross_product, {ID_BLOCK_SQL}, \
         (SELECT s.keys FROM unify_settings s WHERE s.hub_id = $1 ORDER BY s.version DESC LIMIT 1), \
         (SELECT s.excluded FROM unify_settings s WHERE s.hub_id = $1 ORDER BY s.version DESC LIMIT 1), \
         c.id, c.fields, c.tags, c.custom_fields, c.created_at, h.event_seq \
         FROM channels ch \
         JOIN organizations o ON o.hub_id = ch.hub_id AND o.id = ch.organization_id \
         JOIN hubs h ON h.hub_id = ch.hub_id \
         LEFT JOIN connection_members cm \
           ON cm.hub_id = ch.hub_id AND cm.organization_id = ch.organization_id \
         LEFT JOIN contacts c \
           ON c.hub_id = ch.hub_id AND c.channel_id = ch.id AND c.external_id = $3 \
         WHERE ch.hub_id = $1 AND ch.id = $2"
    )
}

/// The context from the row of `upsert_context_sql`.
fn upsert_context(row: Option<ContextRow>) -> StoreResult<UpsertContext> {
    let (
        org,
        channel_type,
        product,
        region,
        group,
        cross,
        first_id,
        keys,
        excluded,
        id,
        fields,
        tags,
        custom_fields,
        created_at,
        event_seq,
    ) = row.ok_or(StoreError::NotFound("channel"))?;
    let setting = UnifySetting {
        keys: keys
            .map(|k| serde_json::from_str(&k))
            .transpose()?
            .unwrap_or_default(),
        excluded: excluded
            .map(|e| serde_json::from_str(&e))
            .transpose()?
            .unwrap_or_default(),
    };
    let existing = match (id, fields, tags, custom_fields, created_at) {
        (Some(id), Some(fields), Some(tags), Some(custom_fields), Some(created_at)) => {
            Some(StoredContact {
                id,
                fields,
                tags,
                custom_fields,
                created_at,
            })
        }
        _ => None,
    };
    Ok(UpsertContext {
        channel: ChannelInfo {
            organization_id: org,
            channel_type,
            product,
            region,
            group,
            cross_product: cross != 0,
        },
        setting,
        ids: IdBlock {
            next: first_id,
            end: first_id.saturating_add(ID_BLOCK_LEN),
        },
        event_seq,
        existing,
    })
}

/// Places `contact` in the bucket of profile `bucket`: the profile it joins, for good.
fn queue_membership(batch: &mut WriteBatch, hub: HubId, contact: ContactId, bucket: ProfileId) {
    batch.push(
        "INSERT INTO memberships (hub_id, contact_id, bucket_id) VALUES ($1, $2, $3)",
        vec![hub.into(), contact.into(), bucket.into()],
    );
}
