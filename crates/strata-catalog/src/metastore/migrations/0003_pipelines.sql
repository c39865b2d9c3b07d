-- Strata metastore, version 3: pipeline runs, flow runs, quality results, flows marked for a
-- full refresh, and named counters. The system tables pipeline_runs, flow_runs and
-- quality_results read these: change them only with a new migration and a docs update.

-- One row per `strata pipeline run` (or scheduled, backfill or replay run).
CREATE TABLE pipeline_runs (
    run_id      TEXT NOT NULL PRIMARY KEY,
    pipeline    TEXT NOT NULL,
    trigger     TEXT NOT NULL CHECK (trigger IN ('manual', 'schedule', 'backfill', 'replay')),
    status      TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'aborted')),
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    error       TEXT
) STRICT;

CREATE INDEX pipeline_runs_pipeline ON pipeline_runs (pipeline, started_at);

-- One row per flow of a run. `definition` is the flow's resolved definition (steps, rules),
-- kept so that replay knows what the run that quarantined a row did.
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

CREATE INDEX flow_runs_flow ON flow_runs (pipeline, flow, started_at);

-- One row per rule evaluation. pipeline and flow are NULL for `strata quality check` of a table
-- outside a pipeline.
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

CREATE INDEX quality_results_table ON quality_results (table_name, evaluated_at);

-- Flows whose next run must be a full refresh (a source was restored with --force or erased).
CREATE TABLE flow_refresh (
    pipeline  TEXT NOT NULL,
    flow      TEXT NOT NULL,
    reason    TEXT NOT NULL,
    marked_at TEXT NOT NULL,
    PRIMARY KEY (pipeline, flow)
) STRICT;

-- Named counters (backfill and replay numbers); the first value handed out is 1.
CREATE TABLE sequences (
    name  TEXT NOT NULL PRIMARY KEY,
    value INTEGER NOT NULL
) STRICT;
