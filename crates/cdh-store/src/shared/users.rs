// Console users: people who sign in to the web console with an email and a password (included
// by both adapters). The store keeps the email as the server gives it (normalised there) and
// the password only as the hash the server computed.

use crate::model::{ConsoleUser, Role, UserId};

/// A user row: id, organization, email, role, creation time.
type UserRow = (i64, i64, String, String, i64);

const USER_COLUMNS: &str = "id, organization_id, email, role, created_at";

fn user_from_row(row: UserRow) -> StoreResult<ConsoleUser> {
    let (id, organization_id, email, role, created_at) = row;
    let role = Role::parse(&role).ok_or_else(|| {
        StoreError::Corrupt(format!("console user {id} has an unknown role {role:?}"))
    })?;
    Ok(ConsoleUser {
        id,
        organization_id,
        email,
        role,
        created_at,
    })
}

fn duplicate_user(email: &str) -> StoreError {
    StoreError::Conflict(format!(
        "a console user with the email {email} already exists in this organization"
    ))
}

impl ThisStore {
    async fn create_user_impl(
        &self,
        hub: HubId,
        org: OrganizationId,
        email: &str,
        password_hash: &str,
        role: Role,
        now: Millis,
    ) -> StoreResult<ConsoleUser> {
        let mut tx = self.begin_write().await?;
        ensure_organization(&mut tx, hub, org).await?;
        let taken: Option<(i64,)> = sqlx::query_as(
            "SELECT id FROM console_users WHERE hub_id = $1 AND organization_id = $2 AND email = $3",
        )
        .bind(hub)
        .bind(org)
        .bind(email.to_owned())
        .fetch_optional(&mut *tx)
        .await?;
        if taken.is_some() {
            return Err(duplicate_user(email));
        }
        let id = next_id(&mut tx, hub).await?;
        sqlx::query(
            "INSERT INTO console_users (hub_id, id, organization_id, email, password_hash, role, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(hub)
        .bind(id)
        .bind(org)
        .bind(email.to_owned())
        .bind(password_hash.to_owned())
        .bind(role.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(|e| match &e {
            // Two writers raced past the check above (PostgreSQL): the index decides.
            sqlx::Error::Database(db) if db.is_unique_violation() => duplicate_user(email),
            _ => StoreError::from(e),
        })?;
        tx.commit().await?;
        Ok(ConsoleUser {
            id,
            organization_id: org,
            email: email.to_owned(),
            role,
            created_at: now,
        })
    }

    async fn user_for_sign_in_impl(
        &self,
        hub: HubId,
        org: OrganizationId,
        email: &str,
    ) -> StoreResult<Option<(ConsoleUser, String)>> {
        let row: Option<(i64, i64, String, String, i64, String)> = sqlx::query_as(&format!(
            "SELECT {USER_COLUMNS}, password_hash FROM console_users \
             WHERE hub_id = $1 AND organization_id = $2 AND email = $3"
        ))
        .bind(hub)
        .bind(org)
        .bind(email.to_owned())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|(id, organization_id, email, role, created_at, hash)| {
            Ok((
                user_from_row((id, organization_id, email, role, created_at))?,
                hash,
            ))
        })
        .transpose()
    }

    async fn get_user_impl(&self, hub: HubId, id: UserId) -> StoreResult<ConsoleUser> {
        let row: Option<UserRow> = sqlx::query_as(&format!(
            "SELECT {USER_COLUMNS} FROM console_users WHERE hub_id = $1 AND id = $2"
        ))
        .bind(hub)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        user_from_row(row.ok_or(StoreError::NotFound("user"))?)
    }

    async fn list_users_impl(
        &self,
        hub: HubId,
        org: OrganizationId,
    ) -> StoreResult<Vec<ConsoleUser>> {
        let rows: Vec<UserRow> = sqlx::query_as(&format!(
            "SELECT {USER_COLUMNS} FROM console_users WHERE hub_id = $1 AND organization_id = $2 \
             ORDER BY email, id"
        ))
        .bind(hub)
        .bind(org)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(user_from_row).collect()
    }
}
