-- Console users: people who sign in to the web console with an email and a password.
-- The password is kept only as an argon2 PHC string. As in 0001, hub_id leads every key.

CREATE TABLE console_users (
    hub_id INTEGER NOT NULL,
    id INTEGER NOT NULL,
    organization_id INTEGER NOT NULL,
    email TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'agent')),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (hub_id, id),
    UNIQUE (hub_id, organization_id, email),
    FOREIGN KEY (hub_id, organization_id) REFERENCES organizations (hub_id, id)
);
