// Writes queued within a transaction and sent together (shared by both adapters; each
// provides `run_batch` and `finish_upsert`).
//
// A statement sent through sqlx to SQLite costs a round trip to the connection's worker
// thread, ~50 µs on this machine, more than most of these writes take to run. An upsert's
// writes need nothing back, so they are queued here and sent as one multi-statement query on
// SQLite. PostgreSQL takes one statement with parameters at a time: `run_batch` runs them in
// turn, and an upsert's `finish_upsert` writes their values as literals into one simple query.

/// A value bound to a queued statement.
enum Arg {
    Int(i64),
    Text(String),
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

impl From<&str> for Arg {
    fn from(value: &str) -> Self {
        Self::Text(value.to_owned())
    }
}

/// Statements that run in order, each with its own `$1..$n` parameters.
#[derive(Default)]
struct WriteBatch {
    statements: Vec<(String, Vec<Arg>)>,
}

impl WriteBatch {
    fn push(&mut self, sql: impl Into<String>, args: Vec<Arg>) {
        self.statements.push((sql.into(), args));
    }
}

/// Appends `sql` to `out`, with each `$n` replaced by what `placeholder(out, n)` writes. The
/// statements carry their values as parameters, never as literals, so a `$` followed by
/// digits is always a placeholder.
fn for_each_placeholder(out: &mut String, sql: &str, mut placeholder: impl FnMut(&mut String, usize)) {
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

type Query<'q> = sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments<'q>>;

fn bind_arg<'q>(query: Query<'q>, arg: &'q Arg) -> Query<'q> {
    match arg {
        Arg::Int(value) => query.bind(*value),
        Arg::Text(value) => query.bind(value.as_str()),
    }
}

/// Queues events numbered from `first` (numbers the caller took from the hub row).
fn queue_events(
    batch: &mut WriteBatch,
    hub: HubId,
    first: i64,
    events: &[(String, ProfileId, serde_json::Value)],
) {
    let at = now_ms();
    for (n, chunk) in events.chunks(rows_per_statement(6)).enumerate() {
        let offset = first + (n * rows_per_statement(6)) as i64;
        let mut args = Vec::with_capacity(chunk.len() * 6);
        for (i, (kind, profile, payload)) in chunk.iter().enumerate() {
            args.extend([
                Arg::from(hub),
                Arg::from(offset + i as i64),
                Arg::from(at),
                Arg::from(kind.as_str()),
                Arg::from(*profile),
                Arg::from(payload.to_string()),
            ]);
        }
        batch.push(
            format!(
                "INSERT INTO events (hub_id, seq, at, kind, profile_id, payload) VALUES {}",
                numbered_values_list(chunk.len(), 6)
            ),
            args,
        );
    }
}

/// `($1, ..., $cols), ($cols+1, ...)`: numbered placeholders for `rows` rows, which a batch
/// can renumber (`values_list` gives SQLite positional `?`).
fn numbered_values_list(rows: usize, cols: usize) -> String {
    (0..rows)
        .map(|r| format!("({})", placeholders(1 + r * cols, cols)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Queues one ledger row.
fn queue_ledger(batch: &mut WriteBatch, hub: HubId, entry: &LedgerEntry) -> StoreResult<()> {
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
