//! The HTTP side of the floors (workload g): a load generator that measures any server, and a
//! minimal axum server that answers the same routes as `strata serve` with nothing behind them.
//!
//! ```text
//! floors load  --url URL [--method GET|POST] [--body FILE | --body-template TEXT]
//!              [--content-type CT] [--concurrency 8] [--requests 1000] [--warmup 50]
//!     `{n}` in the URL and the body template is the request's number (0, 1, ...; the warm-up
//!     requests come after the measured ones). Prints requests/s, latency percentiles, the
//!     answers' statuses, the distinct `id`s and the summed `landed`/`quarantined` they carry.
//! floors serve --port P --dir DIR
//!     GET  /health, GET /schemas/ids/{id}   a fixed schema document
//!     POST /subjects/{subject}/versions     parses the JSON body, answers a new id
//!     POST /api/v1/tables/{table}/records   writes the body to a new file in DIR and syncs it
//!                                           (what a durable push must do at least), answers
//!                                           its line count as `landed`
//!     Stops on SIGTERM.
//! ```

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::Res;

/// What the load generator is told to do.
pub struct Load {
    pub url: String,
    pub method: String,
    pub body: Option<String>,
    pub content_type: String,
    pub concurrency: usize,
    pub requests: u64,
    pub warmup: u64,
}

#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    statuses: BTreeMap<u16, u64>,
    ids: HashSet<i64>,
    landed: u64,
    quarantined: u64,
    first_error: Option<String>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.latencies.extend(other.latencies);
        for (s, n) in other.statuses {
            *self.statuses.entry(s).or_default() += n;
        }
        self.ids.extend(other.ids);
        self.landed += other.landed;
        self.quarantined += other.quarantined;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

async fn one(client: &reqwest::Client, load: &Load, n: u64, tally: &mut Tally) -> Res<()> {
    let url = load.url.replace("{n}", &n.to_string());
    let req = if load.method.eq_ignore_ascii_case("POST") {
        let body = load
            .body
            .as_deref()
            .unwrap_or_default()
            .replace("{n}", &n.to_string());
        client
            .post(&url)
            .header(header::CONTENT_TYPE, &load.content_type)
            .body(body)
    } else {
        client.get(&url)
    };
    let started = Instant::now();
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await?;
    tally.latencies.push(started.elapsed());
    *tally.statuses.entry(status).or_default() += 1;
    if status != 200 && tally.first_error.is_none() {
        tally.first_error = Some(format!(
            "{status} {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(500)])
        ));
    }
    if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
        if let Some(id) = v.get("id").and_then(Value::as_i64) {
            tally.ids.insert(id);
        }
        tally.landed += v.get("landed").and_then(Value::as_u64).unwrap_or(0);
        tally.quarantined += v.get("quarantined").and_then(Value::as_u64).unwrap_or(0);
    }
    Ok(())
}

/// Runs `load` on one thread (the server gets the other core) with `concurrency` connections.
pub fn load(load: Load) -> Res<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let load = Arc::new(load);
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(load.concurrency)
            .timeout(Duration::from_secs(600))
            .build()?;
        // warm-up: connections open, caches filled; numbered after the measured requests
        let mut warm = Tally::default();
        for n in 0..load.warmup {
            one(&client, &load, load.requests + n, &mut warm).await?;
        }
        let next = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..load.concurrency.max(1) {
            let (client, load, next) = (client.clone(), load.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                let mut tally = Tally::default();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= load.requests {
                        break;
                    }
                    if let Err(e) = one(&client, &load, n, &mut tally).await {
                        *tally.statuses.entry(0).or_default() += 1;
                        tally.first_error.get_or_insert_with(|| e.to_string());
                    }
                }
                tally
            }));
        }
        let mut tally = Tally::default();
        for t in tasks {
            tally.merge(t.await?);
        }
        let secs = started.elapsed().as_secs_f64();
        tally.latencies.sort();
        let pct = |p: f64| {
            let l = &tally.latencies;
            if l.is_empty() {
                return 0.0;
            }
            let i = ((l.len() as f64 * p).ceil() as usize).clamp(1, l.len()) - 1;
            l[i].as_secs_f64() * 1e3
        };
        let ok = tally.statuses.get(&200).copied().unwrap_or(0);
        println!(
            "{}",
            json!({
                "floor": "load",
                "op_s": secs,
                "rows": load.requests,
                "requests_per_s": load.requests as f64 / secs.max(1e-9),
                "ok": ok,
                "statuses": tally.statuses.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
                "p50_ms": pct(0.50),
                "p99_ms": pct(0.99),
                "distinct_ids": tally.ids.len(),
                "landed": tally.landed,
                "quarantined": tally.quarantined,
                "first_error": tally.first_error,
                "concurrency": load.concurrency,
            })
        );
        Ok(())
    })
}

struct Floor {
    dir: PathBuf,
    ids: AtomicU64,
    files: AtomicU64,
}

const SCHEMA: &str = r#"{"type":"record","name":"Event","namespace":"bench","fields":[{"name":"event_id","type":"string"},{"name":"user_id","type":"long"},{"name":"amount","type":["null","double"],"default":null}]}"#;

async fn schema_by_id(Path(_id): Path<i64>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/vnd.schemaregistry.v1+json",
        )],
        json!({"schema": SCHEMA}).to_string(),
    )
}

async fn register(
    State(f): State<Arc<Floor>>,
    Path(_subject): Path<String>,
    body: Bytes,
) -> impl IntoResponse {
    match serde_json::from_slice::<Value>(&body) {
        Ok(v) if v.get("schema").is_some_and(Value::is_string) => (
            StatusCode::OK,
            json!({"id": f.ids.fetch_add(1, Ordering::Relaxed) + 1}).to_string(),
        ),
        _ => (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"error_code": 42201, "message": "Invalid schema"}).to_string(),
        ),
    }
}

async fn records(
    State(f): State<Arc<Floor>>,
    Path(_table): Path<String>,
    body: Bytes,
) -> impl IntoResponse {
    let path = f.dir.join(format!(
        "{:08}.ndjson",
        f.files.fetch_add(1, Ordering::Relaxed)
    ));
    let written = tokio::task::spawn_blocking(move || -> std::io::Result<u64> {
        let mut file = std::fs::File::create_new(&path)?;
        file.write_all(&body)?;
        file.sync_all()?;
        Ok(body
            .split(|b| *b == b'\n')
            .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
            .count() as u64)
    })
    .await;
    match written {
        Ok(Ok(n)) => (
            StatusCode::OK,
            json!({"landed": n, "quarantined": 0}).to_string(),
        ),
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// The minimal server: the same routes, nothing behind them but a counter and a synced file.
pub fn serve(port: u16, dir: PathBuf) -> Res<()> {
    std::fs::create_dir_all(&dir)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let state = Arc::new(Floor {
            dir,
            ids: AtomicU64::new(0),
            files: AtomicU64::new(0),
        });
        let app = Router::new()
            .route("/health", get(|| async { "ok" }))
            .route("/schemas/ids/{id}", get(schema_by_id))
            .route("/subjects/{subject}/versions", post(register))
            .route("/api/v1/tables/{table}/records", post(records))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                term.recv().await;
            })
            .await?;
        Ok(())
    })
}
