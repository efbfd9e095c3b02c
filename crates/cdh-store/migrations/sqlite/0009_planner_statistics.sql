-- Statistics for SQLite's query planner, as ANALYZE would gather them on a large hub, for a
-- database that has none (a new one, or one never analyzed).
--
-- Without statistics, SQLite guesses that `hub_id = ?` on a primary key (hub_id, id) finds about
-- ten rows. It then joined a membership to its profile by scanning the hub's profiles through
-- the primary key instead of searching `profiles_by_bucket`: one read per profile of the hub for
-- every contact read, lookup, tie query and preview, so a 20,000-contact preview took ~30 s
-- through the server. The store's benchmark ran ANALYZE after seeding, which hid this.
--
-- Each row is "rows, then rows per distinct value of each leading column": one hub holds every
-- row, and ids, buckets and values are nearly unique. A real ANALYZE (whose figures keep the
-- same shape) replaces them; rows already there are kept.

ANALYZE hubs;

INSERT INTO sqlite_stat1 (tbl, idx, stat)
SELECT v.column1, v.column2, v.column3
FROM (
    VALUES
        ('profiles', 'profiles', '1000000 1000000 1'),
        ('profiles', 'profiles_by_bucket', '1000000 1000000 1'),
        ('profiles', 'profiles_by_merged_into', '500000 500000 2'),
        ('profiles', 'profiles_by_updated_at', '500000 500000 1'),
        ('memberships', 'memberships', '1000000 1000000 1'),
        ('memberships', 'memberships_by_bucket', '1000000 1000000 2 1'),
        ('identifiers', 'identifiers', '3000000 3000000 3 1'),
        ('identifiers', 'identifiers_by_value', '3000000 3000000 1000000 2 1'),
        ('contacts', 'sqlite_autoindex_contacts_1', '1000000 1000000 1'),
        ('contacts', 'sqlite_autoindex_contacts_2', '1000000 1000000 100000 1'),
        ('contacts', 'contacts_by_name', '1000000 1000000 2 1'),
        ('merge_ledger', 'merge_ledger', '1000000 1000000 1'),
        ('merge_ledger', 'merge_ledger_by_survivor', '1000000 1000000 2'),
        ('events', 'events', '1000000 1000000 1'),
        ('timeline_entries', 'sqlite_autoindex_timeline_entries_1', '1000000 1000000 1'),
        ('timeline_entries', 'timeline_by_contact', '1000000 1000000 10 1')
) AS v
WHERE NOT EXISTS (SELECT 1 FROM sqlite_stat1 s WHERE s.tbl = v.column1);

-- This connection reads them now; connections opened later read them when they open.
ANALYZE sqlite_schema;
