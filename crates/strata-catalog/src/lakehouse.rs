//! A lakehouse: a root folder, its `strata.toml`, its metastore and its Delta tables.
//!
//! Creating a managed table brackets one Delta commit with metastore rows:
//!
//! ```text
//!  metastore: row state=creating ──> Delta: v0 (schema + layer properties) ──> row state=active
//!        (a crash in between leaves a `creating` row; `doctor --repair` settles it by the log)
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use deltalake::DeltaTable;
use object_store::ObjectStoreExt;
use strata_core::config::CONFIG_FILE;
use strata_core::{Config, Layer, SchemaKind, SchemaName, TableKind, TableName};
use strata_table::{CreateSpec, TableRole};
use url::Url;

use crate::error::{Error, Result};
use crate::metastore::{Metastore, NewTable, SchemaInfo, TableInfo};

/// The folder under the root that holds Strata's own files.
pub const STRATA_DIR: &str = "_strata";
/// The metastore file under [`STRATA_DIR`].
pub const METASTORE_FILE: &str = "metastore.db";
/// The environment variable naming the lakehouse folder.
pub const LAKEHOUSE_ENV: &str = "STRATA_LAKEHOUSE";

/// An open lakehouse.
#[derive(Clone)]
pub struct Lakehouse {
    root: PathBuf,
    config: Config,
    metastore: Metastore,
    /// Delta snapshots kept between opens, by table id and location, once
    /// [`Lakehouse::keep_snapshots`] has turned keeping on.
    snapshots: Option<Arc<Mutex<KeptSnapshots>>>,
}

/// Delta snapshots by (table id, location).
type KeptSnapshots = HashMap<(String, String), DeltaTable>;

/// What `create_table` needs.
#[derive(Debug, Clone, Default)]
pub struct CreateTable {
    pub columns: Vec<arrow::datatypes::Field>,
    pub column_comments: BTreeMap<String, String>,
    pub partition_by: Vec<String>,
    pub comment: Option<String>,
    pub owner: Option<String>,
    /// Properties: `delta.*` go into the Delta log; all are kept in the metastore.
    pub properties: BTreeMap<String, String>,
}

fn is_lakehouse(dir: &Path) -> bool {
    dir.join(CONFIG_FILE).is_file() && dir.join(STRATA_DIR).join(METASTORE_FILE).is_file()
}

impl Lakehouse {
    /// Finds the lakehouse folder: `explicit` (`--lakehouse`), else `STRATA_LAKEHOUSE`, else the
    /// current folder and its parents.
    pub fn discover(explicit: Option<&Path>) -> Result<PathBuf> {
        let named = explicit
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os(LAKEHOUSE_ENV).map(PathBuf::from));
        if let Some(dir) = named {
            if !dir.exists() {
                return Err(Error::NotFound(format!(
                    "lakehouse folder {} does not exist; create one with `strata init {}`",
                    dir.display(),
                    dir.display()
                )));
            }
            if !is_lakehouse(&dir) {
                return Err(Error::NotFound(format!(
                    "{} is not a Strata lakehouse (no {CONFIG_FILE} and {STRATA_DIR}/{METASTORE_FILE}); \
                     create one with `strata init {}`",
                    dir.display(),
                    dir.display()
                )));
            }
            return Ok(dir);
        }
        let cwd = std::env::current_dir()
            .map_err(|e| Error::Storage(format!("cannot read the current folder: {e}")))?;
        for dir in cwd.ancestors() {
            if is_lakehouse(dir) {
                return Ok(dir.to_path_buf());
            }
        }
        Err(Error::NotFound(format!(
            "no Strata lakehouse here: {} and its parents have no {CONFIG_FILE}; pass \
             --lakehouse DIR, set {LAKEHOUSE_ENV}, or create one with `strata init DIR`",
            cwd.display()
        )))
    }

    /// Creates a lakehouse in `dir` (made if missing): `strata.toml`, the metastore with its
    /// secret key, the catalog `lakehouse` and the schemas bronze, silver, gold, quarantine
    /// and system.
    pub async fn init(dir: &Path) -> Result<Self> {
        if dir.join(CONFIG_FILE).exists() || dir.join(STRATA_DIR).join(METASTORE_FILE).exists() {
            return Err(Error::AlreadyExists(format!(
                "{} is already a Strata lakehouse",
                dir.display()
            )));
        }
        std::fs::create_dir_all(dir.join(STRATA_DIR)).map_err(|e| {
            Error::Storage(format!(
                "cannot create lakehouse folder {}: {e}",
                dir.display()
            ))
        })?;
        let root = canonical(dir)?;
        let config = Config::default();
        let metastore = Metastore::create(
            &root.join(STRATA_DIR).join(METASTORE_FILE),
            Duration::from_millis(config.metastore.busy_timeout_ms),
        )
        .await?;
        std::fs::write(root.join(CONFIG_FILE), Config::default_toml()).map_err(|e| {
            Error::Storage(format!(
                "cannot write {}: {e}",
                root.join(CONFIG_FILE).display()
            ))
        })?;
        Ok(Lakehouse {
            root,
            config,
            metastore,
            snapshots: None,
        })
    }

    /// Opens the lakehouse in `dir`.
    pub async fn open(dir: &Path) -> Result<Self> {
        if !is_lakehouse(dir) {
            return Err(Error::NotFound(format!(
                "{} is not a Strata lakehouse; create one with `strata init {}`",
                dir.display(),
                dir.display()
            )));
        }
        let root = canonical(dir)?;
        let config_path = root.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&config_path)
            .map_err(|e| Error::Storage(format!("cannot read {}: {e}", config_path.display())))?;
        let config = Config::from_toml(&text, &config_path.display().to_string())?
            .apply_env(std::env::vars())?;
        let metastore = Metastore::open(
            &root.join(STRATA_DIR).join(METASTORE_FILE),
            Duration::from_millis(config.metastore.busy_timeout_ms),
        )
        .await?;
        Ok(Lakehouse {
            root,
            config,
            metastore,
            snapshots: None,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn metastore(&self) -> &Metastore {
        &self.metastore
    }

    /// The folder a managed table gets: `<root>/<catalog>/<schema>/<table>/`.
    pub fn managed_path(&self, name: &TableName) -> PathBuf {
        self.root
            .join(name.catalog.as_str())
            .join(name.schema.as_str())
            .join(name.table.as_str())
    }

    pub fn trash_path(&self, table_id: &str) -> PathBuf {
        self.root.join(STRATA_DIR).join("trash").join(table_id)
    }

    // ---- schemas ------------------------------------------------------------------------

    pub async fn create_schema(
        &self,
        name: &SchemaName,
        layer: Layer,
        comment: Option<&str>,
    ) -> Result<SchemaInfo> {
        self.metastore
            .create_schema(name, SchemaKind::Layer(layer), comment)
            .await
    }

    pub async fn schema(&self, name: &SchemaName) -> Result<SchemaInfo> {
        self.metastore.get_schema(name).await?.ok_or_else(|| {
            Error::NotFound(format!(
                "schema {name} does not exist; create it with `strata schema create {} --layer silver`",
                name.schema
            ))
        })
    }

    // ---- tables -------------------------------------------------------------------------

    /// The active table named `name`, or a NotFound error that says what exists nearby.
    pub async fn table(&self, name: &TableName) -> Result<TableInfo> {
        if let Some(t) = self.metastore.get_table(name).await? {
            return Ok(t);
        }
        if self
            .metastore
            .get_schema(&name.schema_name())
            .await?
            .is_none()
        {
            return Err(Error::NotFound(format!(
                "table {name} does not exist: there is no schema {}",
                name.schema_name()
            )));
        }
        let others: Vec<String> = self
            .metastore
            .list_tables(None, None)
            .await?
            .into_iter()
            .filter(|t| t.name.table == name.table)
            .map(|t| t.name.to_string())
            .collect();
        let hint = if others.is_empty() {
            String::new()
        } else {
            format!("; did you mean {}?", others.join(" or "))
        };
        Err(Error::NotFound(format!(
            "table {name} does not exist{hint}"
        )))
    }

    /// The role (and so the Delta properties) a table in this schema gets.
    pub async fn role_of(&self, schema: &SchemaName) -> Result<(TableRole, Option<Layer>)> {
        let info = self.schema(schema).await?;
        match info.kind {
            SchemaKind::Layer(l) => Ok((TableRole::Layer(l), Some(l))),
            SchemaKind::Quarantine => Ok((TableRole::Quarantine, None)),
            SchemaKind::System => Err(Error::Refused(format!(
                "schema {schema} is read-only: its tables are Strata's own"
            ))),
        }
    }

    /// Creates a managed table: one Delta commit (version 0) bracketed by metastore rows.
    pub async fn create_table(
        &self,
        name: &TableName,
        spec: CreateTable,
    ) -> Result<(TableInfo, DeltaTable)> {
        let (info, path, location, create) = self.begin_create(name, &spec).await?;
        let table = match strata_table::create_table(&location, &create).await {
            Ok(t) => t,
            Err(e) => return Err(self.abort_create(&info, &path, e.into()).await),
        };
        let info = self.finish_create(&info, &table, &spec).await?;
        Ok((info, table))
    }

    /// Creates a managed table holding `data` in version 0 (CREATE TABLE .. AS SELECT).
    pub async fn create_table_as(
        &self,
        name: &TableName,
        spec: CreateTable,
        data: datafusion::prelude::DataFrame,
        opts: &strata_table::WriteOptions,
    ) -> Result<(TableInfo, i64, u64)> {
        let (info, path, location, create) = self.begin_create(name, &spec).await?;
        let (table, outcome) =
            match strata_table::create_table_as(&location, &create, data, opts).await {
                Ok(t) => t,
                Err(e) => return Err(self.abort_create(&info, &path, e.into()).await),
            };
        let info = self.finish_create(&info, &table, &spec).await?;
        Ok((info, strata_table::current_version(&table), outcome.rows))
    }

    async fn begin_create(
        &self,
        name: &TableName,
        spec: &CreateTable,
    ) -> Result<(TableInfo, PathBuf, Url, CreateSpec)> {
        let (role, layer) = self.role_of(&name.schema_name()).await?;
        check_layer_properties(name, layer, &spec.properties)?;
        let path = self.managed_path(name);
        if path.join("_delta_log").exists() {
            return Err(Error::AlreadyExists(format!(
                "a Delta table already exists at {} but is not registered as {name}; \
                 run `strata doctor` to see why",
                path.display()
            )));
        }
        let location = dir_url(&path)?;
        let info = self
            .metastore
            .begin_create_table(NewTable {
                name: name.clone(),
                kind: TableKind::Managed,
                layer,
                location: Some(location.to_string()),
                view_sql: None,
                owner: spec.owner.clone(),
                comment: spec.comment.clone(),
                properties: spec.properties.clone(),
            })
            .await?;
        if let Err(e) = std::fs::create_dir_all(&path) {
            let err = Error::Storage(format!(
                "cannot create table folder {}: {e}",
                path.display()
            ));
            return Err(self.abort_create(&info, &path, err).await);
        }
        let delta_props: HashMap<String, String> = spec
            .properties
            .iter()
            .filter(|(k, _)| k.starts_with("delta."))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let create = CreateSpec {
            name: name.to_string(),
            schema: arrow::datatypes::Schema::new(spec.columns.clone()),
            partition_by: spec.partition_by.clone(),
            comment: spec.comment.clone(),
            role,
            properties: delta_props,
        };
        Ok((info, path, location, create))
    }

    /// Undoes a failed create: no metastore row, no folder (nor the parents it made).
    async fn abort_create(&self, info: &TableInfo, path: &Path, err: Error) -> Error {
        if let Err(e) = self.metastore.abort_create_table(&info.table_id).await {
            tracing::warn!(table = %info.name, error = %e, "could not remove the creating row");
        }
        let _ = std::fs::remove_dir_all(path);
        // the schema and catalog folders go too when nothing else is in them
        for parent in path.ancestors().skip(1).take(2) {
            if parent.starts_with(&self.root) && parent != self.root {
                let _ = std::fs::remove_dir(parent);
            }
        }
        err
    }

    async fn finish_create(
        &self,
        info: &TableInfo,
        table: &DeltaTable,
        spec: &CreateTable,
    ) -> Result<TableInfo> {
        let delta_id = strata_table::detail(table, &info.name.to_string())?.id;
        self.metastore
            .activate_table(&info.table_id, Some(&delta_id))
            .await?;
        for (col, comment) in &spec.column_comments {
            self.metastore
                .set_column_comment(&info.table_id, col, Some(comment))
                .await?;
        }
        self.metastore
            .get_table_by_id(&info.table_id)
            .await?
            .ok_or_else(|| Error::Storage(format!("table {} vanished while created", info.name)))
    }

    /// Sets properties: `delta.*` ones in the Delta log (one commit) and in the metastore,
    /// the others in the metastore only.
    pub async fn set_properties(
        &self,
        info: &TableInfo,
        props: BTreeMap<String, String>,
    ) -> Result<TableInfo> {
        let delta: HashMap<String, String> = props
            .iter()
            .filter(|(k, _)| k.starts_with("delta."))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !delta.is_empty() {
            Self::check_writable(info)?;
            check_layer_properties(&info.name, info.layer, &props)?;
            let table = self.open_delta(info).await?;
            strata_table::set_properties(table, &info.name.to_string(), delta).await?;
        }
        self.metastore
            .update_table(
                &info.table_id,
                crate::metastore::TableUpdate {
                    set_properties: props,
                    ..Default::default()
                },
            )
            .await
    }

    /// Registers an existing Delta table (external: read-only, its files are never touched).
    pub async fn register_table(&self, name: &TableName, location: &str) -> Result<TableInfo> {
        let (_, layer) = self.role_of(&name.schema_name()).await?;
        let url = location_url(location)?;
        let table = strata_table::open_table(&url, &name.to_string())
            .await
            .map_err(|e| match e {
                strata_table::Error::NotFound(_) => Error::NotFound(format!(
                    "no Delta table at {location}: it has no _delta_log"
                )),
                other => other.into(),
            })?;
        let delta_id = strata_table::detail(&table, &name.to_string())?.id;
        let info = self
            .metastore
            .begin_create_table(NewTable {
                name: name.clone(),
                kind: TableKind::External,
                layer,
                location: Some(url.to_string()),
                view_sql: None,
                owner: None,
                comment: None,
                properties: BTreeMap::new(),
            })
            .await?;
        self.metastore
            .activate_table(&info.table_id, Some(&delta_id))
            .await?;
        Ok(self
            .metastore
            .get_table_by_id(&info.table_id)
            .await?
            .unwrap_or(info))
    }

    /// Persists a view (its SQL is checked by the caller, which plans it).
    pub async fn create_view(
        &self,
        name: &TableName,
        sql: &str,
        comment: Option<&str>,
    ) -> Result<TableInfo> {
        let (_, layer) = self.role_of(&name.schema_name()).await?;
        let info = self
            .metastore
            .begin_create_table(NewTable {
                name: name.clone(),
                kind: TableKind::View,
                layer,
                location: None,
                view_sql: Some(sql.to_string()),
                owner: None,
                comment: comment.map(str::to_string),
                properties: BTreeMap::new(),
            })
            .await?;
        self.metastore.activate_table(&info.table_id, None).await?;
        Ok(self
            .metastore
            .get_table_by_id(&info.table_id)
            .await?
            .unwrap_or(info))
    }

    /// The Delta location of a table (not a view).
    pub fn location_of(info: &TableInfo) -> Result<Url> {
        let loc = info.location.as_deref().ok_or_else(|| {
            Error::InvalidInput(format!("{} is a view, not a Delta table", info.name))
        })?;
        Url::parse(loc).map_err(|e| Error::Storage(format!("bad location of {}: {e}", info.name)))
    }

    /// Opens the latest version of a table's Delta log.
    pub async fn open_delta(&self, info: &TableInfo) -> Result<DeltaTable> {
        let url = Self::location_of(info)?;
        let name = info.name.to_string();
        let Some(kept) = &self.snapshots else {
            return Ok(strata_table::open_table(&url, &name).await?);
        };
        let key = (info.table_id.clone(), url.to_string());
        let last = kept
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned();
        let table = match last {
            // only the commits since the kept version are read
            Some(mut table) => match table.update_incremental(None).await {
                Ok(()) => table,
                Err(e) => {
                    tracing::debug!(table = %name, error = %e, "a kept snapshot did not update; reading the log again");
                    strata_table::open_table(&url, &name).await?
                }
            },
            None => strata_table::open_table(&url, &name).await?,
        };
        kept.lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, table.clone());
        Ok(table)
    }

    /// Keeps each table's Delta snapshot once opened, so the next [`Lakehouse::open_delta`] of
    /// the table reads only the commits made since instead of the log from its last checkpoint
    /// (`strata serve` opens the tables it writes for every request). Shared by this handle's
    /// clones. A table dropped and created again has a new id, so never meets an old snapshot.
    pub fn keep_snapshots(mut self) -> Self {
        self.snapshots = Some(Arc::default());
        self
    }

    /// Opens a table at a version.
    pub async fn open_delta_at(&self, info: &TableInfo, version: i64) -> Result<DeltaTable> {
        let url = Self::location_of(info)?;
        Ok(strata_table::open_table_at(&url, &info.name.to_string(), version).await?)
    }

    /// Refuses writes Strata must not make: external tables are read-only, views hold no data.
    pub fn check_writable(info: &TableInfo) -> Result<()> {
        match info.kind {
            TableKind::External => Err(Error::Refused(format!(
                "table {} is external and read-only: Strata never writes its files",
                info.name
            ))),
            TableKind::View => Err(Error::Refused(format!(
                "{} is a view; write to the tables it reads",
                info.name
            ))),
            TableKind::Managed => Ok(()),
        }
    }

    /// Refuses a user (SQL or library) data write into bronze: bronze is written only by ingest.
    pub fn check_user_writable(info: &TableInfo) -> Result<()> {
        Self::check_writable(info)?;
        if info.layer == Some(Layer::Bronze) {
            return Err(Error::Refused(format!(
                "table {} is in the bronze layer, which only ingestion writes; write to a \
                 silver table instead",
                info.name
            )));
        }
        if info.layer.is_none() {
            return Err(Error::Refused(format!(
                "table {} is a quarantine table, written only by Strata",
                info.name
            )));
        }
        Ok(())
    }

    /// Drops a table: unregisters it and moves a managed table's folder to the trash (or
    /// deletes it with `purge`). An external table's files are never touched.
    pub async fn drop_table(&self, name: &TableName, purge: bool) -> Result<TableInfo> {
        let info = self.table(name).await?;
        if info.kind == TableKind::Managed {
            let path = self.managed_path(name);
            if path.exists() {
                if purge {
                    std::fs::remove_dir_all(&path).map_err(|e| {
                        Error::Storage(format!("cannot delete {}: {e}", path.display()))
                    })?;
                } else {
                    let trash = self.trash_path(&info.table_id);
                    if let Some(parent) = trash.parent() {
                        std::fs::create_dir_all(parent).map_err(|e| {
                            Error::Storage(format!("cannot create {}: {e}", parent.display()))
                        })?;
                    }
                    std::fs::rename(&path, &trash).map_err(|e| {
                        Error::Storage(format!("cannot move {} to the trash: {e}", path.display()))
                    })?;
                }
            }
        }
        if purge || info.kind != TableKind::Managed {
            self.metastore.delete_table_row(&info.table_id).await?;
        } else {
            self.metastore.mark_dropped(&info.table_id).await?;
        }
        Ok(info)
    }

    /// Brings back the most recently dropped table of this name.
    pub async fn undrop_table(&self, name: &TableName) -> Result<TableInfo> {
        let info = self
            .metastore
            .find_dropped(name)
            .await?
            .ok_or_else(|| Error::NotFound(format!("no dropped table {name} to bring back")))?;
        if self.metastore.get_table(name).await?.is_some() {
            return Err(Error::AlreadyExists(format!(
                "table {name} exists again; drop or rename it before undrop"
            )));
        }
        let trash = self.trash_path(&info.table_id);
        let path = self.managed_path(name);
        if !trash.exists() {
            return Err(Error::NotFound(format!(
                "the files of dropped table {name} are no longer in the trash ({})",
                trash.display()
            )));
        }
        if path.exists() {
            return Err(Error::AlreadyExists(format!(
                "{} is in the way of undrop: move it aside first",
                path.display()
            )));
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::Storage(format!("cannot create {}: {e}", parent.display())))?;
        }
        std::fs::rename(&trash, &path)
            .map_err(|e| Error::Storage(format!("cannot move {} back: {e}", trash.display())))?;
        self.metastore.undrop(&info.table_id).await
    }

    /// Restores a table to a version (or the version current at a time), in one new commit.
    /// Rows leave bronze only by erasure or by a forced restore (DECISIONS.md sections 3 and 6),
    /// so a bronze table needs `force`.
    pub async fn restore_table(
        &self,
        name: &TableName,
        to: RestoreTarget,
        force: bool,
    ) -> Result<(i64, i64)> {
        let info = self.table(name).await?;
        Self::check_writable(&info)?;
        if info.layer == Some(Layer::Bronze) && !force {
            return Err(Error::Refused(format!(
                "table {name} is in the bronze layer, which keeps every record it landed; \
                 restoring it removes rows, so it needs `strata table restore {name} --force`"
            )));
        }
        let full_name = name.to_string();
        let edges: Vec<crate::metastore::LineageEdge> = self
            .metastore
            .lineage()
            .await?
            .into_iter()
            .filter(|e| e.kind == "flow")
            .collect();
        let flow_of = |e: &crate::metastore::LineageEdge| {
            (
                e.pipeline.clone().unwrap_or_default(),
                e.flow.clone().unwrap_or_default(),
            )
        };
        let readers: Vec<(String, String)> = edges
            .iter()
            .filter(|e| e.source_table == full_name)
            .map(flow_of)
            .collect();
        let writers: Vec<(String, String)> = edges
            .iter()
            .filter(|e| e.target_table == full_name)
            .map(flow_of)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if (!readers.is_empty() || !writers.is_empty()) && !force {
            let mut why = Vec::new();
            if !readers.is_empty() {
                why.push(format!(
                    "flows {} read it (they would be fully refreshed)",
                    readers
                        .iter()
                        .map(|(p, f)| format!("{p}.{f}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            if !writers.is_empty() {
                why.push(format!(
                    "flow {} writes it (its watermarks would go back to the restored version)",
                    writers
                        .iter()
                        .map(|(p, f)| format!("{p}.{f}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            return Err(Error::Refused(format!(
                "table {name}: {}; restoring it needs `strata table restore {name} --force`",
                why.join("; ")
            )));
        }
        let table = self.open_delta(&info).await?;
        let version = match to {
            RestoreTarget::Version(v) => v,
            RestoreTarget::Timestamp(ts) => strata_table::version_at_timestamp(&table, ts).await?,
        };
        // the flows' watermarks as of the restored version, read before the restore
        let mut resets: Vec<strata_table::Txn> = Vec::new();
        let mut refresh: Vec<(String, String, String)> = Vec::new();
        if !writers.is_empty() {
            let at = self.open_delta_at(&info, version).await?;
            for (p, f) in &writers {
                for e in edges.iter().filter(|e| {
                    e.target_table == full_name
                        && e.pipeline.as_deref() == Some(p.as_str())
                        && e.flow.as_deref() == Some(f.as_str())
                }) {
                    let Ok(src_name) = TableName::parse(&e.source_table) else {
                        continue;
                    };
                    let Some(src) = self.metastore.get_table(&src_name).await? else {
                        continue;
                    };
                    let app = format!("flow:{p}:{f}:{}", src.table_id);
                    match strata_table::txn_version(&at, &full_name, &app).await? {
                        Some(v) => resets.push(strata_table::Txn::new(app, v)),
                        None => refresh.push((
                            p.clone(),
                            f.clone(),
                            format!("its target {name} was restored to version {version}, before the flow first wrote it"),
                        )),
                    }
                }
            }
        }
        let mut t = strata_table::restore(table, &full_name, version).await?;
        if !resets.is_empty() {
            strata_table::reset_txns(&mut t, &full_name, &resets).await?;
        }
        for (p, f) in readers {
            refresh.push((
                p,
                f,
                format!("its source {name} was restored to version {version}"),
            ));
        }
        for (p, f, why) in refresh {
            self.metastore.mark_full_refresh(&p, &f, &why).await?;
        }
        // Batches landed after the restored version are gone from the table: a new ingest
        // lands their files again (DECISIONS.md section 6).
        let reverted = self
            .metastore
            .revert_batches_after(&info.table_id, version)
            .await?;
        if reverted > 0 {
            tracing::info!(table = %name, batches = reverted, "ingest batches after the restored version reverted");
        }
        self.metastore.touch_table(&info.table_id).await?;
        Ok((version, strata_table::current_version(&t)))
    }

    /// VACUUM that keeps what the flows reading the table still need (DECISIONS.md section 7):
    /// the files of every version after the slowest reader's watermark stay, whatever the
    /// retention asked for, unless `force`. Returns the outcome and, when a reader's watermark
    /// lengthened the retention, a note saying which.
    pub async fn vacuum_table(
        &self,
        name: &TableName,
        retain_hours: Option<u64>,
        dry_run: bool,
        force: bool,
    ) -> Result<(strata_table::VacuumOutcome, Option<String>)> {
        let info = self.table(name).await?;
        Self::check_writable(&info)?;
        let full_name = info.name.to_string();
        let t = self.open_delta(&info).await?;
        let mut keep: Option<(u64, String)> = None;
        if !force {
            let latest = strata_table::current_version(&t);
            for e in self
                .metastore
                .lineage()
                .await?
                .into_iter()
                .filter(|e| e.kind == "flow" && e.source_table == full_name)
            {
                let (p, f) = (
                    e.pipeline.clone().unwrap_or_default(),
                    e.flow.clone().unwrap_or_default(),
                );
                let Ok(tn) = TableName::parse(&e.target_table) else {
                    continue;
                };
                let Some(target) = self.metastore.get_table(&tn).await? else {
                    continue;
                };
                let tt = self.open_delta(&target).await?;
                let app = format!("flow:{p}:{f}:{}", info.table_id);
                let Some(w) = strata_table::txn_version(&tt, &e.target_table, &app).await? else {
                    continue;
                };
                if w >= latest {
                    continue;
                }
                // the flow reads the changes from w + 1: keep the files of that commit onward
                let Some(c) = strata_table::history::read_commit(&t, w + 1).await? else {
                    continue;
                };
                let age = chrono::Utc::now() - c.timestamp;
                let hours = (age.num_seconds().max(0) as u64).div_ceil(3600) + 1;
                if keep.as_ref().is_none_or(|(h, _)| hours > *h) {
                    keep = Some((hours, format!("{p}.{f}")));
                }
            }
        }
        let table_hours = {
            let d = strata_table::detail(&t, &full_name)?;
            d.properties
                .get("delta.deletedFileRetentionDuration")
                .and_then(|v| parse_interval_hours(v))
                .unwrap_or(7 * 24)
        };
        let asked = retain_hours.unwrap_or(table_hours);
        let (retain, note) = match keep {
            Some((h, flow)) if h > asked => (
                Some(h),
                Some(format!(
                    "kept the files of the last {h} hours: flow {flow} has not yet read the \
                     changes they hold (VACUUM --force deletes them; the flow then needs \
                     --full-refresh)"
                )),
            ),
            _ => (retain_hours, None),
        };
        let (_, o) = strata_table::vacuum(t, &full_name, retain, dry_run).await?;
        Ok((o, note))
    }

    /// Erases rows from a bronze table: the audited way rows leave bronze (DECISIONS.md
    /// section 3). Three commits (lift `delta.appendOnly`, delete the rows, set it again),
    /// then exactly the data files the delete removed, and the change-data files it wrote (they
    /// hold the erased rows as deletes), are deleted: the erased values are gone from storage
    /// while every other file that time travel needs stays. Time travel to a version before the
    /// erasure, and the change feed of the delete's version, then fail for lack of those files.
    /// Recorded in the metastore with its reason.
    pub async fn erase(&self, name: &TableName, predicate: &str, reason: &str) -> Result<Erasure> {
        if reason.trim().is_empty() {
            return Err(Error::InvalidInput(
                "an erasure needs a reason (--reason), kept in the audit record".into(),
            ));
        }
        let info = self.table(name).await?;
        Self::check_writable(&info)?;
        let full = name.to_string();
        let table = self.open_delta(&info).await?;
        let session = strata_table::default_session();
        let schema = strata_table::arrow_schema(&table, &full)?;
        let expr = strata_table::parse_predicate(&session, &schema, &full, predicate)?;
        let append_only = info.layer == Some(Layer::Bronze);
        let mut versions = Vec::new();
        let set = |v: &str| HashMap::from([("delta.appendOnly".to_string(), v.to_string())]);
        let table = if append_only {
            let t = strata_table::set_properties(table, &full, set("false")).await?;
            versions.push(strata_table::current_version(&t));
            t
        } else {
            table
        };
        let deleted = strata_table::delete(table, &full, Some(expr), &Default::default()).await;
        let (table, outcome) = match deleted {
            Ok(x) => x,
            Err(e) => {
                if append_only {
                    let t = self.open_delta(&info).await?;
                    strata_table::set_properties(t, &full, set("true")).await?;
                }
                return Err(e.into());
            }
        };
        let delete_version = outcome.version;
        if let Some(v) = delete_version {
            versions.push(v);
        }
        let table = if append_only {
            let t = strata_table::set_properties(table, &full, set("true")).await?;
            versions.push(strata_table::current_version(&t));
            t
        } else {
            table
        };
        let mut files_deleted = 0u64;
        if let Some(v) = delete_version
            && let Some(commit) = strata_table::history::read_commit(&table, v).await?
        {
            let store = table.log_store().object_store(None);
            // The delete's change-data files hold the erased rows too.
            for p in commit.removed_paths.iter().chain(&commit.cdc_paths) {
                // Delta log paths are URL-encoded.
                let path = deltalake::Path::from_url_path(p).map_err(|e| {
                    Error::Storage(format!("erasure of {name}: bad data file path {p}: {e}"))
                })?;
                match store.delete(&path).await {
                    Ok(()) => files_deleted += 1,
                    Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => {
                        return Err(Error::Storage(format!(
                            "erasure of {name}: rows deleted in version {v}, but data file {p}                              could not be deleted: {e}; delete it by hand"
                        )));
                    }
                }
            }
        }
        let erasure_id = uuid::Uuid::new_v4().to_string();
        self.metastore
            .record_erasure(
                &erasure_id,
                &info.table_id,
                &full,
                predicate,
                reason,
                outcome.rows,
                files_deleted,
                &versions,
            )
            .await?;
        self.metastore.touch_table(&info.table_id).await?;
        Ok(Erasure {
            erasure_id,
            rows_deleted: outcome.rows,
            files_deleted,
            versions,
        })
    }
}

/// What an erasure did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Erasure {
    pub erasure_id: String,
    pub rows_deleted: u64,
    pub files_deleted: u64,
    /// The commits: lift append-only, delete, set append-only again.
    pub versions: Vec<i64>,
}

/// What `restore` goes back to.
#[derive(Debug, Clone, Copy)]
pub enum RestoreTarget {
    Version(i64),
    Timestamp(DateTime<Utc>),
}

/// Refuses properties that would undo what a layer promises: bronze stays append-only with its
/// whole log; silver and gold keep their change data feed; no table uses column mapping
/// (deltalake 1.1 refuses schema evolution, the change feed and OPTIMIZE on such tables).
fn check_layer_properties(
    name: &TableName,
    layer: Option<Layer>,
    props: &BTreeMap<String, String>,
) -> Result<()> {
    let get = |k: &str| props.get(k).map(|v| v.trim().to_ascii_lowercase());
    if props.contains_key("delta.columnMapping.mode") {
        return Err(Error::Refused(
            "column mapping is not supported: deltalake refuses schema evolution, the change feed \
             and OPTIMIZE on column-mapped tables"
                .into(),
        ));
    }
    let refuse = |what: &str| {
        Err(Error::Refused(format!(
            "table {name}: {what} is a property of its layer and cannot be changed"
        )))
    };
    match layer {
        Some(Layer::Bronze) => {
            if get("delta.appendOnly").is_some_and(|v| v != "true") {
                return refuse("delta.appendOnly = true");
            }
            if get("delta.enableChangeDataFeed").is_some_and(|v| v != "true") {
                return refuse("delta.enableChangeDataFeed = true");
            }
            if get("delta.enableExpiredLogCleanup").is_some_and(|v| v != "false") {
                return refuse("delta.enableExpiredLogCleanup = false");
            }
        }
        Some(Layer::Silver | Layer::Gold)
            if get("delta.enableChangeDataFeed").is_some_and(|v| v != "true") =>
        {
            return refuse("delta.enableChangeDataFeed = true");
        }
        Some(Layer::Silver | Layer::Gold) => {}
        None => {}
    }
    Ok(())
}

fn canonical(dir: &Path) -> Result<PathBuf> {
    dir.canonicalize()
        .map_err(|e| Error::Storage(format!("cannot resolve {}: {e}", dir.display())))
}

/// The `file://` URL of a folder, with its trailing slash.
pub fn dir_url(path: &Path) -> Result<Url> {
    Url::from_directory_path(path)
        .map_err(|_| Error::InvalidInput(format!("{} is not an absolute path", path.display())))
}

/// A user-given table location: a URL (`file://`, `s3://`, ...) or a local path.
pub fn location_url(location: &str) -> Result<Url> {
    if let Ok(u) = Url::parse(location)
        && u.scheme().len() > 1
    {
        return Ok(u);
    }
    let path = Path::new(location);
    let abs = path
        .canonicalize()
        .map_err(|_| Error::NotFound(format!("location {location} does not exist")))?;
    dir_url(&abs)
}

/// Hours of a Delta interval property (`interval 7 days`, `interval 12 hours`).
fn parse_interval_hours(v: &str) -> Option<u64> {
    let mut it = v.split_whitespace();
    let first = it.next()?;
    let (n, unit) = if first.eq_ignore_ascii_case("interval") {
        (it.next()?, it.next()?)
    } else {
        (first, it.next()?)
    };
    let n: u64 = n.parse().ok()?;
    let unit = unit.to_ascii_lowercase();
    Some(match unit.trim_end_matches('s') {
        "week" => n * 24 * 7,
        "day" => n * 24,
        "hour" => n,
        "minute" => n.div_ceil(60),
        "second" => n.div_ceil(3600),
        _ => return None,
    })
}
