// Unification helpers shared by the upsert and the apply (included by both adapters):
// reading a contact's channel and setting, the profiles its values tie to, locking profiles,
// merging, ledger and events.

/// What a contact's channel says about how it unifies.
struct ChannelInfo {
    organization_id: i64,
    channel_type: String,
    product: String,
    region: String,
    group: Option<i64>,
    cross_product: bool,
}

impl ChannelInfo {
    fn scope(&self, line_uid_is_key: bool) -> String {
        scope_name(
            self.organization_id,
            self.group,
            self.cross_product,
            &self.product,
            self.channel_type == "line",
            line_uid_is_key,
        )
    }
}

async fn load_setting(conn: &mut Conn, hub: HubId) -> StoreResult<AppliedSetting> {
    let row: Option<(i64, String, String, String, i64)> = sqlx::query_as(
        "SELECT version, keys, excluded, actor, applied_at FROM unify_settings \
         WHERE hub_id = $1 ORDER BY version DESC LIMIT 1",
    )
    .bind(hub)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(match row {
        Some(row) => applied_setting(row)?,
        None => AppliedSetting {
            version: 0,
            setting: UnifySetting {
                keys: Vec::new(),
                excluded: Vec::new(),
            },
            actor: String::new(),
            applied_at: 0,
        },
    })
}

fn applied_setting(row: (i64, String, String, String, i64)) -> StoreResult<AppliedSetting> {
    let (version, keys, excluded, actor, applied_at) = row;
    Ok(AppliedSetting {
        version,
        setting: UnifySetting {
            keys: serde_json::from_str(&keys)?,
            excluded: serde_json::from_str(&excluded)?,
        },
        actor,
        applied_at,
    })
}

/// The valid identifier values of a contact and the ones that cannot merge.
fn identifiers_of(
    normalizer: &mut Normalizer,
    keys: &[IdentifierField],
    fields: &BTreeMap<String, FieldValue>,
    custom_fields: &BTreeMap<String, String>,
) -> (Vec<(String, String)>, Vec<InvalidField>) {
    let mut valid = Vec::new();
    let mut invalid = Vec::new();
    let custom_keys = keys
        .iter()
        .filter(|k| matches!(k, IdentifierField::Custom(_)));
    let candidates = cdh_core::field::BUILT_IN_FIELDS
        .iter()
        .map(|f| (f.clone(), fields.get(f.name()).map(|v| v.value.as_str())))
        .chain(custom_keys.map(|f| (f.clone(), custom_fields.get(f.name()).map(String::as_str))));
    for (field, raw) in candidates {
        let Some(raw) = raw else { continue };
        match normalizer.normalize(&field, raw) {
            Ok(value) => valid.push((field.name().to_owned(), value)),
            Err(Outcome::Empty) => {}
            Err(Outcome::Invalid(reason)) => invalid.push(InvalidField {
                field: field.name().to_owned(),
                reason: reason.code().to_owned(),
            }),
            Err(Outcome::Blocked(reason)) => invalid.push(InvalidField {
                field: field.name().to_owned(),
                reason: reason.code().to_owned(),
            }),
            Err(Outcome::Valid) => unreachable!("normalize returns Ok for valid values"),
        }
    }
    (valid, invalid)
}

/// A profile row, read under lock. Its id is also the bucket its first contacts are in.
#[derive(Clone, Debug)]
struct ProfileRow {
    id: i64,
    oldest_contact: i64,
    member_count: i64,
    merged_into: Option<i64>,
}

async fn lock_profiles(conn: &mut Conn, hub: HubId, ids: &[i64]) -> StoreResult<Vec<ProfileRow>> {
    let sql = format!(
        "SELECT id, oldest_contact, member_count, merged_into FROM profiles \
         WHERE hub_id = $1 AND id IN ({}) ORDER BY id{FOR_UPDATE}",
        placeholders(2, ids.len())
    );
    let mut q = sqlx::query_as::<_, (i64, i64, i64, Option<i64>)>(&sql).bind(hub);
    for id in ids {
        q = q.bind(*id);
    }
    let rows = q.fetch_all(&mut *conn).await?;
    Ok(rows
        .into_iter()
        .map(
            |(id, oldest_contact, member_count, merged_into)| ProfileRow {
                id,
                oldest_contact,
                member_count,
                merged_into,
            },
        )
        .collect())
}

/// `$start, $start+1, ...`: `n` placeholders.
fn placeholders(start: usize, n: usize) -> String {
    (start..start + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl ThisStore {
    /// The plan the database picks for finding a contact's live profile, one line per step
    /// (for tests and operators checking that it searches `profiles` by primary key only).
    pub async fn live_profile_plan(
        &self,
        hub: HubId,
        contact: ContactId,
    ) -> StoreResult<Vec<String>> {
        let sql = explain(&profile_of_contact_sql());
        let rows = sqlx::query(&sql)
            .bind(hub)
            .bind(contact)
            .fetch_all(&self.pool)
            .await?;
        plan_lines(&rows)
    }
}

/// `sql` prefixed so that the database returns its plan instead of running it.
fn explain(sql: &str) -> String {
    if is_postgres() {
        format!("EXPLAIN {sql}")
    } else {
        format!("EXPLAIN QUERY PLAN {sql}")
    }
}

/// The steps of a plan `explain` returned, one line each (the last column of each row).
fn plan_lines(rows: &[<Db as sqlx::Database>::Row]) -> StoreResult<Vec<String>> {
    use sqlx::Row;
    rows.iter()
        .map(|row| Ok(row.try_get::<String, usize>(row.len() - 1)?))
        .collect()
}

/// A contact's live profile (`$1` the hub, `$2` the contact).
fn profile_of_contact_sql() -> String {
    format!(
        "SELECT p.id FROM memberships m {} WHERE m.hub_id = $1 AND m.contact_id = $2",
        to_live_profile()
    )
}

/// Joins a membership `m` to its contact's live profile `p`, through `o`, the profile the
/// contact was first placed in: a membership's bucket is that profile's id, for good. A merge
/// moves no membership: the absorbed profiles keep their members and name their survivor in
/// `merged_into` (always the live one: merges re-point earlier chains), so `o` is `p` itself
/// or was merged into it. Two searches by primary key.
fn to_live_profile() -> String {
    format!(
        "{ORDERED_JOIN} profiles o ON o.hub_id = m.hub_id AND o.id = m.bucket_id \
         {ORDERED_JOIN} profiles p ON p.hub_id = o.hub_id AND p.id = COALESCE(o.merged_into, o.id)"
    )
}

/// The buckets that hold the members of live profile `id` (an SQL expression; `$1` the hub),
/// as a query of one column, `bucket_id`: the profile's own id and those of the profiles
/// merged into it.
fn buckets_of(id: &str) -> String {
    format!(
        "SELECT CAST({id} AS BIGINT) AS bucket_id \
         UNION ALL SELECT id FROM profiles WHERE hub_id = $1 AND merged_into = {id}"
    )
}

/// The live profile of a contact.
async fn profile_of_contact(
    conn: &mut Conn,
    hub: HubId,
    contact: ContactId,
) -> StoreResult<ProfileId> {
    let row: Option<(i64,)> = sqlx::query_as(&profile_of_contact_sql())
    .bind(hub)
    .bind(contact)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|r| r.0)
        .ok_or_else(|| StoreError::Corrupt(format!("contact {contact} has no live profile")))
}

/// Appends events, numbering them after the hub's last one (see `take_event_numbers`).
async fn append_events(
    conn: &mut Conn,
    hub: HubId,
    events: &[(String, ProfileId, serde_json::Value)],
) -> StoreResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    let first = take_event_numbers(conn, hub, events.len()).await?;
    insert_events(conn, hub, first, events).await
}

/// Takes `n` event numbers after the hub's last one; returns the first. Runs last in a
/// transaction: the hub row it updates is held to commit, so numbers follow commit order.
/// Events of upserts committed before and still pending are numbered first, so they come
/// before these.
async fn take_event_numbers(conn: &mut Conn, hub: HubId, n: usize) -> StoreResult<i64> {
    move_pending_events(conn, hub).await?;
    let (last,): (i64,) = sqlx::query_as(
        "UPDATE hubs SET event_seq = event_seq + $2 WHERE hub_id = $1 RETURNING event_seq",
    )
    .bind(hub)
    .bind(n as i64)
    .fetch_one(&mut *conn)
    .await?;
    Ok(last - n as i64 + 1)
}

/// Inserts events numbered from `first` (numbers the caller took from the hub row).
async fn insert_events(
    conn: &mut Conn,
    hub: HubId,
    first: i64,
    events: &[(String, ProfileId, serde_json::Value)],
) -> StoreResult<()> {
    let mut batch = WriteBatch::default();
    queue_events(&mut batch, hub, first, events);
    run_batch(conn, batch).await
}

/// Rows of `cols` columns per multi-row statement: under both backends' parameter limits.
fn rows_per_statement(cols: usize) -> usize {
    (30_000 / cols).min(1000)
}


fn merged_event(
    survivor: ProfileId,
    absorbed: &[ProfileId],
    field: &str,
    value: &str,
) -> (String, ProfileId, serde_json::Value) {
    (
        "profile.merged".to_owned(),
        survivor,
        serde_json::json!({
            "survivor_id": survivor,
            "merged_ids": absorbed,
            "key": field,
            "value": value,
        }),
    )
}

/// Merges live, locked profiles into the oldest; `new_member` is a contact that joins with
/// the merge. No membership moves: each absorbed profile keeps its members and names the
/// survivor, as do the profiles merged into it before, so a merge writes a row per profile it
/// absorbs (and per earlier merge into those), whatever their sizes. Returns the survivor.
fn merge_profiles(
    batch: &mut WriteBatch,
    hub: HubId,
    profiles: &[ProfileRow],
    new_member: Option<ContactId>,
    at: Millis,
) -> ProfileRow {
    let survivor = profiles
        .iter()
        .min_by_key(|p| (p.oldest_contact, p.id))
        .expect("at least one profile")
        .clone();
    let member_count: i64 =
        profiles.iter().map(|p| p.member_count).sum::<i64>() + i64::from(new_member.is_some());
    // The survivor holds the oldest contact of the merged profiles; a new member can be older
    // still (see the join in `upsert_locked`).
    let oldest = new_member.map_or(survivor.oldest_contact, |c| c.min(survivor.oldest_contact));
    batch.push(
        "UPDATE profiles SET member_count = $3, updated_at = $4, oldest_contact = $5 \
         WHERE hub_id = $1 AND id = $2",
        vec![
            hub.into(),
            survivor.id.into(),
            member_count.into(),
            at.into(),
            oldest.into(),
        ],
    );
    for p in profiles.iter().filter(|p| p.id != survivor.id) {
        // Earlier merge chains point straight at the survivor, so resolving an old id (or a
        // bucket) is one read. Two statements rather than an OR, so each uses its index.
        for column in ["merged_into", "id"] {
            batch.push(
                format!(
                    "UPDATE profiles SET merged_into = $3, updated_at = $4 \
                     WHERE hub_id = $1 AND {column} = $2"
                ),
                vec![hub.into(), p.id.into(), survivor.id.into(), at.into()],
            );
        }
    }
    ProfileRow {
        member_count,
        ..survivor
    }
}

/// The live profiles the contact's unify-key values tie to, each with the first value (in
/// key order) that ties it, and with `own`, the contact's own live profile. Within a scope
/// every value is in exactly one profile, so one identifier row per value is enough, however
/// many contacts share it: the cost of an upsert does not grow with the profiles it touches.
async fn tied_profiles(
    conn: &mut Conn,
    hub: HubId,
    scope: &str,
    contact: ContactId,
    key_values: &[&(String, String)],
    own: bool,
) -> StoreResult<(Vec<(ProfileRow, String, String)>, Option<ProfileRow>)> {
    if key_values.is_empty() && !own {
        return Ok((Vec::new(), None));
    }
    let sql = tie_query_sql(key_values.len(), own);
    let mut q = sqlx::query_as::<_, (i64, i64, i64, i64)>(&sql)
        .bind(hub)
        .bind(scope.to_owned())
        .bind(contact);
    for (f, v) in key_values {
        q = q.bind(f.clone()).bind(v.clone());
    }
    let rows = q.fetch_all(&mut *conn).await?;
    Ok(split_tie_rows(rows, key_values))
}

/// The tie query's rows (`k, id, oldest, count`) as the tied profiles, each once with the
/// first value that ties it, and the contact's own profile (`k` = -1) when asked for.
fn split_tie_rows(
    rows: Vec<(i64, i64, i64, i64)>,
    key_values: &[&(String, String)],
) -> (Vec<(ProfileRow, String, String)>, Option<ProfileRow>) {
    let mut rows: Vec<TieRow> = rows
        .into_iter()
        .map(|(k, id, oldest, count)| (k, id, oldest, count, None))
        .collect();
    rows.sort_unstable();
    let own_row = match rows.first() {
        Some(&(k, id, oldest_contact, member_count, _)) if k < 0 => {
            rows.remove(0);
            Some(ProfileRow {
                id,
                oldest_contact,
                member_count,
                merged_into: None,
            })
        }
        _ => None,
    };
    (tied_rows(rows, key_values), own_row)
}

/// The tied profiles with the value that ties each, the contact's own profile when asked
/// for, and whether the tied profiles' rows are locked (`FOR UPDATE`) already.
type TiedProfiles = (Vec<(ProfileRow, String, String)>, Option<ProfileRow>, bool);

/// A row of the tie query: the tying value's index (-1 for the contact's own profile), then
/// the profile's id, oldest contact, member count and, where it was locked, `merged_into`.
type TieRow = (i64, i64, i64, i64, Option<i64>);

/// The tie query over `n` values (`$4`/`$5` the first field and value, and so on), with
/// `own` an arm for the contact's own profile (`$3`).
fn tie_query_sql(n: usize, own: bool) -> String {
    let own_arm = own.then(|| {
        format!(
            "SELECT * FROM (SELECT CAST(-1 AS BIGINT) AS k, p.id, p.oldest_contact, \
             p.member_count FROM memberships m {} \
             WHERE m.hub_id = $1 AND m.contact_id = $3 LIMIT 1) AS own",
            to_live_profile()
        )
    });
    (0..n)
        .map(|k| {
            format!(
                "SELECT * FROM (SELECT CAST({k} AS BIGINT) AS k, p.id, p.oldest_contact, \
                 p.member_count FROM identifiers i \
                 {ORDERED_JOIN} memberships m ON m.hub_id = i.hub_id AND m.contact_id = i.contact_id {} \
                 WHERE i.hub_id = $1 AND i.scope = $2 AND i.field = ${} AND i.value = ${} \
                   AND i.contact_id <> $3 LIMIT 1) AS t{k}",
                to_live_profile(),
                4 + 2 * k,
                5 + 2 * k
            )
        })
        .chain(own_arm)
        .collect::<Vec<_>>()
        .join(" UNION ALL ")
}

/// Tie rows (sorted, own profile removed) to profiles, each once, with the first value that
/// ties it.
fn tied_rows(rows: Vec<TieRow>, key_values: &[&(String, String)]) -> Vec<(ProfileRow, String, String)> {
    let mut seen = HashSet::new();
    rows.into_iter()
        .filter(|r| seen.insert(r.1))
        .map(|(k, id, oldest_contact, member_count, merged_into)| {
            let (f, v) = key_values[k as usize];
            (
                ProfileRow {
                    id,
                    oldest_contact,
                    member_count,
                    merged_into,
                },
                f.clone(),
                v.clone(),
            )
        })
        .collect()
}
