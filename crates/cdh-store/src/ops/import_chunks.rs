//! A queued import's rows as the store keeps them until the import ends: chunks of one write
//! batch each (`import_chunks`), and the reader that gives an import its rows by position
//! while holding one chunk at a time.

use crate::error::{StoreError, StoreResult};
use crate::model::{HubId, ImportChunk, ImportRow, ImportRows, TaskId};
use crate::sql::{Adapter, Query, query};

/// A stored chunk's place: its number and how many rows it holds.
#[derive(Clone, Copy, Debug, sqlx::FromRow)]
pub(crate) struct ChunkMeta {
    pub chunk: i64,
    pub n_rows: i64,
}

/// The statement that stores chunk `n` of import `task`.
pub(crate) fn insert_chunk(
    hub: HubId,
    task: TaskId,
    n: usize,
    chunk: &ImportChunk,
) -> StoreResult<Query<'static>> {
    let too_big = |_| StoreError::Invalid("an import has too many rows to queue".to_owned());
    Ok(query(
        "INSERT INTO import_chunks (hub_id, task_id, chunk, n_rows, rows_text) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(hub)
    .bind(task)
    .bind(i64::try_from(n).map_err(too_big)?)
    .bind(i64::try_from(chunk.n_rows).map_err(too_big)?)
    .bind(&chunk.text))
}

/// The statement that drops import `task`'s rows.
pub(crate) fn delete_chunks(hub: HubId, task: TaskId) -> Query<'static> {
    query("DELETE FROM import_chunks WHERE hub_id = $1 AND task_id = $2")
        .bind(hub)
        .bind(task)
}

/// Import `task`'s chunks, in order (none once it has ended).
pub(crate) async fn queued_chunks<B: Adapter>(
    conn: &mut B::Conn,
    hub: HubId,
    task: TaskId,
) -> StoreResult<Vec<ChunkMeta>> {
    B::fetch_all(
        conn,
        query(
            "SELECT chunk, n_rows FROM import_chunks WHERE hub_id = $1 AND task_id = $2 \
             ORDER BY chunk",
        )
        .bind(hub)
        .bind(task),
    )
    .await
}

/// Chunk `chunk` of import `task`.
pub(crate) async fn read_chunk<B: Adapter>(
    conn: &mut B::Conn,
    hub: HubId,
    task: TaskId,
    chunk: i64,
) -> StoreResult<ImportChunk> {
    let row: Option<(i64, String)> = B::fetch_optional(
        conn,
        query(
            "SELECT n_rows, rows_text FROM import_chunks \
             WHERE hub_id = $1 AND task_id = $2 AND chunk = $3",
        )
        .bind(hub)
        .bind(task)
        .bind(chunk),
    )
    .await?;
    let (n_rows, text) = row.ok_or_else(gone)?;
    Ok(ImportChunk {
        n_rows: usize::try_from(n_rows).map_err(|_| gone())?,
        text,
    })
}

/// An import's rows by position, from the caller or from the store; a stored import is read
/// one chunk at a time, and only that chunk is held (typed).
pub(crate) struct RowReader<'a, B> {
    store: &'a B,
    hub: HubId,
    source: Source<'a>,
}

enum Source<'a> {
    Given(&'a [ImportRow]),
    Stored {
        task: TaskId,
        /// Each chunk's number and its first row's position.
        chunks: Vec<(i64, usize)>,
        n_rows: usize,
        /// The chunk read last: its index in `chunks` and its rows.
        held: Option<(usize, Vec<ImportRow>)>,
    },
}

impl<'a, B: Adapter> RowReader<'a, B> {
    /// A reader of `rows`; queued rows are those of `task`.
    pub async fn open(
        store: &'a B,
        hub: HubId,
        rows: ImportRows<'a>,
        task: Option<TaskId>,
    ) -> StoreResult<Self> {
        let source = match (rows, task) {
            (ImportRows::Given(rows), _) => Source::Given(rows),
            (ImportRows::Queued, Some(task)) => {
                let metas = {
                    let mut conn = store.acquire().await?;
                    queued_chunks::<B>(&mut conn, hub, task).await?
                };
                let mut chunks = Vec::with_capacity(metas.len());
                let mut n_rows = 0;
                for meta in metas {
                    chunks.push((meta.chunk, n_rows));
                    n_rows += usize::try_from(meta.n_rows).map_err(|_| gone())?;
                }
                Source::Stored {
                    task,
                    chunks,
                    n_rows,
                    held: None,
                }
            }
            (ImportRows::Queued, None) => {
                return Err(StoreError::Invalid(
                    "queued import rows are read through their task".to_owned(),
                ));
            }
        };
        Ok(Self { store, hub, source })
    }

    /// How many rows.
    pub fn len(&self) -> usize {
        match &self.source {
            Source::Given(rows) => rows.len(),
            Source::Stored { n_rows, .. } => *n_rows,
        }
    }

    /// The row at `position` (0-based). Reading positions in increasing order reads each
    /// chunk once.
    pub async fn row(&mut self, position: usize) -> StoreResult<ImportRow> {
        match &mut self.source {
            Source::Given(rows) => rows.get(position).cloned().ok_or_else(gone),
            Source::Stored {
                task, chunks, held, ..
            } => {
                // The last chunk whose first row is at or before `position`.
                let index = chunks
                    .partition_point(|&(_, first)| first <= position)
                    .checked_sub(1)
                    .ok_or_else(gone)?;
                let first = chunks[index].1;
                if held.as_ref().is_none_or(|(i, _)| *i != index) {
                    *held = None;
                    let mut conn = self.store.acquire().await?;
                    let chunk =
                        read_chunk::<B>(&mut conn, self.hub, *task, chunks[index].0).await?;
                    let rows = chunk.rows().map_err(|e| {
                        StoreError::Invalid(format!("an import's queued rows are unreadable: {e}"))
                    })?;
                    *held = Some((index, rows));
                }
                let (_, rows) = held.as_ref().expect("the chunk was just read");
                rows.get(position - first).cloned().ok_or_else(gone)
            }
        }
    }
}

fn gone() -> StoreError {
    StoreError::Invalid("an import's queued rows are incomplete".to_owned())
}
