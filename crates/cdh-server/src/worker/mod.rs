//! The task worker: runs queued tasks (apply, import, export) and delivers webhooks.
//!
//! The store is the queue: a task is a row with a status, so a task queued by a request, or
//! left queued or running by a previous process, is found by [`Store::unfinished_tasks`]. In
//! the background ([`Worker::spawn`]) the worker scans on every [`Worker::notify`] and once a
//! second, runs up to [`MAX_CONCURRENT_TASKS`] tasks at a time, and delivers due webhooks in
//! a loop of its own so a slow receiver never holds up a task (nor a task a delivery). Tests
//! start the server without it and drive the same code with [`Worker::run_until_idle`] and
//! [`Worker::deliver_webhooks_now`]: no sleeping, no timing.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use cdh_store::model::{HubId, Task, TaskId, TaskKind, TaskStatus};
use cdh_store::{ApplyOptions, StoreError, StoreResult};
use tokio::sync::{Notify, watch};
use tokio::task::{JoinHandle, JoinSet};

use crate::metrics::Counter;
use crate::state::AppState;

pub mod export;
pub mod import;
pub mod rate_limit;
pub mod targets;
pub mod webhooks;

/// Tasks run at once by the background worker (the machine has few cores; an apply is heavy).
pub const MAX_CONCURRENT_TASKS: usize = 2;

/// How often the background loops look for work nobody announced (tasks queued by another
/// process, webhook retries coming due, events appended by writes).
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// A handle to the worker; cheap to clone, shared through [`AppState`].
#[derive(Clone, Debug, Default)]
pub struct Worker {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Wakes the background task loop.
    wake_tasks: Notify,
    /// Wakes the background delivery loop.
    wake_deliveries: Notify,
    /// Signalled whenever a task this process runs ends (for `run_until_idle`).
    task_ended: Notify,
    /// Tasks this process is running now.
    running: Mutex<HashSet<(HubId, TaskId)>>,
    /// Whether tasks left `running` by a previous process were taken over already. Only the
    /// first scan takes them: later, a `running` task is one this process runs.
    resumed: Mutex<bool>,
    /// Held through a scan for runnable tasks, so scans do not interleave: otherwise
    /// `run_until_idle` could look while the background loop has taken a task but not yet
    /// marked it running here, and report idle with that task unfinished.
    scanning: tokio::sync::Mutex<()>,
    /// The per-organization limit on import requests.
    import_limiter: rate_limit::RateLimiter,
    /// The webhook client, made at first use. One per worker: a client's pooled
    /// connections belong to the runtime that opened them.
    http: OnceLock<reqwest::Client>,
}

impl Worker {
    /// A worker that has not started yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Says that a task was queued or an event appended: the background loops look now.
    pub fn notify(&self) {
        self.inner.wake_tasks.notify_one();
        self.inner.wake_deliveries.notify_one();
    }

    /// The per-organization limit on `POST /v1/imports`.
    pub fn import_limiter(&self) -> &rate_limit::RateLimiter {
        &self.inner.import_limiter
    }

    /// The client webhook deliveries use; it reaches private addresses only when
    /// `allow_private` (the setting is read once, when the client is first built).
    pub fn http_client(&self, allow_private: bool) -> &reqwest::Client {
        self.inner
            .http
            .get_or_init(|| webhooks::new_client(allow_private))
    }

    /// Starts the background loops; they end when `shutdown` turns true. A task still running
    /// then is dropped mid-way: its transaction rolls back and the next start resumes it.
    pub fn spawn(&self, state: AppState, shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
        let deliveries = tokio::spawn(self.clone().delivery_loop(state.clone(), shutdown.clone()));
        let tasks = self.clone().task_loop(state, shutdown);
        tokio::spawn(async move {
            tasks.await;
            let _ = deliveries.await;
        })
    }

    /// Runs every runnable task in the caller until none is queued or running, including
    /// tasks a previous process left unfinished. For tests, and for tools without the loop.
    pub async fn run_until_idle(&self, state: &AppState) -> StoreResult<()> {
        loop {
            let ended = self.inner.task_ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            let claimed = self.claim_runnable(state, usize::MAX).await?;
            if !claimed.is_empty() {
                for claim in claimed {
                    claim.run(state).await;
                }
                continue;
            }
            if self.lock_running().is_empty() {
                return Ok(());
            }
            // The background loop is running one; wait for it to end and look again.
            ended.await;
        }
    }

    /// Delivers every webhook event due now, once, and returns how many tries were made.
    pub async fn deliver_webhooks_now(&self, state: &AppState) -> StoreResult<usize> {
        webhooks::deliver_due(state).await
    }

    async fn task_loop(self, state: AppState, mut shutdown: watch::Receiver<bool>) {
        let mut running = JoinSet::new();
        let mut poll = tokio::time::interval(POLL_INTERVAL);
        loop {
            let free = MAX_CONCURRENT_TASKS.saturating_sub(running.len());
            if free > 0 {
                match self.claim_runnable(&state, free).await {
                    Ok(claimed) => {
                        for claim in claimed {
                            let state = state.clone();
                            running.spawn(async move { claim.run(&state).await });
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "could not look for queued tasks"),
                }
            }
            export::remove_expired_files(&state).await;
            tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => break,
                _ = self.inner.wake_tasks.notified() => {}
                _ = poll.tick() => {}
                Some(_) = running.join_next(), if !running.is_empty() => {}
            }
        }
        // Dropping a task mid-way rolls its transaction back; it stays unfinished in the
        // store and the next start resumes it.
        running.shutdown().await;
    }

    async fn delivery_loop(self, state: AppState, mut shutdown: watch::Receiver<bool>) {
        let mut poll = tokio::time::interval(POLL_INTERVAL);
        loop {
            tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => break,
                _ = self.inner.wake_deliveries.notified() => {}
                _ = poll.tick() => {}
            }
            // A shutdown in the middle of a delivery drops it unrecorded; the event is sent
            // again at the next start (receivers dedupe by the idempotency key).
            tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => break,
                result = webhooks::deliver_due(&state) => {
                    if let Err(e) = result {
                        tracing::warn!(error = %e, "webhook delivery pass failed");
                    }
                }
            }
        }
    }

    fn lock_running(&self) -> std::sync::MutexGuard<'_, HashSet<(HubId, TaskId)>> {
        self.inner
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes up to `max` tasks to run: queued ones (claimed in the store, so two workers
    /// never run one task), and at the first scan those a previous process left running.
    async fn claim_runnable(&self, state: &AppState, max: usize) -> StoreResult<Vec<Claim>> {
        let _scanning = self.inner.scanning.lock().await;
        let unfinished = state.store.unfinished_tasks().await?;
        let take_over_running = {
            let mut resumed = self
                .inner
                .resumed
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            !std::mem::replace(&mut *resumed, true)
        };
        let mut claimed = Vec::new();
        for (hub, task) in unfinished {
            if claimed.len() >= max {
                break;
            }
            if self.lock_running().contains(&(hub, task.id)) {
                continue;
            }
            let mine = match task.status.as_str() {
                "queued" => state.store.claim_task(hub, task.id).await?,
                "running" => take_over_running,
                _ => false,
            };
            if mine && self.lock_running().insert((hub, task.id)) {
                if task.status == TaskStatus::Running {
                    tracing::info!(%hub, task = %task.id, kind = %task.kind, "resuming a task left running");
                }
                claimed.push(Claim {
                    worker: self.clone(),
                    hub,
                    task,
                });
            }
        }
        Ok(claimed)
    }
}

/// A task this process has taken; ending it (even by dropping) frees its slot.
struct Claim {
    worker: Worker,
    hub: HubId,
    task: Task,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.worker.lock_running().remove(&(self.hub, self.task.id));
        self.worker.inner.task_ended.notify_waiters();
    }
}

/// Counts an ended task in `/metrics` by kind and status as stored (an apply records its own
/// end), and an apply's merges.
async fn count_finished(state: &AppState, hub: HubId, id: TaskId) {
    let Ok(task) = state.store.get_task(hub, id).await else {
        return;
    };
    state.metrics.count(
        Counter::TasksFinished,
        &[task.kind.as_str(), task.status.as_str()],
        1,
    );
    if task.kind == TaskKind::Apply {
        let merges = task
            .result
            .as_ref()
            .and_then(|r| r["merges"].as_u64())
            .unwrap_or(0);
        state.metrics.count(Counter::Merges, &["apply"], merges);
        let conflicts = task
            .result
            .as_ref()
            .and_then(|r| r["conflicts"].as_u64())
            .unwrap_or(0);
        state
            .metrics
            .count(Counter::ConflictsRefused, &["apply"], conflicts);
    }
}

impl Claim {
    /// Runs the task to its end and records the outcome.
    async fn run(self, state: &AppState) {
        let (hub, id, kind) = (self.hub, self.task.id, self.task.kind);
        tracing::info!(%hub, task = %id, %kind, "task started");
        let outcome = match kind {
            TaskKind::Apply => run_apply(state, hub, id).await,
            TaskKind::Import => import::run(state, hub, &self.task).await,
            TaskKind::Export => export::run(state, hub, &self.task).await,
        };
        let recorded = match outcome {
            Ok(Some(result)) => state.store.finish_task(hub, id, Ok(result)).await,
            // The store recorded the outcome itself (an apply).
            Ok(None) => Ok(()),
            Err(TaskError::Failed(why)) => {
                tracing::warn!(%hub, task = %id, %kind, error = %why, "task failed");
                state.store.finish_task(hub, id, Err(why)).await
            }
            Err(TaskError::Store(e)) => {
                tracing::error!(%hub, task = %id, %kind, error = %e, "task failed on the store");
                state
                    .store
                    .finish_task(hub, id, Err(format!("the task could not finish: {e}")))
                    .await
            }
        };
        count_finished(state, hub, id).await;
        match recorded {
            Ok(()) => tracing::info!(%hub, task = %id, %kind, "task ended"),
            Err(e) => {
                tracing::error!(%hub, task = %id, error = %e, "could not record a task's end")
            }
        }
    }
}

/// Why a task did not succeed.
#[derive(Debug)]
pub enum TaskError {
    /// The task's own failure, told to the caller as the task's `error`.
    Failed(String),
    /// The store failed under the task.
    Store(StoreError),
}

impl From<StoreError> for TaskError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// What a task kind's runner returns: the task's result, or `None` when the store already
/// recorded the end.
pub type TaskOutcome = Result<Option<serde_json::Value>, TaskError>;

async fn run_apply(state: &AppState, hub: HubId, id: TaskId) -> TaskOutcome {
    // `run_apply` records progress, success and failure on the task itself.
    state
        .store
        .run_apply(hub, id, &ApplyOptions::default())
        .await?;
    Ok(None)
}
