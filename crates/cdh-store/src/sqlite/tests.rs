//! Unit tests of the SQLite adapter: statements made positional, and the plans SQLite picks
//! on a database that has never been analyzed.

mod batch_tests {
    use super::super::positional_into;
    use crate::sql::Arg;

    fn value(arg: &Arg) -> String {
        match arg {
            Arg::Int(i) => i.to_string(),
            Arg::Text(t) => t.clone(),
            Arg::NullInt | Arg::NullText => "NULL".to_owned(),
        }
    }

    #[test]
    fn placeholders_become_positional_with_their_arguments_in_order() {
        let first = [Arg::from(7), Arg::from("a"), Arg::from(9)];
        let second = [Arg::from("x"), Arg::from("y")];
        let mut sql = String::new();
        let mut bound = Vec::new();
        positional_into(
            &mut sql,
            &mut bound,
            "UPDATE t SET a = $3 WHERE h = $1 AND b = $1",
            &first,
        );
        sql.push(';');
        positional_into(
            &mut sql,
            &mut bound,
            "INSERT INTO t VALUES ($2, 'x$', $1)",
            &second,
        );
        assert_eq!(
            sql,
            "UPDATE t SET a = ? WHERE h = ? AND b = ?;INSERT INTO t VALUES (?, 'x$', ?)"
        );
        let values: Vec<String> = bound.into_iter().map(value).collect();
        assert_eq!(values, ["9", "7", "7", "y", "x"]);
    }
}

mod planner_tests {
    use super::super::SqliteStore;
    use crate::sql::text::{explain, to_live_profile};
    use crate::sql::{Backend, Dialect, query};

    /// How SQLite plans `sql` on `store`'s read connections, one line per step.
    async fn plan(store: &SqliteStore, sql: &str) -> Vec<String> {
        let mut q = query(explain::<SqliteStore>(sql)).bind(1_i64);
        if sql.contains("$2") {
            q = q.bind(2_i64);
        }
        let mut conn = store.acquire().await.unwrap();
        SqliteStore::explain(&mut conn, q).await.unwrap()
    }

    /// A new database has never been analyzed. Without statistics SQLite once joined a
    /// membership to its profile by scanning the hub's profiles through the primary key
    /// (migration 0009) instead of searching it.
    #[tokio::test]
    async fn a_new_database_joins_memberships_to_profiles_by_primary_key() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("hub.db").display());
        let store = SqliteStore::open(&url).await.unwrap();
        let live_profile = to_live_profile::<SqliteStore>();
        let ordered_join = SqliteStore::ORDERED_JOIN;
        for sql in [
            // A contact's profile (reads, upserts).
            format!(
                "SELECT p.id FROM memberships m {live_profile} \
                 WHERE m.hub_id = $1 AND m.contact_id = $2"
            ),
            // Every contact's profile (previews).
            format!(
                "SELECT m.contact_id, p.id FROM memberships m {live_profile} WHERE m.hub_id = $1"
            ),
            // The profiles of a key value (lookups).
            format!(
                "SELECT p.id FROM identifiers i {ordered_join} memberships m \
                 ON m.hub_id = i.hub_id AND m.contact_id = i.contact_id {live_profile} \
                 WHERE i.hub_id = $1 AND i.field = 'email' AND i.value = $2"
            ),
        ] {
            let steps = plan(&store, &sql).await;
            let profile_steps: Vec<&String> = steps
                .iter()
                .filter(|s| s.contains(" o ") || s.contains(" p "))
                .collect();
            assert_eq!(
                profile_steps,
                [
                    "SEARCH o USING PRIMARY KEY (hub_id=? AND id=?)",
                    "SEARCH p USING PRIMARY KEY (hub_id=? AND id=?)"
                ],
                "{sql}: {steps:?}"
            );
        }
    }
}
