-- Strata metastore, version 2: the ingestion ledger (runs, batches, files), ingest leases and
-- erasures. The system tables ingest_runs and ingest_files read these: change them only with a
-- new migration and a docs update.

-- One row per `strata ingest` run (or watch cycle). Counts are filled in as batches commit.
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

CREATE INDEX ingest_runs_table ON ingest_runs (table_id, started_at);

-- A batch is one commit of the target (and one of its quarantine table when it has corrupt
-- records), carrying the txn `ingest:<table_id>` with version = batch_id. It is `pending` from
-- allocation until its commits are known, then `committed`; `reverted` after a forced restore
-- to a version before it.
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

-- The part of a file a batch landed: records [first_record, first_record + records) in the
-- file's record order. `complete` = the file ends in this batch. batch_id 0 marks a file that
-- was recognised but not landed (a skipped duplicate).
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

CREATE INDEX ingest_files_hash ON ingest_files (table_id, content_hash);

-- At most one writer lands batches into a table at a time.
CREATE TABLE ingest_leases (
    table_id     TEXT NOT NULL PRIMARY KEY,
    holder       TEXT NOT NULL,
    acquired_at  TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL,
    expires_at   TEXT NOT NULL
) STRICT;

-- `strata table erase`: the audited way rows leave bronze.
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
