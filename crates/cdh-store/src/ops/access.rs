//! [`Access`] for every backend: API tokens (kept only as hashes of their secrets) and
//! console users (kept with the password hash the server computed; the email as the server
//! normalised it).

use async_trait::async_trait;

use crate::error::{Resource, StoreError, StoreResult};
use crate::model::{
    ConsoleUser, HubId, IssuedToken, Millis, OrganizationId, Role, TokenGrant, TokenId, TokenInfo,
    UserChange, UserId,
};
use crate::ops::setup::{ensure_organization, missing_parent};
use crate::port::Access;
use crate::rules::{constant_time_eq, format_token, hash_secret, new_secret, parse_token};
use crate::sql::{Adapter, fetch_one, query};

/// A token as the verifier reads it.
#[derive(sqlx::FromRow)]
struct TokenRow {
    organization_id: OrganizationId,
    scopes: String,
    secret_hash: String,
    revoked_at: Option<i64>,
}

/// A token as listed (never its secret).
#[derive(sqlx::FromRow)]
struct TokenInfoRow {
    id: TokenId,
    name: String,
    scopes: String,
    created_at: i64,
    revoked_at: Option<i64>,
}

/// A console user as stored, without the password hash.
#[derive(sqlx::FromRow)]
struct UserRow {
    id: UserId,
    organization_id: OrganizationId,
    email: String,
    role: String,
    created_at: i64,
    session_epoch: i64,
}

const USER_COLUMNS: &str = "id, organization_id, email, role, created_at, session_epoch";

impl UserRow {
    fn into_user(self) -> StoreResult<ConsoleUser> {
        let role = Role::parse(&self.role).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "console user {} has an unknown role {:?}",
                self.id, self.role
            ))
        })?;
        Ok(ConsoleUser {
            id: self.id,
            organization_id: self.organization_id,
            email: self.email,
            role,
            created_at: self.created_at,
            session_epoch: self.session_epoch,
        })
    }
}

/// A console user with the stored password hash, for signing in.
#[derive(sqlx::FromRow)]
struct SignInRow {
    #[sqlx(flatten)]
    user: UserRow,
    password_hash: String,
}

fn duplicate_user(email: &str) -> StoreError {
    StoreError::Conflict(format!(
        "a console user with the email {email} already exists in this organization"
    ))
}

#[async_trait]
impl<B: Adapter> Access for B {
    async fn create_token(
        &self,
        hub: HubId,
        org: OrganizationId,
        name: &str,
        scopes: &[String],
    ) -> StoreResult<IssuedToken> {
        let secret = new_secret();
        let mut tx = self.begin_write().await?;
        let id = TokenId(B::next_id(&mut tx, hub).await?);
        B::execute(
            &mut tx,
            query(
                "INSERT INTO api_tokens (hub_id, id, organization_id, name, scopes, \
                 secret_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(hub)
            .bind(id)
            .bind(org)
            .bind(name)
            .bind(serde_json::to_string(scopes)?)
            .bind(hash_secret(&secret))
            .bind(self.clock().now()),
        )
        .await
        .map_err(|e| missing_parent(e, Resource::Organization))?;
        B::commit(tx).await?;
        Ok(IssuedToken {
            id,
            token: format_token(hub, id, &secret),
        })
    }

    async fn verify_token(&self, token: &str) -> StoreResult<Option<TokenGrant>> {
        let Some((hub, id, secret)) = parse_token(token) else {
            return Ok(None);
        };
        let mut conn = self.acquire().await?;
        let row: Option<TokenRow> = B::fetch_optional(
            &mut conn,
            query(
                "SELECT organization_id, scopes, secret_hash, revoked_at FROM api_tokens \
                 WHERE hub_id = $1 AND id = $2",
            )
            .bind(hub)
            .bind(id),
        )
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        if row.revoked_at.is_some() || !constant_time_eq(&hash_secret(secret), &row.secret_hash) {
            return Ok(None);
        }
        Ok(Some(TokenGrant {
            hub_id: hub,
            token_id: id,
            organization_id: row.organization_id,
            scopes: serde_json::from_str(&row.scopes)?,
        }))
    }

    async fn revoke_token(&self, hub: HubId, id: TokenId) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let n = B::execute(
            &mut tx,
            query(
                "UPDATE api_tokens SET revoked_at = $3 \
                 WHERE hub_id = $1 AND id = $2 AND revoked_at IS NULL",
            )
            .bind(hub)
            .bind(id)
            .bind(self.clock().now()),
        )
        .await?;
        B::commit(tx).await?;
        if n == 0 {
            Err(StoreError::NotFound(Resource::Token))
        } else {
            Ok(())
        }
    }

    async fn list_tokens(&self, hub: HubId, org: OrganizationId) -> StoreResult<Vec<TokenInfo>> {
        let mut conn = self.acquire().await?;
        let rows: Vec<TokenInfoRow> = B::fetch_all(
            &mut conn,
            query(
                "SELECT id, name, scopes, created_at, revoked_at FROM api_tokens \
                 WHERE hub_id = $1 AND organization_id = $2 ORDER BY id",
            )
            .bind(hub)
            .bind(org),
        )
        .await?;
        rows.into_iter()
            .map(|row| {
                Ok(TokenInfo {
                    id: row.id,
                    name: row.name,
                    scopes: serde_json::from_str(&row.scopes)?,
                    created_at: row.created_at,
                    revoked_at: row.revoked_at,
                })
            })
            .collect()
    }

    async fn create_user(
        &self,
        hub: HubId,
        org: OrganizationId,
        email: &str,
        password_hash: &str,
        role: Role,
        now: Millis,
    ) -> StoreResult<ConsoleUser> {
        let mut tx = self.begin_write().await?;
        ensure_organization::<B>(&mut tx, hub, org).await?;
        let taken: Option<(UserId,)> = B::fetch_optional(
            &mut tx,
            query(
                "SELECT id FROM console_users \
                 WHERE hub_id = $1 AND organization_id = $2 AND email = $3",
            )
            .bind(hub)
            .bind(org)
            .bind(email),
        )
        .await?;
        if taken.is_some() {
            return Err(duplicate_user(email));
        }
        let id = UserId(B::next_id(&mut tx, hub).await?);
        B::execute(
            &mut tx,
            query(
                "INSERT INTO console_users (hub_id, id, organization_id, email, password_hash, \
                 role, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(hub)
            .bind(id)
            .bind(org)
            .bind(email)
            .bind(password_hash)
            .bind(role.as_str())
            .bind(now),
        )
        .await
        .map_err(|e| match e {
            // Two writers raced past the check above (PostgreSQL): the unique index decides.
            StoreError::Backend { .. } => duplicate_user(email),
            other => other,
        })?;
        B::commit(tx).await?;
        Ok(ConsoleUser {
            id,
            organization_id: org,
            email: email.to_owned(),
            role,
            created_at: now,
            session_epoch: 0,
        })
    }

    async fn user_for_sign_in(
        &self,
        hub: HubId,
        org: OrganizationId,
        email: &str,
    ) -> StoreResult<Option<(ConsoleUser, String)>> {
        let mut conn = self.acquire().await?;
        let row: Option<SignInRow> = B::fetch_optional(
            &mut conn,
            query(format!(
                "SELECT {USER_COLUMNS}, password_hash FROM console_users \
                 WHERE hub_id = $1 AND organization_id = $2 AND email = $3"
            ))
            .bind(hub)
            .bind(org)
            .bind(email),
        )
        .await?;
        row.map(|row| Ok((row.user.into_user()?, row.password_hash)))
            .transpose()
    }

    async fn get_user(&self, hub: HubId, id: UserId) -> StoreResult<ConsoleUser> {
        let mut conn = self.acquire().await?;
        let row: UserRow = fetch_one::<B, _>(
            &mut conn,
            query(format!(
                "SELECT {USER_COLUMNS} FROM console_users WHERE hub_id = $1 AND id = $2"
            ))
            .bind(hub)
            .bind(id),
            Resource::User,
        )
        .await?;
        row.into_user()
    }

    async fn end_sessions(&self, hub: HubId, id: UserId) -> StoreResult<i64> {
        let mut tx = self.begin_write().await?;
        let epoch: (i64,) = fetch_one::<B, _>(
            &mut tx,
            query(
                "UPDATE console_users SET session_epoch = session_epoch + 1 \
                 WHERE hub_id = $1 AND id = $2 RETURNING session_epoch",
            )
            .bind(hub)
            .bind(id),
            Resource::User,
        )
        .await?;
        B::commit(tx).await?;
        Ok(epoch.0)
    }

    async fn list_users(&self, hub: HubId, org: OrganizationId) -> StoreResult<Vec<ConsoleUser>> {
        let mut conn = self.acquire().await?;
        let rows: Vec<UserRow> = B::fetch_all(
            &mut conn,
            query(format!(
                "SELECT {USER_COLUMNS} FROM console_users \
                 WHERE hub_id = $1 AND organization_id = $2 ORDER BY email, id"
            ))
            .bind(hub)
            .bind(org),
        )
        .await?;
        rows.into_iter().map(UserRow::into_user).collect()
    }

    async fn update_user(
        &self,
        hub: HubId,
        org: OrganizationId,
        id: UserId,
        change: UserChange,
    ) -> StoreResult<ConsoleUser> {
        let mut tx = self.begin_write().await?;
        // One statement: the new hash and the end of the old sessions commit together.
        let row: UserRow = fetch_one::<B, _>(
            &mut tx,
            query(format!(
                "UPDATE console_users SET \
                 password_hash = COALESCE($4, password_hash), \
                 role = COALESCE($5, role), \
                 session_epoch = session_epoch + CASE WHEN $4 IS NULL THEN 0 ELSE 1 END \
                 WHERE hub_id = $1 AND organization_id = $2 AND id = $3 \
                 RETURNING {USER_COLUMNS}"
            ))
            .bind(hub)
            .bind(org)
            .bind(id)
            .bind(change.password_hash)
            .bind(change.role.map(|role| role.as_str().to_owned())),
            Resource::User,
        )
        .await?;
        B::commit(tx).await?;
        row.into_user()
    }

    async fn remove_user(&self, hub: HubId, org: OrganizationId, id: UserId) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let _: (UserId,) = fetch_one::<B, _>(
            &mut tx,
            query(
                "DELETE FROM console_users \
                 WHERE hub_id = $1 AND organization_id = $2 AND id = $3 RETURNING id",
            )
            .bind(hub)
            .bind(org)
            .bind(id),
            Resource::User,
        )
        .await?;
        B::commit(tx).await
    }
}
