//! Running a [`Query`] through sqlx, written once for both databases: each adapter's
//! statement hooks ([`super::Backend::fetch_all`] and the like) call these with its own
//! database type.

use sqlx::{Arguments as _, Database, Encode, Executor, FromRow, IntoArguments, Type};

use super::{Arg, Query};
use crate::error::{StoreError, StoreResult};

type Arguments<'q, DB> = <DB as Database>::Arguments<'q>;

/// The statement's arguments, in order, as the database takes them.
fn arguments<'q, DB>(args: impl IntoIterator<Item = &'q Arg>) -> StoreResult<Arguments<'q, DB>>
where
    DB: Database,
    i64: Encode<'q, DB> + Type<DB>,
    &'q str: Encode<'q, DB> + Type<DB>,
    Option<i64>: Encode<'q, DB> + Type<DB>,
    Option<&'q str>: Encode<'q, DB> + Type<DB>,
{
    let mut arguments = Arguments::<'q, DB>::default();
    for arg in args {
        match arg {
            Arg::Int(value) => arguments.add(*value),
            Arg::Text(value) => arguments.add(value.as_str()),
            Arg::NullInt => arguments.add(None::<i64>),
            Arg::NullText => arguments.add(None::<&str>),
        }
        .map_err(|e| StoreError::Invalid(format!("an argument could not be encoded: {e}")))?;
    }
    Ok(arguments)
}

/// Every row of `query`.
pub(crate) async fn fetch_all<DB, R>(
    conn: &mut DB::Connection,
    query: Query<'_>,
) -> StoreResult<Vec<R>>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> Arguments<'q, DB>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    R: for<'r> FromRow<'r, DB::Row> + Send + Unpin,
{
    let arguments = arguments::<DB>(&query.args)?;
    Ok(sqlx::query_as_with::<DB, R, _>(&query.sql, arguments)
        .fetch_all(conn)
        .await?)
}

/// The first row of `query`, if any.
pub(crate) async fn fetch_optional<DB, R>(
    conn: &mut DB::Connection,
    query: Query<'_>,
) -> StoreResult<Option<R>>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> Arguments<'q, DB>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    R: for<'r> FromRow<'r, DB::Row> + Send + Unpin,
{
    let arguments = arguments::<DB>(&query.args)?;
    Ok(sqlx::query_as_with::<DB, R, _>(&query.sql, arguments)
        .fetch_optional(conn)
        .await?)
}

/// Runs `sql` over `args`; what the database says it did.
pub(crate) async fn execute<'a, DB>(
    conn: &mut DB::Connection,
    sql: &'a str,
    args: impl IntoIterator<Item = &'a Arg>,
) -> StoreResult<DB::QueryResult>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> Arguments<'q, DB>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
{
    let arguments = arguments::<DB>(args)?;
    Ok(sqlx::query_with::<DB, _>(sql, arguments)
        .execute(conn)
        .await?)
}
