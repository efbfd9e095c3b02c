// Finding profiles by the start of a contact's display name (included by both adapters).
//
// The `contacts_by_name` index (migration 0006) holds `(hub_id, name key, id)`, the name key
// being the display name trimmed with ASCII letters lower-cased, compared byte by byte. A search
// walks that index from the prefix in batches, in (name key, contact id) order, and stops once
// the page's profiles are known: the cost follows the rows read, not the hub's size.

impl ThisStore {
    /// The plan the database picks for the first step of a name search, one line per step (for
    /// tests and operators checking that `contacts_by_name` serves it).
    pub async fn name_search_plan(
        &self,
        hub: HubId,
        org: OrganizationId,
        text: &str,
    ) -> StoreResult<Vec<String>> {
        let prefix = name_search_prefix(text);
        let upper = prefix_upper_bound(&prefix);
        let sql = explain(&name_search_sql(upper.is_some()));
        let mut query = sqlx::query(&sql)
            .bind(hub)
            .bind(prefix)
            .bind(i64::MIN)
            .bind(org)
            .bind(NAME_SEARCH_BATCH);
        if let Some(upper) = upper {
            query = query.bind(upper);
        }
        plan_lines(&query.fetch_all(&self.pool).await?)
    }

    async fn search_profiles_by_name_impl(
        &self,
        hub: HubId,
        org: OrganizationId,
        text: &str,
        limit: u32,
    ) -> StoreResult<Vec<(Profile, cdh_core::GoldenRecord)>> {
        let limit = limit.min(MAX_PAGE) as usize;
        let prefix = name_search_prefix(text);
        // One snapshot, so the profiles found and their records are of one moment.
        let mut tx = self.begin_snapshot().await?;
        ensure_organization(&mut tx, hub, org).await?;
        // PostgreSQL text cannot hold NUL, so no stored name starts with one.
        if limit == 0 || prefix.is_empty() || prefix.contains('\0') {
            tx.commit().await?;
            return Ok(Vec::new());
        }
        let upper = prefix_upper_bound(&prefix);
        let sql = name_search_sql(upper.is_some());
        // Each profile with the least name key it was found by, in the order of the walk.
        let mut found: Vec<(String, ProfileId)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let (mut from_name, mut from_id) = (prefix, i64::MIN);
        'walk: loop {
            let mut query = sqlx::query_as::<_, (String, i64, i64)>(&sql)
                .bind(hub)
                .bind(from_name.clone())
                .bind(from_id)
                .bind(org)
                .bind(NAME_SEARCH_BATCH);
            if let Some(upper) = &upper {
                query = query.bind(upper.clone());
            }
            let rows = query.fetch_all(&mut *tx).await?;
            let exhausted = (rows.len() as i64) < NAME_SEARCH_BATCH;
            for (name, contact, profile) in rows {
                // Profiles not met yet have a name key at least this row's: once it passes the
                // key of the page's last profile, none of them can enter the page.
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
        let ids: Vec<ProfileId> = found.into_iter().map(|(_, id)| id).collect();
        let profiles = golden_many(&mut tx, hub, &ids).await?;
        tx.commit().await?;
        Ok(profiles)
    }
}

/// Rows one step of a name search reads.
const NAME_SEARCH_BATCH: i64 = 64;

fn is_postgres() -> bool {
    <<Conn as sqlx::Connection>::Database as sqlx::Database>::NAME == "PostgreSQL"
}

/// A contact's name key exactly as `contacts_by_name` indexes it (migration 0006).
fn name_key_sql() -> &'static str {
    if is_postgres() {
        "lower(trim(c.fields::jsonb -> 'display_name' ->> 'value') COLLATE \"C\")"
    } else {
        "lower(trim(json_extract(c.fields, '$.display_name.value')))"
    }
}

/// One step of the walk: contacts of the organization whose name key is in
/// `[prefix, upper)` and after `($2, $3)`, with their live profile, in index order.
/// Binds: hub, from name, from contact id, organization, limit, and the upper bound if any.
fn name_search_sql(bounded: bool) -> String {
    let key = name_key_sql();
    let upper = if bounded {
        format!(" AND {key} < $6")
    } else {
        String::new()
    };
    format!(
        "SELECT {key}, c.id, p.id FROM contacts c \
         {ORDERED_JOIN} channels ch ON ch.hub_id = c.hub_id AND ch.id = c.channel_id \
         {ORDERED_JOIN} memberships m ON m.hub_id = c.hub_id AND m.contact_id = c.id {} \
         WHERE c.hub_id = $1 AND {key} >= $2{upper} \
           AND ({key} > $2 OR c.id > $3) AND ch.organization_id = $4 \
         ORDER BY {key}, c.id LIMIT $5",
        to_live_profile()
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
mod name_search_tests {
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
