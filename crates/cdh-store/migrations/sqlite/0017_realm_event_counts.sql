-- An index of events by realm cost a third of the one-writer upsert rate (an entry per event,
-- BENCHMARKS.md): the feed now scans a hub's events by their primary key, a bounded number of
-- rows per page, and keeps its realms' (`ops/feed.rs`); an apply learns that a realm was
-- written since its snapshot from the hub's last event number in a hub of one organization,
-- and in a hub of several from a count per realm, as on PostgreSQL, kept by every write that
-- appends events (`sqlite::count_realm_events`).
DROP INDEX events_by_realm;
INSERT INTO realms (hub_id, realm, cross_product, numbered_events)
    SELECT DISTINCT e.hub_id, e.realm, 0, 0 FROM events e
    WHERE e.realm <> ''
      AND NOT EXISTS (SELECT 1 FROM realms r WHERE r.hub_id = e.hub_id AND r.realm = e.realm);
UPDATE realms SET numbered_events = (SELECT count(*) FROM events e
    WHERE e.hub_id = realms.hub_id AND e.realm = realms.realm);
