-- An apply's staging rows are scratch: a run that does not reach its swap leaves them to be
-- cleared by the next run, and the swap reads them inside its own transaction. They need no
-- write-ahead log: a crash of the server empties unlogged tables, which loses nothing an
-- apply needs (it starts over), and 1M staged rows no longer go through the WAL twice (written,
-- then deleted).
ALTER TABLE apply_staging SET UNLOGGED;
ALTER TABLE apply_profile_staging SET UNLOGGED;
