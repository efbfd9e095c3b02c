// Reads and small writes shared by both adapters (included by `sqlite.rs` and `postgres.rs`).

type ContactRow = (i64, i64, String, String, String, String, String, i64, i64);

fn contact_from_row(row: ContactRow, profile_id: ProfileId) -> StoreResult<Contact> {
    let (id, channel_id, external_id, fields, tags, custom_fields, invalid, created_at, updated_at) =
        row;
    Ok(Contact {
        id,
        channel_id,
        external_id,
        profile_id,
        fields: serde_json::from_str(&fields)?,
        tags: serde_json::from_str(&tags)?,
        custom_fields: serde_json::from_str(&custom_fields)?,
        invalid_fields: serde_json::from_str(&invalid)?,
        created_at,
        updated_at,
    })
}

const CONTACT_COLUMNS: &str = "c.id, c.channel_id, c.external_id, c.fields, c.tags, \
    c.custom_fields, c.invalid_fields, c.created_at, c.updated_at";

/// The live profile an id names, and whether it was merged away.
async fn resolve_profile(
    conn: &mut Conn,
    hub: HubId,
    id: ProfileId,
) -> StoreResult<(i64, Option<i64>)> {
    let row: Option<(Option<i64>,)> =
        sqlx::query_as("SELECT merged_into FROM profiles WHERE hub_id = $1 AND id = $2")
            .bind(hub)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    match row {
        None => Err(StoreError::NotFound("profile")),
        Some((None,)) => Ok((id, None)),
        Some((Some(survivor),)) => Ok((survivor, Some(id))),
    }
}

/// A profile's own row, resolved to its survivor, and the hub's current unify keys (read in
/// the same statement, so a merged record costs no extra round trip for them).
struct ProfileHead {
    live: ProfileId,
    merged_from: Option<ProfileId>,
    oldest_contact: i64,
    bucket: i64,
    created_at: i64,
    updated_at: i64,
    keys: Option<String>,
}

/// One statement when the id is live, two when it was merged away.
async fn load_profile_head(conn: &mut Conn, hub: HubId, id: ProfileId) -> StoreResult<ProfileHead> {
    let row_of = |id: ProfileId| {
        sqlx::query_as::<_, (Option<i64>, i64, i64, i64, i64, Option<String>)>(
            "SELECT merged_into, oldest_contact, bucket_id, created_at, updated_at, \
             (SELECT s.keys FROM unify_settings s WHERE s.hub_id = $1 \
              ORDER BY s.version DESC LIMIT 1) \
             FROM profiles WHERE hub_id = $1 AND id = $2",
        )
        .bind(hub)
        .bind(id)
    };
    let row = row_of(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(StoreError::NotFound("profile"))?;
    // A merged-away id names its survivor, which is live (merges repoint absorbed rows).
    let (live, merged_from, (_, oldest_contact, bucket, created_at, updated_at, keys)) =
        match row.0 {
            None => (id, None, row),
            Some(survivor) => (
                survivor,
                Some(id),
                row_of(survivor)
                    .fetch_optional(&mut *conn)
                    .await?
                    .ok_or(StoreError::NotFound("profile"))?,
            ),
        };
    Ok(ProfileHead {
        live,
        merged_from,
        oldest_contact,
        bucket,
        created_at,
        updated_at,
        keys,
    })
}

impl ProfileHead {
    fn into_profile(self, members: Vec<ProfileMember>) -> Profile {
        Profile {
            id: self.live,
            merged_from: self.merged_from,
            oldest_contact: self.oldest_contact,
            members,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// A profile (resolved to its survivor) and its members, in two statements when it is live.
async fn load_profile(conn: &mut Conn, hub: HubId, id: ProfileId) -> StoreResult<Profile> {
    let head = load_profile_head(&mut *conn, hub, id).await?;
    let members: Vec<(i64, i64, String, String)> = sqlx::query_as(&format!(
        "SELECT m.contact_id, c.channel_id, ch.channel_type, ch.product FROM memberships m \
         {ORDERED_JOIN} contacts c ON c.hub_id = m.hub_id AND c.id = m.contact_id \
         {ORDERED_JOIN} channels ch ON ch.hub_id = c.hub_id AND ch.id = c.channel_id \
         WHERE m.hub_id = $1 AND m.bucket_id = $2 ORDER BY m.contact_id"
    ))
    .bind(hub)
    .bind(head.bucket)
    .fetch_all(&mut *conn)
    .await?;
    let members = members
        .into_iter()
        .map(
            |(contact_id, channel_id, channel_type, product)| ProfileMember {
                contact_id,
                channel_id,
                channel_type,
                product,
            },
        )
        .collect();
    Ok(head.into_profile(members))
}

/// The cursor of a timeline page: the last entry's time and id.
fn timeline_cursor(entry: &TimelineEntry) -> String {
    format!("{}.{}", entry.at, entry.id)
}

fn parse_timeline_cursor(cursor: &str) -> StoreResult<(i64, i64)> {
    let (at, id) = cursor
        .split_once('.')
        .ok_or_else(|| StoreError::Invalid("bad cursor".into()))?;
    match (at.parse(), id.parse()) {
        (Ok(at), Ok(id)) => Ok((at, id)),
        _ => Err(StoreError::Invalid("bad cursor".into())),
    }
}

impl ThisStore {
    async fn get_contact_impl(&self, hub: HubId, id: ContactId) -> StoreResult<Contact> {
        let mut conn = self.pool.acquire().await?;
        let sql =
            format!("SELECT {CONTACT_COLUMNS} FROM contacts c WHERE c.hub_id = $1 AND c.id = $2");
        let row: Option<ContactRow> = sqlx::query_as(&sql)
            .bind(hub)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
        let row = row.ok_or(StoreError::NotFound("contact"))?;
        let profile = profile_of_contact(&mut conn, hub, id).await?;
        contact_from_row(row, profile)
    }

    async fn get_profile_impl(&self, hub: HubId, id: ProfileId) -> StoreResult<Profile> {
        let mut conn = self.pool.acquire().await?;
        load_profile(&mut conn, hub, id).await
    }

    async fn lookup_golden_impl(
        &self,
        hub: HubId,
        org: OrganizationId,
        field: &str,
        value: &str,
    ) -> StoreResult<Vec<(Profile, cdh_core::GoldenRecord)>> {
        // One read transaction: the profiles found and their records are of one moment.
        let mut tx = self.pool.begin().await?;
        let ids = lookup_ids(&mut tx, hub, org, field, value).await?;
        let mut found = Vec::with_capacity(ids.len());
        for id in ids {
            found.push(golden_in(&mut tx, hub, id).await?);
        }
        tx.commit().await?;
        Ok(found)
    }

    async fn golden_impl(
        &self,
        hub: HubId,
        id: ProfileId,
    ) -> StoreResult<(Profile, cdh_core::GoldenRecord)> {
        // One read transaction so the members, fields and timeline are of one moment.
        let mut tx = self.pool.begin().await?;
        let result = golden_in(&mut tx, hub, id).await?;
        tx.commit().await?;
        Ok(result)
    }

    async fn timeline_impl(
        &self,
        hub: HubId,
        id: ProfileId,
        limit: u32,
        cursor: Option<&str>,
    ) -> StoreResult<Page<TimelineEntry>> {
        let mut conn = self.pool.acquire().await?;
        let (live, _) = resolve_profile(&mut conn, hub, id).await?;
        let (at, after_id) = match cursor {
            Some(c) => parse_timeline_cursor(c)?,
            None => (i64::MAX, i64::MAX),
        };
        let limit = i64::from(limit.clamp(1, 1000));
        // One statement: the membership it joins through is of one snapshot, so a merge
        // committing meanwhile shows entirely or not at all.
        let rows: Vec<(i64, String, i64, i64, String, String, i64)> = sqlx::query_as(
            &format!("SELECT t.id, t.kind, t.contact_id, c.channel_id, t.text, t.author, t.at \
             FROM profiles p \
             {ORDERED_JOIN} memberships m ON m.hub_id = p.hub_id AND m.bucket_id = p.bucket_id \
             {ORDERED_JOIN} timeline_entries t ON t.hub_id = m.hub_id AND t.contact_id = m.contact_id \
             {ORDERED_JOIN} contacts c ON c.hub_id = t.hub_id AND c.id = t.contact_id \
             WHERE p.hub_id = $1 AND p.id = $2 AND (t.at < $3 OR (t.at = $3 AND t.id < $4)) \
             ORDER BY t.at DESC, t.id DESC LIMIT $5"),
        )
        .bind(hub)
        .bind(live)
        .bind(at)
        .bind(after_id)
        .bind(limit + 1)
        .fetch_all(&mut *conn)
        .await?;
        let mut items: Vec<TimelineEntry> = rows
            .into_iter()
            .map(
                |(id, kind, contact_id, channel_id, text, author, at)| TimelineEntry {
                    id,
                    kind,
                    contact_id,
                    channel_id,
                    text,
                    author,
                    at,
                },
            )
            .collect();
        let next_cursor = if items.len() as i64 > limit {
            items.truncate(limit as usize);
            items.last().map(timeline_cursor)
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    async fn lineage_impl(&self, hub: HubId, id: ProfileId) -> StoreResult<Vec<LedgerEntry>> {
        let mut conn = self.pool.acquire().await?;
        let (live, _) = resolve_profile(&mut conn, hub, id).await?;
        let rows: Vec<LedgerRow> = sqlx::query_as(&format!(
            // Two index searches (an `OR` of both would walk every profile of the hub), sorted
            // here: an ORDER BY over the union made SQLite walk the ledger in `seq` order.
            "SELECT {LEDGER_COLUMNS} FROM merge_ledger l WHERE l.hub_id = $1 AND l.survivor_id = $2 \
             UNION ALL \
             SELECT {LEDGER_COLUMNS} FROM profiles p \
             {ORDERED_JOIN} merge_ledger l ON l.hub_id = p.hub_id AND l.survivor_id = p.id \
             WHERE p.hub_id = $1 AND p.merged_into = $2"
        ))
        .bind(hub)
        .bind(live)
        .fetch_all(&mut *conn)
        .await?;
        let mut entries = rows
            .into_iter()
            .map(ledger_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        entries.sort_by_key(|e| e.seq);
        Ok(entries)
    }

    async fn add_timeline_impl(
        &self,
        hub: HubId,
        contact: ContactId,
        kind: &str,
        text: &str,
        author: &str,
        at: Millis,
    ) -> StoreResult<i64> {
        let mut tx = self.begin_write().await?;
        let id = next_id(&mut tx, hub).await?;
        sqlx::query("INSERT INTO timeline_entries (hub_id, id, contact_id, kind, text, author, at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(hub)
            .bind(id)
            .bind(contact)
            .bind(kind.to_owned())
            .bind(text.to_owned())
            .bind(author.to_owned())
            .bind(at)
            .execute(&mut *tx)
            .await
            .map_err(|e| match StoreError::from(e) {
                StoreError::Backend { .. } => StoreError::NotFound("contact"),
                other => other,
            })?;
        tx.commit().await?;
        Ok(id)
    }

    async fn history_impl(&self, hub: HubId) -> StoreResult<Vec<AppliedSetting>> {
        let rows: Vec<(i64, String, String, String, i64)> = sqlx::query_as(
            "SELECT version, keys, excluded, actor, applied_at FROM unify_settings WHERE hub_id = $1 ORDER BY version",
        )
        .bind(hub)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(applied_setting).collect()
    }

    async fn events_impl(&self, hub: HubId, after: i64, limit: u32) -> StoreResult<Vec<Event>> {
        let rows: Vec<(i64, i64, String, i64, String)> = sqlx::query_as(
            "SELECT seq, at, kind, profile_id, payload FROM events WHERE hub_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(hub)
        .bind(after)
        .bind(i64::from(limit.clamp(1, 10_000)))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(seq, at, kind, profile_id, payload)| {
                Ok(Event {
                    seq,
                    at,
                    kind,
                    profile_id,
                    payload: serde_json::from_str(&payload)?,
                })
            })
            .collect()
    }
}

type LedgerRow = (
    i64,
    i64,
    i64,
    String,
    String,
    String,
    String,
    String,
    String,
);

const LEDGER_COLUMNS: &str = "l.seq, l.at, l.survivor_id, l.absorbed_ids, l.key_field, \
    l.key_value, l.cause_kind, l.cause_id, l.actor";

fn ledger_from_row(row: LedgerRow) -> StoreResult<LedgerEntry> {
    let (seq, at, survivor_id, absorbed, key_field, key_value, kind, id, actor) = row;
    Ok(LedgerEntry {
        seq,
        at,
        survivor_id,
        absorbed_ids: serde_json::from_str(&absorbed)?,
        key_field,
        key_value,
        cause: Cause { kind, id, actor },
    })
}

/// The live profiles holding a contact of `org` with this value of `field` (normalised with the
/// organization's region first), by id.
async fn lookup_ids(
    conn: &mut Conn,
    hub: HubId,
    org: OrganizationId,
    field: &str,
    value: &str,
) -> StoreResult<Vec<ProfileId>> {
    let (region,): (String,) = sqlx::query_as(
        "SELECT default_region FROM organizations WHERE hub_id = $1 AND id = $2",
    )
    .bind(hub)
    .bind(org)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(StoreError::NotFound("organization"))?;
    let field_id = IdentifierField::parse(field, &[field.to_owned()])
        .map_err(|e| StoreError::Invalid(e.to_string()))?;
    let empty = UnifySetting {
        keys: Vec::new(),
        excluded: Vec::new(),
    };
    let Ok(normalised) = normalizer(&region, &empty)?.normalize(&field_id, value) else {
        return Ok(Vec::new());
    };
    let ids: Vec<(i64,)> = sqlx::query_as(
        &format!("SELECT DISTINCT p.id FROM identifiers i \
         {ORDERED_JOIN} contacts c ON c.hub_id = i.hub_id AND c.id = i.contact_id \
         {ORDERED_JOIN} channels ch ON ch.hub_id = c.hub_id AND ch.id = c.channel_id \
         {ORDERED_JOIN} memberships m ON m.hub_id = i.hub_id AND m.contact_id = i.contact_id \
         {ORDERED_JOIN} profiles p ON p.hub_id = m.hub_id AND p.bucket_id = m.bucket_id AND +p.merged_into IS NULL \
         WHERE i.hub_id = $1 AND i.field = $2 AND i.value = $3 AND ch.organization_id = $4 ORDER BY p.id"),
    )
    .bind(hub)
    .bind(field_id.name().to_owned())
    .bind(normalised)
    .bind(org)
    .fetch_all(&mut *conn)
    .await?;
    Ok(ids.into_iter().map(|(id,)| id).collect())
}

/// A profile and its merged record (manual overrides applied), read over `tx` in four
/// statements whatever the profile's size: its row with the unify keys, its members' contacts
/// with their channels, their identifiers, and the manual overrides. The record's timeline is
/// left empty: the timeline is read page by page with `timeline`.
async fn golden_in(
    tx: &mut Conn,
    hub: HubId,
    id: ProfileId,
) -> StoreResult<(Profile, cdh_core::GoldenRecord)> {
    let head = load_profile_head(&mut *tx, hub, id).await?;
    let keys: Vec<String> = head
        .keys
        .as_deref()
        .map(serde_json::from_str)
        .transpose()?
        .unwrap_or_default();
    let keys = parse_keys(&keys)?;
    let keys = (!keys.is_empty())
        .then(|| UnifyKeys::new(keys))
        .transpose()
        .map_err(|e| StoreError::Invalid(e.to_string()))?;
    let contacts: Vec<(i64, i64, String, String, String, String)> = sqlx::query_as(&format!(
        "SELECT c.id, c.channel_id, ch.channel_type, ch.product, c.fields, c.tags \
         FROM memberships m \
         {ORDERED_JOIN} contacts c ON c.hub_id = m.hub_id AND c.id = m.contact_id \
         {ORDERED_JOIN} channels ch ON ch.hub_id = c.hub_id AND ch.id = c.channel_id \
         WHERE m.hub_id = $1 AND m.bucket_id = $2 ORDER BY m.contact_id"
    ))
    .bind(hub)
    .bind(head.bucket)
    .fetch_all(&mut *tx)
    .await?;
    let identifiers: Vec<(i64, String, String)> = sqlx::query_as(&format!(
        "SELECT i.contact_id, i.field, i.value FROM memberships m \
         {ORDERED_JOIN} identifiers i ON i.hub_id = m.hub_id AND i.contact_id = m.contact_id \
         WHERE m.hub_id = $1 AND m.bucket_id = $2"
    ))
    .bind(hub)
    .bind(head.bucket)
    .fetch_all(&mut *tx)
    .await?;
    let mut members = Vec::with_capacity(contacts.len());
    let mut records: Vec<MemberRecord> = Vec::with_capacity(contacts.len());
    let mut index: HashMap<i64, usize> = HashMap::with_capacity(contacts.len());
    for (contact_id, channel_id, channel_type, product, fields, tags) in contacts {
        let fields: BTreeMap<String, FieldValue> = serde_json::from_str(&fields)?;
        index.insert(contact_id, records.len());
        records.push(MemberRecord {
            contact_id: contact_id.to_string(),
            fields: fields
                .into_iter()
                .map(|(k, v)| (k, (v.value, v.updated_at)))
                .collect(),
            tags: serde_json::from_str(&tags)?,
            identifiers: Vec::new(),
            timeline: Vec::new(),
        });
        members.push(ProfileMember {
            contact_id,
            channel_id,
            channel_type,
            product,
        });
    }
    for (contact, f, value) in identifiers {
        if let Some(&at) = index.get(&contact) {
            records[at].identifiers.push(cdh_core::golden::IdentifierValue {
                field: IdentifierField::parse(&f, std::slice::from_ref(&f))
                    .unwrap_or(IdentifierField::Custom(f)),
                value,
                valid: true,
            });
        }
    }
    let profile = head.into_profile(members);
    let overrides = load_overrides(&mut *tx, hub, profile.id).await?;
    let refs: Vec<&MemberRecord> = records.iter().collect();
    let mut golden = golden_record(&refs, keys.as_ref());
    apply_overrides(&mut golden, overrides);
    Ok((profile, golden))
}
