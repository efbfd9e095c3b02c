//! Who is calling: the `Authorization: Bearer` extractor and the scope checks.
//!
//! The operator's token is compared by its SHA-256 hash (the server never keeps the token
//! itself); organization tokens are verified by the store, which keeps only their hashes
//! and sees revocations at once. No token or a bad one is `401 unauthorized`; a token without
//! the scope an endpoint needs is `403 forbidden`.

use std::path::Path;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use cdh_store::model::{HubId, OrganizationId, TokenId};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// A scope a token may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Read contacts, profiles, events and tasks.
    ProfilesRead,
    /// Write contacts, notes, conversations and imports.
    ProfilesWrite,
    /// Settings, channels, tokens, unification, hub scope, webhooks (implies the others).
    Admin,
}

impl Scope {
    /// The scopes a token can be given.
    pub const ALL: [&'static str; 3] = ["profiles:read", "profiles:write", "admin"];

    /// The scope's name in tokens.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ProfilesRead => "profiles:read",
            Self::ProfilesWrite => "profiles:write",
            Self::Admin => "admin",
        }
    }
}

/// The caller of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// The partner who runs the hub (the token given at start).
    Operator,
    /// An organization's API token.
    Organization(OrgCaller),
}

/// An organization token's grant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrgCaller {
    /// The organization's hub.
    pub hub: HubId,
    /// The organization.
    pub org: OrganizationId,
    /// The token.
    pub token_id: TokenId,
    /// Its scopes.
    pub scopes: Vec<String>,
}

impl OrgCaller {
    /// Whether the token holds `scope` (admin holds every scope).
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes
            .iter()
            .any(|s| s == scope.as_str() || s == Scope::Admin.as_str())
    }

    /// Who to record as the actor of a change: the token and its organization (settings of
    /// connected organizations are shared, so the organization is part of the record).
    pub fn actor(&self) -> String {
        let org = crate::wire::OrgRef {
            hub: self.hub,
            org: self.org,
        };
        format!("token:{} of {org}", self.token_id)
    }
}

impl Principal {
    /// The organization caller, if it holds `scope`; the operator is refused (`403`): it
    /// manages organizations, it does not act inside one.
    pub fn org(&self, scope: Scope) -> ApiResult<&OrgCaller> {
        match self {
            Self::Organization(caller) if caller.has(scope) => Ok(caller),
            _ => Err(ApiError::forbidden(scope.as_str())),
        }
    }

    /// Passes only the operator (`403` otherwise).
    pub fn operator(&self) -> ApiResult<()> {
        match self {
            Self::Operator => Ok(()),
            Self::Organization(_) => Err(ApiError::forbidden("operator")),
        }
    }

    /// Who to record as the actor of a change.
    pub fn actor(&self) -> String {
        match self {
            Self::Operator => "operator".into(),
            Self::Organization(c) => c.actor(),
        }
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(ApiError::unauthorized)?;
        if state.operator.matches(token) {
            return Ok(Self::Operator);
        }
        match state.store.verify_token(token).await? {
            Some(grant) => Ok(Self::Organization(OrgCaller {
                hub: grant.hub_id,
                org: grant.organization_id,
                token_id: grant.token_id,
                scopes: grant.scopes,
            })),
            None => Err(ApiError::unauthorized()),
        }
    }
}

/// The operator token's hash.
#[derive(Clone, Debug)]
pub struct OperatorKey {
    hash: [u8; 32],
}

/// The file in the data directory that keeps a generated operator token's hash.
pub const OPERATOR_HASH_FILE: &str = "operator_token.sha256";

/// The shortest operator token accepted: it opens every organization of the hub.
pub const MIN_OPERATOR_TOKEN: usize = 32;

impl OperatorKey {
    /// The key of a token given in the configuration; a token shorter than
    /// `MIN_OPERATOR_TOKEN` characters is refused, since anyone who guesses it runs the hub.
    pub fn from_configured(token: &str) -> anyhow::Result<Self> {
        let length = token.chars().count();
        if length < MIN_OPERATOR_TOKEN {
            anyhow::bail!(
                "the operator token must be at least {MIN_OPERATOR_TOKEN} characters (it has \
                 {length}); leave CDH_OPERATOR_TOKEN unset to have one generated"
            );
        }
        Ok(Self::from_token(token))
    }

    /// The key of a token.
    pub fn from_token(token: &str) -> Self {
        Self {
            hash: Sha256::digest(token.as_bytes()).into(),
        }
    }

    /// The key kept in `data_dir`, or a new random token whose hash is written there; the
    /// token is returned (to print once) only when it was just created.
    pub fn load_or_create(data_dir: &Path) -> anyhow::Result<(Self, Option<String>)> {
        use anyhow::Context;
        let path = data_dir.join(OPERATOR_HASH_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let bytes = hex::decode(text.trim())
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .with_context(|| format!("{} is not a SHA-256 hex digest", path.display()))?;
                Ok((Self { hash: bytes }, None))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(data_dir)
                    .with_context(|| format!("creating {}", data_dir.display()))?;
                let token = new_secret("cdhop_");
                let key = Self::from_token(&token);
                std::fs::write(&path, hex::encode(key.hash))
                    .with_context(|| format!("writing {}", path.display()))?;
                Ok((key, Some(token)))
            }
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Whether `token` is the operator's.
    pub fn matches(&self, token: &str) -> bool {
        let given: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        // Compare every byte so the time taken says nothing about the hash.
        given
            .iter()
            .zip(self.hash.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// A random secret of 256 bits, hex-encoded after `prefix`.
pub fn new_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_operator_token_is_refused() {
        let error = OperatorKey::from_configured("op-secret").unwrap_err();
        assert!(
            error.to_string().contains("at least 32 characters"),
            "{error}"
        );
        let good = "x".repeat(MIN_OPERATOR_TOKEN);
        assert!(OperatorKey::from_configured(&good).unwrap().matches(&good));
    }

    #[test]
    fn a_generated_operator_token_is_kept_only_as_its_hash() {
        let dir = tempfile::tempdir().unwrap();
        let (key, token) = OperatorKey::load_or_create(dir.path()).unwrap();
        let token = token.expect("generated at first start");
        assert!(key.matches(&token));
        assert!(!key.matches("something else"));
        let stored = std::fs::read_to_string(dir.path().join(OPERATOR_HASH_FILE)).unwrap();
        assert!(!stored.contains(&token));
        // The next start finds the hash and prints nothing.
        let (again, shown) = OperatorKey::load_or_create(dir.path()).unwrap();
        assert!(shown.is_none());
        assert!(again.matches(&token));
        std::fs::write(dir.path().join(OPERATOR_HASH_FILE), "garbage").unwrap();
        assert!(OperatorKey::load_or_create(dir.path()).is_err());
    }
}
