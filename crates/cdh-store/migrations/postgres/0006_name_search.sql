-- The console finds profiles by the start of a contact's name. This expression index holds each
-- contact's display name trimmed and lower-cased under the "C" collation: lower() then folds
-- ASCII letters only (as on SQLite) and the order is byte order, so the range
-- [prefix, next prefix) is exactly the names starting with the prefix. A search is a range scan
-- in (name, id) order and stops after a page. The expression must stay identical to
-- `name_key_sql` in src/shared/name_search.rs, or the planner cannot use the index.
-- Writes are unchanged: the index follows `fields`.
CREATE INDEX contacts_by_name ON contacts (
    hub_id,
    (lower(trim(fields::jsonb -> 'display_name' ->> 'value') COLLATE "C")),
    id
);
