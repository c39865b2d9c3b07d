//! `strata ingest` and `strata generate`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use strata_catalog::Lakehouse;
use strata_core::{ErrorClass, TableName};
use strata_ingest::decode::csv::Encoding;
use strata_ingest::land::{IngestReport, Progress};
use strata_ingest::{CorruptMode, EvolutionMode, IngestOptions};

use crate::output::{print_rows, print_value};
use crate::{CliError, CliResult, Format, usage_error};

impl crate::Classify for strata_ingest::Error {
    fn class(&self) -> ErrorClass {
        strata_ingest::Error::class(self)
    }
}

/// Land files into a bronze table, exactly once.
///
/// SOURCE is a file, a folder (read recursively; names starting with `_` or `.` are skipped)
/// or a glob such as 'landing/*.ndjson.gz'. Formats: NDJSON (.ndjson, .jsonl), JSON (.json: an
/// array or a sequence of objects), CSV (.csv, .tsv), Parquet (.parquet) and Avro (.avro); .gz
/// and .zst files are decompressed. The table is created in bronze on first ingest. JSON and CSV
/// values land as their literal text (typed with --infer-types), Parquet and Avro values with
/// their own types; fields that do not fit go to _rescued_data; records that do not parse land as corrupt
/// rows (or in quarantine.TABLE with --corrupt quarantine). Re-running the same command lands
/// nothing twice: every file is in the ingestion ledger.
///
/// Examples:
///   strata ingest landing/events/ --into bronze.events
///   strata ingest 'exports/*.csv' --into bronze.orders --delimiter ';' --mode rescue
///   strata ingest landing/trips/ --into bronze.trips --input-format parquet
///   strata ingest landing/ --into bronze.events --watch --interval 10s
///   strata ingest history bronze.events
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct IngestArgs {
    #[command(subcommand)]
    command: Option<IngestCommand>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum IngestCommand {
    /// Past ingest runs of a table, newest first, with their accounting.
    History {
        /// The bronze table, e.g. bronze.events.
        table: String,
        /// Show at most this many runs.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// The ledger: every file a table has landed, with its batch, version and status.
    Files {
        /// The bronze table, e.g. bronze.events.
        table: String,
    },
}

#[derive(Args)]
struct RunArgs {
    /// A file, a folder or a glob.
    #[arg(required = true)]
    source: Option<String>,

    /// The bronze table to land into (created on first ingest), e.g. bronze.events.
    #[arg(long, value_name = "TABLE", required = true)]
    into: Option<String>,

    /// The input format, when the file extension does not say it.
    #[arg(long, value_name = "FORMAT", value_parser = ["ndjson", "json", "csv", "parquet", "avro"])]
    input_format: Option<String>,

    /// What to do with fields the table does not have: evolve (add nullable columns), rescue
    /// (keep them in _rescued_data) or fail (stop, naming file, line and fields). Default: the
    /// table's strata.ingest.schemaEvolution property, else evolve.
    #[arg(long, value_name = "MODE", value_parser = ["evolve", "rescue", "fail"])]
    mode: Option<String>,

    /// Where records that do not parse go: row (a bronze row with _corrupt_record) or
    /// quarantine (quarantine.TABLE, stage ingest).
    #[arg(long, value_name = "WHERE", default_value = "row", value_parser = ["row", "quarantine"])]
    corrupt: String,

    /// CSV: the first line is a header (--header false: columns are _c0, _c1, ...).
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    header: bool,

    /// CSV field delimiter (one character; `\t` for tab). Default: `,`, or tab for .tsv.
    #[arg(long, value_name = "CHAR")]
    delimiter: Option<String>,

    /// CSV quote character.
    #[arg(long, value_name = "CHAR", default_value = "\"")]
    quote: String,

    /// CSV escape character inside quoted fields (default: quotes are doubled).
    #[arg(long, value_name = "CHAR")]
    escape: Option<String>,

    /// CSV encoding: utf-8, latin1 or windows-1252. Default: UTF-8, and Windows-1252 for a
    /// file that is not valid UTF-8.
    #[arg(long, value_name = "ENCODING")]
    encoding: Option<String>,

    /// Cap a batch (one commit) at this many files.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    max_files: usize,

    /// Cap a batch at about this many bytes of records (a larger file spans batches), e.g.
    /// 256MB.
    #[arg(long, value_name = "SIZE", default_value = "256MB")]
    max_bytes: String,

    /// JSON and CSV: give new columns the type their first values fit (BIGINT, DOUBLE,
    /// BOOLEAN, DATE, TIMESTAMP, else STRING) instead of STRING. A later value that does not
    /// fit lands in _rescued_data. Parquet and Avro always keep their own types.
    #[arg(long)]
    infer_types: bool,

    /// Skip a new file whose content equals a landed file (default: land it and count it as
    /// duplicate_content).
    #[arg(long)]
    skip_duplicate_content: bool,

    /// Land again a file that changed after it landed (its old rows stay).
    #[arg(long)]
    reingest_changed: bool,

    /// How long to wait for another writer of the same table before failing.
    #[arg(long, value_name = "DURATION", default_value = "5m")]
    lease_timeout: String,

    /// Keep landing new files as they appear, until Ctrl-C or SIGTERM.
    #[arg(long)]
    watch: bool,

    /// With --watch: how often to look for new files.
    #[arg(long, value_name = "DURATION", default_value = "5s")]
    interval: String,

    /// With --watch: a file lands only after its size and modification time held still this
    /// long.
    #[arg(long, value_name = "DURATION", default_value = "2s")]
    settle: String,

    /// With --watch: run this shell command when a cycle fails (instead of exiting non-zero).
    #[arg(long, value_name = "CMD")]
    on_failure: Option<String>,

    /// With --watch: compact bronze's small files after this many landed batches.
    #[arg(long, value_name = "N", default_value_t = 20)]
    compact_every: u64,
}

/// Parses `5s`, `500ms`, `2m`, `1h` or a number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, CliError> {
    let t = s.trim();
    let (num, unit) = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((t, "s"), |i| (&t[..i], &t[i..]));
    let n: f64 = num
        .parse()
        .map_err(|_| usage_error(format!("invalid duration '{s}': use e.g. 5s, 500ms, 2m")))?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "s" | "sec" | "secs" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => {
            return Err(usage_error(format!(
                "invalid duration '{s}': use e.g. 5s, 500ms, 2m"
            )));
        }
    };
    Ok(Duration::from_secs_f64(secs.max(0.0)))
}

/// Parses `256MB`, `1GiB`, `1000` (bytes).
pub fn parse_size(s: &str) -> Result<u64, CliError> {
    let t = s.trim();
    let (num, unit) = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((t, ""), |i| (&t[..i], &t[i..]));
    let n: f64 = num
        .parse()
        .map_err(|_| usage_error(format!("invalid size '{s}': use e.g. 256MB, 1GB")))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => {
            return Err(usage_error(format!(
                "invalid size '{s}': use e.g. 256MB, 1GB"
            )));
        }
    };
    Ok((n * mult) as u64)
}

fn one_char(s: &str, what: &str) -> Result<u8, CliError> {
    let s = if s == "\\t" { "\t" } else { s };
    match s.as_bytes() {
        [b] if b.is_ascii() => Ok(*b),
        _ => Err(usage_error(format!(
            "--{what} takes one ASCII character, got '{s}'"
        ))),
    }
}

fn options(lh: &Lakehouse, a: &RunArgs, format: Format) -> Result<IngestOptions, CliError> {
    let limits = &lh.config().limits;
    let mut o = IngestOptions {
        infer_types: a.infer_types,
        limits: strata_ingest::decode::Limits {
            max_record_bytes: usize::try_from(limits.max_record_bytes).unwrap_or(usize::MAX),
            max_nesting: limits.max_nesting as usize,
        },
        max_columns: limits.max_columns as usize,
        format: a.input_format.as_deref().map(str::parse).transpose()?,
        mode: a
            .mode
            .as_deref()
            .map(str::parse::<EvolutionMode>)
            .transpose()?,
        corrupt: a.corrupt.parse::<CorruptMode>()?,
        max_files: a.max_files.max(1),
        max_bytes: parse_size(&a.max_bytes)?.max(1),
        skip_duplicate_content: a.skip_duplicate_content,
        reingest_changed: a.reingest_changed,
        lease_timeout: parse_duration(&a.lease_timeout)?,
        delimiter: a
            .delimiter
            .as_deref()
            .map(|d| one_char(d, "delimiter"))
            .transpose()?,
        encoding: a
            .encoding
            .as_deref()
            .map(|e| {
                e.parse::<Encoding>()
                    .map_err(|x| usage_error(x.to_string()))
            })
            .transpose()?,
        ..Default::default()
    };
    o.csv.header = a.header;
    o.csv.quote = one_char(&a.quote, "quote")?;
    o.csv.escape = a
        .escape
        .as_deref()
        .map(|e| one_char(e, "escape"))
        .transpose()?;
    if format == Format::Table {
        o.progress = Some(if std::io::stderr().is_terminal() {
            progress_bar()
        } else {
            progress_lines()
        });
    }
    Ok(o)
}

fn progress_bar() -> strata_ingest::land::ProgressFn {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:30} {pos}/{len} files  {msg} [{elapsed_precise}]",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    Arc::new(move |p: &Progress| {
        let secs = started.elapsed().as_secs_f64().max(0.001);
        bar.set_length(p.files_total);
        bar.set_position(p.files_done);
        bar.set_message(format!(
            "rows {}  {:.0} rows/s  {:.1} MB/s  batch {}",
            p.records,
            p.records as f64 / secs,
            p.bytes as f64 / secs / 1e6,
            p.batch.unwrap_or(0)
        ));
    })
}

/// Off a terminal: a plain progress line on stderr every 10 seconds of a long run.
fn progress_lines() -> strata_ingest::land::ProgressFn {
    let started = Instant::now();
    let last = std::sync::Mutex::new(Instant::now());
    Arc::new(move |p: &Progress| {
        let Ok(mut last) = last.lock() else { return };
        if last.elapsed() < Duration::from_secs(10) {
            return;
        }
        *last = Instant::now();
        let secs = started.elapsed().as_secs_f64().max(0.001);
        let _ = writeln!(
            std::io::stderr(),
            "ingest: files {}/{}, rows {}, {:.0} rows/s, {:.1} MB/s, batch {}",
            p.files_done,
            p.files_total,
            p.records,
            p.records as f64 / secs,
            p.bytes as f64 / secs / 1e6,
            p.batch.unwrap_or(0)
        );
    })
}

pub async fn run(lh: &Lakehouse, args: IngestArgs, format: Format) -> CliResult<ExitCode> {
    match args.command {
        Some(IngestCommand::History { table, limit }) => history(lh, &table, limit, format).await,
        Some(IngestCommand::Files { table }) => files(lh, &table, format).await,
        None => {
            let a = args.run;
            let (Some(source), Some(into)) = (a.source.clone(), a.into.clone()) else {
                return Err(usage_error("strata ingest needs SOURCE and --into TABLE"));
            };
            let table = TableName::parse(&into)?;
            let opts = options(lh, &a, format)?;
            if a.watch {
                return watch(lh, &source, &table, opts, &a, format).await;
            }
            let cancel = Arc::new(AtomicBool::new(false));
            spawn_signal_handler(cancel.clone());
            let opts = IngestOptions {
                cancel: Some(cancel),
                ..opts
            };
            let report = strata_ingest::ingest(lh, &source, &table, &opts).await?;
            print_report(&report, format);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Ctrl-C and SIGTERM ask the run to stop after the batch in progress.
pub(crate) fn spawn_signal_handler(cancel: Arc<AtomicBool>) {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let Ok(mut term) = signal(SignalKind::terminate()) else {
                return;
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("stop requested: finishing the batch in progress");
        cancel.store(true, Ordering::SeqCst);
    });
}

async fn watch(
    lh: &Lakehouse,
    source: &str,
    table: &TableName,
    opts: IngestOptions,
    a: &RunArgs,
    format: Format,
) -> CliResult<ExitCode> {
    let interval = parse_duration(&a.interval)?;
    let settle = parse_duration(&a.settle)?;
    let cancel = Arc::new(AtomicBool::new(false));
    spawn_signal_handler(cancel.clone());
    let opts = IngestOptions {
        cancel: Some(cancel.clone()),
        settle: Some(settle),
        forget_empty_runs: true,
        ..opts
    };
    let mut since_compaction = 0u64;
    eprintln!(
        "watching {source} for {table} every {}s (Ctrl-C to stop)",
        interval.as_secs_f64()
    );
    loop {
        match strata_ingest::ingest(lh, source, table, &opts).await {
            Ok(report) => {
                if report.batches > 0 {
                    print_report(&report, format);
                    since_compaction += report.batches;
                }
            }
            Err(strata_ingest::Error::Cancelled(_)) => break,
            Err(e) => {
                let message = e.to_string();
                match &a.on_failure {
                    Some(cmd) => {
                        eprintln!("error: {message}");
                        let status = tokio::process::Command::new("sh")
                            .arg("-c")
                            .arg(cmd)
                            .env("STRATA_INGEST_ERROR", &message)
                            .env("STRATA_INGEST_TABLE", table.to_string())
                            .status()
                            .await;
                        if let Err(e) = status {
                            eprintln!("error: --on-failure command could not run: {e}");
                        }
                    }
                    None => return Err(CliError::from(e)),
                }
            }
        }
        if since_compaction >= a.compact_every.max(1) {
            match strata_ingest::land::compact(lh, table).await {
                Ok(Some(v)) => tracing::info!(table = %table, version = v, "compacted small files"),
                Ok(None) => {}
                Err(e) => eprintln!("warning: compaction of {table} failed: {e}"),
            }
            since_compaction = 0;
        }
        let deadline = Instant::now() + interval;
        while Instant::now() < deadline {
            if cancel.load(Ordering::SeqCst) {
                eprintln!("stopped watching {source}");
                return Ok(ExitCode::SUCCESS);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if cancel.load(Ordering::SeqCst) {
            break;
        }
    }
    eprintln!("stopped watching {source}");
    Ok(ExitCode::SUCCESS)
}

fn print_report(r: &IngestReport, format: Format) {
    if format != Format::Table {
        print_value(r, format);
        return;
    }
    let c = &r.counts;
    let versions = match (r.first_version, r.last_version) {
        (Some(a), Some(b)) if a == b => format!("version {a}"),
        (Some(a), Some(b)) => format!("versions {a}-{b}"),
        _ => "no new version".to_string(),
    };
    out!(
        "ingested into {} ({} batch(es), {versions})",
        r.table,
        r.batches
    );
    out!(
        "  files:   {} seen, {} landed, {} skipped (unchanged), {} duplicate content, {} changed",
        c.files_seen,
        c.files_landed,
        c.files_skipped.saturating_sub(c.files_changed),
        c.duplicate_content_files,
        c.files_changed
    );
    out!(
        "  records: {} read, {} landed, {} rescued, {} corrupt, {} quarantined",
        c.records_read,
        c.records_landed,
        c.records_rescued,
        c.records_corrupt,
        c.records_quarantined
    );
    out!("  bytes:   {}", c.bytes_read);
    if !r.new_columns.is_empty() {
        out!("  new columns: {}", r.new_columns.join(", "));
    }
    for f in &r.changed_files {
        out!("  changed since it landed (not landed again; pass --reingest-changed): {f}");
    }
}

async fn history(lh: &Lakehouse, table: &str, limit: u32, format: Format) -> CliResult<ExitCode> {
    let name = TableName::parse(table)?;
    let info = lh.table(&name).await?;
    let runs = lh
        .metastore()
        .ingest_runs(Some(&info.table_id), Some(limit))
        .await?;
    if format != Format::Table {
        print_value(&runs, format);
        return Ok(ExitCode::SUCCESS);
    }
    let rows = runs
        .iter()
        .map(|r| {
            let c = &r.counts;
            vec![
                r.started_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                r.status.clone(),
                c.files_landed.to_string(),
                c.files_skipped.to_string(),
                c.records_read.to_string(),
                c.records_landed.to_string(),
                c.records_rescued.to_string(),
                c.records_corrupt.to_string(),
                c.records_quarantined.to_string(),
                match (r.first_version, r.last_version) {
                    (Some(a), Some(b)) => format!("{a}-{b}"),
                    _ => String::new(),
                },
                r.error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    print_rows(
        &[
            "started",
            "status",
            "landed files",
            "skipped",
            "read",
            "landed",
            "rescued",
            "corrupt",
            "quarantined",
            "versions",
            "error",
        ],
        rows,
        format,
    );
    Ok(ExitCode::SUCCESS)
}

async fn files(lh: &Lakehouse, table: &str, format: Format) -> CliResult<ExitCode> {
    let name = TableName::parse(table)?;
    let info = lh.table(&name).await?;
    let files = lh.metastore().ingest_files(Some(&info.table_id)).await?;
    let rows = files
        .iter()
        .map(|f| {
            vec![
                f.range.file_uri.clone(),
                f.range.batch_id.to_string(),
                f.version.map(|v| v.to_string()).unwrap_or_default(),
                f.range.first_record.to_string(),
                f.range.records.to_string(),
                f.range.status.clone(),
            ]
        })
        .collect();
    print_rows(
        &[
            "file",
            "batch",
            "version",
            "first record",
            "records",
            "status",
        ],
        rows,
        format,
    );
    Ok(ExitCode::SUCCESS)
}

/// Write sample click events: K NDJSON files, N rows in all, with seeded defects (duplicates,
/// late arrivals, malformed lines, null users, bad timestamps, negative amounts, unknown event
/// types, a new field half way, amounts turning into strings). The same seed writes
/// byte-identical files; a summary of the defects goes to DIR/_generate.json.
#[derive(Args)]
pub struct GenerateArgs {
    #[command(subcommand)]
    what: GenerateWhat,
}

#[derive(Subcommand)]
enum GenerateWhat {
    /// Click events (event_id, user_id, event_type, ts, session_id, amount, country, device,
    /// props).
    Events {
        /// Rows in all.
        #[arg(long, default_value_t = 10_000)]
        rows: u64,
        /// Number of files.
        #[arg(long, default_value_t = 4)]
        files: usize,
        /// Random seed: the same seed gives the same bytes.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// The folder to write to (made if missing).
        #[arg(long)]
        out: PathBuf,
    },
}

pub fn generate(args: GenerateArgs, format: Format) -> CliResult<ExitCode> {
    let GenerateWhat::Events {
        rows,
        files,
        seed,
        out,
    } = args.what;
    let opts = strata_ingest::generate::GenerateOptions {
        rows,
        files,
        seed,
        out: out.clone(),
    };
    let summary = strata_ingest::generate::generate_events(&opts).map_err(|e| CliError {
        message: format!("generating events into {}: {e}", out.display()),
        class: if e.kind() == std::io::ErrorKind::InvalidInput {
            ErrorClass::InvalidInput
        } else {
            ErrorClass::Storage
        },
        usage: e.kind() == std::io::ErrorKind::InvalidInput,
    })?;
    if format != Format::Table {
        print_value(&summary, format);
    } else {
        out!(
            "wrote {} rows in {} files ({} bytes) to {}",
            summary.rows,
            summary.files.len(),
            summary.bytes,
            out.display()
        );
        out!(
            "  seeded defects: {} duplicates, {} late arrivals, {} malformed lines, {} null users, \
             {} bad timestamps, {} negative amounts, {} unknown types, {} string amounts; field \
             coupon from file {}",
            summary.duplicates,
            summary.late_arrivals,
            summary.malformed,
            summary.null_users,
            summary.bad_timestamps,
            summary.negative_amounts,
            summary.unknown_types,
            summary.string_amounts,
            summary.new_field_from_file
        );
    }
    Ok(ExitCode::SUCCESS)
}
