-- The hub's schema. The hub is the tenant: hub_id leads every primary key, unique index and
-- foreign key so that every table can be distributed by hub_id on Citus (docs/scale-out.md).
-- Times are milliseconds since the Unix epoch (BIGINT) so both backends store the same thing.

-- Per-hub ids (contacts, profiles, ...) come from one sequence: cheap, never contended, and
-- increasing, so a contact id is also its age.
CREATE SEQUENCE cdh_ids;

CREATE TABLE hubs (
    hub_id BIGINT NOT NULL,
    name TEXT NOT NULL,
    cross_product BIGINT NOT NULL DEFAULT 0,
    next_id BIGINT NOT NULL DEFAULT 1,
    event_seq BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (hub_id)
);

CREATE TABLE organizations (
    hub_id BIGINT NOT NULL REFERENCES hubs (hub_id),
    id BIGINT NOT NULL,
    name TEXT NOT NULL,
    default_region TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (hub_id, id)
);

CREATE TABLE partner_connections (
    hub_id BIGINT NOT NULL REFERENCES hubs (hub_id),
    id BIGINT NOT NULL,
    disclosure_url TEXT NOT NULL,
    actor TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (hub_id, id)
);

CREATE TABLE connection_members (
    hub_id BIGINT NOT NULL,
    connection_id BIGINT NOT NULL,
    organization_id BIGINT NOT NULL,
    PRIMARY KEY (hub_id, connection_id, organization_id),
    UNIQUE (hub_id, organization_id),
    FOREIGN KEY (hub_id, connection_id) REFERENCES partner_connections (hub_id, id),
    FOREIGN KEY (hub_id, organization_id) REFERENCES organizations (hub_id, id)
);

CREATE TABLE channels (
    hub_id BIGINT NOT NULL,
    id BIGINT NOT NULL,
    organization_id BIGINT NOT NULL,
    channel_type TEXT NOT NULL,
    product TEXT NOT NULL,
    name TEXT NOT NULL,
    external_account_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (hub_id, id),
    FOREIGN KEY (hub_id, organization_id) REFERENCES organizations (hub_id, id)
);

CREATE TABLE contacts (
    hub_id BIGINT NOT NULL,
    id BIGINT NOT NULL,
    channel_id BIGINT NOT NULL,
    external_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    fields TEXT NOT NULL,
    tags TEXT NOT NULL,
    custom_fields TEXT NOT NULL,
    invalid_fields TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (hub_id, id),
    UNIQUE (hub_id, channel_id, external_id),
    FOREIGN KEY (hub_id, channel_id) REFERENCES channels (hub_id, id)
);

-- Valid, unblocked, normalised identifier values; the lookup index for unification.
CREATE TABLE identifiers (
    hub_id BIGINT NOT NULL,
    contact_id BIGINT NOT NULL,
    field TEXT NOT NULL,
    value TEXT NOT NULL,
    scope TEXT NOT NULL,
    PRIMARY KEY (hub_id, contact_id, field),
    FOREIGN KEY (hub_id, contact_id) REFERENCES contacts (hub_id, id)
);
CREATE INDEX identifiers_by_value ON identifiers (hub_id, scope, field, value);

-- Memberships point at a bucket rather than a profile, so a merge moves the smaller side's
-- rows and the survivor adopts the larger bucket: no merge rewrites the larger profile.
CREATE TABLE profiles (
    hub_id BIGINT NOT NULL,
    id BIGINT NOT NULL,
    origin_contact BIGINT NOT NULL,
    oldest_contact BIGINT NOT NULL,
    bucket_id BIGINT NOT NULL,
    member_count BIGINT NOT NULL,
    merged_into BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (hub_id, id)
);
CREATE INDEX profiles_by_bucket ON profiles (hub_id, bucket_id);
CREATE INDEX profiles_by_merged_into ON profiles (hub_id, merged_into);
CREATE INDEX profiles_by_updated_at ON profiles (hub_id, updated_at);

CREATE TABLE memberships (
    hub_id BIGINT NOT NULL,
    contact_id BIGINT NOT NULL,
    bucket_id BIGINT NOT NULL,
    PRIMARY KEY (hub_id, contact_id),
    FOREIGN KEY (hub_id, contact_id) REFERENCES contacts (hub_id, id)
);
CREATE INDEX memberships_by_bucket ON memberships (hub_id, bucket_id, contact_id);

CREATE TABLE unify_settings (
    hub_id BIGINT NOT NULL REFERENCES hubs (hub_id),
    version BIGINT NOT NULL,
    keys TEXT NOT NULL,
    excluded TEXT NOT NULL,
    actor TEXT NOT NULL,
    task_id BIGINT,
    applied_at BIGINT NOT NULL,
    PRIMARY KEY (hub_id, version)
);

-- Append-only: one row per merge (a survivor absorbing profiles through one key value).
CREATE TABLE merge_ledger (
    hub_id BIGINT NOT NULL REFERENCES hubs (hub_id),
    seq BIGINT NOT NULL,
    at BIGINT NOT NULL,
    survivor_id BIGINT NOT NULL,
    absorbed_ids TEXT NOT NULL,
    key_field TEXT NOT NULL,
    key_value TEXT NOT NULL,
    cause_kind TEXT NOT NULL,
    cause_id TEXT NOT NULL,
    actor TEXT NOT NULL,
    PRIMARY KEY (hub_id, seq)
);
CREATE INDEX merge_ledger_by_survivor ON merge_ledger (hub_id, survivor_id);

-- Notes and conversation records, attached to their channel contact.
CREATE TABLE timeline_entries (
    hub_id BIGINT NOT NULL,
    id BIGINT NOT NULL,
    contact_id BIGINT NOT NULL,
    kind TEXT NOT NULL,
    text TEXT NOT NULL,
    author TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (hub_id, id),
    FOREIGN KEY (hub_id, contact_id) REFERENCES contacts (hub_id, id)
);
CREATE INDEX timeline_by_contact ON timeline_entries (hub_id, contact_id, at);

CREATE TABLE tasks (
    hub_id BIGINT NOT NULL REFERENCES hubs (hub_id),
    id BIGINT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    done BIGINT NOT NULL DEFAULT 0,
    total BIGINT NOT NULL DEFAULT 0,
    params TEXT NOT NULL,
    result TEXT,
    error TEXT,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT,
    PRIMARY KEY (hub_id, id)
);

-- Only a hash of the secret; tokens are found by (hub_id, id), both carried in the token.
CREATE TABLE api_tokens (
    hub_id BIGINT NOT NULL,
    id BIGINT NOT NULL,
    organization_id BIGINT NOT NULL,
    name TEXT NOT NULL,
    scopes TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT,
    PRIMARY KEY (hub_id, id),
    FOREIGN KEY (hub_id, organization_id) REFERENCES organizations (hub_id, id)
);

CREATE TABLE events (
    hub_id BIGINT NOT NULL REFERENCES hubs (hub_id),
    seq BIGINT NOT NULL,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    profile_id BIGINT NOT NULL,
    payload TEXT NOT NULL,
    PRIMARY KEY (hub_id, seq)
);

-- Rows an apply task computed, written in batches before the one swap transaction.
CREATE TABLE apply_staging (
    hub_id BIGINT NOT NULL,
    task_id BIGINT NOT NULL,
    contact_id BIGINT NOT NULL,
    bucket_id BIGINT,
    scope TEXT,
    PRIMARY KEY (hub_id, task_id, contact_id)
);
