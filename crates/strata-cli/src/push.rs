//! Push ingest: `POST /api/v1/tables/{table}/records`. The body (NDJSON, a JSON array, or
//! Confluent wire-format Avro messages) becomes one NDJSON spool file under
//! `_strata/push/<table id>/`, landed by the same exactly-once ingest as files (contract checks,
//! quarantine, the `txn` and lease), with `_source_file` = `http:<request id>`. An
//! `Idempotency-Key` names the spool file, so a retried request finds the file the ledger already
//! landed and lands nothing again; its first answer is kept in the metastore and returned.
//!
//! Group commit: requests into one table that arrive while its previous commit runs wait for the
//! next, which lands all their spool files in one run (one batch and commit unless a new field
//! widens the table inside it); each request is answered from its own file's counts once that
//! commit exists. A request that breaks a `fail`-mode contract is refused before it joins a
//! group; when a run still fails on one request's records (a table in `fail` evolution mode), the
//! requests whose files it had not finished land one by one, so each gets its own answer.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use strata_catalog::Lakehouse;
use strata_registry::RegistryError;
use strata_registry::api::Reply;
use strata_registry::store::Registry;

/// Totals since the server started, for `/metrics`.
pub static REQUESTS: AtomicU64 = AtomicU64::new(0);
pub static LANDED: AtomicU64 = AtomicU64::new(0);
pub static QUARANTINED: AtomicU64 = AtomicU64::new(0);
pub static COMMITS: AtomicU64 = AtomicU64::new(0);

/// A group takes waiting requests up to this many spool bytes (at least one request), far below
/// the ingest's batch limit of 256 MiB.
const GROUP_BYTES: u64 = 64 * 1024 * 1024;
/// ... and at most this many requests.
const GROUP_REQUESTS: usize = 512;

/// What a request's spool file landed.
struct Landed {
    run_id: String,
    /// `None`: the ledger already had the file (a retry after the first answer was lost).
    outcome: Option<strata_ingest::FileOutcome>,
}

/// A spooled request, as its answer names it.
struct Pushed {
    table_id: String,
    table: String,
    request_id: String,
    key: Option<String>,
    records: usize,
    spool: std::path::PathBuf,
    bytes: u64,
}

/// A request waiting for its group's commit.
struct Waiting {
    pushed: Pushed,
    answer: tokio::sync::oneshot::Sender<Result<Reply, RegistryError>>,
}

/// The requests of one table waiting for a commit, and whether a task is landing groups of them.
#[derive(Default)]
struct Lane {
    waiting: Vec<Waiting>,
    leading: bool,
}

type LaneKey = (std::path::PathBuf, String);

/// Lanes by (lakehouse root, table id).
static LANES: std::sync::Mutex<Option<std::collections::HashMap<LaneKey, Lane>>> =
    std::sync::Mutex::new(None);

fn with_lane<T>(key: &LaneKey, f: impl FnOnce(&mut Lane) -> T) -> T {
    let mut guard = LANES.lock().unwrap_or_else(|p| p.into_inner());
    let lanes = guard.get_or_insert_with(Default::default);
    f(lanes.entry(key.clone()).or_default())
}

/// The next group of a lane: waiting requests up to [`GROUP_REQUESTS`] and [`GROUP_BYTES`] (at
/// least one). An empty group ends the leader's turn.
fn next_group(lane: &mut Lane) -> Vec<Waiting> {
    let mut taken = 0u64;
    let n = lane
        .waiting
        .iter()
        .take(GROUP_REQUESTS)
        .take_while(|w| {
            taken += w.pushed.bytes;
            taken <= GROUP_BYTES
        })
        .count()
        .max(1)
        .min(lane.waiting.len());
    let group: Vec<Waiting> = lane.waiting.drain(..n).collect();
    if group.is_empty() {
        lane.leading = false;
    }
    group
}

/// Queues a spooled request for its table's next group commit and waits for its answer. The
/// first request of an idle table starts the table's leader, which lands groups until no request
/// waits; it runs in its own task, so a client that hangs up stops no commit.
async fn land_grouped(
    lh: &Arc<Lakehouse>,
    name: &strata_core::TableName,
    pushed: Pushed,
) -> Result<Reply, RegistryError> {
    let key = (lh.root().to_path_buf(), pushed.table_id.clone());
    let (tx, rx) = tokio::sync::oneshot::channel();
    let lead = with_lane(&key, |lane| {
        lane.waiting.push(Waiting { pushed, answer: tx });
        !std::mem::replace(&mut lane.leading, true)
    });
    if lead {
        let (lh, name) = (lh.clone(), name.clone());
        tokio::spawn(async move {
            loop {
                let group = with_lane(&key, next_group);
                if group.is_empty() {
                    break;
                }
                // a group in a task of its own: should it panic, its requests get an error (their
                // senders are dropped) and the lane goes on with the next group
                let (lh, group_name) = (lh.clone(), name.clone());
                if let Err(e) =
                    tokio::spawn(async move { land_group(&lh, &group_name, group).await }).await
                {
                    tracing::error!(table = %name, error = %e, "a group commit failed");
                }
            }
        });
    }
    rx.await.unwrap_or_else(|_| {
        Err(RegistryError::internal(
            "the group commit stopped before answering this request",
        ))
    })
}

/// One ingest run over exactly `files` (spool files of one folder).
async fn land_files(
    lh: &Lakehouse,
    name: &strata_core::TableName,
    files: Vec<std::path::PathBuf>,
) -> strata_ingest::Result<(strata_ingest::IngestReport, strata_ingest::Result<()>)> {
    let dir = files
        .first()
        .and_then(|f| f.parent())
        .map(std::path::Path::to_path_buf)
        .ok_or_else(|| strata_ingest::Error::Internal("a spool file without a folder".into()))?;
    let source = strata_ingest::source::Source::of_files(&dir, files)?;
    let opts = strata_ingest::IngestOptions {
        alias_prefix: Some("http:".into()),
        format: Some(strata_ingest::source::InputFormat::Ndjson),
        ..Default::default()
    };
    strata_ingest::land_source(lh, source, name, &opts).await
}

fn ingest_error(e: &strata_ingest::Error) -> RegistryError {
    let status = match e.class() {
        strata_core::ErrorClass::Refused | strata_core::ErrorClass::InvalidInput => 422,
        strata_core::ErrorClass::Conflict => 409,
        _ => 500,
    };
    err(status, status as u32 * 100 + 1, e.to_string())
}

/// What the run reported for `spool`'s file.
fn outcome_of(
    report: &strata_ingest::IngestReport,
    spool: &std::path::Path,
) -> Option<strata_ingest::FileOutcome> {
    let uri = std::fs::canonicalize(spool)
        .ok()
        .and_then(|p| strata_ingest::source::file_uri(&p).ok())?;
    report.files.iter().find(|o| o.uri == uri).cloned()
}

/// One run over the group's spool files, each request answered from its file's outcome. When the
/// run fails, a request whose file a committed batch finished is answered from it; when the
/// records of one request stopped the run, each other request lands alone, so only the one at
/// fault is refused; any other failure answers the unfinished requests with it.
async fn land_group(lh: &Arc<Lakehouse>, name: &strata_core::TableName, group: Vec<Waiting>) {
    let fail_all = |group: Vec<Waiting>, e: RegistryError| {
        for w in group {
            let _ = w.answer.send(Err(e.clone()));
        }
    };
    // the lane is the table id the requests resolved: a table renamed, dropped or replaced
    // while they waited is not theirs any more
    match lh.metastore().get_table(name).await {
        Ok(Some(info)) if info.table_id == group[0].pushed.table_id => {}
        Ok(_) => {
            return fail_all(
                group,
                err(
                    409,
                    40901,
                    format!(
                        "table {name} was renamed, dropped or replaced while the request waited; \
                         nothing of it landed: send it again"
                    ),
                ),
            );
        }
        Err(e) => return fail_all(group, RegistryError::internal(e.to_string())),
    }
    let files: Vec<_> = group.iter().map(|w| w.pushed.spool.clone()).collect();
    let (report, result) = match land_files(lh, name, files).await {
        Ok(r) => r,
        Err(e) => return fail_all(group, ingest_error(&e)),
    };
    if report.batches > 0 {
        COMMITS.fetch_add(1, Ordering::Relaxed);
        maybe_compact(lh, name);
    }
    let several = group.len() > 1;
    let failed = result.err();
    let alone = failed.as_ref().is_some_and(|e| {
        several
            && matches!(
                e.class(),
                strata_core::ErrorClass::Refused | strata_core::ErrorClass::InvalidInput
            )
    });
    if alone {
        tracing::info!(table = %name, requests = group.len(), "a group commit stopped on one request's records: landing its requests one by one");
    }
    for w in group {
        let earlier = outcome_of(&report, &w.pushed.spool);
        let finished = earlier.as_ref().is_some_and(|o| o.complete);
        let landed = match &failed {
            // its records are in the table whatever else failed
            _ if failed.is_none() || (several && finished) => Ok(Landed {
                run_id: report.run_id.clone(),
                outcome: earlier,
            }),
            Some(e) if !alone => Err(ingest_error(e)),
            _ => land_alone(lh, name, &w.pushed.spool, earlier, &report.run_id).await,
        };
        let reply = match landed {
            Ok(landed) => answer(lh, &w.pushed, landed).await,
            Err(e) => Err(e),
        };
        let _ = w.answer.send(reply);
    }
}

/// Lands one request's spool file in a run of its own, after its group's run failed; `earlier` is
/// what that run committed of it, which the answer adds in.
async fn land_alone(
    lh: &Arc<Lakehouse>,
    name: &strata_core::TableName,
    spool: &std::path::Path,
    earlier: Option<strata_ingest::FileOutcome>,
    group_run: &str,
) -> Result<Landed, RegistryError> {
    let (r, result) = land_files(lh, name, vec![spool.to_path_buf()])
        .await
        .map_err(|e| ingest_error(&e))?;
    if r.batches > 0 {
        COMMITS.fetch_add(1, Ordering::Relaxed);
        maybe_compact(lh, name);
    }
    result.map_err(|e| ingest_error(&e))?;
    let (outcome, run_id) = match (earlier, outcome_of(&r, spool)) {
        (Some(mut a), Some(b)) => {
            a.records += b.records;
            a.quarantined += b.quarantined;
            a.batch = b.batch;
            a.version = b.version;
            a.complete = b.complete;
            (Some(a), r.run_id)
        }
        (Some(a), None) => (Some(a), group_run.to_string()),
        (None, b) => (b, r.run_id),
    };
    Ok(Landed { run_id, outcome })
}

/// A landed request's answer. With an Idempotency-Key it is kept before the next group starts,
/// so a retry the next group finds already landed gets it; a request whose key already has an
/// answer gets that one.
async fn answer(lh: &Lakehouse, p: &Pushed, landed: Landed) -> Result<Reply, RegistryError> {
    REQUESTS.fetch_add(1, Ordering::Relaxed);
    let outcome = landed.outcome.unwrap_or_default();
    LANDED.fetch_add(outcome.landed(), Ordering::Relaxed);
    QUARANTINED.fetch_add(outcome.quarantined, Ordering::Relaxed);
    // the batch that landed the request (its number is the commit's `txn` version)
    let batch = (outcome.batch > 0).then_some(outcome.batch);
    let response = json!({
        "table": p.table,
        "request_id": p.request_id,
        "records": p.records,
        "landed": outcome.landed(),
        "quarantined": outcome.quarantined,
        "batch": batch,
        "version": outcome.version,
        "run_id": landed.run_id,
    });
    let pool = lh.metastore().pool();
    match &p.key {
        Some(k) => {
            let kept = sqlx::query(
                "INSERT OR IGNORE INTO idempotency_keys \
                 (table_id, key, batch_id, response, created_at) VALUES (?, ?, ?, ?, ?)",
            )
            .bind(&p.table_id)
            .bind(k)
            .bind(batch.unwrap_or(-1))
            .bind(response.to_string())
            .bind(chrono::Utc::now().to_rfc3339())
            .execute(pool)
            .await?;
            if kept.rows_affected() == 0
                && let Some(reply) = kept_answer(pool, &p.table_id, k).await?
            {
                return Ok(reply);
            }
        }
        None => {
            let _ = std::fs::remove_file(&p.spool);
        }
    }
    Ok(Reply(StatusCode::OK, response))
}

/// Push commits (a group's, or a request's landed alone) per table since its last compaction.
static SINCE_COMPACTION: std::sync::Mutex<Option<std::collections::HashMap<String, u64>>> =
    std::sync::Mutex::new(None);

/// `STRATA_SERVE_COMPACT_EVERY` (default 20, as `ingest --watch`'s `--compact-every`): after this
/// many push commits into a table, serve compacts its small files (an optimize commit with
/// dataChange=false), in the background.
fn compact_every() -> u64 {
    std::env::var("STRATA_SERVE_COMPACT_EVERY")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(20)
}

fn maybe_compact(lh: &Arc<Lakehouse>, name: &strata_core::TableName) {
    let due = {
        let mut guard = SINCE_COMPACTION.lock().unwrap_or_else(|p| p.into_inner());
        let map = guard.get_or_insert_with(Default::default);
        let n = map.entry(name.to_string()).or_insert(0);
        *n += 1;
        if *n >= compact_every() {
            *n = 0;
            true
        } else {
            false
        }
    };
    if due {
        let lh = lh.clone();
        let name = name.clone();
        tokio::spawn(async move {
            match strata_ingest::land::compact(&lh, &name).await {
                Ok(Some(v)) => tracing::info!(table = %name, version = v, "compacted small files"),
                Ok(None) => {}
                Err(e) => eprintln!("strata serve: warning: compaction of {name} failed: {e}"),
            }
        });
    }
}

/// Under a contract in `fail` mode a request with a record that breaks it is refused whole
/// before it is spooled, naming each such record (landing checks again): it never joins a group
/// whose batches could commit part of it. Lines that are not JSON objects are left to landing,
/// which quarantines them (stage `ingest`).
fn refuse_violations(
    c: &strata_registry::contract::Contract,
    ndjson: &[u8],
) -> Result<(), RegistryError> {
    const SHOWN: usize = 20;
    let mut found = Vec::new();
    let mut count = 0usize;
    for (i, line) in ndjson.split(|b| *b == b'\n').enumerate() {
        let Ok(doc) = serde_json::from_slice::<Value>(line) else {
            continue;
        };
        if !doc.is_object() {
            continue;
        }
        let problems = c.violations(&doc);
        if !problems.is_empty() {
            count += 1;
            if found.len() < SHOWN {
                found.push(format!("line {}: {}", i + 1, problems.join("; ")));
            }
        }
    }
    if count == 0 {
        return Ok(());
    }
    let more = if count > SHOWN {
        format!(" (and {} more record(s))", count - SHOWN)
    } else {
        String::new()
    };
    Err(err(
        422,
        42201,
        format!(
            "{count} record(s) break contract {} version {}, whose violations fail the request, so \
             nothing of it was landed: {}{more}",
            c.subject,
            c.version,
            found.join(" | ")
        ),
    ))
}

fn err(status: u16, code: u32, message: impl Into<String>) -> RegistryError {
    RegistryError::new(status, code, message)
}

/// The body as NDJSON lines.
async fn to_ndjson(
    lh: &Lakehouse,
    content_type: &str,
    body: &[u8],
    contract: Option<&strata_registry::contract::Contract>,
) -> Result<(Vec<u8>, usize), RegistryError> {
    let ct = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match ct.as_str() {
        "application/x-ndjson" | "application/ndjson" | "application/jsonlines" => {
            let n = body
                .split(|b| *b == b'\n')
                .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
                .count();
            Ok((body.to_vec(), n))
        }
        "application/json" => {
            let items: Vec<Box<serde_json::value::RawValue>> = serde_json::from_slice(body)
                .map_err(|e| {
                    err(
                        400,
                        40001,
                        format!("the body is not a JSON array of records: {e}"),
                    )
                })?;
            let mut out = Vec::with_capacity(body.len());
            for it in &items {
                // one record per line: its exact text, made one line
                out.extend_from_slice(strata_registry::schema::minify(it.get()).as_bytes());
                out.push(b'\n');
            }
            Ok((out, items.len()))
        }
        "application/vnd.strata.confluent-avro" => {
            let reg = Registry::new(lh.metastore());
            // each writer schema parsed once per request
            let mut writers: std::collections::HashMap<i64, strata_registry::Parsed> =
                std::collections::HashMap::new();
            let mut out = Vec::new();
            let mut rest = body;
            let mut k = 0usize;
            while !rest.is_empty() {
                k += 1;
                if rest.len() < 4 {
                    return Err(err(
                        400,
                        40002,
                        format!("message {k}: truncated length prefix"),
                    ));
                }
                let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                if rest.len() < 4 + len {
                    return Err(err(
                        400,
                        40002,
                        format!(
                            "message {k}: its length prefix says {len} bytes but {} remain",
                            rest.len() - 4
                        ),
                    ));
                }
                let msg = &rest[4..4 + len];
                rest = &rest[4 + len..];
                if msg.len() < 5 || msg[0] != 0 {
                    return Err(err(
                        400,
                        40002,
                        format!(
                            "message {k}: not the Confluent wire format (magic byte 0, then a 4-byte schema id)"
                        ),
                    ));
                }
                let id = u32::from_be_bytes([msg[1], msg[2], msg[3], msg[4]]) as i64;
                let parsed = match writers.entry(id) {
                    std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                    std::collections::hash_map::Entry::Vacant(v) => {
                        v.insert(reg.parsed(id).await.map_err(|e| {
                            err(
                                e.status,
                                e.code,
                                format!("message {k}: schema id {id}: {}", e.message),
                            )
                        })?)
                    }
                };
                let j = strata_registry::wire::decode(parsed, &msg[5..], contract)
                    .map_err(|e| err(400, 40002, format!("message {k} (schema id {id}): {e}")))?;
                out.extend_from_slice(j.to_string().as_bytes());
                out.push(b'\n');
            }
            Ok((out, k))
        }
        "" => Err(err(
            415,
            41501,
            "no Content-Type: send application/x-ndjson, application/json (an array) or application/vnd.strata.confluent-avro",
        )),
        other => Err(err(
            415,
            41501,
            format!(
                "Content-Type {other} is not accepted: send application/x-ndjson, application/json (an array) or application/vnd.strata.confluent-avro"
            ),
        )),
    }
}

/// The first answer to a request with Idempotency-Key `key`, marked `replayed`, when one is kept.
async fn kept_answer(
    pool: &sqlx::SqlitePool,
    table_id: &str,
    key: &str,
) -> Result<Option<Reply>, RegistryError> {
    let kept: Option<String> =
        sqlx::query_scalar("SELECT response FROM idempotency_keys WHERE table_id = ? AND key = ?")
            .bind(table_id)
            .bind(key)
            .fetch_optional(pool)
            .await?;
    Ok(kept.map(|r| {
        let mut v: Value = serde_json::from_str(&r).unwrap_or(Value::Null);
        v["replayed"] = json!(true);
        Reply(StatusCode::OK, v)
    }))
}

pub async fn records(
    State(lh): State<Arc<Lakehouse>>,
    Path(table): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Reply, RegistryError> {
    let name = strata_core::TableName::parse(&table)
        .map_err(|e| err(422, 42208, format!("table {table}: {e}")))?;
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_string);
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let info = strata_ingest::land::ensure_table(&lh, &name)
        .await
        .map_err(|e| err(422, 42209, e.to_string()))?;
    let pool = lh.metastore().pool();
    if let Some(k) = &key
        && let Some(reply) = kept_answer(pool, &info.table_id, k).await?
    {
        return Ok(reply);
    }
    // Avro messages are resolved to the contract's latest version before they are spooled
    let contract = Registry::new(lh.metastore())
        .contract(&info.table_id)
        .await?;
    let (ndjson, records) = to_ndjson(&lh, &content_type, &body, contract.as_ref()).await?;
    if let Some(c) = &contract
        && c.on_violation == strata_registry::contract::OnViolation::Fail
    {
        refuse_violations(c, &ndjson)?;
    }
    let request_id = match &key {
        Some(k) => format!("key-{}", &hex::encode(Sha256::digest(k.as_bytes()))[..32]),
        None => format!("req-{}", uuid::Uuid::new_v4()),
    };
    let dir = lh.root().join("_strata").join("push").join(&info.table_id);
    std::fs::create_dir_all(&dir)
        .map_err(|e| RegistryError::internal(format!("{}: {e}", dir.display())))?;
    let spool = dir.join(format!("{request_id}.ndjson"));
    if !spool.exists() {
        // written whole under a name of its own, synced, then linked to its name unless a request
        // with the same key got there first: the ledger never sees a half-written spool file,
        // and a spool file never changes once it has its name
        let tmp = dir.join(format!(".{request_id}.{}.tmp", uuid::Uuid::new_v4()));
        let mut f = std::fs::File::create(&tmp)
            .map_err(|e| RegistryError::internal(format!("{}: {e}", tmp.display())))?;
        let published = f
            .write_all(&ndjson)
            .and_then(|()| f.sync_all())
            .and_then(|()| match std::fs::hard_link(&tmp, &spool) {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
                other => other,
            });
        let _ = std::fs::remove_file(&tmp);
        published.map_err(|e| RegistryError::internal(format!("{}: {e}", spool.display())))?;
    }
    let pushed = Pushed {
        table_id: info.table_id.clone(),
        table: info.name.to_string(),
        request_id,
        key,
        records,
        spool,
        bytes: ndjson.len() as u64,
    };
    land_grouped(&lh, &name, pushed).await
}
