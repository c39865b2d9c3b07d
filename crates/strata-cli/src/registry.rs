//! `strata registry`: the schema registry, worked on the lakehouse directly (no server needed),
//! with the same checks and errors as `strata serve`'s Confluent-compatible API.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use serde_json::Value;
use strata_catalog::Lakehouse;
use strata_registry::store::{Mode, Registry, SchemaRequest, VersionSpec};
use strata_registry::{Level, Reference, RegistryError};

use crate::output::{print_rows, print_value};
use crate::{CliResult, Format, usage_error};

#[derive(Subcommand)]
pub enum RegistryCommand {
    /// List the subjects.
    Subjects {
        /// Include soft-deleted subjects.
        #[arg(long)]
        deleted: bool,
    },
    /// List a subject's version numbers.
    Versions {
        subject: String,
        /// Include soft-deleted versions.
        #[arg(long)]
        deleted: bool,
    },
    /// Show one version of a subject (default: the latest) with its global id and schema.
    Get {
        subject: String,
        /// A version number, or `latest`.
        version: Option<String>,
    },
    /// Register the schema in FILE under SUBJECT.
    ///
    /// Prints the schema's global id and its version in the subject. A schema the subject already
    /// holds gets its existing id and version back; a new one must pass the subject's
    /// compatibility level (see `strata registry config`), else nothing is registered and the
    /// command exits 1 listing every incompatibility.
    Register {
        subject: String,
        /// The schema file: Avro (.avsc) or JSON Schema.
        file: PathBuf,
        /// The schema's type.
        #[arg(long = "type", value_name = "AVRO|JSON", default_value = "AVRO")]
        kind: String,
        /// A schema this one uses: NAME=SUBJECT:VERSION (Avro: NAME is the referenced type's
        /// full name). Repeatable.
        #[arg(long = "reference", value_name = "NAME=SUBJECT:VERSION")]
        references: Vec<String>,
        /// Store and compare the schema with its object keys sorted.
        #[arg(long)]
        normalize: bool,
    },
    /// Test whether the schema in FILE could be registered under SUBJECT: exits 0 when it is
    /// compatible, 1 (listing every incompatibility) when not.
    Check {
        subject: String,
        file: PathBuf,
        #[arg(long = "type", value_name = "AVRO|JSON", default_value = "AVRO")]
        kind: String,
        /// Test against this version only (a number or `latest`) instead of the versions the
        /// subject's level selects.
        #[arg(long)]
        version: Option<String>,
        #[arg(long = "reference", value_name = "NAME=SUBJECT:VERSION")]
        references: Vec<String>,
    },
    /// Show or set a compatibility level: BACKWARD (the default), BACKWARD_TRANSITIVE,
    /// FORWARD, FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE or NONE.
    ///
    /// `config` shows the global level, `config LEVEL` sets it; `config SUBJECT` shows the
    /// subject's level (the global one when it has none of its own), `config SUBJECT LEVEL`
    /// sets it.
    Config {
        /// A subject, or a level when given alone.
        first: Option<String>,
        level: Option<String>,
        /// Remove the subject's own level, so the global one applies.
        #[arg(long)]
        delete: bool,
    },
    /// Show or set a mode (READWRITE, READONLY, READONLY_OVERRIDE, IMPORT), globally or for a
    /// subject, as `config` does for levels.
    Mode {
        first: Option<String>,
        mode: Option<String>,
        /// Allow IMPORT where schemas exist already.
        #[arg(long)]
        force: bool,
    },
    /// Delete a subject, or one of its versions.
    ///
    /// A delete is soft: the versions stop counting for compatibility and listings, and their
    /// ids still resolve. `--permanent` after a soft delete removes them for good (the ids are
    /// never handed out again).
    Delete {
        subject: String,
        /// A version number, or `latest`; default the whole subject.
        version: Option<String>,
        #[arg(long)]
        permanent: bool,
    },
    /// Copy every subject of another registry (Confluent's REST API at URL) with its ids and
    /// versions, so messages that embed those ids stay readable. Credentials may be given in
    /// the URL (http://user:password@host:8081).
    Import {
        url: String,
        /// Only these subjects (repeatable); default all.
        #[arg(long)]
        subject: Vec<String>,
    },
}

fn re(e: RegistryError) -> crate::CliError {
    crate::CliError {
        class: e.class(),
        message: e.message,
        usage: false,
    }
}

fn references(specs: &[String]) -> CliResult<Vec<Reference>> {
    specs
        .iter()
        .map(|s| {
            let bad = || usage_error(format!("--reference {s}: expected NAME=SUBJECT:VERSION"));
            let (name, rest) = s.split_once('=').ok_or_else(bad)?;
            let (subject, version) = rest.rsplit_once(':').ok_or_else(bad)?;
            Ok(Reference {
                name: name.to_string(),
                subject: subject.to_string(),
                version: version.parse().map_err(|_| bad())?,
            })
        })
        .collect()
}

fn request(file: &PathBuf, kind: &str, refs: &[String]) -> CliResult<SchemaRequest> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        crate::not_found(format!("cannot read schema file {}: {e}", file.display()))
    })?;
    Ok(SchemaRequest {
        schema: text,
        schema_type: Some(kind.to_ascii_uppercase()),
        references: references(refs)?,
        ..Default::default()
    })
}

pub async fn run(lh: &Lakehouse, cmd: RegistryCommand, format: Format) -> CliResult<ExitCode> {
    let reg = Registry::new(lh.metastore());
    match cmd {
        RegistryCommand::Subjects { deleted } => {
            let subjects = reg.subjects(deleted).await.map_err(re)?;
            print_rows(
                &["subject"],
                subjects.into_iter().map(|s| vec![s]).collect(),
                format,
            );
        }
        RegistryCommand::Versions { subject, deleted } => {
            let versions = reg.versions(&subject, deleted).await.map_err(re)?;
            print_rows(
                &["version"],
                versions.into_iter().map(|v| vec![v.to_string()]).collect(),
                format,
            );
        }
        RegistryCommand::Get { subject, version } => {
            let v = VersionSpec::parse(version.as_deref().unwrap_or("latest")).map_err(re)?;
            let r = reg.version(&subject, v, false).await.map_err(re)?;
            print_value(
                &serde_json::json!({
                    "subject": r.subject,
                    "version": r.version,
                    "id": r.id,
                    "schemaType": r.kind.as_str(),
                    "schema": r.schema,
                    "references": r.references,
                }),
                format,
            );
        }
        RegistryCommand::Register {
            subject,
            file,
            kind,
            references,
            normalize,
        } => {
            let req = request(&file, &kind, &references)?;
            let (id, version) = reg.register(&subject, &req, normalize).await.map_err(re)?;
            match format {
                Format::Table => out!("registered {subject} version {version}: id {id}"),
                _ => print_value(
                    &serde_json::json!({"subject": subject, "version": version, "id": id}),
                    format,
                ),
            }
        }
        RegistryCommand::Check {
            subject,
            file,
            kind,
            version,
            references,
        } => {
            let req = request(&file, &kind, &references)?;
            let version = version
                .as_deref()
                .map(VersionSpec::parse)
                .transpose()
                .map_err(re)?;
            let v = reg.test(&subject, version, &req).await.map_err(re)?;
            match format {
                Format::Table => {
                    if v.is_compatible {
                        out!("compatible with {subject}");
                    } else {
                        for m in &v.messages {
                            eprintln!("incompatible: {m}");
                        }
                    }
                }
                _ => print_value(&v, format),
            }
            if !v.is_compatible {
                return Ok(ExitCode::from(1));
            }
        }
        RegistryCommand::Config {
            first,
            level,
            delete,
        } => {
            // one argument: a level sets the global one, anything else names a subject
            let (subject, level) = match (first, level) {
                (None, None) => (String::new(), None),
                (Some(f), None) if f.parse::<Level>().is_ok() => (String::new(), Some(f)),
                (Some(f), l) => (f, l),
                (None, Some(_)) => unreachable!("clap fills positionals in order"),
            };
            if delete {
                if subject.is_empty() {
                    return Err(usage_error("--delete needs a subject"));
                }
                let before = reg.delete_config(&subject).await.map_err(re)?;
                out!("{subject}: own level {before} removed; the global level applies");
                return Ok(ExitCode::SUCCESS);
            }
            let shown = if subject.is_empty() {
                "global"
            } else {
                &subject
            };
            match level {
                Some(l) => {
                    let l: Level = l
                        .parse()
                        .map_err(|m: String| re(RegistryError::invalid_compatibility_level(m)))?;
                    if !subject.is_empty() {
                        strata_registry::store::validate_subject(&subject).map_err(re)?;
                    }
                    reg.set_config(&subject, l).await.map_err(re)?;
                    out!("{shown}: compatibility {l}");
                }
                None => {
                    let l = reg.level(&subject).await.map_err(re)?;
                    let own =
                        subject.is_empty() || reg.config(&subject).await.map_err(re)?.is_some();
                    match format {
                        Format::Table => out!(
                            "{shown}: compatibility {l}{}",
                            if own { "" } else { " (the global level)" }
                        ),
                        _ => print_value(
                            &serde_json::json!({"compatibilityLevel": l.as_str()}),
                            format,
                        ),
                    }
                }
            }
        }
        RegistryCommand::Mode { first, mode, force } => {
            let (subject, mode) = match (first, mode) {
                (None, None) => (String::new(), None),
                (Some(f), None) if Mode::parse(&f).is_ok() => (String::new(), Some(f)),
                (Some(f), m) => (f, m),
                (None, Some(_)) => unreachable!("clap fills positionals in order"),
            };
            let shown = if subject.is_empty() {
                "global"
            } else {
                &subject
            };
            match mode {
                Some(m) => {
                    let m = Mode::parse(&m).map_err(re)?;
                    reg.set_mode(&subject, m, force).await.map_err(re)?;
                    out!("{shown}: mode {}", m.as_str());
                }
                None => out!(
                    "{shown}: mode {}",
                    reg.mode(&subject).await.map_err(re)?.as_str()
                ),
            }
        }
        RegistryCommand::Delete {
            subject,
            version,
            permanent,
        } => {
            let how = if permanent { "permanently" } else { "soft" };
            match version {
                Some(v) => {
                    let v = VersionSpec::parse(&v).map_err(re)?;
                    let n = reg
                        .delete_version(&subject, v, permanent)
                        .await
                        .map_err(re)?;
                    out!("deleted {subject} version {n} ({how})");
                }
                None => {
                    let vs = reg.delete_subject(&subject, permanent).await.map_err(re)?;
                    out!(
                        "deleted {subject} ({how}): versions {}",
                        vs.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
                    );
                }
            }
        }
        RegistryCommand::Import { url, subject } => {
            let n = import(&reg, &url, &subject).await?;
            out!(
                "imported {} schema version(s) of {} subject(s) from {}",
                n.0,
                n.1,
                url
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// GETs `path` from a Confluent-compatible registry at `base`.
async fn fetch(client: &reqwest::Client, base: &reqwest::Url, path: &str) -> CliResult<Value> {
    let mut url = base.clone();
    url.set_username("").ok();
    url.set_password(None).ok();
    let url = url
        .join(path.trim_start_matches('/'))
        .map_err(|e| usage_error(format!("{base}: {e}")))?;
    let mut req = client.get(url.clone()).header(
        "Accept",
        "application/vnd.schemaregistry.v1+json, application/json",
    );
    if !base.username().is_empty() {
        req = req.basic_auth(base.username(), base.password());
    }
    let resp = req
        .send()
        .await
        .map_err(|e| usage_error(format!("cannot reach {url}: {e}")))?;
    let status = resp.status();
    let body = resp
        .bytes()
        .await
        .map_err(|e| usage_error(format!("{url}: {e}")))?;
    if !status.is_success() {
        return Err(crate::CliError {
            class: if status.as_u16() == 404 {
                strata_core::ErrorClass::NotFound
            } else {
                strata_core::ErrorClass::Storage
            },
            message: format!(
                "{url} answered {status}: {}",
                String::from_utf8_lossy(&body)
            ),
            usage: false,
        });
    }
    serde_json::from_slice(&body)
        .map_err(|e| usage_error(format!("{url} did not answer JSON: {e}")))
}

/// Copies subjects with their ids and versions, in id order (so references exist first), in
/// IMPORT mode; the mode in force before is put back. Returns (versions, subjects).
async fn import(reg: &Registry, url: &str, only: &[String]) -> CliResult<(usize, usize)> {
    let mut base = reqwest::Url::parse(url).map_err(|e| usage_error(format!("{url}: {e}")))?;
    if !base.path().ends_with('/') {
        let p = format!("{}/", base.path());
        base.set_path(&p);
    }
    let client = reqwest::Client::new();
    let subjects: Vec<String> = serde_json::from_value(fetch(&client, &base, "subjects").await?)
        .map_err(|e| usage_error(format!("{url}/subjects: {e}")))?;
    let subjects: Vec<String> = subjects
        .into_iter()
        .filter(|s| only.is_empty() || only.contains(s))
        .collect();
    let mut all = Vec::new();
    for s in &subjects {
        let enc = urlencode(s);
        let versions: Vec<i64> = serde_json::from_value(
            fetch(&client, &base, &format!("subjects/{enc}/versions")).await?,
        )
        .map_err(|e| usage_error(format!("{url}: versions of {s}: {e}")))?;
        for v in versions {
            let doc = fetch(&client, &base, &format!("subjects/{enc}/versions/{v}")).await?;
            let id = doc["id"]
                .as_i64()
                .ok_or_else(|| usage_error(format!("{url}: {s} version {v} has no id")))?;
            let req = SchemaRequest {
                schema: doc["schema"].as_str().unwrap_or_default().to_string(),
                schema_type: doc["schemaType"].as_str().map(str::to_string),
                references: serde_json::from_value(doc["references"].clone()).unwrap_or_default(),
                id: Some(id),
                version: Some(v),
            };
            all.push((id, s.clone(), req));
        }
    }
    all.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let before = reg.mode("").await.map_err(re)?;
    reg.set_mode("", Mode::Import, true).await.map_err(re)?;
    let mut result = Ok(());
    for (_, s, req) in &all {
        if let Err(e) = reg.register(s, req, false).await {
            result = Err(re(e));
            break;
        }
    }
    reg.set_mode("", before, true).await.map_err(re)?;
    result?;
    // the levels: global, then each subject's own
    if let Ok(c) = fetch(&client, &base, "config").await
        && let Some(l) = c["compatibilityLevel"]
            .as_str()
            .and_then(|l| l.parse::<Level>().ok())
    {
        reg.set_config("", l).await.map_err(re)?;
    }
    for s in &subjects {
        let path = format!("config/{}?defaultToGlobal=false", urlencode(s));
        if let Ok(c) = fetch(&client, &base, &path).await
            && let Some(l) = c["compatibilityLevel"]
                .as_str()
                .and_then(|l| l.parse::<Level>().ok())
        {
            reg.set_config(s, l).await.map_err(re)?;
        }
    }
    Ok((all.len(), subjects.len()))
}

fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[derive(Subcommand)]
pub enum ContractCommand {
    /// Bind a registry subject to a bronze table: every later ingest into the table checks
    /// each record against the subject's latest version before it reaches bronze.
    ///
    /// The table's columns come from the schema (Avro or JSON Schema fields, through Strata's
    /// type map); the table is created in bronze if it does not exist, and binding is refused
    /// when an existing column has another type. A record that breaks the contract (a missing
    /// required field, a wrong type, an enum symbol the schema lacks, a field the schema does
    /// not have) goes to the quarantine table with stage `contract` and every violation listed
    /// (`--on-violation quarantine`, the default), or stops the ingest with nothing of the
    /// batch committed (`fail`). With a contract, records that do not parse go to quarantine
    /// (stage `ingest`) too.
    Bind {
        /// The bronze table, e.g. bronze.events.
        table: String,
        /// The registry subject, e.g. events-value.
        subject: String,
        #[arg(long, value_name = "quarantine|fail", default_value = "quarantine")]
        on_violation: String,
    },
    /// Show the contract bound to a table: its subject, latest version and columns.
    Show { table: String },
    /// Remove a table's contract (its columns stay).
    Unbind { table: String },
}

pub async fn contract(lh: &Lakehouse, cmd: ContractCommand, format: Format) -> CliResult<ExitCode> {
    use strata_registry::contract::OnViolation;
    let reg = Registry::new(lh.metastore());
    match cmd {
        ContractCommand::Bind {
            table,
            subject,
            on_violation,
        } => {
            let name = strata_core::TableName::parse(&table)?;
            let mode = OnViolation::parse(&on_violation).map_err(|e| usage_error(e.message))?;
            let info = strata_ingest::land::ensure_table(lh, &name)
                .await
                .map_err(|e| crate::CliError {
                    class: e.class(),
                    message: e.to_string(),
                    usage: false,
                })?;
            reg.bind(&info.table_id, &subject, mode).await.map_err(re)?;
            let c = match reg.contract(&info.table_id).await.map_err(re)? {
                Some(c) => c,
                None => return Err(crate::not_found(format!("{table}: no contract"))),
            };
            let columns = match c.columns() {
                Ok(cols) => cols,
                Err(e) => {
                    reg.unbind(&info.table_id).await.map_err(re)?;
                    return Err(re(e));
                }
            };
            let delta = lh.open_delta(&info).await?;
            let full = info.name.to_string();
            let schema = strata_table::arrow_schema(&delta, &full)?;
            let mut missing = Vec::new();
            for (n, t) in &columns {
                match schema.field_with_name(n) {
                    Ok(f) if !strata_registry::contract::column_fits(f.data_type(), t) => {
                        reg.unbind(&info.table_id).await.map_err(re)?;
                        return Err(crate::CliError {
                            class: strata_core::ErrorClass::Refused,
                            message: format!(
                                "{full}: column {n} is {} but subject {subject} makes it {}; \
                                 the contract was not bound",
                                strata_core::types::type_name(f.data_type()),
                                strata_core::types::type_name(t)
                            ),
                            usage: false,
                        });
                    }
                    Ok(_) => {}
                    Err(_) => missing.push(arrow::datatypes::Field::new(n, t.clone(), true)),
                }
            }
            if !missing.is_empty() {
                strata_table::add_columns(delta, &full, missing).await?;
            }
            out!(
                "{full}: bound to {subject} (version {}, {} columns), violations {}",
                c.version,
                columns.len(),
                mode.as_str()
            );
        }
        ContractCommand::Show { table } => {
            let name = strata_core::TableName::parse(&table)?;
            let info = lh.table(&name).await?;
            let Some(c) = reg.contract(&info.table_id).await.map_err(re)? else {
                return Err(crate::not_found(format!("{table} has no contract")));
            };
            let columns = c.columns().map_err(re)?;
            print_value(
                &serde_json::json!({
                    "table": info.name.to_string(),
                    "subject": c.subject,
                    "version": c.version,
                    "id": c.id,
                    "on_violation": c.on_violation.as_str(),
                    "columns": columns.iter().map(|(n, t)| format!("{n} {}", strata_core::types::type_name(t))).collect::<Vec<_>>(),
                }),
                format,
            );
        }
        ContractCommand::Unbind { table } => {
            let name = strata_core::TableName::parse(&table)?;
            let info = lh.table(&name).await?;
            if !reg.unbind(&info.table_id).await.map_err(re)? {
                return Err(crate::not_found(format!("{table} has no contract")));
            }
            out!("{table}: contract removed");
        }
    }
    Ok(ExitCode::SUCCESS)
}
