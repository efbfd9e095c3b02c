// Exclusive import/export tasks, claiming and restart recovery (included by both adapters).

/// The task kinds that run one at a time per organization.
fn exclusive_kind(kind: &str) -> StoreResult<&'static str> {
    match kind {
        "import" => Ok("import"),
        "export" => Ok("export"),
        other => Err(StoreError::Invalid(format!(
            "only import and export tasks are exclusive, not {other}"
        ))),
    }
}

async fn active_task(
    conn: &mut Conn,
    hub: HubId,
    org: OrganizationId,
    kind: &str,
) -> StoreResult<Option<TaskId>> {
    let row: Option<(i64,)> = sqlx::query_as(
        "SELECT id FROM tasks WHERE hub_id = $1 AND organization_id = $2 AND kind = $3 \
         AND status IN ('queued', 'running') ORDER BY id LIMIT 1",
    )
    .bind(hub)
    .bind(org)
    .bind(kind.to_owned())
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|r| r.0))
}

impl ThisStore {
    async fn start_task_exclusive_impl(
        &self,
        hub: HubId,
        org: OrganizationId,
        kind: &str,
        params: &serde_json::Value,
    ) -> StoreResult<TaskId> {
        let kind = exclusive_kind(kind)?;
        let mut tx = self.begin_write().await?;
        ensure_organization(&mut tx, hub, org).await?;
        if let Some(task_id) = active_task(&mut tx, hub, org, kind).await? {
            return Err(StoreError::TaskInProgress { kind, task_id });
        }
        let id = next_id(&mut tx, hub).await?;
        let inserted = sqlx::query(
            "INSERT INTO tasks (hub_id, id, kind, status, done, total, params, created_at, organization_id) \
             VALUES ($1, $2, $3, 'queued', 0, 0, $4, $5, $6)",
        )
        .bind(hub)
        .bind(id)
        .bind(kind)
        .bind(params.to_string())
        .bind(now_ms())
        .bind(org)
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {
                tx.commit().await?;
                Ok(id)
            }
            // A concurrent start won the unique index; name the task that holds it.
            Err(e) => {
                let error = StoreError::from(e);
                drop(tx);
                let mut conn = self.pool.acquire().await?;
                match active_task(&mut conn, hub, org, kind).await? {
                    Some(task_id) => Err(StoreError::TaskInProgress { kind, task_id }),
                    None => Err(error),
                }
            }
        }
    }

    async fn claim_task_impl(&self, hub: HubId, id: TaskId) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE tasks SET status = 'running', started_at = COALESCE(started_at, $3) \
             WHERE hub_id = $1 AND id = $2 AND status = 'queued'",
        )
        .bind(hub)
        .bind(id)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            let exists: Option<(i64,)> =
                sqlx::query_as("SELECT id FROM tasks WHERE hub_id = $1 AND id = $2")
                    .bind(hub)
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            exists.ok_or(StoreError::NotFound("task"))?;
        }
        tx.commit().await?;
        Ok(n == 1)
    }

    async fn unfinished_tasks_impl(&self) -> StoreResult<Vec<(HubId, Task)>> {
        // The one task read across hubs: the worker resumes every hub's work at start-up.
        type Row = (
            i64,
            i64,
            String,
            String,
            i64,
            i64,
            String,
            Option<String>,
            Option<String>,
            i64,
            Option<i64>,
            Option<i64>,
        );
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "SELECT hub_id, {TASK_COLUMNS} FROM tasks WHERE status IN ('queued', 'running') \
             ORDER BY created_at, hub_id, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(
                |(hub, id, kind, status, done, total, params, result, error, c, s, f)| {
                    let task = task_from_row((
                        id, kind, status, done, total, params, result, error, c, s, f,
                    ))?;
                    Ok((hub, task))
                },
            )
            .collect()
    }
}
