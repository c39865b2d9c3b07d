//! `strata pipeline`: validate and run declarative pipelines, and show their run history.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::{Args, Subcommand};
use strata_catalog::Lakehouse;
use strata_pipeline::{PipelineFile, RunOptions, RunSummary};

use crate::output::{print_rows, print_value};
use crate::{CliResult, Format, not_found, usage_error};

#[derive(Subcommand)]
pub enum PipelineCommand {
    /// Check a pipeline file without touching data.
    ///
    /// Checks its syntax (errors name the line and key), tables, columns and types, layer rules
    /// (bronze -> silver -> gold), cycles, aggregates in append flows, and PII carried in clear,
    /// and lists bronze columns no flow maps. Exits 1 when it finds a problem.
    Validate {
        /// The pipeline file (TOML; see docs/pipelines.md).
        file: PathBuf,
    },
    /// Run a pipeline's flows in dependency order, incrementally.
    ///
    /// Each flow reads only what changed in its sources since its last successful run; a run
    /// with no new input commits nothing, and a run stopped at any point and run again gives the
    /// same tables as a clean run. A failed flow stops only the flows that read it. Exits 3 when
    /// an expectation with action `fail` failed, 1 when a flow failed otherwise.
    Run(RunArgs),
    /// List recent pipeline runs, newest first.
    Runs {
        /// Only this pipeline's runs.
        #[arg(long)]
        pipeline: Option<String>,
        /// At most this many runs.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Show one run: its flows and their expectations' results.
    ///
    /// Each flow's status, rows read, written, quarantined and dropped, the target version, and
    /// every expectation's rows checked and failed.
    Show {
        /// The run id (from `strata pipeline runs`).
        run: String,
    },
}

#[derive(Args)]
pub struct RunArgs {
    /// The pipeline file.
    file: PathBuf,
    /// Run part of the graph: `flow`, `+flow` (with everything upstream of it), `flow+` (with
    /// everything downstream). Repeat or separate with commas.
    #[arg(long, value_name = "SELECTOR")]
    select: Vec<String>,
    /// Recompute the selected flows from their sources' full snapshots.
    #[arg(long)]
    full_refresh: bool,
    /// Recompute a range of partitions of the selected replace and full flows (a backfill),
    /// from their sources at the versions they last consumed: `event_date=2024-09-01..2024-09-03`
    /// or `event_date=2024-09-01`. Safe to repeat.
    #[arg(long, value_name = "COLUMN=FROM..TO", conflicts_with = "full_refresh")]
    partitions: Option<String>,
    /// Read, transform and check, then report what would be written; commit nothing.
    #[arg(long)]
    dry_run: bool,
    /// Run again every interval (`30s`, `5m`, `1h`) until Ctrl-C or SIGTERM; a run in progress
    /// stops before its next commit.
    #[arg(long, value_name = "INTERVAL")]
    every: Option<String>,
    /// A shell command to run when a run fails (its run id is in $STRATA_RUN_ID).
    #[arg(long, value_name = "CMD")]
    on_failure: Option<String>,
}

pub async fn run(lh: &Lakehouse, cmd: PipelineCommand, format: Format) -> CliResult<ExitCode> {
    match cmd {
        PipelineCommand::Validate { file } => {
            let p = strata_pipeline::resolve(PipelineFile::read(&file).map_err(pe)?).map_err(pe)?;
            let report = strata_pipeline::check(lh, &p).await.map_err(pe)?;
            for w in &report.warnings {
                eprintln!("warning: {w}");
            }
            for e in &report.problems {
                eprintln!("error: {e}");
            }
            if !report.problems.is_empty() {
                eprintln!(
                    "pipeline {} has {} problem(s)",
                    p.name(),
                    report.problems.len()
                );
                return Ok(ExitCode::from(1));
            }
            let rows = p
                .order
                .iter()
                .map(|&i| {
                    let f = &p.flows[i];
                    vec![
                        f.name.clone(),
                        f.target.to_string(),
                        f.mode.to_string(),
                        f.sources
                            .iter()
                            .map(|s| s.name.to_string())
                            .collect::<Vec<_>>()
                            .join(", "),
                        report
                            .outputs
                            .get(&f.name)
                            .map(|s| {
                                s.fields()
                                    .iter()
                                    .map(|c| c.name().as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            })
                            .unwrap_or_default(),
                        f.rules.len().to_string(),
                    ]
                })
                .collect();
            print_rows(
                &[
                    "flow",
                    "target",
                    "mode",
                    "sources",
                    "columns",
                    "expectations",
                ],
                rows,
                format,
            );
            eprintln!("pipeline {} is valid", p.name());
            Ok(ExitCode::SUCCESS)
        }
        PipelineCommand::Run(args) => run_pipeline(lh, args, format).await,
        PipelineCommand::Runs { pipeline, limit } => {
            let runs = lh
                .metastore()
                .pipeline_runs(pipeline.as_deref(), Some(limit))
                .await?;
            let rows = runs
                .into_iter()
                .map(|r| {
                    vec![
                        r.run_id,
                        r.pipeline,
                        r.trigger,
                        r.status,
                        r.started_at.to_rfc3339(),
                        r.finished_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
                        r.error.unwrap_or_default(),
                    ]
                })
                .collect();
            print_rows(
                &[
                    "run_id",
                    "pipeline",
                    "trigger",
                    "status",
                    "started_at",
                    "finished_at",
                    "error",
                ],
                rows,
                format,
            );
            Ok(ExitCode::SUCCESS)
        }
        PipelineCommand::Show { run } => {
            let ms = lh.metastore();
            let r = ms.pipeline_run(&run).await?.ok_or_else(|| {
                not_found(format!(
                    "no pipeline run {run}; `strata pipeline runs` lists them"
                ))
            })?;
            if format == Format::Table {
                out!(
                    "run {} of pipeline {}: {} ({}), started {}{}",
                    r.run_id,
                    r.pipeline,
                    r.status,
                    r.trigger,
                    r.started_at.to_rfc3339(),
                    r.error
                        .as_ref()
                        .map(|e| format!("\nerror: {e}"))
                        .unwrap_or_default()
                );
            }
            let flows = ms.flow_runs(Some(&run)).await?;
            let rows = flows
                .iter()
                .map(|f| {
                    vec![
                        f.flow.clone(),
                        f.target.clone(),
                        f.status.clone(),
                        f.rows_read.to_string(),
                        f.rows_written.to_string(),
                        f.rows_quarantined.to_string(),
                        f.rows_dropped.to_string(),
                        f.target_version.map(|v| v.to_string()).unwrap_or_default(),
                        f.error.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            print_rows(
                &[
                    "flow",
                    "target",
                    "status",
                    "read",
                    "written",
                    "quarantined",
                    "dropped",
                    "version",
                    "error",
                ],
                rows,
                format,
            );
            let quality: Vec<Vec<String>> = ms
                .quality_results()
                .await?
                .into_iter()
                .filter(|q| q.run_id == run)
                .map(|q| {
                    vec![
                        q.flow.unwrap_or_default(),
                        q.rule,
                        q.kind,
                        q.action,
                        q.rows_checked.to_string(),
                        q.rows_failed.to_string(),
                        if q.passed { "yes".into() } else { "no".into() },
                        q.observed.unwrap_or_default(),
                    ]
                })
                .collect();
            if !quality.is_empty() {
                print_rows(
                    &[
                        "flow", "rule", "kind", "action", "checked", "failed", "passed", "observed",
                    ],
                    quality,
                    format,
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn pe(e: strata_pipeline::Error) -> crate::CliError {
    crate::CliError {
        class: e.class(),
        message: e.to_string(),
        usage: false,
    }
}

fn print_summary(s: &RunSummary, format: Format, dry_run: bool) {
    for w in &s.report.warnings {
        eprintln!("warning: {w}");
    }
    for f in &s.flows {
        for w in f
            .warnings
            .iter()
            .filter(|w| !w.starts_with("sources:") && !w.starts_with("samples:"))
        {
            eprintln!("warning: flow {}: {w}", f.flow);
        }
        for q in f.quality.iter().filter(|q| !q.passed && q.action == "warn") {
            eprintln!(
                "warning: flow {}: expectation {} failed on {} of {} rows (action warn)",
                f.flow, q.rule, q.rows_failed, q.rows_checked
            );
        }
    }
    if format == Format::Json {
        print_value(
            &serde_json::json!({
                "run_id": s.run_id,
                "pipeline": s.pipeline,
                "status": s.status,
                "dry_run": dry_run,
                "flows": s.flows.iter().map(|f| serde_json::json!({
                    "flow": f.flow, "target": f.target, "status": f.status,
                    "rows_read": f.rows_read, "rows_written": f.rows_written,
                    "rows_quarantined": f.rows_quarantined, "rows_dropped": f.rows_dropped,
                    "target_version": f.target_version, "commits": f.commits, "error": f.error,
                })).collect::<Vec<_>>(),
            }),
            format,
        );
        return;
    }
    let rows = s
        .flows
        .iter()
        .map(|f| {
            vec![
                f.flow.clone(),
                f.target.clone(),
                f.status.clone(),
                f.rows_read.to_string(),
                f.rows_written.to_string(),
                f.rows_quarantined.to_string(),
                f.rows_dropped.to_string(),
                f.commits.join(" "),
            ]
        })
        .collect();
    print_rows(
        &[
            "flow",
            "target",
            "status",
            "read",
            "written",
            "quarantined",
            "dropped",
            "commits",
        ],
        rows,
        format,
    );
    for f in s.flows.iter().filter(|f| f.error.is_some()) {
        eprintln!(
            "error: flow {} {}: {}",
            f.flow,
            f.status,
            f.error.clone().unwrap_or_default()
        );
    }
    if format == Format::Table {
        let what = if dry_run {
            "dry run (nothing committed)"
        } else {
            "run"
        };
        eprintln!("pipeline {} {what} {}: {}", s.pipeline, s.run_id, s.status);
    }
}

async fn run_pipeline(lh: &Lakehouse, args: RunArgs, format: Format) -> CliResult<ExitCode> {
    let every = match &args.every {
        Some(text) => Some(
            strata_pipeline::rules::parse_duration(text)
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    usage_error(format!(
                        "--every {text}: expected an interval like 30s, 5m or 1h"
                    ))
                })?,
        ),
        None => None,
    };
    let cancel = Arc::new(AtomicBool::new(false));
    crate::ingest::spawn_signal_handler(cancel.clone());
    let opts = RunOptions {
        select: args.select.clone(),
        full_refresh: args.full_refresh,
        dry_run: args.dry_run,
        trigger: if every.is_some() {
            "schedule".into()
        } else {
            "manual".into()
        },
        cancel: Some(cancel.clone()),
        partitions: match &args.partitions {
            Some(t) => Some(
                strata_pipeline::PartitionRange::parse(t)
                    .map_err(|e| usage_error(e.to_string()))?,
            ),
            None => None,
        },
    };
    loop {
        // the file is read again each time, so an edit takes effect at the next run
        let p =
            strata_pipeline::resolve(PipelineFile::read(&args.file).map_err(pe)?).map_err(pe)?;
        let summary = strata_pipeline::run(lh, &p, &opts).await.map_err(pe)?;
        print_summary(&summary, format, args.dry_run);
        if summary.failed()
            && let Some(cmd) = &args.on_failure
        {
            let status = tokio::process::Command::new("sh")
                .arg("-c")
                .arg(cmd)
                .env("STRATA_RUN_ID", &summary.run_id)
                .status()
                .await;
            if let Err(e) = status {
                eprintln!("error: --on-failure command could not start: {e}");
            }
        }
        let code = if summary.quality_gate() {
            ExitCode::from(3)
        } else if summary.failed() {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        };
        let Some(interval) = every else {
            return Ok(code);
        };
        let deadline = tokio::time::Instant::now() + interval;
        while tokio::time::Instant::now() < deadline {
            if cancel.load(Ordering::SeqCst) {
                return Ok(code);
            }
            tokio::time::sleep(
                Duration::from_millis(200).min(deadline - tokio::time::Instant::now()),
            )
            .await;
        }
        if cancel.load(Ordering::SeqCst) {
            return Ok(code);
        }
    }
}

#[derive(Subcommand)]
pub enum QualityCommand {
    /// Run expectations over an existing table, as dbt `test` does.
    ///
    /// Row rules run in one scan, table rules after it. Results go to system.quality_results.
    /// Exits 3 when a rule with action `fail` fails.
    ///
    /// The rules file holds `[[expect]]` entries, written as in a pipeline flow (see
    /// docs/pipelines.md), with action `warn` (the default) or `fail`.
    Check {
        /// The table, e.g. silver.events.
        table: String,
        /// Check this version of the table instead of the latest.
        #[arg(long)]
        version: Option<i64>,
        /// The rules file (TOML).
        #[arg(long)]
        rules: PathBuf,
    },
}

pub async fn quality(lh: &Lakehouse, cmd: QualityCommand, format: Format) -> CliResult<ExitCode> {
    let QualityCommand::Check {
        table,
        version,
        rules,
    } = cmd;
    let name = strata_core::TableName::parse(&table)?;
    let rules = strata_pipeline::quality::read_rules(&rules).map_err(pe)?;
    let (results, fail) = strata_pipeline::quality::check_table(lh, &name, version, &rules)
        .await
        .map_err(pe)?;
    let rows = results
        .into_iter()
        .map(|q| {
            vec![
                q.rule,
                q.kind,
                q.action,
                q.rows_checked.to_string(),
                q.rows_failed.to_string(),
                if q.passed { "yes".into() } else { "no".into() },
                q.observed.unwrap_or_default(),
            ]
        })
        .collect();
    print_rows(
        &[
            "rule", "kind", "action", "checked", "failed", "passed", "observed",
        ],
        rows,
        format,
    );
    match fail {
        Some(m) => {
            eprintln!("error: quality check of {name} failed: {m}");
            Ok(ExitCode::from(3))
        }
        None => Ok(ExitCode::SUCCESS),
    }
}

/// Which quarantined rows: shared by show, replay and purge.
#[derive(Args)]
pub struct QuarantineFilter {
    /// Only rows of this stage: ingest, contract, cast or expectation.
    #[arg(long)]
    stage: Option<String>,
    /// Only rows that failed this expectation.
    #[arg(long)]
    rule: Option<String>,
    /// Only rows of this flow.
    #[arg(long)]
    flow: Option<String>,
}

impl QuarantineFilter {
    fn filter(&self, older_than: Option<&str>) -> CliResult<strata_pipeline::replay::Filter> {
        let older_than = match older_than {
            Some(t) => Some(strata_pipeline::rules::parse_duration(t).ok_or_else(|| {
                usage_error(format!(
                    "--older-than {t}: expected a duration like 12h, 7d or 2w"
                ))
            })?),
            None => None,
        };
        Ok(strata_pipeline::replay::Filter {
            stage: self.stage.clone(),
            rule: self.rule.clone(),
            flow: self.flow.clone(),
            older_than,
        })
    }
}

#[derive(Subcommand)]
pub enum QuarantineCommand {
    /// List quarantined rows, newest first.
    ///
    /// Each row's stage, flow, failed rules, reason, where it came from, and the row itself.
    Show {
        /// The quarantine table, e.g. quarantine.events.
        table: String,
        #[command(flatten)]
        filter: QuarantineFilter,
        /// At most this many rows.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Move rows that now pass their flow's rules into its target, exactly once.
    ///
    /// Re-checks `cast` and `expectation` rows against their flow's current definition (the one
    /// of its latest run: fix a rule or a cast, run the pipeline, then replay). Rows that still
    /// fail stay. Works for append and merge flows; aggregating flows are recomputed with
    /// `pipeline run --full-refresh` instead.
    Replay {
        /// The quarantine table, e.g. quarantine.events.
        table: String,
        #[command(flatten)]
        filter: QuarantineFilter,
    },
    /// Remove quarantined rows on purpose, in one commit.
    ///
    /// Name the rows with a filter, or pass --all.
    Purge {
        /// The quarantine table, e.g. quarantine.events.
        table: String,
        #[command(flatten)]
        filter: QuarantineFilter,
        /// Only rows quarantined longer ago than this (e.g. 30d).
        #[arg(long, value_name = "DURATION")]
        older_than: Option<String>,
        /// Remove every row of the table.
        #[arg(long)]
        all: bool,
    },
}

pub async fn quarantine(
    lh: &Lakehouse,
    cmd: QuarantineCommand,
    format: Format,
) -> CliResult<ExitCode> {
    match cmd {
        QuarantineCommand::Show {
            table,
            filter,
            limit,
        } => {
            let name = strata_core::TableName::parse(&table)?;
            let (schema, batches) =
                strata_pipeline::replay::show(lh, &name, &filter.filter(None)?, limit)
                    .await
                    .map_err(pe)?;
            crate::output::print_batches(&schema, &batches, format);
            Ok(ExitCode::SUCCESS)
        }
        QuarantineCommand::Replay { table, filter } => {
            let name = strata_core::TableName::parse(&table)?;
            let o = strata_pipeline::replay::replay(lh, &name, &filter.filter(None)?)
                .await
                .map_err(pe)?;
            if o.finished > 0 {
                out!(
                    "finished {} replay(s) stopped between their commits",
                    o.finished
                );
            }
            let moved: u64 = o.moved.values().sum();
            for (t, n) in &o.moved {
                out!("moved {n} row(s) into {t}");
            }
            for (f, n) in o.still_failing.iter().filter(|(_, n)| **n > 0) {
                out!("{n} row(s) of flow {f} still fail and stay in {name}");
            }
            if o.skipped > 0 {
                out!(
                    "{} row(s) of stage ingest or contract left in place: land their fixed \
                     source files again with `strata ingest`",
                    o.skipped
                );
            }
            if moved == 0 {
                out!("no row moved");
            }
            Ok(ExitCode::SUCCESS)
        }
        QuarantineCommand::Purge {
            table,
            filter,
            older_than,
            all,
        } => {
            let name = strata_core::TableName::parse(&table)?;
            let n = strata_pipeline::replay::purge(
                lh,
                &name,
                &filter.filter(older_than.as_deref())?,
                all,
            )
            .await
            .map_err(pe)?;
            out!("removed {n} row(s) from {name}");
            Ok(ExitCode::SUCCESS)
        }
    }
}
