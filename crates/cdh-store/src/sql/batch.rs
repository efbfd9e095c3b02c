//! Writes queued within a transaction and sent together, and the placeholders they use.
//!
//! A statement sent through sqlx to SQLite is a round trip to the connection's worker thread,
//! which costs more than most of these writes take to run. An upsert's writes need nothing
//! back, so they are queued in a [`WriteBatch`] and each adapter sends them its own way
//! ([`crate::sql::Backend::run_batch`], [`crate::sql::Upserts::finish_upsert`]): SQLite as one
//! multi-statement query, PostgreSQL as one simple-protocol query with the values written as
//! literals. See BENCHMARKS.md for what each saves.

use crate::error::StoreResult;
use crate::model::{HubId, LedgerEntry, Millis};
use crate::plan::unify::NewEvent;

/// A value bound to a statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Arg {
    Int(i64),
    Text(String),
    /// `NULL` in an integer column (PostgreSQL types every parameter).
    NullInt,
    /// `NULL` in a text column.
    NullText,
}

impl From<i64> for Arg {
    fn from(value: i64) -> Self {
        Self::Int(value)
    }
}

impl From<String> for Arg {
    fn from(value: String) -> Self {
        Self::Text(value)
    }
}

impl From<&String> for Arg {
    fn from(value: &String) -> Self {
        Self::Text(value.clone())
    }
}

impl From<&str> for Arg {
    fn from(value: &str) -> Self {
        Self::Text(value.to_owned())
    }
}

impl From<Option<i64>> for Arg {
    fn from(value: Option<i64>) -> Self {
        value.map_or(Self::NullInt, Self::Int)
    }
}

impl From<Option<String>> for Arg {
    fn from(value: Option<String>) -> Self {
        value.map_or(Self::NullText, Self::Text)
    }
}

/// Statements that run in order, each with its own `$1..$n` parameters.
#[derive(Default, Debug)]
pub(crate) struct WriteBatch {
    pub statements: Vec<(String, Vec<Arg>)>,
}

impl WriteBatch {
    /// Queues a statement.
    pub fn push(&mut self, sql: impl Into<String>, args: Vec<Arg>) {
        self.statements.push((sql.into(), args));
    }
}

/// Appends `sql` to `out`, with each `$n` replaced by what `placeholder(out, n)` writes. The
/// statements carry their values as parameters, never as literals, so a `$` followed by
/// digits is always a placeholder.
pub(crate) fn for_each_placeholder(
    out: &mut String,
    sql: &str,
    mut placeholder: impl FnMut(&mut String, usize),
) {
    let bytes = sql.as_bytes();
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' {
            let digits = bytes[i + 1..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            if digits > 0 {
                let end = i + 1 + digits;
                let n: usize = sql[i + 1..end].parse().expect("ascii digits");
                out.push_str(&sql[copied..i]);
                placeholder(out, n);
                copied = end;
                i = end;
                continue;
            }
        }
        i += 1;
    }
    out.push_str(&sql[copied..]);
}

/// `$start, $start+1, ...`: `n` placeholders.
pub(crate) fn placeholders(start: usize, n: usize) -> String {
    (start..start + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `($1, ..., $cols), ($cols+1, ...)`: numbered placeholders for `rows` rows.
pub(crate) fn numbered_values_list(rows: usize, cols: usize) -> String {
    (0..rows)
        .map(|r| format!("({})", placeholders(1 + r * cols, cols)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Rows of `cols` columns per multi-row statement: under both backends' parameter limits.
pub(crate) fn rows_per_statement(cols: usize) -> usize {
    (30_000 / cols).min(1000)
}

/// Queues events of `realm` numbered from `first` (numbers the caller took from the hub row),
/// written at `at`.
pub(crate) fn queue_events(
    batch: &mut WriteBatch,
    hub: HubId,
    realm: &str,
    first: i64,
    events: &[NewEvent],
    at: Millis,
) {
    const COLUMNS: usize = 7;
    for (n, chunk) in events.chunks(rows_per_statement(COLUMNS)).enumerate() {
        let offset = first + (n * rows_per_statement(COLUMNS)) as i64;
        let mut args = Vec::with_capacity(chunk.len() * COLUMNS);
        for (i, event) in chunk.iter().enumerate() {
            args.extend([
                Arg::from(hub),
                Arg::from(offset + i as i64),
                Arg::from(at),
                Arg::from(event.kind),
                Arg::from(event.profile_id),
                Arg::from(event.payload.to_string()),
                Arg::from(realm),
            ]);
        }
        batch.push(
            format!(
                "INSERT INTO events (hub_id, seq, at, kind, profile_id, payload, realm) VALUES {}",
                numbered_values_list(chunk.len(), COLUMNS)
            ),
            args,
        );
    }
}

/// Queues one ledger row.
pub(crate) fn queue_ledger(
    batch: &mut WriteBatch,
    hub: HubId,
    entry: &LedgerEntry,
) -> StoreResult<()> {
    batch.push(
        "INSERT INTO merge_ledger (hub_id, seq, at, survivor_id, absorbed_ids, key_field, \
         key_value, cause_kind, cause_id, actor) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        vec![
            hub.into(),
            entry.seq.into(),
            entry.at.into(),
            entry.survivor_id.into(),
            serde_json::to_string(&entry.absorbed_ids)?.into(),
            entry.key_field.as_str().into(),
            entry.key_value.as_str().into(),
            entry.cause.kind.as_str().into(),
            entry.cause.id.as_str().into(),
            entry.cause.actor.as_str().into(),
        ],
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{for_each_placeholder, numbered_values_list};

    #[test]
    fn placeholders_are_found_and_literal_dollars_kept() {
        let mut out = String::new();
        for_each_placeholder(&mut out, "a = $1 AND b = '$x' AND c = $12", |out, n| {
            out.push_str(&format!("<{n}>"));
        });
        assert_eq!(out, "a = <1> AND b = '$x' AND c = <12>");
    }

    #[test]
    fn values_lists_number_their_rows_in_order() {
        assert_eq!(numbered_values_list(2, 3), "($1, $2, $3), ($4, $5, $6)");
    }
}
