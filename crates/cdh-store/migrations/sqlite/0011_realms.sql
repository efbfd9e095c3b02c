-- Organizations are separate until a partner connects them. Until now a hub (a brand) had one
-- unify setting, one cross-product switch, one list of previews and applies and one events
-- feed, which every organization of the brand read and changed. Each now belongs to a realm:
-- 'o<organization>' for an organization on its own, 'g<connection>' for the organizations a
-- partner connection joined (the same names contacts' scopes begin with). As everywhere, the
-- hub id leads every key.

CREATE TABLE realms (
    hub_id INTEGER NOT NULL REFERENCES hubs (hub_id),
    realm TEXT NOT NULL,
    cross_product INTEGER NOT NULL DEFAULT 0,
    -- Kept by PostgreSQL's event numbering; SQLite's one writer needs no count (its realms'
    -- last event numbers tell an apply it went stale).
    numbered_events INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (hub_id, realm)
) WITHOUT ROWID;
INSERT INTO realms (hub_id, realm, cross_product)
    SELECT o.hub_id, 'o' || o.id, h.cross_product
    FROM organizations o JOIN hubs h ON h.hub_id = o.hub_id;
INSERT INTO realms (hub_id, realm, cross_product)
    SELECT c.hub_id, 'g' || c.id, h.cross_product
    FROM partner_connections c JOIN hubs h ON h.hub_id = c.hub_id;

-- A connection's organizations unify together from the first apply of their shared setting;
-- connections made before this migration already did.
ALTER TABLE partner_connections ADD COLUMN unified_at INTEGER;
UPDATE partner_connections SET unified_at = created_at;

-- Settings: the hub's history becomes every realm's, so nothing changes for stored contacts.
CREATE TABLE unify_settings_new (
    hub_id INTEGER NOT NULL REFERENCES hubs (hub_id),
    realm TEXT NOT NULL,
    version INTEGER NOT NULL,
    keys TEXT NOT NULL,
    excluded TEXT NOT NULL,
    actor TEXT NOT NULL,
    task_id INTEGER,
    applied_at INTEGER NOT NULL,
    PRIMARY KEY (hub_id, realm, version)
);
INSERT INTO unify_settings_new (hub_id, realm, version, keys, excluded, actor, task_id, applied_at)
    SELECT s.hub_id, r.realm, s.version, s.keys, s.excluded, s.actor, s.task_id, s.applied_at
    FROM unify_settings s JOIN realms r ON r.hub_id = s.hub_id;
DROP TABLE unify_settings;
ALTER TABLE unify_settings_new RENAME TO unify_settings;

-- Previews hold values of contacts (samples, suspicious values); the hub-wide ones go.
DELETE FROM unify_previews;
ALTER TABLE unify_previews ADD COLUMN realm TEXT NOT NULL DEFAULT '';

-- An apply belongs to its realm (imports and exports already name their organization). A
-- hub-wide apply of a hub with one organization becomes that organization's; in a hub with
-- several, it is nobody's.
ALTER TABLE tasks ADD COLUMN realm TEXT;
UPDATE tasks SET realm = (SELECT 'o' || min(o.id) FROM organizations o WHERE o.hub_id = tasks.hub_id)
    WHERE kind = 'apply'
      AND (SELECT count(*) FROM organizations o WHERE o.hub_id = tasks.hub_id) = 1;
-- An organization's task list reads its own tasks and its realms' applies, newest first.
CREATE INDEX tasks_by_organization ON tasks (hub_id, organization_id, id);
CREATE INDEX tasks_by_realm ON tasks (hub_id, realm, id);

-- Events: the realm of the write that caused them. In a hub of one organization that is the
-- organization; elsewhere the realm the profile's first contact unifies in (a merged range of
-- such a hub has no profile, and is nobody's).
ALTER TABLE events ADD COLUMN realm TEXT NOT NULL DEFAULT '';
UPDATE events SET realm = (SELECT 'o' || min(o.id) FROM organizations o WHERE o.hub_id = events.hub_id)
    WHERE (SELECT count(*) FROM organizations x WHERE x.hub_id = events.hub_id) = 1;
UPDATE events SET realm = coalesce((
    SELECT CASE WHEN instr(c.scope, ':') > 0 THEN substr(c.scope, 1, instr(c.scope, ':') - 1)
                ELSE c.scope END
    FROM profiles p JOIN contacts c ON c.hub_id = p.hub_id AND c.id = p.origin_contact
    WHERE p.hub_id = events.hub_id AND p.id = events.profile_id), '')
    WHERE realm = '';
-- The feed of an organization reads its realms' events in order.
CREATE INDEX events_by_realm ON events (hub_id, realm, seq);
