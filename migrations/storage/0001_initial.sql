-- Storage schema v1: one file per user, so no user column anywhere.
-- auto_vacuum only takes effect on a new, empty file: it is set here, before any table.
PRAGMA auto_vacuum = INCREMENTAL;

-- Collections that currently exist (written and not deleted), with their last-modified (ms).
CREATE TABLE collections (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    modified INTEGER NOT NULL
);

-- Basic storage objects. expiry is NULL for "never"; payload_size caches the UTF-8 length.
CREATE TABLE bso (
    collection INTEGER NOT NULL,
    id TEXT NOT NULL,
    sortindex INTEGER,
    modified INTEGER NOT NULL,
    payload TEXT NOT NULL,
    payload_size INTEGER NOT NULL,
    expiry INTEGER,
    UNIQUE (collection, id)
);
CREATE INDEX bso_modified ON bso (collection, modified);
CREATE INDEX bso_expiry ON bso (expiry) WHERE expiry IS NOT NULL;

-- Uncommitted batch uploads; ids are random so they cannot be guessed or reused.
CREATE TABLE batches (
    id INTEGER PRIMARY KEY,
    collection TEXT NOT NULL,
    created INTEGER NOT NULL,
    total_records INTEGER NOT NULL DEFAULT 0,
    total_bytes INTEGER NOT NULL DEFAULT 0
);

-- Pending items of a batch; NULL means "field not sent" (merged field by field on append).
CREATE TABLE batch_items (
    batch INTEGER NOT NULL,
    id TEXT NOT NULL,
    sortindex INTEGER,
    payload TEXT,
    payload_size INTEGER,
    ttl INTEGER,
    PRIMARY KEY (batch, id)
);

-- Single-value state: high_water = largest write timestamp ever issued (never reset);
-- storage_modified = the storage last-modified (reset to 0 by DELETE /storage).
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO meta (key, value) VALUES ('high_water', 0), ('storage_modified', 0);
