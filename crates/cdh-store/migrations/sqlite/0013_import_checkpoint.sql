-- Where a running import stands after its last committed batch (or row), written in the same
-- transaction as that write, so an import resumed after a crash goes on from there: no row
-- written twice, no event sent twice. Cleared when the task ends.
ALTER TABLE tasks ADD COLUMN checkpoint TEXT;
