-- Fewer B-tree writes per merge, in upserts and in applies.
--
-- 1. profiles and merge_ledger become WITHOUT ROWID (as identifiers, memberships and events
--    did in 0007): a rowid table with a composite primary key is two B-trees, so every
--    profile read or write by id searched two. profile_overrides references profiles, and
--    with foreign keys on (as migrations run) dropping profiles would first delete its rows
--    and fail on any override: the overrides are set aside while profiles is rebuilt.
-- 2. Only live profiles are listed by `updated_at` (the organization's profile feed reads
--    `merged_into IS NULL`). Indexing just those, a merge drops the absorbed profile's entry
--    instead of moving it.
-- 3. An apply stages its rows in a temporary table of the writer thread's connection, and its
--    profile changes go straight from memory to `profiles` (see `sqlite/apply_write.rs`): the
--    two staging tables go.

CREATE TEMP TABLE overrides_aside AS SELECT * FROM profile_overrides;
DELETE FROM profile_overrides;

CREATE TABLE profiles_new (
    hub_id INTEGER NOT NULL,
    id INTEGER NOT NULL,
    origin_contact INTEGER NOT NULL,
    oldest_contact INTEGER NOT NULL,
    bucket_id INTEGER NOT NULL,
    member_count INTEGER NOT NULL,
    merged_into INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (hub_id, id)
) WITHOUT ROWID;
INSERT INTO profiles_new (hub_id, id, origin_contact, oldest_contact, bucket_id, member_count,
        merged_into, created_at, updated_at)
    SELECT hub_id, id, origin_contact, oldest_contact, bucket_id, member_count, merged_into,
        created_at, updated_at
    FROM profiles ORDER BY hub_id, id;
DROP TABLE profiles;
ALTER TABLE profiles_new RENAME TO profiles;
CREATE INDEX profiles_by_bucket ON profiles (hub_id, bucket_id);
CREATE INDEX profiles_by_merged_into ON profiles (hub_id, merged_into) WHERE merged_into IS NOT NULL;
CREATE INDEX profiles_by_updated_at ON profiles (hub_id, updated_at) WHERE merged_into IS NULL;

INSERT INTO profile_overrides SELECT * FROM temp.overrides_aside;
DROP TABLE temp.overrides_aside;

CREATE TABLE merge_ledger_new (
    hub_id INTEGER NOT NULL REFERENCES hubs (hub_id),
    seq INTEGER NOT NULL,
    at INTEGER NOT NULL,
    survivor_id INTEGER NOT NULL,
    absorbed_ids TEXT NOT NULL,
    key_field TEXT NOT NULL,
    key_value TEXT NOT NULL,
    cause_kind TEXT NOT NULL,
    cause_id TEXT NOT NULL,
    actor TEXT NOT NULL,
    PRIMARY KEY (hub_id, seq)
) WITHOUT ROWID;
INSERT INTO merge_ledger_new (hub_id, seq, at, survivor_id, absorbed_ids, key_field, key_value,
        cause_kind, cause_id, actor)
    SELECT hub_id, seq, at, survivor_id, absorbed_ids, key_field, key_value, cause_kind,
        cause_id, actor
    FROM merge_ledger ORDER BY hub_id, seq;
DROP TABLE merge_ledger;
ALTER TABLE merge_ledger_new RENAME TO merge_ledger;
CREATE INDEX merge_ledger_by_survivor ON merge_ledger (hub_id, survivor_id);

DROP TABLE apply_staging;
DROP TABLE apply_profile_staging;
