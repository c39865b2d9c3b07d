//! Pipeline run history: pipeline runs, their flow runs, quality results, flows marked for a
//! full refresh, and named counters (DECISIONS.md sections 5, 6 and 9).
//!
//! ```text
//!  abandon_running_pipeline_runs ─► begin_pipeline_run (running)
//!      (a crashed earlier run:          │
//!       running ─► aborted)             ├─► per flow: commits (quarantine, then target)
//!                                       │        └─► record_flow_run, record_quality_results
//!                                       ▼
//!                          finish_pipeline_run (succeeded | failed | aborted)
//! ```
//!
//! These rows are written after the Delta commits they describe (section 6): the logs say what
//! was committed; this history says how a run went. A flow run keeps its resolved definition so
//! that replay knows the steps and rules of the run that quarantined a row.

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{Metastore, fmt_ts, now, parse_opt_ts, parse_ts, unique_or};
use crate::error::{Error, Result};

/// What started a pipeline run.
pub const PIPELINE_RUN_TRIGGERS: [&str; 4] = ["manual", "schedule", "backfill", "replay"];
/// The states of a pipeline run.
pub const PIPELINE_RUN_STATUSES: [&str; 4] = ["running", "succeeded", "failed", "aborted"];
/// The states of a flow run.
pub const FLOW_RUN_STATUSES: [&str; 5] = [
    "running",
    "succeeded",
    "failed",
    "skipped",
    "upstream_failed",
];
/// The kinds of a quality rule.
pub const QUALITY_RULE_KINDS: [&str; 2] = ["row", "table"];

/// The error of a flow run that was still running when its pipeline run was found abandoned.
pub const FLOW_STOPPED_ERROR: &str = "the run stopped before this flow finished";
/// The error of a pipeline run found abandoned by a later run.
pub const RUN_STOPPED_ERROR: &str =
    "the run stopped without finishing (its process died or was killed)";

/// One pipeline run, as `system.pipeline_runs` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineRun {
    pub run_id: String,
    pub pipeline: String,
    /// `manual`, `schedule`, `backfill` or `replay`.
    pub trigger: String,
    /// `running`, `succeeded`, `failed` or `aborted`.
    pub status: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
}

/// One flow of a pipeline run, as `system.flow_runs` shows it. Timestamps are stored with
/// microsecond precision.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FlowRun {
    pub run_id: String,
    pub pipeline: String,
    pub flow: String,
    /// The target table, `catalog.schema.table`.
    pub target: String,
    /// `running`, `succeeded`, `failed`, `skipped` or `upstream_failed`.
    pub status: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub rows_read: i64,
    pub rows_written: i64,
    pub rows_quarantined: i64,
    pub rows_dropped: i64,
    /// A JSON object: source table to `[from, to]` versions. `Null` is stored as `{}`.
    pub source_versions: serde_json::Value,
    pub target_version: Option<i64>,
    pub unmapped_columns: Vec<String>,
    /// JSON; `Null` is stored as `[]`.
    pub samples: serde_json::Value,
    pub error: Option<String>,
    /// The flow's resolved definition, for replay; `Null` is stored as `{}`.
    pub definition: serde_json::Value,
}

/// One evaluation of one quality rule, as `system.quality_results` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct QualityResult {
    pub run_id: String,
    /// `None` for `strata quality check` of a table outside a pipeline.
    pub pipeline: Option<String>,
    /// `None` for `strata quality check` of a table outside a pipeline.
    pub flow: Option<String>,
    /// The checked table, `catalog.schema.table`.
    pub table: String,
    pub rule: String,
    /// `row` or `table`.
    pub kind: String,
    pub action: String,
    pub rows_checked: i64,
    pub rows_failed: i64,
    pub passed: bool,
    /// The value a table rule saw.
    pub observed: Option<String>,
    pub evaluated_at: DateTime<Utc>,
}

/// `value` when it is one of `allowed`, otherwise an error naming them: "expected a, b or c".
fn check_one_of(what: &str, value: &str, allowed: &[&str]) -> Result<()> {
    if allowed.contains(&value) {
        return Ok(());
    }
    let expected = match allowed {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    };
    Err(Error::InvalidInput(format!(
        "unknown {what} '{value}': expected {expected}"
    )))
}

fn require_non_empty(what: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        Err(Error::InvalidInput(format!("{what} cannot be empty")))
    } else {
        Ok(())
    }
}

/// JSON text for a column, with `Null` standing for the column's empty value.
fn json_text(value: &serde_json::Value, empty: &str) -> String {
    if value.is_null() {
        empty.to_string()
    } else {
        value.to_string()
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(row: &SqliteRow, column: &str) -> Result<T> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|e| {
        Error::Storage(format!(
            "metastore holds malformed JSON in column {column}: {e}"
        ))
    })
}

const PIPELINE_RUN_COLUMNS: &str =
    "run_id, pipeline, trigger, status, started_at, finished_at, error";

fn pipeline_run_from_row(row: &SqliteRow) -> Result<PipelineRun> {
    Ok(PipelineRun {
        run_id: row.try_get("run_id")?,
        pipeline: row.try_get("pipeline")?,
        trigger: row.try_get("trigger")?,
        status: row.try_get("status")?,
        started_at: parse_ts(&row.try_get::<String, _>("started_at")?)?,
        finished_at: parse_opt_ts(row.try_get("finished_at")?)?,
        error: row.try_get("error")?,
    })
}

const FLOW_RUN_COLUMNS: &str = "run_id, pipeline, flow, target, status, started_at, finished_at, \
                                rows_read, rows_written, rows_quarantined, rows_dropped, \
                                source_versions, target_version, unmapped_columns, samples, \
                                error, definition";

fn flow_run_from_row(row: &SqliteRow) -> Result<FlowRun> {
    Ok(FlowRun {
        run_id: row.try_get("run_id")?,
        pipeline: row.try_get("pipeline")?,
        flow: row.try_get("flow")?,
        target: row.try_get("target")?,
        status: row.try_get("status")?,
        started_at: parse_ts(&row.try_get::<String, _>("started_at")?)?,
        finished_at: parse_opt_ts(row.try_get("finished_at")?)?,
        rows_read: row.try_get("rows_read")?,
        rows_written: row.try_get("rows_written")?,
        rows_quarantined: row.try_get("rows_quarantined")?,
        rows_dropped: row.try_get("rows_dropped")?,
        source_versions: parse_json(row, "source_versions")?,
        target_version: row.try_get("target_version")?,
        unmapped_columns: parse_json(row, "unmapped_columns")?,
        samples: parse_json(row, "samples")?,
        error: row.try_get("error")?,
        definition: parse_json(row, "definition")?,
    })
}

fn quality_result_from_row(row: &SqliteRow) -> Result<QualityResult> {
    Ok(QualityResult {
        run_id: row.try_get("run_id")?,
        pipeline: row.try_get("pipeline")?,
        flow: row.try_get("flow")?,
        table: row.try_get("table_name")?,
        rule: row.try_get("rule")?,
        kind: row.try_get("kind")?,
        action: row.try_get("action")?,
        rows_checked: row.try_get("rows_checked")?,
        rows_failed: row.try_get("rows_failed")?,
        passed: row.try_get::<i64, _>("passed")? == 1,
        observed: row.try_get("observed")?,
        evaluated_at: parse_ts(&row.try_get::<String, _>("evaluated_at")?)?,
    })
}

impl Metastore {
    // ---- pipeline runs ------------------------------------------------------------------

    /// Records a new pipeline run in state `running`, started now.
    pub async fn begin_pipeline_run(
        &self,
        run_id: &str,
        pipeline: &str,
        trigger: &str,
    ) -> Result<()> {
        require_non_empty("a pipeline run id", run_id)?;
        require_non_empty("a pipeline name", pipeline)?;
        check_one_of("pipeline run trigger", trigger, &PIPELINE_RUN_TRIGGERS)?;
        sqlx::query(
            "INSERT INTO pipeline_runs (run_id, pipeline, trigger, status, started_at) \
             VALUES (?, ?, ?, 'running', ?)",
        )
        .bind(run_id)
        .bind(pipeline)
        .bind(trigger)
        .bind(fmt_ts(now()))
        .execute(&self.pool)
        .await
        .map_err(|e| {
            unique_or(e, || {
                Error::AlreadyExists(format!("pipeline run {run_id} already exists"))
            })
        })?;
        Ok(())
    }

    /// Ends a pipeline run now with `status` `succeeded`, `failed` or `aborted`.
    pub async fn finish_pipeline_run(
        &self,
        run_id: &str,
        status: &str,
        error: Option<&str>,
    ) -> Result<()> {
        check_one_of(
            "status for a finished pipeline run",
            status,
            &PIPELINE_RUN_STATUSES[1..],
        )?;
        let done = sqlx::query(
            "UPDATE pipeline_runs SET status = ?, finished_at = ?, error = ? WHERE run_id = ?",
        )
        .bind(status)
        .bind(fmt_ts(now()))
        .bind(error)
        .bind(run_id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound(format!("no pipeline run has id {run_id}")));
        }
        Ok(())
    }

    /// Pipeline runs, newest first; of one pipeline when `pipeline` is given, at most `limit`.
    pub async fn pipeline_runs(
        &self,
        pipeline: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<PipelineRun>> {
        let rows = sqlx::query(&format!(
            "SELECT {PIPELINE_RUN_COLUMNS} FROM pipeline_runs \
             WHERE (?1 IS NULL OR pipeline = ?1) \
             ORDER BY started_at DESC, run_id DESC LIMIT ?2"
        ))
        .bind(pipeline)
        .bind(limit.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX)))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(pipeline_run_from_row).collect()
    }

    pub async fn pipeline_run(&self, run_id: &str) -> Result<Option<PipelineRun>> {
        let row = sqlx::query(&format!(
            "SELECT {PIPELINE_RUN_COLUMNS} FROM pipeline_runs WHERE run_id = ?"
        ))
        .bind(run_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(pipeline_run_from_row).transpose()
    }

    /// Settles what a crashed earlier run of `pipeline` left `running`: its flow runs become
    /// `failed` ([`FLOW_STOPPED_ERROR`]) and the run `aborted`. Returns how many pipeline runs
    /// were aborted. Call it only while holding the pipeline's run lock: a live run of the
    /// pipeline is indistinguishable from a dead one here.
    pub async fn abandon_running_pipeline_runs(&self, pipeline: &str) -> Result<u64> {
        let t = fmt_ts(now());
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "UPDATE flow_runs SET status = 'failed', finished_at = ?, error = ? \
             WHERE pipeline = ? AND status = 'running'",
        )
        .bind(&t)
        .bind(FLOW_STOPPED_ERROR)
        .bind(pipeline)
        .execute(&mut *tx)
        .await?;
        let done = sqlx::query(
            "UPDATE pipeline_runs SET status = 'aborted', finished_at = ?, \
             error = COALESCE(error, ?) WHERE pipeline = ? AND status = 'running'",
        )
        .bind(&t)
        .bind(RUN_STOPPED_ERROR)
        .bind(pipeline)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let aborted = done.rows_affected();
        if aborted > 0 {
            tracing::warn!(
                pipeline,
                runs = aborted,
                "aborted pipeline runs that stopped"
            );
        }
        Ok(aborted)
    }

    // ---- flow runs ----------------------------------------------------------------------

    /// Stores a flow run, replacing the row of the same `(run_id, flow)`: call it when the flow
    /// starts and again when it ends.
    pub async fn record_flow_run(&self, run: &FlowRun) -> Result<()> {
        require_non_empty("a flow run's run id", &run.run_id)?;
        require_non_empty("a flow run's flow", &run.flow)?;
        check_one_of("flow run status", &run.status, &FLOW_RUN_STATUSES)?;
        if !(run.source_versions.is_object() || run.source_versions.is_null()) {
            return Err(Error::InvalidInput(format!(
                "the source versions of flow {} (run {}) must be a JSON object of table to \
                 [from, to], got {}",
                run.flow, run.run_id, run.source_versions
            )));
        }
        let unmapped = serde_json::to_string(&run.unmapped_columns)
            .map_err(|e| Error::InvalidInput(format!("unmapped columns cannot be stored: {e}")))?;
        sqlx::query(&format!(
            "INSERT OR REPLACE INTO flow_runs ({FLOW_RUN_COLUMNS}) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .bind(&run.run_id)
        .bind(&run.pipeline)
        .bind(&run.flow)
        .bind(&run.target)
        .bind(&run.status)
        .bind(fmt_ts(run.started_at))
        .bind(run.finished_at.map(fmt_ts))
        .bind(run.rows_read)
        .bind(run.rows_written)
        .bind(run.rows_quarantined)
        .bind(run.rows_dropped)
        .bind(json_text(&run.source_versions, "{}"))
        .bind(run.target_version)
        .bind(unmapped)
        .bind(json_text(&run.samples, "[]"))
        .bind(&run.error)
        .bind(json_text(&run.definition, "{}"))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Flow runs, of one pipeline run when `run_id` is given, ordered by start time and flow.
    pub async fn flow_runs(&self, run_id: Option<&str>) -> Result<Vec<FlowRun>> {
        let rows = sqlx::query(&format!(
            "SELECT {FLOW_RUN_COLUMNS} FROM flow_runs WHERE (?1 IS NULL OR run_id = ?1) \
             ORDER BY started_at, flow, run_id"
        ))
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(flow_run_from_row).collect()
    }

    /// The resolved definition stored with the latest succeeded run of a flow.
    pub async fn last_flow_definition(
        &self,
        pipeline: &str,
        flow: &str,
    ) -> Result<Option<serde_json::Value>> {
        let text: Option<String> = sqlx::query_scalar(
            "SELECT definition FROM flow_runs \
             WHERE pipeline = ? AND flow = ? AND status IN ('succeeded', 'skipped') \
             ORDER BY started_at DESC, run_id DESC LIMIT 1",
        )
        .bind(pipeline)
        .bind(flow)
        .fetch_optional(&self.pool)
        .await?;
        text.map(|t| {
            serde_json::from_str(&t).map_err(|e| {
                Error::Storage(format!(
                    "metastore holds a malformed definition of flow {pipeline}.{flow}: {e}"
                ))
            })
        })
        .transpose()
    }

    /// The resolved definition stored with one flow run (the run that quarantined a row, for
    /// replay), whatever its status.
    pub async fn flow_definition(
        &self,
        run_id: &str,
        flow: &str,
    ) -> Result<Option<serde_json::Value>> {
        let text: Option<String> =
            sqlx::query_scalar("SELECT definition FROM flow_runs WHERE run_id = ? AND flow = ?")
                .bind(run_id)
                .bind(flow)
                .fetch_optional(&self.pool)
                .await?;
        text.map(|t| {
            serde_json::from_str(&t).map_err(|e| {
                Error::Storage(format!(
                    "metastore holds a malformed definition of flow {flow} in run {run_id}: {e}"
                ))
            })
        })
        .transpose()
    }

    // ---- quality results ----------------------------------------------------------------

    /// Stores rule evaluations, all or none.
    pub async fn record_quality_results(&self, results: &[QualityResult]) -> Result<()> {
        for r in results {
            require_non_empty("a quality result's run id", &r.run_id)?;
            require_non_empty("a quality result's table", &r.table)?;
            require_non_empty("a quality result's rule", &r.rule)?;
            check_one_of("quality rule kind", &r.kind, &QUALITY_RULE_KINDS)?;
        }
        if results.is_empty() {
            return Ok(());
        }
        let mut tx = self.write_tx().await?;
        for r in results {
            sqlx::query(
                "INSERT INTO quality_results (run_id, pipeline, flow, table_name, rule, kind, \
                 action, rows_checked, rows_failed, passed, observed, evaluated_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&r.run_id)
            .bind(&r.pipeline)
            .bind(&r.flow)
            .bind(&r.table)
            .bind(&r.rule)
            .bind(&r.kind)
            .bind(&r.action)
            .bind(r.rows_checked)
            .bind(r.rows_failed)
            .bind(i64::from(r.passed))
            .bind(&r.observed)
            .bind(fmt_ts(r.evaluated_at))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every quality result, oldest first (in insertion order within one instant).
    pub async fn quality_results(&self) -> Result<Vec<QualityResult>> {
        let rows = sqlx::query(
            "SELECT run_id, pipeline, flow, table_name, rule, kind, action, rows_checked, \
             rows_failed, passed, observed, evaluated_at FROM quality_results \
             ORDER BY evaluated_at, rowid",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(quality_result_from_row).collect()
    }

    // ---- full refresh marks -------------------------------------------------------------

    /// Marks a flow for a full refresh at its next run. Marking a marked flow again adds the
    /// new reason (unless it is already there) and moves `marked_at`.
    pub async fn mark_full_refresh(&self, pipeline: &str, flow: &str, reason: &str) -> Result<()> {
        require_non_empty("a pipeline name", pipeline)?;
        require_non_empty("a flow name", flow)?;
        require_non_empty("the reason for a full refresh", reason)?;
        sqlx::query(
            "INSERT INTO flow_refresh (pipeline, flow, reason, marked_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (pipeline, flow) DO UPDATE SET \
             reason = CASE WHEN instr(reason, excluded.reason) > 0 THEN reason \
                      ELSE reason || '; ' || excluded.reason END, \
             marked_at = excluded.marked_at",
        )
        .bind(pipeline)
        .bind(flow)
        .bind(reason)
        .bind(fmt_ts(now()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The flows of `pipeline` marked for a full refresh, with why, ordered by flow.
    pub async fn full_refresh_marks(&self, pipeline: &str) -> Result<Vec<(String, String)>> {
        Ok(
            sqlx::query_as(
                "SELECT flow, reason FROM flow_refresh WHERE pipeline = ? ORDER BY flow",
            )
            .bind(pipeline)
            .fetch_all(&self.pool)
            .await?,
        )
    }

    /// Removes a flow's mark (after its full refresh committed); no-op when unmarked.
    pub async fn clear_full_refresh(&self, pipeline: &str, flow: &str) -> Result<()> {
        sqlx::query("DELETE FROM flow_refresh WHERE pipeline = ? AND flow = ?")
            .bind(pipeline)
            .bind(flow)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // ---- sequences ----------------------------------------------------------------------

    /// Increments the counter `name` and returns its new value: 1, 2, 3, ... Atomic across
    /// processes (one statement), so no two callers get the same number.
    pub async fn next_sequence(&self, name: &str) -> Result<i64> {
        require_non_empty("a sequence name", name)?;
        Ok(sqlx::query_scalar(
            "INSERT INTO sequences (name, value) VALUES (?, 1) \
             ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value",
        )
        .bind(name)
        .fetch_one(&self.pool)
        .await?)
    }

    // ---- replay markers -----------------------------------------------------------------

    /// Records that replay number `n` of quarantine table `quarantine_id` moves the rows
    /// `ids` (before its target commit), so a replay stopped between its two commits can be
    /// finished by the next one.
    pub async fn begin_replay(
        &self,
        quarantine_id: &str,
        n: i64,
        target: &str,
        ids: &[String],
    ) -> Result<()> {
        let ids = serde_json::json!({"target": target, "ids": ids}).to_string();
        sqlx::query("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)")
            .bind(format!("replay:{quarantine_id}:{n}"))
            .bind(ids)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Replays of `quarantine_id` begun and not finished: (number, target table, ids).
    pub async fn pending_replays(
        &self,
        quarantine_id: &str,
    ) -> Result<Vec<(i64, String, Vec<String>)>> {
        let prefix = format!("replay:{quarantine_id}:");
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT key, value FROM settings WHERE key LIKE ? || '%' ORDER BY key")
                .bind(&prefix)
                .fetch_all(&self.pool)
                .await?;
        let mut out = Vec::new();
        for (k, v) in rows {
            let Some(n) = k.strip_prefix(&prefix).and_then(|n| n.parse::<i64>().ok()) else {
                continue;
            };
            #[derive(serde::Deserialize)]
            struct Marker {
                target: String,
                ids: Vec<String>,
            }
            let m: Marker = serde_json::from_str(&v).map_err(|e| {
                Error::Storage(format!(
                    "metastore holds a malformed replay marker {k}: {e}"
                ))
            })?;
            out.push((n, m.target, m.ids));
        }
        out.sort_by_key(|(n, _, _)| *n);
        Ok(out)
    }

    pub async fn finish_replay(&self, quarantine_id: &str, n: i64) -> Result<()> {
        sqlx::query("DELETE FROM settings WHERE key = ?")
            .bind(format!("replay:{quarantine_id}:{n}"))
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_of_names_the_allowed_values() {
        assert!(check_one_of("x", "a", &["a", "b"]).is_ok());
        let err = check_one_of("pipeline run trigger", "cron", &PIPELINE_RUN_TRIGGERS)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "unknown pipeline run trigger 'cron': expected manual, schedule, backfill or replay"
        );
        let err = check_one_of("k", "z", &["row"]).unwrap_err().to_string();
        assert_eq!(err, "unknown k 'z': expected row");
    }
}
