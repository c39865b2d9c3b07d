//! The ingestion ledger: runs, batches, the part of each file a batch landed, and the
//! per-table ingest lease (DECISIONS.md sections 3 and 6).
//!
//! ```text
//!  acquire lease ─► settle pending batches ─► allocate batch N (pending) ─► write files
//!        ▲              (by the target's txn)                                  │
//!        │                                                 set_batch_files(N, ranges)
//!   release lease ◄─ commit_batch(N) ◄─ target commit (txn ingest:<id> = N) ◄─ quarantine commit
//! ```
//!
//! Delta logs are the truth: a pending batch is settled by whether the target holds its `txn`,
//! never by what this ledger believes.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{Metastore, fmt_ts, now, parse_opt_ts, parse_ts};
use crate::error::{Error, Result};

/// The part of one file one batch holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRange {
    pub file_uri: String,
    pub batch_id: i64,
    pub run_id: String,
    pub size: u64,
    pub modified_at: DateTime<Utc>,
    pub content_hash: Option<String>,
    pub first_record: u64,
    pub records: u64,
    pub complete: bool,
    /// pending, landed, reverted, changed, duplicate_content or skipped_duplicate.
    pub status: String,
    pub landed_at: Option<DateTime<Utc>>,
}

/// A ledger row as `system.ingest_files` shows it.
#[derive(Debug, Clone)]
pub struct LedgerFileRow {
    pub table_name: String,
    pub range: FileRange,
    pub version: Option<i64>,
}

/// One batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchInfo {
    pub table_id: String,
    pub batch_id: i64,
    pub run_id: String,
    pub status: String,
    pub version: Option<i64>,
    pub quarantine_version: Option<i64>,
    pub records: u64,
    pub quarantined: u64,
}

/// A run's numbers, as `system.ingest_runs` shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RunCounts {
    pub files_seen: u64,
    pub files_skipped: u64,
    pub files_landed: u64,
    pub duplicate_content_files: u64,
    pub files_changed: u64,
    pub records_read: u64,
    pub records_landed: u64,
    pub records_rescued: u64,
    pub records_corrupt: u64,
    pub records_quarantined: u64,
    pub bytes_read: u64,
}

/// One ingest run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IngestRun {
    pub run_id: String,
    pub table_id: String,
    pub table_name: String,
    pub source: String,
    pub status: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(flatten)]
    pub counts: RunCounts,
    pub first_version: Option<i64>,
    pub last_version: Option<i64>,
    pub samples: serde_json::Value,
    pub error: Option<String>,
}

/// Who holds a table's ingest lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseHolder {
    pub holder: String,
    pub acquired_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

fn u(v: i64) -> u64 {
    v.max(0) as u64
}

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn range_from_row(row: &SqliteRow) -> Result<FileRange> {
    Ok(FileRange {
        file_uri: row.try_get("file_uri")?,
        batch_id: row.try_get("batch_id")?,
        run_id: row.try_get("run_id")?,
        size: u(row.try_get("size")?),
        modified_at: parse_ts(&row.try_get::<String, _>("modified_at")?)?,
        content_hash: row.try_get("content_hash")?,
        first_record: u(row.try_get("first_record")?),
        records: u(row.try_get("records")?),
        complete: row.try_get::<i64, _>("complete")? == 1,
        status: row.try_get("status")?,
        landed_at: parse_opt_ts(row.try_get("landed_at")?)?,
    })
}

const RANGE_COLUMNS: &str = "file_uri, batch_id, run_id, size, modified_at, content_hash, \
                             first_record, records, complete, status, landed_at";

fn batch_from_row(row: &SqliteRow) -> Result<BatchInfo> {
    Ok(BatchInfo {
        table_id: row.try_get("table_id")?,
        batch_id: row.try_get("batch_id")?,
        run_id: row.try_get("run_id")?,
        status: row.try_get("status")?,
        version: row.try_get("version")?,
        quarantine_version: row.try_get("quarantine_version")?,
        records: u(row.try_get("records")?),
        quarantined: u(row.try_get("quarantined")?),
    })
}

fn run_from_row(row: &SqliteRow) -> Result<IngestRun> {
    let samples: String = row.try_get("samples")?;
    Ok(IngestRun {
        run_id: row.try_get("run_id")?,
        table_id: row.try_get("table_id")?,
        table_name: row.try_get("table_name")?,
        source: row.try_get("source")?,
        status: row.try_get("status")?,
        started_at: parse_ts(&row.try_get::<String, _>("started_at")?)?,
        finished_at: parse_opt_ts(row.try_get("finished_at")?)?,
        counts: RunCounts {
            files_seen: u(row.try_get("files_seen")?),
            files_skipped: u(row.try_get("files_skipped")?),
            files_landed: u(row.try_get("files_landed")?),
            duplicate_content_files: u(row.try_get("duplicate_content_files")?),
            files_changed: u(row.try_get("files_changed")?),
            records_read: u(row.try_get("records_read")?),
            records_landed: u(row.try_get("records_landed")?),
            records_rescued: u(row.try_get("records_rescued")?),
            records_corrupt: u(row.try_get("records_corrupt")?),
            records_quarantined: u(row.try_get("records_quarantined")?),
            bytes_read: u(row.try_get("bytes_read")?),
        },
        first_version: row.try_get("first_version")?,
        last_version: row.try_get("last_version")?,
        samples: serde_json::from_str(&samples).unwrap_or(serde_json::Value::Null),
        error: row.try_get("error")?,
    })
}

fn ttl_end(ttl: Duration) -> DateTime<Utc> {
    now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::seconds(30))
}

impl Metastore {
    // ---- leases -------------------------------------------------------------------------

    /// Takes the table's ingest lease for `holder` when it is free, expired or already
    /// `holder`'s. Returns the current holder when someone else has it.
    pub async fn try_acquire_lease(
        &self,
        table_id: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<LeaseHolder>> {
        let mut tx = self.write_tx().await?;
        let row = sqlx::query(
            "SELECT holder, acquired_at, expires_at FROM ingest_leases WHERE table_id = ?",
        )
        .bind(table_id)
        .fetch_optional(&mut *tx)
        .await?;
        let t = now();
        if let Some(row) = row {
            let current = LeaseHolder {
                holder: row.try_get("holder")?,
                acquired_at: parse_ts(&row.try_get::<String, _>("acquired_at")?)?,
                expires_at: parse_ts(&row.try_get::<String, _>("expires_at")?)?,
            };
            if current.holder != holder && current.expires_at > t {
                return Ok(Some(current));
            }
        }
        sqlx::query(
            "INSERT INTO ingest_leases (table_id, holder, acquired_at, heartbeat_at, expires_at) \
             VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (table_id) DO UPDATE SET holder = excluded.holder, \
             acquired_at = excluded.acquired_at, heartbeat_at = excluded.heartbeat_at, \
             expires_at = excluded.expires_at",
        )
        .bind(table_id)
        .bind(holder)
        .bind(fmt_ts(t))
        .bind(fmt_ts(t))
        .bind(fmt_ts(ttl_end(ttl)))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(None)
    }

    /// Extends `holder`'s lease; false when it is no longer theirs.
    pub async fn renew_lease(&self, table_id: &str, holder: &str, ttl: Duration) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE ingest_leases SET heartbeat_at = ?, expires_at = ? \
             WHERE table_id = ? AND holder = ?",
        )
        .bind(fmt_ts(now()))
        .bind(fmt_ts(ttl_end(ttl)))
        .bind(table_id)
        .bind(holder)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn release_lease(&self, table_id: &str, holder: &str) -> Result<()> {
        sqlx::query("DELETE FROM ingest_leases WHERE table_id = ? AND holder = ?")
            .bind(table_id)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // ---- runs ---------------------------------------------------------------------------

    pub async fn begin_ingest_run(
        &self,
        run_id: &str,
        table_id: &str,
        table_name: &str,
        source: &str,
    ) -> Result<()> {
        let t = fmt_ts(now());
        sqlx::query(
            "INSERT INTO ingest_runs (run_id, table_id, table_name, source, status, started_at, \
             heartbeat_at) VALUES (?, ?, ?, ?, 'running', ?, ?)",
        )
        .bind(run_id)
        .bind(table_id)
        .bind(table_name)
        .bind(source)
        .bind(&t)
        .bind(&t)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Stores a run's numbers so far (and a heartbeat).
    #[allow(clippy::too_many_arguments)]
    pub async fn update_ingest_run(
        &self,
        run_id: &str,
        counts: &RunCounts,
        first_version: Option<i64>,
        last_version: Option<i64>,
        samples: &serde_json::Value,
        finished: Option<(&str, Option<&str>)>,
    ) -> Result<()> {
        let t = fmt_ts(now());
        let (status, error) = finished.unwrap_or(("running", None));
        sqlx::query(
            "UPDATE ingest_runs SET files_seen = ?, files_skipped = ?, files_landed = ?, \
             duplicate_content_files = ?, files_changed = ?, records_read = ?, \
             records_landed = ?, records_rescued = ?, records_corrupt = ?, \
             records_quarantined = ?, bytes_read = ?, first_version = ?, last_version = ?, \
             samples = ?, status = ?, error = ?, heartbeat_at = ?, \
             finished_at = CASE WHEN ? = 'running' THEN NULL ELSE ? END \
             WHERE run_id = ?",
        )
        .bind(i(counts.files_seen))
        .bind(i(counts.files_skipped))
        .bind(i(counts.files_landed))
        .bind(i(counts.duplicate_content_files))
        .bind(i(counts.files_changed))
        .bind(i(counts.records_read))
        .bind(i(counts.records_landed))
        .bind(i(counts.records_rescued))
        .bind(i(counts.records_corrupt))
        .bind(i(counts.records_quarantined))
        .bind(i(counts.bytes_read))
        .bind(first_version)
        .bind(last_version)
        .bind(samples.to_string())
        .bind(status)
        .bind(error)
        .bind(&t)
        .bind(status)
        .bind(&t)
        .bind(run_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets a run that did nothing (a `--watch` cycle that found no new file).
    pub async fn delete_ingest_run(&self, run_id: &str) -> Result<()> {
        sqlx::query("DELETE FROM ingest_runs WHERE run_id = ? AND files_landed = 0")
            .bind(run_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records that a run is alive.
    pub async fn heartbeat_ingest_run(&self, run_id: &str) -> Result<()> {
        sqlx::query(
            "UPDATE ingest_runs SET heartbeat_at = ? WHERE run_id = ? AND status = 'running'",
        )
        .bind(fmt_ts(now()))
        .bind(run_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks runs of the table that stopped heartbeating before `stale_before` as abandoned
    /// (their process died).
    pub async fn abandon_stale_runs(
        &self,
        table_id: &str,
        stale_before: DateTime<Utc>,
    ) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE ingest_runs SET status = 'abandoned', finished_at = heartbeat_at, \
             error = 'the run stopped without finishing (its process died or was killed)' \
             WHERE table_id = ? AND status = 'running' AND heartbeat_at < ?",
        )
        .bind(table_id)
        .bind(fmt_ts(stale_before))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Runs, newest first; of one table when `table_id` is given.
    pub async fn ingest_runs(
        &self,
        table_id: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Vec<IngestRun>> {
        let rows = sqlx::query(
            "SELECT * FROM ingest_runs WHERE (?1 IS NULL OR table_id = ?1) \
             ORDER BY started_at DESC, run_id DESC LIMIT ?2",
        )
        .bind(table_id)
        .bind(limit.map_or(-1, i64::from))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(run_from_row).collect()
    }

    // ---- batches ------------------------------------------------------------------------

    /// The highest batch number the ledger has for the table (0 when none).
    pub async fn max_batch_id(&self, table_id: &str) -> Result<i64> {
        let v: Option<i64> =
            sqlx::query_scalar("SELECT MAX(batch_id) FROM ingest_batches WHERE table_id = ?")
                .bind(table_id)
                .fetch_one(&self.pool)
                .await?;
        Ok(v.unwrap_or(0))
    }

    pub async fn pending_batches(&self, table_id: &str) -> Result<Vec<BatchInfo>> {
        let rows = sqlx::query(
            "SELECT * FROM ingest_batches WHERE table_id = ? AND status = 'pending' \
             ORDER BY batch_id",
        )
        .bind(table_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(batch_from_row).collect()
    }

    pub async fn batches(&self, table_id: &str) -> Result<Vec<BatchInfo>> {
        let rows = sqlx::query("SELECT * FROM ingest_batches WHERE table_id = ? ORDER BY batch_id")
            .bind(table_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(batch_from_row).collect()
    }

    /// Records batch `batch_id` as pending for `run_id` (taking over a pending row of the same
    /// number that a dead run left).
    pub async fn create_pending_batch(
        &self,
        table_id: &str,
        batch_id: i64,
        run_id: &str,
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let existing: Option<String> = sqlx::query_scalar(
            "SELECT status FROM ingest_batches WHERE table_id = ? AND batch_id = ?",
        )
        .bind(table_id)
        .bind(batch_id)
        .fetch_optional(&mut *tx)
        .await?;
        match existing.as_deref() {
            None => {
                sqlx::query(
                    "INSERT INTO ingest_batches (table_id, batch_id, run_id, status, created_at) \
                     VALUES (?, ?, ?, 'pending', ?)",
                )
                .bind(table_id)
                .bind(batch_id)
                .bind(run_id)
                .bind(fmt_ts(now()))
                .execute(&mut *tx)
                .await?;
            }
            Some("pending") => {
                sqlx::query(
                    "UPDATE ingest_batches SET run_id = ? WHERE table_id = ? AND batch_id = ?",
                )
                .bind(run_id)
                .bind(table_id)
                .bind(batch_id)
                .execute(&mut *tx)
                .await?;
            }
            Some(other) => {
                return Err(Error::Conflict(format!(
                    "ingest batch {batch_id} of table {table_id} is already {other}; another \
                     writer allocated it: retry the ingest"
                )));
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Stores the file ranges of a pending batch (replacing any it had), before its commits.
    pub async fn set_batch_files(
        &self,
        table_id: &str,
        batch_id: i64,
        files: &[FileRange],
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM ingest_files WHERE table_id = ? AND batch_id = ?")
            .bind(table_id)
            .bind(batch_id)
            .execute(&mut *tx)
            .await?;
        for f in files {
            sqlx::query(
                "INSERT INTO ingest_files (table_id, file_uri, batch_id, run_id, size, \
                 modified_at, content_hash, first_record, records, complete, status) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(table_id)
            .bind(&f.file_uri)
            .bind(batch_id)
            .bind(&f.run_id)
            .bind(i(f.size))
            .bind(fmt_ts(f.modified_at))
            .bind(&f.content_hash)
            .bind(i(f.first_record))
            .bind(i(f.records))
            .bind(i64::from(f.complete))
            .bind(&f.status)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The file ranges of one batch, in landing order.
    pub async fn batch_files(&self, table_id: &str, batch_id: i64) -> Result<Vec<FileRange>> {
        let rows = sqlx::query(&format!(
            "SELECT {RANGE_COLUMNS} FROM ingest_files WHERE table_id = ? AND batch_id = ? \
             ORDER BY file_uri, first_record"
        ))
        .bind(table_id)
        .bind(batch_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(range_from_row).collect()
    }

    /// Marks a batch committed and its files landed. A file range stored with status
    /// `duplicate_content` keeps it (it landed, and its content equals another file's).
    pub async fn commit_batch(
        &self,
        table_id: &str,
        batch_id: i64,
        version: Option<i64>,
        quarantine_version: Option<i64>,
        records: u64,
        quarantined: u64,
    ) -> Result<()> {
        let t = fmt_ts(now());
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "UPDATE ingest_batches SET status = 'committed', version = ?, \
             quarantine_version = ?, records = ?, quarantined = ?, committed_at = ? \
             WHERE table_id = ? AND batch_id = ?",
        )
        .bind(version)
        .bind(quarantine_version)
        .bind(i(records))
        .bind(i(quarantined))
        .bind(&t)
        .bind(table_id)
        .bind(batch_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE ingest_files SET status = CASE WHEN status = 'pending' THEN 'landed' \
             ELSE status END, landed_at = ? WHERE table_id = ? AND batch_id = ?",
        )
        .bind(&t)
        .bind(table_id)
        .bind(batch_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Forgets a pending batch that committed nothing anywhere.
    pub async fn delete_pending_batch(&self, table_id: &str, batch_id: i64) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM ingest_files WHERE table_id = ? AND batch_id = ?")
            .bind(table_id)
            .bind(batch_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "DELETE FROM ingest_batches WHERE table_id = ? AND batch_id = ? AND status = 'pending'",
        )
        .bind(table_id)
        .bind(batch_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    // ---- files --------------------------------------------------------------------------

    /// A file's ledger rows that still count (not reverted), oldest batch first.
    pub async fn file_ranges(&self, table_id: &str, file_uri: &str) -> Result<Vec<FileRange>> {
        let rows = sqlx::query(&format!(
            "SELECT {RANGE_COLUMNS} FROM ingest_files \
             WHERE table_id = ? AND file_uri = ? AND status <> 'reverted' \
             ORDER BY batch_id, first_record"
        ))
        .bind(table_id)
        .bind(file_uri)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(range_from_row).collect()
    }

    /// Another landed file of the table with this content hash, if any.
    pub async fn landed_file_with_hash(
        &self,
        table_id: &str,
        content_hash: &str,
        except_uri: &str,
    ) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT file_uri FROM ingest_files WHERE table_id = ? AND content_hash = ? \
             AND file_uri <> ? AND status IN ('landed', 'duplicate_content', 'pending') \
             ORDER BY batch_id LIMIT 1",
        )
        .bind(table_id)
        .bind(content_hash)
        .bind(except_uri)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Marks the landed rows of a file as `changed`: the file no longer has the content they
    /// came from.
    pub async fn mark_file_changed(&self, table_id: &str, file_uri: &str) -> Result<()> {
        sqlx::query(
            "UPDATE ingest_files SET status = 'changed' WHERE table_id = ? AND file_uri = ? \
             AND status IN ('landed', 'duplicate_content', 'skipped_duplicate')",
        )
        .bind(table_id)
        .bind(file_uri)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Remembers a duplicate that `--skip-duplicate-content` left out, so it is not hashed
    /// again while unchanged.
    pub async fn record_skipped_duplicate(&self, table_id: &str, range: &FileRange) -> Result<()> {
        sqlx::query(
            "INSERT INTO ingest_files (table_id, file_uri, batch_id, run_id, size, modified_at, \
             content_hash, first_record, records, complete, status, landed_at) \
             VALUES (?, ?, 0, ?, ?, ?, ?, 0, 0, 1, 'skipped_duplicate', NULL) \
             ON CONFLICT (table_id, file_uri, batch_id) DO UPDATE SET size = excluded.size, \
             modified_at = excluded.modified_at, content_hash = excluded.content_hash, \
             run_id = excluded.run_id, status = 'skipped_duplicate'",
        )
        .bind(table_id)
        .bind(&range.file_uri)
        .bind(&range.run_id)
        .bind(i(range.size))
        .bind(fmt_ts(range.modified_at))
        .bind(&range.content_hash)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every ledger file row, for `system.ingest_files`.
    pub async fn ingest_files(&self, table_id: Option<&str>) -> Result<Vec<LedgerFileRow>> {
        let rows = sqlx::query(
            "SELECT f.file_uri, f.batch_id, f.run_id, f.size, f.modified_at, f.content_hash, \
             f.first_record, f.records, f.complete, f.status, f.landed_at, b.version, \
             COALESCE(r.table_name, t.schema || '.' || t.name, f.table_id) AS table_name \
             FROM ingest_files f \
             LEFT JOIN ingest_batches b ON b.table_id = f.table_id AND b.batch_id = f.batch_id \
             LEFT JOIN ingest_runs r ON r.run_id = f.run_id \
             LEFT JOIN tables t ON t.table_id = f.table_id \
             WHERE (?1 IS NULL OR f.table_id = ?1) \
             ORDER BY f.table_id, f.batch_id, f.file_uri, f.first_record",
        )
        .bind(table_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(LedgerFileRow {
                    table_name: row.try_get("table_name")?,
                    range: range_from_row(row)?,
                    version: row.try_get("version")?,
                })
            })
            .collect()
    }

    /// After a forced restore to `version`: batches committed in a later version are
    /// reverted, with their files, so a new ingest lands those files again.
    pub async fn revert_batches_after(&self, table_id: &str, version: i64) -> Result<u64> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "UPDATE ingest_files SET status = 'reverted' WHERE table_id = ? AND batch_id IN \
             (SELECT batch_id FROM ingest_batches WHERE table_id = ? AND status = 'committed' \
              AND version > ?)",
        )
        .bind(table_id)
        .bind(table_id)
        .bind(version)
        .execute(&mut *tx)
        .await?;
        let done = sqlx::query(
            "UPDATE ingest_batches SET status = 'reverted' WHERE table_id = ? \
             AND status = 'committed' AND version > ?",
        )
        .bind(table_id)
        .bind(version)
        .execute(&mut *tx)
        .await?;
        // A skipped duplicate may point at content that is gone now: forget it.
        sqlx::query("DELETE FROM ingest_files WHERE table_id = ? AND status = 'skipped_duplicate'")
            .bind(table_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    /// Whether the table has an ingest ledger.
    pub async fn has_ingest_ledger(&self, table_id: &str) -> Result<bool> {
        Ok(
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM ingest_batches WHERE table_id = ?)")
                .bind(table_id)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    // ---- erasures -----------------------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    pub async fn record_erasure(
        &self,
        erasure_id: &str,
        table_id: &str,
        table_name: &str,
        predicate: &str,
        reason: &str,
        rows_deleted: u64,
        files_deleted: u64,
        versions: &[i64],
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO erasures (erasure_id, table_id, table_name, predicate, reason, \
             rows_deleted, files_deleted, versions, erased_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(erasure_id)
        .bind(table_id)
        .bind(table_name)
        .bind(predicate)
        .bind(reason)
        .bind(i(rows_deleted))
        .bind(i(files_deleted))
        .bind(serde_json::to_string(versions).unwrap_or_else(|_| "[]".into()))
        .bind(fmt_ts(now()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
