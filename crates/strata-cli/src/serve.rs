//! `strata serve`: Strata's HTTP server. The schema registry's Confluent-compatible routes sit
//! at the root; `GET /health` and `GET /metrics` (Prometheus text) beside them. Off loopback
//! every route but `/health` needs the token (Bearer, or the password of HTTP Basic).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use clap::Args;
use sha2::{Digest, Sha256};
use strata_catalog::Lakehouse;
use strata_registry::RegistryError;
use strata_registry::api::Reply;
use strata_registry::store::Registry;

use crate::{CliResult, usage_error};

#[derive(Args)]
pub struct ServeArgs {
    /// The address to listen on (default from strata.toml's [server], 127.0.0.1). Anything
    /// but loopback requires a token (strata.toml `token`, or STRATA_TOKEN).
    #[arg(long)]
    host: Option<String>,
    /// The port (default 8081).
    #[arg(long)]
    port: Option<u16>,
}

/// Request counts and latencies per route, for `/metrics`.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), Series>>,
    pub started: Option<Instant>,
}

#[derive(Default, Clone)]
struct Series {
    count: u64,
    sum_secs: f64,
    buckets: [u64; BUCKETS.len()],
}

const BUCKETS: [f64; 10] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

impl Metrics {
    fn observe(&self, method: &str, route: &str, status: u16, secs: f64) {
        let mut m = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        let s = m
            .entry((method.to_string(), route.to_string(), status))
            .or_default();
        s.count += 1;
        s.sum_secs += secs;
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                s.buckets[i] += 1;
            }
        }
    }

    fn render(&self, registry: (i64, i64, i64)) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let m = self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let _ = writeln!(
            out,
            "# HELP strata_http_requests_total HTTP requests served, by method, route and status."
        );
        let _ = writeln!(out, "# TYPE strata_http_requests_total counter");
        for ((method, route, status), s) in &m {
            let _ = writeln!(
                out,
                "strata_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {}",
                s.count
            );
        }
        let _ = writeln!(
            out,
            "# HELP strata_http_request_duration_seconds Time to answer a request."
        );
        let _ = writeln!(out, "# TYPE strata_http_request_duration_seconds histogram");
        let mut by_route: BTreeMap<(String, String), Series> = BTreeMap::new();
        for ((method, route, _), s) in &m {
            let t = by_route.entry((method.clone(), route.clone())).or_default();
            t.count += s.count;
            t.sum_secs += s.sum_secs;
            for i in 0..BUCKETS.len() {
                t.buckets[i] += s.buckets[i];
            }
        }
        for ((method, route), s) in &by_route {
            let labels = format!("method=\"{method}\",route=\"{route}\"");
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "strata_http_request_duration_seconds_bucket{{{labels},le=\"{b}\"}} {}",
                    s.buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "strata_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "strata_http_request_duration_seconds_sum{{{labels}}} {}",
                s.sum_secs
            );
            let _ = writeln!(
                out,
                "strata_http_request_duration_seconds_count{{{labels}}} {}",
                s.count
            );
        }
        let (subjects, versions, schemas) = registry;
        for (name, help, v) in [
            (
                "strata_registry_subjects",
                "Subjects with a live version.",
                subjects,
            ),
            (
                "strata_registry_versions",
                "Live schema versions, over all subjects.",
                versions,
            ),
            (
                "strata_registry_schemas",
                "Distinct schemas (global ids) handed out.",
                schemas,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            let _ = writeln!(out, "{name} {v}");
        }
        for (name, help, v) in [
            (
                "strata_push_requests_total",
                "Push-ingest requests landed (a replayed Idempotency-Key not counted).",
                &crate::push::REQUESTS,
            ),
            (
                "strata_push_records_landed_total",
                "Records push ingest landed in bronze.",
                &crate::push::LANDED,
            ),
            (
                "strata_push_records_quarantined_total",
                "Records push ingest sent to quarantine.",
                &crate::push::QUARANTINED,
            ),
            (
                "strata_push_commits_total",
                "Group commits push ingest made: requests into one table that arrive while its \
                 previous commit runs share the next one.",
                &crate::push::COMMITS,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(
                out,
                "{name} {}",
                v.load(std::sync::atomic::Ordering::Relaxed)
            );
        }
        if let Some(s) = self.started {
            let _ = writeln!(
                out,
                "# HELP strata_uptime_seconds Seconds since the server started."
            );
            let _ = writeln!(out, "# TYPE strata_uptime_seconds gauge");
            let _ = writeln!(
                out,
                "strata_uptime_seconds {:.3}",
                s.elapsed().as_secs_f64()
            );
        }
        out
    }
}

#[derive(Clone)]
struct AppState {
    lh: Arc<Lakehouse>,
    metrics: Arc<Metrics>,
    /// SHA-256 of the token, when one is required.
    token: Option<[u8; 32]>,
}

fn digest(s: &[u8]) -> [u8; 32] {
    Sha256::digest(s).into()
}

/// Equal digests, compared without an early exit.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The token a request carries: `Bearer T`, or HTTP Basic with T as the password.
fn presented(headers: &HeaderMap) -> Option<Vec<u8>> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = v.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.trim().as_bytes().to_vec());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (_, password) = text.split_once(':')?;
        return Some(password.as_bytes().to_vec());
    }
    None
}

async fn auth(State(st): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(want) = &st.token
        && req.uri().path() != "/health"
    {
        let ok = presented(req.headers()).is_some_and(|t| same(&digest(&t), want));
        if !ok {
            let mut r = RegistryError::new(
                401,
                40101,
                "Unauthorized: send the server's token as `Authorization: Bearer <token>` or as the password of HTTP Basic",
            )
            .into_response();
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Basic realm=\"strata\", Bearer"),
            );
            return r;
        }
    }
    next.run(req).await
}

async fn observe(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let resp = next.run(req).await;
    let resp = envelope_for_plain_errors(resp).await;
    st.metrics.observe(
        &method,
        &route,
        resp.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    resp
}

/// Errors axum answers itself (an unknown route, a wrong method, an oversized body) get the
/// registry's JSON envelope too.
async fn envelope_for_plain_errors(resp: Response) -> Response {
    let status = resp.status();
    let json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    if status.is_success() || json {
        return resp;
    }
    let (code, message) = match status {
        StatusCode::NOT_FOUND => (404, "HTTP 404 Not Found".to_string()),
        StatusCode::METHOD_NOT_ALLOWED => (405, "HTTP 405 Method Not Allowed".to_string()),
        StatusCode::PAYLOAD_TOO_LARGE => (
            41301,
            "Request body too large: the server's max_body_bytes (strata.toml [server]) is smaller"
                .to_string(),
        ),
        s => {
            let body = axum::body::to_bytes(resp.into_body(), 64 * 1024)
                .await
                .unwrap_or_default();
            let text = String::from_utf8_lossy(&body).trim().to_string();
            return RegistryError::new(
                s.as_u16(),
                s.as_u16() as u32,
                if text.is_empty() { s.to_string() } else { text },
            )
            .into_response();
        }
    };
    RegistryError::new(status.as_u16(), code, message).into_response()
}

async fn health() -> Reply {
    Reply(StatusCode::OK, serde_json::json!({"status": "ok"}))
}

async fn metrics(State(st): State<AppState>) -> Response {
    let pool = st.lh.metastore().pool();
    let count = |sql: &'static str| async move {
        sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(pool)
            .await
            .unwrap_or(0)
    };
    let subjects =
        count("SELECT count(DISTINCT subject) FROM registry_versions WHERE deleted = 0").await;
    let versions = count("SELECT count(*) FROM registry_versions WHERE deleted = 0").await;
    let schemas = count("SELECT count(*) FROM registry_schemas").await;
    let body = st.metrics.render((subjects, versions, schemas));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        Body::from(body),
    )
        .into_response()
}

/// Whether `host` names only this machine.
fn loopback(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.trim_matches(|c| c == '[' || c == ']')
        .parse::<IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// The server's routes over one lakehouse.
pub fn app(lh: Arc<Lakehouse>, token: Option<&str>, max_body: usize) -> Router {
    let st = AppState {
        metrics: Arc::new(Metrics {
            started: Some(Instant::now()),
            ..Default::default()
        }),
        token: token.map(|t| digest(t.as_bytes())),
        lh: lh.clone(),
    };
    let registry = strata_registry::api::router(Registry::new(lh.metastore()));
    let push = Router::new()
        .route(
            "/api/v1/tables/{table}/records",
            axum::routing::post(crate::push::records),
        )
        .with_state(lh.clone());
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(st.clone())
        .merge(registry)
        .merge(push)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(st.clone(), auth))
        .layer(middleware::from_fn_with_state(st, observe))
}

pub async fn run(lh: Lakehouse, args: ServeArgs) -> CliResult<ExitCode> {
    let cfg = lh.config().server.clone();
    let host = args.host.unwrap_or(cfg.host);
    let port = args.port.unwrap_or(cfg.port);
    let token = cfg.token.filter(|t| !t.is_empty());
    if !loopback(&host) && token.is_none() {
        return Err(usage_error(format!(
            "strata serve on {host} (not loopback) needs a token: set `token` under [server] in \
             strata.toml or STRATA_TOKEN; clients send it as `Authorization: Bearer <token>` or as \
             the password of HTTP Basic"
        )));
    }
    let required = if loopback(&host) {
        None
    } else {
        token.as_deref()
    };
    let addr: SocketAddr = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| usage_error(format!("cannot resolve {host}:{port}: {e}")))?
        .next()
        .ok_or_else(|| usage_error(format!("{host}:{port} resolves to no address")))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| usage_error(format!("cannot listen on {addr}: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| usage_error(format!("{addr}: {e}")))?;
    let lh = Arc::new(lh);
    let app = app(lh, required, cfg.max_body_bytes as usize);
    eprintln!(
        "strata serve: listening on http://{local} (schema registry at the root; /health, /metrics){}",
        if required.is_some() {
            "; token required"
        } else {
            ""
        }
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown())
        .await
        .map_err(|e| crate::CliError {
            class: strata_core::ErrorClass::Storage,
            message: format!("server failed: {e}"),
            usage: false,
        })?;
    eprintln!("strata serve: stopped");
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGTERM or Ctrl-C; in-flight requests then finish before the server exits.
async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    eprintln!("strata serve: stopping (finishing requests in flight)");
}
