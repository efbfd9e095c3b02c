-- What the Profile API adds: stored previews, manual profile overrides, one active import or
-- export per organization, and webhook endpoints with their delivery log.
-- As in 0001, hub_id leads every primary key, unique index and foreign key.

CREATE TABLE unify_previews (
    hub_id INTEGER NOT NULL REFERENCES hubs (hub_id),
    id INTEGER NOT NULL,
    keys TEXT NOT NULL,
    excluded TEXT NOT NULL,
    report TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (hub_id, id)
);

-- A manual edit of a merged field (value NULL clears it); it wins until a member writes the
-- field again (a member value updated later than the override).
CREATE TABLE profile_overrides (
    hub_id INTEGER NOT NULL,
    profile_id INTEGER NOT NULL,
    field TEXT NOT NULL,
    value TEXT,
    actor TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (hub_id, profile_id, field),
    FOREIGN KEY (hub_id, profile_id) REFERENCES profiles (hub_id, id)
);

ALTER TABLE tasks ADD COLUMN organization_id INTEGER;
-- At most one queued or running import (and one export) per organization.
CREATE UNIQUE INDEX tasks_one_active_per_org ON tasks (hub_id, organization_id, kind)
    WHERE organization_id IS NOT NULL AND status IN ('queued', 'running');
CREATE INDEX tasks_unfinished ON tasks (hub_id, id) WHERE status IN ('queued', 'running');

-- An endpoint delivers the hub's events in order, one at a time: delivered_seq is the last
-- event done with; attempt and next_attempt_at describe the try of the next one.
CREATE TABLE webhook_endpoints (
    hub_id INTEGER NOT NULL,
    id INTEGER NOT NULL,
    organization_id INTEGER NOT NULL,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    delivered_seq INTEGER NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 1,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (hub_id, id),
    FOREIGN KEY (hub_id, organization_id) REFERENCES organizations (hub_id, id)
);

CREATE TABLE webhook_deliveries (
    hub_id INTEGER NOT NULL,
    endpoint_id INTEGER NOT NULL,
    event_seq INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    status INTEGER,
    error TEXT,
    at INTEGER NOT NULL,
    next_attempt_at INTEGER,
    PRIMARY KEY (hub_id, endpoint_id, event_seq, attempt),
    FOREIGN KEY (hub_id, endpoint_id) REFERENCES webhook_endpoints (hub_id, id)
);
