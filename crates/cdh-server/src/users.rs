//! Console users: argon2 password hashes, creating a user (API, CLI, demo) and checking a
//! sign-in without telling by its timing whether the user exists.
//!
//! Emails are normalised here (trimmed, lower-cased, shape-checked by `cdh_core::Email`)
//! before the store sees them; the store keeps them as given. Hashing and verifying take tens
//! of milliseconds of CPU, so they run on the blocking pool.

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use cdh_store::AnyStore;
use cdh_store::model::{ConsoleUser, HubId, Millis, OrganizationId, Role, UserChange, UserId};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// The longest password accepted, in characters (hashing cost grows with the length).
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// Hashes a password with argon2id (the crate's default parameters) and a random salt, as a
/// PHC string (`$argon2id$v=19$...`).
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))
}

/// Whether `password` matches the PHC string `hash`; a malformed hash matches nothing.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// The canonical form of a console user's email, or `422 invalid_field` naming `email`.
pub fn normalize_email(raw: &str) -> ApiResult<String> {
    cdh_core::Email::parse(raw)
        .map(|email| email.as_str().to_owned())
        .map_err(|_| {
            ApiError::invalid_field(
                "email",
                "`email` must be an email address such as ann@example.com",
            )
        })
}

/// Checks a new password's length, or `422 invalid_field` naming `password`.
pub fn check_password(password: &str) -> ApiResult<()> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_CHARS {
        return Err(ApiError::invalid_field(
            "password",
            format!("`password` must be at least {MIN_PASSWORD_CHARS} characters long"),
        ));
    }
    if n > MAX_PASSWORD_CHARS {
        return Err(ApiError::invalid_field(
            "password",
            format!("`password` must be at most {MAX_PASSWORD_CHARS} characters long"),
        ));
    }
    Ok(())
}

/// Creates a console user of an organization: the email normalised, the password checked and
/// hashed. A taken email is `409 conflict`, an unknown organization `404`.
pub async fn create_user(
    state: &AppState,
    hub: HubId,
    org: OrganizationId,
    email: &str,
    password: &str,
    role: Role,
) -> ApiResult<ConsoleUser> {
    create_user_in_store(&state.store, hub, org, email, password, role, state.now()).await
}

/// [`create_user`] on a bare store, at `now` (for `cdh admin create-user` and the demo).
pub async fn create_user_in_store(
    store: &AnyStore,
    hub: HubId,
    org: OrganizationId,
    email: &str,
    password: &str,
    role: Role,
    now: Millis,
) -> ApiResult<ConsoleUser> {
    let email = normalize_email(email)?;
    check_password(password)?;
    // Fail fast on an unknown organization before spending a hash on it.
    store.get_organization(hub, org).await?;
    let password = password.to_owned();
    let hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| ApiError::internal(format!("the hashing task failed: {e}")))??;
    Ok(store
        .create_user(hub, org, &email, &hash, role, now)
        .await?)
}

/// Changes a user of an organization (admin's work): a new password, checked and hashed,
/// ends every session of theirs at once; a new role holds from their next request. An
/// unknown user, or one of another organization, is `404`.
pub async fn update_user(
    state: &AppState,
    hub: HubId,
    org: OrganizationId,
    id: UserId,
    password: Option<&str>,
    role: Option<Role>,
) -> ApiResult<ConsoleUser> {
    let password_hash = match password {
        None => None,
        Some(password) => {
            check_password(password)?;
            // Fail fast on an unknown user before spending a hash on them.
            let user = state.store.get_user(hub, id).await?;
            if user.organization_id != org {
                return Err(ApiError::not_found("user"));
            }
            let password = password.to_owned();
            let hash = tokio::task::spawn_blocking(move || hash_password(&password))
                .await
                .map_err(|e| ApiError::internal(format!("the hashing task failed: {e}")))??;
            Some(hash)
        }
    };
    let change = UserChange {
        password_hash,
        role,
    };
    Ok(state.store.update_user(hub, org, id, change).await?)
}

/// The user whose email and password these are, or `None`. An unknown user (or organization)
/// still costs one verification, against a fixed hash, so the answer's timing tells nothing.
pub async fn sign_in(
    state: &AppState,
    hub: HubId,
    org: OrganizationId,
    email: &str,
    password: &str,
) -> ApiResult<Option<ConsoleUser>> {
    // A malformed email names nobody, whoever asks: there is nothing to hide.
    let Ok(email) = normalize_email(email) else {
        return Ok(None);
    };
    if password.chars().count() > MAX_PASSWORD_CHARS {
        return Ok(None);
    }
    let found = state.store.user_for_sign_in(hub, org, &email).await?;
    let password = password.to_owned();
    let (user, hash) = match found {
        Some((user, hash)) => (Some(user), hash),
        None => (None, dummy_hash().to_owned()),
    };
    let matches = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .map_err(|e| ApiError::internal(format!("the verification task failed: {e}")))?;
    Ok(user.filter(|_| matches))
}

/// A hash of a password nobody knows, made with the same parameters as real ones, so that
/// verifying against it takes as long as verifying against a user's.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        hash_password(&crate::auth::new_secret("dummy")).unwrap_or_else(|_| {
            // Argon2's defaults (m=19456 KiB, t=2, p=1) over a fixed salt: same cost.
            "$argon2id$v=19$m=19456,t=2,p=1$ZHVtbXlzYWx0ZHVtbXk$\
             3q2+7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
                .to_owned()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("correct horse batterY", &hash));
        assert!(!verify_password("correct horse battery", "not a hash"));
        // Salted: the same password hashes differently each time.
        assert_ne!(hash, hash_password("correct horse battery").unwrap());
    }

    #[test]
    fn the_dummy_hash_is_a_real_argon2_hash() {
        let parsed = PasswordHash::new(dummy_hash()).expect("a PHC string");
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
        assert!(!verify_password("", dummy_hash()));
    }

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            normalize_email("  Ann@Example.COM ").unwrap(),
            "ann@example.com"
        );
        for bad in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "ann@example",
            "a b@example.com",
        ] {
            let e = normalize_email(bad).unwrap_err();
            assert_eq!(e.details["field"], "email", "{bad:?}");
        }
    }

    #[test]
    fn passwords_need_ten_characters() {
        assert!(check_password("123456789").is_err());
        assert!(check_password("1234567890").is_ok());
        // Characters, not bytes.
        assert!(check_password("密碼密碼密碼密碼密").is_err());
        assert!(check_password(&"x".repeat(MAX_PASSWORD_CHARS + 1)).is_err());
        assert_eq!(
            check_password("short").unwrap_err().details["field"],
            "password"
        );
    }
}
