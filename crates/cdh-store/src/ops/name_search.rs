//! Finding profiles by the start of a contact's display name.
//!
//! The `contacts_by_name` index (migration 0006) holds `(hub_id, name key, id)`, the name key
//! being the display name trimmed with ASCII letters lower-cased, compared byte by byte. A
//! search walks that index from the prefix in batches, in (name key, contact id) order, and
//! stops once the page's profiles are known: the cost follows the rows read, not the hub's
//! size.

use std::collections::HashSet;

use crate::error::StoreResult;
use crate::model::{HubId, OrganizationId, ProfileId};
use crate::sql::text::to_live_profile;
use crate::sql::{Adapter, Dialect, Query, query};

/// Rows one step of a name search reads.
const NAME_SEARCH_BATCH: i64 = 64;

/// The live profiles with a contact of the organization whose name key starts with `text`'s,
/// at most `limit`, by the least matching name key and then id.
pub(crate) async fn search_by_name<B: Adapter>(
    conn: &mut B::Conn,
    hub: HubId,
    org: OrganizationId,
    text: &str,
    limit: usize,
) -> StoreResult<Vec<ProfileId>> {
    let prefix = name_search_prefix(text);
    // PostgreSQL text cannot hold NUL, so no stored name starts with one.
    if limit == 0 || prefix.is_empty() || prefix.contains('\0') {
        return Ok(Vec::new());
    }
    let upper = prefix_upper_bound(&prefix);
    let sql = name_search_sql::<B>(upper.is_some());
    // Each profile with the least name key it was found by, in the order of the walk.
    let mut found: Vec<(String, ProfileId)> = Vec::new();
    let mut seen = HashSet::new();
    let (mut from_name, mut from_id) = (prefix, i64::MIN);
    'walk: loop {
        let step = walk_step(&sql, hub, org, &from_name, from_id, upper.as_deref());
        let rows: Vec<(String, i64, ProfileId)> = B::fetch_all(conn, step).await?;
        let exhausted = (rows.len() as i64) < NAME_SEARCH_BATCH;
        for (name, contact, profile) in rows {
            // Profiles not met yet have a name key at least this row's: once it passes the key
            // of the page's last profile, none of them can enter the page.
            if found.len() >= limit && name != found[limit - 1].0 {
                break 'walk;
            }
            if seen.insert(profile) {
                found.push((name.clone(), profile));
            }
            (from_name, from_id) = (name, contact);
        }
        if exhausted {
            break;
        }
    }
    found.sort();
    found.truncate(limit);
    Ok(found.into_iter().map(|(_, id)| id).collect())
}

/// The first step of a name search for `text`, as `EXPLAIN` takes it.
pub(crate) fn first_step_sql<D: Dialect>(
    hub: HubId,
    org: OrganizationId,
    text: &str,
) -> Query<'static> {
    let prefix = name_search_prefix(text);
    let upper = prefix_upper_bound(&prefix);
    let sql = format!("{} {}", D::EXPLAIN, name_search_sql::<D>(upper.is_some()));
    walk_step(&sql, hub, org, &prefix, i64::MIN, upper.as_deref()).into_owned()
}

/// One step of the walk over `sql` (`name_search_sql`): from `(from_name, from_id)` on.
fn walk_step<'a>(
    sql: &'a str,
    hub: HubId,
    org: OrganizationId,
    from_name: &str,
    from_id: i64,
    upper: Option<&str>,
) -> Query<'a> {
    let step = query(sql)
        .bind(hub)
        .bind(from_name)
        .bind(from_id)
        .bind(org)
        .bind(NAME_SEARCH_BATCH);
    match upper {
        Some(upper) => step.bind(upper),
        None => step,
    }
}

/// One step of the walk: contacts of the organization whose name key is in `[prefix, upper)`
/// and after `($2, $3)`, with their live profile, in index order. Binds: hub, from name, from
/// contact id, organization, limit, and the upper bound if any.
fn name_search_sql<D: Dialect>(bounded: bool) -> String {
    let key = D::NAME_KEY;
    let upper = if bounded {
        format!(" AND {key} < $6")
    } else {
        String::new()
    };
    format!(
        "SELECT {key}, c.id, p.id FROM contacts c \
         {j} channels ch ON ch.hub_id = c.hub_id AND ch.id = c.channel_id \
         {j} memberships m ON m.hub_id = c.hub_id AND m.contact_id = c.id {} \
         WHERE c.hub_id = $1 AND {key} >= $2{upper} \
           AND ({key} > $2 OR c.id > $3) AND ch.organization_id = $4 \
         ORDER BY {key}, c.id LIMIT $5",
        to_live_profile::<D>(),
        j = D::ORDERED_JOIN
    )
}

/// The search text as a name key: trimmed, ASCII letters lower-cased (others as they are).
fn name_search_prefix(text: &str) -> String {
    text.trim().to_ascii_lowercase()
}

/// The least string above every string starting with `prefix`, in code point order (which is
/// UTF-8 byte order, the index's order), or `None` when there is none.
fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match u32::from(last) + 1 {
            0xD800 => Some('\u{E000}'),
            n => char::from_u32(n),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::{name_search_prefix, prefix_upper_bound};

    #[test]
    fn the_upper_bound_is_the_next_prefix() {
        assert_eq!(prefix_upper_bound("amy").as_deref(), Some("amz"));
        assert_eq!(prefix_upper_bound("陳").as_deref(), Some("\u{9674}"));
        assert_eq!(
            prefix_upper_bound("a\u{D7FF}").as_deref(),
            Some("a\u{E000}")
        );
        assert_eq!(prefix_upper_bound("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_upper_bound("\u{10FFFF}"), None);
        assert_eq!(prefix_upper_bound(""), None);
    }

    #[test]
    fn the_prefix_is_trimmed_and_folds_ascii_only() {
        assert_eq!(name_search_prefix("  AMY Ch "), "amy ch");
        assert_eq!(name_search_prefix("ÁMY"), "Ámy");
    }
}
