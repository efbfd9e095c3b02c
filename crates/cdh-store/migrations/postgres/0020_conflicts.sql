-- Merges refused because they would give a profile two values of a unique field
-- (`customer_id` by default; a realm's setting names its unique fields).
--
-- A profile records the unique values it holds (a JSON array of [field, value] pairs), so an
-- upsert judges a merge from the profile rows it locks anyway. Profiles merged so far hold
-- what their contacts carry now.
ALTER TABLE unify_settings ADD COLUMN unique_fields TEXT NOT NULL DEFAULT '["customer_id"]';
ALTER TABLE unify_previews ADD COLUMN unique_fields TEXT NOT NULL DEFAULT '["customer_id"]';
ALTER TABLE profiles ADD COLUMN unique_values TEXT NOT NULL DEFAULT '[]';
UPDATE profiles p SET unique_values = u.held
    FROM (SELECT b.hub_id, COALESCE(b.merged_into, b.id) AS profile_id,
                 json_agg(DISTINCT jsonb_build_array(i.field, i.value))::text AS held
          FROM profiles b
          JOIN memberships m ON m.hub_id = b.hub_id AND m.bucket_id = b.id
          JOIN identifiers i ON i.hub_id = m.hub_id AND i.contact_id = m.contact_id
          WHERE i.field = 'customer_id'
          GROUP BY b.hub_id, COALESCE(b.merged_into, b.id)) AS u
    WHERE p.hub_id = u.hub_id AND p.id = u.profile_id;

-- A refused carrier: a contact that carries a unify-key value (`field`, `value` in `scope`)
-- but is not in the profile of the value's other carriers, because the two would clash on
-- `unique_field` (`ours` against `theirs`, held by profile `held_by` then). The profiles
-- holding a value are those of its carriers without a row (all in one profile) and those of
-- its rows: what the upsert's tie query reads.
CREATE TABLE conflicts (
    hub_id BIGINT NOT NULL,
    contact_id BIGINT NOT NULL,
    field TEXT NOT NULL,
    scope TEXT NOT NULL,
    value TEXT NOT NULL,
    realm TEXT NOT NULL,
    reason TEXT NOT NULL,
    unique_field TEXT NOT NULL,
    ours TEXT NOT NULL,
    theirs TEXT NOT NULL,
    held_by BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (hub_id, contact_id, field),
    FOREIGN KEY (hub_id, contact_id) REFERENCES contacts (hub_id, id)
);
CREATE INDEX conflicts_by_value ON conflicts (hub_id, scope, field, value);
CREATE INDEX conflicts_by_realm ON conflicts (hub_id, realm, contact_id);
