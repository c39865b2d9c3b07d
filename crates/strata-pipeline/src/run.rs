//! `pipeline run`: each selected flow in dependency order, incrementally and idempotently.
//!
//! Per flow (DECISIONS.md sections 5 to 7):
//! 1. Pin every source at its latest version; the flow's watermark per source is the version of
//!    the `txn` `flow:<pipeline>:<flow>:<source_table_id>` its target holds. When the quarantine
//!    table holds a later one (a run stopped between its two commits), the sources are pinned at
//!    exactly those versions, so the run completes the same work.
//! 2. No source advanced: the flow commits nothing.
//! 3. Read the first source once: its change feed since the watermark (`append`, `merge`), the
//!    partitions its changes touch (`replace`), or its snapshot (first run, `full`,
//!    `--full-refresh`); steps, SQL and row rules run over that one read.
//! 4. Quarantine commit, then target commit, both carrying the same `txn`s; then the run records
//!    in the metastore.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int64Array, UInt64Array};
use arrow::compute::{
    SortColumn, SortOptions, concat_batches, filter_record_batch, lexsort_to_indices,
    take_record_batch,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use chrono::Utc;
use datafusion::catalog::TableProvider;
use datafusion::common::Column;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::datasource::MemTable;
use datafusion::logical_expr::Expr;
use datafusion::prelude::{DataFrame, SessionContext};
use deltalake::DeltaTable;
use serde_json::{Value, json};
use strata_catalog::Lakehouse;
use strata_catalog::lakehouse::CreateTable;
use strata_catalog::metastore::{FlowRun, QualityResult, TableInfo};
use strata_core::TableName;
use strata_core::types::type_name;
use strata_table::{MergeClause, MergeExpr, MergeSpec, Txn, WriteOptions};

use crate::error::{Error, Result};
use crate::quarantine::{QRow, envelope};
use crate::record::{row_json, text};
use crate::rules::{Rule, RuleKind, ident, quote};
use crate::spec::{Action, Mode, OnSchemaChange, Read};
use crate::steps::ROW;
use crate::transform::{self, without_row};
use crate::validate::{Flow, Pipeline, Report, check};

/// How many sample rows a run record keeps per kind.
const SAMPLES: usize = 5;

/// What `pipeline run` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// `flow`, `+flow`, `flow+`; empty = every flow.
    pub select: Vec<String>,
    pub full_refresh: bool,
    /// Read, transform and check, but commit nothing and record nothing.
    pub dry_run: bool,
    /// `manual` or `schedule`.
    pub trigger: String,
    /// Set by Ctrl-C or SIGTERM: the run stops before its next commit.
    pub cancel: Option<Arc<AtomicBool>>,
    /// `--partitions col=from..to`: recompute that range of the selected `replace` and `full`
    /// flows (a backfill) from their sources at the current watermarks.
    pub partitions: Option<PartitionRange>,
}

/// A range of one partition column's values, both ends included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRange {
    pub column: String,
    pub from: String,
    pub to: String,
}

impl PartitionRange {
    /// Parses `col=from..to` or `col=value`.
    pub fn parse(text: &str) -> Result<PartitionRange> {
        let bad = || {
            Error::InvalidInput(format!(
                "--partitions {text}: expected COLUMN=FROM..TO or COLUMN=VALUE, e.g. \
                 event_date=2024-09-01..2024-09-03"
            ))
        };
        let (column, range) = text.split_once('=').ok_or_else(bad)?;
        let (from, to) = match range.split_once("..") {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (range.trim(), range.trim()),
        };
        if column.trim().is_empty() || from.is_empty() || to.is_empty() {
            return Err(bad());
        }
        Ok(PartitionRange {
            column: column.trim().to_string(),
            from: from.to_string(),
            to: to.to_string(),
        })
    }

    /// The range as a predicate over a column of type `t`.
    fn predicate(&self, t: &DataType) -> String {
        let lit = |v: &str| match t {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => quote(v),
            other => format!("CAST({} AS {})", quote(v), type_name(other)),
        };
        format!(
            "{c} >= {} AND {c} <= {}",
            lit(&self.from),
            lit(&self.to),
            c = ident(&self.column)
        )
    }
}

/// What happened to one flow.
#[derive(Debug, Clone)]
pub struct FlowOutcome {
    pub flow: String,
    pub target: String,
    /// `succeeded`, `failed`, `skipped` (no source advanced) or `upstream_failed`.
    pub status: String,
    pub rows_read: i64,
    pub rows_written: i64,
    pub rows_quarantined: i64,
    pub rows_dropped: i64,
    pub target_version: Option<i64>,
    /// Versions committed by this flow, in order (quarantine, target).
    pub commits: Vec<String>,
    pub error: Option<String>,
    /// The error was an expectation with action `fail`.
    pub quality_gate: bool,
    pub quality: Vec<QualityResult>,
    pub warnings: Vec<String>,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub run_id: String,
    pub pipeline: String,
    pub status: String,
    pub flows: Vec<FlowOutcome>,
    pub report: Report,
}

impl RunSummary {
    pub fn failed(&self) -> bool {
        self.status != "succeeded"
    }

    /// A failed expectation with action `fail` stopped a flow.
    pub fn quality_gate(&self) -> bool {
        self.flows.iter().any(|f| f.quality_gate)
    }
}

/// A source pinned for this run.
struct Pinned {
    info: TableInfo,
    table: DeltaTable,
    read: Read,
    app_id: String,
    watermark: Option<i64>,
    version: i64,
}

/// Crash-test hook: `STRATA_FAILPOINT=<name>` aborts the process when the run reaches `name`
/// (`pipeline::before_commits`, `pipeline::after_quarantine_commit`,
/// `pipeline::after_target_commit`).
pub(crate) fn failpoint(name: &str) {
    if let Ok(v) = std::env::var("STRATA_FAILPOINT")
        && v == name
    {
        eprintln!("strata: failpoint {name} reached, aborting");
        std::process::abort();
    }
}

/// A pipeline runs alone: a run holds the lease `pipeline:<name>` (renewed in the background)
/// until it finishes. A run that finds it held waits for it to be released or to expire (its
/// holder died); the time to live is `STRATA_PIPELINE_LEASE_TTL` seconds (default 15).
struct Lease {
    id: String,
    holder: String,
    heartbeat: tokio::task::JoinHandle<()>,
}

impl Lease {
    fn ttl() -> std::time::Duration {
        let secs = std::env::var("STRATA_PIPELINE_LEASE_TTL")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|s| *s > 0)
            .unwrap_or(15);
        std::time::Duration::from_secs(secs)
    }

    async fn acquire(
        ms: &strata_catalog::metastore::Metastore,
        pipeline: &str,
        holder: &str,
    ) -> Result<Lease> {
        let id = format!("pipeline:{pipeline}");
        let ttl = Self::ttl();
        let deadline = tokio::time::Instant::now() + ttl * 2 + std::time::Duration::from_secs(1);
        loop {
            match ms.try_acquire_lease(&id, holder, ttl).await? {
                None => break,
                Some(current) if tokio::time::Instant::now() >= deadline => {
                    return Err(Error::Conflict(format!(
                        "pipeline {pipeline} is being run by another process (run {}, since {}); \
                         wait for it to finish",
                        current.holder,
                        current.acquired_at.to_rfc3339()
                    )));
                }
                Some(_) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
            }
        }
        let (ms2, id2, holder2) = (ms.clone(), id.clone(), holder.to_string());
        let heartbeat = tokio::spawn(async move {
            loop {
                tokio::time::sleep(ttl / 3).await;
                if !matches!(ms2.renew_lease(&id2, &holder2, ttl).await, Ok(true)) {
                    tracing::warn!(lease = %id2, "the pipeline lease could not be renewed");
                }
            }
        });
        Ok(Lease {
            id,
            holder: holder.to_string(),
            heartbeat,
        })
    }

    async fn release(self, ms: &strata_catalog::metastore::Metastore) {
        self.heartbeat.abort();
        if let Err(e) = ms.release_lease(&self.id, &self.holder).await {
            tracing::warn!(error = %e, "releasing the pipeline lease");
        }
    }
}

/// A table left `creating` by a run that stopped mid-create: under the pipeline's lease it can
/// only be this pipeline's, so it is settled by its log now (activated when its Delta log
/// exists, removed otherwise).
async fn settle_creating(lh: &Lakehouse, name: &TableName) -> Result<()> {
    let ms = lh.metastore();
    for info in ms
        .list_tables_in_state(strata_catalog::metastore::TableState::Creating)
        .await?
        .into_iter()
        .filter(|t| &t.name == name)
    {
        let url = Lakehouse::location_of(&info)?;
        match strata_table::open_table(&url, &name.to_string()).await {
            Ok(t) => {
                let id = strata_table::detail(&t, &name.to_string())?.id;
                ms.activate_table(&info.table_id, Some(&id)).await?;
            }
            Err(_) => ms.abort_create_table(&info.table_id).await?,
        }
    }
    Ok(())
}

fn cancelled(opts: &RunOptions) -> Result<()> {
    if opts
        .cancel
        .as_ref()
        .is_some_and(|c| c.load(Ordering::SeqCst))
    {
        return Err(Error::Cancelled(
            "the run was stopped before this flow committed; nothing of it was written".into(),
        ));
    }
    Ok(())
}

/// Runs the pipeline. Validation problems fail the run before anything is read.
pub async fn run(lh: &Lakehouse, p: &Pipeline, opts: &RunOptions) -> Result<RunSummary> {
    let report = check(lh, p).await?;
    if !report.problems.is_empty() {
        return Err(Error::InvalidInput(format!(
            "pipeline {} is not valid:\n  {}",
            p.name(),
            report.problems.join("\n  ")
        )));
    }
    let selected = p.select(&opts.select)?;
    let ms = lh.metastore();
    let run_id = uuid::Uuid::new_v4().to_string();
    let trigger = if opts.partitions.is_some() {
        "backfill"
    } else if opts.trigger.is_empty() {
        "manual"
    } else {
        opts.trigger.as_str()
    };
    let marks: BTreeMap<String, String> =
        ms.full_refresh_marks(p.name()).await?.into_iter().collect();
    let lease = if opts.dry_run {
        None
    } else {
        let lease = Lease::acquire(ms, p.name(), &run_id).await?;
        // holding the lease: an earlier run still marked running has stopped
        ms.abandon_running_pipeline_runs(p.name()).await?;
        ms.begin_pipeline_run(&run_id, p.name(), trigger).await?;
        Some(lease)
    };
    let key = ms.secret_key().await?;
    let mut outcomes: Vec<FlowOutcome> = Vec::new();
    let mut failed: BTreeSet<usize> = BTreeSet::new();
    let mut stop: Option<Error> = None;
    for &i in &p.order {
        if !selected.contains(&i) {
            continue;
        }
        let f = &p.flows[i];
        let started = Utc::now();
        let blocked = f.upstream.iter().find(|u| failed.contains(u));
        let outcome = if let Some(&u) = blocked {
            failed.insert(i);
            FlowOutcome::new(
                f,
                "upstream_failed",
                Some(format!("upstream flow {} failed", p.flows[u].name)),
            )
        } else if stop.is_some() {
            failed.insert(i);
            FlowOutcome::new(
                f,
                "failed",
                Some("the run was stopped before this flow".into()),
            )
        } else {
            let full = opts.full_refresh || marks.contains_key(&f.name);
            match run_flow(lh, p, f, &report, &run_id, full, opts, &key).await {
                Ok(o) => {
                    if o.status == "failed" {
                        failed.insert(i);
                    }
                    o
                }
                Err(e) => {
                    failed.insert(i);
                    let mut o = FlowOutcome::new(f, "failed", Some(e.to_string()));
                    o.quality_gate = matches!(e, Error::QualityGate(_));
                    if matches!(e, Error::Cancelled(_)) {
                        stop = Some(e);
                    }
                    o
                }
            }
        };
        if !opts.dry_run {
            // the whole file and the flow's name: replay re-reads exactly these steps and rules
            let definition = json!({
                "origin": p.file.origin,
                "pipeline_file": p.file.text,
                "flow": f.name,
            });
            ms.record_flow_run(&FlowRun {
                run_id: run_id.clone(),
                pipeline: p.name().to_string(),
                flow: f.name.clone(),
                target: f.target.to_string(),
                status: outcome.status.clone(),
                started_at: started,
                finished_at: Some(Utc::now()),
                rows_read: outcome.rows_read,
                rows_written: outcome.rows_written,
                rows_quarantined: outcome.rows_quarantined,
                rows_dropped: outcome.rows_dropped,
                source_versions: outcome_sources(&outcome),
                target_version: outcome.target_version,
                unmapped_columns: report.unmapped.get(&f.name).cloned().unwrap_or_default(),
                samples: outcome_samples(&outcome),
                error: outcome.error.clone(),
                definition,
            })
            .await?;
            if !outcome.quality.is_empty() {
                ms.record_quality_results(&outcome.quality).await?;
            }
            if outcome.status == "succeeded" && marks.contains_key(&f.name) {
                ms.clear_full_refresh(p.name(), &f.name).await?;
            }
        }
        outcomes.push(outcome);
    }
    let status = if stop.is_some() {
        "aborted"
    } else if failed.is_empty() {
        "succeeded"
    } else {
        "failed"
    };
    let error = outcomes
        .iter()
        .find(|o| o.status == "failed")
        .and_then(|o| o.error.as_ref().map(|e| format!("flow {}: {e}", o.flow)));
    if !opts.dry_run {
        ms.finish_pipeline_run(&run_id, status, error.as_deref())
            .await?;
    }
    if let Some(l) = lease {
        l.release(ms).await;
    }
    Ok(RunSummary {
        run_id,
        pipeline: p.name().to_string(),
        status: status.to_string(),
        flows: outcomes,
        report,
    })
}

fn outcome_sources(o: &FlowOutcome) -> Value {
    o.warnings
        .iter()
        .find_map(|w| {
            w.strip_prefix("sources:")
                .and_then(|j| serde_json::from_str(j).ok())
        })
        .unwrap_or_else(|| json!({}))
}

fn outcome_samples(o: &FlowOutcome) -> Value {
    o.warnings
        .iter()
        .find_map(|w| {
            w.strip_prefix("samples:")
                .and_then(|j| serde_json::from_str(j).ok())
        })
        .unwrap_or_else(|| json!([]))
}

impl FlowOutcome {
    /// An expectation with action `fail` failed: nothing was committed; its results are kept.
    fn gate_failed(mut self, msg: String, quality: Vec<QualityResult>) -> Self {
        self.status = "failed".into();
        self.error = Some(msg);
        self.quality_gate = true;
        self.quality = quality;
        self
    }

    fn new(f: &Flow, status: &str, error: Option<String>) -> Self {
        FlowOutcome {
            flow: f.name.clone(),
            target: f.target.to_string(),
            status: status.to_string(),
            rows_read: 0,
            rows_written: 0,
            rows_quarantined: 0,
            rows_dropped: 0,
            target_version: None,
            commits: Vec::new(),
            error,
            quality_gate: false,
            quality: Vec::new(),
            warnings: Vec::new(),
        }
    }
}

async fn open_if_exists(
    lh: &Lakehouse,
    name: &TableName,
) -> Result<Option<(TableInfo, DeltaTable)>> {
    match lh.metastore().get_table(name).await? {
        Some(info) => {
            let t = lh.open_delta(&info).await?;
            Ok(Some((info, t)))
        }
        None => Ok(None),
    }
}

async fn txn_of(table: Option<&(TableInfo, DeltaTable)>, app: &str) -> Result<Option<i64>> {
    match table {
        Some((info, t)) => Ok(strata_table::txn_version(t, &info.name.to_string(), app).await?),
        None => Ok(None),
    }
}

/// The rows of the first source this run reads, in arrival order, with [`ROW`].
async fn read_primary(
    src: &Pinned,
    full: bool,
    mode: Mode,
    partition_by: &[String],
    apply_deletes: bool,
) -> Result<(RecordBatch, Option<Vec<RecordBatch>>, BTreeSet<u64>)> {
    let name = src.info.name.to_string();
    let snapshot_read = full || src.read == Read::Snapshot || src.watermark.is_none();
    if snapshot_read {
        let b = scan_snapshot(&src.table, &name, src.version, None).await?;
        return Ok((with_row(arrival_sorted(b)?)?, None, BTreeSet::new()));
    }
    let from = src.watermark.unwrap_or(-1) + 1;
    if from > src.version {
        // this source did not advance (another did): it has no new rows
        let schema = Arc::new(strata_table::arrow_schema(&src.table, &name)?);
        let none = RecordBatch::new_empty(schema);
        let changes = (mode == Mode::Replace).then(|| vec![none.clone()]);
        return Ok((with_row(none)?, changes, BTreeSet::new()));
    }
    let changes = scan_changes(&src.table, &name, from, src.version).await?;
    if mode == Mode::Replace {
        // the touched partitions, from every change row; then the snapshot pruned to them
        let pred = partition_predicate(&changes, partition_by)?;
        let b = match &pred {
            Some(p) => scan_snapshot(&src.table, &name, src.version, Some(p)).await?,
            None => {
                RecordBatch::new_empty(Arc::new(strata_table::arrow_schema(&src.table, &name)?))
            }
        };
        return Ok((
            with_row(arrival_sorted(b)?)?,
            Some(vec![changes]),
            BTreeSet::new(),
        ));
    }
    let types: &[&str] = if apply_deletes {
        &["insert", "update_postimage", "delete"]
    } else {
        &["insert", "update_postimage"]
    };
    let ct = changes
        .column_by_name("_change_type")
        .ok_or_else(|| Error::Internal("the change feed has no _change_type".into()))?
        .clone();
    let ct = arrow::compute::cast(&ct, &DataType::Utf8)?;
    let keep = BooleanArray::from(
        ct.as_string::<i32>()
            .iter()
            .map(|v| v.is_some_and(|v| types.contains(&v)))
            .collect::<Vec<_>>(),
    );
    let rows = with_row(arrival_sorted(filter_record_batch(&changes, &keep)?)?)?;
    // deleted rows (apply_deletes) by their arrival ordinal
    let mut deleted = BTreeSet::new();
    if let (Some(ct), Some(ord)) = (
        rows.column_by_name("_change_type"),
        rows.column_by_name(ROW),
    ) {
        let ct = arrow::compute::cast(ct, &DataType::Utf8)?;
        let ct = ct.as_string::<i32>();
        if let Some(ord) = ord.as_any().downcast_ref::<UInt64Array>() {
            for i in 0..rows.num_rows() {
                if ct.is_valid(i) && ct.value(i) == "delete" {
                    deleted.insert(ord.value(i));
                }
            }
        }
    }
    // the change feed's own columns are not the source's
    let keep_cols: Vec<usize> = rows
        .schema()
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| f.name() != "_change_type" && f.name() != "_commit_timestamp")
        .map(|(i, _)| i)
        .collect();
    Ok((rows.project(&keep_cols)?, None, deleted))
}

pub(crate) fn session_ctx() -> SessionContext {
    SessionContext::new_with_state(strata_table::session::session_state())
}

/// A session whose object store for the table's storage is the table's own (DataFusion would
/// otherwise open `file://` by itself, bypassing a counting store).
fn table_session(table: &DeltaTable) -> SessionContext {
    let ctx = session_ctx();
    let mut root = table.table_url().clone();
    root.set_path("/");
    root.set_query(None);
    ctx.runtime_env()
        .register_object_store(&root, table.log_store().root_object_store(None));
    ctx
}

async fn scan_snapshot(
    table: &DeltaTable,
    name: &str,
    version: i64,
    filter: Option<&str>,
) -> Result<RecordBatch> {
    let mut t = table.clone();
    if strata_table::current_version(&t) != version {
        t.load_version(version as u64)
            .await
            .map_err(|e| strata_table::Error::delta(name, e))?;
    }
    let schema = Arc::new(strata_table::arrow_schema(&t, name)?);
    let provider = provider(&t).await?;
    let ctx = table_session(&t);
    let mut df = ctx.read_table(provider)?;
    if let Some(f) = filter {
        let e = ctx.state().create_logical_expr(f, df.schema())?;
        df = df.filter(e)?;
    }
    let batches = df.collect().await?;
    let out_schema = batches.first().map(|b| b.schema()).unwrap_or(schema);
    Ok(concat_batches(&out_schema, &batches)?)
}

/// The change feed from `from` to `to`, with `_commit_version` as BIGINT.
async fn scan_changes(table: &DeltaTable, name: &str, from: i64, to: i64) -> Result<RecordBatch> {
    let ctx = table_session(table);
    let state = ctx.state();
    let plan = table
        .clone()
        .scan_cdf()
        .with_starting_version(from as u64)
        .with_ending_version(to as u64)
        .build(&state, None)
        .await
        .map_err(|e| {
            let text = e.to_string();
            if text.contains("version") || text.contains("not found") || text.contains("NotFound") {
                Error::Refused(format!(
                    "source {name}: its changes from version {from} are no longer available \
                     ({}); run the flow with --full-refresh to recompute it from the table",
                    strata_table::error::strip_df_noise(&text)
                ))
            } else {
                Error::Table(strata_table::Error::delta(name, e))
            }
        })?;
    let schema = plan.schema();
    let batches = datafusion::physical_plan::collect(plan, ctx.task_ctx())
        .await
        .map_err(|e| {
            let text = e.to_string();
            if text.contains("not found")
                || text.contains("No such file")
                || text.contains("NotFound")
            {
                Error::Refused(format!(
                    "source {name}: the files of its changes from version {from} are gone (a \
                     VACUUM deleted them); run the flow with --full-refresh to recompute it from \
                     the table"
                ))
            } else {
                Error::from(e)
            }
        })?;
    let b = concat_batches(&schema, &batches)?;
    // `_commit_version` as BIGINT
    let mut fields: Vec<Field> = Vec::new();
    let mut cols: Vec<ArrayRef> = Vec::new();
    for (f, c) in b.schema().fields().iter().zip(b.columns()) {
        if f.name() == "_commit_version" {
            fields.push(Field::new("_commit_version", DataType::Int64, true));
            cols.push(arrow::compute::cast(c, &DataType::Int64)?);
        } else {
            fields.push(f.as_ref().clone());
            cols.push(c.clone());
        }
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?)
}

/// Sorts rows into arrival order: (`_commit_version`, `_batch_id`, `_source_file`,
/// `_source_line`), the columns the rows have.
fn arrival_sorted(b: RecordBatch) -> Result<RecordBatch> {
    let cols: Vec<SortColumn> = [
        "_commit_version",
        "_batch_id",
        "_source_file",
        "_source_line",
    ]
    .iter()
    .filter_map(|c| b.column_by_name(c))
    .map(|c| SortColumn {
        values: c.clone(),
        options: Some(SortOptions::default()),
    })
    .collect();
    if cols.is_empty() || b.num_rows() < 2 {
        return Ok(b);
    }
    let idx = lexsort_to_indices(&cols, None)?;
    Ok(take_record_batch(&b, &idx)?)
}

pub(crate) fn with_row(b: RecordBatch) -> Result<RecordBatch> {
    let mut fields: Vec<Field> = b
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new(ROW, DataType::UInt64, false));
    let mut cols = b.columns().to_vec();
    cols.push(Arc::new(UInt64Array::from_iter_values(
        0..b.num_rows() as u64,
    )));
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?)
}

/// For `unique` with action quarantine: a mask keeping the first row of each key (in arrival
/// order when the rows carry it), and the indexes of the later ones.
fn later_duplicates(b: &RecordBatch, cols: &[String]) -> Result<(BooleanArray, Vec<usize>)> {
    let n = b.num_rows();
    if n == 0 {
        return Ok((BooleanArray::from(Vec::<bool>::new()), Vec::new()));
    }
    let key_cols = cols
        .iter()
        .map(|c| {
            b.column_by_name(c).cloned().ok_or_else(|| {
                Error::InvalidInput(format!("unique column {c} is not an output column"))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let converter = arrow::row::RowConverter::new(
        key_cols
            .iter()
            .map(|c| arrow::row::SortField::new(c.data_type().clone()))
            .collect(),
    )?;
    let rows = converter.convert_columns(&key_cols)?;
    let mut order: Vec<usize> = (0..n).collect();
    if let Some(rc) = b
        .column_by_name(ROW)
        .and_then(|c| c.as_any().downcast_ref::<UInt64Array>())
    {
        order.sort_by_key(|&i| rc.value(i));
    }
    let mut seen = std::collections::HashSet::new();
    let mut keep = vec![true; n];
    let mut dups = Vec::new();
    for i in order {
        if !seen.insert(rows.row(i).as_ref().to_vec()) {
            keep[i] = false;
            dups.push(i);
        }
    }
    dups.sort_unstable();
    Ok((BooleanArray::from(keep), dups))
}

/// A SQL literal of row `row` of `a`: `CAST('text' AS TYPE)`, or None for NULL.
fn sql_literal(a: &ArrayRef, row: usize) -> Result<Option<String>> {
    if a.is_null(row) {
        return Ok(None);
    }
    let t = text(a, row)?;
    Ok(Some(match a.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => quote(&t),
        dt => format!("CAST({} AS {})", quote(&t), type_name(dt)),
    }))
}

/// `p IN (..) [OR p IS NULL]` per partition column over the distinct values in `batches`,
/// ANDed over columns; None when there are no rows.
fn partition_predicate(batch: &RecordBatch, cols: &[String]) -> Result<Option<String>> {
    if batch.num_rows() == 0 {
        return Ok(None);
    }
    let mut parts = Vec::new();
    for c in cols {
        let a = batch.column_by_name(c).ok_or_else(|| {
            Error::InvalidInput(format!(
                "partition column {c} is not a column of the source"
            ))
        })?;
        let mut values = BTreeSet::new();
        let mut null = false;
        for r in 0..a.len() {
            match sql_literal(a, r)? {
                Some(v) => {
                    values.insert(v);
                }
                None => null = true,
            }
        }
        let mut terms = Vec::new();
        if !values.is_empty() {
            terms.push(format!(
                "{} IN ({})",
                ident(c),
                values.into_iter().collect::<Vec<_>>().join(", ")
            ));
        }
        if null {
            terms.push(format!("{} IS NULL", ident(c)));
        }
        parts.push(format!("({})", terms.join(" OR ")));
    }
    Ok(Some(parts.join(" AND ")))
}

/// `{"col": value, ...}` of the partition columns of a row, for `_scope`.
fn scope_of(batch: &RecordBatch, row: usize, cols: &[String]) -> Result<Option<String>> {
    if cols.is_empty() {
        return Ok(None);
    }
    let mut obj = serde_json::Map::new();
    for c in cols {
        let v = match batch.column_by_name(c) {
            Some(a) if !a.is_null(row) => Value::String(text(a, row)?),
            _ => Value::Null,
        };
        obj.insert(c.clone(), v);
    }
    Ok(Some(Value::Object(obj).to_string()))
}

/// Where a source row came from: `table@version` and its key columns (or its bronze file
/// and line) as JSON.
fn pointer_of(
    batch: &RecordBatch,
    row: usize,
    table: &str,
    version: i64,
    keys: &[String],
) -> Result<(String, i64)> {
    let v = match batch.column_by_name("_commit_version") {
        Some(a) if !a.is_null(row) => a
            .as_any()
            .downcast_ref::<Int64Array>()
            .map(|x| x.value(row))
            .unwrap_or(version),
        _ => version,
    };
    let mut obj = serde_json::Map::new();
    // the key names the row when it has one; a row whose key is NULL (a corrupt record, say)
    // is named by its bronze file and line
    let keyed = !keys.is_empty()
        && keys
            .iter()
            .all(|k| batch.column_by_name(k).is_some_and(|a| a.is_valid(row)));
    let named: Vec<&str> = if keyed {
        keys.iter().map(String::as_str).collect()
    } else {
        ["_source_file", "_source_line"]
            .into_iter()
            .filter(|c| batch.column_by_name(c).is_some())
            .collect()
    };
    for c in named {
        let a = batch.column_by_name(c).expect("checked above");
        obj.insert(c.to_string(), crate::record::value(a, row)?);
    }
    Ok((format!("{table}@{v} {}", Value::Object(obj)), v))
}

#[allow(clippy::too_many_arguments)]
async fn run_flow(
    lh: &Lakehouse,
    p: &Pipeline,
    f: &Flow,
    report: &Report,
    run_id: &str,
    full_refresh: bool,
    opts: &RunOptions,
    key: &[u8],
) -> Result<FlowOutcome> {
    let ms = lh.metastore();
    if !opts.dry_run {
        settle_creating(lh, &f.target).await?;
        settle_creating(lh, &f.quarantine).await?;
    }
    let target = open_if_exists(lh, &f.target).await?;
    let quarantine = open_if_exists(lh, &f.quarantine).await?;
    // 1. pin the sources
    let mut pinned: Vec<Pinned> = Vec::new();
    // STRATA_TRACE_READS: count the bytes read from each source file (kept in the run's samples)
    let reads = std::env::var_os("STRATA_TRACE_READS")
        .is_some()
        .then(strata_table::counting::ReadCounter::default);
    for s in &f.sources {
        let info = lh
            .table(&s.name)
            .await
            .map_err(|e| Error::NotFound(format!("source {} of flow {}: {e}", s.name, f.name)))?;
        let table = match &reads {
            Some(counter) => {
                let url = Lakehouse::location_of(&info)?;
                strata_table::counting::open_table_counted(&url, &info.name.to_string(), counter)
                    .await?
            }
            None => lh.open_delta(&info).await?,
        };
        let app_id = format!("flow:{}:{}:{}", p.name(), f.name, info.table_id);
        let watermark = txn_of(target.as_ref(), &app_id).await?;
        let ahead = txn_of(quarantine.as_ref(), &app_id).await?;
        let latest = strata_table::current_version(&table);
        let version = match (ahead, watermark) {
            (Some(q), w) if Some(q) > w && !full_refresh => q.min(latest),
            _ => latest,
        };
        pinned.push(Pinned {
            info,
            table,
            read: s.read,
            app_id,
            watermark,
            version,
        });
    }
    let mut outcome = FlowOutcome::new(f, "succeeded", None);
    // a backfill: the range, read at the current watermarks
    let backfill: Option<String> = match &opts.partitions {
        None => None,
        Some(range) => {
            if !matches!(f.mode, Mode::Replace | Mode::Full)
                || !f.spec.partition_by.contains(&range.column)
            {
                outcome.status = "skipped".into();
                outcome.warnings.push(format!(
                    "--partitions applies to replace and full flows partitioned by {}; flow {} \
                     ({} mode, partitioned by [{}]) was not run",
                    range.column,
                    f.name,
                    f.mode,
                    f.spec.partition_by.join(", ")
                ));
                return Ok(outcome);
            }
            if target.is_none() || pinned.iter().any(|s| s.watermark.is_none()) {
                return Err(Error::InvalidInput(format!(
                    "flow {} has not run yet: run the pipeline once before a backfill",
                    f.name
                )));
            }
            for s in pinned.iter_mut() {
                s.version = s.watermark.unwrap_or(s.version);
            }
            let schema =
                strata_table::arrow_schema(&pinned[0].table, &pinned[0].info.name.to_string())?;
            let t = schema
                .field_with_name(&range.column)
                .map(|fl| fl.data_type().clone())
                .map_err(|_| {
                    Error::InvalidInput(format!(
                        "--partitions {}: {} has no column {}",
                        range.column, pinned[0].info.name, range.column
                    ))
                })?;
            Some(range.predicate(&t))
        }
    };
    // declared PII columns are tagged on the sources that have them
    if !opts.dry_run && !f.pii.is_empty() {
        for s in &pinned {
            let schema = strata_table::arrow_schema(&s.table, &s.info.name.to_string())?;
            for c in f.pii.iter().filter(|c| schema.field_with_name(c).is_ok()) {
                ms.add_tag(&s.info.table_id, Some(c), "pii").await?;
            }
        }
    }
    // on_schema_change = full_refresh: an output that no longer fits the target recomputes it
    let schema_refresh = match (&target, report.outputs.get(&f.name)) {
        (Some((info, t)), Some(out))
            if f.spec.on_schema_change == OnSchemaChange::FullRefresh && backfill.is_none() =>
        {
            let existing = strata_table::arrow_schema(t, &info.name.to_string())?;
            out.fields()
                .iter()
                .any(|o| match existing.field_with_name(o.name()) {
                    Ok(e) => {
                        strata_table::delta_type(e.data_type())
                            != strata_table::delta_type(o.data_type())
                    }
                    Err(_) => true,
                })
        }
        _ => false,
    };
    if schema_refresh {
        outcome.warnings.push(format!(
            "the output's columns changed: {} is recomputed with the new schema (on_schema_change = full_refresh)",
            f.target
        ));
    }
    let full_refresh = full_refresh || schema_refresh;
    let first_run = target.is_none() || pinned.iter().any(|s| s.watermark.is_none());
    let advanced = pinned.iter().any(|s| Some(s.version) > s.watermark) || backfill.is_some();
    let sources_json: Value = pinned
        .iter()
        .map(|s| {
            (
                s.info.name.to_string(),
                json!([s.watermark.map(|w| w + 1).unwrap_or(0), s.version]),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into();
    outcome.warnings.push(format!("sources:{sources_json}"));
    if !advanced && !full_refresh && !first_run {
        outcome.status = "skipped".into();
        return Ok(outcome);
    }
    let full = backfill.is_none() && (full_refresh || first_run || f.mode == Mode::Full);
    // 2. read the first source once
    let (primary, _changes, deleted) = match &backfill {
        Some(pred) => {
            let src = &pinned[0];
            let b = scan_snapshot(
                &src.table,
                &src.info.name.to_string(),
                src.version,
                Some(pred),
            )
            .await?;
            (with_row(arrival_sorted(b)?)?, None, BTreeSet::new())
        }
        None => {
            read_primary(
                &pinned[0],
                full,
                f.mode,
                &f.spec.partition_by,
                f.spec.apply_deletes,
            )
            .await?
        }
    };
    outcome.rows_read = primary.num_rows() as i64;
    let mut others: Vec<(TableName, Arc<dyn TableProvider>)> = Vec::new();
    for s in pinned.iter().skip(1) {
        // a further source read as changes: its new rows since the watermark, like the first's
        if s.read == Read::Changes && !full && backfill.is_none() && s.watermark.is_some() {
            let (rows, _, _) = read_primary(s, false, Mode::Append, &[], false).await?;
            let keep: Vec<usize> = rows
                .schema()
                .fields()
                .iter()
                .enumerate()
                .filter(|(_, fl)| fl.name() != ROW && fl.name() != "_commit_version")
                .map(|(i, _)| i)
                .collect();
            let rows = rows.project(&keep)?;
            let p: Arc<dyn TableProvider> =
                Arc::new(MemTable::try_new(rows.schema(), vec![vec![rows]])?);
            others.push((s.info.name.clone(), p));
            continue;
        }
        let mut t = s.table.clone();
        if strata_table::current_version(&t) != s.version {
            t.load_version(s.version as u64)
                .await
                .map_err(|e| strata_table::Error::delta(&s.info.name.to_string(), e))?;
        }
        let provider = provider(&t).await?;
        others.push((s.info.name.clone(), provider));
    }
    // 3. steps, SQL
    let pii = crate::validate::pii_columns(lh, f).await?;
    let t = transform::transform(
        &f.spec
            .steps
            .iter()
            .map(|s| s.get_ref().clone())
            .collect::<Vec<_>>(),
        f.spec.sql.as_ref().map(|s| s.get_ref().as_str()),
        &pinned[0].info.name,
        primary.clone(),
        others,
        key,
        &pii,
    )
    .await?;
    let src_name = pinned[0].info.name.to_string();
    let src_version = pinned[0].version;
    let keys: Vec<String> = f.spec.keys.clone();
    let partition_by = f.spec.partition_by.clone();
    let mut qrows: Vec<QRow> = Vec::new();
    for c in &t.failed {
        let r = c.row as usize;
        let record = row_json(&primary, r, &|n| n == ROW || n == "_commit_version")?;
        let (pointer, v) = pointer_of(&primary, r, &src_name, src_version, &keys)?;
        qrows.push(QRow {
            stage: "cast",
            scope: scope_of(&primary, r, &partition_by)?,
            source_table: src_name.clone(),
            source_version: v,
            pointer,
            rules: Vec::new(),
            reason: c.reasons.join("; "),
            record,
        });
    }
    // 4. row rules, in the same pass as the output
    let mut row_rules: Vec<Rule> = f
        .rules
        .iter()
        .filter(|r| r.kind.is_row_rule())
        .cloned()
        .collect();
    if f.mode == Mode::Merge {
        for k in &keys {
            row_rules.push(Rule {
                name: if keys.len() == 1 {
                    "key_not_null".into()
                } else {
                    format!("key_not_null({k})")
                },
                action: Action::Quarantine,
                kind: RuleKind::NotNull(k.clone()),
            });
        }
    }
    let out_df = t.output.clone();
    let df_schema = out_df.schema().clone();
    // a bad delete_when fails the flow before anything is read further or written
    delete_expr(&t.session, &df_schema, f)?;
    let mut exprs: Vec<Expr> = df_schema.columns().into_iter().map(Expr::Column).collect();
    for (n, r) in row_rules.iter().enumerate() {
        let e = r.row_expr(&t.session, &df_schema, &f.at, &f.name)?;
        let failed = Expr::Not(Box::new(datafusion::functions::expr_fn::coalesce(vec![
            e,
            datafusion::logical_expr::lit(false),
        ])));
        exprs.push(failed.alias(format!("__strata_fail_{n}")));
    }
    let checked = out_df.select(exprs)?.collect().await?;
    let checked_schema: SchemaRef = checked
        .first()
        .map(|b| b.schema())
        .unwrap_or_else(|| Arc::new(Schema::new(Vec::<Field>::new())));
    let checked = if checked.is_empty() {
        None
    } else {
        Some(concat_batches(&checked_schema, &checked)?)
    };
    let n_out = checked.as_ref().map(|b| b.num_rows()).unwrap_or(0);
    let n_vis = df_schema.fields().len();
    let mut rule_failed = vec![0i64; row_rules.len()];
    let mut keep = vec![true; n_out];
    let mut dropped = 0i64;
    let mut samples: Vec<Value> = Vec::new();
    let mut fail_rows: Vec<(usize, Vec<String>)> = Vec::new();
    if let Some(b) = &checked {
        let flags: Vec<&BooleanArray> = (0..row_rules.len())
            .map(|n| b.column(n_vis + n).as_boolean())
            .collect();
        let visible = b.project(&(0..n_vis).collect::<Vec<_>>())?;
        let ordinals = visible
            .column_by_name(ROW)
            .and_then(|c| c.as_any().downcast_ref::<UInt64Array>().cloned());
        for (r, keep_row) in keep.iter_mut().enumerate() {
            // a deleted source row (apply_deletes) is not checked: it removes its key
            if let Some(o) = &ordinals
                && deleted.contains(&o.value(r))
            {
                continue;
            }
            let failed: Vec<usize> = (0..row_rules.len())
                .filter(|&n| flags[n].is_valid(r) && flags[n].value(r))
                .collect();
            if failed.is_empty() {
                continue;
            }
            for &n in &failed {
                rule_failed[n] += 1;
            }
            let names: Vec<String> = failed.iter().map(|&n| row_rules[n].name.clone()).collect();
            let action = failed
                .iter()
                .map(|&n| row_rules[n].action)
                .max_by_key(|a| match a {
                    Action::Warn => 0,
                    Action::Drop => 1,
                    Action::Quarantine => 2,
                    Action::Fail => 3,
                })
                .unwrap_or(Action::Warn);
            match action {
                Action::Warn => {}
                Action::Fail => {
                    *keep_row = false;
                    fail_rows.push((r, names));
                }
                Action::Drop => {
                    *keep_row = false;
                    dropped += 1;
                    if samples.len() < SAMPLES {
                        samples.push(json!({"kind": "dropped", "rules": names, "row": row_json(&visible, r, &|n| n == ROW)?}));
                    }
                }
                Action::Quarantine => {
                    *keep_row = false;
                    let record = row_json(&visible, r, &|n| n == ROW)?;
                    let (pointer, v, scope) = match visible.column_by_name(ROW) {
                        Some(rc) => {
                            let src_row = rc
                                .as_any()
                                .downcast_ref::<UInt64Array>()
                                .map(|a| a.value(r) as usize)
                                .unwrap_or(0);
                            let (p, v) =
                                pointer_of(&primary, src_row, &src_name, src_version, &keys)?;
                            (p, v, scope_of(&visible, r, &partition_by)?)
                        }
                        None => (
                            format!("{src_name}@{src_version}"),
                            src_version,
                            scope_of(&visible, r, &partition_by)?,
                        ),
                    };
                    qrows.push(QRow {
                        stage: "expectation",
                        scope,
                        source_table: src_name.clone(),
                        source_version: v,
                        pointer,
                        reason: format!("failed {}", names.join(", ")),
                        rules: names,
                        record,
                    });
                }
            }
        }
    }
    let now = Utc::now();
    let mut quality: Vec<QualityResult> = row_rules
        .iter()
        .enumerate()
        .filter(|(_, r)| f.rules.iter().any(|x| x.name == r.name))
        .map(|(n, r)| QualityResult {
            run_id: run_id.to_string(),
            pipeline: Some(p.name().to_string()),
            flow: Some(f.name.clone()),
            table: f.target.to_string(),
            rule: r.name.clone(),
            kind: "row".into(),
            action: r.action.as_str().into(),
            rows_checked: n_out as i64,
            rows_failed: rule_failed[n],
            passed: rule_failed[n] == 0,
            observed: None,
            evaluated_at: now,
        })
        .collect();
    if !fail_rows.is_empty() {
        let visible = checked
            .as_ref()
            .expect("rows failed")
            .project(&(0..n_vis).collect::<Vec<_>>())?;
        let (r, names) = &fail_rows[0];
        let msg = format!(
            "flow {}: {} row(s) failed expectation {} (action fail), for example {}; nothing \
             was committed to {}",
            f.name,
            fail_rows.len(),
            names.join(", "),
            row_json(&visible, *r, &|n| n == ROW)?,
            f.target
        );
        return Ok(outcome.gate_failed(msg, quality));
    }
    // the kept output, without the flags
    let kept: RecordBatch = match &checked {
        Some(b) => {
            let mask = BooleanArray::from(keep.clone());
            filter_record_batch(&b.project(&(0..n_vis).collect::<Vec<_>>())?, &mask)?
        }
        None => RecordBatch::new_empty(Arc::new(df_schema.as_arrow().clone())),
    };
    // `unique` rules with action quarantine: the later duplicates (by arrival) go to quarantine
    let mut kept = kept;
    let mut moved_dups: BTreeMap<String, i64> = BTreeMap::new();
    for r in f.rules.iter().filter(|r| r.action == Action::Quarantine) {
        let RuleKind::Unique(cols) = &r.kind else {
            continue;
        };
        let (mask, dups) = later_duplicates(&kept, cols)?;
        for &d in &dups {
            let record = row_json(&kept, d, &|n| n == ROW)?;
            let (pointer, v) = match kept.column_by_name(ROW) {
                Some(rc) => {
                    let src_row = rc
                        .as_any()
                        .downcast_ref::<UInt64Array>()
                        .map(|a| a.value(d) as usize)
                        .unwrap_or(0);
                    pointer_of(&primary, src_row, &src_name, src_version, &keys)?
                }
                None => (format!("{src_name}@{src_version}"), src_version),
            };
            qrows.push(QRow {
                stage: "expectation",
                scope: scope_of(&kept, d, &partition_by)?,
                source_table: src_name.clone(),
                source_version: v,
                pointer,
                rules: vec![r.name.clone()],
                reason: format!(
                    "failed {}: an earlier row has the same {}",
                    r.name,
                    cols.join(", ")
                ),
                record,
            });
        }
        moved_dups.insert(r.name.clone(), dups.len() as i64);
        kept = filter_record_batch(&kept, &mask)?;
    }
    // 5. table rules over the checked output
    let (table_results, table_fail) = {
        let table_rules: Vec<&Rule> = f.rules.iter().filter(|r| !r.kind.is_row_rule()).collect();
        let out = without_row(&kept)?;
        let rows = out.num_rows() as i64;
        let output: Arc<dyn TableProvider> =
            Arc::new(MemTable::try_new(out.schema(), vec![vec![out]])?);
        let target_provider = match &target {
            Some((_, t)) => Some(provider(t).await?),
            None => None,
        };
        let tname = f.target.to_string();
        let scope = crate::quality::Scope {
            run_id,
            pipeline: Some(p.name()),
            flow: Some(&f.name),
            table: &tname,
        };
        crate::quality::table_rules(lh, &table_rules, output, rows, target_provider, &scope).await?
    };
    quality.extend(table_results.into_iter().map(|mut q| {
        // a unique rule that quarantined duplicates failed on those rows, though what stays passes
        if let Some(&n) = moved_dups.get(&q.rule) {
            q.rows_failed = n;
            q.passed = n == 0;
            q.observed = Some(n.to_string());
            q.rows_checked += n;
        }
        q
    }));
    if let Some(msg) = table_fail {
        let msg = format!(
            "flow {}: {msg}; nothing was committed to {}",
            f.name, f.target
        );
        return Ok(outcome.gate_failed(msg, quality));
    }
    outcome.quality = quality;
    outcome.rows_dropped = dropped;
    outcome.rows_quarantined = qrows.len() as i64;
    if let Some(counter) = &reads {
        samples.push(json!({"kind": "reads", "bytes": counter.snapshot()}));
    }
    if !samples.is_empty() {
        outcome
            .warnings
            .push(format!("samples:{}", Value::Array(samples)));
    }
    // 6. the rows to write (merge: the latest per key)
    let mut data = kept;
    if f.mode == Mode::Merge {
        let order: Vec<String> = f.spec.sequence_by.iter().cloned().collect();
        data = crate::reduce::latest_per_key(&data, &keys, &order)?;
    }
    // apply_deletes: which of the rows to write are deletions of their key
    let delete_flags: Option<BooleanArray> = match data.column_by_name(ROW) {
        Some(c) if !deleted.is_empty() => c.as_any().downcast_ref::<UInt64Array>().map(|o| {
            (0..o.len())
                .map(|i| deleted.contains(&o.value(i)))
                .collect()
        }),
        _ => None,
    };
    let data = without_row(&data)?;
    let visible = data.schema().as_ref().clone();
    outcome.rows_written = data.num_rows() as i64;
    if opts.dry_run {
        return Ok(outcome);
    }
    failpoint("pipeline::before_commits");
    cancelled(opts)?;
    // 7. commits: quarantine first, target last, the same txns
    let mut txns: Vec<Txn> = pinned
        .iter()
        .map(|s| Txn::new(s.app_id.clone(), s.version))
        .collect();
    if full_refresh || backfill.is_some() {
        let app = format!("backfill:{}:{}", p.name(), f.name);
        txns.push(Txn::new(app.clone(), ms.next_sequence(&app).await?));
    }
    let wopts = WriteOptions {
        txns: txns.clone(),
        ..Default::default()
    };
    let recompute_scope = full || f.mode == Mode::Replace || backfill.is_some();
    if !qrows.is_empty() || (recompute_scope && quarantine.is_some()) {
        let (qinfo, qtable) = match quarantine {
            Some(q) => q,
            None => ensure_quarantine(lh, &f.quarantine, &f.target).await?,
        };
        let qbatch = envelope(&qrows, run_id, &f.target.to_string(), &f.name)?;
        let qdf = frame(qbatch)?;
        let qname = qinfo.name.to_string();
        let (_, o) = if recompute_scope {
            let mut pred = format!(
                "_flow = {} AND _stage IN ('cast', 'expectation')",
                quote(&f.name)
            );
            if !full {
                let mut scopes: BTreeSet<String> =
                    qrows.iter().filter_map(|r| r.scope.clone()).collect();
                if backfill.is_some() {
                    for r in 0..primary.num_rows() {
                        if let Some(sc) = scope_of(&primary, r, &partition_by)? {
                            scopes.insert(sc);
                        }
                    }
                }
                if let Some(ch) = &_changes {
                    for b in ch {
                        for r in 0..b.num_rows() {
                            if let Some(s) = scope_of(b, r, &partition_by)? {
                                scopes.insert(s);
                            }
                        }
                    }
                }
                let list = if scopes.is_empty() {
                    "NULL".to_string()
                } else {
                    scopes
                        .iter()
                        .map(|s| quote(s))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                pred = format!("{pred} AND _scope IN ({list})");
            }
            strata_table::replace_where(qtable, &qname, qdf, &pred, &wopts).await?
        } else {
            strata_table::append(qtable, &qname, qdf, &wopts).await?
        };
        if let Some(v) = o.version {
            outcome.commits.push(format!("{qname}@{v}"));
        }
    }
    failpoint("pipeline::after_quarantine_commit");
    cancelled(opts)?;
    // a target this run creates is empty: a merge into it is an append of the reduced rows
    let created = target.is_none();
    let (tinfo, mut ttable) = match target {
        Some(t) => t,
        None => {
            let schema = if f.mode == Mode::Scd2 {
                scd2_schema(&visible, f)?
            } else {
                visible.clone()
            };
            create_target(lh, f, &schema, report).await?
        }
    };
    let tname = tinfo.name.to_string();
    // new columns of the output
    let existing = strata_table::arrow_schema(&ttable, &tname)?;
    let new_cols: Vec<Field> = visible
        .fields()
        .iter()
        .filter(|fl| existing.field_with_name(fl.name()).is_err())
        .map(|fl| fl.as_ref().clone())
        .collect();
    if !new_cols.is_empty() && !schema_refresh {
        match f.spec.on_schema_change {
            OnSchemaChange::AppendNewColumns => {
                ttable = strata_table::add_columns(ttable, &tname, new_cols.clone()).await?;
                outcome.warnings.push(format!(
                    "added column(s) {} to {tname}",
                    new_cols
                        .iter()
                        .map(|c| c.name().as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            OnSchemaChange::Fail | OnSchemaChange::FullRefresh => {
                return Err(Error::Refused(format!(
                    "flow {}: its output has new column(s) {} that {tname} lacks, and its \
                     on_schema_change is {:?}; set on_schema_change = \"append_new_columns\" to \
                     add them",
                    f.name,
                    new_cols
                        .iter()
                        .map(|c| c.name().as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    f.spec.on_schema_change
                )));
            }
        }
    }
    let rows = data.num_rows();
    let committed = match f.mode {
        _ if schema_refresh => {
            let data = match f.mode {
                Mode::Scd2 => {
                    return Err(Error::Refused(format!(
                        "flow {}: an scd2 target keeps history, so on_schema_change = full_refresh \
                     would lose it; use append_new_columns",
                        f.name
                    )));
                }
                _ => data,
            };
            let (_, o) = strata_table::overwrite_schema(
                ttable,
                &tname,
                frame(data)?,
                f.spec.partition_by.clone(),
                &wopts,
            )
            .await?;
            o.version
        }
        _ if backfill.is_some() => {
            let pred = backfill.as_deref().unwrap_or("false");
            let (_, o) =
                strata_table::replace_where(ttable, &tname, frame(data)?, pred, &wopts).await?;
            o.version
        }
        Mode::Scd2 if rows == 0 => strata_table::commit_txns(&mut ttable, &tname, &txns).await?,
        Mode::Scd2 => scd2_write(ttable, &tname, data, f, &wopts, full).await?,
        _ if full && f.mode != Mode::Append && f.mode != Mode::Merge => {
            let (_, o) =
                strata_table::replace_where(ttable, &tname, frame(data)?, "true", &wopts).await?;
            o.version
        }
        Mode::Append | Mode::Merge if full && full_refresh => {
            let (_, o) =
                strata_table::replace_where(ttable, &tname, frame(data)?, "true", &wopts).await?;
            o.version
        }
        _ if rows == 0 && f.mode != Mode::Replace => {
            strata_table::commit_txns(&mut ttable, &tname, &txns).await?
        }
        Mode::Append => {
            let (_, o) = strata_table::append(ttable, &tname, frame(data)?, &wopts).await?;
            o.version
        }
        Mode::Merge if created && delete_flags.is_none() && f.spec.delete_when.is_none() => {
            let (_, o) = strata_table::append(ttable, &tname, frame(data)?, &wopts).await?;
            o.version
        }
        Mode::Merge => merge_rows(ttable, &tname, data, f, &wopts, delete_flags).await?,
        Mode::Replace => match _changes.as_ref().and_then(|c| c.first()) {
            Some(ch) => match partition_predicate(ch, &partition_by)? {
                Some(pred) => {
                    let (_, o) =
                        strata_table::replace_where(ttable, &tname, frame(data)?, &pred, &wopts)
                            .await?;
                    o.version
                }
                None => strata_table::commit_txns(&mut ttable, &tname, &txns).await?,
            },
            None => strata_table::commit_txns(&mut ttable, &tname, &txns).await?,
        },
        Mode::Full => {
            let (_, o) =
                strata_table::replace_where(ttable, &tname, frame(data)?, "true", &wopts).await?;
            o.version
        }
    };
    failpoint("pipeline::after_target_commit");
    if let Some(v) = committed {
        outcome.commits.push(format!("{tname}@{v}"));
        outcome.target_version = Some(v);
        if !f.spec.zorder.is_empty() && rows > 0 {
            let t = lh.open_delta(&tinfo).await?;
            strata_table::optimize(t, &tname, Some(f.spec.zorder.clone())).await?;
        }
    }
    for s in &pinned {
        ms.record_lineage(
            &s.info.name.to_string(),
            &tname,
            "flow",
            Some(p.name()),
            Some(&f.name),
        )
        .await?;
    }
    ms.touch_table(&tinfo.table_id).await?;
    Ok(outcome)
}

/// The table's scan provider at its loaded version.
pub(crate) async fn provider(t: &DeltaTable) -> Result<Arc<dyn TableProvider>> {
    Ok(Arc::new(t.table_provider().build().await?))
}

/// A DataFrame over one batch.
pub(crate) fn frame(b: RecordBatch) -> Result<DataFrame> {
    let ctx = session_ctx();
    let schema = b.schema();
    let t = MemTable::try_new(schema, vec![vec![b]])?;
    Ok(ctx.read_table(Arc::new(t))?)
}

/// The columns an `scd2` target adds to the flow's output.
pub const SCD2_COLUMNS: [&str; 3] = ["__start_at", "__end_at", "__is_current"];

/// An `scd2` target's schema: the output, then `__start_at` and `__end_at` (the sequence
/// column's type) and `__is_current`.
fn scd2_schema(out: &Schema, f: &Flow) -> Result<Schema> {
    let seq = f.spec.sequence_by.as_deref().unwrap_or_default();
    let t = out
        .field_with_name(seq)
        .map_err(|_| {
            Error::InvalidInput(format!(
                "flow {}: sequence_by {seq} is not an output column",
                f.name
            ))
        })?
        .data_type()
        .clone();
    let mut fields: Vec<Field> = out.fields().iter().map(|x| x.as_ref().clone()).collect();
    fields.push(Field::new("__start_at", t.clone(), true));
    fields.push(Field::new("__end_at", t, true));
    fields.push(Field::new("__is_current", DataType::Boolean, true));
    Ok(Schema::new(fields))
}

/// Writes an `scd2` flow's rows: the history of every key the rows touch is recomputed from
/// its versions already in the target plus the new rows, in sequence order, so a late arrival
/// lands in its place in history. A new version opens when a tracked column changes (`track`,
/// by default every column but the keys and the sequence); a row with the same key and
/// sequence as a version replaces it. One commit replaces those keys' rows.
async fn scd2_write(
    ttable: DeltaTable,
    tname: &str,
    data: RecordBatch,
    f: &Flow,
    wopts: &WriteOptions,
    full: bool,
) -> Result<Option<i64>> {
    let keys = &f.spec.keys;
    let seq = f.spec.sequence_by.clone().unwrap_or_default();
    let out_schema = data.schema();
    let cols: Vec<String> = out_schema
        .fields()
        .iter()
        .map(|x| x.name().clone())
        .collect();
    let track: Vec<String> = if f.spec.track.is_empty() {
        cols.iter()
            .filter(|c| !keys.contains(c) && **c != seq)
            .cloned()
            .collect()
    } else {
        f.spec.track.clone()
    };
    let pred = if full {
        "true".to_string()
    } else {
        partition_predicate(&data, keys)?.unwrap_or_else(|| "false".into())
    };
    let existing: Arc<dyn TableProvider> = if full {
        Arc::new(MemTable::try_new(
            Arc::new(scd2_schema(&out_schema, f)?),
            vec![vec![]],
        )?)
    } else {
        let b = scan_snapshot(
            &ttable,
            tname,
            strata_table::current_version(&ttable),
            Some(&pred),
        )
        .await?;
        Arc::new(MemTable::try_new(b.schema(), vec![vec![b]])?)
    };
    let input: Arc<dyn TableProvider> =
        Arc::new(MemTable::try_new(out_schema.clone(), vec![vec![data]])?);
    let state = transform::session(vec![
        ("default".into(), "existing".into(), existing),
        ("default".into(), "input".into(), input),
    ])?;
    let list = |v: &[String]| v.iter().map(|c| ident(c)).collect::<Vec<_>>().join(", ");
    let keys_s = list(keys);
    let cols_s = list(&cols);
    let seq_i = ident(&seq);
    let tracked = if track.is_empty() {
        "''".to_string()
    } else {
        format!(
            "concat_ws(chr(0), {})",
            track
                .iter()
                .map(|c| format!("coalesce(CAST({} AS VARCHAR), chr(1))", ident(c)))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let sql = format!(
        "WITH all_rows AS ( \
           SELECT {cols_s}, 0 AS __strata_src, 0 AS __strata_pos FROM existing \
           UNION ALL SELECT {cols_s}, 1 AS __strata_src, row_number() OVER () AS __strata_pos FROM input), \
         one AS (SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY {keys_s}, {seq_i} \
           ORDER BY __strata_src DESC, __strata_pos DESC) AS __strata_rn FROM all_rows) WHERE __strata_rn = 1), \
         marked AS (SELECT *, {tracked} AS __strata_t, lag({tracked}) OVER (PARTITION BY {keys_s} \
           ORDER BY {seq_i}) AS __strata_prev FROM one), \
         versions AS (SELECT * FROM marked WHERE __strata_prev IS NULL OR __strata_prev <> __strata_t) \
         SELECT {cols_s}, {seq_i} AS __start_at, lead({seq_i}) OVER (PARTITION BY {keys_s} ORDER BY {seq_i}) AS __end_at, \
           lead({seq_i}) OVER (PARTITION BY {keys_s} ORDER BY {seq_i}) IS NULL AS __is_current FROM versions"
    );
    let plan = transform::plan_query(&state, &sql).await?;
    let batches = DataFrame::new(state, plan).collect().await?;
    let schema = Arc::new(strata_table::arrow_schema(&ttable, tname)?);
    let history = match batches.first() {
        Some(b) => concat_batches(&b.schema(), &batches)?,
        None => RecordBatch::new_empty(schema.clone()),
    };
    let source = strata_table::conform(frame(history)?, &schema, tname, false)?;
    let (_, o) = strata_table::replace_where(ttable, tname, source, &pred, wopts).await?;
    Ok(o.version)
}

/// Merges `data` (the flow's checked output) into its target: reduced to the latest row per
/// key first, then one MERGE commit.
pub(crate) async fn merge_rows(
    ttable: DeltaTable,
    tname: &str,
    data: RecordBatch,
    f: &Flow,
    wopts: &WriteOptions,
    deletes: Option<BooleanArray>,
) -> Result<Option<i64>> {
    // rows with delete flags come reduced already (the flags follow the rows)
    let data = if deletes.is_some() {
        data
    } else {
        let order: Vec<String> = f.spec.sequence_by.iter().cloned().collect();
        crate::reduce::latest_per_key(&data, &f.spec.keys, &order)?
    };
    let data = without_row(&data)?;
    let visible = data.schema().as_ref().clone();
    let state = strata_table::session::session_state();
    let out_schema = datafusion::common::DFSchema::try_from(visible.clone())?;
    let mut del = delete_expr(&state, &out_schema, f)?;
    let table_schema = strata_table::arrow_schema(&ttable, tname)?;
    let mut source = crate::replay::conform_batch(&data, &table_schema)?;
    if let Some(flags) = deletes {
        // the deletions of apply_deletes join delete_when as one condition
        let mut fields: Vec<Field> = source
            .schema()
            .fields()
            .iter()
            .map(|x| x.as_ref().clone())
            .collect();
        fields.push(Field::new(DELETE_FLAG, DataType::Boolean, false));
        let mut cols = source.columns().to_vec();
        cols.push(Arc::new(flags));
        source = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?;
        let flag = Expr::Column(Column::new(Some("source"), DELETE_FLAG));
        del = Some(match del {
            Some(d) => flag.or(d),
            None => flag,
        });
    }
    let spec = merge_spec(&visible, &f.spec.keys, f.spec.sequence_by.as_deref(), del);
    let (_, o) = strata_table::merge_with(ttable, tname, frame(source)?, spec, wopts).await?;
    Ok(o.version)
}

/// The hidden column marking a merge source row as the deletion of its key.
const DELETE_FLAG: &str = "__strata_delete";

/// The MERGE of a `merge` flow: matched keys are updated when the source's sequence is at least
/// the target's, unmatched inserted; `delete_when` deletes instead.
fn merge_spec(
    schema: &Schema,
    keys: &[String],
    sequence_by: Option<&str>,
    delete_when: Option<Expr>,
) -> MergeSpec {
    let side = |rel: &str, c: &str| Expr::Column(Column::new(Some(rel), c));
    let on = keys
        .iter()
        .map(|k| side("target", k).eq(side("source", k)))
        .reduce(Expr::and)
        .expect("a merge flow has keys");
    let newer = sequence_by.map(|c| {
        side("source", c)
            .gt_eq(side("target", c))
            .or(side("target", c).is_null())
    });
    let all: Vec<(String, MergeExpr)> = schema
        .fields()
        .iter()
        .map(|fl| {
            (
                fl.name().clone(),
                MergeExpr::Expr(side("source", fl.name())),
            )
        })
        .collect();
    let mut clauses = Vec::new();
    if let Some(d) = &delete_when {
        let pred = match &newer {
            Some(n) => d.clone().and(n.clone()),
            None => d.clone(),
        };
        clauses.push(MergeClause::MatchedDelete {
            predicate: Some(MergeExpr::Expr(pred)),
        });
    }
    clauses.push(MergeClause::MatchedUpdate {
        predicate: newer.map(MergeExpr::Expr),
        set: all.clone(),
    });
    clauses.push(MergeClause::NotMatchedInsert {
        predicate: delete_when.map(|d| MergeExpr::Expr(Expr::Not(Box::new(d)))),
        values: all,
    });
    MergeSpec {
        on: MergeExpr::Expr(on),
        source_alias: "source".into(),
        target_alias: "target".into(),
        clauses,
    }
}

/// `delete_when`, written over the flow's output columns, as an expression over the MERGE's
/// source side.
fn delete_expr(
    session: &datafusion::execution::context::SessionState,
    schema: &datafusion::common::DFSchema,
    f: &Flow,
) -> Result<Option<Expr>> {
    let Some(text) = &f.spec.delete_when else {
        return Ok(None);
    };
    let e = session.create_logical_expr(text, schema).map_err(|e| {
        Error::InvalidInput(format!(
            "{}: flow {}: delete_when: {}",
            f.at,
            f.name,
            strata_table::error::strip_df_noise(&e.to_string())
        ))
    })?;
    let e = e
        .transform(|x| {
            Ok(match x {
                Expr::Column(c) => {
                    Transformed::yes(Expr::Column(Column::new(Some("source"), c.name)))
                }
                other => Transformed::no(other),
            })
        })?
        .data;
    // a NULL condition is not a delete: the row is upserted
    Ok(Some(datafusion::functions::expr_fn::coalesce(vec![
        e,
        datafusion::logical_expr::lit(false),
    ])))
}

async fn ensure_quarantine(
    lh: &Lakehouse,
    name: &TableName,
    target: &TableName,
) -> Result<(TableInfo, DeltaTable)> {
    let spec = CreateTable {
        columns: strata_core::quarantine::envelope_fields(),
        comment: Some(format!("rows of {target} that could not be used")),
        ..Default::default()
    };
    let info = match lh.create_table(name, spec).await {
        Ok((i, _)) => i,
        Err(strata_catalog::Error::AlreadyExists(_)) => lh.table(name).await?,
        Err(e) => return Err(e.into()),
    };
    let t = lh.open_delta(&info).await?;
    Ok((info, t))
}

async fn create_target(
    lh: &Lakehouse,
    f: &Flow,
    schema: &Schema,
    report: &Report,
) -> Result<(TableInfo, DeltaTable)> {
    let spec = CreateTable {
        columns: schema
            .fields()
            .iter()
            .map(|fl| fl.as_ref().clone().with_nullable(true))
            .collect(),
        partition_by: f.spec.partition_by.clone(),
        comment: f
            .spec
            .description
            .clone()
            .or_else(|| Some(format!("written by flow {} ({} mode)", f.name, f.mode))),
        ..Default::default()
    };
    let info = match lh.create_table(&f.target, spec).await {
        Ok((i, _)) => i,
        Err(strata_catalog::Error::AlreadyExists(_)) => lh.table(&f.target).await?,
        Err(e) => return Err(e.into()),
    };
    let ms = lh.metastore();
    for c in report.pii_allowed.get(&f.name).into_iter().flatten() {
        ms.add_tag(&info.table_id, Some(c), "pii").await?;
    }
    for c in report.pii_masked.get(&f.name).into_iter().flatten() {
        ms.add_tag(&info.table_id, Some(c), "pii_masked").await?;
    }
    let t = lh.open_delta(&info).await?;
    Ok((info, t))
}
