// An upsert's decisions, without IO (shared by both adapters, included after `write.rs`):
// what the contact's row and identifiers become (`plan_contact`), and, once the live profiles
// the contact ties to are read and locked, what becomes of them (`plan_unification`). The
// callers do the reads and send the queued writes: `upsert_locked` through sqlx, SQLite's
// writer thread through its own connection (`sqlite/writer.rs`).

/// What an upsert writes for the contact itself, and what it reads next.
struct ContactPlan {
    contact_id: ContactId,
    is_new: bool,
    scope: String,
    /// The contact's unify-key values, `(field, value)`, in key order: the ones that tie it to
    /// profiles (excluded values left out).
    key_values: Vec<(String, String)>,
    /// The advisory lock key of each of `key_values`.
    value_locks: Vec<i64>,
    fields: BTreeMap<String, FieldValue>,
    tags: Vec<String>,
    custom_fields: BTreeMap<String, String>,
    invalid: Vec<InvalidField>,
    created_at: Millis,
    now: Millis,
    /// The writes so far: the contact's row and its identifiers.
    batch: WriteBatch,
    ids: IdBlock,
    /// The hub's last event number when the upsert read it.
    event_seq: i64,
}

/// What a profile change did: the profile the contact ends in, what happened, the events.
type Settled = (ProfileId, Unification, Vec<(String, ProfileId, serde_json::Value)>);

/// The contact as the input leaves it (a write older than a stored field loses that field),
/// its identifiers, and the writes for its row and identifiers.
fn plan_contact(hub: HubId, input: &ContactInput, context: UpsertContext) -> StoreResult<ContactPlan> {
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
    let key_values: Vec<(String, String)> = values
        .iter()
        .filter(|(f, v)| keys.iter().any(|k| k.name() == f) && !is_excluded(&normalizer, f, v))
        .cloned()
        .collect();
    let value_locks: Vec<i64> = key_values
        .iter()
        .map(|(f, v)| value_lock_key(hub, &scope, f, v))
        .collect();

    // The writes are queued and sent at the end: no read of the upsert looks at them (the tie
    // query leaves the contact's own identifiers out).
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
            // The block the context read holds at least one id.
            let id = ids.take_local(1)?[0];
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
    Ok(ContactPlan {
        contact_id,
        is_new: existing.is_none(),
        scope,
        key_values,
        value_locks,
        fields,
        tags,
        custom_fields,
        invalid,
        created_at,
        now,
        batch,
        ids,
        event_seq: context.event_seq,
    })
}

/// The profiles an upsert ties to, each with the value that ties it; the contact's own
/// profile (`current`) counts as tied by the first value, which is what brings the others in.
fn tie_list(
    tied: &[(ProfileRow, String, String)],
    current: Option<ProfileId>,
) -> Vec<(ProfileId, String, String)> {
    let mut ties: Vec<(ProfileId, String, String)> = tied
        .iter()
        .map(|(row, f, v)| (row.id, f.clone(), v.clone()))
        .collect();
    if let (Some(c), Some((_, f, v))) = (current, ties.first().cloned()) {
        ties.push((c, f, v));
    }
    ties
}

/// With one writer at a time, the rows the tie query read are current: the profiles to change.
fn one_writer_rows(
    tied: Vec<(ProfileRow, String, String)>,
    own: Option<ProfileRow>,
) -> Vec<ProfileRow> {
    let mut rows: Vec<ProfileRow> = tied.into_iter().map(|t| t.0).chain(own).collect();
    rows.sort_by_key(|r| r.id);
    rows.dedup_by_key(|r| r.id);
    rows
}

/// How many fresh ids `plan_unification` takes over `n_locked` profiles: one for a new
/// profile, else at most one ledger row per absorbed profile.
fn ids_needed(n_locked: usize) -> usize {
    n_locked.max(1)
}

/// Queues what happens to the locked, live profiles the contact ties to (`locked`, by id;
/// `ties` says through which value): a new profile, a join, or a merge with its ledger rows.
/// `fresh_ids` holds `ids_needed(locked.len())` ids.
fn plan_unification(
    hub: HubId,
    plan: &mut ContactPlan,
    mut locked: Vec<ProfileRow>,
    ties: &[(ProfileId, String, String)],
    fresh_ids: Vec<i64>,
    actor: &str,
) -> StoreResult<Settled> {
    let (contact_id, is_new, now) = (plan.contact_id, plan.is_new, plan.now);
    let batch = &mut plan.batch;
    let mut fresh_ids = fresh_ids.into_iter();
    let mut take_id = move || {
        fresh_ids
            .next()
            .ok_or_else(|| StoreError::Corrupt("an upsert ran out of ids".to_owned()))
    };
    let mut events = Vec::new();
    if locked.is_empty() {
        let pid = take_id()?;
        batch.push(
            "INSERT INTO profiles (hub_id, id, origin_contact, oldest_contact, \
             member_count, merged_into, created_at, updated_at) \
             VALUES ($1, $2, $3, $3, 1, NULL, $4, $4)",
            vec![hub.into(), pid.into(), contact_id.into(), now.into()],
        );
        queue_membership(batch, hub, contact_id, pid);
        events.push((
            "profile.created".to_owned(),
            pid,
            serde_json::json!({ "contact_id": contact_id }),
        ));
        return Ok((pid, Unification::Created, events));
    }
    if locked.len() == 1 {
        let p = locked.remove(0);
        if is_new {
            queue_membership(batch, hub, contact_id, p.id);
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
        let unification = if is_new {
            Unification::Joined
        } else {
            Unification::Unchanged
        };
        return Ok((p.id, unification, events));
    }
    let survivor = merge_profiles(batch, hub, &locked, is_new.then_some(contact_id), now);
    if is_new {
        queue_membership(batch, hub, contact_id, survivor.id);
    }
    let absorbed: Vec<ProfileId> = locked
        .iter()
        .map(|p| p.id)
        .filter(|&p| p != survivor.id)
        .collect();
    // One ledger row per tying value.
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
            seq: take_id()?,
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
        queue_ledger(batch, hub, &entry)?;
        events.push(merged_event(survivor.id, &merged, &field, &value));
    }
    Ok((
        survivor.id,
        Unification::Merged {
            survivor: survivor.id,
            absorbed,
        },
        events,
    ))
}

/// What the caller gets back: the contact as written, in the profile it ended in.
fn upserted(plan: ContactPlan, input: &ContactInput, settled: Settled) -> Upserted {
    let (profile_id, unification, _) = settled;
    Upserted {
        contact: Contact {
            id: plan.contact_id,
            channel_id: input.channel_id,
            external_id: input.external_id.clone(),
            profile_id,
            fields: plan.fields,
            tags: plan.tags,
            custom_fields: plan.custom_fields,
            invalid_fields: plan.invalid,
            created_at: plan.created_at,
            updated_at: plan.now,
        },
        unification,
    }
}
