//! The registry's state in the metastore: schemas by global id, subjects' versions, levels and
//! modes. Every change runs in one write transaction (SQLite's `BEGIN IMMEDIATE`), so concurrent
//! registrations of one schema get one id and one version.

use chrono::Utc;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::{Row, Sqlite, SqlitePool, Transaction};
use strata_catalog::metastore::Metastore;

use crate::compat::{self, Level};
use crate::error::{RegistryError, Result};
use crate::schema::{self, Parsed, Reference, SchemaKind};

/// A schema as a client sends it to register, look up or test.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SchemaRequest {
    pub schema: String,
    #[serde(default)]
    pub schema_type: Option<String>,
    #[serde(default)]
    pub references: Vec<Reference>,
    /// IMPORT mode only: the id and version to keep.
    #[serde(default)]
    pub id: Option<i64>,
    #[serde(default)]
    pub version: Option<i64>,
}

impl SchemaRequest {
    pub fn new(schema: impl Into<String>, kind: SchemaKind) -> Self {
        SchemaRequest {
            schema: schema.into(),
            schema_type: Some(kind.as_str().into()),
            ..Default::default()
        }
    }
}

/// A subject's version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Registered {
    pub subject: String,
    pub version: i64,
    pub id: i64,
    pub kind: SchemaKind,
    pub schema: String,
    pub references: Vec<Reference>,
    pub deleted: bool,
}

/// A schema by id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredSchema {
    pub id: i64,
    pub kind: SchemaKind,
    pub schema: String,
    pub references: Vec<Reference>,
}

/// Which version: a number, or the latest live one (`latest`, `-1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSpec {
    Number(i64),
    Latest,
}

impl VersionSpec {
    pub fn parse(text: &str) -> Result<VersionSpec> {
        let t = text.trim();
        if t.eq_ignore_ascii_case("latest") || t == "-1" {
            return Ok(VersionSpec::Latest);
        }
        match t.parse::<i64>() {
            Ok(n) if (1..=i32::MAX as i64).contains(&n) => Ok(VersionSpec::Number(n)),
            _ => Err(RegistryError::invalid_version(text)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    ReadWrite,
    ReadOnly,
    ReadOnlyOverride,
    Import,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::ReadWrite => "READWRITE",
            Mode::ReadOnly => "READONLY",
            Mode::ReadOnlyOverride => "READONLY_OVERRIDE",
            Mode::Import => "IMPORT",
        }
    }

    pub fn parse(text: &str) -> Result<Mode> {
        match text.trim().to_ascii_uppercase().as_str() {
            "READWRITE" => Ok(Mode::ReadWrite),
            "READONLY" => Ok(Mode::ReadOnly),
            "READONLY_OVERRIDE" => Ok(Mode::ReadOnlyOverride),
            "IMPORT" => Ok(Mode::Import),
            _ => Err(RegistryError::invalid_mode(format!(
                "Invalid mode {text}: expected READWRITE, READONLY, READONLY_OVERRIDE or IMPORT"
            ))),
        }
    }
}

/// The result of a compatibility test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub is_compatible: bool,
    pub messages: Vec<String>,
}

/// The registry over one lakehouse's metastore.
#[derive(Clone)]
pub struct Registry {
    pool: SqlitePool,
}

fn kind_of(text: &str) -> Result<SchemaKind> {
    match text {
        "AVRO" => Ok(SchemaKind::Avro),
        "JSON" => Ok(SchemaKind::Json),
        other => Err(RegistryError::internal(format!(
            "the metastore holds a schema of unknown type {other}"
        ))),
    }
}

fn refs_of(text: &str) -> Result<Vec<Reference>> {
    serde_json::from_str(text).map_err(|e| {
        RegistryError::internal(format!("the metastore holds unreadable references: {e}"))
    })
}

fn fingerprint(kind: SchemaKind, text: &str, refs: &[Reference]) -> String {
    let mut h = Sha256::new();
    h.update(kind.as_str().as_bytes());
    h.update([0]);
    h.update(text.as_bytes());
    h.update([0]);
    h.update(serde_json::to_string(refs).unwrap_or_default().as_bytes());
    hex::encode(h.finalize())
}

type Tx = Transaction<'static, Sqlite>;

impl Registry {
    pub fn new(metastore: &Metastore) -> Self {
        Registry {
            pool: metastore.pool().clone(),
        }
    }

    async fn write(&self) -> Result<Tx> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    // ---- reading ------------------------------------------------------------------------

    /// Subjects with a live version (with `deleted`, soft-deleted ones too), sorted.
    pub async fn subjects(&self, deleted: bool) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT DISTINCT subject FROM registry_versions WHERE deleted = 0 OR ? ORDER BY subject",
        )
        .bind(deleted)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(|r| r.get::<String, _>(0)).collect())
    }

    /// A subject's version numbers (40401 when it has none that count).
    pub async fn versions(&self, subject: &str, deleted: bool) -> Result<Vec<i64>> {
        let rows = sqlx::query(
            "SELECT version FROM registry_versions WHERE subject = ? AND (deleted = 0 OR ?) \
             ORDER BY version",
        )
        .bind(subject)
        .bind(deleted)
        .fetch_all(&self.pool)
        .await?;
        if rows.is_empty() {
            return Err(RegistryError::subject_not_found(subject));
        }
        Ok(rows.iter().map(|r| r.get::<i64, _>(0)).collect())
    }

    async fn rows(&self, subject: &str) -> Result<Vec<Registered>> {
        let rows = sqlx::query(
            "SELECT v.version, v.schema_id, v.deleted, s.schema_type, s.schema, s.refs \
             FROM registry_versions v JOIN registry_schemas s ON s.id = v.schema_id \
             WHERE v.subject = ? ORDER BY v.version",
        )
        .bind(subject)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Registered {
                    subject: subject.to_string(),
                    version: r.get(0),
                    id: r.get(1),
                    deleted: r.get::<i64, _>(2) != 0,
                    kind: kind_of(&r.get::<String, _>(3))?,
                    schema: r.get(4),
                    references: refs_of(&r.get::<String, _>(5))?,
                })
            })
            .collect()
    }

    /// One version of a subject.
    pub async fn version(
        &self,
        subject: &str,
        version: VersionSpec,
        deleted: bool,
    ) -> Result<Registered> {
        let rows = self.rows(subject).await?;
        if !rows.iter().any(|r| deleted || !r.deleted) {
            return Err(RegistryError::subject_not_found(subject));
        }
        let found = match version {
            VersionSpec::Latest => rows.iter().rev().find(|r| !r.deleted),
            VersionSpec::Number(n) => rows
                .iter()
                .find(|r| r.version == n && (deleted || !r.deleted)),
        };
        found.cloned().ok_or_else(|| match version {
            VersionSpec::Latest => RegistryError::version_not_found("latest"),
            VersionSpec::Number(n) => RegistryError::version_not_found(n),
        })
    }

    /// A schema by its global id; soft-deleted versions still resolve (data written with the
    /// id stays readable), hard-deleted ones do not.
    pub async fn schema(&self, id: i64) -> Result<StoredSchema> {
        let row = sqlx::query(
            "SELECT s.schema_type, s.schema, s.refs FROM registry_schemas s WHERE s.id = ? \
             AND EXISTS (SELECT 1 FROM registry_versions v WHERE v.schema_id = s.id)",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| RegistryError::schema_not_found(format!("Schema {id} not found")))?;
        Ok(StoredSchema {
            id,
            kind: kind_of(&row.get::<String, _>(0))?,
            schema: row.get(1),
            references: refs_of(&row.get::<String, _>(2))?,
        })
    }

    /// The (subject, version) pairs that use schema `id`.
    pub async fn uses(&self, id: i64, deleted: bool) -> Result<Vec<(String, i64)>> {
        self.schema(id).await?;
        let rows = sqlx::query(
            "SELECT subject, version FROM registry_versions WHERE schema_id = ? \
             AND (deleted = 0 OR ?) ORDER BY subject, version",
        )
        .bind(id)
        .bind(deleted)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// The ids of live schemas that reference `subject` (at `version`, or any).
    pub async fn referenced_by(&self, subject: &str, version: Option<i64>) -> Result<Vec<i64>> {
        let rows = sqlx::query(
            "SELECT DISTINCT s.id, s.refs FROM registry_schemas s \
             JOIN registry_versions v ON v.schema_id = s.id AND v.deleted = 0 \
             WHERE s.refs <> '[]' ORDER BY s.id",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for r in rows {
            let refs = refs_of(&r.get::<String, _>(1))?;
            if refs
                .iter()
                .any(|x| x.subject == subject && version.is_none_or(|v| v == x.version))
            {
                out.push(r.get(0));
            }
        }
        Ok(out)
    }

    // ---- levels and modes ---------------------------------------------------------------

    /// The level set for `subject` ('' the global one), if any.
    pub async fn config(&self, subject: &str) -> Result<Option<Level>> {
        let v: Option<String> =
            sqlx::query_scalar("SELECT compatibility FROM registry_config WHERE subject = ?")
                .bind(subject)
                .fetch_optional(&self.pool)
                .await?;
        v.map(|s| s.parse().map_err(RegistryError::internal))
            .transpose()
    }

    /// The level in force for `subject`: its own, else the global one, else BACKWARD.
    pub async fn level(&self, subject: &str) -> Result<Level> {
        if !subject.is_empty()
            && let Some(l) = self.config(subject).await?
        {
            return Ok(l);
        }
        Ok(self.config("").await?.unwrap_or(Level::Backward))
    }

    pub async fn set_config(&self, subject: &str, level: Level) -> Result<()> {
        sqlx::query(
            "INSERT INTO registry_config (subject, compatibility) VALUES (?, ?) \
             ON CONFLICT (subject) DO UPDATE SET compatibility = excluded.compatibility",
        )
        .bind(subject)
        .bind(level.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Removes `subject`'s level; returns the one it had (the global one when it had none).
    pub async fn delete_config(&self, subject: &str) -> Result<Level> {
        let before = self.level(subject).await?;
        if !subject.is_empty() {
            self.versions(subject, true).await?;
        }
        sqlx::query("DELETE FROM registry_config WHERE subject = ?")
            .bind(subject)
            .execute(&self.pool)
            .await?;
        Ok(before)
    }

    pub async fn mode(&self, subject: &str) -> Result<Mode> {
        let own: Option<String> =
            sqlx::query_scalar("SELECT mode FROM registry_mode WHERE subject = ?")
                .bind(subject)
                .fetch_optional(&self.pool)
                .await?;
        match own {
            Some(m) => Mode::parse(&m),
            None if !subject.is_empty() => Box::pin(self.mode("")).await,
            None => Ok(Mode::ReadWrite),
        }
    }

    /// Sets a mode. IMPORT on a subject or registry that already holds schemas needs `force`.
    pub async fn set_mode(&self, subject: &str, mode: Mode, force: bool) -> Result<()> {
        if mode == Mode::Import && !force {
            let any: i64 = if subject.is_empty() {
                sqlx::query_scalar("SELECT count(*) FROM registry_versions")
                    .fetch_one(&self.pool)
                    .await?
            } else {
                sqlx::query_scalar("SELECT count(*) FROM registry_versions WHERE subject = ?")
                    .bind(subject)
                    .fetch_one(&self.pool)
                    .await?
            };
            if any > 0 {
                return Err(RegistryError::operation_not_permitted(
                    "Cannot import since found existing subjects: set force=true to import anyway",
                ));
            }
        }
        sqlx::query(
            "INSERT INTO registry_mode (subject, mode) VALUES (?, ?) \
             ON CONFLICT (subject) DO UPDATE SET mode = excluded.mode",
        )
        .bind(subject)
        .bind(mode.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn delete_mode(&self, subject: &str) -> Result<Mode> {
        let before = self.mode(subject).await?;
        sqlx::query("DELETE FROM registry_mode WHERE subject = ?")
            .bind(subject)
            .execute(&self.pool)
            .await?;
        Ok(before)
    }

    // ---- parsing ------------------------------------------------------------------------

    /// The texts of the schemas `refs` point to, dependencies first.
    async fn reference_texts(&self, refs: &[Reference], depth: usize) -> Result<Vec<String>> {
        if depth > 32 {
            return Err(RegistryError::invalid_schema(
                "Invalid schema: references nest more than 32 deep (a cycle?)",
            ));
        }
        let mut out = Vec::new();
        for r in refs {
            let v = self
                .version(&r.subject, VersionSpec::Number(r.version), false)
                .await
                .map_err(|_| {
                    RegistryError::invalid_schema(format!(
                        "Invalid schema: reference '{}' names subject '{}' version {}, which does not exist",
                        r.name, r.subject, r.version
                    ))
                })?;
            for t in Box::pin(self.reference_texts(&v.references, depth + 1)).await? {
                if !out.contains(&t) {
                    out.push(t);
                }
            }
            if !out.contains(&v.schema) {
                out.push(v.schema);
            }
        }
        Ok(out)
    }

    /// Parses a request's schema (its references resolved).
    pub async fn parse(&self, req: &SchemaRequest) -> Result<Parsed> {
        let kind = SchemaKind::parse(req.schema_type.as_deref())?;
        let texts = self.reference_texts(&req.references, 0).await?;
        schema::parse(kind, &req.schema, &texts)
    }

    async fn parse_stored(&self, r: &Registered) -> Result<Parsed> {
        let texts = self.reference_texts(&r.references, 0).await?;
        schema::parse(r.kind, &r.schema, &texts)
    }

    // ---- compatibility ------------------------------------------------------------------

    /// Checks `new` against `subject`'s live versions as `level` selects them.
    async fn check_against(
        &self,
        subject: &str,
        new: &Parsed,
        level: Level,
        only: Option<&Registered>,
    ) -> Result<Vec<String>> {
        let live: Vec<Registered> = match only {
            Some(r) => vec![r.clone()],
            None => self
                .rows(subject)
                .await?
                .into_iter()
                .filter(|r| !r.deleted)
                .collect(),
        };
        let mut parsed = Vec::new();
        for r in &live {
            parsed.push((r.version, self.parse_stored(r).await?));
        }
        let history: Vec<(i64, &Parsed)> = parsed.iter().map(|(v, p)| (*v, p)).collect();
        Ok(compat::check(level, new, &history))
    }

    /// Tests `req` against one version of `subject` (`Some`) or the versions its level selects.
    pub async fn test(
        &self,
        subject: &str,
        version: Option<VersionSpec>,
        req: &SchemaRequest,
    ) -> Result<Verdict> {
        let new = self.parse(req).await?;
        let level = self.level(subject).await?;
        let messages = match version {
            Some(v) => {
                let r = self.version(subject, v, false).await?;
                // against one version: that version alone, at the level's direction
                let plain = match level {
                    Level::BackwardTransitive => Level::Backward,
                    Level::ForwardTransitive => Level::Forward,
                    Level::FullTransitive => Level::Full,
                    l => l,
                };
                self.check_against(subject, &new, plain, Some(&r)).await?
            }
            None => {
                // a subject with no versions is compatible with anything
                self.check_against(subject, &new, level, None).await?
            }
        };
        Ok(Verdict {
            is_compatible: messages.is_empty(),
            messages,
        })
    }

    // ---- registering --------------------------------------------------------------------

    /// The live version of `subject` holding exactly this schema, if any.
    pub async fn lookup(
        &self,
        subject: &str,
        req: &SchemaRequest,
        normalize: bool,
        deleted: bool,
    ) -> Result<Registered> {
        let rows = self.rows(subject).await?;
        if !rows.iter().any(|r| deleted || !r.deleted) {
            return Err(RegistryError::subject_not_found(subject));
        }
        let parsed = self.parse(req).await?;
        let text = if normalize {
            schema::normalized(parsed.json())
        } else {
            parsed.text.clone()
        };
        rows.into_iter()
            .rev()
            .find(|r| {
                (deleted || !r.deleted)
                    && r.kind == parsed.kind
                    && r.references == req.references
                    && (r.schema == text
                        || (normalize
                            && serde_json::from_str::<serde_json::Value>(&r.schema)
                                .map(|d| schema::normalized(&d) == text)
                                .unwrap_or(false)))
            })
            .ok_or_else(|| RegistryError::schema_not_found("Schema not found"))
    }

    /// Registers `req` under `subject`: the existing id and version when the subject already
    /// holds this schema (no check runs), else a new version after the compatibility check.
    /// Returns (id, version).
    pub async fn register(
        &self,
        subject: &str,
        req: &SchemaRequest,
        normalize: bool,
    ) -> Result<(i64, i64)> {
        validate_subject(subject)?;
        let mode = self.mode(subject).await?;
        if matches!(mode, Mode::ReadOnly | Mode::ReadOnlyOverride) {
            return Err(RegistryError::operation_not_permitted(format!(
                "Subject {subject} is in read-only mode"
            )));
        }
        if mode != Mode::Import
            && (req.id.is_some_and(|i| i >= 0) || req.version.is_some_and(|v| v >= 0))
        {
            return Err(RegistryError::operation_not_permitted(format!(
                "Subject {subject} is not in import mode: an id or version can only be given in IMPORT mode"
            )));
        }
        let parsed = self.parse(req).await?;
        let text = if normalize {
            schema::normalized(parsed.json())
        } else {
            parsed.text.clone()
        };
        let fp = fingerprint(parsed.kind, &text, &req.references);
        // Compatibility runs outside the write lock (it may parse many versions); the
        // transaction below re-reads the subject and re-checks if a version appeared meanwhile.
        let level = if mode == Mode::Import {
            Level::None
        } else {
            self.level(subject).await?
        };
        let rows_before = self.rows(subject).await?;
        let live_before = rows_before.iter().filter(|r| !r.deleted).count();
        if let Some(r) = rows_before.iter().rev().find(|r| {
            !r.deleted
                && r.kind == parsed.kind
                && r.schema == text
                && r.references == req.references
        }) && req.id.is_none_or(|i| i < 0 || i == r.id)
        {
            return Ok((r.id, r.version));
        }
        let problems = self.check_against(subject, &parsed, level, None).await?;
        if !problems.is_empty() {
            return Err(RegistryError::incompatible(subject, &problems));
        }
        self.check_bound_tables(subject, &parsed, &rows_before)
            .await?;

        let mut tx = self.write().await?;
        // another writer may have registered meanwhile
        let live_now: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM registry_versions WHERE subject = ? AND deleted = 0",
        )
        .bind(subject)
        .fetch_one(&mut *tx)
        .await?;
        let existing: Option<(i64, i64)> = sqlx::query_as(
            "SELECT v.schema_id, v.version FROM registry_versions v \
             JOIN registry_schemas s ON s.id = v.schema_id \
             WHERE v.subject = ? AND v.deleted = 0 AND s.fingerprint = ? \
             ORDER BY v.version DESC LIMIT 1",
        )
        .bind(subject)
        .bind(&fp)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(found) = existing {
            tx.commit().await?;
            return Ok(found);
        }
        if live_now as usize != live_before {
            drop(tx);
            return Box::pin(self.register(subject, req, normalize)).await;
        }
        let now = Utc::now().to_rfc3339();
        let known: Option<i64> =
            sqlx::query_scalar("SELECT id FROM registry_schemas WHERE fingerprint = ?")
                .bind(&fp)
                .fetch_optional(&mut *tx)
                .await?;
        let id = match (known, req.id.filter(|i| *i >= 0)) {
            (Some(k), Some(given)) if k != given => {
                return Err(RegistryError::operation_not_permitted(format!(
                    "Overwrite new schema with id {given} is not permitted: this schema already has id {k}"
                )));
            }
            (Some(k), _) => k,
            (None, given) => {
                if let Some(g) = given {
                    let taken: Option<String> =
                        sqlx::query_scalar("SELECT schema FROM registry_schemas WHERE id = ?")
                            .bind(g)
                            .fetch_optional(&mut *tx)
                            .await?;
                    if taken.is_some() {
                        return Err(RegistryError::operation_not_permitted(format!(
                            "Overwrite new schema with id {g} is not permitted: id {g} holds another schema"
                        )));
                    }
                }
                sqlx::query_scalar(
                    "INSERT INTO registry_schemas (id, schema_type, schema, refs, fingerprint, created_at) \
                     VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                )
                .bind(given)
                .bind(parsed.kind.as_str())
                .bind(&text)
                .bind(serde_json::to_string(&req.references).unwrap_or_else(|_| "[]".into()))
                .bind(&fp)
                .bind(&now)
                .fetch_one(&mut *tx)
                .await?
            }
        };
        let version: i64 =
            match req.version.filter(|v| *v >= 1) {
                Some(v) => {
                    let taken: Option<i64> = sqlx::query_scalar(
                        "SELECT schema_id FROM registry_versions WHERE subject = ? AND version = ?",
                    )
                    .bind(subject)
                    .bind(v)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if let Some(t) = taken {
                        if t == id {
                            tx.commit().await?;
                            return Ok((id, v));
                        }
                        return Err(RegistryError::operation_not_permitted(format!(
                            "Version {v} of subject {subject} already holds schema {t}"
                        )));
                    }
                    v
                }
                None => sqlx::query_scalar(
                    "SELECT coalesce(max(version), 0) + 1 FROM registry_versions WHERE subject = ?",
                )
                .bind(subject)
                .fetch_one(&mut *tx)
                .await?,
            };
        sqlx::query(
            "INSERT INTO registry_versions (subject, version, schema_id, deleted, created_at) \
             VALUES (?, ?, ?, 0, ?)",
        )
        .bind(subject)
        .bind(version)
        .bind(id)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((id, version))
    }

    /// Refuses (409) a new version of a subject bound to tables when it would change the
    /// Delta type of a column an earlier version gave them (deltalake cannot change a column's
    /// type in place), or when it cannot give columns at all. Names each table and column.
    async fn check_bound_tables(
        &self,
        subject: &str,
        new: &Parsed,
        rows: &[Registered],
    ) -> Result<()> {
        let tables: Vec<(String, Option<String>)> = sqlx::query_as(
            "SELECT c.table_id, t.catalog || '.' || t.schema || '.' || t.name \
             FROM contracts c LEFT JOIN tables t ON t.table_id = c.table_id \
             WHERE c.subject = ? ORDER BY 2",
        )
        .bind(subject)
        .fetch_all(&self.pool)
        .await?;
        if tables.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = tables
            .into_iter()
            .map(|(id, name)| name.unwrap_or(id))
            .collect();
        let refuse = |details: String| {
            RegistryError::new(
                409,
                409,
                format!(
                    "Schema being registered is incompatible with table(s) {} bound to subject \"{subject}\": {details}",
                    names.join(", ")
                ),
            )
        };
        let new_columns = crate::contract::schema_columns(subject, new).map_err(|e| {
            refuse(format!(
                "{}; a contract's schema must give columns",
                e.message
            ))
        })?;
        // the type each column got from the earliest version (soft-deleted ones included: their
        // columns stay in the tables)
        let mut earlier: Vec<(String, arrow::datatypes::DataType, i64)> = Vec::new();
        for r in rows {
            let Ok(p) = self.parse_stored(r).await else {
                continue;
            };
            let Ok(cols) = crate::contract::schema_columns(subject, &p) else {
                continue;
            };
            for (n, t) in cols {
                if !earlier.iter().any(|(e, _, _)| *e == n) {
                    earlier.push((n, t, r.version));
                }
            }
        }
        let changed: Vec<String> = new_columns
            .iter()
            .filter_map(|(n, t)| {
                let (_, old, v) = earlier.iter().find(|(e, _, _)| e == n)?;
                (old != t).then(|| {
                    format!(
                        "column {n} is {} (version {v}) but this schema makes it {}",
                        strata_core::types::type_name(old),
                        strata_core::types::type_name(t)
                    )
                })
            })
            .collect();
        if changed.is_empty() {
            Ok(())
        } else {
            Err(refuse(format!(
                "{}; deltalake cannot change a column's type in place: register the new type under a new field name, or unbind the contract first",
                changed.join("; ")
            )))
        }
    }

    // ---- deleting -----------------------------------------------------------------------

    /// Deletes a subject: soft (its versions marked) or, after a soft delete, permanently.
    /// Returns the versions deleted.
    pub async fn delete_subject(&self, subject: &str, permanent: bool) -> Result<Vec<i64>> {
        let rows = self.rows(subject).await?;
        if rows.is_empty() {
            return Err(RegistryError::subject_not_found(subject));
        }
        let live: Vec<i64> = rows
            .iter()
            .filter(|r| !r.deleted)
            .map(|r| r.version)
            .collect();
        if self.mode(subject).await? == Mode::ReadOnly {
            return Err(RegistryError::operation_not_permitted(format!(
                "Subject {subject} is in read-only mode"
            )));
        }
        if !self.referenced_by(subject, None).await?.is_empty() {
            return Err(RegistryError::reference_exists(format!(
                "One or more references exist to the schema {{subject={subject}}}"
            )));
        }
        let mut tx = self.write().await?;
        let out = if permanent {
            if !live.is_empty() {
                return Err(RegistryError::subject_not_soft_deleted(subject));
            }
            sqlx::query("DELETE FROM registry_versions WHERE subject = ?")
                .bind(subject)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM registry_config WHERE subject = ?")
                .bind(subject)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM registry_mode WHERE subject = ?")
                .bind(subject)
                .execute(&mut *tx)
                .await?;
            rows.iter().map(|r| r.version).collect()
        } else {
            if live.is_empty() {
                return Err(RegistryError::subject_soft_deleted(subject));
            }
            sqlx::query("UPDATE registry_versions SET deleted = 1 WHERE subject = ?")
                .bind(subject)
                .execute(&mut *tx)
                .await?;
            live
        };
        tx.commit().await?;
        Ok(out)
    }

    /// Deletes one version: soft, or after a soft delete permanently. Returns its number.
    pub async fn delete_version(
        &self,
        subject: &str,
        version: VersionSpec,
        permanent: bool,
    ) -> Result<i64> {
        let rows = self.rows(subject).await?;
        if rows.is_empty() {
            return Err(RegistryError::subject_not_found(subject));
        }
        let target = match version {
            VersionSpec::Latest => rows.iter().rev().find(|r| !r.deleted),
            VersionSpec::Number(n) => rows.iter().find(|r| r.version == n),
        }
        .ok_or_else(|| match version {
            VersionSpec::Latest => RegistryError::version_not_found("latest"),
            VersionSpec::Number(n) => RegistryError::version_not_found(n),
        })?
        .clone();
        if !self
            .referenced_by(subject, Some(target.version))
            .await?
            .is_empty()
        {
            return Err(RegistryError::reference_exists(format!(
                "One or more references exist to the schema {{subject={subject}, version={}}}",
                target.version
            )));
        }
        if permanent {
            if !target.deleted {
                return Err(RegistryError::version_not_soft_deleted(
                    subject,
                    target.version,
                ));
            }
            sqlx::query("DELETE FROM registry_versions WHERE subject = ? AND version = ?")
                .bind(subject)
                .bind(target.version)
                .execute(&self.pool)
                .await?;
        } else {
            if target.deleted {
                return Err(RegistryError::version_soft_deleted(subject, target.version));
            }
            sqlx::query(
                "UPDATE registry_versions SET deleted = 1 WHERE subject = ? AND version = ?",
            )
            .bind(subject)
            .bind(target.version)
            .execute(&self.pool)
            .await?;
        }
        Ok(target.version)
    }

    // ---- contracts ----------------------------------------------------------------------

    /// Binds `subject` to the table `table_id` (replacing an earlier binding).
    pub async fn bind(
        &self,
        table_id: &str,
        subject: &str,
        on_violation: crate::contract::OnViolation,
    ) -> Result<()> {
        self.version(subject, VersionSpec::Latest, false).await?;
        sqlx::query(
            "INSERT INTO contracts (table_id, subject, on_violation, bound_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (table_id) DO UPDATE SET subject = excluded.subject, \
             on_violation = excluded.on_violation, bound_at = excluded.bound_at",
        )
        .bind(table_id)
        .bind(subject)
        .bind(on_violation.as_str())
        .bind(Utc::now().to_rfc3339())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Removes a table's contract; whether it had one.
    pub async fn unbind(&self, table_id: &str) -> Result<bool> {
        let n = sqlx::query("DELETE FROM contracts WHERE table_id = ?")
            .bind(table_id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    /// The table's contract at its subject's latest live version, if one is bound.
    pub async fn contract(&self, table_id: &str) -> Result<Option<crate::contract::Contract>> {
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT subject, on_violation FROM contracts WHERE table_id = ?")
                .bind(table_id)
                .fetch_optional(&self.pool)
                .await?;
        let Some((subject, on_violation)) = row else {
            return Ok(None);
        };
        let latest = self
            .version(&subject, VersionSpec::Latest, false)
            .await
            .map_err(|e| {
                RegistryError::new(
                    e.status,
                    e.code,
                    format!(
                        "the table's contract names subject {subject}: {}",
                        e.message
                    ),
                )
            })?;
        let schema = self.parse_stored(&latest).await?;
        Ok(Some(crate::contract::Contract {
            subject,
            version: latest.version,
            id: latest.id,
            on_violation: crate::contract::OnViolation::parse(&on_violation)?,
            schema,
        }))
    }

    /// The parsed schema behind a global id (for wire-format messages).
    pub async fn parsed(&self, id: i64) -> Result<Parsed> {
        let s = self.schema(id).await?;
        let texts = self.reference_texts(&s.references, 0).await?;
        schema::parse(s.kind, &s.schema, &texts)
    }
}

/// Subject names: non-empty, printable, at most 255 bytes.
pub fn validate_subject(subject: &str) -> Result<()> {
    if subject.is_empty() || subject.len() > 255 || subject.chars().any(char::is_control) {
        return Err(RegistryError::new(
            422,
            42208,
            format!(
                "The specified subject '{subject}' is not valid: a subject is 1 to 255 printable characters"
            ),
        ));
    }
    Ok(())
}
