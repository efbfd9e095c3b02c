-- One index finds identifiers by value: (hub, field, value, scope) serves the tie query, which
-- gives all four, and the lookups, which give field and value. Each identifier row was an
-- entry in two such indexes, written (and WAL-logged) on every upsert.
DROP INDEX identifiers_by_value;
DROP INDEX identifiers_by_field_value;
CREATE INDEX identifiers_by_value ON identifiers (hub_id, field, value, scope);
