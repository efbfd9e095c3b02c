//! The auto-unifying upsert through sqlx, for every backend: PostgreSQL's upserts run it, and
//! so do both backends' imports, inside the import's transaction. (SQLite runs its own
//! upserts on its writer connection, `sqlite::writer`, with the same plan.) What it decides
//! is in `plan::contact` and `plan::unify`; this module does the reads and writes.
//!
//! The round trips are few on purpose: one read for the channel, setting, id block and stored
//! contact; one for the profiles every unify-key value ties to; then the writes, which need
//! nothing back and are queued in a `WriteBatch`. PostgreSQL takes the first locks and reads
//! the context with its `BEGIN`, the value locks with the tie query (which locks the tied
//! profiles too), and sends the writes, events and commit as one query: three round trips.

use std::future::Future;

use crate::error::{StoreError, StoreResult};
use crate::model::{ContactId, ContactInput, HubId, Millis, ProfileId, Upserted};
use crate::plan::contact::{IdBlock, UpsertContext, plan_contact, reject_nul};
use crate::plan::unify::{
    ProfileRow, TieRow, TiedProfiles, ids_needed, main_profiles, one_writer_rows, plan_unification,
    split_tie_rows, tie_list, upserted,
};
use crate::rules::{contact_lock_key, realm_of_scope};
use crate::sql::batch::placeholders;
use crate::sql::text::{profile_of_contact_sql, tie_query_sql, upsert_context_sql};
use crate::sql::{Adapter, Query, UpsertCounters, query};

/// How often a transaction that lost a race is retried.
pub(crate) const MAX_RETRIES: u32 = 20;

/// Runs `attempt` until it succeeds or fails for another reason than contention, at most
/// `MAX_RETRIES` times more.
pub(crate) async fn with_retries<T, F, Fut>(mut attempt: F) -> StoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = StoreResult<T>>,
{
    let mut retried = 0;
    loop {
        match attempt().await {
            Err(StoreError::Contention { .. }) if retried < MAX_RETRIES => retried += 1,
            other => return other,
        }
    }
}

/// An upsert inside the caller's write transaction (imports batch many in one).
pub(crate) async fn upsert_in<B: Adapter>(
    conn: &mut B::Conn,
    hub: HubId,
    input: &ContactInput,
    actor: &str,
    now: Millis,
) -> StoreResult<Upserted> {
    reject_nul(input)?;
    B::lock_hub_and_contact(
        conn,
        hub,
        contact_lock_key(hub, input.channel_id, &input.external_id),
    )
    .await?;
    let context = load_upsert_context::<B>(conn, hub, input).await?;
    upsert_locked::<B>(conn, hub, input, context, actor, false, now).await
}

/// The channel, the current unify setting, a block of ids and the stored contact, if any.
pub(crate) async fn load_upsert_context<B: Adapter>(
    conn: &mut B::Conn,
    hub: HubId,
    input: &ContactInput,
) -> StoreResult<UpsertContext> {
    let row = B::fetch_optional(
        conn,
        query(upsert_context_sql::<B>())
            .bind(hub)
            .bind(input.channel_id)
            .bind(input.external_id.as_str()),
    )
    .await?;
    UpsertContext::from_row(row, B::ID_BLOCK_LEN)
}

/// An upsert in a transaction that holds the hub lock (shared) and the contact's key lock,
/// from its first read (`context`, read under those locks), at `now`. With
/// `own_transaction`, the upsert's own transaction ends with its last writes, which carry
/// the commit (PostgreSQL: see `postgres::upsert`).
pub(crate) async fn upsert_locked<B: Adapter>(
    conn: &mut B::Conn,
    hub: HubId,
    input: &ContactInput,
    context: UpsertContext,
    actor: &str,
    own_transaction: bool,
    now: Millis,
) -> StoreResult<Upserted> {
    let mut plan = plan_contact(hub, input, context, now)?;

    // Which live profiles the contact ties to, and through which value; each value's lock is
    // taken with the tie query, before it reads. With one writer, the tie query also reads
    // the stored contact's own profile.
    let own_in_tie_query = !plan.is_new && !B::ROW_LOCKS;
    let key_values: Vec<&(String, String)> = plan.key_values.iter().collect();
    let TiedProfiles {
        tied,
        own,
        mut main,
        locked: tied_locked,
    } = B::lock_values_and_tie(
        conn,
        hub,
        &plan.scope,
        plan.contact_id,
        &key_values,
        std::mem::take(&mut plan.value_locks),
        own_in_tie_query,
    )
    .await?;
    let mut current = match &own {
        _ if plan.is_new => None,
        Some(row) => Some(row.id),
        None if own_in_tie_query => return Err(no_live_profile(plan.contact_id)),
        None => Some(profile_of_contact::<B>(conn, hub, plan.contact_id).await?),
    };
    let mut ties = tie_list(&tied, current);
    let locked = if !B::ROW_LOCKS {
        one_writer_rows(tied, own)
    } else {
        // Profiles the tie query locked already (PostgreSQL, a new contact) need no second
        // round trip.
        let mut prelocked: Option<Vec<ProfileRow>> =
            tied_locked.then(|| tied.into_iter().map(|t| t.profile).collect());
        // Lock the profiles; one merged meanwhile is replaced by its survivor and we lock again.
        loop {
            let mut ids: Vec<ProfileId> =
                ties.iter().map(|t| t.profile_id).chain(current).collect();
            ids.sort_unstable();
            ids.dedup();
            if ids.is_empty() {
                break Vec::new();
            }
            let rows = match prelocked.take() {
                Some(mut rows) if ids.iter().all(|id| rows.iter().any(|r| r.id == *id)) => {
                    rows.retain(|r| ids.contains(&r.id));
                    rows.sort_by_key(|r| r.id);
                    rows.dedup_by_key(|r| r.id);
                    rows
                }
                _ => lock_profiles::<B>(conn, hub, &ids).await?,
            };
            let moved: Vec<(ProfileId, ProfileId)> = rows
                .iter()
                .filter_map(|r| r.merged_into.map(|m| (r.id, m)))
                .collect();
            if moved.is_empty() {
                break rows;
            }
            for (from, to) in moved {
                for t in ties.iter_mut().filter(|t| t.profile_id == from) {
                    t.profile_id = to;
                }
                for m in main.iter_mut().filter(|m| **m == Some(from)) {
                    *m = Some(to);
                }
                // The contact's own profile too: left unmapped, a merged one would be locked
                // again and again.
                if current == Some(from) {
                    current = Some(to);
                }
            }
        }
    };
    let fresh_ids = take_ids::<B>(&mut plan.ids, conn, hub, ids_needed(locked.len())).await?;
    let settled = plan_unification(
        hub, &mut plan, locked, &ties, &main, current, fresh_ids, actor,
    )?;
    B::finish_upsert(
        conn,
        hub,
        realm_of_scope(&plan.scope),
        std::mem::take(&mut plan.batch),
        UpsertCounters {
            next_free_id: plan.ids.next,
            event_seq: plan.event_seq,
            at: plan.now,
        },
        &settled.events,
        own_transaction,
    )
    .await?;
    Ok(upserted(plan, input, settled))
}

/// `n` ids: from the block while it lasts, then from fresh blocks.
pub(crate) async fn take_ids<B: Adapter>(
    block: &mut IdBlock,
    conn: &mut B::Conn,
    hub: HubId,
    n: usize,
) -> StoreResult<Vec<i64>> {
    let mut ids = Vec::with_capacity(n);
    while ids.len() < n {
        if block.next >= block.end {
            block.next = B::next_id(conn, hub).await?;
            block.end = block.next + B::ID_BLOCK_LEN;
        }
        ids.push(block.next);
        block.next += 1;
    }
    Ok(ids)
}

/// A stored contact whose profile the tie query did not find: the store is inconsistent.
pub(crate) fn no_live_profile(contact: ContactId) -> StoreError {
    StoreError::Corrupt(format!("contact {contact} has no live profile"))
}

/// The live profile of a contact.
pub(crate) async fn profile_of_contact<B: Adapter>(
    conn: &mut B::Conn,
    hub: HubId,
    contact: ContactId,
) -> StoreResult<ProfileId> {
    let row: Option<(ProfileId,)> = B::fetch_optional(
        conn,
        query(profile_of_contact_sql::<B>()).bind(hub).bind(contact),
    )
    .await?;
    row.map(|r| r.0).ok_or_else(|| no_live_profile(contact))
}

/// Profile rows by id, read under row locks where writers are concurrent.
pub(crate) async fn lock_profiles<B: Adapter>(
    conn: &mut B::Conn,
    hub: HubId,
    ids: &[ProfileId],
) -> StoreResult<Vec<ProfileRow>> {
    let sql = format!(
        "SELECT id, oldest_contact, member_count, unique_values, merged_into FROM profiles \
         WHERE hub_id = $1 AND id IN ({}) ORDER BY id{}",
        placeholders(2, ids.len()),
        B::FOR_UPDATE
    );
    let query: Query<'_> = ids.iter().fold(query(sql).bind(hub), |q, id| q.bind(*id));
    B::fetch_all(conn, query).await
}

/// The live profiles the contact's unify-key values tie to, each with the first value (in
/// key order) that ties it, and with `own` the contact's own live profile: the tie query,
/// without locks.
pub(crate) async fn tied_profiles<B: Adapter>(
    conn: &mut B::Conn,
    hub: HubId,
    scope: &str,
    contact: ContactId,
    key_values: &[&(String, String)],
    own: bool,
) -> StoreResult<TiedProfiles> {
    if key_values.is_empty() && !own {
        return Ok(TiedProfiles::default());
    }
    let mut q = query(tie_query_sql::<B>(key_values.len(), own))
        .bind(hub)
        .bind(scope)
        .bind(contact);
    for (f, v) in key_values {
        q = q.bind(f.as_str()).bind(v.as_str());
    }
    let rows: Vec<(i64, i64, i64, i64, i64, String)> = B::fetch_all(conn, q).await?;
    let rows: Vec<TieRow> = rows.into_iter().map(TieRow::unlocked).collect();
    let main = main_profiles(&rows, key_values.len());
    let (tied, own) = split_tie_rows(rows, key_values);
    Ok(TiedProfiles {
        tied,
        own,
        main,
        locked: false,
    })
}
