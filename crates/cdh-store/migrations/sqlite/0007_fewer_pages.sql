-- Fewer B-tree pages per upsert. Every page a write transaction changes is a 4 KiB frame
-- written to the WAL at commit, and those writes were the largest part of an upsert's time
-- (about 25 pages for a new contact).
--
-- 1. One index finds identifiers by value: (hub, field, value, scope) serves the tie query,
--    which gives all four, and the lookups, which give field and value. Each identifier row
--    was a leaf in two such indexes.
-- 2. identifiers, memberships and events become WITHOUT ROWID: a rowid table with a composite
--    primary key is two B-trees (the rows, and the key's index), without rowid it is one.
--    Their rows are small. contacts (large rows, which a WITHOUT ROWID table would copy into
--    its interior pages) and profiles (which profile_overrides references, so it cannot be
--    rebuilt with foreign keys on) stay as they are.
--
-- Each table is rebuilt under a new name, filled in key order, and renamed; nothing
-- references these three, so the rename touches no other table.

CREATE TABLE identifiers_new (
    hub_id INTEGER NOT NULL,
    contact_id INTEGER NOT NULL,
    field TEXT NOT NULL,
    value TEXT NOT NULL,
    scope TEXT NOT NULL,
    PRIMARY KEY (hub_id, contact_id, field),
    FOREIGN KEY (hub_id, contact_id) REFERENCES contacts (hub_id, id)
) WITHOUT ROWID;
INSERT INTO identifiers_new (hub_id, contact_id, field, value, scope)
    SELECT hub_id, contact_id, field, value, scope FROM identifiers
    ORDER BY hub_id, contact_id, field;
DROP TABLE identifiers;
ALTER TABLE identifiers_new RENAME TO identifiers;
CREATE INDEX identifiers_by_value ON identifiers (hub_id, field, value, scope);

CREATE TABLE memberships_new (
    hub_id INTEGER NOT NULL,
    contact_id INTEGER NOT NULL,
    bucket_id INTEGER NOT NULL,
    PRIMARY KEY (hub_id, contact_id),
    FOREIGN KEY (hub_id, contact_id) REFERENCES contacts (hub_id, id)
) WITHOUT ROWID;
INSERT INTO memberships_new (hub_id, contact_id, bucket_id)
    SELECT hub_id, contact_id, bucket_id FROM memberships ORDER BY hub_id, contact_id;
DROP TABLE memberships;
ALTER TABLE memberships_new RENAME TO memberships;
CREATE INDEX memberships_by_bucket ON memberships (hub_id, bucket_id, contact_id);

CREATE TABLE events_new (
    hub_id INTEGER NOT NULL REFERENCES hubs (hub_id),
    seq INTEGER NOT NULL,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    profile_id INTEGER NOT NULL,
    payload TEXT NOT NULL,
    PRIMARY KEY (hub_id, seq)
) WITHOUT ROWID;
INSERT INTO events_new (hub_id, seq, at, kind, profile_id, payload)
    SELECT hub_id, seq, at, kind, profile_id, payload FROM events ORDER BY hub_id, seq;
DROP TABLE events;
ALTER TABLE events_new RENAME TO events;
