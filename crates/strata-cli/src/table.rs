//! `strata table ...` and `strata schema ...`.

use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use strata_catalog::Lakehouse;
use strata_catalog::lakehouse::{CreateTable, RestoreTarget};
use strata_catalog::metastore::TableUpdate;
use strata_core::{Layer, SchemaName, TableName};

use crate::output::{print_rows, print_value};
use crate::{CliResult, Format, not_found, usage_error};

#[derive(Subcommand)]
pub enum TableCommand {
    /// Create a managed table in one Delta commit, with its layer's defaults (bronze:
    /// append-only, change feed, full history; silver and gold: change data feed).
    ///
    /// Example: strata table create silver.users --columns "id BIGINT NOT NULL, name STRING, ts TIMESTAMP"
    Create {
        /// schema.table or catalog.schema.table
        name: String,
        /// Column list: "name TYPE [NOT NULL] [COMMENT 'text'], ...". Types: BIGINT, INT,
        /// SMALLINT, TINYINT, DOUBLE, FLOAT, DECIMAL(p,s), STRING, BOOLEAN, DATE, TIMESTAMP (an
        /// instant, UTC), TIMESTAMP_NTZ, BINARY, ARRAY<T>, STRUCT<a: T, ...>, MAP<K, V>.
        #[arg(long)]
        columns: String,
        /// Partition columns, comma-separated.
        #[arg(long, value_delimiter = ',')]
        partition_by: Vec<String>,
        #[arg(long)]
        comment: Option<String>,
        #[arg(long)]
        owner: Option<String>,
        /// A property KEY=VALUE (repeatable); delta.* keys go into the Delta log.
        #[arg(long = "property", value_name = "KEY=VALUE")]
        properties: Vec<String>,
    },
    /// Register an existing Delta table by location (external: read-only; Strata never writes
    /// or deletes its files).
    Register {
        name: String,
        /// A local path or a URL (file://, s3://, ...).
        #[arg(long)]
        location: String,
    },
    /// List tables.
    List {
        /// Only tables of this layer.
        #[arg(long)]
        layer: Option<Layer>,
        /// Only tables of this schema.
        #[arg(long)]
        schema: Option<String>,
    },
    /// Show a table: columns, types, comments, tags, partitioning, layer, owner, properties,
    /// location, current version, files and bytes.
    Describe { name: String },
    /// Show a table's commits, newest first.
    History {
        name: String,
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Change a table's comment, owner or properties.
    Set {
        name: String,
        #[arg(long)]
        comment: Option<String>,
        #[arg(long)]
        owner: Option<String>,
        /// A property KEY=VALUE (repeatable); delta.* keys are written to the Delta log.
        #[arg(long = "property", value_name = "KEY=VALUE")]
        properties: Vec<String>,
    },
    /// Tag a table, or one of its columns (the tag `pii` marks personal data).
    Tag(TagArgs),
    /// Remove a tag.
    Untag(TagArgs),
    /// Restore a table to an earlier version, in a new commit.
    Restore {
        name: String,
        #[command(flatten)]
        target: RestoreArgs,
        /// Restore even when ingestion or pipelines depend on the table's history.
        #[arg(long)]
        force: bool,
    },
    /// Erase rows (for example a data subject's, under GDPR): the audited way rows leave a
    /// bronze table. Deletes the rows in three commits (lift append-only, delete, set it
    /// again), deletes exactly the data files that held them, and records who-what-why in
    /// the metastore.
    Erase {
        name: String,
        /// Which rows, as a SQL predicate over the table's columns, e.g. "user_id = 'u-42'".
        #[arg(long = "where", value_name = "PREDICATE")]
        predicate: String,
        /// Why, kept in the audit record (required).
        #[arg(long)]
        reason: String,
    },
    /// Compact small files, or Z-order them by columns.
    Optimize {
        name: String,
        /// Z-order by these columns (comma-separated).
        #[arg(long, value_delimiter = ',')]
        zorder: Vec<String>,
    },
    /// Delete files no version within the retention still needs.
    Vacuum {
        name: String,
        /// Keep files needed by the versions of the last H hours (default: the table's
        /// delta.deletedFileRetentionDuration, 7 days).
        #[arg(long)]
        retain_hours: Option<u64>,
        /// List the files without deleting them.
        #[arg(long)]
        dry_run: bool,
        /// Delete files that pipeline flows reading the table have not consumed yet (they then
        /// need --full-refresh). Without it, those files are kept.
        #[arg(long)]
        force: bool,
    },
    /// Drop a table: unregister it and move its folder to the trash (undrop brings it back).
    Drop {
        name: String,
        /// Delete the files now; undrop is then impossible.
        #[arg(long)]
        purge: bool,
    },
    /// Bring back the most recently dropped table of this name.
    Undrop { name: String },
}

#[derive(Args)]
pub struct TagArgs {
    pub name: String,
    pub tag: String,
    /// Tag this column instead of the table.
    #[arg(long)]
    pub column: Option<String>,
}

#[derive(Args)]
#[group(required = true, multiple = false)]
pub struct RestoreArgs {
    /// The version to restore.
    #[arg(long)]
    version: Option<i64>,
    /// Restore the version current at this time ('2024-09-01 12:00:00', UTC unless a zone is given).
    #[arg(long)]
    timestamp: Option<String>,
}

#[derive(Subcommand)]
pub enum SchemaCommand {
    /// Create a schema bound to one layer.
    Create {
        /// schema or catalog.schema
        name: String,
        #[arg(long)]
        layer: Layer,
        #[arg(long)]
        comment: Option<String>,
    },
    /// List schemas.
    List,
}

fn parse_properties(props: &[String]) -> CliResult<BTreeMap<String, String>> {
    props
        .iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| usage_error(format!("--property '{p}' is not KEY=VALUE")))
        })
        .collect()
}

pub async fn run_table(lh: &Lakehouse, cmd: TableCommand, format: Format) -> CliResult<ExitCode> {
    match cmd {
        TableCommand::Create {
            name,
            columns,
            partition_by,
            comment,
            owner,
            properties,
        } => {
            let tn = TableName::parse(&name)?;
            let cols = strata_core::parse_columns(&columns)?;
            let spec = CreateTable {
                columns: cols.iter().map(|c| c.to_field()).collect(),
                column_comments: cols
                    .iter()
                    .filter_map(|c| c.comment.clone().map(|m| (c.name.clone(), m)))
                    .collect(),
                partition_by,
                comment,
                owner,
                properties: parse_properties(&properties)?,
            };
            let (info, _) = lh.create_table(&tn, spec).await?;
            out!(
                "created table {} ({}, version 0) at {}",
                info.name,
                info.layer
                    .map(|l| l.to_string())
                    .unwrap_or_else(|| "quarantine".into()),
                info.location.unwrap_or_default()
            );
        }
        TableCommand::Register { name, location } => {
            let tn = TableName::parse(&name)?;
            let info = lh.register_table(&tn, &location).await?;
            out!(
                "registered external table {} (read-only) at {}",
                info.name,
                info.location.unwrap_or_default()
            );
        }
        TableCommand::List { layer, schema } => {
            let schema = schema.map(|s| SchemaName::parse(&s)).transpose()?;
            let tables = lh.metastore().list_tables(schema.as_ref(), layer).await?;
            let rows = tables
                .into_iter()
                .map(|t| {
                    vec![
                        t.name.to_string(),
                        t.layer.map(|l| l.to_string()).unwrap_or_default(),
                        t.kind.to_string(),
                        t.owner.unwrap_or_default(),
                        t.comment.unwrap_or_default(),
                    ]
                })
                .collect();
            print_rows(
                &["table", "layer", "kind", "owner", "comment"],
                rows,
                format,
            );
        }
        TableCommand::Describe { name } => {
            let d = lh.describe(&TableName::parse(&name)?).await?;
            if format == Format::Json {
                print_value(&d, format);
            } else {
                let mut head = serde_json::to_value(&d).unwrap_or_default();
                if let Some(m) = head.as_object_mut() {
                    m.remove("columns");
                }
                print_value(&head, format);
                let rows = d
                    .columns
                    .iter()
                    .map(|c| {
                        vec![
                            c.name.clone(),
                            c.data_type.clone(),
                            if c.nullable {
                                "yes".into()
                            } else {
                                "no".into()
                            },
                            c.comment.clone().unwrap_or_default(),
                            c.tags.join(", "),
                        ]
                    })
                    .collect();
                print_rows(
                    &["column", "type", "nullable", "comment", "tags"],
                    rows,
                    format,
                );
            }
        }
        TableCommand::History { name, limit } => {
            let info = lh.table(&TableName::parse(&name)?).await?;
            let t = lh.open_delta(&info).await?;
            let commits = strata_table::history(&t, limit).await?;
            let rows = commits
                .into_iter()
                .map(|c| {
                    vec![
                        c.version.to_string(),
                        c.timestamp
                            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                        c.operation,
                        serde_json::Value::Object(c.parameters).to_string(),
                        serde_json::Value::Object(c.metrics).to_string(),
                        c.txns
                            .iter()
                            .map(|(a, v)| format!("{a}:{v}"))
                            .collect::<Vec<_>>()
                            .join(","),
                    ]
                })
                .collect();
            print_rows(
                &[
                    "version",
                    "timestamp",
                    "operation",
                    "parameters",
                    "metrics",
                    "txn",
                ],
                rows,
                format,
            );
        }
        TableCommand::Set {
            name,
            comment,
            owner,
            properties,
        } => {
            let info = lh.table(&TableName::parse(&name)?).await?;
            let props = parse_properties(&properties)?;
            if comment.is_none() && owner.is_none() && props.is_empty() {
                return Err(usage_error(
                    "nothing to set: give --comment, --owner or --property",
                ));
            }
            if !props.is_empty() {
                lh.set_properties(&info, props).await?;
            }
            if comment.is_some() || owner.is_some() {
                lh.metastore()
                    .update_table(
                        &info.table_id,
                        TableUpdate {
                            comment: comment.map(|c| (!c.is_empty()).then_some(c)),
                            owner: owner.map(|o| (!o.is_empty()).then_some(o)),
                            ..Default::default()
                        },
                    )
                    .await?;
            }
            out!("updated {}", info.name);
        }
        TableCommand::Tag(a) => {
            let info = lh.table(&TableName::parse(&a.name)?).await?;
            if let Some(c) = &a.column {
                check_column(lh, &info, c).await?;
            }
            lh.metastore()
                .add_tag(&info.table_id, a.column.as_deref(), &a.tag)
                .await?;
            out!(
                "tagged {}{} with {}",
                info.name,
                col_suffix(&a.column),
                a.tag
            );
        }
        TableCommand::Untag(a) => {
            let info = lh.table(&TableName::parse(&a.name)?).await?;
            let removed = lh
                .metastore()
                .remove_tag(&info.table_id, a.column.as_deref(), &a.tag)
                .await?;
            if !removed {
                return Err(not_found(format!(
                    "{}{} has no tag {}",
                    info.name,
                    col_suffix(&a.column),
                    a.tag
                )));
            }
            out!(
                "removed tag {} from {}{}",
                a.tag,
                info.name,
                col_suffix(&a.column)
            );
        }
        TableCommand::Restore {
            name,
            target,
            force,
        } => {
            let tn = TableName::parse(&name)?;
            let to = match (target.version, target.timestamp) {
                (Some(v), _) => RestoreTarget::Version(v),
                (None, Some(ts)) => {
                    RestoreTarget::Timestamp(strata_sql::timestamp::parse_timestamp(&ts)?)
                }
                (None, None) => return Err(usage_error("give --version N or --timestamp TS")),
            };
            let (restored, new_version) = lh.restore_table(&tn, to, force).await?;
            out!("restored {tn} to version {restored} (new version {new_version})");
        }
        TableCommand::Erase {
            name,
            predicate,
            reason,
        } => {
            let tn = TableName::parse(&name)?;
            let e = lh.erase(&tn, &predicate, &reason).await?;
            if format == Format::Table {
                out!(
                    "erased {} row(s) from {tn}: versions {:?}, {} data file(s) deleted (erasure {})",
                    e.rows_deleted,
                    e.versions,
                    e.files_deleted,
                    e.erasure_id
                );
            } else {
                crate::output::print_value(&e, format);
            }
        }
        TableCommand::Optimize { name, zorder } => {
            let info = lh.table(&TableName::parse(&name)?).await?;
            Lakehouse::check_writable(&info)?;
            let t = lh.open_delta(&info).await?;
            let (_, o) = strata_table::optimize(
                t,
                &info.name.to_string(),
                (!zorder.is_empty()).then_some(zorder),
            )
            .await?;
            match o.version {
                Some(v) => out!(
                    "optimized {}: {} files into {} (version {v})",
                    info.name,
                    o.files_removed,
                    o.files_added
                ),
                None => out!("optimized {}: nothing to compact", info.name),
            }
        }
        TableCommand::Vacuum {
            name,
            retain_hours,
            dry_run,
            force,
        } => {
            let tn = TableName::parse(&name)?;
            let (o, note) = lh.vacuum_table(&tn, retain_hours, dry_run, force).await?;
            if let Some(n) = note {
                eprintln!("note: {n}");
            }
            let verb = if o.dry_run { "would delete" } else { "deleted" };
            out!("{verb} {} file(s) of {}", o.files.len(), tn);
            for f in &o.files {
                out!("  {f}");
            }
        }
        TableCommand::Drop { name, purge } => {
            let info = lh.drop_table(&TableName::parse(&name)?, purge).await?;
            if purge {
                out!("dropped {} and deleted its files", info.name);
            } else if info.kind == strata_core::TableKind::Managed {
                out!(
                    "dropped {} (its files are in the trash: `strata table undrop {}`)",
                    info.name,
                    info.name
                );
            } else {
                out!("dropped {} (its files were not touched)", info.name);
            }
        }
        TableCommand::Undrop { name } => {
            let info = lh.undrop_table(&TableName::parse(&name)?).await?;
            out!("brought back {}", info.name);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn col_suffix(c: &Option<String>) -> String {
    c.as_ref()
        .map(|c| format!(" column {c}"))
        .unwrap_or_default()
}

async fn check_column(
    lh: &Lakehouse,
    info: &strata_catalog::metastore::TableInfo,
    column: &str,
) -> CliResult {
    let d = lh.describe(&info.name).await?;
    if d.columns.is_empty() || d.columns.iter().any(|c| c.name == column) {
        return Ok(());
    }
    let hint = d
        .columns
        .iter()
        .find(|c| c.name.eq_ignore_ascii_case(column))
        .map(|c| format!("; did you mean {}?", c.name))
        .unwrap_or_default();
    Err(not_found(format!(
        "table {} has no column {column}{hint}",
        info.name
    )))
}

pub async fn run_schema(lh: &Lakehouse, cmd: SchemaCommand, format: Format) -> CliResult<ExitCode> {
    match cmd {
        SchemaCommand::Create {
            name,
            layer,
            comment,
        } => {
            let sn = SchemaName::parse(&name)?;
            lh.create_schema(&sn, layer, comment.as_deref()).await?;
            out!("created schema {sn} ({layer})");
        }
        SchemaCommand::List => {
            let rows = lh
                .metastore()
                .list_schemas()
                .await?
                .into_iter()
                .map(|s| {
                    vec![
                        format!("{}.{}", s.catalog, s.name),
                        s.kind.to_string(),
                        s.comment.unwrap_or_default(),
                    ]
                })
                .collect();
            print_rows(&["schema", "kind", "comment"], rows, format);
        }
    }
    Ok(ExitCode::SUCCESS)
}
