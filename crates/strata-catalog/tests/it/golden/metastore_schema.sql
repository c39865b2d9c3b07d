-- index flow_runs_flow
CREATE INDEX flow_runs_flow ON flow_runs (pipeline, flow, started_at);

-- index ingest_files_hash
CREATE INDEX ingest_files_hash ON ingest_files (table_id, content_hash);

-- index ingest_runs_table
CREATE INDEX ingest_runs_table ON ingest_runs (table_id, started_at);

-- index lineage_target
CREATE INDEX lineage_target ON lineage (target_table);

-- index pipeline_runs_pipeline
CREATE INDEX pipeline_runs_pipeline ON pipeline_runs (pipeline, started_at);

-- index quality_results_table
CREATE INDEX quality_results_table ON quality_results (table_name, evaluated_at);

-- index registry_versions_schema
CREATE INDEX registry_versions_schema ON registry_versions (schema_id);

-- index tables_dropped_name
CREATE INDEX tables_dropped_name ON tables (catalog, schema, name, dropped_at)
    WHERE state = 'dropped';

-- index tables_live_name
CREATE UNIQUE INDEX tables_live_name ON tables (catalog, schema, name) WHERE state <> 'dropped';

-- index tables_state
CREATE INDEX tables_state ON tables (state);

-- index tags_tag
CREATE INDEX tags_tag ON tags (tag);

-- table catalogs
CREATE TABLE catalogs (
    name       TEXT NOT NULL PRIMARY KEY,
    created_at TEXT NOT NULL
) STRICT;

-- table column_comments
CREATE TABLE column_comments (
    table_id    TEXT NOT NULL REFERENCES tables (table_id) ON DELETE CASCADE,
    column_name TEXT NOT NULL CHECK (column_name <> ''),
    comment     TEXT NOT NULL,
    PRIMARY KEY (table_id, column_name)
) STRICT;

-- table contracts
CREATE TABLE contracts (
    table_id     TEXT NOT NULL PRIMARY KEY,
    subject      TEXT NOT NULL,
    on_violation TEXT NOT NULL CHECK (on_violation IN ('quarantine', 'fail')),
    bound_at     TEXT NOT NULL
) STRICT;

-- table erasures
CREATE TABLE erasures (
    erasure_id    TEXT NOT NULL PRIMARY KEY,
    table_id      TEXT NOT NULL,
    table_name    TEXT NOT NULL,
    predicate     TEXT NOT NULL,
    reason        TEXT NOT NULL,
    rows_deleted  INTEGER NOT NULL,
    files_deleted INTEGER NOT NULL,
    versions      TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(versions)),
    erased_at     TEXT NOT NULL
) STRICT;

-- table flow_refresh
CREATE TABLE flow_refresh (
    pipeline  TEXT NOT NULL,
    flow      TEXT NOT NULL,
    reason    TEXT NOT NULL,
    marked_at TEXT NOT NULL,
    PRIMARY KEY (pipeline, flow)
) STRICT;

-- table flow_runs
CREATE TABLE flow_runs (
    run_id           TEXT NOT NULL,
    flow             TEXT NOT NULL,
    pipeline         TEXT NOT NULL,
    target           TEXT NOT NULL,
    status           TEXT NOT NULL
                     CHECK (status IN ('running', 'succeeded', 'failed', 'skipped',
                                       'upstream_failed')),
    started_at       TEXT NOT NULL,
    finished_at      TEXT,
    rows_read        INTEGER NOT NULL DEFAULT 0,
    rows_written     INTEGER NOT NULL DEFAULT 0,
    rows_quarantined INTEGER NOT NULL DEFAULT 0,
    rows_dropped     INTEGER NOT NULL DEFAULT 0,
    -- {"<source table>": [from, to]}
    source_versions  TEXT NOT NULL DEFAULT '{}'
                     CHECK (json_valid(source_versions)
                            AND json_type(source_versions) = 'object'),
    target_version   INTEGER,
    unmapped_columns TEXT NOT NULL DEFAULT '[]'
                     CHECK (json_valid(unmapped_columns)
                            AND json_type(unmapped_columns) = 'array'),
    samples          TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(samples)),
    error            TEXT,
    definition       TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(definition)),
    PRIMARY KEY (run_id, flow)
) STRICT;

-- table idempotency_keys
CREATE TABLE idempotency_keys (
    table_id   TEXT NOT NULL,
    key        TEXT NOT NULL,
    batch_id   INTEGER NOT NULL,
    response   TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (table_id, key)
) STRICT;

-- table ingest_batches
CREATE TABLE ingest_batches (
    table_id           TEXT NOT NULL,
    batch_id           INTEGER NOT NULL CHECK (batch_id > 0),
    run_id             TEXT NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('pending', 'committed', 'reverted')),
    version            INTEGER,
    quarantine_version INTEGER,
    records            INTEGER NOT NULL DEFAULT 0,
    quarantined        INTEGER NOT NULL DEFAULT 0,
    created_at         TEXT NOT NULL,
    committed_at       TEXT,
    PRIMARY KEY (table_id, batch_id)
) STRICT;

-- table ingest_files
CREATE TABLE ingest_files (
    table_id     TEXT NOT NULL,
    file_uri     TEXT NOT NULL,
    batch_id     INTEGER NOT NULL CHECK (batch_id >= 0),
    run_id       TEXT NOT NULL,
    size         INTEGER NOT NULL,
    modified_at  TEXT NOT NULL,
    content_hash TEXT,
    first_record INTEGER NOT NULL,
    records      INTEGER NOT NULL,
    complete     INTEGER NOT NULL CHECK (complete IN (0, 1)),
    status       TEXT NOT NULL
                 CHECK (status IN ('pending', 'landed', 'reverted', 'changed', 'duplicate_content',
                                   'skipped_duplicate')),
    landed_at    TEXT,
    PRIMARY KEY (table_id, file_uri, batch_id)
) STRICT;

-- table ingest_leases
CREATE TABLE ingest_leases (
    table_id     TEXT NOT NULL PRIMARY KEY,
    holder       TEXT NOT NULL,
    acquired_at  TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL,
    expires_at   TEXT NOT NULL
) STRICT;

-- table ingest_runs
CREATE TABLE ingest_runs (
    run_id                  TEXT NOT NULL PRIMARY KEY,
    table_id                TEXT NOT NULL,
    table_name              TEXT NOT NULL,
    source                  TEXT NOT NULL,
    status                  TEXT NOT NULL
                            CHECK (status IN ('running', 'succeeded', 'failed', 'abandoned')),
    started_at              TEXT NOT NULL,
    heartbeat_at            TEXT NOT NULL,
    finished_at             TEXT,
    files_seen              INTEGER NOT NULL DEFAULT 0,
    files_skipped           INTEGER NOT NULL DEFAULT 0,
    files_landed            INTEGER NOT NULL DEFAULT 0,
    duplicate_content_files INTEGER NOT NULL DEFAULT 0,
    files_changed           INTEGER NOT NULL DEFAULT 0,
    records_read            INTEGER NOT NULL DEFAULT 0,
    records_landed          INTEGER NOT NULL DEFAULT 0,
    records_rescued         INTEGER NOT NULL DEFAULT 0,
    records_corrupt         INTEGER NOT NULL DEFAULT 0,
    records_quarantined     INTEGER NOT NULL DEFAULT 0,
    bytes_read              INTEGER NOT NULL DEFAULT 0,
    first_version           INTEGER,
    last_version            INTEGER,
    samples                 TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(samples)),
    error                   TEXT
) STRICT;

-- table lineage
CREATE TABLE lineage (
    source_table TEXT NOT NULL,
    target_table TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('ingest', 'flow', 'ctas', 'view')),
    pipeline     TEXT NOT NULL DEFAULT '',
    flow         TEXT NOT NULL DEFAULT '',
    first_seen   TEXT NOT NULL,
    last_seen    TEXT NOT NULL,
    PRIMARY KEY (source_table, target_table, kind, pipeline, flow)
) STRICT;

-- table pipeline_runs
CREATE TABLE pipeline_runs (
    run_id      TEXT NOT NULL PRIMARY KEY,
    pipeline    TEXT NOT NULL,
    trigger     TEXT NOT NULL CHECK (trigger IN ('manual', 'schedule', 'backfill', 'replay')),
    status      TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'aborted')),
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    error       TEXT
) STRICT;

-- table quality_results
CREATE TABLE quality_results (
    run_id       TEXT NOT NULL,
    pipeline     TEXT,
    flow         TEXT,
    table_name   TEXT NOT NULL,
    rule         TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('row', 'table')),
    action       TEXT NOT NULL,
    rows_checked INTEGER NOT NULL,
    rows_failed  INTEGER NOT NULL,
    passed       INTEGER NOT NULL CHECK (passed IN (0, 1)),
    observed     TEXT,
    evaluated_at TEXT NOT NULL
) STRICT;

-- table registry_config
CREATE TABLE registry_config (
    subject       TEXT NOT NULL PRIMARY KEY,
    compatibility TEXT NOT NULL CHECK (compatibility IN ('BACKWARD', 'BACKWARD_TRANSITIVE',
                  'FORWARD', 'FORWARD_TRANSITIVE', 'FULL', 'FULL_TRANSITIVE', 'NONE'))
) STRICT;

-- table registry_mode
CREATE TABLE registry_mode (
    subject TEXT NOT NULL PRIMARY KEY,
    mode    TEXT NOT NULL CHECK (mode IN ('READWRITE', 'READONLY', 'READONLY_OVERRIDE', 'IMPORT'))
) STRICT;

-- table registry_schemas
CREATE TABLE registry_schemas (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    schema_type TEXT NOT NULL CHECK (schema_type IN ('AVRO', 'JSON')),
    schema      TEXT NOT NULL,
    refs        TEXT NOT NULL DEFAULT '[]',
    fingerprint TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL
) STRICT;

-- table registry_versions
CREATE TABLE registry_versions (
    subject    TEXT NOT NULL,
    version    INTEGER NOT NULL CHECK (version >= 1),
    schema_id  INTEGER NOT NULL REFERENCES registry_schemas (id),
    deleted    INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1)),
    created_at TEXT NOT NULL,
    PRIMARY KEY (subject, version)
) STRICT;

-- table schema_migrations
CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL);

-- table schemas
CREATE TABLE schemas (
    catalog    TEXT NOT NULL REFERENCES catalogs (name),
    name       TEXT NOT NULL,
    kind       TEXT NOT NULL
               CHECK (kind IN ('bronze', 'silver', 'gold', 'quarantine', 'system')),
    comment    TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (catalog, name)
) STRICT;

-- table sequences
CREATE TABLE sequences (
    name  TEXT NOT NULL PRIMARY KEY,
    value INTEGER NOT NULL
) STRICT;

-- table settings
CREATE TABLE settings (
    key   TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

-- table sqlite_sequence
CREATE TABLE sqlite_sequence(name,seq);

-- table tables
CREATE TABLE tables (
    table_id   TEXT NOT NULL PRIMARY KEY,
    catalog    TEXT NOT NULL,
    schema     TEXT NOT NULL,
    name       TEXT NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('managed', 'external', 'view')),
    layer      TEXT CHECK (layer IN ('bronze', 'silver', 'gold')),
    location   TEXT,
    delta_id   TEXT,
    view_sql   TEXT,
    state      TEXT NOT NULL CHECK (state IN ('creating', 'active', 'dropped')),
    owner      TEXT,
    comment    TEXT,
    properties TEXT NOT NULL DEFAULT '{}'
               CHECK (json_valid(properties) AND json_type(properties) = 'object'),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    dropped_at TEXT,
    CHECK ((state = 'dropped') = (dropped_at IS NOT NULL)),
    FOREIGN KEY (catalog, schema) REFERENCES schemas (catalog, name)
) STRICT;

-- table tags
CREATE TABLE tags (
    table_id    TEXT NOT NULL REFERENCES tables (table_id) ON DELETE CASCADE,
    column_name TEXT NOT NULL DEFAULT '',
    tag         TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (table_id, column_name, tag)
) STRICT;

