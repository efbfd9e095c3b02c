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
#[derive(Clone)]
struct ProfileHead {
    live: ProfileId,
    merged_from: Option<ProfileId>,
    oldest_contact: i64,
    created_at: i64,
    updated_at: i64,
    keys: Option<String>,
}

/// One statement when the id is live, two when it was merged away.
async fn load_profile_head(conn: &mut Conn, hub: HubId, id: ProfileId) -> StoreResult<ProfileHead> {
    let row_of = |id: ProfileId| {
        sqlx::query_as::<_, (Option<i64>, i64, i64, i64, Option<String>)>(
            "SELECT merged_into, oldest_contact, created_at, updated_at, \
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
    let (live, merged_from, (_, oldest_contact, created_at, updated_at, keys)) =
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
        "SELECT m.contact_id, c.channel_id, ch.channel_type, ch.product FROM ({}) b \
         {ORDERED_JOIN} memberships m ON m.hub_id = $1 AND m.bucket_id = b.bucket_id \
         {ORDERED_JOIN} contacts c ON c.hub_id = m.hub_id AND c.id = m.contact_id \
         {ORDERED_JOIN} channels ch ON ch.hub_id = c.hub_id AND ch.id = c.channel_id \
         ORDER BY m.contact_id",
        buckets_of("$2")
    ))
    .bind(hub)
    .bind(head.live)
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
        let mut conn = self.pool.acquire().await?;
        let Some((field, normalised)) = lookup_value(&mut conn, hub, org, field, value).await?
        else {
            return Ok(Vec::new());
        };
        // One statement finds the profiles and reads their records, in one snapshot.
        let j = ORDERED_JOIN;
        let sql = golden_sql(&format!(
            "SELECT DISTINCT p.id FROM identifiers i \
             {j} contacts c ON c.hub_id = i.hub_id AND c.id = i.contact_id \
             {j} channels ch ON ch.hub_id = c.hub_id AND ch.id = c.channel_id \
             {j} memberships m ON m.hub_id = i.hub_id AND m.contact_id = i.contact_id {} \
             WHERE i.hub_id = $1 AND i.field = $2 AND i.value = $3 AND ch.organization_id = $4",
            to_live_profile()
        ));
        let rows = sqlx::query_as::<_, GoldenRow>(&sql)
            .bind(hub)
            .bind(field)
            .bind(normalised)
            .bind(org)
            .fetch_all(&mut *conn)
            .await?;
        assemble_golden(None, rows)
    }

    async fn golden_impl(
        &self,
        hub: HubId,
        id: ProfileId,
    ) -> StoreResult<(Profile, cdh_core::GoldenRecord)> {
        // One statement: the members, fields and overrides are of one moment.
        let mut conn = self.pool.acquire().await?;
        let mut found = golden_many(&mut conn, hub, &[id]).await?;
        found.pop().ok_or(StoreError::NotFound("profile"))
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
             FROM ({}) b \
             {ORDERED_JOIN} memberships m ON m.hub_id = $1 AND m.bucket_id = b.bucket_id \
             {ORDERED_JOIN} timeline_entries t ON t.hub_id = m.hub_id AND t.contact_id = m.contact_id \
             {ORDERED_JOIN} contacts c ON c.hub_id = t.hub_id AND c.id = t.contact_id \
             WHERE (t.at < $3 OR (t.at = $3 AND t.id < $4)) \
             ORDER BY t.at DESC, t.id DESC LIMIT $5", buckets_of("$2")),
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
        self.sequence_events(Some(hub)).await?;
        self.numbered_events(hub, after, limit).await
    }

    /// Events already numbered, after `after`; `events_impl` numbers pending ones first. A
    /// row of kind `MERGED_RANGE_KIND` is expanded into its `profile.merged` events.
    async fn numbered_events(&self, hub: HubId, after: i64, limit: u32) -> StoreResult<Vec<Event>> {
        let limit = i64::from(limit.clamp(1, 10_000));
        let rows: Vec<(i64, i64, String, i64, String)> = sqlx::query_as(
            "SELECT seq, at, kind, profile_id, payload FROM events WHERE hub_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(hub)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut events = Vec::with_capacity(rows.len());
        for (seq, at, kind, profile_id, payload) in rows {
            let room = limit - events.len() as i64;
            if room <= 0 {
                break;
            }
            if kind == MERGED_RANGE_KIND {
                let range: MergedRange = serde_json::from_str(&payload)?;
                let from = range.first.max(after + 1);
                let to = seq.min(from + room - 1);
                self.expand_merged_range(hub, &range, from..=to, &mut events)
                    .await?;
            } else {
                events.push(Event {
                    seq,
                    at,
                    kind,
                    profile_id,
                    payload: serde_json::from_str(&payload)?,
                });
            }
        }
        Ok(events)
    }

    /// The `profile.merged` events numbered `seqs` of a merged range, built from its ledger
    /// rows as `merged_event` builds them when each is written as a row of its own.
    async fn expand_merged_range(
        &self,
        hub: HubId,
        range: &MergedRange,
        seqs: std::ops::RangeInclusive<i64>,
        events: &mut Vec<Event>,
    ) -> StoreResult<()> {
        let missing = || {
            StoreError::Corrupt(format!(
                "events {}..={} of hub {hub} name ledger rows that are not there",
                seqs.start(),
                seqs.end()
            ))
        };
        let from = range.ledger_seq_of(*seqs.start()).ok_or_else(missing)?;
        let to = range.ledger_seq_of(*seqs.end()).ok_or_else(missing)?;
        // No other ledger row of the hub lies between an apply's first and last
        // (`merged_range`), so the rows between these two are the events' rows, in order.
        let rows: Vec<LedgerRow> = sqlx::query_as(&format!(
            "SELECT {LEDGER_COLUMNS} FROM merge_ledger l \
             WHERE l.hub_id = $1 AND l.seq BETWEEN $2 AND $3 ORDER BY l.seq"
        ))
        .bind(hub)
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        if rows.len() as i64 != seqs.end() - seqs.start() + 1 {
            return Err(missing());
        }
        for (seq, row) in seqs.zip(rows) {
            let l = ledger_from_row(row)?;
            let (kind, profile_id, payload) =
                merged_event(l.survivor_id, &l.absorbed_ids, &l.key_field, &l.key_value);
            events.push(Event {
                seq,
                at: l.at,
                kind,
                profile_id,
                payload,
            });
        }
        Ok(())
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

/// The field's name and the value normalised as the identifiers hold them; `None` when the
/// value does not normalise (nothing can hold it). Only a phone needs the organization's
/// default region, so only a phone lookup pays the extra statement that reads it.
async fn lookup_value(
    conn: &mut Conn,
    hub: HubId,
    org: OrganizationId,
    field: &str,
    value: &str,
) -> StoreResult<Option<(String, String)>> {
    let field_id = IdentifierField::parse(field, &[field.to_owned()])
        .map_err(|e| StoreError::Invalid(e.to_string()))?;
    let region = if field_id.kind() == FieldKind::Phone {
        let (region,): (String,) = sqlx::query_as(
            "SELECT default_region FROM organizations WHERE hub_id = $1 AND id = $2",
        )
        .bind(hub)
        .bind(org)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(StoreError::NotFound("organization"))?;
        region
    } else {
        // Any region: the other kinds of field never look at it.
        "TW".to_owned()
    };
    let empty = UnifySetting {
        keys: Vec::new(),
        excluded: Vec::new(),
    };
    Ok(normalizer(&region, &empty)?
        .normalize(&field_id, value)
        .ok()
        .map(|normalised| (field_id.name().to_owned(), normalised)))
}

/// One row of `golden_many`'s statement: `kind` says which of its four parts it belongs to
/// (see `golden_sql`), `profile` is the asked id for a head and the live id otherwise.
type GoldenRow = (
    i64,
    i64,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// The statement behind `golden_many`: `asked` is a query (or `VALUES` list) of profile ids,
/// with the hub bound as `$1` and its own parameters from `$2`. Four parts in one
/// `UNION ALL`, padded to the same columns: (0) each asked id with its live profile's row and
/// the hub's unify keys; (1) the live profiles' members with their contacts and channels;
/// (2) their identifiers; (3) the manual overrides of each live profile and of the profiles
/// merged into it (two index searches: an `OR` of both would walk every profile of the hub).
/// One statement is one snapshot on both backends and one round trip.
fn golden_sql(asked: &str) -> String {
    let j = ORDERED_JOIN;
    format!(
        "WITH asked(asked_id) AS ({asked}), \
         heads AS (SELECT a.asked_id, l.id AS live_id, l.oldest_contact, \
           l.created_at, l.updated_at FROM asked a \
           {j} profiles q ON q.hub_id = $1 AND q.id = a.asked_id \
           {j} profiles l ON l.hub_id = q.hub_id AND l.id = COALESCE(q.merged_into, q.id)), \
         lives AS (SELECT DISTINCT live_id FROM heads), \
         buckets AS (SELECT live_id, live_id AS bucket_id FROM lives UNION ALL \
           SELECT v.live_id, b.id FROM lives v \
           {j} profiles b ON b.hub_id = $1 AND b.merged_into = v.live_id) \
         SELECT CAST(0 AS BIGINT), h.asked_id, h.live_id, h.oldest_contact, CAST(NULL AS BIGINT), \
           h.created_at, h.updated_at, \
           (SELECT s.keys FROM unify_settings s WHERE s.hub_id = $1 \
            ORDER BY s.version DESC LIMIT 1), \
           CAST(NULL AS TEXT), CAST(NULL AS TEXT), CAST(NULL AS TEXT) FROM heads h \
         UNION ALL \
         SELECT CAST(1 AS BIGINT), v.live_id, c.id, c.channel_id, NULL, NULL, NULL, \
           ch.channel_type, ch.product, c.fields, c.tags FROM buckets v \
           {j} memberships m ON m.hub_id = $1 AND m.bucket_id = v.bucket_id \
           {j} contacts c ON c.hub_id = m.hub_id AND c.id = m.contact_id \
           {j} channels ch ON ch.hub_id = c.hub_id AND ch.id = c.channel_id \
         UNION ALL \
         SELECT CAST(2 AS BIGINT), v.live_id, i.contact_id, NULL, NULL, NULL, NULL, \
           i.field, i.value, NULL, NULL FROM buckets v \
           {j} memberships m ON m.hub_id = $1 AND m.bucket_id = v.bucket_id \
           {j} identifiers i ON i.hub_id = m.hub_id AND i.contact_id = m.contact_id \
         UNION ALL \
         SELECT CAST(3 AS BIGINT), v.live_id, o.updated_at, NULL, NULL, NULL, NULL, \
           o.field, o.value, NULL, NULL FROM lives v \
           {j} profile_overrides o ON o.hub_id = $1 AND o.profile_id = v.live_id \
         UNION ALL \
         SELECT CAST(3 AS BIGINT), v.live_id, o.updated_at, NULL, NULL, NULL, NULL, \
           o.field, o.value, NULL, NULL FROM lives v \
           {j} profiles p ON p.hub_id = $1 AND p.merged_into = v.live_id \
           {j} profile_overrides o ON o.hub_id = p.hub_id AND o.profile_id = p.id"
    )
}

/// Asked ids per `golden_many` statement: bounds the statement's parameters and its rows.
const GOLDEN_CHUNK: usize = 100;

/// Profiles and their merged records (manual overrides applied), one per asked id and in the
/// asked order, each resolved to its survivor when it was merged away; `NotFound` when an id
/// names no profile. One statement per `GOLDEN_CHUNK` ids, whatever the profiles' sizes, so a
/// profile read is one round trip and needs no transaction. The records' timelines are left
/// empty: the timeline is read page by page with `timeline`.
async fn golden_many(
    conn: &mut Conn,
    hub: HubId,
    asked: &[ProfileId],
) -> StoreResult<Vec<(Profile, cdh_core::GoldenRecord)>> {
    let mut found = Vec::with_capacity(asked.len());
    for chunk in asked.chunks(GOLDEN_CHUNK) {
        let asked = (0..chunk.len())
            .map(|i| format!("(CAST(${} AS BIGINT))", i + 2))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = golden_sql(&format!("VALUES {asked}"));
        let mut query = sqlx::query_as::<_, GoldenRow>(&sql).bind(hub);
        for id in chunk {
            query = query.bind(*id);
        }
        let rows = query.fetch_all(&mut *conn).await?;
        found.extend(assemble_golden(Some(chunk), rows)?);
    }
    Ok(found)
}

/// A live profile's parts as `golden_many`'s rows deliver them.
#[derive(Default)]
struct GoldenParts {
    members: Vec<(i64, i64, String, String, String, String)>,
    identifiers: Vec<(i64, String, String)>,
    overrides: Vec<(Millis, String, Option<String>)>,
}

/// Builds each asked id's profile and record from `golden_sql`'s rows, in the order of
/// `asked`, or by id when the statement found the ids itself (`None`).
fn assemble_golden(
    asked: Option<&[ProfileId]>,
    rows: Vec<GoldenRow>,
) -> StoreResult<Vec<(Profile, cdh_core::GoldenRecord)>> {
    let malformed = || StoreError::Backend {
        cause: "golden record row with a missing column".into(),
    };
    let mut heads: HashMap<ProfileId, ProfileHead> = HashMap::new();
    let mut parts: HashMap<ProfileId, GoldenParts> = HashMap::new();
    for (kind, profile, i1, i2, _i3, i4, i5, t1, t2, t3, t4) in rows {
        match kind {
            0 => {
                let live = i1.ok_or_else(malformed)?;
                heads.insert(
                    profile,
                    ProfileHead {
                        live,
                        merged_from: (live != profile).then_some(profile),
                        oldest_contact: i2.ok_or_else(malformed)?,
                        created_at: i4.ok_or_else(malformed)?,
                        updated_at: i5.ok_or_else(malformed)?,
                        keys: t1,
                    },
                );
            }
            1 => parts.entry(profile).or_default().members.push((
                i1.ok_or_else(malformed)?,
                i2.ok_or_else(malformed)?,
                t1.ok_or_else(malformed)?,
                t2.ok_or_else(malformed)?,
                t3.ok_or_else(malformed)?,
                t4.ok_or_else(malformed)?,
            )),
            2 => parts.entry(profile).or_default().identifiers.push((
                i1.ok_or_else(malformed)?,
                t1.ok_or_else(malformed)?,
                t2.ok_or_else(malformed)?,
            )),
            _ => parts.entry(profile).or_default().overrides.push((
                i1.ok_or_else(malformed)?,
                t1.ok_or_else(malformed)?,
                t2,
            )),
        }
    }
    let asked = match asked {
        Some(ids) => ids.to_vec(),
        None => {
            let mut ids: Vec<ProfileId> = heads.keys().copied().collect();
            ids.sort_unstable();
            ids
        }
    };
    let mut built: HashMap<ProfileId, (Profile, cdh_core::GoldenRecord)> = HashMap::new();
    let mut found = Vec::with_capacity(asked.len());
    for id in &asked {
        // `get`, not `remove`: an id asked twice gets its profile twice.
        let head = heads.get(id).ok_or(StoreError::NotFound("profile"))?;
        let live = head.live;
        let (mut profile, golden) = match built.entry(live) {
            std::collections::hash_map::Entry::Occupied(e) => e.get().clone(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let parts = parts.remove(&live).unwrap_or_default();
                e.insert(golden_from_parts(head.clone(), parts)?).clone()
            }
        };
        profile.merged_from = head.merged_from;
        found.push((profile, golden));
    }
    Ok(found)
}

/// One live profile and its record from its parts.
fn golden_from_parts(
    head: ProfileHead,
    parts: GoldenParts,
) -> StoreResult<(Profile, cdh_core::GoldenRecord)> {
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
    let GoldenParts {
        mut members,
        identifiers,
        mut overrides,
    } = parts;
    members.sort_unstable_by_key(|m| m.0);
    let mut profile_members = Vec::with_capacity(members.len());
    let mut records: Vec<MemberRecord> = Vec::with_capacity(members.len());
    let mut index: HashMap<i64, usize> = HashMap::with_capacity(members.len());
    for (contact_id, channel_id, channel_type, product, fields, tags) in members {
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
        profile_members.push(ProfileMember {
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
    // Oldest first, so the latest edit of a field is the one kept.
    overrides.sort_by_key(|o| o.0);
    let overrides = overrides
        .into_iter()
        .map(|(at, field, value)| (field, (value, at)))
        .collect();
    let profile = head.into_profile(profile_members);
    let refs: Vec<&MemberRecord> = records.iter().collect();
    let mut golden = golden_record(&refs, keys.as_ref());
    apply_overrides(&mut golden, overrides);
    Ok((profile, golden))
}
