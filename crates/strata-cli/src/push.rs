//! Push ingest: `POST /api/v1/tables/{table}/records`. The body (NDJSON, a JSON array, or
//! Confluent wire-format Avro messages) becomes one NDJSON spool file under
//! `_strata/push/<table id>/`, landed by the same exactly-once ingest as files (contract checks,
//! quarantine, the `txn` and lease), with `_source_file` = `http:<request id>`. An
//! `Idempotency-Key` names the spool file, so a retried request finds the file the ledger already
//! landed and lands nothing again; its first answer is kept in the metastore and returned.

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

/// Pushes landed per table since its last compaction.
static SINCE_COMPACTION: std::sync::Mutex<Option<std::collections::HashMap<String, u64>>> =
    std::sync::Mutex::new(None);

/// `STRATA_SERVE_COMPACT_EVERY` (default 20, as `ingest --watch`'s `--compact-every`): after this
/// many pushes into a table, serve compacts its small files (an optimize commit with
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
    if let Some(k) = &key {
        let kept: Option<String> = sqlx::query_scalar(
            "SELECT response FROM idempotency_keys WHERE table_id = ? AND key = ?",
        )
        .bind(&info.table_id)
        .bind(k)
        .fetch_optional(pool)
        .await?;
        if let Some(r) = kept {
            let mut v: Value = serde_json::from_str(&r).unwrap_or(Value::Null);
            v["replayed"] = json!(true);
            return Ok(Reply(StatusCode::OK, v));
        }
    }
    // Avro messages are resolved to the contract's latest version before they are spooled
    let contract = Registry::new(lh.metastore())
        .contract(&info.table_id)
        .await?;
    let (ndjson, records) = to_ndjson(&lh, &content_type, &body, contract.as_ref()).await?;
    let request_id = match &key {
        Some(k) => format!("key-{}", &hex::encode(Sha256::digest(k.as_bytes()))[..32]),
        None => format!("req-{}", uuid::Uuid::new_v4()),
    };
    let dir = lh.root().join("_strata").join("push").join(&info.table_id);
    std::fs::create_dir_all(&dir)
        .map_err(|e| RegistryError::internal(format!("{}: {e}", dir.display())))?;
    let spool = dir.join(format!("{request_id}.ndjson"));
    if !spool.exists() {
        // written whole under a temporary name, synced, then renamed: the ledger never sees a
        // half-written spool file
        let tmp = dir.join(format!(".{request_id}.tmp"));
        let mut f = std::fs::File::create(&tmp)
            .map_err(|e| RegistryError::internal(format!("{}: {e}", tmp.display())))?;
        f.write_all(&ndjson)
            .and_then(|()| f.sync_all())
            .and_then(|()| std::fs::rename(&tmp, &spool))
            .map_err(|e| RegistryError::internal(format!("{}: {e}", spool.display())))?;
    }
    let opts = strata_ingest::IngestOptions {
        source_alias: Some(format!("http:{request_id}")),
        format: Some(strata_ingest::source::InputFormat::Ndjson),
        ..Default::default()
    };
    let report = strata_ingest::ingest(&lh, &spool.to_string_lossy(), &name, &opts)
        .await
        .map_err(|e| {
            let status = match e.class() {
                strata_core::ErrorClass::Refused | strata_core::ErrorClass::InvalidInput => 422,
                strata_core::ErrorClass::Conflict => 409,
                _ => 500,
            };
            err(status, status as u32 * 100 + 1, e.to_string())
        })?;
    REQUESTS.fetch_add(1, Ordering::Relaxed);
    if report.batches > 0 {
        maybe_compact(&lh, &name);
    }
    LANDED.fetch_add(report.counts.records_landed, Ordering::Relaxed);
    QUARANTINED.fetch_add(report.counts.records_quarantined, Ordering::Relaxed);
    // the batch the run landed (its number is the commit's `txn` version), from the ledger
    let batch: Option<i64> = sqlx::query_scalar(
        "SELECT max(batch_id) FROM ingest_files WHERE table_id = ? AND run_id = ?",
    )
    .bind(&info.table_id)
    .bind(&report.run_id)
    .fetch_one(pool)
    .await?;
    let response = json!({
        "table": info.name.to_string(),
        "request_id": request_id,
        "records": records,
        "landed": report.counts.records_landed,
        "quarantined": report.counts.records_quarantined,
        "batch": batch,
        "version": report.last_version,
        "run_id": report.run_id,
    });
    if let Some(k) = &key {
        sqlx::query(
            "INSERT OR IGNORE INTO idempotency_keys (table_id, key, batch_id, response, created_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&info.table_id)
        .bind(k)
        .bind(batch.unwrap_or(-1))
        .bind(response.to_string())
        .bind(chrono::Utc::now().to_rfc3339())
        .execute(pool)
        .await?;
    } else {
        let _ = std::fs::remove_file(&spool);
    }
    Ok(Reply(StatusCode::OK, response))
}
