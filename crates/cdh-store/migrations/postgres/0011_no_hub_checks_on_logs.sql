-- The append-only logs no longer reference `hubs`. PostgreSQL checks a foreign key row by row,
-- with a trigger that also locks the referenced row (FOR KEY SHARE): a 1M apply's 750k ledger
-- rows spent ~2.7 s of its ~22 s in those checks, and every upsert paid one per event. Every
-- path that writes these rows reads its hub first (an upsert's context joins `hubs`, an apply
-- reads the hub's setting) and hubs are never deleted, so the checks could never fail.
ALTER TABLE merge_ledger DROP CONSTRAINT IF EXISTS merge_ledger_hub_id_fkey;
ALTER TABLE pending_events DROP CONSTRAINT IF EXISTS pending_events_hub_id_fkey;
ALTER TABLE events DROP CONSTRAINT IF EXISTS events_hub_id_fkey;
