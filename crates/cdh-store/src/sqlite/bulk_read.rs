//! The apply's two big reads (every contact with its profile, every contact's key values), at
//! once, each over a read-only rusqlite connection of its own: through sqlx each row is a
//! message from the connection's worker thread, which made these reads most of an apply's
//! time (BENCHMARKS.md).

use std::path::PathBuf;

use rusqlite::{Connection, OpenFlags};

use super::writer::query;
use crate::error::{StoreError, StoreResult};
use crate::model::HubId;
use crate::plan::apply::{ContactProfileRow, KeyValuesRow};
use crate::sql::Arg;
use crate::sql::text::{APPLY_CONTACTS_SQL, APPLY_KEYS_SQL};

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
        query(&conn, APPLY_CONTACTS_SQL, &[Arg::from(hub)], |r| {
            Ok(ContactProfileRow {
                contact_id: r.get(0)?,
                channel_id: r.get(1)?,
                scope: r.get(2)?,
                profile_id: r.get(3)?,
                oldest_contact: r.get(4)?,
            })
        })
    });
    let keys = tokio::task::spawn_blocking(move || {
        let conn = open(&path)?;
        let mut args = vec![Arg::from(hub)];
        args.extend(key_names.iter().map(|n| Arg::from(n.as_str())));
        query(&conn, APPLY_KEYS_SQL, &args, |r| {
            Ok(KeyValuesRow {
                contact_id: r.get(0)?,
                values: [r.get(1)?, r.get(2)?, r.get(3)?],
            })
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
