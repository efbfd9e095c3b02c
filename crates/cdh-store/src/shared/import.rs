// Imports (the vendor's semantics): rows matched by an identifier within an organization
// overwrite the matched contacts, field by field. Rows are checked first so a bad row fails
// alone; the rest is written in batched transactions (a batch that still fails is redone row
// by row, so only the bad row is lost). Included by both adapters.

/// Rows per import transaction.
const IMPORT_BATCH: usize = 250;

/// Fields an import may match on.
const IMPORT_KEYS: [&str; 5] = [
    "line_uid",
    "display_email",
    "display_mobile",
    "connect_id",
    "customer_id",
];

/// A checked row: its key value normalised, ready to write.
struct ReadyRow<'a> {
    row: &'a ImportRow,
    key_value: String,
}

/// What one row did.
enum RowOutcome {
    Matched,
    Created,
    Unmatched,
}

/// Checks a row on its own: an import key value that normalises, and sound field names.
fn check_import_row<'a>(
    row: &'a ImportRow,
    key: &IdentifierField,
    normalizer: &mut Normalizer,
) -> Result<ReadyRow<'a>, FailedRow> {
    let fail = |code: &str, message: String| FailedRow {
        row: row.row,
        code: code.to_owned(),
        message,
    };
    for name in row.fields.keys() {
        check_edit_field(name).map_err(|e| fail("invalid_field", e.to_string()))?;
    }
    let raw = match row.fields.get(key.name()) {
        Some(Some(v)) if !v.trim().is_empty() => v,
        _ => {
            return Err(fail(
                "missing_import_key",
                format!("the row has no {} to match on", key.name()),
            ));
        }
    };
    match normalizer.normalize(key, raw) {
        Ok(value) => Ok(ReadyRow {
            row,
            key_value: value.to_string(),
        }),
        Err(outcome) => {
            let reason = match outcome {
                Outcome::Invalid(r) => r.code().to_owned(),
                Outcome::Blocked(r) => r.code().to_owned(),
                Outcome::Empty | Outcome::Valid => "empty".to_owned(),
            };
            Err(fail(
                "invalid_import_key",
                format!("{} `{raw}` cannot be matched on ({reason})", key.name()),
            ))
        }
    }
}

/// The scopes an organization's contacts can be stored in, so lookups use the value index.
async fn organization_scopes(
    conn: &mut Conn,
    hub: HubId,
    org: OrganizationId,
) -> StoreResult<Vec<String>> {
    let group: Option<(i64,)> = sqlx::query_as(
        "SELECT connection_id FROM connection_members WHERE hub_id = $1 AND organization_id = $2",
    )
    .bind(hub)
    .bind(org)
    .fetch_optional(&mut *conn)
    .await?;
    let mut bases = vec![format!("o{org}")];
    if let Some((g,)) = group {
        bases.push(format!("g{g}"));
    }
    let mut scopes = Vec::new();
    for base in bases {
        for product in ["", ":caac", ":maac"] {
            scopes.push(format!("{base}{product}"));
        }
    }
    Ok(scopes)
}

/// The contacts of the organization holding each value of `field`.
async fn match_contacts(
    conn: &mut Conn,
    hub: HubId,
    org: OrganizationId,
    scopes: &[String],
    field: &str,
    values: &[&str],
) -> StoreResult<HashMap<String, Vec<(ChannelId, String)>>> {
    let mut found: HashMap<String, Vec<(ChannelId, String)>> = HashMap::new();
    for chunk in values.chunks(500) {
        let sql = format!(
            "SELECT i.value, c.channel_id, c.external_id FROM identifiers i \
             {ORDERED_JOIN} contacts c ON c.hub_id = i.hub_id AND c.id = i.contact_id \
             {ORDERED_JOIN} channels ch ON ch.hub_id = c.hub_id AND ch.id = c.channel_id \
             WHERE i.hub_id = $1 AND i.field = $2 AND ch.organization_id = $3 \
             AND i.scope IN ({}) AND i.value IN ({}) ORDER BY c.id",
            placeholders(4, scopes.len()),
            placeholders(4 + scopes.len(), chunk.len())
        );
        let mut q = sqlx::query_as::<_, (String, i64, String)>(&sql)
            .bind(hub)
            .bind(field.to_owned())
            .bind(org);
        for s in scopes {
            q = q.bind(s.clone());
        }
        for v in chunk {
            q = q.bind((*v).to_owned());
        }
        for (value, channel, external) in q.fetch_all(&mut *conn).await? {
            found.entry(value).or_default().push((channel, external));
        }
    }
    Ok(found)
}

/// The organization's `api` channel, created on first use.
async fn api_channel(conn: &mut Conn, hub: HubId, org: OrganizationId) -> StoreResult<ChannelId> {
    let found: Option<(i64,)> = sqlx::query_as(
        "SELECT id FROM channels WHERE hub_id = $1 AND organization_id = $2 AND channel_type = 'api' \
         ORDER BY id LIMIT 1",
    )
    .bind(hub)
    .bind(org)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some((id,)) = found {
        return Ok(id);
    }
    let id = next_id(conn, hub).await?;
    sqlx::query(
        "INSERT INTO channels (hub_id, id, organization_id, channel_type, product, name, \
         external_account_id, created_at) VALUES ($1, $2, $3, 'api', 'caac', 'API imports', 'import', $4)",
    )
    .bind(hub)
    .bind(id)
    .bind(org)
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    Ok(id)
}

/// What an import carries from row to row: the `api` channel once known, and the values it
/// created (a repeated value later in the same import is a match, not a second creation).
#[derive(Default)]
struct ImportState {
    api_channel: Option<ChannelId>,
    created: HashSet<String>,
}

/// Writes one checked row inside the caller's transaction.
#[allow(clippy::too_many_arguments)]
async fn import_one(
    conn: &mut Conn,
    hub: HubId,
    org: OrganizationId,
    key: &str,
    ready: &ReadyRow<'_>,
    matches: &HashMap<String, Vec<(ChannelId, String)>>,
    create: bool,
    actor: &str,
    state: &mut ImportState,
) -> StoreResult<RowOutcome> {
    let contact = |channel_id: ChannelId, external_id: String| ContactInput {
        channel_id,
        external_id,
        fields: ready.row.fields.clone(),
        tags: ready.row.tags.clone(),
        custom_fields: ready.row.custom_fields.clone(),
        updated_at: None,
    };
    if let Some(targets) = matches.get(&ready.key_value) {
        for (channel, external) in targets {
            upsert_in(conn, hub, &contact(*channel, external.clone()), actor).await?;
        }
        return Ok(RowOutcome::Matched);
    }
    if !create {
        return Ok(RowOutcome::Unmatched);
    }
    let channel = match state.api_channel {
        Some(id) => id,
        None => {
            let id = api_channel(conn, hub, org).await?;
            state.api_channel = Some(id);
            id
        }
    };
    let external = format!("import:{key}:{}", ready.key_value);
    upsert_in(conn, hub, &contact(channel, external), actor).await?;
    Ok(if state.created.contains(&ready.key_value) {
        RowOutcome::Matched
    } else {
        RowOutcome::Created
    })
}

/// Remembers what a committed row created.
fn note_created(state: &mut ImportState, ready: &ReadyRow<'_>, outcome: &RowOutcome) {
    if matches!(outcome, RowOutcome::Created) {
        state.created.insert(ready.key_value.clone());
    }
}

/// The code a row's write failure is reported with, or `None` when the import must stop.
fn row_failure(error: &StoreError) -> Option<&'static str> {
    match error {
        StoreError::Unavailable { .. } | StoreError::Contention { .. } => None,
        StoreError::Rejected { code, .. } => Some(code),
        StoreError::Invalid(_) => Some("invalid_row"),
        _ => Some("row_rejected"),
    }
}

fn count(outcome: &mut ImportOutcome, row: RowOutcome) {
    match row {
        RowOutcome::Matched => outcome.matched += 1,
        RowOutcome::Created => outcome.created += 1,
        RowOutcome::Unmatched => outcome.unmatched += 1,
    }
}

impl ThisStore {
    #[allow(clippy::too_many_arguments)]
    async fn import_rows_impl(
        &self,
        hub: HubId,
        org: OrganizationId,
        import_key: &str,
        rows: &[ImportRow],
        create: bool,
        actor: &str,
        task: Option<TaskId>,
    ) -> StoreResult<ImportOutcome> {
        if !IMPORT_KEYS.contains(&import_key) {
            return Err(StoreError::rejected(
                "invalid_import_key",
                format!(
                    "import_key must be one of {}, not `{import_key}`",
                    IMPORT_KEYS.join(", ")
                ),
            ));
        }
        let key = IdentifierField::built_in(import_key).ok_or(StoreError::NotFound("field"))?;
        let organization = self.get_organization_impl(hub, org).await?;
        let empty = UnifySetting {
            keys: Vec::new(),
            excluded: Vec::new(),
        };
        let mut normalizer = normalizer(&organization.default_region, &empty)?;
        let mut outcome = ImportOutcome {
            total: rows.len() as u64,
            ..ImportOutcome::default()
        };
        let mut ready = Vec::with_capacity(rows.len());
        for row in rows {
            match check_import_row(row, &key, &mut normalizer) {
                Ok(r) => ready.push(r),
                Err(failed) => outcome.failed_rows.push(failed),
            }
        }
        let scopes = {
            let mut conn = self.pool.acquire().await?;
            organization_scopes(&mut conn, hub, org).await?
        };
        let total = rows.len() as i64;
        let mut done = outcome.failed_rows.len() as i64;
        let mut state = ImportState::default();
        for batch in ready.chunks(IMPORT_BATCH) {
            let mut tx = self.begin_write().await?;
            let values: Vec<&str> = batch.iter().map(|r| r.key_value.as_str()).collect();
            // Rows of this batch see what earlier rows of it created; a batch that fails is
            // rolled back, so it works on a copy of the state.
            let mut batch_state = ImportState {
                api_channel: state.api_channel,
                created: HashSet::new(),
            };
            let written: StoreResult<Vec<RowOutcome>> = async {
                let matches =
                    match_contacts(&mut tx, hub, org, &scopes, key.name(), &values).await?;
                let mut results = Vec::with_capacity(batch.len());
                for r in batch {
                    let seen_before = state.created.contains(&r.key_value);
                    let mut row = import_one(
                        &mut tx,
                        hub,
                        org,
                        import_key,
                        r,
                        &matches,
                        create,
                        actor,
                        &mut batch_state,
                    )
                    .await?;
                    if seen_before && matches!(row, RowOutcome::Created) {
                        row = RowOutcome::Matched;
                    }
                    note_created(&mut batch_state, r, &row);
                    results.push(row);
                }
                Ok(results)
            }
            .await;
            match written {
                Ok(results) => {
                    done += batch.len() as i64;
                    if let Some(task) = task {
                        set_progress(&mut tx, hub, task, done, total).await?;
                    }
                    tx.commit().await?;
                    state.api_channel = batch_state.api_channel;
                    state.created.extend(batch_state.created);
                    for r in results {
                        count(&mut outcome, r);
                    }
                }
                Err(_) => {
                    // Redo the batch one row per transaction, so only bad rows are lost.
                    drop(tx);
                    for r in batch {
                        let result = self
                            .import_row_alone(
                                hub, org, import_key, &scopes, r, create, actor, &state,
                            )
                            .await;
                        match result {
                            Ok(row) => {
                                note_created(&mut state, r, &row);
                                count(&mut outcome, row)
                            }
                            Err(e) => match row_failure(&e) {
                                Some(code) => outcome.failed_rows.push(FailedRow {
                                    row: r.row.row,
                                    code: code.to_owned(),
                                    message: e.to_string(),
                                }),
                                None => return Err(e),
                            },
                        }
                    }
                    done += batch.len() as i64;
                    if let Some(task) = task {
                        self.progress_impl(hub, task, done, total).await?;
                    }
                }
            }
        }
        if let Some(task) = task
            && ready.is_empty()
        {
            self.progress_impl(hub, task, done, total).await?;
        }
        outcome.failed_rows.sort_by_key(|f| f.row);
        Ok(outcome)
    }

    /// One row in its own transaction, retried on contention.
    #[allow(clippy::too_many_arguments)]
    async fn import_row_alone(
        &self,
        hub: HubId,
        org: OrganizationId,
        import_key: &str,
        scopes: &[String],
        ready: &ReadyRow<'_>,
        create: bool,
        actor: &str,
        state: &ImportState,
    ) -> StoreResult<RowOutcome> {
        let mut attempt = 0;
        loop {
            let result: StoreResult<RowOutcome> = async {
                let mut tx = self.begin_write().await?;
                let matches = match_contacts(
                    &mut tx,
                    hub,
                    org,
                    scopes,
                    import_key,
                    &[ready.key_value.as_str()],
                )
                .await?;
                let mut row_state = ImportState {
                    api_channel: state.api_channel,
                    created: HashSet::new(),
                };
                let mut row = import_one(
                    &mut tx,
                    hub,
                    org,
                    import_key,
                    ready,
                    &matches,
                    create,
                    actor,
                    &mut row_state,
                )
                .await?;
                tx.commit().await?;
                if state.created.contains(&ready.key_value) && matches!(row, RowOutcome::Created) {
                    row = RowOutcome::Matched;
                }
                Ok(row)
            }
            .await;
            match result {
                Err(StoreError::Contention { .. }) if attempt < MAX_RETRIES => attempt += 1,
                other => return other,
            }
        }
    }
}

/// Records a task's progress inside the caller's transaction.
async fn set_progress(
    conn: &mut Conn,
    hub: HubId,
    task: TaskId,
    done: i64,
    total: i64,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE tasks SET status = 'running', done = $3, total = $4, \
         started_at = COALESCE(started_at, $5) WHERE hub_id = $1 AND id = $2",
    )
    .bind(hub)
    .bind(task)
    .bind(done)
    .bind(total)
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    Ok(())
}
