//! Pure rules the adapters share: scope names, normalisation set-up, lock keys, token format.

use cdh_core::{Blocklist, IdentifierField, Normalizer, Region, UnifyKeys};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::error::{StoreError, StoreResult};
use crate::model::{ChannelId, ConnectionId, HubId, OrganizationId, TokenId, UnifySetting};

/// The scope a contact unifies in, as a stable name stored with the contact.
///
/// Mirrors `cdh_core::Scopes`, but names scopes by their stored ids instead of numbering them
/// in order of appearance, so the name is the same in every transaction. `group` is the
/// partner connection the organization belongs to, if any; `cross_product` is the hub's setting.
pub fn scope_name(
    organization_id: OrganizationId,
    group: Option<ConnectionId>,
    cross_product: bool,
    product: &str,
    is_line: bool,
    line_uid_is_key: bool,
) -> String {
    let base = match group {
        Some(g) => format!("g{g}"),
        None => format!("o{organization_id}"),
    };
    let split_product = !cross_product || (is_line && !line_uid_is_key);
    if split_product {
        format!("{base}:{product}")
    } else {
        base
    }
}

/// The key of the realm a scope belongs to (`o12:caac` is in `o12`): the realm whose setting
/// rules the scope's contacts, and whose events their writes append.
pub fn realm_of_scope(scope: &str) -> &str {
    scope.split(':').next().unwrap_or(scope)
}

/// The unify keys of a setting; custom fields are any names that are not built in.
pub fn parse_keys(names: &[String]) -> StoreResult<Vec<IdentifierField>> {
    let custom: Vec<String> = names
        .iter()
        .filter(|n| IdentifierField::built_in(n).is_none())
        .cloned()
        .collect();
    let fields = names
        .iter()
        .map(|n| IdentifierField::parse(n, &custom).map_err(|e| StoreError::Invalid(e.to_string())))
        .collect::<StoreResult<Vec<_>>>()?;
    if !fields.is_empty() {
        UnifyKeys::new(fields.clone()).map_err(|e| StoreError::Invalid(e.to_string()))?;
    }
    Ok(fields)
}

/// The unique fields of a setting: distinct built-in identifier fields (the identifiers every
/// contact stores), none to all of them.
pub fn parse_unique_fields(names: &[String]) -> StoreResult<Vec<IdentifierField>> {
    let mut fields: Vec<IdentifierField> = Vec::with_capacity(names.len());
    for name in names {
        let field = IdentifierField::built_in(name).ok_or_else(|| {
            StoreError::rejected(
                crate::error::Rejection::UnknownField,
                format!(
                    "unique field {name:?} is not a built-in identifier field ({})",
                    cdh_core::field::BUILT_IN_FIELDS
                        .iter()
                        .map(|f| f.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?;
        if fields.contains(&field) {
            return Err(StoreError::Invalid(format!(
                "unique field {name} is named twice"
            )));
        }
        fields.push(field);
    }
    Ok(fields)
}

/// A normaliser for an organization's region with the setting's exclusions.
pub fn normalizer(region: &str, setting: &UnifySetting) -> StoreResult<Normalizer> {
    let region = Region::parse(region)
        .map_err(|_| StoreError::Invalid(format!("unknown region {region}")))?;
    let mut blocklist = Blocklist::built_in();
    let mut plain = Normalizer::new(region, Blocklist::built_in());
    for (field, value) in &setting.excluded {
        let field = IdentifierField::parse(field, std::slice::from_ref(field))
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        // Exclusions are given raw ("02-2345-6789") and compared normalised.
        let normalised = plain
            .normalize(&field, value)
            .unwrap_or_else(|_| value.trim().into());
        blocklist.exclude_normalized(field, normalised);
    }
    Ok(Normalizer::new(region, blocklist))
}

/// Whether `(field, normalised value)` is excluded by the setting.
pub fn is_excluded(normalizer: &Normalizer, field: &str, value: &str) -> bool {
    normalizer
        .blocklist()
        .excluded()
        .any(|(f, v)| f.name() == field && v == value)
}

/// A 64-bit lock key for an advisory lock on a unify-key value within a hub and scope.
pub fn value_lock_key(hub: HubId, scope: &str, field: &str, value: &str) -> i64 {
    let mut h = Sha256::new();
    for part in [hub.to_string().as_str(), scope, field, value] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    let digest = h.finalize();
    i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// A 64-bit lock key for a contact's `(channel_id, external_id)`.
pub fn contact_lock_key(hub: HubId, channel_id: ChannelId, external_id: &str) -> i64 {
    value_lock_key(hub, "contact", &channel_id.to_string(), external_id)
}

/// The prefix of every token.
const TOKEN_PREFIX: &str = "cdh";

/// A fresh random secret, hex-encoded.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The token text: `cdh_<hub>_<token id>_<secret>`; the ids make lookup a primary-key read.
pub fn format_token(hub: HubId, token_id: TokenId, secret: &str) -> String {
    format!("{TOKEN_PREFIX}_{hub}_{token_id}_{secret}")
}

/// The hub, token id and secret of a token, or `None` if it is not one of ours.
pub fn parse_token(token: &str) -> Option<(HubId, TokenId, &str)> {
    let mut parts = token.splitn(4, '_');
    if parts.next()? != TOKEN_PREFIX {
        return None;
    }
    let hub = HubId(parts.next()?.parse().ok()?);
    let id = TokenId(parts.next()?.parse().ok()?);
    let secret = parts.next()?;
    (!secret.is_empty()).then_some((hub, id, secret))
}

/// The stored form of a secret.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Compares two hashes in time independent of where they differ.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.bytes()
        .zip(b.bytes())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_foreign_text() {
        let t = format_token(HubId(7), TokenId(42), "abc_def");
        assert_eq!(parse_token(&t), Some((HubId(7), TokenId(42), "abc_def")));
        assert_eq!(parse_token("xyz_7_42_abc"), None);
        assert_eq!(parse_token("cdh_7_42_"), None);
        assert_eq!(parse_token("cdh_x_42_abc"), None);
    }

    #[test]
    fn hashes_compare_by_content() {
        assert!(constant_time_eq(&hash_secret("a"), &hash_secret("a")));
        assert!(!constant_time_eq(&hash_secret("a"), &hash_secret("b")));
    }

    #[test]
    fn scopes_split_products_unless_cross_product() {
        assert_ne!(
            scope_name(OrganizationId(1), None, false, "caac", false, false),
            scope_name(OrganizationId(1), None, false, "maac", false, false)
        );
        assert_eq!(
            scope_name(OrganizationId(1), None, true, "caac", false, false),
            scope_name(OrganizationId(1), None, true, "maac", false, false)
        );
        // LINE contacts cross products only when line_uid is a key.
        assert_ne!(
            scope_name(OrganizationId(1), None, true, "caac", true, false),
            scope_name(OrganizationId(1), None, true, "maac", true, false)
        );
        assert_eq!(
            scope_name(
                OrganizationId(1),
                Some(ConnectionId(9)),
                true,
                "caac",
                true,
                true
            ),
            scope_name(
                OrganizationId(2),
                Some(ConnectionId(9)),
                true,
                "maac",
                true,
                true
            )
        );
    }
}
