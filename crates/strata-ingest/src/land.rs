//! Landing files into a bronze table, exactly once.
//!
//! One run lists its files, then lands them in batches. A batch is one commit of the target
//! (and, with `--corrupt quarantine`, one of its quarantine table first), each carrying the txn
//! `ingest:<table_id>` with version = the batch number:
//!
//! ```text
//!  lease ─► settle pending ─► allocate N ─► decode + write files ─► ledger ranges (pending)
//!    ─► quarantine commit (txn N) ─► target commit (txn N) ─► ledger: committed ─► release
//! ```
//!
//! A crash anywhere leaves either no commit (the batch is forgotten or landed again with the
//! same ranges and number) or commits the next run recognises by their txn. Files are read on a
//! blocking thread; async calls (metastore, object store, commits) are driven from it with the
//! runtime handle.

use std::collections::{HashMap, HashSet};
use std::io::{BufReader, Read};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arrow::datatypes::{DataType, Schema};
use chrono::{SubsecRound, Utc};
use deltalake::DeltaTable;
use serde_json::{Value, json};
use strata_catalog::Lakehouse;
use strata_catalog::lakehouse::CreateTable;
use strata_catalog::metastore::{FileRange, RunCounts, TableInfo};
use strata_core::{Layer, SchemaName, TableName};
use strata_table::{FileWriter, Txn};
use tokio::runtime::Handle;

use crate::bronze::{Chunk, Columns, Place, system_fields};
use crate::decode::csv::{CsvDecoder, CsvOptions, Encoding};
use crate::decode::json::{JsonDocumentDecoder, NdjsonDecoder};
use crate::decode::{Body, Limits, Record, RecordDecoder, count};
use crate::error::{Error, Result};
use crate::quarantine::QuarantineChunk;
use crate::source::{
    Compression, HashingReader, InputFormat, ObjectReader, Source, SourceFile, decompress,
};
use crate::typed::{self, TypedReader};
use strata_core::source_types::landing_type;

/// The table property that sets a table's default evolution mode.
pub const MODE_PROPERTY: &str = "strata.ingest.schemaEvolution";

/// What happens to a field the table does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvolutionMode {
    /// New fields become new nullable columns.
    Evolve,
    /// The schema stays; new fields go to `_rescued_data`.
    Rescue,
    /// A new field stops the run.
    Fail,
}

impl FromStr for EvolutionMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "evolve" | "addnewcolumns" => Ok(EvolutionMode::Evolve),
            "rescue" => Ok(EvolutionMode::Rescue),
            "fail" | "failonnewcolumns" => Ok(EvolutionMode::Fail),
            other => Err(Error::InvalidInput(format!(
                "unknown schema evolution mode '{other}': expected evolve, rescue or fail"
            ))),
        }
    }
}

impl EvolutionMode {
    pub fn as_str(self) -> &'static str {
        match self {
            EvolutionMode::Evolve => "evolve",
            EvolutionMode::Rescue => "rescue",
            EvolutionMode::Fail => "fail",
        }
    }
}

/// Where records that do not parse go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CorruptMode {
    /// A bronze row with `_corrupt_record` and `_rescued_data._corrupt_reason`.
    #[default]
    Row,
    /// A row of `quarantine.<table>` with stage `ingest`.
    Quarantine,
}

impl FromStr for CorruptMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "row" | "rows" | "bronze" => Ok(CorruptMode::Row),
            "quarantine" => Ok(CorruptMode::Quarantine),
            other => Err(Error::InvalidInput(format!(
                "unknown corrupt-record mode '{other}': expected row or quarantine"
            ))),
        }
    }
}

/// Progress of a run, for a progress bar or log lines.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub files_done: u64,
    pub files_total: u64,
    pub records: u64,
    pub bytes: u64,
    pub batch: Option<i64>,
    pub file: Option<String>,
}

pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// How to ingest.
#[derive(Clone)]
pub struct IngestOptions {
    pub format: Option<InputFormat>,
    pub csv: CsvOptions,
    /// `None`: the CSV delimiter from the extension (tab for `.tsv`), else `,`.
    pub delimiter: Option<u8>,
    /// `None`: UTF-8, or Windows-1252 for a CSV file that is not valid UTF-8.
    pub encoding: Option<Encoding>,
    /// `None`: the table's mode (property [`MODE_PROPERTY`]), else evolve.
    pub mode: Option<EvolutionMode>,
    pub corrupt: CorruptMode,
    pub max_files: usize,
    pub max_bytes: u64,
    pub skip_duplicate_content: bool,
    /// `--infer-types`: new columns from text formats get inferred types instead of STRING.
    pub infer_types: bool,
    pub reingest_changed: bool,
    /// How long to wait for another writer's lease before failing.
    pub lease_timeout: Duration,
    pub lease_ttl: Duration,
    pub limits: Limits,
    pub max_columns: usize,
    /// Files modified more recently than this are left for a later run (`--watch`'s settle).
    pub settle: Option<Duration>,
    pub cancel: Option<Arc<AtomicBool>>,
    pub progress: Option<ProgressFn>,
    /// Keep no run record for a run that landed nothing and met no changed file (`--watch`
    /// cycles).
    pub forget_empty_runs: bool,
    /// `_source_file` and quarantine pointers say this prefix and the file's name without its
    /// extension instead of the file's URI (push ingest: `http:` and the request id, the spool
    /// file's stem); the ledger keeps the file's URI.
    pub alias_prefix: Option<String>,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            format: None,
            csv: CsvOptions::default(),
            delimiter: None,
            encoding: None,
            mode: None,
            corrupt: CorruptMode::Row,
            max_files: 1000,
            max_bytes: 256 * 1024 * 1024,
            skip_duplicate_content: false,
            infer_types: false,
            reingest_changed: false,
            lease_timeout: Duration::from_secs(300),
            lease_ttl: lease_ttl_from_env(),
            limits: Limits::default(),
            max_columns: 1000,
            settle: None,
            cancel: None,
            progress: None,
            forget_empty_runs: false,
            alias_prefix: None,
        }
    }
}

/// `STRATA_INGEST_LEASE_TTL` (seconds, default 30): how long a lease outlives its holder's
/// last heartbeat. A writer that dies blocks the table this long.
fn lease_ttl_from_env() -> Duration {
    std::env::var("STRATA_INGEST_LEASE_TTL")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| *s > 0.0)
        .map_or(Duration::from_secs(30), Duration::from_secs_f64)
}

/// What a run did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IngestReport {
    pub run_id: String,
    /// What each file landed in the run's committed batches (push ingest answers each request
    /// from its file's line).
    #[serde(skip)]
    pub files: Vec<FileOutcome>,
    pub table: String,
    pub source: String,
    pub status: String,
    #[serde(flatten)]
    pub counts: RunCounts,
    pub batches: u64,
    pub first_version: Option<i64>,
    pub last_version: Option<i64>,
    pub new_columns: Vec<String>,
    pub changed_files: Vec<String>,
    pub samples: Value,
    pub error: Option<String>,
}

/// What one file of a run landed, summed over the run's committed batches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileOutcome {
    pub uri: String,
    /// Records read from the file into committed batches: landed plus quarantined.
    pub records: u64,
    /// Of those, the records that went to the quarantine table.
    pub quarantined: u64,
    /// The last batch that landed part of the file, and that batch's commit of the target.
    pub batch: i64,
    pub version: Option<i64>,
    /// The file ended in a committed batch: all of it is landed.
    pub complete: bool,
}

impl FileOutcome {
    /// Records that reached the target table.
    pub fn landed(&self) -> u64 {
        self.records.saturating_sub(self.quarantined)
    }
}

/// Crash-test hook: `STRATA_FAILPOINT=<name>` aborts the process when the run reaches `name`.
fn failpoint(name: &str) {
    if let Ok(v) = std::env::var("STRATA_FAILPOINT")
        && v == name
    {
        eprintln!("strata: failpoint {name} reached, aborting");
        std::process::abort();
    }
}

const CHUNK_ROWS: usize = 8192;
const CHUNK_BYTES: usize = 16 * 1024 * 1024;
const SAMPLE_LIMIT: usize = 20;

/// Lands `source` into `table` (created in bronze on first use).
pub async fn ingest(
    lh: &Lakehouse,
    source: &str,
    table: &TableName,
    opts: &IngestOptions,
) -> Result<IngestReport> {
    let source = Source::resolve(source)?;
    let (report, result) = land_source(lh, source, table, opts).await?;
    match result {
        Ok(()) => Ok(report),
        Err(e) => Err(with_run_context(e, &report)),
    }
}

/// Lands the files of `source` into `table` in one run: its report, and how the landing ended.
/// Batches committed before a failure stay committed, and the report (its `files` included)
/// says what they landed; the outer error is a failure before the run started.
pub async fn land_source(
    lh: &Lakehouse,
    source: Source,
    table: &TableName,
    opts: &IngestOptions,
) -> Result<(IngestReport, Result<()>)> {
    let info = ensure_table(lh, table).await?;
    let mode = match opts.mode {
        Some(m) => m,
        None => match info.properties.get(MODE_PROPERTY) {
            Some(v) => v.parse()?,
            None => EvolutionMode::Evolve,
        },
    };
    let contract = strata_registry::store::Registry::new(lh.metastore())
        .contract(&info.table_id)
        .await
        .map_err(|e| Error::Refused(format!("{}: {}", info.name, e.message)))?
        .map(Arc::new);
    let mut opts = opts.clone();
    if contract.is_some() && opts.corrupt == CorruptMode::Row {
        // with a contract, records that do not parse go to quarantine (stage ingest)
        opts.corrupt = CorruptMode::Quarantine;
    }
    let opts = &opts;
    let run_id = uuid::Uuid::new_v4().to_string();
    let table_name = info.name.to_string();
    lh.metastore()
        .begin_ingest_run(&run_id, &info.table_id, &table_name, &source.location)
        .await?;
    lh.metastore()
        .record_lineage(&source.location, &table_name, "ingest", None, None)
        .await?;
    let files = source.list(opts.format).await?;
    let lease_held = Arc::new(AtomicBool::new(false));
    let heartbeat = {
        let ms = lh.metastore().clone();
        let table_id = info.table_id.clone();
        let run_id = run_id.clone();
        let held = lease_held.clone();
        let ttl = opts.lease_ttl;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(ttl / 3).await;
                let _ = ms.heartbeat_ingest_run(&run_id).await;
                if held.load(Ordering::SeqCst) {
                    let _ = ms.renew_lease(&table_id, &run_id, ttl).await;
                }
            }
        })
    };
    let mut run = Run {
        lh: lh.clone(),
        handle: Handle::current(),
        info: info.clone(),
        name: table_name.clone(),
        source: source.clone(),
        opts: opts.clone(),
        mode,
        run_id: run_id.clone(),
        files,
        cursor: 0,
        open: None,
        seen_in_run: HashSet::new(),
        run_hashes: Default::default(),
        counts: RunCounts::default(),
        first_version: None,
        last_version: None,
        batches: 0,
        new_columns: Vec::new(),
        changed_files: Vec::new(),
        samples: Vec::new(),
        lease_held,
        quarantine: None,
        replay: None,
        contract,
        file_outcomes: HashMap::new(),
    };
    run.counts.files_seen = run.files.len() as u64;
    let (mut run, result) = tokio::task::spawn_blocking(move || {
        let r = run.land_all();
        (run, r)
    })
    .await
    .map_err(|e| Error::Internal(format!("the landing thread failed: {e}")))?;
    heartbeat.abort();
    if run.lease_held.swap(false, Ordering::SeqCst) {
        let _ = lh.metastore().release_lease(&info.table_id, &run_id).await;
    }
    let result = result.and_then(|()| run.check_balance());
    let (status, error) = match &result {
        Ok(()) => ("succeeded", None),
        Err(e) => ("failed", Some(e.to_string())),
    };
    let samples = Value::Array(run.samples.clone());
    lh.metastore()
        .update_ingest_run(
            &run_id,
            &run.counts,
            run.first_version,
            run.last_version,
            &samples,
            Some((status, error.as_deref())),
        )
        .await?;
    if run.batches > 0 {
        lh.metastore().touch_table(&info.table_id).await?;
    } else if opts.forget_empty_runs
        && result.is_ok()
        && run.changed_files.is_empty()
        && run.counts.duplicate_content_files == 0
    {
        lh.metastore().delete_ingest_run(&run_id).await?;
    }
    let report = IngestReport {
        run_id,
        files: std::mem::take(&mut run.file_outcomes)
            .into_values()
            .collect(),
        table: table_name,
        source: source.location.clone(),
        status: status.to_string(),
        counts: run.counts.clone(),
        batches: run.batches,
        first_version: run.first_version,
        last_version: run.last_version,
        new_columns: std::mem::take(&mut run.new_columns),
        changed_files: std::mem::take(&mut run.changed_files),
        samples,
        error,
    };
    Ok((report, result))
}

/// A file URI's last segment without its extension: `file:///x/req-1.ndjson` -> `req-1`.
fn file_stem(uri: &str) -> &str {
    let name = uri.rsplit('/').next().unwrap_or(uri);
    name.split_once('.').map_or(name, |(stem, _)| stem)
}

/// A failed run's error, with what its earlier batches landed (they stay committed).
fn with_run_context(e: Error, report: &IngestReport) -> Error {
    if report.batches == 0 {
        return e;
    }
    let suffix = format!(
        " ({} batch(es) with {} record(s) landed before the failure stay committed; run {})",
        report.batches, report.counts.records_landed, report.run_id
    );
    match e {
        Error::Refused(m) => Error::Refused(m + &suffix),
        Error::Io(m) => Error::Io(m + &suffix),
        Error::Conflict(m) => Error::Conflict(m + &suffix),
        Error::Cancelled(m) => Error::Cancelled(m + &suffix),
        other => other,
    }
}

/// The bronze table, created on first ingest.
pub async fn ensure_table(lh: &Lakehouse, name: &TableName) -> Result<TableInfo> {
    let schema = SchemaName::new(name.catalog.as_str(), name.schema.as_str())?;
    let (_, layer) = lh.role_of(&schema).await?;
    if layer != Some(Layer::Bronze) {
        return Err(Error::Refused(format!(
            "ingest lands into the bronze layer, and {name} is not in a bronze schema; \
             land into bronze.{} first",
            name.table
        )));
    }
    if let Some(info) = lh.metastore().get_table(name).await? {
        strata_catalog::Lakehouse::check_writable(&info)?;
        // A bronze table made by hand gets the system columns it lacks, so no row loses its
        // pointer, rescued data or corrupt text.
        let table = lh.open_delta(&info).await?;
        let full = info.name.to_string();
        let schema = strata_table::arrow_schema(&table, &full)?;
        let missing: Vec<_> = system_fields()
            .into_iter()
            .filter(|f| schema.field_with_name(f.name()).is_err())
            .collect();
        if !missing.is_empty() {
            strata_table::add_columns(table, &full, missing).await?;
        }
        return Ok(info);
    }
    let spec = CreateTable {
        columns: system_fields(),
        comment: Some("landed by strata ingest".into()),
        ..Default::default()
    };
    match lh.create_table(name, spec).await {
        Ok((info, _)) => Ok(info),
        // A concurrent first ingest is creating it: wait for it to become active.
        Err(strata_catalog::Error::AlreadyExists(m)) => {
            for _ in 0..200 {
                if let Some(info) = lh.metastore().get_table(name).await? {
                    return Ok(info);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(Error::Conflict(format!("{m}; retry the ingest")))
        }
        Err(e) => Err(e.into()),
    }
}

/// A file being landed in this run.
struct OpenFile {
    file: SourceFile,
    decoder: Option<Box<dyn RecordDecoder>>,
    /// The reader of a Parquet or Avro file.
    typed: Option<Box<dyn TypedReader>>,
    /// Why the typed reader stopped early: the records from there to `expected_end` land as
    /// corrupt rows with this reason.
    typed_error: Option<String>,
    /// What stopped the independent count early, if anything.
    count_error: Option<String>,
    /// Index (in the file's record order) of the next record the decoder returns.
    next_record: u64,
    /// Records decoded but not landed yet (they ended the previous batch).
    held: Option<Item>,
    hash: Option<String>,
    duplicate: bool,
    /// The stream failed; the failure was landed as one corrupt record.
    failed: bool,
    /// Records this run expects from the file, by the independent count.
    expected_end: u64,
    /// Where the last record returned was: a stream failure is reported just after it.
    last_line: u64,
    last_end: u64,
    /// Landing a recorded batch again: the record index its range ended at (for a range that
    /// did not finish the file) ...
    stop_at: Option<u64>,
    /// ... and the number of records the ledger recorded for the range.
    replay_records: Option<u64>,
}

/// A batch a stopped run recorded but did not commit to the target, landed again from exactly
/// its recorded file ranges (DECISIONS.md section 3: a crash resumes inside a file).
struct Replay {
    batch: i64,
    ranges: std::collections::VecDeque<(FileRange, SourceFile)>,
}

struct Run {
    lh: Lakehouse,
    handle: Handle,
    info: TableInfo,
    name: String,
    source: Source,
    opts: IngestOptions,
    mode: EvolutionMode,
    run_id: String,
    files: Vec<SourceFile>,
    cursor: usize,
    open: Option<OpenFile>,
    seen_in_run: HashSet<String>,
    /// Content hashes of the files this run opened (a duplicate within one batch is not in
    /// the ledger yet).
    run_hashes: HashMap<String, String>,
    counts: RunCounts,
    first_version: Option<i64>,
    last_version: Option<i64>,
    batches: u64,
    new_columns: Vec<String>,
    changed_files: Vec<String>,
    samples: Vec<Value>,
    lease_held: Arc<AtomicBool>,
    quarantine: Option<(TableInfo, DeltaTable)>,
    replay: Option<Replay>,
    /// The table's contract (latest version of its subject), when one is bound.
    contract: Option<Arc<strata_registry::contract::Contract>>,
    /// What each file landed in the batches committed so far, by URI.
    file_outcomes: HashMap<String, FileOutcome>,
}

/// What a file's reader returns next: one record of a text file, or a batch of a typed file's
/// records (`first` is the index of its first record).
enum Item {
    Record(Record),
    Rows {
        first: u64,
        rows: arrow::record_batch::RecordBatch,
    },
}

impl Item {
    fn records(&self) -> u64 {
        match self {
            Item::Record(_) => 1,
            Item::Rows { rows, .. } => rows.num_rows() as u64,
        }
    }
}

impl OpenFile {
    /// Index of the first record not landed yet.
    fn position(&self) -> u64 {
        self.next_record - self.held.as_ref().map_or(0, Item::records)
    }
}

/// How a file's state in the ledger decides what to do with it.
enum FilePlan {
    Skip,
    Changed,
    /// Land from this record index; the content hash when known.
    Land {
        start: u64,
        hash: Option<String>,
    },
}

/// `--infer-types`: the columns a batch adds take the type their first values fit, before the
/// batch's write starts (each value is then cast; a misfit goes to `_rescued_data`).
fn infer_types(columns: &mut Columns, chunk: &Chunk) {
    for i in columns.added() {
        if columns.field(i).data_type() != &DataType::Utf8 {
            continue;
        }
        if let Some(texts) = chunk.texts(i) {
            columns.retype(i, crate::bronze::infer_type(&texts));
        }
    }
}

/// Why a batch stopped.
#[derive(Debug, PartialEq, Eq)]
enum BatchEnd {
    /// No more files: the run is done.
    Exhausted,
    /// Limits or a new field: more batches follow.
    Full,
}

impl Run {
    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.handle.block_on(f)
    }

    fn txn(&self, batch: i64) -> Txn {
        Txn::new(format!("ingest:{}", self.info.table_id), batch)
    }

    fn cancelled(&self) -> bool {
        self.opts
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::SeqCst))
    }

    fn sample(&mut self, kind: &str, value: Value) {
        if self.samples.len() < SAMPLE_LIMIT {
            let mut v = value;
            if let Value::Object(m) = &mut v {
                m.insert("kind".into(), json!(kind));
            }
            self.samples.push(v);
        }
    }

    fn land_all(&mut self) -> Result<()> {
        loop {
            if self.cancelled() {
                return Err(Error::Cancelled(format!(
                    "ingest into {} stopped on request between batches",
                    self.name
                )));
            }
            self.acquire_lease()?;
            let end = self.settle().and_then(|()| self.land_batch());
            self.release_lease();
            match end? {
                BatchEnd::Exhausted => return Ok(()),
                BatchEnd::Full => {}
            }
        }
    }

    fn acquire_lease(&mut self) -> Result<()> {
        let ms = self.lh.metastore().clone();
        let started = Instant::now();
        let mut waited_for: Option<String> = None;
        loop {
            let got = self.block_on(ms.try_acquire_lease(
                &self.info.table_id,
                &self.run_id,
                self.opts.lease_ttl,
            ))?;
            match got {
                None => {
                    self.lease_held.store(true, Ordering::SeqCst);
                    return Ok(());
                }
                Some(holder) => {
                    if waited_for.as_deref() != Some(holder.holder.as_str()) {
                        tracing::info!(table = %self.name, holder = %holder.holder, "waiting for another writer's ingest lease");
                        waited_for = Some(holder.holder.clone());
                    }
                    if self.cancelled() {
                        return Err(Error::Cancelled(format!(
                            "ingest into {} stopped on request while waiting for another writer",
                            self.name
                        )));
                    }
                    if started.elapsed() > self.opts.lease_timeout {
                        return Err(Error::Conflict(format!(
                            "table {} is being written by ingest run {} (lease since {}); waited \
                             {}s: retry when it has finished",
                            self.name,
                            holder.holder,
                            holder.acquired_at.to_rfc3339(),
                            started.elapsed().as_secs()
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }

    fn release_lease(&mut self) {
        if self.lease_held.swap(false, Ordering::SeqCst) {
            let ms = self.lh.metastore().clone();
            if let Err(e) = self.block_on(ms.release_lease(&self.info.table_id, &self.run_id)) {
                tracing::warn!(error = %e, "releasing the ingest lease");
            }
        }
    }

    fn open_target(&self) -> Result<DeltaTable> {
        Ok(self.block_on(self.lh.open_delta(&self.info))?)
    }

    /// Settles batches a dead writer left pending, by the target's txn (DECISIONS.md section 6).
    fn settle(&mut self) -> Result<()> {
        let ms = self.lh.metastore().clone();
        let stale =
            Utc::now() - chrono::Duration::from_std(self.opts.lease_ttl * 3).unwrap_or_default();
        self.block_on(ms.abandon_stale_runs(&self.info.table_id, stale))?;
        let pending = self.block_on(ms.pending_batches(&self.info.table_id))?;
        for batch in pending {
            let table = self.open_target()?;
            let have = self.block_on(strata_table::txn_version(
                &table,
                &self.name,
                &self.txn(batch.batch_id).app_id,
            ))?;
            let ranges = self.block_on(ms.batch_files(&self.info.table_id, batch.batch_id))?;
            if have.is_some_and(|v| v >= batch.batch_id) {
                let (version, records) = self.find_batch_commit(&table, batch.batch_id)?;
                self.block_on(ms.commit_batch(
                    &self.info.table_id,
                    batch.batch_id,
                    version,
                    None,
                    records,
                    0,
                ))?;
                tracing::info!(table = %self.name, batch = batch.batch_id, "settled a batch a stopped run had committed");
            } else if ranges.is_empty() {
                self.block_on(ms.delete_pending_batch(&self.info.table_id, batch.batch_id))?;
            } else if let Some(ranges) = self.replay_plan(ranges) {
                tracing::info!(table = %self.name, batch = batch.batch_id, "landing again the recorded ranges of a batch a stopped run left uncommitted");
                // The file this run has open (if any) is checked against the ledger again by
                // the next batch, which sees what the replay landed.
                let open = self.open.take();
                self.replay = Some(Replay {
                    batch: batch.batch_id,
                    ranges,
                });
                let landed = self.land_batch();
                self.replay = None;
                self.open = open;
                landed?;
            } else {
                tracing::info!(table = %self.name, batch = batch.batch_id, "planning again a batch a stopped run left uncommitted: its files changed or are not in this source");
                self.reland(batch.batch_id)?;
            }
        }
        Ok(())
    }

    /// The source files of a stopped run's batch ranges, when every one is in this run's
    /// listing unchanged (same size and modification time); otherwise the batch cannot be
    /// landed exactly again.
    fn replay_plan(
        &self,
        ranges: Vec<FileRange>,
    ) -> Option<std::collections::VecDeque<(FileRange, SourceFile)>> {
        ranges
            .into_iter()
            .map(|r| {
                let file = self.files.iter().find(|f| {
                    f.uri == r.file_uri
                        && f.size == r.size
                        && f.modified_at.trunc_subsecs(6) == r.modified_at
                })?;
                Some((r, file.clone()))
            })
            .collect()
    }

    /// The commit that carries batch `batch`'s txn, searched from the newest.
    fn find_batch_commit(&self, table: &DeltaTable, batch: i64) -> Result<(Option<i64>, u64)> {
        let app = self.txn(batch).app_id;
        let mut v = strata_table::current_version(table);
        while v >= 0 {
            if let Some(c) = self.block_on(strata_table::history::read_commit(table, v))?
                && c.txns.iter().any(|(a, n)| a == &app && *n == batch)
            {
                return Ok((Some(v), c.added_records));
            }
            v -= 1;
        }
        Ok((None, 0))
    }

    /// Whether a file has held still for `settle` (`--watch` leaves younger files for a later
    /// cycle): its modification time is at least `settle` old, and its size and modification
    /// time now are still the ones listed (a writer that sets the time itself, as `cp -p` and
    /// `touch -d` do, still changes the size or the time while it writes).
    fn settled(&self, file: &SourceFile, settle: Duration) -> bool {
        if (Utc::now() - file.modified_at).to_std().unwrap_or_default() < settle {
            return false;
        }
        match self.block_on(self.source.stat(file)) {
            Ok((size, modified_at)) => {
                size == file.size && modified_at.trunc_subsecs(6) == file.modified_at
            }
            // gone or unreadable for now: a later cycle sees it again
            Err(_) => false,
        }
    }

    /// Next file to land, with its plan; skipped and changed files are counted here.
    fn plan(&mut self, file: &SourceFile) -> Result<FilePlan> {
        let ms = self.lh.metastore().clone();
        let ranges = self.block_on(ms.file_ranges(&self.info.table_id, &file.uri))?;
        let Some(last) = ranges.last() else {
            return Ok(FilePlan::Land {
                start: 0,
                hash: None,
            });
        };
        let same = last.size == file.size && last.modified_at == file.modified_at;
        match last.status.as_str() {
            "skipped_duplicate" if same => return Ok(FilePlan::Skip),
            "skipped_duplicate" => {
                return Ok(FilePlan::Land {
                    start: 0,
                    hash: None,
                });
            }
            _ => {}
        }
        if same && last.status != "changed" {
            if last.complete {
                return Ok(FilePlan::Skip);
            }
            return Ok(FilePlan::Land {
                start: last.first_record + last.records,
                hash: last.content_hash.clone(),
            });
        }
        self.block_on(ms.mark_file_changed(&self.info.table_id, &file.uri))?;
        if self.opts.reingest_changed {
            return Ok(FilePlan::Land {
                start: 0,
                hash: None,
            });
        }
        Ok(FilePlan::Changed)
    }

    /// Opens the next file that has something to land, or returns None at the end.
    fn next_file(&mut self) -> Result<Option<OpenFile>> {
        while self.cursor < self.files.len() {
            let file = self.files[self.cursor].clone();
            self.cursor += 1;
            if let Some(settle) = self.opts.settle
                && !self.settled(&file, settle)
            {
                // still being written: a later cycle takes it
                self.counts.files_seen = self.counts.files_seen.saturating_sub(1);
                continue;
            }
            let first_time = self.seen_in_run.insert(file.uri.clone());
            match self.plan(&file)? {
                FilePlan::Skip => {
                    if first_time {
                        self.counts.files_skipped += 1;
                    }
                }
                FilePlan::Changed => {
                    if first_time {
                        self.counts.files_skipped += 1;
                        self.counts.files_changed += 1;
                        self.changed_files.push(file.uri.clone());
                        self.sample(
                            "changed_file",
                            json!({"file": file.uri, "message": "the file changed after it landed; \
                                   pass --reingest-changed to land it again (its old rows stay)"}),
                        );
                    }
                }
                FilePlan::Land { start, hash } => {
                    if let Some(open) = self.open_file(file, start, hash)? {
                        return Ok(Some(open));
                    }
                }
            }
        }
        Ok(None)
    }

    /// Scans a file (independent record count, content hash when new), checks for duplicate
    /// content, and opens its decoder at record `start`.
    fn open_file(
        &mut self,
        file: SourceFile,
        start: u64,
        hash: Option<String>,
    ) -> Result<Option<OpenFile>> {
        let Some(format) = file.format else {
            return Err(Error::InvalidInput(format!(
                "{}: cannot tell the format from the file name; pass --input-format \
                 (ndjson, json, csv, parquet or avro)",
                file.uri
            )));
        };
        let scan = self.scan(&file, format, hash.is_none())?;
        let hash = hash.or(scan.hash.clone());
        let mut duplicate = false;
        if start == 0
            && let Some(h) = &hash
        {
            let ms = self.lh.metastore().clone();
            let earlier = match self.run_hashes.get(h) {
                Some(uri) if uri != &file.uri => Some(uri.clone()),
                _ => self.block_on(ms.landed_file_with_hash(&self.info.table_id, h, &file.uri))?,
            };
            self.run_hashes
                .entry(h.clone())
                .or_insert_with(|| file.uri.clone());
            if let Some(other) = earlier {
                duplicate = true;
                self.counts.duplicate_content_files += 1;
                self.sample(
                    "duplicate_content",
                    json!({"file": file.uri, "same_as": other}),
                );
                if self.opts.skip_duplicate_content {
                    self.counts.files_skipped += 1;
                    let range =
                        self.range(&file, 0, 0, 0, true, Some(h.clone()), "skipped_duplicate");
                    self.block_on(ms.record_skipped_duplicate(&self.info.table_id, &range))?;
                    return Ok(None);
                }
            }
        }
        self.counts.bytes_read += file.size;
        self.counts.records_read += scan.records.saturating_sub(start);
        if let Some(e) = &scan.error {
            self.sample("stream_error", json!({"file": file.uri, "error": e}));
        }
        let mut open = OpenFile {
            decoder: None,
            typed: None,
            typed_error: None,
            count_error: scan.error.clone(),
            next_record: 0,
            held: None,
            hash,
            duplicate,
            failed: false,
            expected_end: scan.records,
            last_line: 0,
            last_end: 0,
            stop_at: None,
            replay_records: None,
            file,
        };
        if format.is_text() {
            open.decoder = Some(self.decoder(&open.file, format, scan.valid_utf8)?);
            // Resume inside the file: skip what earlier batches landed.
            while open.next_record < start {
                match self.next_record(&mut open)? {
                    Some(_) => {}
                    None => break,
                }
            }
        } else {
            open.next_record = start;
            match self.typed_reader(&open.file, format, start) {
                Ok(r) => open.typed = Some(r),
                Err(e) => open.typed_error = Some(e),
            }
        }
        Ok(Some(open))
    }

    #[allow(clippy::too_many_arguments)]
    fn range(
        &self,
        file: &SourceFile,
        batch: i64,
        first: u64,
        records: u64,
        complete: bool,
        hash: Option<String>,
        status: &str,
    ) -> FileRange {
        FileRange {
            file_uri: file.uri.clone(),
            batch_id: batch,
            run_id: self.run_id.clone(),
            size: file.size,
            modified_at: file.modified_at.trunc_subsecs(6),
            content_hash: hash,
            first_record: first,
            records,
            complete,
            status: status.to_string(),
            landed_at: None,
        }
    }

    fn raw_reader(&self, file: &SourceFile) -> ObjectReader {
        let _guard = self.handle.enter();
        ObjectReader::new(self.source.store.clone(), file)
    }

    fn scan(&self, file: &SourceFile, format: InputFormat, want_hash: bool) -> Result<Scan> {
        let mut hashing = HashingReader::new(self.raw_reader(file));
        let result = {
            let stream = decompress(&mut hashing, file.compression);
            match stream {
                Err(e) => count::Count {
                    records: 1,
                    bytes: 0,
                    valid_utf8: false,
                    error: Some(e.to_string()),
                },
                Ok(stream) => match format {
                    InputFormat::Ndjson => count::count_ndjson(stream),
                    InputFormat::Json => count::count_json_document(stream),
                    InputFormat::Csv => count::count_csv(stream, &self.csv_options(file, None)),
                    InputFormat::Parquet => {
                        typed::count_parquet(&self.source.store, file, &self.handle)
                    }
                    InputFormat::Avro => count::count_avro(stream),
                },
            }
        };
        if want_hash {
            // The hash covers the whole file, even when decompression stopped early.
            let mut sink = [0u8; 64 * 1024];
            while let Ok(n) = hashing.read(&mut sink) {
                if n == 0 {
                    break;
                }
            }
        }
        let (hash, _) = hashing.finish();
        Ok(Scan {
            records: result.records,
            valid_utf8: result.valid_utf8,
            error: result.error,
            hash: want_hash.then_some(hash),
        })
    }

    fn csv_options(&self, file: &SourceFile, valid_utf8: Option<bool>) -> CsvOptions {
        let mut o = self.opts.csv;
        o.delimiter = self
            .opts
            .delimiter
            .unwrap_or(if file.tab_separated { b'\t' } else { b',' });
        o.encoding = match self.opts.encoding {
            Some(e) => e,
            // A file that is not UTF-8 is a Windows-1252 (or Latin-1) export: decode it as
            // such rather than turning every row with an accent into a corrupt row.
            None if valid_utf8 == Some(false) => Encoding::Windows1252,
            None => Encoding::Utf8,
        };
        o
    }

    fn decoder(
        &self,
        file: &SourceFile,
        format: InputFormat,
        valid_utf8: bool,
    ) -> Result<Box<dyn RecordDecoder>> {
        let raw = self.raw_reader(file);
        let stream = decompress(raw, file.compression)
            .map_err(|e| Error::Io(format!("{}: {e}", file.uri)))?;
        let reader = Box::new(BufReader::with_capacity(256 * 1024, stream));
        let limits = self.opts.limits;
        Ok(match format {
            InputFormat::Ndjson => Box::new(NdjsonDecoder::new(reader, limits)),
            InputFormat::Json => Box::new(JsonDocumentDecoder::new(reader, limits)),
            InputFormat::Csv => {
                let o = self.csv_options(file, Some(valid_utf8));
                if self.opts.encoding.is_none() && !valid_utf8 {
                    tracing::warn!(file = %file.uri, "file is not valid UTF-8: reading it as Windows-1252");
                }
                Box::new(CsvDecoder::new(reader, o, limits))
            }
            InputFormat::Parquet | InputFormat::Avro => {
                return Err(Error::Internal(
                    "typed formats have no record decoder".into(),
                ));
            }
        })
    }

    /// Applies the evolution mode to the fields of a record (or typed batch) that the table
    /// does not have. Returns false when the record must open the next batch instead: the
    /// write has started with a fixed schema, and the next batch widens the table.
    fn admit(
        &self,
        columns: &mut Columns,
        new: &[(String, DataType)],
        first_of_fresh_table: bool,
        write_started: bool,
        (uri, at, batch): (&str, &str, i64),
    ) -> Result<bool> {
        if new.is_empty() {
            return Ok(true);
        }
        // A table without data columns takes its schema from its first batch in every mode,
        // as Auto Loader infers one on a first run; the mode governs what comes after.
        let mode = if first_of_fresh_table {
            EvolutionMode::Evolve
        } else {
            self.mode
        };
        match mode {
            EvolutionMode::Rescue => Ok(true),
            EvolutionMode::Fail => {
                let names: Vec<&str> = new.iter().map(|(n, _)| n.as_str()).collect();
                let list = dedup(&names).join(", ");
                Err(Error::Refused(format!(
                    "{uri} {at}: new field(s) {list} not in table {} (schema evolution mode \
                     fail); batch {batch} was not committed. Add the columns (ALTER TABLE .. \
                     ADD COLUMNS), or run with --mode evolve or --mode rescue",
                    self.name
                )))
            }
            EvolutionMode::Evolve if write_started => Ok(false),
            EvolutionMode::Evolve => {
                for (n, t) in new {
                    if columns.place(n) == Place::New {
                        columns.add(n, t.clone());
                    }
                }
                Ok(true)
            }
        }
    }

    /// Opens the typed reader of a Parquet or Avro file at record `start`; the error is the
    /// reason the file cannot be read.
    fn typed_reader(
        &self,
        file: &SourceFile,
        format: InputFormat,
        start: u64,
    ) -> std::result::Result<Box<dyn TypedReader>, String> {
        match format {
            InputFormat::Parquet if file.compression != Compression::None => Err(
                "a compressed Parquet file (.parquet.gz, .parquet.zst) cannot be read: Parquet \
                 compresses its own pages, so land the .parquet file itself"
                    .into(),
            ),
            InputFormat::Parquet => {
                typed::open_parquet(&self.source.store, file, start, &self.handle)
            }
            _ => {
                let stream = decompress(self.raw_reader(file), file.compression)
                    .map_err(|e| e.to_string())?;
                typed::open_avro(stream, start)
            }
        }
    }

    /// The open file's next item: a text record, or a batch of typed records. A stream failure
    /// becomes one corrupt record (text), or one corrupt record for each record the independent
    /// count found past it (typed).
    fn next_item(&self, open: &mut OpenFile) -> Result<Option<Item>> {
        if let Some(item) = open.held.take() {
            return Ok(Some(item));
        }
        if open.decoder.is_none() {
            if let Some(reader) = open.typed.as_mut() {
                match reader.next_batch() {
                    Ok(Some(rows)) => {
                        let first = open.next_record;
                        let n = rows.num_rows() as u64;
                        open.next_record += n;
                        // A replayed range that ends inside this batch of rows: the rest waits.
                        if let Some(stop) = open.stop_at
                            && first < stop
                            && first + n > stop
                        {
                            let keep = (stop - first) as usize;
                            open.held = Some(Item::Rows {
                                first: stop,
                                rows: rows.slice(keep, rows.num_rows() - keep),
                            });
                            return Ok(Some(Item::Rows {
                                first,
                                rows: rows.slice(0, keep),
                            }));
                        }
                        return Ok(Some(Item::Rows { first, rows }));
                    }
                    Ok(None) => {
                        open.typed = None;
                        if open.next_record < open.expected_end {
                            let why = open
                                .count_error
                                .as_ref()
                                .map_or(String::new(), |e| format!(": {e}"));
                            open.typed_error = Some(format!(
                                "its reader returned {} records but the file's own counts \
                                 hold {}{why}",
                                open.next_record, open.expected_end
                            ));
                        }
                    }
                    Err(e) => {
                        open.typed = None;
                        open.typed_error = Some(e);
                    }
                }
            }
            let Some(reason) = &open.typed_error else {
                return Ok(None);
            };
            if open.next_record >= open.expected_end {
                return Ok(None);
            }
            let index = open.next_record;
            open.next_record += 1;
            return Ok(Some(Item::Record(Record {
                line: index,
                offset: 0,
                len: 0,
                body: Body::Corrupt {
                    raw: None,
                    reason: format!(
                        "record {index} of {} cannot be read: {reason}",
                        open.file.uri
                    ),
                },
            })));
        }
        Ok(self.next_record(open)?.map(Item::Record))
    }

    /// The open text file's next record; a stream failure becomes one corrupt record.
    fn next_record(&self, open: &mut OpenFile) -> Result<Option<Record>> {
        if open.failed {
            return Ok(None);
        }
        let Some(decoder) = open.decoder.as_mut() else {
            return Ok(None);
        };
        match decoder.next_record() {
            Ok(Some(r)) => {
                open.next_record += 1;
                open.last_line = r.line;
                open.last_end = r.offset + r.len;
                Ok(Some(r))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                open.failed = true;
                open.next_record += 1;
                Ok(Some(Record {
                    line: open.last_line + 1,
                    offset: open.last_end,
                    len: 0,
                    body: Body::Corrupt {
                        raw: None,
                        reason: format!(
                            "the file could not be read past this point: {e} (the rest of the \
                             file is unreadable)"
                        ),
                    },
                }))
            }
        }
    }

    /// Lands one batch; the lease is held.
    fn land_batch(&mut self) -> Result<BatchEnd> {
        let ms = self.lh.metastore().clone();
        let mut table = self.open_target()?;
        // Another writer may have landed part of the file this run has open.
        if let Some(open) = &self.open {
            let ranges = self.block_on(ms.file_ranges(&self.info.table_id, &open.file.uri))?;
            let landed_end = ranges.last().map_or(0, |r| r.first_record + r.records);
            let done = ranges.last().is_some_and(|r| r.complete);
            let position = open.position();
            if done || landed_end != position {
                // Recount it from where the other writer stopped.
                self.counts.records_read = self
                    .counts
                    .records_read
                    .saturating_sub(open.expected_end.saturating_sub(position));
                self.counts.bytes_read = self.counts.bytes_read.saturating_sub(open.file.size);
                self.open = None;
                self.cursor = self.cursor.saturating_sub(1);
            }
        }
        let delta_txn = self.block_on(strata_table::txn_version(
            &table,
            &self.name,
            &self.txn(0).app_id,
        ))?;
        let batch = match &self.replay {
            Some(r) => r.batch,
            None => {
                self.block_on(ms.max_batch_id(&self.info.table_id))?
                    .max(delta_txn.unwrap_or(0))
                    + 1
            }
        };
        let schema = strata_table::table_schema(&table, &self.name)?;
        let mut columns = Columns::new(&schema, self.opts.max_columns);
        let fresh = schema
            .fields()
            .iter()
            .all(|f| crate::bronze::is_system_column(f.name()));
        if let Some(c) = &self.contract {
            // the contract's columns, in its order, typed by the one type map
            for (n, t) in c
                .columns()
                .map_err(|e| Error::Refused(format!("{}: {}", self.name, e.message)))?
            {
                match columns.place(&n) {
                    Place::New => {
                        columns.add(&n, t);
                    }
                    Place::Column(i)
                        if !strata_registry::contract::column_fits(
                            columns.field(i).data_type(),
                            &t,
                        ) =>
                    {
                        return Err(Error::Refused(format!(
                            "{}: column {n} is {} but contract {} version {} makes it {t}; \
                             deltalake cannot change a column's type in place",
                            self.name,
                            columns.field(i).data_type(),
                            c.subject,
                            c.version
                        )));
                    }
                    _ => {}
                }
            }
        }
        // contract fields whose epoch numbers become ISO text for their TIMESTAMP/DATE column,
        // and the defaults a record that lacks the field lands with
        let temporal = self
            .contract
            .as_ref()
            .map(|c| c.epoch_fields())
            .unwrap_or_default();
        let defaults = self
            .contract
            .as_ref()
            .map(|c| c.defaults())
            .unwrap_or_default();
        let mut chunk = Chunk::new(&columns);
        let mut writer: Option<FileWriter> = None;
        let mut quarantine = QuarantineChunk::default();
        let mut q_writer: Option<FileWriter> = None;
        let mut ranges: Vec<FileRange> = Vec::new();
        // per file: records read into this batch, how many of them were quarantined, and whether
        // the file ends in it
        let mut outcomes: Vec<(String, u64, u64, bool)> = Vec::new();
        let mut batch_bytes: u64 = 0;
        let mut batch_files = 0usize;
        let mut rows_written: u64 = 0;
        let mut q_rows: u64 = 0;
        let (mut rescued, mut corrupt) = (0u64, 0u64);
        let ingested_at = Utc::now().timestamp_micros();
        self.block_on(ms.create_pending_batch(&self.info.table_id, batch, &self.run_id))?;
        let mut end = BatchEnd::Exhausted;
        'files: loop {
            if let Some(replay) = self.replay.as_mut() {
                // A replayed batch holds exactly its recorded ranges, whatever the limits.
                let Some((range, file)) = replay.ranges.pop_front() else {
                    break;
                };
                self.seen_in_run.insert(file.uri.clone());
                let Some(mut open) =
                    self.open_file(file, range.first_record, range.content_hash.clone())?
                else {
                    continue;
                };
                if !range.complete {
                    open.stop_at = Some(range.first_record + range.records);
                }
                open.replay_records = Some(range.records);
                self.open = Some(open);
            } else if self.open.is_none() {
                if batch_files >= self.opts.max_files || batch_bytes >= self.opts.max_bytes {
                    end = BatchEnd::Full;
                    break;
                }
                match self.next_file()? {
                    Some(o) => self.open = Some(o),
                    None => break,
                }
            }
            let Some(mut open) = self.open.take() else {
                break;
            };
            batch_files += 1;
            let shown_uri = match &self.opts.alias_prefix {
                Some(prefix) => format!("{prefix}{}", file_stem(&open.file.uri)),
                None => open.file.uri.clone(),
            };
            let mut file_quarantined = 0u64;
            let first = open.position();
            let mut stopped = false;
            loop {
                let at_stop = open.stop_at.is_some_and(|s| open.position() >= s);
                if at_stop || (open.replay_records.is_none() && batch_bytes >= self.opts.max_bytes)
                {
                    stopped = true;
                    break;
                }
                let Some(mut item) = self.next_item(&mut open)? else {
                    break;
                };
                if let (Some(c), Item::Record(rec)) = (&self.contract, &item)
                    && let Body::Fields(fields) = &rec.body
                {
                    let (doc, text) = record_json(fields);
                    let problems = c.violations(&doc);
                    if !problems.is_empty() {
                        let rule = format!("contract:{}@{}", c.subject, c.version);
                        let reason = problems.join("; ");
                        if c.on_violation == strata_registry::contract::OnViolation::Fail {
                            return Err(Error::Refused(format!(
                                "{shown_uri} line {}: the record breaks contract {} version {}: \
                                 {reason}; nothing of batch {batch} was committed",
                                rec.line, c.subject, c.version
                            )));
                        }
                        batch_bytes += rec.len + 1;
                        file_quarantined += 1;
                        quarantine.push_contract(
                            rec,
                            &shown_uri,
                            &self.run_id,
                            &self.name,
                            (text, rule, reason),
                        );
                        if quarantine.rows() >= CHUNK_ROWS {
                            q_rows += self.flush_quarantine(&mut quarantine, &mut q_writer)?;
                        }
                        continue;
                    }
                }
                if let Some(c) = &self.contract
                    && !(temporal.is_empty() && defaults.is_empty())
                    && let Item::Record(rec) = &mut item
                    && let Body::Fields(fields) = &mut rec.body
                {
                    epoch_to_text(c, fields, &temporal);
                    for (name, default) in &defaults {
                        if !fields.iter().any(|(n, _)| n == name) {
                            fields.push((
                                name.clone(),
                                Some(crate::decode::FieldValue::Json(default.clone())),
                            ));
                        }
                    }
                }
                // The item's new fields decide whether it fits this batch.
                let (new, at): (Vec<(String, DataType)>, String) = match &item {
                    Item::Rows { first, rows } => (
                        rows.schema()
                            .fields()
                            .iter()
                            .filter(|f| columns.place(f.name()) == Place::New)
                            .map(|f| (f.name().clone(), landing_type(f)))
                            .collect(),
                        format!("record {first}"),
                    ),
                    Item::Record(rec) => (
                        match &rec.body {
                            Body::Fields(fields) => fields
                                .iter()
                                .filter(|(n, _)| columns.place(n) == Place::New)
                                .map(|(n, _)| (n.clone(), DataType::Utf8))
                                .collect(),
                            Body::Corrupt { .. } => Vec::new(),
                        },
                        format!("line {}", rec.line),
                    ),
                };
                let admitted = self.admit(
                    &mut columns,
                    &new,
                    fresh && writer.is_none(),
                    writer.is_some(),
                    (&shown_uri, &at, batch),
                )?;
                if !admitted {
                    open.held = Some(item);
                    stopped = true;
                    break;
                }
                chunk.fit(&columns);
                let rec = match item {
                    Item::Record(rec) => rec,
                    Item::Rows { first, rows } => {
                        batch_bytes += rows.get_array_memory_size() as u64;
                        let built = typed::conform(
                            &rows,
                            &columns,
                            &open.file.uri,
                            first,
                            batch,
                            ingested_at,
                        )?;
                        rescued += built.rescued_rows;
                        rows_written += built.rows;
                        let w = match writer.as_mut() {
                            Some(w) => w,
                            None => writer.insert(FileWriter::new(
                                &table,
                                &self.name,
                                columns.schema(),
                            )?),
                        };
                        self.block_on(w.write(&built.batch))?;
                        self.progress(&open, rows_written + q_rows, batch);
                        continue;
                    }
                };
                batch_bytes += rec.len + 1;
                if matches!(rec.body, Body::Corrupt { .. })
                    && self.opts.corrupt == CorruptMode::Quarantine
                {
                    quarantine.push(&rec, &shown_uri, &self.run_id, &self.name);
                    file_quarantined += 1;
                    corrupt += 1;
                    if quarantine.rows() >= CHUNK_ROWS {
                        q_rows += self.flush_quarantine(&mut quarantine, &mut q_writer)?;
                    }
                    continue;
                }
                chunk.push(&columns, &shown_uri, &rec);
                if chunk.rows() >= CHUNK_ROWS || chunk.bytes() >= CHUNK_BYTES {
                    if writer.is_none() && self.opts.infer_types {
                        infer_types(&mut columns, &chunk);
                    }
                    let built = std::mem::replace(&mut chunk, Chunk::new(&columns)).finish(
                        &columns,
                        batch,
                        ingested_at,
                    )?;
                    rescued += built.rescued_rows;
                    corrupt += built.corrupt_rows;
                    rows_written += built.rows;
                    let w = match writer.as_mut() {
                        Some(w) => w,
                        None => {
                            writer.insert(FileWriter::new(&table, &self.name, columns.schema())?)
                        }
                    };
                    self.block_on(w.write(&built.batch))?;
                    self.progress(&open, rows_written + q_rows, batch);
                }
            }
            let position = open.position();
            let complete = !stopped;
            if let Some(want) = open.replay_records
                && position - first != want
            {
                return Err(Error::Internal(format!(
                    "{}: landing batch {batch} again read {} record(s) from record {first} where \
                     the ledger recorded {want}; nothing of the batch was committed",
                    open.file.uri,
                    position - first
                )));
            }
            if position > first || complete {
                outcomes.push((
                    open.file.uri.clone(),
                    position - first,
                    file_quarantined,
                    complete,
                ));
                let status = if open.duplicate {
                    "duplicate_content"
                } else {
                    "pending"
                };
                let r = self.range(
                    &open.file,
                    batch,
                    first,
                    position - first,
                    complete,
                    open.hash.clone(),
                    status,
                );
                ranges.push(r);
            }
            if complete {
                if position != open.expected_end {
                    return Err(Error::Internal(format!(
                        "{}: the decoder returned {position} records but the independent count \
                         found {}; nothing of batch {batch} was committed",
                        open.file.uri, open.expected_end
                    )));
                }
                self.counts.files_landed += 1;
            } else if open.replay_records.is_some() {
                // The recorded batch ended inside this file: the run's own plan lands the
                // rest, and counts it then.
                self.counts.records_read = self
                    .counts
                    .records_read
                    .saturating_sub(open.expected_end.saturating_sub(position));
                self.counts.bytes_read = self.counts.bytes_read.saturating_sub(open.file.size);
                break 'files;
            } else {
                self.open = Some(open);
                end = BatchEnd::Full;
                break 'files;
            }
        }
        // The last partial chunk.
        if chunk.rows() > 0 {
            if writer.is_none() && self.opts.infer_types {
                infer_types(&mut columns, &chunk);
            }
            let built = chunk.finish(&columns, batch, ingested_at)?;
            rescued += built.rescued_rows;
            corrupt += built.corrupt_rows;
            rows_written += built.rows;
            let w = match writer.as_mut() {
                Some(w) => w,
                None => writer.insert(FileWriter::new(&table, &self.name, columns.schema())?),
            };
            self.block_on(w.write(&built.batch))?;
        }
        if quarantine.rows() > 0 {
            q_rows += self.flush_quarantine(&mut quarantine, &mut q_writer)?;
        }
        if ranges.is_empty() && rows_written == 0 && q_rows == 0 {
            self.block_on(ms.delete_pending_batch(&self.info.table_id, batch))?;
            return Ok(BatchEnd::Exhausted);
        }
        let adds = match writer {
            Some(w) => self.block_on(w.finish())?,
            None => Vec::new(),
        };
        let q_adds = match q_writer {
            Some(w) => self.block_on(w.finish())?,
            None => Vec::new(),
        };
        failpoint("ingest::after_files_written");
        self.block_on(ms.set_batch_files(&self.info.table_id, batch, &ranges))?;
        failpoint("ingest::after_ledger_ranges");
        let txn = self.txn(batch);
        let q_version = if q_adds.is_empty() {
            None
        } else {
            self.commit_quarantine(q_adds, &txn)?
        };
        failpoint("ingest::after_quarantine_commit");
        let widened = columns.widened().then(|| columns.schema());
        let info = serde_json::Map::from_iter([
            ("strata.batch".to_string(), json!(batch)),
            ("strata.run".to_string(), json!(self.run_id)),
        ]);
        let version = self.block_on(strata_table::commit_adds(
            &mut table,
            &self.name,
            adds,
            widened.as_deref(),
            Some(&txn),
            info,
        ))?;
        failpoint("ingest::after_target_commit");
        // What landed, read back from the commit rather than from our own count.
        let landed = match version {
            Some(v) => self
                .block_on(strata_table::history::read_commit(&table, v))?
                .map_or(0, |c| c.added_records),
            None => rows_written,
        };
        if landed != rows_written {
            return Err(Error::Internal(format!(
                "batch {batch} of {}: wrote {rows_written} rows but the commit holds {landed}",
                self.name
            )));
        }
        if let Some(qv) = q_version {
            let (info, table) = self.quarantine_table()?;
            let q_landed = self
                .block_on(strata_table::history::read_commit(&table, qv))?
                .map_or(0, |c| c.added_records);
            if q_landed != q_rows {
                return Err(Error::Internal(format!(
                    "batch {batch}: wrote {q_rows} rows to {} but its commit holds {q_landed}",
                    info.name
                )));
            }
        }
        self.block_on(ms.commit_batch(
            &self.info.table_id,
            batch,
            version,
            q_version,
            landed,
            q_rows,
        ))?;
        failpoint("ingest::after_ledger_commit");
        if let Some(v) = version {
            self.first_version.get_or_insert(v);
            self.last_version = Some(v);
        }
        for c in columns.new_columns() {
            if !self.new_columns.contains(&c) {
                self.new_columns.push(c);
            }
        }
        for (uri, records, quarantined, complete) in outcomes {
            let o = self
                .file_outcomes
                .entry(uri.clone())
                .or_insert_with(|| FileOutcome {
                    uri,
                    ..Default::default()
                });
            o.records += records;
            o.quarantined += quarantined;
            o.batch = batch;
            o.version = version;
            o.complete = complete;
        }
        self.batches += 1;
        self.counts.records_landed += landed;
        self.counts.records_quarantined += q_rows;
        self.counts.records_rescued += rescued;
        self.counts.records_corrupt += corrupt;
        let samples = Value::Array(self.samples.clone());
        self.block_on(ms.update_ingest_run(
            &self.run_id,
            &self.counts,
            self.first_version,
            self.last_version,
            &samples,
            None,
        ))?;
        tracing::info!(table = %self.name, batch, version = ?version, rows = landed, quarantined = q_rows, "batch landed");
        Ok(end)
    }

    fn progress(&self, open: &OpenFile, records: u64, batch: i64) {
        if let Some(p) = &self.opts.progress {
            p(&Progress {
                files_done: self.counts.files_landed + self.counts.files_skipped,
                files_total: self.counts.files_seen,
                records: self.counts.records_landed + records,
                bytes: self.counts.bytes_read,
                batch: Some(batch),
                file: Some(open.file.uri.clone()),
            });
        }
    }

    fn quarantine_table(&mut self) -> Result<(TableInfo, DeltaTable)> {
        if let Some(q) = &self.quarantine {
            return Ok(q.clone());
        }
        let name = TableName::new(
            self.info.name.catalog.as_str(),
            "quarantine",
            self.info.name.table.as_str(),
        )?;
        let info = match self.block_on(self.lh.metastore().get_table(&name))? {
            Some(i) => i,
            None => {
                let spec = CreateTable {
                    columns: strata_core::quarantine::envelope_fields(),
                    comment: Some(format!("records of {} that could not be used", self.name)),
                    ..Default::default()
                };
                match self.block_on(self.lh.create_table(&name, spec)) {
                    Ok((i, _)) => i,
                    Err(strata_catalog::Error::AlreadyExists(_)) => {
                        self.block_on(self.lh.table(&name))?
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };
        let table = self.block_on(self.lh.open_delta(&info))?;
        self.quarantine = Some((info.clone(), table.clone()));
        Ok((info, table))
    }

    fn flush_quarantine(
        &mut self,
        chunk: &mut QuarantineChunk,
        writer: &mut Option<FileWriter>,
    ) -> Result<u64> {
        let (info, table) = self.quarantine_table()?;
        let batch = std::mem::take(chunk).finish()?;
        let rows = batch.num_rows() as u64;
        let w = match writer.as_mut() {
            Some(w) => w,
            None => writer.insert(FileWriter::new(
                &table,
                &info.name.to_string(),
                Arc::new(Schema::new(strata_core::quarantine::envelope_fields())),
            )?),
        };
        self.block_on(w.write(&batch))?;
        Ok(rows)
    }

    fn commit_quarantine(
        &mut self,
        adds: Vec<deltalake::kernel::Add>,
        txn: &Txn,
    ) -> Result<Option<i64>> {
        let (info, mut table) = self.quarantine_table()?;
        let v = self.block_on(strata_table::commit_adds(
            &mut table,
            &info.name.to_string(),
            adds,
            None,
            Some(txn),
            serde_json::Map::new(),
        ))?;
        self.quarantine = Some((info, table));
        Ok(v)
    }

    /// Gives up a batch a dead writer recorded but did not commit to the target, when its files
    /// changed or are not in this run's source, so it cannot be landed exactly again: its files
    /// are planned afresh. When its quarantine commit was made, the batch number stays taken
    /// (committed without a target version), so the next batch gets a new number and its corrupt
    /// records reach the quarantine table rather than meet a commit skipped for an old txn.
    fn reland(&mut self, batch: i64) -> Result<()> {
        let ms = self.lh.metastore().clone();
        let mut quarantined = false;
        if let Some((info, table)) = self.quarantine_if_exists()? {
            let have = self.block_on(strata_table::txn_version(
                &table,
                &info.name.to_string(),
                &self.txn(batch).app_id,
            ))?;
            quarantined = have.is_some_and(|v| v >= batch);
        }
        if quarantined {
            tracing::warn!(table = %self.name, batch, "the quarantine table holds corrupt records of a stopped batch whose files changed; they are quarantined again with the new batch");
            self.block_on(ms.set_batch_files(&self.info.table_id, batch, &[]))?;
            self.block_on(ms.commit_batch(&self.info.table_id, batch, None, None, 0, 0))?;
        } else {
            self.block_on(ms.delete_pending_batch(&self.info.table_id, batch))?;
        }
        Ok(())
    }

    fn quarantine_if_exists(&mut self) -> Result<Option<(TableInfo, DeltaTable)>> {
        let name = TableName::new(
            self.info.name.catalog.as_str(),
            "quarantine",
            self.info.name.table.as_str(),
        )?;
        if self
            .block_on(self.lh.metastore().get_table(&name))?
            .is_none()
        {
            return Ok(None);
        }
        Ok(Some(self.quarantine_table()?))
    }

    /// `read` must equal `landed + quarantined` for the files this run finished.
    fn check_balance(&self) -> Result<()> {
        let c = &self.counts;
        if c.records_read != c.records_landed + c.records_quarantined {
            return Err(Error::Internal(format!(
                "ingest into {} does not balance: {} records read (counted from the files), \
                 {} landed and {} quarantined (read from the commits)",
                self.name, c.records_read, c.records_landed, c.records_quarantined
            )));
        }
        Ok(())
    }
}

struct Scan {
    records: u64,
    valid_utf8: bool,
    error: Option<String>,
    hash: Option<String>,
}

/// A conforming record's epoch numbers in timestamp and date fields, as the ISO text their
/// column's cast reads (`1700000000000` in a timestamp-millis field becomes
/// `2023-11-14T22:13:20Z`), at the top level and inside nested values.
fn epoch_to_text(
    contract: &strata_registry::contract::Contract,
    fields: &mut [(String, Option<crate::decode::FieldValue>)],
    temporal: &[(String, Option<strata_registry::contract::Temporal>)],
) {
    use crate::decode::FieldValue;
    for (name, value) in fields.iter_mut() {
        let Some(FieldValue::Json(j)) = value else {
            continue;
        };
        match temporal.iter().find(|(n, _)| n == name) {
            Some((_, Some(t))) => {
                if let Some(text) = j.trim().parse::<i64>().ok().and_then(|n| t.text(n)) {
                    *value = Some(FieldValue::Text(text));
                }
            }
            Some((_, None)) => {
                if let Ok(mut v) = serde_json::from_str::<Value>(j)
                    && contract.nested_epochs_to_text(name, &mut v)
                {
                    *value = Some(FieldValue::Json(v.to_string()));
                }
            }
            None => {}
        }
    }
}

/// A text record as a JSON object (for the contract check) and its JSON text (for quarantine):
/// JSON values as parsed from their exact text, CSV text as strings, NULL as null.
fn record_json(fields: &[(String, Option<crate::decode::FieldValue>)]) -> (Value, String) {
    use crate::decode::FieldValue;
    let mut map = serde_json::Map::new();
    let mut text = String::from("{");
    for (i, (name, value)) in fields.iter().enumerate() {
        let (v, raw) = match value {
            None => (Value::Null, "null".to_string()),
            Some(FieldValue::Json(j)) => (
                serde_json::from_str(j).unwrap_or_else(|_| Value::String(j.clone())),
                j.clone(),
            ),
            Some(FieldValue::Text(t)) => (
                Value::String(t.clone()),
                Value::String(t.clone()).to_string(),
            ),
        };
        if i > 0 {
            text.push(',');
        }
        text.push_str(&Value::String(name.clone()).to_string());
        text.push(':');
        text.push_str(&raw);
        map.insert(name.clone(), v);
    }
    text.push('}');
    (Value::Object(map), text)
}

fn dedup<'a>(names: &[&'a str]) -> Vec<&'a str> {
    let mut seen = HashSet::new();
    names.iter().copied().filter(|n| seen.insert(*n)).collect()
}

/// Compacts a bronze table's small files (an optimize commit with `dataChange=false`, which
/// the change feed and incremental readers skip). Returns the new version, if any.
pub async fn compact(lh: &Lakehouse, name: &TableName) -> Result<Option<i64>> {
    let info = lh.table(name).await?;
    let table = lh.open_delta(&info).await?;
    let (_, outcome) = strata_table::optimize(table, &info.name.to_string(), None).await?;
    Ok(outcome.version)
}
