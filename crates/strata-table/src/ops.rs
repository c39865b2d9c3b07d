//! Table operations: each one Delta commit, or none when its transaction id was committed.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema as ArrowSchema, TimeUnit};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, ScalarValue};
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::{Expr, ExprSchemable, cast, lit};
use datafusion::prelude::DataFrame;
use deltalake::DeltaTable;
use deltalake::kernel::engine::arrow_conversion::{TryIntoArrow, TryIntoKernel};
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::{StructField, StructType, Transaction};
use deltalake::operations::optimize::OptimizeType;
use deltalake::operations::write::SchemaMode;
use deltalake::parquet::basic::{Compression, ZstdLevel};
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::protocol::SaveMode;
use strata_core::types::{UTC, type_name};
use url::Url;

use crate::error::{Error, Result};
use crate::history::read_commit;
use crate::props::TableRole;
use crate::session::default_session;

/// An application transaction: a write that carries one commits at most once per
/// (app id, version); a retried write with the same or a lower version commits nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Txn {
    pub app_id: String,
    pub version: i64,
}

impl Txn {
    pub fn new(app_id: impl Into<String>, version: i64) -> Self {
        Txn {
            app_id: app_id.into(),
            version,
        }
    }

    /// Parses `APP:VERSION`, as `--txn` takes it.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || {
            Error::InvalidInput(format!(
                "invalid transaction id '{s}': expected APP:VERSION, for example nightly:42"
            ))
        };
        let (app, v) = s.rsplit_once(':').ok_or_else(bad)?;
        let version: i64 = v.trim().parse().map_err(|_| bad())?;
        if app.trim().is_empty() || version < 0 {
            return Err(bad());
        }
        Ok(Txn::new(app.trim(), version))
    }
}

/// What a write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOutcome {
    /// The version the write committed, or `None` when its transaction was already committed.
    pub version: Option<i64>,
    /// Rows added (append, insert), or affected (merge, delete, update).
    pub rows: u64,
    pub metrics: serde_json::Map<String, serde_json::Value>,
}

impl WriteOutcome {
    fn skipped() -> Self {
        WriteOutcome {
            version: None,
            rows: 0,
            metrics: Default::default(),
        }
    }
}

/// Options every data write takes.
#[derive(Clone, Default)]
pub struct WriteOptions {
    pub txn: Option<Txn>,
    /// Further transactions the commit carries (a flow's one per source). The write is skipped
    /// when `txn` and every one of these are committed already.
    pub txns: Vec<Txn>,
    /// Append only: add the data's new columns to the table (nullable) instead of failing.
    pub evolve_schema: bool,
    /// The session to run in (the SQL session, with its functions); a default one otherwise.
    pub session: Option<Arc<SessionState>>,
}

impl WriteOptions {
    fn all_txns(&self) -> Vec<&Txn> {
        self.txn.iter().chain(self.txns.iter()).collect()
    }

    fn session(&self) -> Arc<SessionState> {
        self.session.clone().unwrap_or_else(default_session)
    }
}

/// What a new table looks like.
#[derive(Debug, Clone)]
pub struct CreateSpec {
    /// The table's full name, for messages and the Delta `name`.
    pub name: String,
    pub schema: ArrowSchema,
    pub partition_by: Vec<String>,
    pub comment: Option<String>,
    pub role: TableRole,
    /// User properties; they override the role's defaults.
    pub properties: HashMap<String, String>,
}

/// Creates a Delta table at `location` in one commit (version 0) with the role's properties.
pub async fn create_table(location: &Url, spec: &CreateSpec) -> Result<DeltaTable> {
    let schema = delta_schema(&spec.schema)?;
    let fields: Vec<StructField> = schema.fields().cloned().collect();
    if fields.is_empty() {
        return Err(Error::InvalidInput(format!(
            "table {} needs at least one column",
            spec.name
        )));
    }
    for p in &spec.partition_by {
        if spec.schema.field_with_name(p).is_err() {
            return Err(Error::InvalidInput(format!(
                "partition column '{p}' is not a column of {} (columns: {})",
                spec.name,
                column_list(&spec.schema)
            )));
        }
    }
    let mut props = spec.role.properties();
    props.extend(spec.properties.clone());
    let table = DeltaTable::try_from_url(location.clone())
        .await
        .map_err(|e| Error::delta(&spec.name, e))?;
    let mut builder = table
        .create()
        .with_table_name(spec.name.clone())
        .with_columns(fields)
        .with_save_mode(SaveMode::ErrorIfExists)
        .with_configuration(props.into_iter().map(|(k, v)| (k, Some(v))))
        .with_partition_columns(spec.partition_by.clone());
    if let Some(c) = &spec.comment {
        builder = builder.with_comment(c.clone());
    }
    builder.await.map_err(|e| match e {
        deltalake::DeltaTableError::Generic(m) if m.contains("already exists") => {
            Error::AlreadyExists(format!("a Delta table already exists at {location}"))
        }
        other => Error::delta(&spec.name, other),
    })
}

/// Opens the latest version of the table at `location`; `name` is for messages.
pub async fn open_table(location: &Url, name: &str) -> Result<DeltaTable> {
    let mut table = DeltaTable::try_from_url(location.clone())
        .await
        .map_err(|e| Error::delta(name, e))?;
    table.load().await.map_err(|e| match e {
        deltalake::DeltaTableError::NotATable(_)
        | deltalake::DeltaTableError::InvalidTableLocation(_) => {
            Error::NotFound(format!("table {name} has no Delta log at {location}"))
        }
        other => Error::delta(name, other),
    })?;
    Ok(table)
}

/// Opens the table at `location` as of `version`.
pub async fn open_table_at(location: &Url, name: &str, version: i64) -> Result<DeltaTable> {
    let mut table = open_table(location, name).await?;
    let latest = current_version(&table);
    if version < 0 || version > latest {
        return Err(Error::NotFound(format!(
            "table {name} has no version {version} (latest is {latest})"
        )));
    }
    if version != latest {
        table
            .load_version(version as u64)
            .await
            .map_err(|e| match e {
                deltalake::DeltaTableError::InvalidVersion(_) => Error::NotFound(format!(
                    "version {version} of table {name} is no longer in its log"
                )),
                other => Error::delta(name, other),
            })?;
    }
    Ok(table)
}

/// The loaded version of a table.
pub fn current_version(table: &DeltaTable) -> i64 {
    table.version().map(|v| v as i64).unwrap_or(-1)
}

/// The table's schema as Arrow.
pub fn arrow_schema(table: &DeltaTable, name: &str) -> Result<ArrowSchema> {
    let snapshot = table.snapshot().map_err(|e| Error::delta(name, e))?;
    let schema: ArrowSchema = snapshot
        .schema()
        .as_ref()
        .try_into_arrow()
        .map_err(|e| Error::Storage(format!("table {name}: schema conversion: {e}")))?;
    Ok(schema)
}

/// Converts an Arrow schema to Delta's, normalising types first (see [`delta_type`]).
pub fn delta_schema(schema: &ArrowSchema) -> Result<StructType> {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_data_type(delta_type(f.data_type())))
        .collect();
    let normalized = ArrowSchema::new(fields);
    (&normalized)
        .try_into_kernel()
        .map_err(|e| Error::InvalidInput(format!("a column type cannot be stored in Delta: {e}")))
}

/// The type Strata stores for an Arrow type: timestamps in microseconds (with zone `UTC` when
/// they have any zone, without one for NTZ), views and large variants as plain, unsigned as the
/// next signed width, NULL as STRING.
pub fn delta_type(t: &DataType) -> DataType {
    match t {
        DataType::Timestamp(_, Some(_)) => {
            DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into()))
        }
        DataType::Timestamp(_, None) => DataType::Timestamp(TimeUnit::Microsecond, None),
        DataType::Utf8View | DataType::LargeUtf8 | DataType::Null => DataType::Utf8,
        DataType::BinaryView | DataType::LargeBinary | DataType::FixedSizeBinary(_) => {
            DataType::Binary
        }
        DataType::Date64 => DataType::Date32,
        DataType::UInt8 => DataType::Int16,
        DataType::UInt16 => DataType::Int32,
        DataType::UInt32 | DataType::UInt64 => DataType::Int64,
        DataType::Float16 => DataType::Float32,
        DataType::Dictionary(_, v) => delta_type(v),
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::ListView(f)
        | DataType::FixedSizeList(f, _) => DataType::List(Arc::new(
            f.as_ref().clone().with_data_type(delta_type(f.data_type())),
        )),
        DataType::Struct(fields) => DataType::Struct(Fields::from(
            fields
                .iter()
                .map(|f| f.as_ref().clone().with_data_type(delta_type(f.data_type())))
                .collect::<Vec<_>>(),
        )),
        DataType::Map(entries, sorted) => DataType::Map(
            Arc::new(
                entries
                    .as_ref()
                    .clone()
                    .with_data_type(delta_type(entries.data_type())),
            ),
            *sorted,
        ),
        other => other.clone(),
    }
}

fn column_list(schema: &ArrowSchema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| strata_core::types::quote_if_needed(f.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn ident(name: &str) -> Expr {
    Expr::Column(Column::new_unqualified(name))
}

/// Shapes `data` to the table's schema by column name: casts to the table's types (a value
/// that does not cast fails the write), fills missing nullable columns with NULL, and refuses
/// unknown columns unless `evolve` (then they are added, types normalised for Delta).
pub fn conform(
    data: DataFrame,
    table: &ArrowSchema,
    name: &str,
    evolve: bool,
) -> Result<DataFrame> {
    let data_schema = data.schema().as_arrow().clone();
    let mut exprs: Vec<Expr> = Vec::new();
    for tf in table.fields() {
        match data_schema.field_with_name(tf.name()) {
            Ok(df) => {
                let e = ident(df.name());
                exprs.push(if df.data_type() == tf.data_type() {
                    e
                } else {
                    cast(e, tf.data_type().clone()).alias(tf.name())
                });
            }
            Err(_) => {
                if let Some(other) = data_schema
                    .fields()
                    .iter()
                    .find(|f| f.name().eq_ignore_ascii_case(tf.name()))
                {
                    return Err(Error::InvalidInput(format!(
                        "table {name} has column {} but the data has {}: column names differ \
                         only in case; write {} (quoted) to name it",
                        strata_core::types::quote_if_needed(tf.name()),
                        strata_core::types::quote_if_needed(other.name()),
                        strata_core::types::quote_if_needed(tf.name()),
                    )));
                }
                if !tf.is_nullable() {
                    return Err(Error::InvalidInput(format!(
                        "column {} of table {name} is NOT NULL but the data has no such column",
                        tf.name()
                    )));
                }
                exprs.push(cast(lit(ScalarValue::Null), tf.data_type().clone()).alias(tf.name()));
            }
        }
    }
    for df in data_schema.fields() {
        if table.field_with_name(df.name()).is_ok() {
            continue;
        }
        if table
            .fields()
            .iter()
            .any(|f| f.name().eq_ignore_ascii_case(df.name()))
        {
            continue; // reported above
        }
        if !evolve {
            return Err(Error::InvalidInput(format!(
                "column {} is not in table {name} (its columns: {}); add it first \
                 (ALTER TABLE .. ADD COLUMNS) or write with schema evolution",
                strata_core::types::quote_if_needed(df.name()),
                column_list(table)
            )));
        }
        let target = delta_type(df.data_type());
        let e = ident(df.name());
        exprs.push(if &target == df.data_type() {
            e
        } else {
            cast(e, target).alias(df.name())
        });
    }
    Ok(data.select(exprs)?)
}

async fn all_committed(table: &DeltaTable, name: &str, txns: &[&Txn]) -> Result<bool> {
    for t in txns {
        if !txn_committed(table, name, t).await? {
            return Ok(false);
        }
    }
    Ok(true)
}

async fn txn_committed(table: &DeltaTable, name: &str, txn: &Txn) -> Result<bool> {
    let snapshot = table.snapshot().map_err(|e| Error::delta(name, e))?;
    let have = snapshot
        .transaction_version(table.log_store().as_ref(), &txn.app_id)
        .await
        .map_err(|e| Error::delta(name, e))?;
    Ok(have.is_some_and(|v| v >= txn.version))
}

/// How Strata writes Parquet, in every write, MERGE, DELETE, UPDATE, OPTIMIZE and ingest:
/// zstd level 1 (`ZstdLevel::default()`), about as fast to write as Snappy (deltalake's default
/// for writes) with smaller files, and cheaper than the zstd(4) deltalake's OPTIMIZE uses.
/// `floors ingest --compression snappy|zstd1` (bench/floors) measures the trade on a machine;
/// `bench/RESULTS.md` has the figures.
pub fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_created_by(format!("strata {}", env!("CARGO_PKG_VERSION")))
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build()
}

fn commit_properties(opts: &WriteOptions) -> CommitProperties {
    let mut cp = CommitProperties::default();
    for t in opts.all_txns() {
        cp = cp.with_application_transaction(Transaction::new(&t.app_id, t.version));
    }
    cp
}

/// Checks the transaction before a write. `Some(outcome)` means: committed before, do nothing.
async fn precheck(
    table: &mut DeltaTable,
    name: &str,
    opts: &WriteOptions,
) -> Result<Option<WriteOutcome>> {
    let txns = opts.all_txns();
    if !txns.is_empty() {
        table
            .update_state()
            .await
            .map_err(|e| Error::delta(name, e))?;
        if all_committed(table, name, &txns).await? {
            return Ok(Some(WriteOutcome::skipped()));
        }
    }
    Ok(None)
}

/// After a failed write: if a concurrent writer committed the same transaction, the write is
/// done (by them), not failed.
async fn settle_error(
    location: &Url,
    name: &str,
    opts: &WriteOptions,
    err: Error,
) -> Result<WriteOutcome> {
    let txns = opts.all_txns();
    if !txns.is_empty() && matches!(err, Error::Conflict(_)) {
        let table = open_table(location, name).await?;
        if all_committed(&table, name, &txns).await? {
            return Ok(WriteOutcome::skipped());
        }
    }
    Err(err)
}

async fn outcome(table: &DeltaTable, rows_key: &[&str]) -> Result<WriteOutcome> {
    let version = current_version(table);
    let commit = read_commit(table, version).await?;
    let metrics = commit.map(|c| c.metrics).unwrap_or_default();
    let rows = rows_key
        .iter()
        .filter_map(|k| {
            metrics
                .get(*k)
                .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
        })
        .sum();
    Ok(WriteOutcome {
        version: Some(version),
        rows,
        metrics,
    })
}

/// Appends `data` in one commit.
pub async fn append(
    mut table: DeltaTable,
    name: &str,
    data: DataFrame,
    opts: &WriteOptions,
) -> Result<(DeltaTable, WriteOutcome)> {
    if let Some(done) = precheck(&mut table, name, opts).await? {
        return Ok((table, done));
    }
    let schema = arrow_schema(&table, name)?;
    let data = conform(data, &schema, name, opts.evolve_schema)?;
    let location = table.table_url().clone();
    let mut builder = table
        .write(Vec::new())
        .with_input_plan(data.logical_plan().clone())
        .with_save_mode(SaveMode::Append)
        .with_session_state(opts.session())
        .with_commit_properties(commit_properties(opts))
        .with_writer_properties(writer_properties());
    if opts.evolve_schema {
        builder = builder.with_schema_mode(SchemaMode::Merge);
    }
    match builder.await {
        Ok(t) => {
            let o = outcome(&t, &["num_added_rows", "numOutputRows"]).await?;
            Ok((t, o))
        }
        Err(e) => {
            let o = settle_error(&location, name, opts, Error::delta(name, e)).await?;
            Ok((open_table(&location, name).await?, o))
        }
    }
}

/// Parses a predicate over the table's columns into an expression: never spliced into SQL
/// text; every column it names must exist; subqueries are refused.
pub fn parse_predicate(
    session: &SessionState,
    schema: &ArrowSchema,
    name: &str,
    predicate: &str,
) -> Result<Expr> {
    let df_schema = DFSchema::try_from(schema.clone())?;
    let expr = session
        .create_logical_expr(predicate, &df_schema)
        .map_err(|e| {
            Error::InvalidInput(format!(
                "invalid predicate '{predicate}' for table {name}: {}",
                crate::error::strip_df_noise(&e.to_string())
            ))
        })?;
    check_columns(&expr, schema, name, predicate)?;
    let has_subquery = expr
        .exists(|e| {
            Ok(matches!(
                e,
                Expr::ScalarSubquery(_) | Expr::InSubquery(_) | Expr::Exists(_)
            ))
        })
        .unwrap_or(true);
    if has_subquery {
        return Err(Error::InvalidInput(format!(
            "predicate '{predicate}' for table {name} has a subquery; a predicate may only \
             compare the table's own columns"
        )));
    }
    match expr.get_type(&df_schema) {
        Ok(DataType::Boolean) | Ok(DataType::Null) => Ok(expr),
        Ok(other) => Err(Error::InvalidInput(format!(
            "predicate '{predicate}' for table {name} is of type {}, not BOOLEAN",
            type_name(&other)
        ))),
        Err(e) => Err(Error::InvalidInput(format!(
            "invalid predicate '{predicate}' for table {name}: {}",
            crate::error::strip_df_noise(&e.to_string())
        ))),
    }
}

fn check_columns(expr: &Expr, schema: &ArrowSchema, name: &str, predicate: &str) -> Result<()> {
    for c in expr.column_refs() {
        if schema.field_with_name(&c.name).is_err() {
            let hint = schema
                .fields()
                .iter()
                .find(|f| f.name().eq_ignore_ascii_case(&c.name))
                .map(|f| {
                    format!(
                        "; did you mean {}?",
                        strata_core::types::quote_if_needed(f.name())
                    )
                })
                .unwrap_or_else(|| format!(" (its columns: {})", column_list(schema)));
            return Err(Error::InvalidInput(format!(
                "predicate '{predicate}' names column '{}', which table {name} does not have{hint}",
                c.name
            )));
        }
    }
    Ok(())
}

/// Replaces the rows matching `predicate` with `data`, in one commit. A row of `data` outside
/// the predicate fails the write, as in Delta's replaceWhere.
pub async fn replace_where(
    mut table: DeltaTable,
    name: &str,
    data: DataFrame,
    predicate: &str,
    opts: &WriteOptions,
) -> Result<(DeltaTable, WriteOutcome)> {
    let session = opts.session();
    let schema = arrow_schema(&table, name)?;
    let expr = parse_predicate(&session, &schema, name, predicate)?;
    if let Some(done) = precheck(&mut table, name, opts).await? {
        return Ok((table, done));
    }
    let data = conform(data, &schema, name, false)?;
    let location = table.table_url().clone();
    let result = table
        .write(Vec::new())
        .with_input_plan(data.logical_plan().clone())
        .with_save_mode(SaveMode::Overwrite)
        .with_replace_where(expr)
        .with_session_state(session)
        .with_commit_properties(commit_properties(opts))
        .with_writer_properties(writer_properties())
        .await;
    match result {
        Ok(t) => {
            let o = outcome(&t, &["num_added_rows", "numOutputRows"]).await?;
            Ok((t, o))
        }
        Err(e) => {
            // a row of the new data outside the predicate is one cause; say where, not why
            let err = match Error::delta(name, e) {
                Error::InvalidInput(m) => Error::InvalidInput(format!(
                    "replace of table {name} where {predicate} wrote nothing: {m}"
                )),
                Error::Storage(m) => Error::Storage(format!(
                    "replace of table {name} where {predicate} wrote nothing: {m}"
                )),
                other => other,
            };
            let o = settle_error(&location, name, opts, err).await?;
            Ok((open_table(&location, name).await?, o))
        }
    }
}

/// Replaces the whole table, schema included (a flow's full refresh after its output changed
/// shape), in one commit. The partition columns stay `partition_by`.
pub async fn overwrite_schema(
    mut table: DeltaTable,
    name: &str,
    data: DataFrame,
    partition_by: Vec<String>,
    opts: &WriteOptions,
) -> Result<(DeltaTable, WriteOutcome)> {
    if let Some(done) = precheck(&mut table, name, opts).await? {
        return Ok((table, done));
    }
    let location = table.table_url().clone();
    let result = table
        .write(Vec::new())
        .with_input_plan(data.logical_plan().clone())
        .with_save_mode(SaveMode::Overwrite)
        .with_schema_mode(SchemaMode::Overwrite)
        .with_partition_columns(partition_by)
        .with_session_state(opts.session())
        .with_commit_properties(commit_properties(opts))
        .with_writer_properties(writer_properties())
        .await;
    match result {
        Ok(t) => {
            let o = outcome(&t, &["num_added_rows", "numOutputRows"]).await?;
            Ok((t, o))
        }
        Err(e) => {
            let o = settle_error(&location, name, opts, Error::delta(name, e)).await?;
            Ok((open_table(&location, name).await?, o))
        }
    }
}

/// An expression in a MERGE: a DataFusion expression, or SQL text that deltalake parses
/// against the joined source and target (as SQL MERGE hands it over, re-rendered from its AST).
#[derive(Debug, Clone)]
pub enum MergeExpr {
    Expr(Expr),
    Sql(String),
}

/// One WHEN clause of a MERGE.
#[derive(Debug, Clone)]
pub enum MergeClause {
    MatchedUpdate {
        predicate: Option<MergeExpr>,
        set: Vec<(String, MergeExpr)>,
    },
    MatchedDelete {
        predicate: Option<MergeExpr>,
    },
    NotMatchedInsert {
        predicate: Option<MergeExpr>,
        values: Vec<(String, MergeExpr)>,
    },
    NotMatchedBySourceUpdate {
        predicate: Option<MergeExpr>,
        set: Vec<(String, MergeExpr)>,
    },
    NotMatchedBySourceDelete {
        predicate: Option<MergeExpr>,
    },
}

/// A whole MERGE: the join condition, the aliases it uses, and its clauses in order.
#[derive(Debug, Clone)]
pub struct MergeSpec {
    pub on: MergeExpr,
    pub source_alias: String,
    pub target_alias: String,
    pub clauses: Vec<MergeClause>,
}

macro_rules! with_expr {
    ($b:expr, $method:ident, $e:expr) => {
        match $e {
            MergeExpr::Expr(x) => $b.$method(x.clone()),
            MergeExpr::Sql(s) => $b.$method(s.clone()),
        }
    };
    ($b:expr, $method:ident, $col:expr, $e:expr) => {
        match $e {
            MergeExpr::Expr(x) => $b.$method(Column::new_unqualified($col.as_str()), x.clone()),
            MergeExpr::Sql(s) => $b.$method(Column::new_unqualified($col.as_str()), s.clone()),
        }
    };
}

/// Runs a MERGE of `source` into the table in one commit.
pub async fn merge_with(
    mut table: DeltaTable,
    name: &str,
    source: DataFrame,
    spec: MergeSpec,
    opts: &WriteOptions,
) -> Result<(DeltaTable, WriteOutcome)> {
    if let Some(done) = precheck(&mut table, name, opts).await? {
        return Ok((table, done));
    }
    let location = table.table_url().clone();
    let builder = match &spec.on {
        MergeExpr::Expr(e) => table.merge(source, e.clone()),
        MergeExpr::Sql(s) => table.merge(source, s.clone()),
    };
    let mut builder = builder
        .with_source_alias(&spec.source_alias)
        .with_target_alias(&spec.target_alias)
        .with_session_state(opts.session())
        .with_commit_properties(commit_properties(opts))
        .with_writer_properties(writer_properties());
    let fail = |e| Error::delta(name, e);
    // one WHEN clause: its optional predicate, then its (column, value) pairs
    macro_rules! clause {
        ($when:ident, $predicate:expr) => {
            builder
                .$when(|mut b| {
                    if let Some(p) = &$predicate {
                        b = with_expr!(b, predicate, p);
                    }
                    b
                })
                .map_err(fail)?
        };
        ($when:ident, $predicate:expr, $pairs:expr, $set:ident) => {
            builder
                .$when(|mut b| {
                    if let Some(p) = &$predicate {
                        b = with_expr!(b, predicate, p);
                    }
                    for (c, e) in &$pairs {
                        b = with_expr!(b, $set, c, e);
                    }
                    b
                })
                .map_err(fail)?
        };
    }
    for clause in spec.clauses {
        builder = match clause {
            MergeClause::MatchedUpdate { predicate, set } => {
                clause!(when_matched_update, predicate, set, update)
            }
            MergeClause::MatchedDelete { predicate } => clause!(when_matched_delete, predicate),
            MergeClause::NotMatchedInsert { predicate, values } => {
                clause!(when_not_matched_insert, predicate, values, set)
            }
            MergeClause::NotMatchedBySourceUpdate { predicate, set } => {
                clause!(when_not_matched_by_source_update, predicate, set, update)
            }
            MergeClause::NotMatchedBySourceDelete { predicate } => {
                clause!(when_not_matched_by_source_delete, predicate)
            }
        };
    }
    match builder.await {
        Ok((t, m)) => {
            let rows = (m.num_target_rows_inserted
                + m.num_target_rows_updated
                + m.num_target_rows_deleted) as u64;
            let mut o = outcome(&t, &[]).await?;
            o.rows = rows;
            Ok((t, o))
        }
        Err(e) => {
            let o = settle_error(&location, name, opts, Error::delta(name, e)).await?;
            Ok((open_table(&location, name).await?, o))
        }
    }
}

/// Upserts `source` by `keys` in one commit: matched rows are updated with every column,
/// unmatched rows inserted, and matched rows for which `delete_when` (a predicate over the
/// source's columns) holds are deleted instead (and such rows are never inserted).
pub async fn merge(
    table: DeltaTable,
    name: &str,
    source: DataFrame,
    keys: &[String],
    delete_when: Option<&str>,
    opts: &WriteOptions,
) -> Result<(DeltaTable, WriteOutcome)> {
    if keys.is_empty() {
        return Err(Error::InvalidInput(format!(
            "merge into {name} needs at least one key column"
        )));
    }
    let session = opts.session();
    let schema = arrow_schema(&table, name)?;
    let source_schema = source.schema().as_arrow().clone();
    for k in keys {
        if schema.field_with_name(k).is_err() {
            return Err(Error::InvalidInput(format!(
                "merge key '{k}' is not a column of table {name} (its columns: {})",
                column_list(&schema)
            )));
        }
        if source_schema.field_with_name(k).is_err() {
            return Err(Error::InvalidInput(format!(
                "merge key '{k}' is not a column of the source data"
            )));
        }
    }
    let delete_expr = match delete_when {
        Some(p) => {
            let e = parse_predicate(&session, &source_schema, "the merge source", p)?;
            Some(qualify(e, "source")?)
        }
        None => None,
    };
    let source = conform(source, &schema, name, false)?;
    let on = keys
        .iter()
        .map(|k| {
            Expr::Column(Column::new(Some("target"), k.as_str()))
                .eq(Expr::Column(Column::new(Some("source"), k.as_str())))
        })
        .reduce(Expr::and)
        .expect("keys is not empty");
    let all: Vec<(String, MergeExpr)> = schema
        .fields()
        .iter()
        .map(|f| {
            (
                f.name().clone(),
                MergeExpr::Expr(Expr::Column(Column::new(Some("source"), f.name().as_str()))),
            )
        })
        .collect();
    let mut clauses = Vec::new();
    if let Some(d) = &delete_expr {
        clauses.push(MergeClause::MatchedDelete {
            predicate: Some(MergeExpr::Expr(d.clone())),
        });
    }
    clauses.push(MergeClause::MatchedUpdate {
        predicate: None,
        set: all.clone(),
    });
    clauses.push(MergeClause::NotMatchedInsert {
        predicate: delete_expr.map(|d| MergeExpr::Expr(Expr::Not(Box::new(d)))),
        values: all,
    });
    let spec = MergeSpec {
        on: MergeExpr::Expr(on),
        source_alias: "source".into(),
        target_alias: "target".into(),
        clauses,
    };
    let opts = WriteOptions {
        session: Some(session),
        ..opts.clone()
    };
    merge_with(table, name, source, spec, &opts).await
}

fn qualify(expr: Expr, relation: &str) -> Result<Expr> {
    Ok(expr
        .transform(|e| {
            Ok(match e {
                Expr::Column(c) if c.relation.is_none() => {
                    Transformed::yes(Expr::Column(Column::new(Some(relation), c.name)))
                }
                other => Transformed::no(other),
            })
        })?
        .data)
}

/// Deletes the rows matching `predicate` (all rows when `None`) in one commit.
pub async fn delete(
    mut table: DeltaTable,
    name: &str,
    predicate: Option<Expr>,
    opts: &WriteOptions,
) -> Result<(DeltaTable, WriteOutcome)> {
    if let Some(done) = precheck(&mut table, name, opts).await? {
        return Ok((table, done));
    }
    let location = table.table_url().clone();
    let mut builder = table
        .delete()
        .with_session_state(opts.session())
        .with_commit_properties(commit_properties(opts))
        .with_writer_properties(writer_properties());
    if let Some(p) = predicate {
        builder = builder.with_predicate(p);
    }
    match builder.await {
        Ok((t, m)) => {
            let mut o = outcome(&t, &[]).await?;
            o.rows = m.num_deleted_rows.unwrap_or(0) as u64;
            Ok((t, o))
        }
        Err(e) => {
            let o = settle_error(&location, name, opts, Error::delta(name, e)).await?;
            Ok((open_table(&location, name).await?, o))
        }
    }
}

/// Updates the rows matching `predicate` with `assignments` (column, new value) in one commit.
pub async fn update(
    mut table: DeltaTable,
    name: &str,
    predicate: Option<Expr>,
    assignments: Vec<(String, Expr)>,
    opts: &WriteOptions,
) -> Result<(DeltaTable, WriteOutcome)> {
    if assignments.is_empty() {
        return Err(Error::InvalidInput(format!(
            "update of {name} sets no column"
        )));
    }
    if let Some(done) = precheck(&mut table, name, opts).await? {
        return Ok((table, done));
    }
    let location = table.table_url().clone();
    let mut builder = table
        .update()
        .with_session_state(opts.session())
        .with_commit_properties(commit_properties(opts))
        .with_writer_properties(writer_properties())
        .with_safe_cast(false);
    if let Some(p) = predicate {
        builder = builder.with_predicate(p);
    }
    for (c, e) in assignments {
        builder = builder.with_update(Column::new_unqualified(c), e);
    }
    match builder.await {
        Ok((t, m)) => {
            let mut o = outcome(&t, &[]).await?;
            o.rows = m.num_updated_rows as u64;
            Ok((t, o))
        }
        Err(e) => {
            let o = settle_error(&location, name, opts, Error::delta(name, e)).await?;
            Ok((open_table(&location, name).await?, o))
        }
    }
}

/// Restores the table to `version` in one commit (files of later versions are removed from
/// the table, not deleted).
pub async fn restore(table: DeltaTable, name: &str, version: i64) -> Result<DeltaTable> {
    let latest = current_version(&table);
    if version < 0 || version > latest {
        return Err(Error::NotFound(format!(
            "table {name} has no version {version} to restore (latest is {latest})"
        )));
    }
    if version == latest {
        return Err(Error::InvalidInput(format!(
            "table {name} is already at version {version}"
        )));
    }
    let (t, _m) = table
        .restore()
        .with_version_to_restore(version as u64)
        .await
        .map_err(|e| Error::delta(name, e))?;
    Ok(t)
}

/// Result of an optimize.
#[derive(Debug, Clone)]
pub struct OptimizeOutcome {
    pub version: Option<i64>,
    pub files_added: u64,
    pub files_removed: u64,
}

/// Compacts small files (or Z-orders by `zorder` columns) in one commit; `dataChange=false`.
pub async fn optimize(
    table: DeltaTable,
    name: &str,
    zorder: Option<Vec<String>>,
) -> Result<(DeltaTable, OptimizeOutcome)> {
    let before = current_version(&table);
    let mut builder = table.optimize().with_writer_properties(writer_properties());
    if let Some(cols) = zorder {
        if cols.is_empty() {
            return Err(Error::InvalidInput(
                "ZORDER BY needs at least one column".into(),
            ));
        }
        builder = builder.with_type(OptimizeType::ZOrder(cols));
    }
    let (t, m) = builder.await.map_err(|e| Error::delta(name, e))?;
    let after = current_version(&t);
    Ok((
        t,
        OptimizeOutcome {
            version: (after != before).then_some(after),
            files_added: m.num_files_added,
            files_removed: m.num_files_removed,
        },
    ))
}

/// Result of a vacuum.
#[derive(Debug, Clone)]
pub struct VacuumOutcome {
    pub dry_run: bool,
    pub files: Vec<String>,
}

/// Deletes files no version within `retain_hours` (default: the table's
/// `delta.deletedFileRetentionDuration`, 7 days) still needs. A retention shorter than the
/// table's is refused, as in Delta: time travel and the change feed need those files; lower the
/// table property first to mean it.
pub async fn vacuum(
    table: DeltaTable,
    name: &str,
    retain_hours: Option<u64>,
    dry_run: bool,
) -> Result<(DeltaTable, VacuumOutcome)> {
    let mut builder = table.vacuum().with_dry_run(dry_run);
    if let Some(h) = retain_hours {
        builder = builder
            .with_retention_period(chrono::Duration::hours(h as i64))
            .with_enforce_retention_duration(true);
    }
    let (t, m) = builder.await.map_err(|e| Error::delta(name, e))?;
    Ok((
        t,
        VacuumOutcome {
            dry_run: m.dry_run,
            files: m.files_deleted,
        },
    ))
}

/// Adds nullable columns in one commit.
pub async fn add_columns(table: DeltaTable, name: &str, fields: Vec<Field>) -> Result<DeltaTable> {
    let schema = arrow_schema(&table, name)?;
    for f in &fields {
        if !f.is_nullable() {
            return Err(Error::InvalidInput(format!(
                "column {} cannot be NOT NULL: the rows already in {name} have no value for it",
                f.name()
            )));
        }
        if schema
            .fields()
            .iter()
            .any(|e| e.name().eq_ignore_ascii_case(f.name()))
        {
            return Err(Error::AlreadyExists(format!(
                "table {name} already has a column {}",
                f.name()
            )));
        }
    }
    let delta = delta_schema(&ArrowSchema::new(
        fields
            .iter()
            .map(|f| f.clone().with_nullable(true))
            .collect::<Vec<_>>(),
    ))?;
    table
        .add_columns()
        .with_fields(delta.fields().cloned().collect::<Vec<_>>())
        .await
        .map_err(|e| Error::delta(name, e))
}

/// Sets Delta table properties in one commit.
pub async fn set_properties(
    table: DeltaTable,
    name: &str,
    props: HashMap<String, String>,
) -> Result<DeltaTable> {
    table
        .set_tbl_properties()
        .with_properties(props)
        .await
        .map_err(|e| Error::delta(name, e))
}

/// Facts about the current version, for `describe` and `DESCRIBE DETAIL`.
#[derive(Debug, Clone)]
pub struct Detail {
    pub id: String,
    pub version: i64,
    pub num_files: u64,
    pub size_bytes: u64,
    pub partition_columns: Vec<String>,
    pub properties: HashMap<String, String>,
    pub min_reader_version: i32,
    pub min_writer_version: i32,
    pub created_time: Option<i64>,
}

pub fn detail(table: &DeltaTable, name: &str) -> Result<Detail> {
    let snapshot = table.snapshot().map_err(|e| Error::delta(name, e))?;
    let metadata = snapshot.metadata();
    let (mut num_files, mut size) = (0u64, 0u64);
    for f in snapshot.log_data().iter() {
        num_files += 1;
        size += f.size() as u64;
    }
    let protocol = snapshot.protocol();
    Ok(Detail {
        id: metadata.id().to_string(),
        version: current_version(table),
        num_files,
        size_bytes: size,
        partition_columns: metadata.partition_columns().to_vec(),
        properties: metadata.configuration().clone(),
        min_reader_version: protocol.min_reader_version(),
        min_writer_version: protocol.min_writer_version(),
        created_time: metadata.created_time(),
    })
}

/// Creates a table from `data` in one commit: version 0 holds the schema, the role's
/// properties and the rows (CREATE TABLE .. AS SELECT).
pub async fn create_table_as(
    location: &Url,
    spec: &CreateSpec,
    data: DataFrame,
    opts: &WriteOptions,
) -> Result<(DeltaTable, WriteOutcome)> {
    let fields: Vec<Field> = spec
        .schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_data_type(delta_type(f.data_type())))
        .collect();
    let schema = ArrowSchema::new(fields);
    delta_schema(&schema)?;
    for p in &spec.partition_by {
        if schema.field_with_name(p).is_err() {
            return Err(Error::InvalidInput(format!(
                "partition column '{p}' is not a column of {} (columns: {})",
                spec.name,
                column_list(&schema)
            )));
        }
    }
    let data = conform(data, &schema, &spec.name, false)?;
    let mut props = spec.role.properties();
    props.extend(spec.properties.clone());
    let table = DeltaTable::try_from_url(location.clone())
        .await
        .map_err(|e| Error::delta(&spec.name, e))?;
    let mut builder = table
        .write(Vec::new())
        .with_input_plan(data.logical_plan().clone())
        .with_save_mode(SaveMode::ErrorIfExists)
        .with_table_name(spec.name.clone())
        .with_configuration(props.into_iter().map(|(k, v)| (k, Some(v))))
        .with_partition_columns(spec.partition_by.clone())
        .with_session_state(opts.session())
        .with_commit_properties(commit_properties(opts))
        .with_writer_properties(writer_properties());
    if let Some(c) = &spec.comment {
        builder = builder.with_description(c.clone());
    }
    let t = builder.await.map_err(|e| Error::delta(&spec.name, e))?;
    let o = outcome(&t, &["num_added_rows", "numOutputRows"]).await?;
    Ok((t, o))
}
