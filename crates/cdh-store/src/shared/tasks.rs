// Tasks and API tokens, shared by both adapters (included by `sqlite.rs` and `postgres.rs`).

type TaskRow = (
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

const TASK_COLUMNS: &str =
    "id, kind, status, done, total, params, result, error, created_at, started_at, finished_at";

fn task_from_row(row: TaskRow) -> StoreResult<Task> {
    let (id, kind, status, done, total, params, result, error, created_at, started_at, finished_at) =
        row;
    Ok(Task {
        id,
        kind,
        status,
        done,
        total,
        params: serde_json::from_str(&params)?,
        result: result.map(|r| serde_json::from_str(&r)).transpose()?,
        error,
        created_at,
        started_at,
        finished_at,
    })
}

impl ThisStore {
    async fn create_task_impl(
        &self,
        hub: HubId,
        kind: &str,
        params: &serde_json::Value,
    ) -> StoreResult<TaskId> {
        if !["apply", "import", "export"].contains(&kind) {
            return Err(StoreError::Invalid(format!("unknown task kind {kind}")));
        }
        let mut tx = self.begin_write().await?;
        let id = next_id(&mut tx, hub).await?;
        sqlx::query(
            "INSERT INTO tasks (hub_id, id, kind, status, done, total, params, created_at) \
             VALUES ($1, $2, $3, 'queued', 0, 0, $4, $5)",
        )
        .bind(hub)
        .bind(id)
        .bind(kind.to_owned())
        .bind(params.to_string())
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn get_task_impl(&self, hub: HubId, id: TaskId) -> StoreResult<Task> {
        let row: Option<TaskRow> = sqlx::query_as(&format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE hub_id = $1 AND id = $2"
        ))
        .bind(hub)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        task_from_row(row.ok_or(StoreError::NotFound("task"))?)
    }

    async fn list_tasks_impl(&self, hub: HubId) -> StoreResult<Vec<Task>> {
        let rows: Vec<TaskRow> = sqlx::query_as(&format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE hub_id = $1 ORDER BY id DESC"
        ))
        .bind(hub)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(task_from_row).collect()
    }

    async fn progress_impl(
        &self,
        hub: HubId,
        id: TaskId,
        done: i64,
        total: i64,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE tasks SET status = 'running', done = $3, total = $4, \
             started_at = COALESCE(started_at, $5) WHERE hub_id = $1 AND id = $2",
        )
        .bind(hub)
        .bind(id)
        .bind(done)
        .bind(total)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        if n == 0 {
            Err(StoreError::NotFound("task"))
        } else {
            Ok(())
        }
    }

    async fn finish_task_impl(
        &self,
        hub: HubId,
        id: TaskId,
        outcome: Result<serde_json::Value, String>,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        finish_task_in(&mut tx, hub, id, outcome).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_token_impl(
        &self,
        hub: HubId,
        org: OrganizationId,
        name: &str,
        scopes: &[String],
    ) -> StoreResult<IssuedToken> {
        let secret = new_secret();
        let mut tx = self.begin_write().await?;
        let id = next_id(&mut tx, hub).await?;
        sqlx::query(
            "INSERT INTO api_tokens (hub_id, id, organization_id, name, scopes, secret_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(hub)
        .bind(id)
        .bind(org)
        .bind(name.to_owned())
        .bind(serde_json::to_string(scopes)?)
        .bind(hash_secret(&secret))
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(|e| match StoreError::from(e) {
            StoreError::Backend { .. } => StoreError::NotFound("organization"),
            other => other,
        })?;
        tx.commit().await?;
        Ok(IssuedToken {
            id,
            token: format_token(hub, id, &secret),
        })
    }

    async fn verify_token_impl(&self, token: &str) -> StoreResult<Option<TokenGrant>> {
        let Some((hub, id, secret)) = parse_token(token) else {
            return Ok(None);
        };
        let row: Option<(i64, String, String, Option<i64>)> = sqlx::query_as(
            "SELECT organization_id, scopes, secret_hash, revoked_at FROM api_tokens WHERE hub_id = $1 AND id = $2",
        )
        .bind(hub)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some((organization_id, scopes, stored, revoked)) = row else {
            return Ok(None);
        };
        if revoked.is_some() || !constant_time_eq(&hash_secret(secret), &stored) {
            return Ok(None);
        }
        Ok(Some(TokenGrant {
            hub_id: hub,
            token_id: id,
            organization_id,
            scopes: serde_json::from_str(&scopes)?,
        }))
    }

    async fn revoke_token_impl(&self, hub: HubId, id: TokenId) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query("UPDATE api_tokens SET revoked_at = $3 WHERE hub_id = $1 AND id = $2 AND revoked_at IS NULL")
            .bind(hub)
            .bind(id)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        if n == 0 {
            Err(StoreError::NotFound("token"))
        } else {
            Ok(())
        }
    }
}

/// Ends task `$2` of hub `$1` with status `$3`, result `$4` or error `$5`, at `$6`.
const FINISH_TASK_SQL: &str = "UPDATE tasks SET status = $3, result = $4, error = $5, \
     finished_at = $6, started_at = COALESCE(started_at, $6), \
     done = CASE WHEN $3 = 'succeeded' THEN total ELSE done END WHERE hub_id = $1 AND id = $2";

async fn finish_task_in(
    conn: &mut Conn,
    hub: HubId,
    id: TaskId,
    outcome: Result<serde_json::Value, String>,
) -> StoreResult<()> {
    let (status, result, error) = match outcome {
        Ok(v) => ("succeeded", Some(v.to_string()), None),
        Err(e) => ("failed", None, Some(e)),
    };
    let n = sqlx::query(FINISH_TASK_SQL)
    .bind(hub)
    .bind(id)
    .bind(status)
    .bind(result)
    .bind(error)
    .bind(now_ms())
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if n == 0 {
        Err(StoreError::NotFound("task"))
    } else {
        Ok(())
    }
}
