// Auto-unifying upsert, shared by both adapters (included by `sqlite.rs` and `postgres.rs`,
// which provide `Conn`, `FOR_UPDATE`, the lock functions, the id block and `finish_upsert`).
//
// The round trips are few on purpose: one read for the channel, setting, id block and stored
// contact; one for the profiles every unify-key value ties to (one identifier row per value: a
// value is in one profile per scope); then the writes, which need nothing back and are queued
// in a `WriteBatch`. On SQLite the begin rides with the first read and the commit with the
// writes, one multi-statement query: a new contact is three round trips. PostgreSQL takes the
// first locks with its `BEGIN`, the value locks with the tie query (which locks the tied
// profiles too), and sends the writes, events and commit as one query with literal values:
// four round trips. A merge moves only the smaller side's membership rows (see
// `merge_profiles`).

impl ThisStore {
    /// One attempt at an upsert; the caller retries on contention.
    async fn upsert_once(
        &self,
        hub: HubId,
        input: &ContactInput,
        actor: &str,
    ) -> StoreResult<Upserted> {
        let contact_key = contact_lock_key(hub, input.channel_id, &input.external_id);
        let mut tx = UpsertTx {
            conn: self.upsert_pool().acquire().await?,
            open: true,
        };
        if let Err(e) = begin_upsert(&mut tx.conn, hub, contact_key).await {
            // A `BEGIN` that failed left no transaction open.
            tx.open = false;
            return Err(e);
        }
        match upsert_locked(&mut tx.conn, hub, input, actor, true).await {
            Ok(upserted) => {
                tx.open = false;
                Ok(upserted)
            }
            Err(e) => {
                tx.rollback().await;
                Err(e)
            }
        }
    }

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
            match self.upsert_once(hub, input, actor).await {
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
    upsert_locked(conn, hub, input, actor, false).await
}

/// An upsert's transaction, begun and ended by hand so that the commit goes out with the last
/// writes (sqlx's `Transaction` commits in a round trip of its own). Dropped while open, when
/// the caller's future is cancelled mid-upsert, the connection is closed rather than returned
/// to the pool inside a transaction.
struct UpsertTx {
    conn: sqlx::pool::PoolConnection<Db>,
    open: bool,
}

impl UpsertTx {
    /// Rolls back after an error; the connection is closed if that fails too.
    async fn rollback(&mut self) {
        if sqlx::Executor::execute(&mut *self.conn, "ROLLBACK").await.is_ok() {
            self.open = false;
        }
    }
}

impl Drop for UpsertTx {
    fn drop(&mut self) {
        if self.open {
            self.conn.close_on_drop();
        }
    }
}

/// An upsert in a transaction that holds the hub lock (shared) and the contact's key lock.
/// With `own_transaction`, the upsert's own transaction ends with its last writes, which carry
/// the commit; on SQLite it also begins with the first read (`BEGIN_WITH_CONTEXT`).
async fn upsert_locked(
    conn: &mut Conn,
    hub: HubId,
    input: &ContactInput,
    actor: &str,
    own_transaction: bool,
) -> StoreResult<Upserted> {
    let begin = if own_transaction {
        BEGIN_WITH_CONTEXT
    } else {
        ""
    };
    let context = load_upsert_context(conn, hub, input, begin).await?;
    let mut ids = context.ids;
    let keys = parse_keys(&context.setting.keys)?;
    let scope = context
        .channel
        .scope(keys.contains(&IdentifierField::LineUid));
    let mut normalizer = normalizer(&context.channel.region, &context.setting)?;
    let existing = context.existing;
    let now = now_ms();
    let written_at = input.updated_at.unwrap_or(now);
    let (mut fields, mut tags, mut custom_fields, created_at) = match &existing {
        Some(c) => (
            serde_json::from_str::<BTreeMap<String, FieldValue>>(&c.fields)?,
            serde_json::from_str::<Vec<String>>(&c.tags)?,
            serde_json::from_str::<BTreeMap<String, String>>(&c.custom_fields)?,
            c.created_at,
        ),
        None => (BTreeMap::new(), Vec::new(), BTreeMap::new(), now),
    };
    for (name, value) in &input.fields {
        // A write older than the stored value loses, field by field.
        if fields
            .get(name)
            .is_some_and(|old| old.updated_at > written_at)
        {
            continue;
        }
        match value {
            Some(v) => {
                fields.insert(
                    name.clone(),
                    FieldValue {
                        value: v.clone(),
                        updated_at: written_at,
                    },
                );
            }
            None => {
                fields.remove(name);
            }
        }
    }
    if let Some(t) = &input.tags {
        tags = t.clone();
        tags.sort();
        tags.dedup();
    }
    if let Some(c) = &input.custom_fields {
        custom_fields = c.clone();
    }
    let (values, invalid) = identifiers_of(&mut normalizer, &keys, &fields, &custom_fields);
    let key_values: Vec<&(String, String)> = values
        .iter()
        .filter(|(f, v)| keys.iter().any(|k| k.name() == f) && !is_excluded(&normalizer, f, v))
        .collect();
    // Each value's lock is taken with the tie query below, before it reads.
    let value_locks: Vec<i64> = key_values
        .iter()
        .map(|(f, v)| value_lock_key(hub, &scope, f, v))
        .collect();

    // The writes are queued and sent at the end: no read below looks at them (the tie query
    // leaves the contact's own identifiers out).
    let mut batch = WriteBatch::default();
    let stored_json = [
        serde_json::to_string(&fields)?,
        serde_json::to_string(&tags)?,
        serde_json::to_string(&custom_fields)?,
        serde_json::to_string(&invalid)?,
    ]
    .map(Arg::from);
    let contact_id = match &existing {
        Some(c) => {
            batch.push(
                "UPDATE contacts SET scope = $3, fields = $4, tags = $5, custom_fields = $6, \
                 invalid_fields = $7, updated_at = $8 WHERE hub_id = $1 AND id = $2",
                [hub.into(), c.id.into(), scope.as_str().into()]
                    .into_iter()
                    .chain(stored_json)
                    .chain([now.into()])
                    .collect(),
            );
            batch.push(
                "DELETE FROM identifiers WHERE hub_id = $1 AND contact_id = $2",
                vec![hub.into(), c.id.into()],
            );
            c.id
        }
        None => {
            let id = ids.take(conn, hub).await?;
            batch.push(
                "INSERT INTO contacts (hub_id, id, channel_id, external_id, scope, fields, \
                 tags, custom_fields, invalid_fields, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                [
                    hub.into(),
                    id.into(),
                    input.channel_id.into(),
                    input.external_id.as_str().into(),
                    scope.as_str().into(),
                ]
                .into_iter()
                .chain(stored_json)
                .chain([now.into(), now.into()])
                .collect(),
            );
            id
        }
    };
    if !values.is_empty() {
        let rows = (0..values.len())
            .map(|i| format!("($1, $2, ${}, ${}, $3)", 4 + i * 2, 5 + i * 2))
            .collect::<Vec<_>>()
            .join(", ");
        let mut args = vec![hub.into(), contact_id.into(), scope.as_str().into()];
        for (f, v) in &values {
            args.push(f.as_str().into());
            args.push(v.as_str().into());
        }
        batch.push(
            format!("INSERT INTO identifiers (hub_id, contact_id, field, value, scope) VALUES {rows}"),
            args,
        );
    }

    // Which live profiles the contact ties to, and through which value.
    // With one writer, the tie query also reads the stored contact's own profile.
    let own_in_tie_query = existing.is_some() && !ROW_LOCKS;
    let (tied, own, tied_locked) = lock_values_and_tie(
        conn,
        hub,
        &scope,
        contact_id,
        &key_values,
        value_locks,
        own_in_tie_query,
    )
    .await?;
    let mut ties: Vec<(ProfileId, String, String)> = tied
        .iter()
        .map(|(row, f, v)| (row.id, f.clone(), v.clone()))
        .collect();
    let mut current = match (&existing, &own) {
        (None, _) => None,
        (Some(_), Some(row)) => Some(row.id),
        (Some(_), None) if own_in_tie_query => {
            return Err(StoreError::Corrupt(format!(
                "contact {contact_id} has no live profile"
            )));
        }
        (Some(_), None) => Some(profile_of_contact(conn, hub, contact_id).await?),
    };
    if let (Some(c), Some((_, f, v))) = (current, ties.first().cloned()) {
        ties.push((c, f, v));
    }
    let mut locked = if !ROW_LOCKS {
        // One writer at a time: the rows just read are current; no second read needed.
        let mut rows: Vec<ProfileRow> = tied.into_iter().map(|t| t.0).chain(own).collect();
        rows.sort_by_key(|r| r.id);
        rows.dedup_by_key(|r| r.id);
        rows
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
    let is_new = existing.is_none();
    let mut events = Vec::new();
    let (profile_id, unification) = if locked.is_empty() {
        let pid = ids.take(conn, hub).await?;
        batch.push(
            "INSERT INTO profiles (hub_id, id, origin_contact, oldest_contact, bucket_id, \
             member_count, merged_into, created_at, updated_at) \
             VALUES ($1, $2, $3, $3, $2, 1, NULL, $4, $4)",
            vec![hub.into(), pid.into(), contact_id.into(), now.into()],
        );
        queue_membership(&mut batch, hub, contact_id, pid);
        events.push((
            "profile.created".to_owned(),
            pid,
            serde_json::json!({ "contact_id": contact_id }),
        ));
        (pid, Unification::Created)
    } else if locked.len() == 1 {
        let p = locked.remove(0);
        if is_new {
            queue_membership(&mut batch, hub, contact_id, p.bucket_id);
        }
        // A new contact can be older (a smaller id) than the profile's oldest: on PostgreSQL,
        // concurrent writers take ids in blocks and may commit in either order.
        batch.push(
            "UPDATE profiles SET member_count = member_count + $3, updated_at = $4, \
             oldest_contact = CASE WHEN oldest_contact > $5 THEN $5 ELSE oldest_contact END \
             WHERE hub_id = $1 AND id = $2",
            vec![
                hub.into(),
                p.id.into(),
                i64::from(is_new).into(),
                now.into(),
                contact_id.into(),
            ],
        );
        events.push((
            "profile.updated".to_owned(),
            p.id,
            serde_json::json!({ "contact_id": contact_id }),
        ));
        (
            p.id,
            if is_new {
                Unification::Joined
            } else {
                Unification::Unchanged
            },
        )
    } else {
        let survivor = merge_profiles(&mut batch, hub, &locked, is_new.then_some(contact_id), now);
        if is_new {
            queue_membership(&mut batch, hub, contact_id, survivor.bucket_id);
        }
        let absorbed: Vec<ProfileId> = locked
            .iter()
            .map(|p| p.id)
            .filter(|&p| p != survivor.id)
            .collect();
        // One ledger row per tying value; the contact's own profile counts as tied by the
        // first value, which is what brought the others in.
        let mut by_value: BTreeMap<(String, String), Vec<ProfileId>> = BTreeMap::new();
        for p in &absorbed {
            let via = ties
                .iter()
                .find(|t| t.0 == *p)
                .map(|t| (t.1.clone(), t.2.clone()))
                .unwrap_or_default();
            by_value.entry(via).or_default().push(*p);
        }
        for ((field, value), merged) in by_value {
            let entry = LedgerEntry {
                seq: ids.take(conn, hub).await?,
                at: now,
                survivor_id: survivor.id,
                absorbed_ids: merged.clone(),
                key_field: field.clone(),
                key_value: value.clone(),
                cause: Cause {
                    kind: "contact".to_owned(),
                    id: contact_id.to_string(),
                    actor: actor.to_owned(),
                },
            };
            queue_ledger(&mut batch, hub, &entry)?;
            events.push(merged_event(survivor.id, &merged, &field, &value));
        }
        (
            survivor.id,
            Unification::Merged {
                survivor: survivor.id,
                absorbed,
            },
        )
    };
    finish_upsert(
        conn,
        hub,
        batch,
        (ids.next, context.event_seq),
        &events,
        own_transaction,
    )
    .await?;
    Ok(Upserted {
        contact: Contact {
            id: contact_id,
            channel_id: input.channel_id,
            external_id: input.external_id.clone(),
            profile_id,
            fields,
            tags,
            custom_fields,
            invalid_fields: invalid,
            created_at,
            updated_at: now,
        },
        unification,
    })
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
    async fn take(&mut self, conn: &mut Conn, hub: HubId) -> StoreResult<i64> {
        if self.next >= self.end {
            self.next = next_id(conn, hub).await?;
            self.end = self.next + ID_BLOCK_LEN;
        }
        self.next += 1;
        Ok(self.next - 1)
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

/// The channel, the current unify setting, a block of ids and the stored contact, if any;
/// `begin` goes before the read, in the same query.
async fn load_upsert_context(
    conn: &mut Conn,
    hub: HubId,
    input: &ContactInput,
    begin: &str,
) -> StoreResult<UpsertContext> {
    let row: Option<ContextRow> = sqlx::query_as(&format!(
        "{begin}SELECT ch.organization_id, ch.channel_type, ch.product, o.default_region, \
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
    ))
    .bind(hub)
    .bind(input.channel_id)
    .bind(input.external_id.clone())
    .fetch_optional(&mut *conn)
    .await?;
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

fn queue_membership(batch: &mut WriteBatch, hub: HubId, contact: ContactId, bucket: i64) {
    batch.push(
        "INSERT INTO memberships (hub_id, contact_id, bucket_id) VALUES ($1, $2, $3)",
        vec![hub.into(), contact.into(), bucket.into()],
    );
}
