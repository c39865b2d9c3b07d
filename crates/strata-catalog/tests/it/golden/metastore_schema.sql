-- index lineage_target
CREATE INDEX lineage_target ON lineage (target_table);

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

-- table settings
CREATE TABLE settings (
    key   TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

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

