-- Lookup of profiles by a key value (GET /v1/profiles?display_email=...) names the field and
-- the value but not the scope, so `identifiers_by_value` (hub, scope, field, value) could not
-- serve it and the lookup scanned the hub's identifiers.
CREATE INDEX identifiers_by_field_value ON identifiers (hub_id, field, value);
