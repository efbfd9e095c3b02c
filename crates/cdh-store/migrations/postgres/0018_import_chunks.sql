-- An import's rows leave the tasks table for chunks of their own (one write batch each):
-- a task's progress and checkpoint, updated after every batch, no longer rewrite a row that
-- carries up to 32 MiB, and the worker reads one chunk at a time. A chunk is deleted when its
-- import ends. A queued or running import's rows move into one chunk (the reader takes chunks
-- of any size).
CREATE TABLE import_chunks (
    hub_id BIGINT NOT NULL,
    task_id BIGINT NOT NULL,
    chunk BIGINT NOT NULL,
    n_rows BIGINT NOT NULL,
    rows_text TEXT NOT NULL,
    PRIMARY KEY (hub_id, task_id, chunk),
    FOREIGN KEY (hub_id, task_id) REFERENCES tasks (hub_id, id) ON DELETE CASCADE
);
INSERT INTO import_chunks (hub_id, task_id, chunk, n_rows, rows_text)
    SELECT hub_id, id, 0, jsonb_array_length(rows_text::jsonb), rows_text FROM tasks
    WHERE rows_text IS NOT NULL AND status IN ('queued', 'running');
ALTER TABLE tasks DROP COLUMN rows_text;
