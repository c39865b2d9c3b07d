//! The embedded metastore: one SQLite file holding catalogs, schemas, the table registry, tags,
//! column comments, lineage and settings (the HMAC key).
//!
//! Delta logs are the truth for table contents; everything else Strata knows lives here
//! (DECISIONS.md section 6). A table row moves through three states:
//!
//! ```text
//!  begin_create_table          activate_table               mark_dropped
//! ───────────────────► creating ──────────────► active ─────────────────► dropped
//!                         │                       ▲                        │   │
//!                         │ abort_create_table    └──────── undrop ────────┘   │ delete_table_row
//!                         ▼                                                     ▼ (purge)
//!                      (deleted)                                             (deleted)
//! ```
//!
//! A name is held by at most one `creating` or `active` row (a partial unique index), while any
//! number of `dropped` rows may share it, so a dropped table can be recreated and the old one
//! still undropped once the new one is gone.
//!
//! The file runs in WAL mode with `synchronous=NORMAL`; every multi-statement write is a
//! `BEGIN IMMEDIATE` transaction, so concurrent writers (several processes on one file) queue on
//! SQLite's busy timeout instead of failing on a stale read snapshot. A lock held past the
//! timeout surfaces as [`Error::Conflict`].
//!
//! Schema changes are numbered migrations ([`MIGRATIONS`]), each applied in its own transaction
//! and recorded in `schema_migrations`; a file migrated by a newer Strata is refused.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use rand::RngCore;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};
use strata_core::{DEFAULT_CATALOG, Layer, SchemaKind, SchemaName, TableKind, TableName};

use crate::error::{Error, Result};

/// The metastore's schema migrations, oldest first: `(version, SQL)`. Versions only grow;
/// a released migration is never edited, a change is a new entry.
pub const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("metastore/migrations/0001_init.sql")),
    (2, include_str!("metastore/migrations/0002_ingest.sql")),
    (3, include_str!("metastore/migrations/0003_pipelines.sql")),
    (4, include_str!("metastore/migrations/0004_registry.sql")),
];

mod ledger;
pub use ledger::{BatchInfo, FileRange, IngestRun, LeaseHolder, LedgerFileRow, RunCounts};
mod runs;
pub use runs::{
    FLOW_RUN_STATUSES, FLOW_STOPPED_ERROR, FlowRun, PIPELINE_RUN_STATUSES, PIPELINE_RUN_TRIGGERS,
    PipelineRun, QUALITY_RULE_KINDS, QualityResult, RUN_STOPPED_ERROR,
};

const MAX_CONNECTIONS: u32 = 4;
const HMAC_KEY_SETTING: &str = "hmac_key";
const HMAC_KEY_LEN: usize = 32;
const MAX_TAG_LEN: usize = 64;
const LINEAGE_KINDS: [&str; 4] = ["ingest", "flow", "ctas", "view"];

/// The columns of `tables`, in the order [`table_from_row`] reads them.
macro_rules! table_columns {
    () => {
        "table_id, catalog, schema, name, kind, layer, location, delta_id, view_sql, state, \
         owner, comment, properties, created_at, updated_at, dropped_at"
    };
}

/// Where a table row is in its life (see the module diagram).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TableState {
    /// Registered before its first Delta commit; not visible to queries.
    Creating,
    Active,
    /// Unregistered; its files wait in the trash until purged.
    Dropped,
}

impl TableState {
    pub fn as_str(self) -> &'static str {
        match self {
            TableState::Creating => "creating",
            TableState::Active => "active",
            TableState::Dropped => "dropped",
        }
    }
}

impl fmt::Display for TableState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TableState {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "creating" => Ok(TableState::Creating),
            "active" => Ok(TableState::Active),
            "dropped" => Ok(TableState::Dropped),
            other => Err(Error::InvalidInput(format!(
                "unknown table state '{other}': expected creating, active or dropped"
            ))),
        }
    }
}

/// A schema row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaInfo {
    pub catalog: String,
    pub name: String,
    pub kind: SchemaKind,
    pub comment: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl SchemaInfo {
    /// The validated `catalog.schema` name.
    pub fn schema_name(&self) -> Result<SchemaName> {
        Ok(SchemaName::new(&self.catalog, &self.name)?)
    }
}

/// A table row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableInfo {
    /// A UUID v4 chosen by the metastore; stable across drop and undrop.
    pub table_id: String,
    pub name: TableName,
    pub kind: TableKind,
    /// The table's layer; `None` for quarantine tables.
    pub layer: Option<Layer>,
    /// The table's root URL; `None` for views.
    pub location: Option<String>,
    /// The Delta `metaData.id`, known once the first commit exists.
    pub delta_id: Option<String>,
    pub view_sql: Option<String>,
    pub state: TableState,
    pub owner: Option<String>,
    pub comment: Option<String>,
    pub properties: BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub dropped_at: Option<DateTime<Utc>>,
}

/// What [`Metastore::begin_create_table`] registers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTable {
    pub name: TableName,
    pub kind: TableKind,
    /// Must be the layer of the table's schema; `None` in the quarantine schema.
    pub layer: Option<Layer>,
    /// Required for managed and external tables, absent for views.
    pub location: Option<String>,
    /// Required for views, absent otherwise.
    pub view_sql: Option<String>,
    pub owner: Option<String>,
    pub comment: Option<String>,
    pub properties: BTreeMap<String, String>,
}

/// Changes for [`Metastore::update_table`]. `None` leaves a field alone; `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableUpdate {
    pub comment: Option<Option<String>>,
    pub owner: Option<Option<String>>,
    pub set_properties: BTreeMap<String, String>,
    pub unset_properties: Vec<String>,
}

/// A tag on a table (`column: None`) or on one of its columns.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Tag {
    pub column: Option<String>,
    pub tag: String,
}

/// One edge of the lineage graph: `source_table` feeds `target_table`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineageEdge {
    /// A full table name, or a source location for `ingest` edges.
    pub source_table: String,
    pub target_table: String,
    /// `ingest`, `flow`, `ctas` or `view`.
    pub kind: String,
    pub pipeline: Option<String>,
    pub flow: Option<String>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

/// A handle on one metastore file. Cloning shares the connection pool.
#[derive(Debug, Clone)]
pub struct Metastore {
    pool: SqlitePool,
    path: Arc<Path>,
}

impl Metastore {
    /// Creates a new metastore file at `db_path` with the built-in catalog `lakehouse`, its
    /// schemas `bronze`, `silver`, `gold`, `quarantine` and `system`, and a fresh 32-byte HMAC
    /// key. Fails with [`Error::AlreadyExists`] if the file exists.
    pub async fn create(db_path: &Path, busy_timeout: Duration) -> Result<Self> {
        // create_new makes the existence check atomic: of two racing creators, one wins.
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(db_path)
        {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(Error::AlreadyExists(format!(
                    "metastore {} already exists",
                    db_path.display()
                )));
            }
            Err(e) => {
                return Err(Error::Storage(format!(
                    "cannot create metastore {}: {e}",
                    db_path.display()
                )));
            }
        }
        match Self::initialize(db_path, busy_timeout).await {
            Ok(store) => {
                tracing::info!(path = %db_path.display(), "created metastore");
                Ok(store)
            }
            Err(e) => {
                // leave no half-made file behind, so the create can simply be retried
                for suffix in ["", "-wal", "-shm"] {
                    let mut file = OsString::from(db_path.as_os_str());
                    file.push(suffix);
                    let _ = std::fs::remove_file(PathBuf::from(file));
                }
                Err(e)
            }
        }
    }

    async fn initialize(db_path: &Path, busy_timeout: Duration) -> Result<Self> {
        let store = Self::connect(db_path, busy_timeout, true).await?;
        let result = async {
            store.migrate().await?;
            store.seed().await
        }
        .await;
        match result {
            Ok(()) => Ok(store),
            Err(e) => {
                store.pool.close().await;
                Err(e)
            }
        }
    }

    /// Opens an existing metastore and applies the migrations it lacks. Fails with
    /// [`Error::NotFound`] if the file is missing and [`Error::Refused`] if it is not a Strata
    /// metastore or was written by a newer Strata.
    pub async fn open(db_path: &Path, busy_timeout: Duration) -> Result<Self> {
        if !db_path.exists() {
            return Err(Error::NotFound(format!(
                "metastore {} does not exist",
                db_path.display()
            )));
        }
        let store = Self::connect(db_path, busy_timeout, false).await?;
        let result = async {
            let is_metastore: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master \
                 WHERE type = 'table' AND name = 'schema_migrations')",
            )
            .fetch_one(&store.pool)
            .await?;
            if !is_metastore {
                return Err(Error::Refused(format!(
                    "{} is not a Strata metastore: it has no schema_migrations table",
                    db_path.display()
                )));
            }
            store.migrate().await
        }
        .await;
        match result {
            Ok(()) => Ok(store),
            Err(e) => {
                store.pool.close().await;
                Err(e)
            }
        }
    }

    async fn connect(db_path: &Path, busy_timeout: Duration, create: bool) -> Result<Self> {
        let options = SqliteConnectOptions::new()
            .filename(db_path)
            .create_if_missing(create)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(busy_timeout);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await
            .map_err(|e| match Error::from(e) {
                Error::Storage(msg) => Error::Storage(format!(
                    "cannot open metastore {}: {msg}",
                    db_path.display()
                )),
                other => other,
            })?;
        Ok(Metastore {
            pool,
            path: Arc::from(db_path),
        })
    }

    /// Applies the migrations this file lacks, each in its own transaction.
    async fn migrate(&self) -> Result<()> {
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS schema_migrations (\
                version INTEGER PRIMARY KEY, \
                applied_at TEXT NOT NULL)",
        )
        .execute(&self.pool)
        .await?;
        let newest_known = MIGRATIONS.last().map_or(0, |(v, _)| *v);
        let applied = self.schema_version().await?;
        if applied > newest_known {
            return Err(Error::Refused(format!(
                "metastore {} has schema version {applied}, newer than this Strata binary \
                 understands (up to {newest_known}); upgrade Strata to open it",
                self.path.display()
            )));
        }
        for &(version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > applied) {
            let mut tx = self.write_tx().await?;
            // another process may have applied it while we waited for the write lock
            let done: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = ?)",
            )
            .bind(version)
            .fetch_one(&mut *tx)
            .await?;
            if done {
                continue;
            }
            sqlx::raw_sql(sql)
                .execute(&mut *tx)
                .await
                .map_err(|e| match Error::from(e) {
                    Error::Storage(msg) => Error::Storage(format!(
                        "metastore migration {version} failed on {}: {msg}",
                        self.path.display()
                    )),
                    other => other,
                })?;
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)")
                .bind(version)
                .bind(fmt_ts(now()))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            tracing::info!(path = %self.path.display(), version, "applied metastore migration");
        }
        Ok(())
    }

    /// Writes what a new metastore starts with: the HMAC key, the default catalog, its schemas.
    async fn seed(&self) -> Result<()> {
        let mut key = [0u8; HMAC_KEY_LEN];
        rand::rng().fill_bytes(&mut key);
        let created_at = fmt_ts(now());
        let mut tx = self.write_tx().await?;
        sqlx::query("INSERT INTO settings (key, value) VALUES (?, ?)")
            .bind(HMAC_KEY_SETTING)
            .bind(hex::encode(key))
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO catalogs (name, created_at) VALUES (?, ?)")
            .bind(DEFAULT_CATALOG)
            .bind(&created_at)
            .execute(&mut *tx)
            .await?;
        let schemas = [
            ("bronze", SchemaKind::Layer(Layer::Bronze)),
            ("silver", SchemaKind::Layer(Layer::Silver)),
            ("gold", SchemaKind::Layer(Layer::Gold)),
            ("quarantine", SchemaKind::Quarantine),
            ("system", SchemaKind::System),
        ];
        for (name, kind) in schemas {
            sqlx::query(
                "INSERT INTO schemas (catalog, name, kind, comment, created_at) \
                 VALUES (?, ?, ?, NULL, ?)",
            )
            .bind(DEFAULT_CATALOG)
            .bind(name)
            .bind(kind.as_str())
            .bind(&created_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A write transaction that takes SQLite's write lock up front, so it waits on the busy
    /// timeout rather than failing later when its read snapshot turns out stale.
    async fn write_tx(&self) -> Result<Transaction<'static, Sqlite>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// The metastore file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection pool, for other parts of the catalog that keep rows in this file.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Closes every connection; later calls on any clone fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The newest migration applied to this file (0 if none).
    pub async fn schema_version(&self) -> Result<i64> {
        let version: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM schema_migrations")
            .fetch_one(&self.pool)
            .await?;
        Ok(version.unwrap_or(0))
    }

    /// The lakehouse's 32-byte HMAC key.
    pub async fn secret_key(&self) -> Result<Vec<u8>> {
        let value: Option<String> = sqlx::query_scalar("SELECT value FROM settings WHERE key = ?")
            .bind(HMAC_KEY_SETTING)
            .fetch_optional(&self.pool)
            .await?;
        let value = value.ok_or_else(|| {
            Error::Storage(format!(
                "metastore {} has no HMAC key (setting {HMAC_KEY_SETTING}); restore it from a \
                 backup",
                self.path.display()
            ))
        })?;
        hex::decode(&value).map_err(|e| {
            Error::Storage(format!(
                "metastore {} holds a malformed HMAC key (setting {HMAC_KEY_SETTING}): {e}",
                self.path.display()
            ))
        })
    }

    /// Writes a consistent copy of the metastore to `dest` (`VACUUM INTO`), which must not exist.
    pub async fn backup(&self, dest: &Path) -> Result<()> {
        if dest.symlink_metadata().is_ok() {
            return Err(Error::AlreadyExists(format!(
                "backup destination {} already exists",
                dest.display()
            )));
        }
        let dest_text = dest.to_str().ok_or_else(|| {
            Error::InvalidInput(format!(
                "backup destination {} is not valid UTF-8",
                dest.display()
            ))
        })?;
        sqlx::query("VACUUM INTO ?")
            .bind(dest_text)
            .execute(&self.pool)
            .await
            .map_err(|e| match Error::from(e) {
                Error::Storage(msg) => Error::Storage(format!(
                    "cannot back up metastore {} to {}: {msg}",
                    self.path.display(),
                    dest.display()
                )),
                other => other,
            })?;
        tracing::info!(path = %self.path.display(), dest = %dest.display(), "backed up metastore");
        Ok(())
    }

    // ---- schemas ------------------------------------------------------------------------

    /// Creates a schema in an existing catalog.
    pub async fn create_schema(
        &self,
        name: &SchemaName,
        kind: SchemaKind,
        comment: Option<&str>,
    ) -> Result<SchemaInfo> {
        let mut tx = self.write_tx().await?;
        let catalog_exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM catalogs WHERE name = ?)")
                .bind(name.catalog.as_str())
                .fetch_one(&mut *tx)
                .await?;
        if !catalog_exists {
            return Err(Error::NotFound(format!(
                "catalog {} does not exist",
                name.catalog
            )));
        }
        if fetch_schema(&mut tx, name).await?.is_some() {
            return Err(Error::AlreadyExists(format!(
                "schema {name} already exists"
            )));
        }
        sqlx::query(
            "INSERT INTO schemas (catalog, name, kind, comment, created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(name.catalog.as_str())
        .bind(name.schema.as_str())
        .bind(kind.as_str())
        .bind(comment)
        .bind(fmt_ts(now()))
        .execute(&mut *tx)
        .await?;
        let info = fetch_schema(&mut tx, name)
            .await?
            .ok_or_else(|| Error::Storage(format!("schema {name} vanished while created")))?;
        tx.commit().await?;
        Ok(info)
    }

    pub async fn get_schema(&self, name: &SchemaName) -> Result<Option<SchemaInfo>> {
        let mut conn = self.pool.acquire().await?;
        fetch_schema(&mut conn, name).await
    }

    /// Every schema, ordered by catalog and name.
    pub async fn list_schemas(&self) -> Result<Vec<SchemaInfo>> {
        let rows = sqlx::query(
            "SELECT catalog, name, kind, comment, created_at FROM schemas ORDER BY catalog, name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(schema_from_row).collect()
    }

    // ---- tables -------------------------------------------------------------------------

    /// Registers a table in state `creating`, before its first Delta commit.
    pub async fn begin_create_table(&self, new: NewTable) -> Result<TableInfo> {
        let name = &new.name;
        match new.kind {
            TableKind::View => {
                if new.view_sql.as_deref().is_none_or(|s| s.trim().is_empty()) {
                    return Err(Error::InvalidInput(format!(
                        "view {name} needs its SQL text"
                    )));
                }
                if new.location.is_some() {
                    return Err(Error::InvalidInput(format!(
                        "view {name} cannot have a location"
                    )));
                }
            }
            TableKind::Managed | TableKind::External => {
                if new.location.as_deref().is_none_or(|s| s.trim().is_empty()) {
                    return Err(Error::InvalidInput(format!(
                        "{} table {name} needs a location",
                        new.kind
                    )));
                }
                if new.view_sql.is_some() {
                    return Err(Error::InvalidInput(format!(
                        "{} table {name} cannot have view SQL",
                        new.kind
                    )));
                }
            }
        }
        let properties = properties_json(&new.properties)?;

        let mut tx = self.write_tx().await?;
        let schema_name = name.schema_name();
        let schema = fetch_schema(&mut tx, &schema_name)
            .await?
            .ok_or_else(|| Error::NotFound(format!("schema {schema_name} does not exist")))?;
        check_layer(name, schema.kind, new.layer)?;
        let live: Option<String> = sqlx::query_scalar(
            "SELECT state FROM tables \
             WHERE catalog = ? AND schema = ? AND name = ? AND state <> 'dropped'",
        )
        .bind(name.catalog.as_str())
        .bind(name.schema.as_str())
        .bind(name.table.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(state) = live {
            return Err(already_exists(name, &state));
        }

        let table_id = uuid::Uuid::new_v4().to_string();
        let ts = fmt_ts(now());
        sqlx::query(
            "INSERT INTO tables (table_id, catalog, schema, name, kind, layer, location, \
             delta_id, view_sql, state, owner, comment, properties, created_at, updated_at, \
             dropped_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, 'creating', ?, ?, ?, ?, ?, NULL)",
        )
        .bind(&table_id)
        .bind(name.catalog.as_str())
        .bind(name.schema.as_str())
        .bind(name.table.as_str())
        .bind(new.kind.as_str())
        .bind(new.layer.map(Layer::as_str))
        .bind(&new.location)
        .bind(&new.view_sql)
        .bind(&new.owner)
        .bind(&new.comment)
        .bind(properties)
        .bind(&ts)
        .bind(&ts)
        .execute(&mut *tx)
        .await
        .map_err(|e| unique_or(e, || already_exists(name, "creating")))?;
        let info = fetch_table_by_id(&mut tx, &table_id)
            .await?
            .ok_or_else(|| Error::Storage(format!("table {name} vanished while created")))?;
        tx.commit().await?;
        tracing::debug!(table = %name, table_id, "registered table as creating");
        Ok(info)
    }

    /// Moves a `creating` table to `active`, recording its Delta `metaData.id` when given.
    pub async fn activate_table(&self, table_id: &str, delta_id: Option<&str>) -> Result<()> {
        let done = sqlx::query(
            "UPDATE tables SET state = 'active', delta_id = COALESCE(?, delta_id), updated_at = ? \
             WHERE table_id = ? AND state = 'creating'",
        )
        .bind(delta_id)
        .bind(fmt_ts(now()))
        .bind(table_id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(self.wrong_state(table_id, "activated").await);
        }
        Ok(())
    }

    /// Deletes a table row still in state `creating` (its creation failed).
    pub async fn abort_create_table(&self, table_id: &str) -> Result<()> {
        let done = sqlx::query("DELETE FROM tables WHERE table_id = ? AND state = 'creating'")
            .bind(table_id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(self.wrong_state(table_id, "aborted").await);
        }
        Ok(())
    }

    /// The error for a state transition that matched no row: the table is missing, or in
    /// another state than the transition needs.
    async fn wrong_state(&self, table_id: &str, verb: &str) -> Error {
        match self.get_table_by_id(table_id).await {
            Ok(None) => not_found_id(table_id),
            Ok(Some(t)) => Error::Conflict(format!(
                "table {} is {}, so it cannot be {verb}",
                t.name, t.state
            )),
            Err(e) => e,
        }
    }

    /// The active table with this name.
    pub async fn get_table(&self, name: &TableName) -> Result<Option<TableInfo>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            table_columns!(),
            " FROM tables WHERE catalog = ? AND schema = ? AND name = ? AND state = 'active'"
        ))
        .bind(name.catalog.as_str())
        .bind(name.schema.as_str())
        .bind(name.table.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(table_from_row).transpose()
    }

    /// The table with this id, in any state.
    pub async fn get_table_by_id(&self, table_id: &str) -> Result<Option<TableInfo>> {
        let mut conn = self.pool.acquire().await?;
        fetch_table_by_id(&mut conn, table_id).await
    }

    /// Active tables, optionally of one schema and/or one layer, ordered by full name.
    pub async fn list_tables(
        &self,
        schema: Option<&SchemaName>,
        layer: Option<Layer>,
    ) -> Result<Vec<TableInfo>> {
        let catalog = schema.map(|s| s.catalog.as_str());
        let schema = schema.map(|s| s.schema.as_str());
        let layer = layer.map(Layer::as_str);
        let rows = sqlx::query(concat!(
            "SELECT ",
            table_columns!(),
            " FROM tables WHERE state = 'active' \
              AND (? IS NULL OR (catalog = ? AND schema = ?)) \
              AND (? IS NULL OR layer = ?) \
             ORDER BY catalog, schema, name"
        ))
        .bind(catalog)
        .bind(catalog)
        .bind(schema)
        .bind(layer)
        .bind(layer)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(table_from_row).collect()
    }

    /// Every table in `state`, ordered by full name, then creation time.
    pub async fn list_tables_in_state(&self, state: TableState) -> Result<Vec<TableInfo>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            table_columns!(),
            " FROM tables WHERE state = ? ORDER BY catalog, schema, name, created_at"
        ))
        .bind(state.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(table_from_row).collect()
    }

    /// Changes a live table's comment, owner or properties, and bumps `updated_at`.
    pub async fn update_table(&self, table_id: &str, update: TableUpdate) -> Result<TableInfo> {
        if let Some(key) = update
            .unset_properties
            .iter()
            .find(|k| update.set_properties.contains_key(*k))
        {
            return Err(Error::InvalidInput(format!(
                "property '{key}' is both set and unset"
            )));
        }
        let mut tx = self.write_tx().await?;
        let mut table = fetch_table_by_id(&mut tx, table_id)
            .await?
            .ok_or_else(|| not_found_id(table_id))?;
        if table.state == TableState::Dropped {
            return Err(Error::NotFound(format!(
                "table {} (id {table_id}) is dropped",
                table.name
            )));
        }
        if let Some(comment) = update.comment {
            table.comment = comment;
        }
        if let Some(owner) = update.owner {
            table.owner = owner;
        }
        table.properties.extend(update.set_properties);
        for key in &update.unset_properties {
            table.properties.remove(key);
        }
        sqlx::query(
            "UPDATE tables SET comment = ?, owner = ?, properties = ?, updated_at = ? \
             WHERE table_id = ?",
        )
        .bind(&table.comment)
        .bind(&table.owner)
        .bind(properties_json(&table.properties)?)
        .bind(fmt_ts(now()))
        .bind(table_id)
        .execute(&mut *tx)
        .await?;
        let table = fetch_table_by_id(&mut tx, table_id)
            .await?
            .ok_or_else(|| not_found_id(table_id))?;
        tx.commit().await?;
        Ok(table)
    }

    /// Records the Delta `metaData.id` found in the table's log (doctor repair).
    pub async fn set_delta_id(&self, table_id: &str, delta_id: &str) -> Result<()> {
        self.set_column(
            table_id,
            "UPDATE tables SET delta_id = ?, updated_at = ? WHERE table_id = ?",
            delta_id,
        )
        .await
    }

    /// Records where the table's files are (doctor repair).
    pub async fn set_location(&self, table_id: &str, location: &str) -> Result<()> {
        if location.trim().is_empty() {
            return Err(Error::InvalidInput(
                "a table location cannot be empty".into(),
            ));
        }
        self.set_column(
            table_id,
            "UPDATE tables SET location = ?, updated_at = ? WHERE table_id = ?",
            location,
        )
        .await
    }

    /// Bumps `updated_at` of a live table whose Delta contents changed outside the metastore
    /// (a restore, say).
    pub async fn touch_table(&self, table_id: &str) -> Result<()> {
        let done = sqlx::query(
            "UPDATE tables SET updated_at = ? WHERE table_id = ? AND state <> 'dropped'",
        )
        .bind(fmt_ts(now()))
        .bind(table_id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(self.wrong_state(table_id, "touched").await);
        }
        Ok(())
    }

    async fn set_column(&self, table_id: &str, sql: &'static str, value: &str) -> Result<()> {
        let done = sqlx::query(sql)
            .bind(value)
            .bind(fmt_ts(now()))
            .bind(table_id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(not_found_id(table_id));
        }
        Ok(())
    }

    /// Moves an active table to `dropped`; its name becomes free.
    pub async fn mark_dropped(&self, table_id: &str) -> Result<()> {
        let ts = fmt_ts(now());
        let done = sqlx::query(
            "UPDATE tables SET state = 'dropped', dropped_at = ?, updated_at = ? \
             WHERE table_id = ? AND state = 'active'",
        )
        .bind(&ts)
        .bind(&ts)
        .bind(table_id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(self.wrong_state(table_id, "dropped").await);
        }
        Ok(())
    }

    /// The most recently dropped table with this name.
    pub async fn find_dropped(&self, name: &TableName) -> Result<Option<TableInfo>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            table_columns!(),
            " FROM tables WHERE catalog = ? AND schema = ? AND name = ? AND state = 'dropped' \
             ORDER BY dropped_at DESC LIMIT 1"
        ))
        .bind(name.catalog.as_str())
        .bind(name.schema.as_str())
        .bind(name.table.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(table_from_row).transpose()
    }

    /// Makes a dropped table active again, unless a live table has taken its name.
    pub async fn undrop(&self, table_id: &str) -> Result<TableInfo> {
        let mut tx = self.write_tx().await?;
        let table = fetch_table_by_id(&mut tx, table_id)
            .await?
            .ok_or_else(|| not_found_id(table_id))?;
        if table.state != TableState::Dropped {
            return Err(Error::Conflict(format!(
                "table {} is {}, not dropped, so it cannot be undropped",
                table.name, table.state
            )));
        }
        let name = &table.name;
        let taken = || {
            Error::AlreadyExists(format!(
                "cannot undrop table {name}: another table {name} exists now; drop it first"
            ))
        };
        let live: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM tables \
             WHERE catalog = ? AND schema = ? AND name = ? AND state <> 'dropped')",
        )
        .bind(name.catalog.as_str())
        .bind(name.schema.as_str())
        .bind(name.table.as_str())
        .fetch_one(&mut *tx)
        .await?;
        if live {
            return Err(taken());
        }
        sqlx::query(
            "UPDATE tables SET state = 'active', dropped_at = NULL, updated_at = ? \
             WHERE table_id = ?",
        )
        .bind(fmt_ts(now()))
        .bind(table_id)
        .execute(&mut *tx)
        .await
        .map_err(|e| unique_or(e, taken))?;
        let table = fetch_table_by_id(&mut tx, table_id)
            .await?
            .ok_or_else(|| not_found_id(table_id))?;
        tx.commit().await?;
        Ok(table)
    }

    /// Deletes a table row in any state, with its tags and column comments (purge).
    pub async fn delete_table_row(&self, table_id: &str) -> Result<()> {
        let mut tx = self.write_tx().await?;
        for sql in [
            "DELETE FROM tags WHERE table_id = ?",
            "DELETE FROM column_comments WHERE table_id = ?",
        ] {
            sqlx::query(sql).bind(table_id).execute(&mut *tx).await?;
        }
        let done = sqlx::query("DELETE FROM tables WHERE table_id = ?")
            .bind(table_id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(not_found_id(table_id));
        }
        tx.commit().await?;
        Ok(())
    }

    // ---- tags and column comments -------------------------------------------------------

    /// Tags a live table (`column: None`) or one of its columns. Tags fold to lower case;
    /// adding a tag twice is a no-op.
    pub async fn add_tag(&self, table_id: &str, column: Option<&str>, tag: &str) -> Result<()> {
        let tag = normalize_tag(tag)?;
        let column = column_key(column)?;
        let mut tx = self.write_tx().await?;
        require_live(&mut tx, table_id).await?;
        sqlx::query(
            "INSERT INTO tags (table_id, column_name, tag, created_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (table_id, column_name, tag) DO NOTHING",
        )
        .bind(table_id)
        .bind(column)
        .bind(&tag)
        .bind(fmt_ts(now()))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes a tag; `false` if it was not there.
    pub async fn remove_tag(
        &self,
        table_id: &str,
        column: Option<&str>,
        tag: &str,
    ) -> Result<bool> {
        let tag = normalize_tag(tag)?;
        let column = column_key(column)?;
        let done =
            sqlx::query("DELETE FROM tags WHERE table_id = ? AND column_name = ? AND tag = ?")
                .bind(table_id)
                .bind(column)
                .bind(&tag)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The table's tags, table-level first, then by column and tag.
    pub async fn tags(&self, table_id: &str) -> Result<Vec<Tag>> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT column_name, tag FROM tags WHERE table_id = ? ORDER BY column_name, tag",
        )
        .bind(table_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(column, tag)| Tag {
                column: (!column.is_empty()).then_some(column),
                tag,
            })
            .collect())
    }

    /// Sets (`Some`) or clears (`None`) the comment of one column of a live table.
    pub async fn set_column_comment(
        &self,
        table_id: &str,
        column: &str,
        comment: Option<&str>,
    ) -> Result<()> {
        let column = column_key(Some(column))?;
        let mut tx = self.write_tx().await?;
        require_live(&mut tx, table_id).await?;
        match comment {
            Some(comment) => {
                sqlx::query(
                    "INSERT INTO column_comments (table_id, column_name, comment) VALUES (?, ?, ?) \
                     ON CONFLICT (table_id, column_name) DO UPDATE SET comment = excluded.comment",
                )
                .bind(table_id)
                .bind(column)
                .bind(comment)
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM column_comments WHERE table_id = ? AND column_name = ?")
                    .bind(table_id)
                    .bind(column)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Column name to comment.
    pub async fn column_comments(&self, table_id: &str) -> Result<BTreeMap<String, String>> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT column_name, comment FROM column_comments WHERE table_id = ?")
                .bind(table_id)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().collect())
    }

    // ---- lineage ------------------------------------------------------------------------

    /// Records that `source` feeds `target`: a new edge gets `first_seen`, a known one only a
    /// new `last_seen`. `kind` is `ingest`, `flow`, `ctas` or `view`.
    pub async fn record_lineage(
        &self,
        source: &str,
        target: &str,
        kind: &str,
        pipeline: Option<&str>,
        flow: Option<&str>,
    ) -> Result<()> {
        if !LINEAGE_KINDS.contains(&kind) {
            return Err(Error::InvalidInput(format!(
                "unknown lineage kind '{kind}': expected ingest, flow, ctas or view"
            )));
        }
        if source.is_empty() || target.is_empty() {
            return Err(Error::InvalidInput(
                "a lineage edge needs both a source and a target".into(),
            ));
        }
        let ts = fmt_ts(now());
        sqlx::query(
            "INSERT INTO lineage \
             (source_table, target_table, kind, pipeline, flow, first_seen, last_seen) \
             VALUES (?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (source_table, target_table, kind, pipeline, flow) \
             DO UPDATE SET last_seen = excluded.last_seen",
        )
        .bind(source)
        .bind(target)
        .bind(kind)
        .bind(pipeline.unwrap_or(""))
        .bind(flow.unwrap_or(""))
        .bind(&ts)
        .bind(&ts)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every lineage edge, ordered by source, target, kind, pipeline and flow.
    pub async fn lineage(&self) -> Result<Vec<LineageEdge>> {
        let rows = sqlx::query(
            "SELECT source_table, target_table, kind, pipeline, flow, first_seen, last_seen \
             FROM lineage ORDER BY source_table, target_table, kind, pipeline, flow",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let pipeline: String = row.try_get("pipeline")?;
                let flow: String = row.try_get("flow")?;
                Ok(LineageEdge {
                    source_table: row.try_get("source_table")?,
                    target_table: row.try_get("target_table")?,
                    kind: row.try_get("kind")?,
                    pipeline: (!pipeline.is_empty()).then_some(pipeline),
                    flow: (!flow.is_empty()).then_some(flow),
                    first_seen: parse_ts(&row.try_get::<String, _>("first_seen")?)?,
                    last_seen: parse_ts(&row.try_get::<String, _>("last_seen")?)?,
                })
            })
            .collect()
    }
}

// ---- helpers ------------------------------------------------------------------------------

/// Now, truncated to what the metastore stores, so a value read back equals the one written.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// RFC 3339, UTC, microseconds: `2024-05-01T12:00:00.000000Z`. Fixed width, so text order is
/// time order.
fn fmt_ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn parse_ts(s: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| Error::Storage(format!("metastore holds a malformed timestamp '{s}': {e}")))
}

fn parse_opt_ts(s: Option<String>) -> Result<Option<DateTime<Utc>>> {
    s.as_deref().map(parse_ts).transpose()
}

fn properties_json(properties: &BTreeMap<String, String>) -> Result<String> {
    serde_json::to_string(properties)
        .map_err(|e| Error::InvalidInput(format!("table properties cannot be stored: {e}")))
}

fn not_found_id(table_id: &str) -> Error {
    Error::NotFound(format!("no table has id {table_id}"))
}

fn already_exists(name: &TableName, state: &str) -> Error {
    if state == TableState::Creating.as_str() {
        Error::AlreadyExists(format!("table {name} already exists (it is being created)"))
    } else {
        Error::AlreadyExists(format!("table {name} already exists"))
    }
}

/// Maps a unique-constraint violation (a concurrent writer won the name) to `err()`.
fn unique_or(e: sqlx::Error, err: impl FnOnce() -> Error) -> Error {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => err(),
        _ => Error::from(e),
    }
}

/// A table in a layer schema takes that layer; one in the quarantine schema has none; the
/// system schema holds no registered tables.
fn check_layer(name: &TableName, schema_kind: SchemaKind, layer: Option<Layer>) -> Result<()> {
    let schema = name.schema_name();
    match (schema_kind, layer) {
        (SchemaKind::System, _) => Err(Error::Refused(format!(
            "schema {schema} is the read-only system schema; table {name} cannot be created in it"
        ))),
        (SchemaKind::Quarantine, None) => Ok(()),
        (SchemaKind::Quarantine, Some(l)) => Err(Error::InvalidInput(format!(
            "table {name} is in the quarantine schema {schema}, so it has no layer (got {l})"
        ))),
        (SchemaKind::Layer(expected), Some(l)) if l == expected => Ok(()),
        (SchemaKind::Layer(expected), got) => Err(Error::InvalidInput(format!(
            "table {name} is in schema {schema} of layer {expected}, so its layer must be \
             {expected} (got {})",
            got.map_or("none", Layer::as_str)
        ))),
    }
}

/// Folds a tag to lower case and checks it is 1-64 characters of `[a-z0-9_:-]`.
fn normalize_tag(tag: &str) -> Result<String> {
    let folded = tag.to_ascii_lowercase();
    let valid = (1..=MAX_TAG_LEN).contains(&folded.len())
        && folded
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_:-".contains(&b));
    if valid {
        Ok(folded)
    } else {
        Err(Error::InvalidInput(format!(
            "invalid tag '{tag}': a tag is 1 to {MAX_TAG_LEN} characters of a-z, 0-9, '_', ':' \
             and '-'"
        )))
    }
}

/// The `column_name` key of a tag or comment row: '' stands for the table itself.
fn column_key(column: Option<&str>) -> Result<&str> {
    match column {
        None => Ok(""),
        Some("") => Err(Error::InvalidInput("a column name cannot be empty".into())),
        Some(c) => Ok(c),
    }
}

async fn require_live(conn: &mut SqliteConnection, table_id: &str) -> Result<()> {
    let state: Option<String> = sqlx::query_scalar("SELECT state FROM tables WHERE table_id = ?")
        .bind(table_id)
        .fetch_optional(&mut *conn)
        .await?;
    match state.as_deref() {
        None => Err(not_found_id(table_id)),
        Some("dropped") => Err(Error::NotFound(format!(
            "table with id {table_id} is dropped"
        ))),
        Some(_) => Ok(()),
    }
}

async fn fetch_schema(
    conn: &mut SqliteConnection,
    name: &SchemaName,
) -> Result<Option<SchemaInfo>> {
    let row = sqlx::query(
        "SELECT catalog, name, kind, comment, created_at FROM schemas \
         WHERE catalog = ? AND name = ?",
    )
    .bind(name.catalog.as_str())
    .bind(name.schema.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(schema_from_row).transpose()
}

async fn fetch_table_by_id(
    conn: &mut SqliteConnection,
    table_id: &str,
) -> Result<Option<TableInfo>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        table_columns!(),
        " FROM tables WHERE table_id = ?"
    ))
    .bind(table_id)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(table_from_row).transpose()
}

fn schema_from_row(row: &SqliteRow) -> Result<SchemaInfo> {
    let kind: String = row.try_get("kind")?;
    Ok(SchemaInfo {
        catalog: row.try_get("catalog")?,
        name: row.try_get("name")?,
        kind: kind.parse()?,
        comment: row.try_get("comment")?,
        created_at: parse_ts(&row.try_get::<String, _>("created_at")?)?,
    })
}

fn table_from_row(row: &SqliteRow) -> Result<TableInfo> {
    let catalog: String = row.try_get("catalog")?;
    let schema: String = row.try_get("schema")?;
    let name: String = row.try_get("name")?;
    let kind: String = row.try_get("kind")?;
    let layer: Option<String> = row.try_get("layer")?;
    let state: String = row.try_get("state")?;
    let properties: String = row.try_get("properties")?;
    let properties = serde_json::from_str(&properties).map_err(|e| {
        Error::Storage(format!(
            "table {catalog}.{schema}.{name} has malformed properties in the metastore: {e}"
        ))
    })?;
    Ok(TableInfo {
        table_id: row.try_get("table_id")?,
        name: TableName::new(&catalog, &schema, &name)?,
        kind: kind.parse()?,
        layer: layer.as_deref().map(str::parse).transpose()?,
        location: row.try_get("location")?,
        delta_id: row.try_get("delta_id")?,
        view_sql: row.try_get("view_sql")?,
        state: state.parse()?,
        owner: row.try_get("owner")?,
        comment: row.try_get("comment")?,
        properties,
        created_at: parse_ts(&row.try_get::<String, _>("created_at")?)?,
        updated_at: parse_ts(&row.try_get::<String, _>("updated_at")?)?,
        dropped_at: parse_opt_ts(row.try_get("dropped_at")?)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_ordered() {
        assert!(MIGRATIONS.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(MIGRATIONS[0].0, 1);
    }

    #[test]
    fn tags_fold_and_validate() {
        assert_eq!(normalize_tag("PII:Email").unwrap(), "pii:email");
        assert_eq!(normalize_tag("a-b_c9").unwrap(), "a-b_c9");
        for bad in ["", "has space", "é", "x.y", &"a".repeat(65)] {
            assert!(normalize_tag(bad).is_err(), "{bad:?} accepted");
        }
        assert!(normalize_tag(&"a".repeat(64)).is_ok());
    }

    #[test]
    fn timestamps_round_trip_and_sort() {
        let t = now();
        let text = fmt_ts(t);
        assert_eq!(parse_ts(&text).unwrap(), t);
        assert!(text.ends_with('Z') && text.len() == "2024-05-01T12:00:00.000000Z".len());
        assert!(fmt_ts(t) < fmt_ts(t + chrono::Duration::microseconds(1)));
    }
}
