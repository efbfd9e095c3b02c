//! How ids and times look on the wire: ids are opaque strings, times RFC 3339 UTC.
//!
//! Ids of things inside a hub (channels, contacts, profiles, tasks, tokens) are the decimal
//! store id; the caller's token says which hub. Organization ids are used before any token
//! of theirs exists (operator routes), so they carry their hub: `"<hub>-<org>"`.

use cdh_store::model::{HubId, Millis, OrganizationId};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::{ApiError, ApiResult};

/// An id of a thing inside the caller's hub, parsed from a path or body; a string that is
/// not one of ours names nothing, so it is `404` (in paths) rather than a format error.
pub fn parse_id<Id: From<i64>>(text: &str, what: &str) -> ApiResult<Id> {
    text.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .map(Id::from)
        .ok_or_else(|| ApiError::not_found(what))
}

/// An id of a thing inside a hub, as written in JSON.
pub fn id(id: impl Into<i64>) -> String {
    id.into().to_string()
}

/// An organization's public id: its hub and its id in the hub.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrgRef {
    /// The hub.
    pub hub: HubId,
    /// The organization.
    pub org: OrganizationId,
}

impl OrgRef {
    /// Parses `"<hub>-<org>"`; anything else names no organization.
    pub fn parse(text: &str) -> ApiResult<Self> {
        let (hub, org) = text
            .split_once('-')
            .ok_or_else(|| ApiError::not_found("organization"))?;
        Ok(Self {
            hub: parse_id(hub, "organization")?,
            org: parse_id(org, "organization")?,
        })
    }
}

impl std::fmt::Display for OrgRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.hub, self.org)
    }
}

/// Milliseconds since the epoch as RFC 3339 UTC (`2026-01-02T03:04:05.678Z`).
pub fn time(ms: Millis) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// An optional time.
pub fn time_opt(ms: Option<Millis>) -> Option<String> {
    ms.map(time)
}

/// Parses an RFC 3339 time given in `field`.
pub fn parse_time(text: &str, field: &str) -> ApiResult<Millis> {
    let t = OffsetDateTime::parse(text.trim(), &Rfc3339).map_err(|_| {
        ApiError::invalid_field(
            field,
            format!("`{field}` must be an RFC 3339 time such as 2026-01-02T03:04:05Z"),
        )
    })?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000)
        .map_err(|_| ApiError::invalid_field(field, format!("`{field}` is out of range")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        let ms = 1_767_323_045_678;
        let text = time(ms);
        assert_eq!(text, "2026-01-02T03:04:05.678Z");
        assert_eq!(parse_time(&text, "at").unwrap(), ms);
        assert_eq!(
            parse_time("2026-01-02T11:04:05.678+08:00", "at").unwrap(),
            ms
        );
        assert!(parse_time("yesterday", "at").is_err());
    }

    #[test]
    fn org_refs_round_trip() {
        let r = OrgRef {
            hub: HubId(3),
            org: OrganizationId(7),
        };
        assert_eq!(OrgRef::parse(&r.to_string()).unwrap(), r);
        assert!(OrgRef::parse("7").is_err());
        assert!(OrgRef::parse("a-b").is_err());
    }
}
