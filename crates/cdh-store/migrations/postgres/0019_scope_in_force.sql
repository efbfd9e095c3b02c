-- The cross-product switch takes effect with the apply that follows it, as a partner
-- connection does: each applied setting records the switch it was applied with, and the
-- upsert unifies in the scope of the realm's last applied setting. Until then the contacts'
-- stored scopes are the old ones, and a new contact scoped by the new switch would find none
-- of them. Settings applied before this migration take the switch as it is now.
ALTER TABLE unify_settings ADD COLUMN cross_product BIGINT NOT NULL DEFAULT 0;
UPDATE unify_settings s SET cross_product = r.cross_product
    FROM realms r WHERE r.hub_id = s.hub_id AND r.realm = s.realm;
