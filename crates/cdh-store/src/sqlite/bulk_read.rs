//! The apply's two big reads (every contact with its profile, every contact's key values), at
//! once, each over a read-only rusqlite connection of its own: through sqlx each row is a message from the
//! connection's worker thread, which made these reads about 9 s of a 1M apply.

use std::path::PathBuf;

use rusqlite::{Connection, OpenFlags};

use super::writer::query;
use super::{APPLY_KEYS_SQL, Arg, ContactProfileRow, HubId, KeyValuesRow, StoreError, StoreResult};

/// Runs the two reads at once, each on a blocking thread over a read-only connection opened
/// for the purpose (an apply is rare; opening costs about a millisecond). Each read has a
/// snapshot of its own: both start after the caller read the marker, and a write between
/// them would change it too.
pub(super) async fn contacts_and_keys(
    path: PathBuf,
    hub: HubId,
    key_names: [String; 3],
) -> StoreResult<(Vec<ContactProfileRow>, Vec<KeyValuesRow>)> {
    let contacts_path = path.clone();
    let contacts = tokio::task::spawn_blocking(move || {
        let conn = open(&contacts_path)?;
        query(&conn, super::APPLY_CONTACTS_SQL, &[Arg::from(hub)], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
    });
    let keys = tokio::task::spawn_blocking(move || {
        let conn = open(&path)?;
        let mut args = vec![Arg::from(hub)];
        args.extend(key_names.iter().map(|n| Arg::from(n.as_str())));
        query(&conn, APPLY_KEYS_SQL, &args, |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
    });
    let stopped = |e: tokio::task::JoinError| StoreError::Backend {
        cause: format!("the apply's read stopped: {e}"),
    };
    let (contacts, keys) = tokio::join!(contacts, keys);
    Ok((contacts.map_err(stopped)??, keys.map_err(stopped)??))
}

fn open(path: &std::path::Path) -> StoreResult<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    Ok(conn)
}
