-- An import's rows leave its params for a column of their own that only the worker reads:
-- reading a task (its status page, the task list) no longer parses up to 32 MiB of rows, and
-- the worker reads them a batch at a time. Dropped when the task ends, as before.
ALTER TABLE tasks ADD COLUMN rows_text TEXT;
UPDATE tasks SET rows_text = (params::jsonb -> 'rows')::text, params = (params::jsonb - 'rows')::text
    WHERE kind = 'import' AND params::jsonb ? 'rows';
UPDATE tasks SET rows_text = NULL WHERE status NOT IN ('queued', 'running');
