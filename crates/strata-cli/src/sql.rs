//! `strata sql`: run a statement or a script, or an interactive shell.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use rustyline::error::ReadlineError;
use strata_catalog::Lakehouse;
use strata_sql::{Output, SqlEngine};
use strata_table::Txn;

use crate::output::print_batches;
use crate::{CliResult, Format, usage_error};

/// SQL in Strata's dialect (PostgreSQL's, plus `VERSION AS OF n`, `TIMESTAMP AS OF 'ts'`,
/// `table_changes('schema.table', start[, end])` and Delta's maintenance statements).
///
/// Examples:
///   strata sql "SELECT * FROM silver.events VERSION AS OF 3 LIMIT 10"
///   strata sql --file model.sql
///   strata sql            (an interactive shell; end statements with ';')
#[derive(Args)]
#[command(verbatim_doc_comment)]
pub struct SqlArgs {
    /// Statements to run, separated by ';'. Without them (and without --file), a shell opens.
    query: Option<String>,
    /// Run the statements in this file.
    #[arg(long, short = 'f', conflicts_with = "query")]
    file: Option<PathBuf>,
    /// A transaction id APP:VERSION every write carries: a write whose id (or a higher
    /// version of the same app) was committed before commits nothing.
    #[arg(long, value_name = "APP:VERSION")]
    txn: Option<String>,
}

fn print_output(out: &Output, format: Format) {
    match out {
        Output::Rows { schema, batches } => print_batches(schema, batches, format),
        Output::Status(s) => {
            if format == Format::Json {
                out!("{}", serde_json::json!({ "status": s }));
            } else {
                out!("{s}");
            }
        }
    }
}

pub async fn run(lh: Lakehouse, args: SqlArgs, format: Format) -> CliResult<ExitCode> {
    let engine = SqlEngine::new(lh);
    if let Some(t) = &args.txn {
        engine.set_txn(Some(Txn::parse(t)?));
    }
    let script = match (&args.query, &args.file) {
        (Some(q), _) => Some(q.clone()),
        (None, Some(f)) => Some(
            std::fs::read_to_string(f)
                .map_err(|e| usage_error(format!("cannot read {}: {e}", f.display())))?,
        ),
        (None, None) => None,
    };
    if let Some(script) = script {
        // Each statement's result is printed as soon as it is done, so a script that fails
        // half way shows what it did before.
        for stmt in strata_sql::extensions::split_statements(&script)? {
            let out = engine.execute_one(&stmt).await?;
            print_output(&out, format);
        }
        return Ok(ExitCode::SUCCESS);
    }
    shell(&engine, format).await
}

async fn shell(engine: &SqlEngine, format: Format) -> CliResult<ExitCode> {
    let mut rl = rustyline::DefaultEditor::new()
        .map_err(|e| usage_error(format!("cannot open the shell: {e}")))?;
    let history = engine
        .lakehouse()
        .root()
        .join("_strata")
        .join("sql_history");
    let _ = rl.load_history(&history);
    out!(
        "Strata SQL on {}. End statements with ';', leave with \\q or Ctrl-D.",
        engine.lakehouse().root().display()
    );
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() {
            "strata> "
        } else {
            "   ...> "
        };
        match rl.readline(prompt) {
            Ok(line) => {
                let trimmed = line.trim();
                if buffer.is_empty() && (trimmed == "\\q" || trimmed == "exit" || trimmed == "quit")
                {
                    break;
                }
                buffer.push_str(&line);
                buffer.push('\n');
                if !trimmed.ends_with(';') {
                    continue;
                }
                let text = std::mem::take(&mut buffer);
                let _ = rl.add_history_entry(text.trim());
                let stmts = match strata_sql::extensions::split_statements(&text) {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("error: {e}");
                        continue;
                    }
                };
                for stmt in stmts {
                    match engine.execute_one(&stmt).await {
                        Ok(out) => print_output(&out, format),
                        Err(e) => {
                            eprintln!("error: {e}");
                            break;
                        }
                    }
                }
            }
            Err(ReadlineError::Interrupted) => {
                buffer.clear();
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                eprintln!("error: {e}");
                break;
            }
        }
    }
    let _ = rl.save_history(&history);
    Ok(ExitCode::SUCCESS)
}
