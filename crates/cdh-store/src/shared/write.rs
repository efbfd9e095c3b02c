// Auto-unifying upsert, shared by both adapters (included by `sqlite.rs` and `postgres.rs`,
// which provide `Conn`, `FOR_UPDATE`, the lock functions and `next_id`).

impl ThisStore {
    /// One attempt at an upsert; the caller retries on contention.
    async fn upsert_once(
        &self,
        hub: HubId,
        input: &ContactInput,
        actor: &str,
    ) -> StoreResult<Upserted> {
        let mut tx = self.begin_write().await?;
        let conn: &mut Conn = &mut tx;
        lock_hub_shared(conn, hub).await?;
        let channel = load_channel(conn, hub, input.channel_id).await?;
        let setting = load_setting(conn, hub).await?;
        let keys = parse_keys(&setting.setting.keys)?;
        let scope = channel.scope(keys.contains(&IdentifierField::LineUid));
        let mut normalizer = normalizer(&channel.region, &setting.setting)?;
        lock_keys(
            conn,
            vec![contact_lock_key(hub, input.channel_id, &input.external_id)],
        )
        .await?;

        let existing: Option<(i64, String, String, String, i64)> = sqlx::query_as(
            "SELECT id, fields, tags, custom_fields, created_at FROM contacts \
             WHERE hub_id = $1 AND channel_id = $2 AND external_id = $3",
        )
        .bind(hub)
        .bind(input.channel_id)
        .bind(input.external_id.clone())
        .fetch_optional(&mut *conn)
        .await?;
        let now = now_ms();
        let written_at = input.updated_at.unwrap_or(now);
        let (mut fields, mut tags, mut custom_fields, created_at): (
            BTreeMap<String, FieldValue>,
            Vec<String>,
            BTreeMap<String, String>,
            Millis,
        ) = match &existing {
            Some((_, f, t, c, created)) => (
                serde_json::from_str(f)?,
                serde_json::from_str(t)?,
                serde_json::from_str(c)?,
                *created,
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
        let mut value_locks: Vec<i64> = key_values
            .iter()
            .map(|(f, v)| value_lock_key(hub, &scope, f, v))
            .collect();
        value_locks.sort_unstable();
        value_locks.dedup();
        lock_keys(conn, value_locks).await?;

        let contact_id = match &existing {
            Some((id, ..)) => {
                sqlx::query(
                    "UPDATE contacts SET scope = $3, fields = $4, tags = $5, custom_fields = $6, \
                     invalid_fields = $7, updated_at = $8 WHERE hub_id = $1 AND id = $2",
                )
                .bind(hub)
                .bind(*id)
                .bind(scope.clone())
                .bind(serde_json::to_string(&fields)?)
                .bind(serde_json::to_string(&tags)?)
                .bind(serde_json::to_string(&custom_fields)?)
                .bind(serde_json::to_string(&invalid)?)
                .bind(now)
                .execute(&mut *conn)
                .await?;
                sqlx::query("DELETE FROM identifiers WHERE hub_id = $1 AND contact_id = $2")
                    .bind(hub)
                    .bind(*id)
                    .execute(&mut *conn)
                    .await?;
                *id
            }
            None => {
                let id = next_id(conn, hub).await?;
                sqlx::query(
                    "INSERT INTO contacts (hub_id, id, channel_id, external_id, scope, fields, \
                     tags, custom_fields, invalid_fields, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                )
                .bind(hub)
                .bind(id)
                .bind(input.channel_id)
                .bind(input.external_id.clone())
                .bind(scope.clone())
                .bind(serde_json::to_string(&fields)?)
                .bind(serde_json::to_string(&tags)?)
                .bind(serde_json::to_string(&custom_fields)?)
                .bind(serde_json::to_string(&invalid)?)
                .bind(now)
                .bind(now)
                .execute(&mut *conn)
                .await?;
                id
            }
        };
        if !values.is_empty() {
            let rows = (0..values.len())
                .map(|i| format!("($1, $2, ${}, ${}, $3)", 4 + i * 2, 5 + i * 2))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "INSERT INTO identifiers (hub_id, contact_id, field, value, scope) VALUES {rows}"
            );
            let mut q = sqlx::query(&sql)
                .bind(hub)
                .bind(contact_id)
                .bind(scope.clone());
            for (f, v) in &values {
                q = q.bind(f.clone()).bind(v.clone());
            }
            q.execute(&mut *conn).await?;
        }

        // Which live profiles the contact ties to, and through which value.
        let mut ties: Vec<(ProfileId, String, String)> = Vec::new();
        let current = match existing {
            Some(_) => Some(profile_of_contact(conn, hub, contact_id).await?),
            None => None,
        };
        for (field, value) in &key_values {
            let found: Vec<(i64,)> = sqlx::query_as(
                &format!("SELECT DISTINCT p.id FROM identifiers i \
                 {ORDERED_JOIN} memberships m ON m.hub_id = i.hub_id AND m.contact_id = i.contact_id \
                 {ORDERED_JOIN} profiles p ON p.hub_id = m.hub_id AND p.bucket_id = m.bucket_id \
                   AND +p.merged_into IS NULL \
                 WHERE i.hub_id = $1 AND i.scope = $2 AND i.field = $3 AND i.value = $4 \
                   AND i.contact_id <> $5"),
            )
            .bind(hub)
            .bind(scope.clone())
            .bind(field.clone())
            .bind(value.clone())
            .bind(contact_id)
            .fetch_all(&mut *conn)
            .await?;
            ties.extend(
                found
                    .into_iter()
                    .map(|(p,)| (p, field.clone(), value.clone())),
            );
        }
        if let (Some(c), Some((_, f, v))) = (current, ties.first().cloned()) {
            ties.push((c, f, v));
        }
        // Lock the profiles; one merged meanwhile is replaced by its survivor and we lock again.
        let mut locked = loop {
            let mut ids: Vec<i64> = ties.iter().map(|t| t.0).chain(current).collect();
            ids.sort_unstable();
            ids.dedup();
            if ids.is_empty() {
                break Vec::new();
            }
            let rows = lock_profiles(conn, hub, &ids).await?;
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
            }
        };
        let is_new = existing.is_none();
        let mut events = Vec::new();
        let (profile_id, unification) = if locked.is_empty() {
            let pid = next_id(conn, hub).await?;
            sqlx::query(
                "INSERT INTO profiles (hub_id, id, origin_contact, oldest_contact, bucket_id, \
                 member_count, merged_into, created_at, updated_at) \
                 VALUES ($1, $2, $3, $3, $2, 1, NULL, $4, $4)",
            )
            .bind(hub)
            .bind(pid)
            .bind(contact_id)
            .bind(now)
            .execute(&mut *conn)
            .await?;
            insert_membership(conn, hub, contact_id, pid).await?;
            events.push((
                "profile.created".to_owned(),
                pid,
                serde_json::json!({ "contact_id": contact_id }),
            ));
            (pid, Unification::Created)
        } else if locked.len() == 1 {
            let p = locked.remove(0);
            if is_new {
                insert_membership(conn, hub, contact_id, p.bucket_id).await?;
            }
            sqlx::query(
                "UPDATE profiles SET member_count = member_count + $3, updated_at = $4 \
                 WHERE hub_id = $1 AND id = $2",
            )
            .bind(hub)
            .bind(p.id)
            .bind(i64::from(is_new))
            .bind(now)
            .execute(&mut *conn)
            .await?;
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
            let survivor = merge_profiles(conn, hub, &locked, i64::from(is_new), now).await?;
            if is_new {
                insert_membership(conn, hub, contact_id, survivor.bucket_id).await?;
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
                    seq: 0,
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
                append_ledger(conn, hub, &entry).await?;
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
        append_events(conn, hub, &events).await?;
        tx.commit().await?;
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

    /// An upsert, retried when another transaction got in the way.
    async fn upsert_with_retry(
        &self,
        hub: HubId,
        input: &ContactInput,
        actor: &str,
    ) -> StoreResult<Upserted> {
        let mut attempt = 0;
        loop {
            match self.upsert_once(hub, input, actor).await {
                Err(StoreError::Contention { .. }) if attempt < MAX_RETRIES => attempt += 1,
                other => return other,
            }
        }
    }
}

/// Rows per multi-row INSERT of events (SQLite allows 32766 bound parameters).
const EVENTS_PER_INSERT: usize = 100;

/// How often a transaction that lost a race is retried.
const MAX_RETRIES: u32 = 20;

async fn insert_membership(
    conn: &mut Conn,
    hub: HubId,
    contact: ContactId,
    bucket: i64,
) -> StoreResult<()> {
    sqlx::query("INSERT INTO memberships (hub_id, contact_id, bucket_id) VALUES ($1, $2, $3)")
        .bind(hub)
        .bind(contact)
        .bind(bucket)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
