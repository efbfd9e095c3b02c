// Listing an organization's profiles and editing merged fields by hand (included by both
// adapters).

/// The most profiles one page lists.
const MAX_PAGE: u32 = 1000;

/// Profiles with a member in the organization, from `(updated_at, id)` exclusive, in order.
fn org_profiles_sql(limit: bool) -> String {
    format!(
        "SELECT p.id, p.updated_at FROM profiles p \
         WHERE p.hub_id = $1 AND p.merged_into IS NULL \
           AND (p.updated_at > $2 OR (p.updated_at = $2 AND p.id > $3)) \
           AND EXISTS (SELECT 1 FROM ({}) b \
             {ORDERED_JOIN} memberships m ON m.hub_id = $1 AND m.bucket_id = b.bucket_id \
             {ORDERED_JOIN} contacts c ON c.hub_id = m.hub_id AND c.id = m.contact_id \
             {ORDERED_JOIN} channels ch ON ch.hub_id = c.hub_id AND ch.id = c.channel_id \
             WHERE ch.organization_id = $4) \
         ORDER BY p.updated_at, p.id{}",
        buckets_of("p.id"),
        if limit { " LIMIT $5" } else { "" }
    )
}

/// Where a listing starts: after the cursor, or at `updated_since` (inclusive).
fn list_start(updated_since: Option<Millis>, cursor: Option<&str>) -> StoreResult<(i64, i64)> {
    match cursor {
        Some(c) => parse_timeline_cursor(c),
        None => Ok((updated_since.unwrap_or(i64::MIN), i64::MIN)),
    }
}

async fn ensure_organization(conn: &mut Conn, hub: HubId, org: OrganizationId) -> StoreResult<()> {
    let found: Option<(i64,)> =
        sqlx::query_as("SELECT id FROM organizations WHERE hub_id = $1 AND id = $2")
            .bind(hub)
            .bind(org)
            .fetch_optional(&mut *conn)
            .await?;
    found
        .map(|_| ())
        .ok_or(StoreError::NotFound("organization"))
}

/// Overrides win over survivorship unless a member wrote the field after the override.
fn apply_overrides(
    golden: &mut cdh_core::GoldenRecord,
    overrides: BTreeMap<String, (Option<String>, Millis)>,
) {
    for (field, (value, at)) in overrides {
        if golden
            .fields
            .get(&field)
            .is_some_and(|merged| merged.updated_at > at)
        {
            continue;
        }
        match value {
            Some(value) => {
                golden.fields.insert(
                    field,
                    cdh_core::golden::MergedField {
                        value,
                        updated_at: at,
                        source: "manual".to_owned(),
                    },
                );
            }
            None => {
                golden.fields.remove(&field);
            }
        }
    }
}

/// A field name a profile edit may set: lower-case letters, digits and `_`.
fn check_edit_field(name: &str) -> StoreResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(StoreError::rejected(
            "invalid_field",
            format!("`{name}` is not a field name (lower-case letters, digits and _)"),
        ))
    }
}

impl ThisStore {
    async fn list_profiles_impl(
        &self,
        hub: HubId,
        org: OrganizationId,
        updated_since: Option<Millis>,
        limit: u32,
        cursor: Option<&str>,
    ) -> StoreResult<Page<(Profile, cdh_core::GoldenRecord)>> {
        let (after_at, after_id) = list_start(updated_since, cursor)?;
        let limit = i64::from(limit.clamp(1, MAX_PAGE));
        // One snapshot, so a page's profiles and their records are of one moment.
        let mut tx = self.begin_snapshot().await?;
        ensure_organization(&mut tx, hub, org).await?;
        let rows: Vec<(i64, i64)> = sqlx::query_as(&org_profiles_sql(true))
            .bind(hub)
            .bind(after_at)
            .bind(after_id)
            .bind(org)
            .bind(limit + 1)
            .fetch_all(&mut *tx)
            .await?;
        let more = rows.len() as i64 > limit;
        let ids: Vec<ProfileId> = rows.iter().take(limit as usize).map(|r| r.0).collect();
        let items = golden_many(&mut tx, hub, &ids).await?;
        tx.commit().await?;
        let next_cursor = more
            .then(|| rows.get(limit as usize - 1))
            .flatten()
            .map(|(id, at)| format!("{at}.{id}"));
        Ok(Page { items, next_cursor })
    }

    async fn patch_profile_impl(
        &self,
        hub: HubId,
        id: ProfileId,
        edits: &BTreeMap<String, Option<String>>,
        actor: &str,
    ) -> StoreResult<(Profile, cdh_core::GoldenRecord)> {
        if edits.is_empty() {
            return Err(StoreError::rejected("empty_patch", "no field to edit"));
        }
        for name in edits.keys() {
            check_edit_field(name)?;
        }
        let mut tx = self.begin_write().await?;
        lock_hub_shared(&mut tx, hub).await?;
        let (live, _) = resolve_profile(&mut tx, hub, id).await?;
        // Lock the profile row, so a merge absorbing it waits or has already happened.
        let locked = lock_profiles(&mut tx, hub, &[live]).await?;
        let live = match locked.first().and_then(|p| p.merged_into) {
            Some(survivor) => survivor,
            None => live,
        };
        let now = now_ms();
        for (field, value) in edits {
            sqlx::query(
                "DELETE FROM profile_overrides WHERE hub_id = $1 AND profile_id = $2 AND field = $3",
            )
            .bind(hub)
            .bind(live)
            .bind(field.clone())
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO profile_overrides (hub_id, profile_id, field, value, actor, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(hub)
            .bind(live)
            .bind(field.clone())
            .bind(value.clone())
            .bind(actor.to_owned())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("UPDATE profiles SET updated_at = $3 WHERE hub_id = $1 AND id = $2")
            .bind(hub)
            .bind(live)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        append_events(
            &mut tx,
            hub,
            &[(
                "profile.updated".to_owned(),
                live,
                serde_json::json!({
                    "fields": edits.keys().collect::<Vec<_>>(),
                    "actor": actor,
                    "manual": true,
                }),
            )],
        )
        .await?;
        let mut result = golden_many(&mut tx, hub, &[live]).await?;
        tx.commit().await?;
        result.pop().ok_or(StoreError::NotFound("profile"))
    }
}
