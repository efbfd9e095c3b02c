//! [`Tasks`] for every backend: long work (apply, import, export) queued as a row with a
//! status, claimed by the worker, with progress and an outcome. Imports and exports run one
//! at a time per organization; a unique index on the queued and running ones decides races.

use async_trait::async_trait;

use crate::error::{Resource, StoreError, StoreResult};
use crate::model::{
    HubId, ImportChunk, Millis, OrganizationId, Realm, Task, TaskId, TaskKind, TaskStatus,
};
use crate::ops::import_chunks::{delete_chunks, insert_chunk, queued_chunks, read_chunk};
use crate::ops::realms::load_realm;
use crate::ops::setup::ensure_organization;
use crate::port::Tasks;
use crate::sql::text::{FINISH_TASK_SQL, TASK_PROGRESS_SQL};
use crate::sql::{Adapter, fetch_one, query};

/// A task as stored.
#[derive(sqlx::FromRow)]
struct TaskRow {
    id: TaskId,
    kind: String,
    status: String,
    done: i64,
    total: i64,
    params: String,
    result: Option<String>,
    error: Option<String>,
    created_at: i64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    organization_id: Option<OrganizationId>,
    realm: Option<String>,
}

const TASK_COLUMNS: &str = "id, kind, status, done, total, params, result, error, created_at, \
     started_at, finished_at, organization_id, realm";

impl TaskRow {
    fn into_task(self) -> StoreResult<Task> {
        let corrupt = |what: &str, text: &str| {
            StoreError::Corrupt(format!("task {} has an unknown {what} {text:?}", self.id))
        };
        Ok(Task {
            id: self.id,
            kind: TaskKind::parse(&self.kind).ok_or_else(|| corrupt("kind", &self.kind))?,
            status: TaskStatus::parse(&self.status)
                .ok_or_else(|| corrupt("status", &self.status))?,
            done: self.done,
            total: self.total,
            params: serde_json::from_str(&self.params)?,
            result: self
                .result
                .as_deref()
                .map(serde_json::from_str)
                .transpose()?,
            error: self.error,
            created_at: self.created_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            organization_id: self.organization_id,
            realm: match self.realm.as_deref() {
                None => None,
                Some(key) => Some(Realm::parse(key).ok_or_else(|| corrupt("realm", key))?),
            },
        })
    }
}

/// A task with its hub, as the worker reads them across hubs at start-up.
#[derive(sqlx::FromRow)]
struct HubTaskRow {
    hub_id: HubId,
    #[sqlx(flatten)]
    task: TaskRow,
}

/// Queues an import or export (with an import's rows), unless one of that kind is queued or
/// running for the organization.
async fn start_exclusive<B: Adapter>(
    store: &B,
    hub: HubId,
    org: OrganizationId,
    kind: TaskKind,
    params: &serde_json::Value,
    rows: &[ImportChunk],
) -> StoreResult<TaskId> {
    if kind == TaskKind::Apply {
        return Err(StoreError::Invalid(
            "only import and export tasks are exclusive, not apply".to_owned(),
        ));
    }
    let mut tx = store.begin_write().await?;
    ensure_organization::<B>(&mut tx, hub, org).await?;
    if let Some(task_id) = active_task::<B>(&mut tx, hub, org, kind).await? {
        return Err(StoreError::TaskInProgress { kind, task_id });
    }
    let id = TaskId(B::next_id(&mut tx, hub).await?);
    let inserted = B::execute(
        &mut tx,
        query(
            "INSERT INTO tasks (hub_id, id, kind, status, done, total, params, created_at, \
             organization_id) VALUES ($1, $2, $3, 'queued', 0, 0, $4, $5, $6)",
        )
        .bind(hub)
        .bind(id)
        .bind(kind.as_str())
        .bind(params.to_string())
        .bind(store.clock().now())
        .bind(org),
    )
    .await;
    match inserted {
        Ok(_) => {
            for (chunk, rows) in rows.iter().enumerate() {
                B::execute(&mut tx, insert_chunk(hub, id, chunk, rows)?).await?;
            }
            B::commit(tx).await?;
            Ok(id)
        }
        // A concurrent start won the unique index; name the task that holds it.
        Err(error) => {
            drop(tx);
            let mut conn = store.acquire().await?;
            match active_task::<B>(&mut conn, hub, org, kind).await? {
                Some(task_id) => Err(StoreError::TaskInProgress { kind, task_id }),
                None => Err(error),
            }
        }
    }
}

#[async_trait]
impl<B: Adapter> Tasks for B {
    async fn start_task_exclusive(
        &self,
        hub: HubId,
        org: OrganizationId,
        kind: TaskKind,
        params: &serde_json::Value,
    ) -> StoreResult<TaskId> {
        start_exclusive(self, hub, org, kind, params, &[]).await
    }

    async fn start_import_task(
        &self,
        hub: HubId,
        org: OrganizationId,
        params: &serde_json::Value,
        rows: &[ImportChunk],
    ) -> StoreResult<TaskId> {
        start_exclusive(self, hub, org, TaskKind::Import, params, rows).await
    }

    async fn import_task_rows(&self, hub: HubId, id: TaskId) -> StoreResult<Vec<ImportChunk>> {
        let mut conn = self.acquire().await?;
        let chunks = queued_chunks::<B>(&mut conn, hub, id).await?;
        let mut read = Vec::with_capacity(chunks.len());
        for chunk in chunks {
            read.push(read_chunk::<B>(&mut conn, hub, id, chunk.chunk).await?);
        }
        Ok(read)
    }

    async fn get_task(&self, hub: HubId, id: TaskId) -> StoreResult<Task> {
        let mut conn = self.acquire().await?;
        let row: TaskRow = fetch_one::<B, _>(
            &mut conn,
            query(format!(
                "SELECT {TASK_COLUMNS} FROM tasks WHERE hub_id = $1 AND id = $2"
            ))
            .bind(hub)
            .bind(id),
            Resource::Task,
        )
        .await?;
        row.into_task()
    }

    async fn organization_task(
        &self,
        hub: HubId,
        org: OrganizationId,
        id: TaskId,
    ) -> StoreResult<Task> {
        let mut conn = self.acquire().await?;
        let realms = load_realm::<B>(&mut conn, hub, org)
            .await?
            .visible_realms(org);
        let row: TaskRow = fetch_one::<B, _>(
            &mut conn,
            query(format!(
                "SELECT {TASK_COLUMNS} FROM tasks WHERE hub_id = $1 AND id = $2"
            ))
            .bind(hub)
            .bind(id),
            Resource::Task,
        )
        .await?;
        let task = row.into_task()?;
        if is_visible(&task, org, &realms) {
            Ok(task)
        } else {
            Err(StoreError::NotFound(Resource::Task))
        }
    }

    async fn list_tasks(
        &self,
        hub: HubId,
        org: OrganizationId,
        kinds: &[TaskKind],
        limit: u32,
    ) -> StoreResult<Vec<Task>> {
        let mut conn = self.acquire().await?;
        let realms = load_realm::<B>(&mut conn, hub, org)
            .await?
            .visible_realms(org);
        let limit = i64::from(limit.clamp(1, 1000));
        // By the organization, then by its realms, each newest first and at most `limit`; the
        // merge keeps the newest `limit` of both.
        let mut rows: Vec<TaskRow> = B::fetch_all(
            &mut conn,
            query(format!(
                "SELECT {TASK_COLUMNS} FROM tasks WHERE hub_id = $1 AND organization_id = $2 \
                 ORDER BY id DESC LIMIT $3"
            ))
            .bind(hub)
            .bind(org)
            .bind(limit),
        )
        .await?;
        for realm in &realms {
            let of_realm: Vec<TaskRow> = B::fetch_all(
                &mut conn,
                query(format!(
                    "SELECT {TASK_COLUMNS} FROM tasks WHERE hub_id = $1 AND realm = $2 \
                     ORDER BY id DESC LIMIT $3"
                ))
                .bind(hub)
                .bind(realm.key())
                .bind(limit),
            )
            .await?;
            rows.extend(of_realm);
        }
        rows.sort_unstable_by_key(|row| std::cmp::Reverse(row.id));
        rows.dedup_by_key(|row| row.id);
        let mut tasks = Vec::new();
        for row in rows {
            let task = row.into_task()?;
            if kinds.contains(&task.kind) && is_visible(&task, org, &realms) {
                tasks.push(task);
            }
        }
        tasks.truncate(limit as usize);
        Ok(tasks)
    }

    async fn claim_task(&self, hub: HubId, id: TaskId) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let n = B::execute(
            &mut tx,
            query(
                "UPDATE tasks SET status = 'running', started_at = COALESCE(started_at, $3) \
                 WHERE hub_id = $1 AND id = $2 AND status = 'queued'",
            )
            .bind(hub)
            .bind(id)
            .bind(self.clock().now()),
        )
        .await?;
        if n == 0 {
            fetch_one::<B, (i64,)>(
                &mut tx,
                query("SELECT id FROM tasks WHERE hub_id = $1 AND id = $2")
                    .bind(hub)
                    .bind(id),
                Resource::Task,
            )
            .await?;
        }
        B::commit(tx).await?;
        Ok(n == 1)
    }

    async fn update_task_progress(
        &self,
        hub: HubId,
        id: TaskId,
        done: i64,
        total: i64,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let n = B::execute(
            &mut tx,
            task_progress(hub, id, done, total, self.clock().now()),
        )
        .await?;
        B::commit(tx).await?;
        if n == 0 {
            Err(StoreError::NotFound(Resource::Task))
        } else {
            Ok(())
        }
    }

    async fn finish_task(
        &self,
        hub: HubId,
        id: TaskId,
        outcome: Result<serde_json::Value, String>,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let n = B::execute(&mut tx, finish_task(hub, id, outcome, self.clock().now())).await?;
        if n == 0 {
            return Err(StoreError::NotFound(Resource::Task));
        }
        // An import's rows are kept only until it ends.
        B::execute(&mut tx, delete_chunks(hub, id)).await?;
        B::commit(tx).await
    }

    async fn unfinished_tasks(&self) -> StoreResult<Vec<(HubId, Task)>> {
        // The one task read across hubs: the worker resumes every hub's work at start-up.
        let mut conn = self.acquire().await?;
        let rows: Vec<HubTaskRow> = B::fetch_all(
            &mut conn,
            query(format!(
                "SELECT hub_id, {TASK_COLUMNS} FROM tasks WHERE status IN ('queued', 'running') \
                 ORDER BY created_at, hub_id, id"
            )),
        )
        .await?;
        rows.into_iter()
            .map(|row| Ok((row.hub_id, row.task.into_task()?)))
            .collect()
    }
}

/// Whether an organization may see a task: its own import or export, or an apply of a realm
/// it sees.
fn is_visible(task: &Task, org: OrganizationId, realms: &[Realm]) -> bool {
    match task.kind {
        TaskKind::Apply => task.realm.is_some_and(|r| realms.contains(&r)),
        TaskKind::Import | TaskKind::Export => task.organization_id == Some(org),
    }
}

/// The statement that records a task's progress, marking it running.
pub(crate) fn task_progress(
    hub: HubId,
    id: TaskId,
    done: i64,
    total: i64,
    now: Millis,
) -> crate::sql::Query<'static> {
    query(TASK_PROGRESS_SQL)
        .bind(hub)
        .bind(id)
        .bind(done)
        .bind(total)
        .bind(now)
}

/// The statement that ends a task with its result or error.
pub(crate) fn finish_task(
    hub: HubId,
    id: TaskId,
    outcome: Result<serde_json::Value, String>,
    now: Millis,
) -> crate::sql::Query<'static> {
    let (status, result, error) = match outcome {
        Ok(v) => (TaskStatus::Succeeded, Some(v.to_string()), None),
        Err(e) => (TaskStatus::Failed, None, Some(e)),
    };
    query(FINISH_TASK_SQL)
        .bind(hub)
        .bind(id)
        .bind(status.as_str())
        .bind(result)
        .bind(error)
        .bind(now)
}

/// The organization's queued or running task of `kind`, if any.
async fn active_task<B: Adapter>(
    conn: &mut B::Conn,
    hub: HubId,
    org: OrganizationId,
    kind: TaskKind,
) -> StoreResult<Option<TaskId>> {
    let row: Option<(TaskId,)> = B::fetch_optional(
        conn,
        query(
            "SELECT id FROM tasks WHERE hub_id = $1 AND organization_id = $2 AND kind = $3 \
             AND status IN ('queued', 'running') ORDER BY id LIMIT 1",
        )
        .bind(hub)
        .bind(org)
        .bind(kind.as_str()),
    )
    .await?;
    Ok(row.map(|r| r.0))
}
