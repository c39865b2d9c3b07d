//! `strata`: one binary for a Strata lakehouse. Each subcommand parses its arguments, calls a
//! library function, and prints the result; every feature is usable as a library too.

/// `println!` that does not panic when stdout is closed (`strata ... | head`): output is
/// best effort, and the exit code still says how the command went.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod ingest;
mod output;
mod pipeline;
mod push;
mod registry;
mod serve;
mod sql;
mod table;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use strata_catalog::Lakehouse;
use strata_core::ErrorClass;

/// Strata: a lakehouse in one binary. Layered Delta Lake tables (bronze, silver, gold), a
/// metastore of their names, owners, tags and lineage, and SQL with time travel and the change
/// feed.
///
/// Start with `strata init my-lakehouse`, then `cd my-lakehouse` (or pass --lakehouse).
#[derive(Parser)]
#[command(name = "strata", version, about, long_about, max_term_width = 100)]
struct Cli {
    /// The lakehouse folder. Default: $STRATA_LAKEHOUSE, else the current folder or the
    /// nearest parent holding a strata.toml.
    #[arg(long, global = true, value_name = "DIR")]
    lakehouse: Option<PathBuf>,

    /// Output format: a human table, or json/csv for scripts.
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    format: Format,

    /// Print how long the command's work took (after start-up) as the last line on stderr,
    /// `Time: 12.345 ms`, as psql's \timing does.
    #[arg(long, global = true)]
    timing: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Csv,
}

#[derive(Subcommand)]
enum Command {
    /// Create a lakehouse: strata.toml, the metastore, and the schemas bronze, silver, gold,
    /// quarantine and system.
    Init {
        /// The folder to create it in (made if missing). Default: the current folder.
        dir: Option<PathBuf>,
    },
    /// Create, inspect, change and maintain tables.
    #[command(subcommand)]
    Table(table::TableCommand),
    /// Create and list schemas (each bound to one layer).
    #[command(subcommand)]
    Schema(table::SchemaCommand),
    /// Run SQL: a statement or script, or an interactive shell without one.
    Sql(sql::SqlArgs),
    /// Land files into a bronze table, exactly once (see `strata ingest --help`).
    #[command(long_about = None)]
    Ingest(Box<ingest::IngestArgs>),
    /// Write sample data (`strata generate events --out DIR`).
    Generate(ingest::GenerateArgs),
    /// Check that the metastore and the Delta logs agree; exits 1 when they do not.
    Doctor {
        /// Fix what the Delta logs can prove, and list what cannot be fixed.
        #[arg(long)]
        repair: bool,
    },
    /// Refine bronze into silver and gold with declarative pipelines (validate, run, runs,
    /// show); see docs/pipelines.md.
    #[command(subcommand)]
    Pipeline(pipeline::PipelineCommand),
    /// Quarantined rows: show them, replay them into their targets, or purge them.
    #[command(subcommand)]
    Quarantine(pipeline::QuarantineCommand),
    /// Check data quality: run expectations over an existing table (`quality check`).
    #[command(subcommand)]
    Quality(pipeline::QualityCommand),
    /// The schema registry: subjects, versions and compatibility of Avro and JSON schemas
    /// (the same registry `strata serve` offers over Confluent's REST API).
    #[command(subcommand)]
    Registry(registry::RegistryCommand),
    /// Start Strata's HTTP server: the Confluent-compatible schema registry, push ingest into
    /// bronze tables, /health and /metrics (Prometheus), by default on 127.0.0.1:8081; SIGTERM
    /// or Ctrl-C stops it after the requests in flight.
    ///
    /// Push ingest: POST /api/v1/tables/{table}/records with NDJSON (application/x-ndjson), a
    /// JSON array (application/json) or Confluent wire-format Avro
    /// (application/vnd.strata.confluent-avro). Each request is checked against the table's
    /// contract and answered after the commit that holds its records; requests that arrive
    /// while a commit runs share the next one. An Idempotency-Key header lands a retry once.
    Serve(serve::ServeArgs),
    /// Contracts: bind a registry subject to a bronze table, so every ingest checks each
    /// record against it before it reaches bronze.
    #[command(subcommand)]
    Contract(registry::ContractCommand),
    /// Metastore maintenance.
    #[command(subcommand)]
    Metastore(MetastoreCommand),
}

#[derive(Subcommand)]
enum MetastoreCommand {
    /// Write a consistent copy of the metastore (the lakehouse key included) to FILE.
    Backup {
        /// Where to write the copy; must not exist.
        file: PathBuf,
    },
}

/// An error the CLI prints: one sentence, and the exit code scripts rely on.
pub struct CliError {
    pub message: String,
    pub class: ErrorClass,
    /// A mistake in how the command was called: exit code 2.
    pub usage: bool,
}

impl<E: std::fmt::Display + Classify> From<E> for CliError {
    fn from(e: E) -> Self {
        CliError {
            class: e.class(),
            message: e.to_string(),
            usage: false,
        }
    }
}

pub trait Classify {
    fn class(&self) -> ErrorClass;
}

macro_rules! classify {
    ($($t:ty),*) => {
        $(impl Classify for $t { fn class(&self) -> ErrorClass { <$t>::class(self) } })*
    };
}
classify!(
    strata_core::Error,
    strata_table::Error,
    strata_catalog::Error,
    strata_sql::Error
);

pub type CliResult<T = ()> = Result<T, CliError>;

/// A named object is missing: exit code 1.
pub fn not_found(message: impl Into<String>) -> CliError {
    CliError {
        message: message.into(),
        class: ErrorClass::NotFound,
        usage: false,
    }
}

pub fn usage_error(message: impl Into<String>) -> CliError {
    CliError {
        message: message.into(),
        class: ErrorClass::InvalidInput,
        usage: true,
    }
}

/// The lakehouse a command works on. It keeps the Delta snapshots it opens: a command that
/// opens a table again (each statement of a SQL script, each batch of an ingest, each flow of a
/// pipeline) reads only the commits made since.
async fn open(cli_dir: &Option<PathBuf>) -> CliResult<Lakehouse> {
    let dir = Lakehouse::discover(cli_dir.as_deref())?;
    Ok(Lakehouse::open(&dir).await?.keep_snapshots())
}

async fn run(cli: Cli) -> CliResult<ExitCode> {
    match cli.command {
        Command::Init { dir } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from("."));
            let lh = Lakehouse::init(&dir).await?;
            out!(
                "created lakehouse {} (schemas bronze, silver, gold, quarantine, system)",
                lh.root().display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Table(cmd) => {
            let lh = open(&cli.lakehouse).await?;
            table::run_table(&lh, cmd, cli.format).await
        }
        Command::Schema(cmd) => {
            let lh = open(&cli.lakehouse).await?;
            table::run_schema(&lh, cmd, cli.format).await
        }
        Command::Sql(args) => {
            let lh = open(&cli.lakehouse).await?;
            sql::run(lh, args, cli.format).await
        }
        Command::Ingest(args) => {
            let lh = open(&cli.lakehouse).await?;
            ingest::run(&lh, *args, cli.format).await
        }
        Command::Generate(args) => ingest::generate(args, cli.format),
        Command::Doctor { repair } => {
            let lh = open(&cli.lakehouse).await?;
            let report = lh.doctor(repair).await?;
            output::print_doctor(&report, cli.format);
            Ok(if report.unhealthy() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Pipeline(cmd) => {
            let lh = open(&cli.lakehouse).await?;
            pipeline::run(&lh, cmd, cli.format).await
        }
        Command::Quarantine(cmd) => {
            let lh = open(&cli.lakehouse).await?;
            pipeline::quarantine(&lh, cmd, cli.format).await
        }
        Command::Quality(cmd) => {
            let lh = open(&cli.lakehouse).await?;
            pipeline::quality(&lh, cmd, cli.format).await
        }
        Command::Registry(cmd) => {
            let lh = open(&cli.lakehouse).await?;
            registry::run(&lh, cmd, cli.format).await
        }
        Command::Contract(cmd) => {
            let lh = open(&cli.lakehouse).await?;
            registry::contract(&lh, cmd, cli.format).await
        }
        Command::Serve(args) => {
            let lh = open(&cli.lakehouse).await?;
            serve::run(lh, args).await
        }
        Command::Metastore(MetastoreCommand::Backup { file }) => {
            let lh = open(&cli.lakehouse).await?;
            lh.metastore().backup(&file).await?;
            out!("metastore copied to {}", file.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STRATA_LOG")
                // dependencies log expected conditions (an empty folder before a table's first
                // commit) at error level; by default only Strata's own warnings are shown
                .unwrap_or_else(|_| {
                    tracing_subscriber::EnvFilter::new(
                        "off,strata_cli=warn,strata_catalog=warn,strata_ingest=warn,strata_pipeline=warn,strata_sql=warn,\
                         strata_table=warn",
                    )
                }),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    let timing = cli.timing.then(std::time::Instant::now);
    let result = runtime.block_on(run(cli));
    let elapsed = timing.map(|started| started.elapsed());
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", e.message);
            ExitCode::from(match e.class {
                _ if e.usage => 2,
                ErrorClass::QualityGate => 3,
                _ => 1,
            })
        }
    };
    if let Some(elapsed) = elapsed {
        use std::io::Write;
        let ms = elapsed.as_secs_f64() * 1e3;
        let _ = writeln!(std::io::stderr(), "Time: {ms:.3} ms");
    }
    code
}
