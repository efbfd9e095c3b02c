//! Upserts from concurrent callers, several to a transaction.
//!
//! Many clients sending one-contact transactions keep both cores busy, most of it in
//! PostgreSQL parsing, planning and starting each upsert's dozen statements, not in their
//! rows. So callers hand their upserts to a few workers (`upsert_workers`). A worker takes
//! what is waiting (up to `MAX_BATCH`) and runs it in one transaction of three round trips, as
//! one upsert takes: the locks and every contact's context in one query; the value locks and
//! one tie query for all their values; then their writes, one multi-row statement per table
//! where the statements allow, with the events and the commit (`batch_sql`). Each caller gets
//! its own result after the commit. A lone upsert (one sequential client) runs in its
//! caller's task.
//!
//! Only independent upserts share a transaction: new contacts (an update goes alone), none
//! sharing a contact, a unify-key value or a profile with an earlier one in the batch. The
//! rest, and every upsert of a batch whose transaction failed, then run one by one, in order.
//! Locks are taken in the lone upsert's order (hub, contacts sorted, values sorted, profiles
//! by id), so batches and lone upserts wait for one another but do not deadlock.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::sync::{mpsc, oneshot};

use super::PgStore;
use super::batch_sql::{begin_batch, grouped_writes, lock_values_and_tie_batch};
use super::upsert::{UpsertTx, upsert_attempt};
use crate::clock::Clock;
use crate::error::{StoreError, StoreResult};
use crate::model::{ContactInput, HubId, Upserted};
use crate::ops::upsert::{take_ids, with_retries};
use crate::plan::contact::{ContactPlan, UpsertContext, plan_contact, reject_nul};
use crate::plan::unify::{
    NewEvent, Settled, ids_needed, main_profiles, one_writer_rows, plan_unification, tie_list,
    tied_rows, upserted,
};
use crate::rules::{contact_lock_key, realm_of_scope};
use crate::sql::gates::ApplyGates;
use crate::sql::{Backend, Dialect};

/// How many workers run the upserts callers hand over: one per core here, at least two, at
/// most eight. Each holds one connection while it runs a batch. On two cores, two ran many
/// clients' upserts fastest: three or four contend for the cores, one leaves a core idle
/// (BENCHMARKS.md).
fn upsert_workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8))
}

/// The most upserts one transaction takes.
const MAX_BATCH: usize = 32;

/// An upsert handed to the workers, with where its result goes.
pub(super) struct UpsertRequest {
    pub hub: HubId,
    pub input: ContactInput,
    pub actor: String,
    pub reply: oneshot::Sender<StoreResult<Upserted>>,
}

/// The store's side of the workers: where upserts go, and how many are under way.
#[derive(Clone, Debug)]
pub(super) struct UpsertWorkers {
    queue: mpsc::UnboundedSender<UpsertRequest>,
    in_flight: Arc<AtomicUsize>,
}

/// One upsert counted as under way until dropped (also when its caller gives up on it).
pub(super) struct InFlight<'a> {
    count: &'a AtomicUsize,
    /// Whether no other upsert was under way when this one began.
    pub alone: bool,
}

impl<'a> InFlight<'a> {
    fn enter(count: &'a AtomicUsize) -> Self {
        let alone = count.fetch_add(1, Ordering::AcqRel) == 0;
        Self { count, alone }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What became of one upsert of a batch.
enum BatchOutcome {
    /// Its result, committed with the batch (or refused before it wrote anything).
    Done(StoreResult<Upserted>),
    /// Not in the batch: it runs on its own after it.
    Alone,
}

impl PgStore {
    /// Upserts several contacts, sharing transactions where they are independent: the same
    /// results as upserting them one by one, in order.
    pub async fn upsert_contacts(
        &self,
        hub: HubId,
        inputs: &[ContactInput],
        actor: &str,
    ) -> Vec<StoreResult<Upserted>> {
        let mut answers = Vec::with_capacity(inputs.len());
        let mut requests = Vec::with_capacity(inputs.len());
        for input in inputs {
            let (reply, answer) = oneshot::channel();
            requests.push(UpsertRequest {
                hub,
                input: input.clone(),
                actor: actor.to_owned(),
                reply,
            });
            answers.push(answer);
        }
        for chunk in chunks_of(requests, MAX_BATCH) {
            self.run_hub_upserts(hub, chunk).await;
        }
        let mut results = Vec::with_capacity(answers.len());
        for answer in answers {
            results.push(answer.await.unwrap_or_else(|_| Err(worker_gone())));
        }
        results
    }

    /// How many upserts committed in a transaction shared with others, since the store opened.
    pub fn batched_upserts(&self) -> u64 {
        self.batched.load(Ordering::Relaxed)
    }

    /// An upsert alone, retried on contention.
    pub(super) async fn upsert_with_retry(
        &self,
        hub: HubId,
        input: &ContactInput,
        actor: &str,
    ) -> StoreResult<Upserted> {
        reject_nul(input)?;
        with_retries(|| upsert_attempt(self, hub, input, actor)).await
    }

    /// Runs requests the workers took, a batch per hub.
    async fn run_upserts(&self, mut requests: Vec<UpsertRequest>) {
        while let Some(hub) = requests.first().map(|r| r.hub) {
            let (same_hub, rest) = requests.into_iter().partition(|r| r.hub == hub);
            requests = rest;
            self.run_hub_upserts(hub, same_hub).await;
        }
    }

    /// Runs one hub's requests: the independent ones in one transaction, then the others one
    /// by one; every request is answered.
    async fn run_hub_upserts(&self, hub: HubId, requests: Vec<UpsertRequest>) {
        let outcomes = if requests.len() < 2 {
            None
        } else {
            // A batch that failed wrote nothing: its upserts run alone, which retries them.
            self.upsert_batch(hub, &requests).await.ok()
        };
        let mut outcomes = outcomes.unwrap_or_default().into_iter();
        let mut alone = Vec::new();
        for request in requests {
            match outcomes.next() {
                Some(BatchOutcome::Done(result)) => {
                    let _ = request.reply.send(result);
                }
                Some(BatchOutcome::Alone) | None => alone.push(request),
            }
        }
        for request in alone {
            let result = self
                .upsert_with_retry(request.hub, &request.input, &request.actor)
                .await;
            let _ = request.reply.send(result);
        }
    }

    /// One transaction for as many of `requests` as are independent; an outcome per request.
    async fn upsert_batch(
        &self,
        hub: HubId,
        requests: &[UpsertRequest],
    ) -> StoreResult<Vec<BatchOutcome>> {
        let mut outcomes: Vec<BatchOutcome> =
            requests.iter().map(|_| BatchOutcome::Alone).collect();
        // An upsert of a contact an earlier one writes must see that write: it goes alone.
        let mut contacts = HashSet::new();
        let mut chosen = Vec::new();
        for (i, request) in requests.iter().enumerate() {
            let input = &request.input;
            if let Err(e) = reject_nul(input) {
                outcomes[i] = BatchOutcome::Done(Err(e));
            } else if contacts.insert(contact_lock_key(hub, input.channel_id, &input.external_id)) {
                chosen.push(i);
            }
        }
        let mut tx = UpsertTx {
            conn: self.pool.acquire().await?,
            open: true,
        };
        let now = self.clock().now();
        match batch_in(&mut tx.conn, hub, requests, &chosen, &mut outcomes, now).await {
            Ok(n_batched) => {
                tx.open = false;
                self.batched.fetch_add(n_batched, Ordering::Relaxed);
                Ok(outcomes)
            }
            Err(e) => {
                tx.rollback().await;
                Err(e)
            }
        }
    }
}

/// Starts the upsert workers over `pool`; they stop when the last store that can reach them
/// is dropped.
pub(super) fn start_upsert_workers(
    pool: &sqlx::PgPool,
    batched: &Arc<AtomicU64>,
    clock: &Clock,
    apply_gates: &Arc<ApplyGates>,
) -> UpsertWorkers {
    let (queue, receiver) = mpsc::unbounded_channel();
    let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
    for _ in 0..upsert_workers() {
        let store = PgStore {
            pool: pool.clone(),
            workers: None,
            batched: batched.clone(),
            clock: clock.clone(),
            apply_gates: apply_gates.clone(),
        };
        tokio::spawn(upsert_worker(store, receiver.clone()));
    }
    UpsertWorkers {
        queue,
        in_flight: Arc::new(AtomicUsize::new(0)),
    }
}

impl UpsertWorkers {
    /// Counts an upsert as under way until the guard is dropped; the guard says whether it is
    /// alone (no other was under way when it began).
    pub(super) fn enter(&self) -> InFlight<'_> {
        InFlight::enter(&self.in_flight)
    }

    /// Hands an upsert to the workers, to share a transaction, and waits for its result.
    pub(super) async fn hand_over(
        &self,
        hub: HubId,
        input: &ContactInput,
        actor: &str,
    ) -> StoreResult<Upserted> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(UpsertRequest {
                hub,
                input: input.clone(),
                actor: actor.to_owned(),
                reply,
            })
            .map_err(|_| worker_gone())?;
        answer.await.map_err(|_| worker_gone())?
    }
}

/// A worker: takes what callers handed over, up to `MAX_BATCH`, and runs it.
async fn upsert_worker(
    store: PgStore,
    receiver: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<UpsertRequest>>>,
) {
    loop {
        let mut requests = Vec::new();
        {
            let mut receiver = receiver.lock().await;
            let Some(first) = receiver.recv().await else {
                return;
            };
            requests.push(first);
            while requests.len() < MAX_BATCH {
                match receiver.try_recv() {
                    Ok(request) => requests.push(request),
                    Err(_) => break,
                }
            }
        }
        store.run_upserts(requests).await;
    }
}

fn worker_gone() -> StoreError {
    StoreError::Unavailable {
        cause: "the store's upsert workers have stopped".to_owned(),
    }
}

/// `items` in runs of at most `n`.
fn chunks_of<T>(items: Vec<T>, n: usize) -> Vec<Vec<T>> {
    let mut chunks: Vec<Vec<T>> = Vec::new();
    for item in items {
        match chunks.last_mut() {
            Some(chunk) if chunk.len() < n => chunk.push(item),
            _ => chunks.push(vec![item]),
        }
    }
    chunks
}

/// The batch's transaction on `conn`, from its `BEGIN` to its commit, over the requests at
/// `chosen`, at `now`: fills their outcomes and returns how many it wrote.
async fn batch_in(
    conn: &mut sqlx::PgConnection,
    hub: HubId,
    requests: &[UpsertRequest],
    chosen: &[usize],
    outcomes: &mut [BatchOutcome],
    now: crate::model::Millis,
) -> StoreResult<u64> {
    let contexts = begin_batch(conn, hub, requests, chosen).await?;
    let mut plans: Vec<(usize, ContactPlan)> = Vec::new();
    let mut values = HashSet::new();
    for (&i, row) in chosen.iter().zip(contexts) {
        let context = match UpsertContext::from_row(row, PgStore::ID_BLOCK_LEN) {
            Ok(context) => context,
            Err(e) => {
                outcomes[i] = BatchOutcome::Done(Err(e));
                continue;
            }
        };
        if context.existing.is_some() {
            continue;
        }
        let plan = match plan_contact(hub, &requests[i].input, context, now) {
            Ok(plan) => plan,
            Err(e) => {
                outcomes[i] = BatchOutcome::Done(Err(e));
                continue;
            }
        };
        // One sharing a value with an earlier one would tie to what that one writes.
        if plan.value_locks.iter().any(|k| values.contains(k)) {
            continue;
        }
        values.extend(plan.value_locks.iter().copied());
        plans.push((i, plan));
    }

    let ties = lock_values_and_tie_batch(conn, hub, &plans).await?;
    let mut profiles = HashSet::new();
    let mut writes = Vec::new();
    // Events in runs of one realm (the batch's upserts may be of several organizations).
    let mut events: Vec<(String, Vec<NewEvent>)> = Vec::new();
    let mut done = Vec::new();
    for ((i, mut plan), rows) in plans.into_iter().zip(ties) {
        let key_values: Vec<&(String, String)> = plan.key_values.iter().collect();
        let main = main_profiles(&rows, key_values.len());
        let tied = tied_rows(rows, &key_values);
        // A profile merged while the tie query waited for it is followed by a lone upsert;
        // one an earlier upsert of the batch changes is read again by one.
        if tied
            .iter()
            .any(|t| t.profile.merged_into.is_some() || profiles.contains(&t.profile.id))
        {
            continue;
        }
        profiles.extend(tied.iter().map(|t| t.profile.id));
        let ties = tie_list(&tied, None);
        let locked = one_writer_rows(tied, None);
        let fresh_ids =
            take_ids::<PgStore>(&mut plan.ids, conn, hub, ids_needed(locked.len())).await?;
        let settled: Settled = plan_unification(
            hub,
            &mut plan,
            locked,
            &ties,
            &main,
            None,
            fresh_ids,
            &requests[i].actor,
        )?;
        writes.push(std::mem::take(&mut plan.batch));
        let realm = realm_of_scope(&plan.scope);
        match events.last_mut() {
            Some((last, run)) if last == realm => run.extend(settled.events.iter().cloned()),
            _ => events.push((realm.to_owned(), settled.events.clone())),
        }
        done.push((i, plan, settled));
    }

    let mut sql = grouped_writes(&writes)?;
    for (realm, run) in events.iter().filter(|(_, run)| !run.is_empty()) {
        super::events::events_statement_into(&mut sql, hub, realm, run, now)?;
    }
    sql.push_str("COMMIT;\n");
    sqlx::Executor::execute(&mut *conn, sql.as_str()).await?;
    let n_batched = done.len() as u64;
    for (i, plan, settled) in done {
        outcomes[i] = BatchOutcome::Done(Ok(upserted(plan, &requests[i].input, settled)));
    }
    Ok(n_batched)
}
