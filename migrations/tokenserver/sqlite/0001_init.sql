-- Tokenserver schema with Mozilla's table and column names (syncstorage-rs / the Python
-- tokenserver), so existing data and admin tooling carry over. Plain SQL apart from the
-- AUTOINCREMENT that keeps uids from ever being reused (PostgreSQL: an identity column).

CREATE TABLE services (
    id INTEGER PRIMARY KEY,
    service VARCHAR(30) NOT NULL UNIQUE,
    pattern VARCHAR(128)
);

INSERT INTO services (id, service, pattern) VALUES (1, 'sync-1.5', '{node}/1.5/{uid}');

CREATE TABLE nodes (
    id INTEGER PRIMARY KEY,
    service INTEGER NOT NULL,
    node VARCHAR(255) NOT NULL,
    available INTEGER NOT NULL,
    current_load INTEGER NOT NULL,
    capacity INTEGER NOT NULL,
    downed INTEGER NOT NULL,
    backoff INTEGER NOT NULL,
    UNIQUE (service, node)
);

CREATE TABLE users (
    uid INTEGER PRIMARY KEY AUTOINCREMENT,
    service INTEGER NOT NULL,
    email VARCHAR(255) NOT NULL,
    generation BIGINT NOT NULL,
    client_state VARCHAR(32) NOT NULL,
    created_at BIGINT NOT NULL,
    replaced_at BIGINT,
    nodeid BIGINT NOT NULL,
    keys_changed_at BIGINT
);

CREATE INDEX lookup_idx ON users (email, service, created_at);
CREATE INDEX replaced_at_idx ON users (service, replaced_at);
CREATE INDEX node_idx ON users (nodeid);
