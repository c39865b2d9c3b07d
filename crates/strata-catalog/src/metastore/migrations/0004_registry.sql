-- Strata metastore, version 4: the schema registry (Confluent Schema Registry semantics),
-- contracts binding a registry subject to a bronze table, and push-ingest idempotency keys.

-- One row per distinct schema (kind, text and references): its global id. Ids come from
-- AUTOINCREMENT, so an id is never handed out twice, even after a hard delete; IMPORT mode
-- inserts the id it is given.
CREATE TABLE registry_schemas (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    schema_type TEXT NOT NULL CHECK (schema_type IN ('AVRO', 'JSON')),
    schema      TEXT NOT NULL,
    refs        TEXT NOT NULL DEFAULT '[]',
    fingerprint TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL
) STRICT;

-- The versions of each subject. A soft delete sets `deleted`; a hard delete removes the row
-- (the schema row stays, so its id is not reused).
CREATE TABLE registry_versions (
    subject    TEXT NOT NULL,
    version    INTEGER NOT NULL CHECK (version >= 1),
    schema_id  INTEGER NOT NULL REFERENCES registry_schemas (id),
    deleted    INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1)),
    created_at TEXT NOT NULL,
    PRIMARY KEY (subject, version)
) STRICT;

CREATE INDEX registry_versions_schema ON registry_versions (schema_id);

-- Compatibility levels: subject '' is the global level (BACKWARD when absent).
CREATE TABLE registry_config (
    subject       TEXT NOT NULL PRIMARY KEY,
    compatibility TEXT NOT NULL CHECK (compatibility IN ('BACKWARD', 'BACKWARD_TRANSITIVE',
                  'FORWARD', 'FORWARD_TRANSITIVE', 'FULL', 'FULL_TRANSITIVE', 'NONE'))
) STRICT;

-- Modes: subject '' is the global mode (READWRITE when absent).
CREATE TABLE registry_mode (
    subject TEXT NOT NULL PRIMARY KEY,
    mode    TEXT NOT NULL CHECK (mode IN ('READWRITE', 'READONLY', 'READONLY_OVERRIDE', 'IMPORT'))
) STRICT;

-- A contract: the registry subject whose latest version every ingest into the bronze table
-- is checked against.
CREATE TABLE contracts (
    table_id     TEXT NOT NULL PRIMARY KEY,
    subject      TEXT NOT NULL,
    on_violation TEXT NOT NULL CHECK (on_violation IN ('quarantine', 'fail')),
    bound_at     TEXT NOT NULL
) STRICT;

-- Push ingest: an Idempotency-Key maps to the batch its first request landed, and to the
-- response that request got, so a retry lands nothing and answers the same.
CREATE TABLE idempotency_keys (
    table_id   TEXT NOT NULL,
    key        TEXT NOT NULL,
    batch_id   INTEGER NOT NULL,
    response   TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (table_id, key)
) STRICT;
