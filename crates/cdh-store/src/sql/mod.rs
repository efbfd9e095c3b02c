//! The contract between the shared operations and a database adapter, and the small query
//! layer the shared operations are written in.
//!
//! The operations of [`crate::port`] are written once, in `ops/`, generic over [`Adapter`].
//! An adapter (`sqlite/`, `postgres/`) implements its parts, each in the module of its
//! concern:
//!
//! | trait | what | SQLite | PostgreSQL |
//! | --- | --- | --- | --- |
//! | [`Dialect`] | SQL text that differs | `sqlite` | `postgres` |
//! | [`Backend`] | connections, transactions, statements, ids | `sqlite` | `postgres` |
//! | [`Upserts`] | the auto-unifying upsert | `sqlite::writer` | `postgres::upsert` |
//! | [`EventNumbers`] | numbering events in commit order | `sqlite` | `postgres::events` |
//! | [`ApplyWrites`] | an apply's big reads, staging and swap | `sqlite::apply_write` | `postgres::apply` |
//!
//! A statement is a [`Query`]: SQL with `$n` placeholders and its [`Arg`]s, decoded into any
//! [`Row`] (a tuple, or a struct deriving `sqlx::FromRow`).

pub(crate) mod batch;
pub(crate) mod exec;
pub(crate) mod gates;
pub(crate) mod text;

use std::borrow::Cow;
use std::future::Future;
use std::ops::{DerefMut, Range};
use std::sync::Arc;

use crate::clock::Clock;
use crate::error::{Resource, StoreError, StoreResult};
use crate::model::{ContactId, ContactInput, HubId, Millis, TaskId, UnifySetting, Upserted};
use crate::plan::apply::{ApplyPlan, ContactProfileRow, KeyValuesRow};
use crate::plan::unify::{NewEvent, TiedProfiles};

pub(crate) use batch::{Arg, WriteBatch};

/// SQL text that differs between the databases. Everything else is written once.
pub(crate) trait Dialect {
    /// How a join is written where the written order must be kept: SQLite's planner has no
    /// statistics on a fresh database and, every index leading with `hub_id`, may start from
    /// the wrong table (`CROSS JOIN` keeps the order); PostgreSQL plans from statistics.
    const ORDERED_JOIN: &'static str;
    /// Appended to a read that locks the rows it reads (PostgreSQL's concurrent writers);
    /// empty where one writer holds the database.
    const FOR_UPDATE: &'static str;
    /// Whether writers run concurrently and must re-read profile rows under row locks.
    const ROW_LOCKS: bool;
    /// An expression over `hubs h` that hands out the first id of a block.
    const ID_BLOCK_SQL: &'static str;
    /// How many ids one `ID_BLOCK_SQL` hands out.
    const ID_BLOCK_LEN: i64;
    /// An expression over the hub `$1` that every contact write in the realm `{realm}` (a
    /// placeholder the caller replaces with a realm's key) changes, and nothing else does: an
    /// apply and a preview of a realm can tell from it that they went stale, and writes of
    /// other realms leave them be (`ops::realms::realm_written_sql`).
    const REALM_WRITTEN: &'static str;
    /// The prefix that makes the database describe its plan instead of running a statement.
    const EXPLAIN: &'static str;
    /// A contact's name key exactly as the `contacts_by_name` index holds it (migration 0006).
    const NAME_KEY: &'static str;
}

/// Connections, transactions and statements: what every shared operation runs on.
pub(crate) trait Backend: Dialect + Clone + Send + Sync + 'static {
    /// A connection of the database.
    type Conn: Send;
    /// A connection borrowed from the store's read pool.
    type Pooled: DerefMut<Target = Self::Conn> + Send;
    /// An open transaction; dropped without [`Backend::commit`], it rolls back.
    type Tx: DerefMut<Target = Self::Conn> + Send;

    /// The clock every stored time comes from.
    fn clock(&self) -> &Clock;
    /// The hubs' gates an apply's last try closes to hold contact writes off (`gates`).
    fn apply_gates(&self) -> &gates::ApplyGates;

    /// A connection of the read pool, outside any explicit transaction.
    fn acquire(&self) -> impl Future<Output = StoreResult<Self::Pooled>> + Send;
    /// A transaction that writes.
    fn begin_write(&self) -> impl Future<Output = StoreResult<Self::Tx>> + Send;
    /// A read-only transaction that sees one snapshot throughout.
    fn begin_snapshot(&self) -> impl Future<Output = StoreResult<Self::Tx>> + Send;
    /// Commits a transaction.
    fn commit(tx: Self::Tx) -> impl Future<Output = StoreResult<()>> + Send;

    /// Every row of a statement.
    fn fetch_all<R: Row>(
        conn: &mut Self::Conn,
        query: Query<'_>,
    ) -> impl Future<Output = StoreResult<Vec<R>>> + Send;
    /// The first row of a statement, if any.
    fn fetch_optional<R: Row>(
        conn: &mut Self::Conn,
        query: Query<'_>,
    ) -> impl Future<Output = StoreResult<Option<R>>> + Send;
    /// Runs a statement; the number of rows it changed.
    fn execute(
        conn: &mut Self::Conn,
        query: Query<'_>,
    ) -> impl Future<Output = StoreResult<u64>> + Send;
    /// The plan the database picks for a statement (already prefixed with `EXPLAIN`), one
    /// line per step.
    fn explain(
        conn: &mut Self::Conn,
        query: Query<'_>,
    ) -> impl Future<Output = StoreResult<Vec<String>>> + Send;
    /// Runs queued statements in order, in as few round trips as the database allows.
    fn run_batch(
        conn: &mut Self::Conn,
        batch: WriteBatch,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// One fresh id of the hub.
    fn next_id(conn: &mut Self::Conn, hub: HubId) -> impl Future<Output = StoreResult<i64>> + Send;
    /// `n` fresh ids of the hub, in increasing order.
    fn next_ids(
        conn: &mut Self::Conn,
        hub: HubId,
        n: usize,
    ) -> impl Future<Output = StoreResult<Vec<i64>>> + Send;
    /// Takes the hub's lock shared (an apply's swap takes it exclusively).
    fn lock_hub_shared(
        conn: &mut Self::Conn,
        hub: HubId,
    ) -> impl Future<Output = StoreResult<()>> + Send;
}

/// The auto-unifying upsert: the generic path (`ops::upsert`) runs on these hooks, and
/// [`Upserts::upsert`] is the adapter's own way to run one upsert start to finish.
pub(crate) trait Upserts: Backend {
    /// Takes the hub's lock shared and the lock on one contact's key.
    fn lock_hub_and_contact(
        conn: &mut Self::Conn,
        hub: HubId,
        contact_key: i64,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Takes the locks on a contact's unify-key values and reads the live profiles they tie
    /// to (see `text::tie_query_sql`), and with `own` the contact's own live profile.
    #[allow(clippy::too_many_arguments)]
    fn lock_values_and_tie(
        conn: &mut Self::Conn,
        hub: HubId,
        scope: &str,
        contact: ContactId,
        key_values: &[&(String, String)],
        value_locks: Vec<i64>,
        own: bool,
    ) -> impl Future<Output = StoreResult<TiedProfiles>> + Send;
    /// Ends an upsert: its queued writes, the hub's counters, its events (of `realm`), and
    /// with `commit` the commit of the upsert's own transaction.
    fn finish_upsert(
        conn: &mut Self::Conn,
        hub: HubId,
        realm: &str,
        batch: WriteBatch,
        counters: UpsertCounters,
        events: &[NewEvent],
        commit: bool,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// One auto-unifying upsert, start to finish, retried when it lost a race.
    fn upsert(
        &self,
        hub: HubId,
        input: &ContactInput,
        actor: &str,
    ) -> impl Future<Output = StoreResult<Upserted>> + Send;
}

/// Event numbers in commit order: where writers run concurrently, their events wait
/// unnumbered until a reader or a numbering writer numbers them.
pub(crate) trait EventNumbers: Backend {
    /// Numbers the hub's committed pending events into the feed, inside the caller's
    /// transaction.
    fn move_pending_events(
        conn: &mut Self::Conn,
        hub: HubId,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Moves committed pending events into the feed, for one hub or for every hub.
    fn sequence_events(&self, hub: Option<HubId>) -> impl Future<Output = StoreResult<()>> + Send;
}

/// An apply's writes (see `ops::unification` for its phases).
pub(crate) trait ApplyWrites: Backend {
    /// The apply's two big reads, seeing at least what `snapshot` sees: every contact with
    /// its live profile, and every contact's values of the (up to three) keys.
    fn read_contacts_and_keys(
        &self,
        snapshot: &mut Self::Tx,
        hub: HubId,
        key_names: [&str; 3],
    ) -> impl Future<Output = StoreResult<(Vec<ContactProfileRow>, Vec<KeyValuesRow>)>> + Send;
    /// Clears what an earlier run of an apply task left staged.
    fn start_staging(
        &self,
        hub: HubId,
        task: TaskId,
        plan: &Arc<ApplyPlan>,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Stages `rows` of the plan and records them as done, in a transaction of their own.
    fn stage_batch(
        &self,
        hub: HubId,
        task: TaskId,
        plan: &Arc<ApplyPlan>,
        rows: Range<usize>,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// The one transaction that makes an apply visible: fails with `Conflict` when contacts
    /// were written since the plan's snapshot.
    fn swap_in(
        &self,
        hub: HubId,
        task: TaskId,
        setting: &UnifySetting,
        actor: &str,
        plan: &Arc<ApplyPlan>,
    ) -> impl Future<Output = StoreResult<()>> + Send;
}

/// A whole adapter: every part the shared operations need.
pub(crate) trait Adapter: Upserts + EventNumbers + ApplyWrites {}

impl<T: Upserts + EventNumbers + ApplyWrites> Adapter for T {}

/// What an upsert read of the hub's counters and leaves for [`Upserts::finish_upsert`]: the
/// next free id and the last event number (kept by SQLite's one writer), and the time.
#[derive(Clone, Copy, Debug)]
pub(crate) struct UpsertCounters {
    pub next_free_id: i64,
    pub event_seq: i64,
    pub at: Millis,
}

/// A type a statement's rows decode into, on either database: a tuple, or a struct deriving
/// `sqlx::FromRow` (whose fields are matched to columns by name).
pub(crate) trait Row:
    for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
    + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
    + Send
    + Unpin
    + 'static
{
}

impl<T> Row for T where
    T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
        + Send
        + Unpin
        + 'static
{
}

/// A statement and its arguments, `$1` being the first.
#[derive(Debug)]
pub(crate) struct Query<'a> {
    pub sql: Cow<'a, str>,
    pub args: Vec<Arg>,
}

/// A statement with no arguments yet.
pub(crate) fn query<'a>(sql: impl Into<Cow<'a, str>>) -> Query<'a> {
    Query {
        sql: sql.into(),
        args: Vec::new(),
    }
}

impl Query<'_> {
    /// Binds the next argument.
    pub fn bind(mut self, arg: impl Into<Arg>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// The statement with its text owned.
    pub fn into_owned(self) -> Query<'static> {
        Query {
            sql: Cow::Owned(self.sql.into_owned()),
            args: self.args,
        }
    }
}

/// The only row of a statement that must find one; `NotFound(missing)` when it finds none.
pub(crate) async fn fetch_one<B: Backend, R: Row>(
    conn: &mut B::Conn,
    query: Query<'_>,
    missing: Resource,
) -> StoreResult<R> {
    B::fetch_optional(conn, query)
        .await?
        .ok_or(StoreError::NotFound(missing))
}
