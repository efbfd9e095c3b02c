//! Statements both adapters run, written once over the [`Dialect`] where their text differs.
//!
//! A contact's live profile is found through its membership: a membership names the profile
//! its contact was first placed in (its bucket), for good. A merge moves no membership: an
//! absorbed profile keeps its members and names its survivor in `merged_into` (always the
//! live one: a merge re-points earlier chains), so a contact's live profile is its bucket's
//! profile or the one that profile names. Two searches by primary key.

use super::Dialect;

/// Joins a membership `m` to its contact's live profile `p`, through `o`, the profile the
/// contact was first placed in.
pub(crate) fn to_live_profile<D: Dialect>() -> String {
    let j = D::ORDERED_JOIN;
    format!(
        "{j} profiles o ON o.hub_id = m.hub_id AND o.id = m.bucket_id \
         {j} profiles p ON p.hub_id = o.hub_id AND p.id = COALESCE(o.merged_into, o.id)"
    )
}

/// The buckets that hold the members of live profile `id` (an SQL expression; `$1` the hub),
/// as a query of one column, `bucket_id`: the profile's own id and those of the profiles
/// merged into it.
pub(crate) fn buckets_of(id: &str) -> String {
    format!(
        "SELECT CAST({id} AS BIGINT) AS bucket_id \
         UNION ALL SELECT id FROM profiles WHERE hub_id = $1 AND merged_into = {id}"
    )
}

/// A contact's live profile (`$1` the hub, `$2` the contact).
pub(crate) fn profile_of_contact_sql<D: Dialect>() -> String {
    format!(
        "SELECT p.id FROM memberships m {} WHERE m.hub_id = $1 AND m.contact_id = $2",
        to_live_profile::<D>()
    )
}

/// `sql` prefixed so that the database returns its plan instead of running it.
pub(crate) fn explain<D: Dialect>(sql: &str) -> String {
    format!("{} {sql}", D::EXPLAIN)
}

/// The tie query over `n` values (`$4`/`$5` the first field and value, and so on), with
/// `own` an arm for the contact's own profile (`$3`). Rows: the tying value's index (-1 for
/// the contact's own profile), whether the row comes from a refused carrier (1) or not (0),
/// the profile's id, oldest contact, member count and unique values.
///
/// Within a scope the carriers of a value without a `conflicts` row are all in one profile
/// (`cdh_core::constrained`), so one of them is enough, however many contacts share it: the
/// cost of an upsert does not grow with the profiles it touches. The refused carriers' rows
/// name the value's other profiles; a value has at most `MAX_REFUSED_READ` of them read (a
/// value refused that often is one to exclude, and the preview lists it as suspicious).
pub(crate) fn tie_query_sql<D: Dialect>(n: usize, own: bool) -> String {
    let live = to_live_profile::<D>();
    let columns = "p.id, p.oldest_contact, p.member_count, p.unique_values";
    let own_arm = own.then(|| {
        format!(
            "SELECT * FROM (SELECT CAST(-1 AS BIGINT) AS k, CAST(0 AS BIGINT) AS refused, \
             {columns} FROM memberships m {live} \
             WHERE m.hub_id = $1 AND m.contact_id = $3 LIMIT 1) AS own"
        )
    });
    (0..n)
        .flat_map(|k| {
            let (field, value) = (4 + 2 * k, 5 + 2 * k);
            [
                format!(
                    "SELECT * FROM (SELECT CAST({k} AS BIGINT) AS k, CAST(0 AS BIGINT) AS refused, \
                     {columns} FROM identifiers i \
                     {} memberships m ON m.hub_id = i.hub_id AND m.contact_id = i.contact_id {live} \
                     WHERE i.hub_id = $1 AND i.scope = $2 AND i.field = ${field} \
                       AND i.value = ${value} AND i.contact_id <> $3 \
                       AND NOT EXISTS (SELECT 1 FROM conflicts x WHERE x.hub_id = i.hub_id \
                         AND x.contact_id = i.contact_id AND x.field = i.field) \
                     LIMIT 1) AS t{k}",
                    D::ORDERED_JOIN,
                ),
                format!(
                    "SELECT * FROM (SELECT CAST({k} AS BIGINT) AS k, CAST(1 AS BIGINT) AS refused, \
                     {columns} FROM conflicts i \
                     {} memberships m ON m.hub_id = i.hub_id AND m.contact_id = i.contact_id {live} \
                     WHERE i.hub_id = $1 AND i.scope = $2 AND i.field = ${field} \
                       AND i.value = ${value} AND i.contact_id <> $3 \
                     LIMIT {MAX_REFUSED_READ}) AS r{k}",
                    D::ORDERED_JOIN,
                ),
            ]
        })
        .chain(own_arm)
        .collect::<Vec<_>>()
        .join(" UNION ALL ")
}

/// At most this many refused carriers of one value are read by an upsert.
pub(crate) const MAX_REFUSED_READ: usize = 200;

/// The upsert's first read, over the hub (`$1`), the channel (`$2`) and the contact's
/// external id (`$3`): one `plan::contact::ContextRow` (its columns in that struct's order),
/// none when the channel is not the hub's.
///
/// The channel's organization unifies in its own realm, or in its connection's once that
/// connection's first apply has moved its contacts there (`unified_at`); the setting is that
/// realm's last applied one, and so is the cross-product switch: the switch as the apply
/// applied it, not as asked for since (the stored contacts' scopes are the applied ones, so
/// a new contact scoped by a switch not yet applied would find none of them). Before any
/// apply there are no keys, and the first apply scopes every contact.
pub(crate) fn upsert_context_sql<D: Dialect>() -> String {
    let realm = "CASE WHEN pc.id IS NULL THEN 'o' || ch.organization_id ELSE 'g' || pc.id END";
    format!(
        "SELECT ch.organization_id AS organization_id, ch.channel_type AS channel_type, \
         ch.product AS product, o.default_region AS region, pc.id AS connection_id, \
         COALESCE((SELECT s.cross_product FROM unify_settings s WHERE s.hub_id = $1 \
           AND s.realm = {realm} ORDER BY s.version DESC LIMIT 1), 0) \
           AS cross_product, {} AS first_id, \
         (SELECT s.keys FROM unify_settings s WHERE s.hub_id = $1 AND s.realm = {realm} \
          ORDER BY s.version DESC LIMIT 1) AS setting_keys, \
         (SELECT s.excluded FROM unify_settings s WHERE s.hub_id = $1 AND s.realm = {realm} \
          ORDER BY s.version DESC LIMIT 1) AS setting_excluded, \
         (SELECT s.unique_fields FROM unify_settings s WHERE s.hub_id = $1 \
          AND s.realm = {realm} ORDER BY s.version DESC LIMIT 1) AS setting_unique, \
         c.id AS contact_id, c.fields AS fields, c.tags AS tags, \
         c.custom_fields AS custom_fields, c.created_at AS created_at, h.event_seq AS event_seq \
         FROM channels ch \
         JOIN organizations o ON o.hub_id = ch.hub_id AND o.id = ch.organization_id \
         JOIN hubs h ON h.hub_id = ch.hub_id \
         LEFT JOIN connection_members cm \
           ON cm.hub_id = ch.hub_id AND cm.organization_id = ch.organization_id \
         LEFT JOIN partner_connections pc \
           ON pc.hub_id = cm.hub_id AND pc.id = cm.connection_id AND pc.unified_at IS NOT NULL \
         LEFT JOIN contacts c \
           ON c.hub_id = ch.hub_id AND c.channel_id = ch.id AND c.external_id = $3 \
         WHERE ch.hub_id = $1 AND ch.id = $2",
        D::ID_BLOCK_SQL
    )
}

/// Profiles with a member in the organization, from `(updated_at, id)` exclusive, in order
/// (`$1` hub, `$2`/`$3` the start, `$4` organization, `$5` the limit when `limit`).
pub(crate) fn org_profiles_sql<D: Dialect>(limit: bool) -> String {
    let j = D::ORDERED_JOIN;
    format!(
        "SELECT p.id, p.updated_at FROM profiles p \
         WHERE p.hub_id = $1 AND p.merged_into IS NULL \
           AND (p.updated_at > $2 OR (p.updated_at = $2 AND p.id > $3)) \
           AND EXISTS (SELECT 1 FROM ({}) b \
             {j} memberships m ON m.hub_id = $1 AND m.bucket_id = b.bucket_id \
             {j} contacts c ON c.hub_id = m.hub_id AND c.id = m.contact_id \
             {j} channels ch ON ch.hub_id = c.hub_id AND ch.id = c.channel_id \
             WHERE ch.organization_id = $4) \
         ORDER BY p.updated_at, p.id{}",
        buckets_of("p.id"),
        if limit { " LIMIT $5" } else { "" }
    )
}

/// Each contact with its live profile (`$1` the hub), in contact order: one read, since a row
/// costs more than the join. Outer joins, so that a contact without a profile shows (as
/// corrupt) rather than vanishing. Rows: `plan::apply::ContactProfileRow`.
pub(crate) const APPLY_CONTACTS_SQL: &str = "SELECT c.id, c.channel_id, c.scope, p.id, p.oldest_contact \
     FROM contacts c \
     LEFT JOIN memberships m ON m.hub_id = c.hub_id AND m.contact_id = c.id \
     LEFT JOIN profiles o ON o.hub_id = m.hub_id AND o.id = m.bucket_id \
     LEFT JOIN profiles p ON p.hub_id = o.hub_id AND p.id = COALESCE(o.merged_into, o.id) \
     WHERE c.hub_id = $1 ORDER BY c.id";

/// One row per contact with its value of each key field `$2`, `$3`, `$4` (a contact holds at
/// most one value per field: the primary key is hub, contact, field): rows, not SQL, are what
/// a read costs here. Rows: `plan::apply::KeyValuesRow`.
pub(crate) const APPLY_KEYS_SQL: &str = "SELECT contact_id, \
     max(CASE WHEN field = $2 THEN value END), \
     max(CASE WHEN field = $3 THEN value END), \
     max(CASE WHEN field = $4 THEN value END) \
     FROM identifiers WHERE hub_id = $1 AND field IN ($2, $3, $4) \
     GROUP BY contact_id ORDER BY contact_id";

/// Moves one staged column from `staging` into its table (`$1` the hub, `$2` the task); see
/// `ApplyPlan::staged_columns`.
pub(crate) fn swap_staged_sql(staging: &str, (table, column, key): (&str, &str, &str)) -> String {
    format!(
        "UPDATE {table} SET {column} = s.{column} FROM {staging} s \
         WHERE {table}.hub_id = $1 AND s.hub_id = $1 AND s.task_id = $2 \
         AND s.contact_id = {table}.{key}"
    )
}

/// Records that the staged rows up to `$3` are written, for task `$2` of hub `$1`.
pub(crate) const STAGED_DONE_SQL: &str =
    "UPDATE tasks SET status = 'running', done = $3 WHERE hub_id = $1 AND id = $2";

/// The unify keys in force (as stored, a JSON list) in the realm of contact `{contact}` (an
/// SQL expression over the hub `$1`): the realm its scope begins with (`rules::realm_of_scope`).
/// A realm's settings are few, so matching the scope's prefix costs little.
pub(crate) fn realm_keys_sql(contact: &str) -> String {
    format!(
        "(SELECT s.keys FROM contacts rc, unify_settings s \
          WHERE rc.hub_id = $1 AND rc.id = {contact} AND s.hub_id = $1 \
            AND (s.realm = rc.scope OR rc.scope LIKE s.realm || ':%') \
          ORDER BY s.version DESC LIMIT 1)"
    )
}

/// The unify-settings row an apply adds (`$1` hub .. `$7` applied at, `$8` the realm, `$9` the
/// cross-product switch it applied, 0 or 1).
pub(crate) const INSERT_SETTING_SQL: &str = "INSERT INTO unify_settings (hub_id, version, keys, \
     excluded, actor, task_id, applied_at, realm, cross_product, unique_fields) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

/// Marks connection `$2` of hub `$1` unified at `$3` by its realm's first apply: from then on
/// its organizations' contacts unify in its scopes.
pub(crate) const UNIFY_CONNECTION_SQL: &str = "UPDATE partner_connections SET unified_at = $3 \
     WHERE hub_id = $1 AND id = $2 AND unified_at IS NULL";

/// Ends task `$2` of hub `$1` with status `$3`, result `$4` or error `$5`, at `$6`.
pub(crate) const FINISH_TASK_SQL: &str = "UPDATE tasks SET status = $3, result = $4, error = $5, \
     checkpoint = NULL, finished_at = $6, started_at = COALESCE(started_at, $6), \
     done = CASE WHEN $3 = 'succeeded' THEN total ELSE done END WHERE hub_id = $1 AND id = $2";

/// Records task `$2`'s progress (`$3` of `$4`) at `$5`, marking it running.
pub(crate) const TASK_PROGRESS_SQL: &str = "UPDATE tasks SET status = 'running', done = $3, \
     total = $4, started_at = COALESCE(started_at, $5) WHERE hub_id = $1 AND id = $2";

/// Every channel of the hub (`$1`) with what decides its contacts' scope. Rows:
/// `plan::apply::ScopedChannelRow`.
pub(crate) const CHANNEL_SCOPES_SQL: &str = "SELECT ch.id AS id, \
     ch.organization_id AS organization_id, ch.channel_type AS channel_type, \
     ch.product AS product, o.default_region AS region, cm.connection_id AS connection_id \
     FROM channels ch JOIN organizations o ON o.hub_id = ch.hub_id AND o.id = ch.organization_id \
     LEFT JOIN connection_members cm \
       ON cm.hub_id = ch.hub_id AND cm.organization_id = ch.organization_id \
     WHERE ch.hub_id = $1";
