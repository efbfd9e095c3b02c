-- The console finds profiles by the start of a contact's name. This expression index holds each
-- contact's display name trimmed and lower-cased (SQLite's lower() folds ASCII letters only), so
-- a search is a range scan from the typed prefix, in (name, id) order, and stops after a page.
-- The expression must stay identical to `name_key_sql` in src/shared/name_search.rs, or the
-- planner cannot use the index. Writes are unchanged: the index follows `fields`.
CREATE INDEX contacts_by_name ON contacts (
    hub_id,
    lower(trim(json_extract(fields, '$.display_name.value'))),
    id
);
