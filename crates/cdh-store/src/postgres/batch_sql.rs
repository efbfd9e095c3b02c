//! The statements of a batch of upserts (the batching itself is in `batch`): its three round
//! trips, and the two statements every connection prepares for it, `cdh_contexts` and
//! `cdh_ties`.

use sqlx::Row as _;

use super::PgStore;
use super::batch::UpsertRequest;
use super::upsert::{inline_into, text_literal_into};
use crate::error::StoreResult;
use crate::model::HubId;
use crate::plan::contact::{ContactPlan, ContextRow};
use crate::plan::unify::TieRow;
use crate::rules::contact_lock_key;
use crate::sql::batch::{for_each_placeholder, placeholders};
use crate::sql::text::{MAX_REFUSED_READ, upsert_context_sql};
use crate::sql::{Arg, WriteBatch};

/// The batch's first round trip: the hub lock (shared) and the contacts' key locks, in
/// ascending order, then `BEGIN` and every contact's context (`upsert_context_sql` for each).
/// A context per chosen request, `None` where its channel is not the hub's.
pub(super) async fn begin_batch(
    conn: &mut sqlx::PgConnection,
    hub: HubId,
    requests: &[UpsertRequest],
    chosen: &[usize],
) -> StoreResult<Vec<Option<ContextRow>>> {
    use sqlx::FromRow;
    use std::fmt::Write;
    let (a, b) = super::hub_lock(hub);
    let mut keys: Vec<i64> = chosen
        .iter()
        .map(|&i| {
            let input = &requests[i].input;
            contact_lock_key(hub, input.channel_id, &input.external_id)
        })
        .collect();
    keys.sort_unstable();
    let mut sql = format!(
        "SELECT pg_advisory_xact_lock_shared({a}, {b}); {} BEGIN; EXECUTE cdh_contexts({hub}, ",
        lock_keys_sql(&keys)
    );
    let channels = chosen.iter().map(|&i| requests[i].input.channel_id);
    array_literal_into(&mut sql, channels, "bigint", |out, id| {
        let _ = write!(out, "{id}");
        Ok(())
    })?;
    sql.push_str(", ");
    let external_ids = chosen
        .iter()
        .map(|&i| requests[i].input.external_id.as_str());
    array_literal_into(&mut sql, external_ids, "text", text_literal_into)?;
    sql.push(')');
    // A query without arguments goes out as a simple query, its statements in one message.
    let rows = sqlx::Executor::fetch_all(&mut *conn, sql.as_str()).await?;
    let mut contexts: Vec<Option<ContextRow>> = chosen.iter().map(|_| None).collect();
    // The lock statements' rows have one column; the contexts' sixteen, the last `v.n`
    // (from 1).
    for row in rows.iter().filter(|r| r.len() > 2) {
        let n: i64 = row.try_get(row.len() - 1)?;
        contexts[n as usize - 1] = Some(ContextRow::from_row(row)?);
    }
    Ok(contexts)
}

/// `PREPARE cdh_contexts`: `upsert_context_sql` for many contacts of a hub (`$1`), their
/// channels (`$2`) and external ids (`$3`), each row ending in its contact's place in the
/// arrays, from 1. Kept planned on every connection, as `cdh_context` is.
pub(super) fn prepare_contexts_sql() -> String {
    let mut sql = "PREPARE cdh_contexts (bigint, bigint[], text[]) AS \
         SELECT ctx.*, v.n FROM unnest($2, $3) WITH ORDINALITY AS v (channel_id, external_id, n) \
         CROSS JOIN LATERAL ("
        .to_owned();
    for_each_placeholder(&mut sql, &upsert_context_sql::<PgStore>(), |out, p| {
        out.push_str(match p {
            1 => "$1",
            2 => "v.channel_id",
            _ => "v.external_id",
        });
    });
    sql.push_str(") AS ctx");
    sql
}

/// `PREPARE cdh_ties`: the tie query for many values of a hub (`$1`), one per element of the
/// arrays: its contact's place in the batch (`$2`), its index among that contact's values
/// (`$3`), the contact (`$4`), the scope, field and value (`$5` to `$7`). Locks the profiles it
/// finds, by id, as `cdh_tie_<n>` does.
pub(super) fn prepare_ties_sql() -> String {
    format!(
        "PREPARE cdh_ties (bigint, integer[], integer[], bigint[], text[], text[], text[]) AS \
     SELECT v.n, v.k, t.refused, p.id, p.oldest_contact, p.member_count, p.unique_values, \
     p.merged_into \
     FROM unnest($2, $3, $4, $5, $6, $7) AS v (n, k, contact, scope, field, value) \
     CROSS JOIN LATERAL ((SELECT 0 AS refused, q.id FROM identifiers i \
       JOIN memberships m ON m.hub_id = i.hub_id AND m.contact_id = i.contact_id \
       JOIN profiles o ON o.hub_id = m.hub_id AND o.id = m.bucket_id \
       JOIN profiles q ON q.hub_id = o.hub_id AND q.id = COALESCE(o.merged_into, o.id) \
       WHERE i.hub_id = $1 AND i.scope = v.scope AND i.field = v.field \
         AND i.value = v.value AND i.contact_id <> v.contact \
         AND NOT EXISTS (SELECT 1 FROM conflicts x WHERE x.hub_id = i.hub_id \
           AND x.contact_id = i.contact_id AND x.field = i.field) LIMIT 1) \
       UNION ALL (SELECT 1 AS refused, q.id FROM conflicts i \
       JOIN memberships m ON m.hub_id = i.hub_id AND m.contact_id = i.contact_id \
       JOIN profiles o ON o.hub_id = m.hub_id AND o.id = m.bucket_id \
       JOIN profiles q ON q.hub_id = o.hub_id AND q.id = COALESCE(o.merged_into, o.id) \
       WHERE i.hub_id = $1 AND i.scope = v.scope AND i.field = v.field \
         AND i.value = v.value AND i.contact_id <> v.contact LIMIT {MAX_REFUSED_READ})) AS t \
     JOIN profiles p ON p.hub_id = $1 AND p.id = t.id \
     ORDER BY p.id, v.n, v.k FOR UPDATE OF p"
    )
}

/// `ARRAY[...]::<element>[]`, each item written by `write`.
fn array_literal_into<T>(
    out: &mut String,
    items: impl Iterator<Item = T>,
    element: &str,
    mut write: impl FnMut(&mut String, T) -> StoreResult<()>,
) -> StoreResult<()> {
    out.push_str("ARRAY[");
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write(out, item)?;
    }
    out.push_str("]::");
    out.push_str(element);
    out.push_str("[]");
    Ok(())
}

/// `SELECT pg_advisory_xact_lock(...)` over `keys` in ascending order, as a statement ending
/// in `;` (empty for no keys).
fn lock_keys_sql(keys: &[i64]) -> String {
    if keys.is_empty() {
        return String::new();
    }
    let keys = keys
        .iter()
        .map(|k| k.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT pg_advisory_xact_lock(k) FROM (SELECT DISTINCT unnest(ARRAY[{keys}]::bigint[]) \
         AS k ORDER BY 1) AS s;"
    )
}

/// The batch's second round trip: every value lock of the plans, in ascending order, then one
/// tie query over all their values, which locks the profiles it finds (`FOR UPDATE`, by id).
/// The tie rows of each plan, sorted, as `tied_rows` takes them.
pub(super) async fn lock_values_and_tie_batch(
    conn: &mut sqlx::PgConnection,
    hub: HubId,
    plans: &[(usize, ContactPlan)],
) -> StoreResult<Vec<Vec<TieRow>>> {
    use std::fmt::Write;
    let mut ties: Vec<Vec<TieRow>> = plans.iter().map(|_| Vec::new()).collect();
    let mut keys: Vec<i64> = plans
        .iter()
        .flat_map(|(_, plan)| plan.value_locks.iter().copied())
        .collect();
    if keys.is_empty() {
        return Ok(ties);
    }
    keys.sort_unstable();
    let mut sql = format!("{} EXECUTE cdh_ties({hub}, ", lock_keys_sql(&keys));
    // One element per value: its plan, its index among the plan's values, the contact, the
    // scope, the field and the value.
    let values: Vec<(usize, usize, &ContactPlan, &(String, String))> = plans
        .iter()
        .enumerate()
        .flat_map(|(n, (_, plan))| {
            plan.key_values
                .iter()
                .enumerate()
                .map(move |(k, kv)| (n, k, plan, kv))
        })
        .collect();
    let int = |out: &mut String, v: i64| {
        let _ = write!(out, "{v}");
        Ok(())
    };
    array_literal_into(&mut sql, values.iter().map(|v| v.0 as i64), "integer", int)?;
    sql.push_str(", ");
    array_literal_into(&mut sql, values.iter().map(|v| v.1 as i64), "integer", int)?;
    sql.push_str(", ");
    array_literal_into(
        &mut sql,
        values.iter().map(|v| v.2.contact_id.0),
        "bigint",
        int,
    )?;
    sql.push_str(", ");
    let scopes = values.iter().map(|v| v.2.scope.as_str());
    array_literal_into(&mut sql, scopes, "text", text_literal_into)?;
    sql.push_str(", ");
    let fields = values.iter().map(|v| v.3.0.as_str());
    array_literal_into(&mut sql, fields, "text", text_literal_into)?;
    sql.push_str(", ");
    let texts = values.iter().map(|v| v.3.1.as_str());
    array_literal_into(&mut sql, texts, "text", text_literal_into)?;
    sql.push(')');
    // A query without arguments goes out as a simple query, both statements in one message.
    let rows = sqlx::Executor::fetch_all(&mut *conn, sql.as_str()).await?;
    // The lock statement's rows have one column; the tie query's eight.
    for row in rows.iter().filter(|r| r.len() == 8) {
        let n: i32 = row.try_get(0)?;
        let k: i32 = row.try_get(1)?;
        ties[n as usize].push(TieRow {
            k: i64::from(k),
            refused: row.try_get::<i32, _>(2)? != 0,
            id: row.try_get(3)?,
            oldest_contact: row.try_get(4)?,
            member_count: row.try_get(5)?,
            unique_values: row.try_get(6)?,
            merged_into: row.try_get(7)?,
        });
    }
    for rows in &mut ties {
        rows.sort_unstable();
    }
    Ok(ties)
}

/// The writes of independent upserts as one script. Each `INSERT` joins, as more rows, the
/// first like one (same table and columns) placed after its upsert's previous statement, and
/// so does each `UPDATE` of one row set by key (`UpdateShape`), as a row of its arguments;
/// other statements keep a place of their own. Upserts of a batch touch different rows, so
/// only each one's own order matters, and no two rows of a joined `UPDATE` meet the same row.
pub(super) fn grouped_writes(batches: &[WriteBatch]) -> StoreResult<String> {
    let mut groups: Vec<Group> = Vec::new();
    for batch in batches {
        let mut after = 0;
        for (statement, args) in &batch.statements {
            let joinable = (after..groups.len()).find(|&j| groups[j].takes(statement));
            match joinable {
                Some(j) => {
                    groups[j].join(statement, args)?;
                    after = j + 1;
                }
                None => {
                    groups.push(Group::new(statement, args)?);
                    after = groups.len();
                }
            }
        }
    }
    let mut script = String::new();
    for group in groups {
        group.render_into(&mut script);
        script.push_str(";\n");
    }
    Ok(script)
}

/// A statement of a batch's script, with the like statements joined to it.
enum Group<'a> {
    /// `INSERT ... VALUES`: its text up to the rows, and the rows, written out.
    Insert {
        head: &'a str,
        rows: Vec<String>,
    },
    /// An `UPDATE` of `UpdateShape`: its template, the statement written out, and each
    /// joined statement's arguments as a row of literals.
    Update {
        template: &'a str,
        shape: UpdateShape<'a>,
        first: String,
        rows: Vec<String>,
    },
    Other(String),
}

impl<'a> Group<'a> {
    fn new(statement: &'a str, args: &[Arg]) -> StoreResult<Self> {
        let mut first = String::new();
        if let Some(head) = insert_head(statement) {
            inline_into(&mut first, &statement[head.len()..], args)?;
            return Ok(Self::Insert {
                head,
                rows: vec![first],
            });
        }
        inline_into(&mut first, statement, args)?;
        Ok(match UpdateShape::of(statement, args.len()) {
            Some(shape) => Self::Update {
                template: statement,
                shape,
                rows: vec![args_row(args)?],
                first,
            },
            None => Self::Other(first),
        })
    }

    /// Whether `statement` can join this one.
    fn takes(&self, statement: &str) -> bool {
        match self {
            Self::Insert { head, .. } => {
                statement.len() > head.len()
                    && statement.starts_with(head)
                    && insert_head(statement) == Some(*head)
            }
            Self::Update { template, .. } => statement == *template,
            Self::Other(_) => false,
        }
    }

    fn join(&mut self, statement: &str, args: &[Arg]) -> StoreResult<()> {
        match self {
            Self::Insert { head, rows } => {
                let mut row = String::new();
                inline_into(&mut row, &statement[head.len()..], args)?;
                rows.push(row);
            }
            Self::Update { rows, .. } => rows.push(args_row(args)?),
            Self::Other(_) => unreachable!("`takes` joins nothing to another statement"),
        }
        Ok(())
    }

    fn render_into(self, out: &mut String) {
        use std::fmt::Write;
        match self {
            Self::Insert { head, rows } => {
                out.push_str(head);
                out.push_str(&rows.join(", "));
            }
            Self::Update { first, rows, .. } if rows.len() == 1 => out.push_str(&first),
            Self::Update { shape, rows, .. } => {
                let _ = write!(out, "UPDATE {} AS t SET ", shape.table);
                for_each_placeholder(out, shape.set, |out, n| {
                    let _ = write!(out, "v.c{n}");
                });
                let columns = (1..=shape.n_args)
                    .map(|n| format!("c{n}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let _ = write!(
                    out,
                    " FROM (VALUES {}) AS v ({columns}) WHERE t.hub_id = v.c1 AND t.{} = v.c2",
                    rows.join(", "),
                    shape.column
                );
            }
            Self::Other(sql) => out.push_str(&sql),
        }
    }
}

/// `UPDATE <table> SET <set> WHERE hub_id = $1 AND <column> = $2`, whose arguments are all
/// numbered `$1` to `$n_args`: many of them make one `UPDATE ... FROM (VALUES ...)`.
struct UpdateShape<'a> {
    table: &'a str,
    set: &'a str,
    column: &'a str,
    n_args: usize,
}

impl<'a> UpdateShape<'a> {
    fn of(statement: &'a str, n_args: usize) -> Option<Self> {
        const WHERE: &str = " WHERE hub_id = $1 AND ";
        let rest = statement.strip_prefix("UPDATE ")?;
        let (table, rest) = rest.split_once(" SET ")?;
        let (set, condition) = rest.rsplit_once(WHERE)?;
        let column = condition.strip_suffix(" = $2")?;
        let plain = |name: &str| {
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        };
        let mut highest = 0;
        for_each_placeholder(&mut String::new(), statement, |_, n| {
            highest = highest.max(n)
        });
        (plain(table) && plain(column) && n_args >= 2 && highest == n_args).then_some(Self {
            table,
            set,
            column,
            n_args,
        })
    }
}

/// `(<literal>, ...)`: a statement's arguments as a row of `VALUES`.
fn args_row(args: &[Arg]) -> StoreResult<String> {
    let mut row = String::new();
    inline_into(
        &mut row,
        &format!("({})", placeholders(1, args.len())),
        args,
    )?;
    Ok(row)
}

/// An `INSERT ... VALUES (...)` statement's text up to its rows; `None` for another statement.
fn insert_head(statement: &str) -> Option<&str> {
    const VALUES: &str = " VALUES (";
    let at = statement.find(VALUES)?;
    let rows = &statement[at + VALUES.len() - 1..];
    (statement.starts_with("INSERT INTO ")
        && rows.ends_with(')')
        && !rows.contains(" ON CONFLICT")
        && !rows.contains("RETURNING"))
    .then(|| &statement[..at + VALUES.len() - 1])
}

#[cfg(test)]
mod grouped_writes_tests {
    use super::*;

    const INSERT: &str =
        "INSERT INTO memberships (hub_id, contact_id, bucket_id) VALUES ($1, $2, $3)";
    const UPDATE: &str = "UPDATE profiles SET member_count = member_count + $3, note = $4 WHERE hub_id = $1 AND id = $2";

    fn batch(statements: &[(&str, Vec<Arg>)]) -> WriteBatch {
        let mut batch = WriteBatch::default();
        for (sql, args) in statements {
            let args = args.to_vec();
            batch.push(*sql, args);
        }
        batch
    }

    #[test]
    fn like_statements_join_and_each_upserts_order_holds() {
        let first = batch(&[
            (INSERT, vec![1.into(), 10.into(), 100.into()]),
            (UPDATE, vec![1.into(), 100.into(), 1.into(), "it's".into()]),
        ]);
        let second = batch(&[
            (INSERT, vec![1.into(), 11.into(), 200.into()]),
            (UPDATE, vec![1.into(), 200.into(), (-1).into(), "b".into()]),
            // After its own UPDATE: a place of its own, not the first INSERT's.
            (INSERT, vec![1.into(), 12.into(), 200.into()]),
            (
                "DELETE FROM identifiers WHERE hub_id = $1 AND contact_id = $2",
                vec![1.into(), 11.into()],
            ),
        ]);
        assert_eq!(
            grouped_writes(&[first, second]).unwrap(),
            "INSERT INTO memberships (hub_id, contact_id, bucket_id) VALUES (1, 10, 100), (1, 11, 200);\n\
             UPDATE profiles AS t SET member_count = member_count + v.c3, note = v.c4 \
             FROM (VALUES (1, 100, 1, 'it''s'), (1, 200, (-1), 'b')) AS v (c1, c2, c3, c4) \
             WHERE t.hub_id = v.c1 AND t.id = v.c2;\n\
             INSERT INTO memberships (hub_id, contact_id, bucket_id) VALUES (1, 12, 200);\n\
             DELETE FROM identifiers WHERE hub_id = 1 AND contact_id = 11;\n"
        );
    }

    #[test]
    fn a_lone_update_stays_as_written() {
        let only = batch(&[(UPDATE, vec![1.into(), 100.into(), 1.into(), "a".into()])]);
        assert_eq!(
            grouped_writes(&[only]).unwrap(),
            "UPDATE profiles SET member_count = member_count + 1, note = 'a' WHERE hub_id = 1 AND id = 100;\n"
        );
    }
}
