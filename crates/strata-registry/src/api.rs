//! The Confluent Schema Registry REST API over [`Registry`]: the routes, content types, error
//! envelope and error codes that Confluent's clients expect (wire-apis.md, section 1).

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::compat::Level;
use crate::error::RegistryError;
use crate::schema::SchemaKind;
use crate::store::{Mode, Registered, Registry, SchemaRequest, VersionSpec};

pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// A JSON response with the registry's content type.
pub struct Reply(pub StatusCode, pub Value);

/// `r` with the registry's content type.
fn registry_content(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    r
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        registry_content((self.0, self.1.to_string()).into_response())
    }
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Reply(
            status,
            json!({"error_code": self.code, "message": self.message}),
        )
        .into_response()
    }
}

type ApiResult = Result<Reply, RegistryError>;

fn ok(v: Value) -> ApiResult {
    Ok(Reply(StatusCode::OK, v))
}

/// Query parameters, booleans read case-insensitively (the Python client sends `False`).
type Params = HashMap<String, String>;

trait Flag {
    fn flag(&self, name: &str) -> Result<bool, RegistryError>;
}

impl Flag for Params {
    fn flag(&self, name: &str) -> Result<bool, RegistryError> {
        match self.get(name).map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(false),
            Some(v) if v == "true" => Ok(true),
            Some(v) if v == "false" || v.is_empty() => Ok(false),
            Some(v) => Err(RegistryError::bad_request(format!(
                "Query parameter {name}={v} is not a boolean (true or false)"
            ))),
        }
    }
}

fn body<T: for<'de> Deserialize<'de>>(bytes: &Bytes) -> Result<T, RegistryError> {
    serde_json::from_slice(bytes).map_err(|e| {
        RegistryError::new(
            if e.is_data() { 422 } else { 400 },
            if e.is_data() { 42201 } else { 400 },
            format!("Invalid request body: {e}"),
        )
    })
}

fn schema_request(bytes: &Bytes) -> Result<SchemaRequest, RegistryError> {
    let req: SchemaRequest = body(bytes)?;
    if req.schema.trim().is_empty() {
        return Err(RegistryError::invalid_schema("Empty schema"));
    }
    Ok(req)
}

fn version_json(r: &Registered) -> Value {
    let mut v = json!({
        "subject": r.subject,
        "version": r.version,
        "id": r.id,
        "schema": r.schema,
    });
    if r.kind != SchemaKind::Avro {
        v["schemaType"] = json!(r.kind.as_str());
    }
    if !r.references.is_empty() {
        v["references"] = json!(r.references);
    }
    v
}

/// The registry's routes, at the root (as Confluent's are).
pub fn router(registry: Registry) -> Router {
    Router::new()
        .route("/", get(|| async { ok(json!({})) }))
        .route(
            "/schemas/types",
            get(|| async { ok(json!(["JSON", "AVRO"])) }),
        )
        .route("/subjects", get(subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route("/subjects/{subject}/versions", get(versions).post(register))
        .route(
            "/subjects/{subject}/versions/{version}",
            get(version).delete(delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(version_schema),
        )
        .route(
            "/subjects/{subject}/versions/{version}/referencedby",
            get(referenced_by),
        )
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(raw_schema_by_id))
        .route("/schemas/ids/{id}/subjects", get(id_subjects))
        .route("/schemas/ids/{id}/versions", get(id_versions))
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(test_one),
        )
        .route("/compatibility/subjects/{subject}/versions", post(test_all))
        .route("/config", get(get_global_config).put(put_global_config))
        .route(
            "/config/{subject}",
            get(get_config).put(put_config).delete(delete_config),
        )
        .route("/mode", get(get_global_mode).put(put_global_mode))
        .route(
            "/mode/{subject}",
            get(get_mode).put(put_mode).delete(delete_mode),
        )
        .with_state(registry)
}

async fn subjects(State(r): State<Registry>, Query(p): Query<Params>) -> ApiResult {
    ok(json!(r.subjects(p.flag("deleted")?).await?))
}

async fn versions(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    Query(p): Query<Params>,
) -> ApiResult {
    ok(json!(r.versions(&subject, p.flag("deleted")?).await?))
}

async fn version(
    State(r): State<Registry>,
    Path((subject, version)): Path<(String, String)>,
    Query(p): Query<Params>,
) -> ApiResult {
    let v = VersionSpec::parse(&version)?;
    ok(version_json(
        &r.version(&subject, v, p.flag("deleted")?).await?,
    ))
}

async fn version_schema(
    State(r): State<Registry>,
    Path((subject, version)): Path<(String, String)>,
) -> Result<Response, RegistryError> {
    let v = VersionSpec::parse(&version)?;
    let reg = r.version(&subject, v, false).await?;
    Ok(registry_content(reg.schema.into_response()))
}

async fn referenced_by(
    State(r): State<Registry>,
    Path((subject, version)): Path<(String, String)>,
) -> ApiResult {
    let v = VersionSpec::parse(&version)?;
    let reg = r.version(&subject, v, false).await?;
    ok(json!(r.referenced_by(&subject, Some(reg.version)).await?))
}

async fn register(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    Query(p): Query<Params>,
    bytes: Bytes,
) -> ApiResult {
    let req = schema_request(&bytes)?;
    let (id, version) = r.register(&subject, &req, p.flag("normalize")?).await?;
    let reg = r
        .version(&subject, VersionSpec::Number(version), false)
        .await?;
    let mut v = version_json(&reg);
    v["id"] = json!(id);
    ok(v)
}

async fn lookup(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    Query(p): Query<Params>,
    bytes: Bytes,
) -> ApiResult {
    let req = schema_request(&bytes)?;
    let reg = r
        .lookup(&subject, &req, p.flag("normalize")?, p.flag("deleted")?)
        .await?;
    ok(version_json(&reg))
}

async fn delete_subject(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    Query(p): Query<Params>,
) -> ApiResult {
    ok(json!(
        r.delete_subject(&subject, p.flag("permanent")?).await?
    ))
}

async fn delete_version(
    State(r): State<Registry>,
    Path((subject, version)): Path<(String, String)>,
    Query(p): Query<Params>,
) -> ApiResult {
    let v = VersionSpec::parse(&version)?;
    ok(json!(
        r.delete_version(&subject, v, p.flag("permanent")?).await?
    ))
}

fn id_of(text: &str) -> Result<i64, RegistryError> {
    text.parse::<i64>()
        .map_err(|_| RegistryError::schema_not_found(format!("Schema {text} not found")))
}

async fn schema_by_id(State(r): State<Registry>, Path(id): Path<String>) -> ApiResult {
    let s = r.schema(id_of(&id)?).await?;
    let mut v = json!({"schema": s.schema});
    if s.kind != SchemaKind::Avro {
        v["schemaType"] = json!(s.kind.as_str());
    }
    if !s.references.is_empty() {
        v["references"] = json!(s.references);
    }
    ok(v)
}

async fn raw_schema_by_id(
    State(r): State<Registry>,
    Path(id): Path<String>,
) -> Result<Response, RegistryError> {
    let s = r.schema(id_of(&id)?).await?;
    Ok(registry_content(s.schema.into_response()))
}

async fn id_subjects(
    State(r): State<Registry>,
    Path(id): Path<String>,
    Query(p): Query<Params>,
) -> ApiResult {
    let uses = r.uses(id_of(&id)?, p.flag("deleted")?).await?;
    let mut subjects: Vec<String> = uses.into_iter().map(|(s, _)| s).collect();
    subjects.dedup();
    ok(json!(subjects))
}

async fn id_versions(
    State(r): State<Registry>,
    Path(id): Path<String>,
    Query(p): Query<Params>,
) -> ApiResult {
    let uses = r.uses(id_of(&id)?, p.flag("deleted")?).await?;
    ok(json!(
        uses.into_iter()
            .map(|(s, v)| json!({"subject": s, "version": v}))
            .collect::<Vec<_>>()
    ))
}

fn verdict_json(v: crate::store::Verdict, verbose: bool) -> Value {
    let mut out = json!({"is_compatible": v.is_compatible});
    if verbose {
        out["messages"] = json!(v.messages);
    }
    out
}

async fn test_one(
    State(r): State<Registry>,
    Path((subject, version)): Path<(String, String)>,
    Query(p): Query<Params>,
    bytes: Bytes,
) -> ApiResult {
    let v = VersionSpec::parse(&version)?;
    let req = schema_request(&bytes)?;
    let verdict = r.test(&subject, Some(v), &req).await?;
    ok(verdict_json(verdict, p.flag("verbose")?))
}

async fn test_all(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    Query(p): Query<Params>,
    bytes: Bytes,
) -> ApiResult {
    let req = schema_request(&bytes)?;
    let verdict = r.test(&subject, None, &req).await?;
    ok(verdict_json(verdict, p.flag("verbose")?))
}

#[derive(Deserialize)]
struct ConfigBody {
    compatibility: Option<String>,
    #[serde(rename = "compatibilityLevel")]
    compatibility_level: Option<String>,
}

fn level_of(bytes: &Bytes) -> Result<Level, RegistryError> {
    let b: ConfigBody = body(bytes)?;
    let text = b.compatibility.or(b.compatibility_level).ok_or_else(|| {
        RegistryError::invalid_compatibility_level("Invalid compatibility level: none given")
    })?;
    text.parse()
        .map_err(RegistryError::invalid_compatibility_level)
}

async fn get_global_config(State(r): State<Registry>) -> ApiResult {
    ok(json!({"compatibilityLevel": r.level("").await?.as_str()}))
}

async fn put_global_config(State(r): State<Registry>, bytes: Bytes) -> ApiResult {
    let level = level_of(&bytes)?;
    r.set_config("", level).await?;
    ok(json!({"compatibility": level.as_str()}))
}

async fn get_config(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    Query(p): Query<Params>,
) -> ApiResult {
    match r.config(&subject).await? {
        Some(l) => ok(json!({"compatibilityLevel": l.as_str()})),
        None if p.flag("defaultToGlobal")? => {
            ok(json!({"compatibilityLevel": r.level("").await?.as_str()}))
        }
        None => Err(RegistryError::subject_level_compatibility_not_configured(
            &subject,
        )),
    }
}

async fn put_config(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    bytes: Bytes,
) -> ApiResult {
    crate::store::validate_subject(&subject)?;
    let level = level_of(&bytes)?;
    r.set_config(&subject, level).await?;
    ok(json!({"compatibility": level.as_str()}))
}

async fn delete_config(State(r): State<Registry>, Path(subject): Path<String>) -> ApiResult {
    let before = r.delete_config(&subject).await?;
    ok(json!({"compatibility": before.as_str()}))
}

#[derive(Deserialize)]
struct ModeBody {
    mode: String,
}

async fn get_global_mode(State(r): State<Registry>) -> ApiResult {
    ok(json!({"mode": r.mode("").await?.as_str()}))
}

async fn put_global_mode(
    State(r): State<Registry>,
    Query(p): Query<Params>,
    bytes: Bytes,
) -> ApiResult {
    let b: ModeBody = body(&bytes)?;
    let m = Mode::parse(&b.mode)?;
    r.set_mode("", m, p.flag("force")?).await?;
    ok(json!({"mode": m.as_str()}))
}

async fn get_mode(State(r): State<Registry>, Path(subject): Path<String>) -> ApiResult {
    ok(json!({"mode": r.mode(&subject).await?.as_str()}))
}

async fn put_mode(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    Query(p): Query<Params>,
    bytes: Bytes,
) -> ApiResult {
    let b: ModeBody = body(&bytes)?;
    let m = Mode::parse(&b.mode)?;
    r.set_mode(&subject, m, p.flag("force")?).await?;
    ok(json!({"mode": m.as_str()}))
}

async fn delete_mode(State(r): State<Registry>, Path(subject): Path<String>) -> ApiResult {
    let before = r.delete_mode(&subject).await?;
    ok(json!({"mode": before.as_str()}))
}
