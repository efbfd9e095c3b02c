-- Merges refused because they would give a profile two values of a unique field
-- (`customer_id` by default; a realm's setting names its unique fields). See the PostgreSQL
-- migration of the same name.
ALTER TABLE unify_settings ADD COLUMN unique_fields TEXT NOT NULL DEFAULT '["customer_id"]';
ALTER TABLE unify_previews ADD COLUMN unique_fields TEXT NOT NULL DEFAULT '["customer_id"]';
ALTER TABLE profiles ADD COLUMN unique_values TEXT NOT NULL DEFAULT '[]';
UPDATE profiles SET unique_values = COALESCE((
    SELECT json_group_array(json_array(u.field, u.value)) FROM (
        SELECT DISTINCT i.field, i.value FROM profiles b
        JOIN memberships m ON m.hub_id = b.hub_id AND m.bucket_id = b.id
        JOIN identifiers i ON i.hub_id = m.hub_id AND i.contact_id = m.contact_id
        WHERE b.hub_id = profiles.hub_id
          AND (b.id = profiles.id OR b.merged_into = profiles.id)
          AND i.field = 'customer_id') AS u), '[]')
WHERE merged_into IS NULL;

CREATE TABLE conflicts (
    hub_id INTEGER NOT NULL,
    contact_id INTEGER NOT NULL,
    field TEXT NOT NULL,
    scope TEXT NOT NULL,
    value TEXT NOT NULL,
    realm TEXT NOT NULL,
    reason TEXT NOT NULL,
    unique_field TEXT NOT NULL,
    ours TEXT NOT NULL,
    theirs TEXT NOT NULL,
    held_by INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (hub_id, contact_id, field),
    FOREIGN KEY (hub_id, contact_id) REFERENCES contacts (hub_id, id)
) WITHOUT ROWID;
CREATE INDEX conflicts_by_value ON conflicts (hub_id, scope, field, value);
CREATE INDEX conflicts_by_realm ON conflicts (hub_id, realm, contact_id);
