//! The SQL engine: one front end for every access path (CLI, and later the Postgres wire,
//! Flight SQL and HTTP).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{
    ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::catalog::{CatalogProviderList, MemoryCatalogProviderList};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, TableReference};
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::{DmlStatement, Expr, LogicalPlan, WriteOp};
use datafusion::prelude::DataFrame;
use datafusion::sql::parser::{DFParserBuilder, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::{CommentObject, ObjectType, Statement as SqlStatement};
use strata_catalog::Lakehouse;
use strata_catalog::lakehouse::{CreateTable, RestoreTarget};
use strata_catalog::metastore::{TableInfo, TableUpdate};
use strata_core::types::{parse_columns, timestamp_type};
use strata_core::{Layer, SchemaName, TableKind, TableName};
use strata_table::{Txn, WriteOptions};

use crate::dialect::StrataDialect;
use crate::error::{Error, Result};
use crate::extensions::{
    Extension, RestoreTo, TxnKey, expand_merge_stars, parse_extension, split_statements,
};
use crate::resolve::{Resolved, VersionPlanner, name_parts, table_name_of};
use crate::timestamp::parse_timestamp;
use crate::types::StrataTypePlanner;

/// What a statement returns.
#[derive(Debug, Clone)]
pub enum Output {
    Rows {
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    },
    /// A statement without rows: what it did, in one line.
    Status(String),
}

impl Output {
    fn rows(batch: RecordBatch) -> Output {
        Output::Rows {
            schema: batch.schema(),
            batches: vec![batch],
        }
    }
}

#[derive(Debug, Default, Clone)]
struct TxnSettings {
    app_id: Option<String>,
    version: Option<i64>,
}

/// A SQL session over one lakehouse.
pub struct SqlEngine {
    pub(crate) lakehouse: Lakehouse,
    pub(crate) base: SessionState,
    txn: Mutex<TxnSettings>,
}

impl SqlEngine {
    pub fn new(lakehouse: Lakehouse) -> Self {
        let base = SessionStateBuilder::new_from_existing(strata_table::session::session_state())
            .with_type_planner(Arc::new(StrataTypePlanner))
            .build();
        SqlEngine {
            lakehouse,
            base,
            txn: Mutex::new(TxnSettings::default()),
        }
    }

    pub fn lakehouse(&self) -> &Lakehouse {
        &self.lakehouse
    }

    /// Sets the transaction id every following write carries (`--txn APP:VERSION`).
    pub fn set_txn(&self, txn: Option<Txn>) {
        let mut t = self.txn.lock().expect("txn lock");
        *t = match txn {
            Some(x) => TxnSettings {
                app_id: Some(x.app_id),
                version: Some(x.version),
            },
            None => TxnSettings::default(),
        };
    }

    pub(crate) fn write_options(&self, state: &SessionState) -> Result<WriteOptions> {
        let t = self.txn.lock().expect("txn lock").clone();
        let txn = match (t.app_id, t.version) {
            (Some(a), Some(v)) => Some(Txn::new(a, v)),
            (None, None) => None,
            _ => {
                return Err(Error::InvalidInput(
                    "a transaction id needs both strata.txn_app_id and strata.txn_version".into(),
                ));
            }
        };
        Ok(WriteOptions {
            txn,
            txns: Vec::new(),
            evolve_schema: false,
            session: Some(Arc::new(state.clone())),
        })
    }

    /// Runs every statement of a script, in order; stops at the first error.
    pub async fn execute(&self, sql: &str) -> Result<Vec<Output>> {
        let mut out = Vec::new();
        for stmt in split_statements(sql)? {
            out.push(self.execute_one(&stmt).await?);
        }
        Ok(out)
    }

    /// Runs one statement.
    pub async fn execute_one(&self, sql: &str) -> Result<Output> {
        if let Some(ext) = parse_extension(sql)? {
            return self.run_extension(ext).await;
        }
        let stmt = parse_one(sql)?;
        match stmt {
            DFStatement::Statement(s) => self.run_statement(*s, sql).await,
            DFStatement::Explain(_) => {
                let (state, plan) = self.plan(&stmt, 0).await?;
                self.collect(state, plan).await
            }
            DFStatement::CreateExternalTable(_) => Err(Error::Refused(
                "CREATE EXTERNAL TABLE is not available; register an existing Delta table with \
                 `strata table register NAME --location PATH`"
                    .into(),
            )),
            DFStatement::CopyTo(_) => Err(Error::Refused("COPY is not available".into())),
            DFStatement::Reset(_) => Err(Error::Unsupported("RESET is not supported".into())),
        }
    }

    /// Plans a query's SQL text (views, CTAS sources) to a logical plan.
    /// A view's definition is its whole `CREATE VIEW` statement; its query is planned.
    pub(crate) async fn plan_query_text(&self, sql: &str, depth: usize) -> Result<LogicalPlan> {
        let mut stmt = parse_one(sql)?;
        if let DFStatement::Statement(s) = &stmt
            && let SqlStatement::CreateView(cv) = s.as_ref()
        {
            stmt = DFStatement::Statement(Box::new(SqlStatement::Query(cv.query.clone())));
        }
        let (_, plan) = self.plan(&stmt, depth).await?;
        Ok(plan)
    }

    /// Resolves and plans a statement in a state made for it.
    async fn plan(&self, stmt: &DFStatement, depth: usize) -> Result<(SessionState, LogicalPlan)> {
        let resolved = match stmt {
            DFStatement::Statement(s) => self.resolve(s.as_ref(), depth).await?,
            DFStatement::Explain(e) => match e.statement.as_ref() {
                DFStatement::Statement(s) => self.resolve(s.as_ref(), depth).await?,
                _ => Resolved::default(),
            },
            _ => Resolved::default(),
        };
        let state = self.state_for(resolved)?;
        let plan = state.statement_to_plan(stmt.clone()).await?;
        Ok((state, plan))
    }

    pub(crate) fn state_for(&self, resolved: Resolved) -> Result<SessionState> {
        let catalogs = Arc::new(MemoryCatalogProviderList::new());
        for (name, c) in resolved.catalogs {
            catalogs.register_catalog(name, c);
        }
        let mut state = SessionStateBuilder::new_from_existing(self.base.clone())
            .with_catalog_list(catalogs)
            .with_relation_planners(vec![Arc::new(VersionPlanner {
                pinned: resolved.pinned,
            })])
            .build();
        state.mark_start_execution();
        Ok(state)
    }

    async fn collect(&self, state: SessionState, plan: LogicalPlan) -> Result<Output> {
        let df = DataFrame::new(state, plan);
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let batches = df.collect().await?;
        Ok(Output::Rows { schema, batches })
    }

    async fn run_statement(&self, s: SqlStatement, text: &str) -> Result<Output> {
        match s {
            SqlStatement::Query(_)
            | SqlStatement::Explain { .. }
            | SqlStatement::ExplainTable { .. } => {
                let stmt = DFStatement::Statement(Box::new(s));
                let (state, plan) = self.plan(&stmt, 0).await?;
                self.collect(state, plan).await
            }
            SqlStatement::Insert(_) | SqlStatement::Delete(_) | SqlStatement::Update(_) => {
                self.run_dml(s).await
            }
            SqlStatement::Merge(m) => self.run_merge(m).await,
            SqlStatement::CreateTable(ct) => self.run_create_table(ct).await,
            SqlStatement::CreateView(cv) => self.run_create_view(cv, text).await,
            SqlStatement::Drop {
                object_type,
                if_exists,
                names,
                purge,
                ..
            } => {
                if !matches!(object_type, ObjectType::Table | ObjectType::View) {
                    return Err(Error::Unsupported(format!(
                        "DROP {object_type} is not supported"
                    )));
                }
                let mut dropped = Vec::new();
                for n in &names {
                    let tn = table_name_of(n)?;
                    match self.lakehouse.drop_table(&tn, purge).await {
                        Ok(_) => dropped.push(tn.to_string()),
                        Err(strata_catalog::Error::NotFound(_)) if if_exists => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                Ok(Output::Status(if dropped.is_empty() {
                    "nothing dropped".into()
                } else {
                    format!("dropped {}", dropped.join(", "))
                }))
            }
            SqlStatement::Comment {
                object_type,
                object_name,
                comment,
                ..
            } => {
                let parts = name_parts(&object_name);
                match object_type {
                    CommentObject::Table | CommentObject::View => {
                        let tn = table_name_of(&object_name)?;
                        let info = self.lakehouse.table(&tn).await?;
                        self.lakehouse
                            .metastore()
                            .update_table(
                                &info.table_id,
                                TableUpdate {
                                    comment: Some(comment),
                                    ..Default::default()
                                },
                            )
                            .await?;
                        Ok(Output::Status(format!("comment set on {tn}")))
                    }
                    CommentObject::Column => {
                        let (col, table) = parts.split_last().ok_or_else(|| {
                            Error::InvalidInput("COMMENT ON COLUMN schema.table.column".into())
                        })?;
                        let tn = TableName::parse(&table.join("."))?;
                        let info = self.lakehouse.table(&tn).await?;
                        self.check_column(&info, col).await?;
                        self.lakehouse
                            .metastore()
                            .set_column_comment(&info.table_id, col, comment.as_deref())
                            .await?;
                        Ok(Output::Status(format!("comment set on {tn}.{col}")))
                    }
                    other => Err(Error::Unsupported(format!(
                        "COMMENT ON {other} is not supported"
                    ))),
                }
            }
            SqlStatement::StartTransaction { .. } | SqlStatement::Commit { .. } => {
                Ok(Output::Status(
                    "each statement commits on its own; BEGIN and COMMIT have no effect".into(),
                ))
            }
            other => Err(Error::Unsupported(format!(
                "this statement is not supported: {}",
                other.to_string().chars().take(60).collect::<String>()
            ))),
        }
    }

    /// Fails unless `column` is a column of the table (with a case hint).
    async fn check_column(&self, info: &TableInfo, column: &str) -> Result<()> {
        let table = self.lakehouse.open_delta(info).await?;
        let schema = strata_table::arrow_schema(&table, &info.name.to_string())?;
        if schema.field_with_name(column).is_ok() {
            return Ok(());
        }
        let hint = schema
            .fields()
            .iter()
            .find(|f| f.name().eq_ignore_ascii_case(column))
            .map(|f| {
                format!(
                    "; the column is named {}",
                    strata_core::types::quote_if_needed(f.name())
                )
            })
            .unwrap_or_default();
        Err(Error::NotFound(format!(
            "table {} has no column {column}{hint}",
            info.name
        )))
    }

    /// Layer rules for a write into `target` that reads `sources`.
    pub(crate) fn check_reads(
        target: &TableName,
        target_layer: Option<Layer>,
        sources: &[TableInfo],
    ) -> Result<()> {
        let Some(layer) = target_layer else {
            return Ok(());
        };
        for s in sources.iter().filter(|s| &s.name != target) {
            if let Some(sl) = s.layer
                && !layer.may_read(sl)
            {
                let why = if layer == Layer::Gold && sl == Layer::Bronze {
                    "a gold table never reads bronze: refine the data into silver first".to_string()
                } else {
                    format!("a {layer} table may not read the {sl} layer")
                };
                return Err(Error::Refused(format!(
                    "{target} ({layer}) cannot read {} ({sl}): {why}",
                    s.name
                )));
            }
        }
        Ok(())
    }

    async fn run_dml(&self, s: SqlStatement) -> Result<Output> {
        let stmt = DFStatement::Statement(Box::new(s));
        let DFStatement::Statement(inner) = &stmt else {
            unreachable!()
        };
        let resolved = self.resolve(inner.as_ref(), 0).await?;
        let tables = resolved.tables.clone();
        let state = self.state_for(resolved)?;
        let plan = state.statement_to_plan(stmt.clone()).await?;
        let LogicalPlan::Dml(DmlStatement {
            table_name,
            op,
            input,
            ..
        }) = plan
        else {
            return Err(Error::Unsupported(
                "this statement did not plan as a write".into(),
            ));
        };
        let tn = table_ref_name(&table_name)?;
        if tn.schema.as_str() == "system" {
            return Err(Error::Refused(format!(
                "{tn} is a system table and read-only"
            )));
        }
        let info = tables
            .iter()
            .find(|t| t.name == tn)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("table {tn} does not exist")))?;
        Lakehouse::check_user_writable(&info)?;
        Self::check_reads(&info.name, info.layer, &tables)?;
        let name = tn.to_string();
        let opts = self.write_options(&state)?;
        let table = self.lakehouse.open_delta(&info).await?;
        let (verb, outcome) = match op {
            WriteOp::Insert(insert_op) => {
                if insert_op != datafusion::logical_expr::dml::InsertOp::Append {
                    return Err(Error::Unsupported(
                        "INSERT OVERWRITE is not supported; use DELETE then INSERT, or MERGE"
                            .into(),
                    ));
                }
                let df = DataFrame::new(state.clone(), input.as_ref().clone());
                let (_, o) = strata_table::append(table, &name, df, &opts).await?;
                ("INSERT", o)
            }
            WriteOp::Delete => {
                let predicate = filter_predicate(&input)?;
                let (_, o) = strata_table::delete(table, &name, predicate, &opts).await?;
                ("DELETE", o)
            }
            WriteOp::Update => {
                let (predicate, assignments) = update_parts(&input)?;
                let (_, o) =
                    strata_table::update(table, &name, predicate, assignments, &opts).await?;
                ("UPDATE", o)
            }
            other => return Err(Error::Unsupported(format!("{other} is not supported"))),
        };
        self.lakehouse
            .metastore()
            .touch_table(&info.table_id)
            .await?;
        Ok(Output::Status(status_line(verb, &name, &outcome)))
    }

    async fn run_create_table(
        &self,
        ct: datafusion::sql::sqlparser::ast::CreateTable,
    ) -> Result<Output> {
        let tn = table_name_of(&ct.name)?;
        if ct.or_replace {
            return Err(Error::Unsupported(format!(
                "CREATE OR REPLACE TABLE is not supported; DROP TABLE {tn} first"
            )));
        }
        let hive_location = ct.hive_formats.as_ref().and_then(|h| h.location.clone());
        if ct.external || ct.location.is_some() || hive_location.is_some() {
            return Err(Error::Refused(format!(
                "a table's location is chosen by Strata; register an existing Delta table with \
                 `strata table register {tn} --location PATH`"
            )));
        }
        if self.lakehouse.metastore().get_table(&tn).await?.is_some() {
            if ct.if_not_exists {
                return Ok(Output::Status(format!("table {tn} exists already")));
            }
            return Err(Error::Catalog(strata_catalog::Error::AlreadyExists(
                format!("table {tn} already exists"),
            )));
        }
        let partition_by = create_partitions(&ct)?;
        let comment = ct.comment.as_ref().map(|c| match c {
            datafusion::sql::sqlparser::ast::CommentDef::WithEq(s)
            | datafusion::sql::sqlparser::ast::CommentDef::WithoutEq(s) => s.clone(),
        });
        let (role_layer, _) = self
            .lakehouse
            .role_of(&tn.schema_name())
            .await
            .map(|(r, l)| (l, r))?;
        if let Some(query) = ct.query {
            // CTAS: plan the query, check the layer rules, then create with the data in v0.
            let stmt = DFStatement::Statement(Box::new(SqlStatement::Query(query)));
            let DFStatement::Statement(inner) = &stmt else {
                unreachable!()
            };
            let resolved = self.resolve(inner.as_ref(), 0).await?;
            let sources = resolved.tables.clone();
            match role_layer {
                Some(Layer::Bronze) => {
                    return Err(Error::Refused(format!(
                        "table {tn} would be in the bronze layer, which only ingestion writes"
                    )));
                }
                None => {
                    return Err(Error::Refused(format!(
                        "table {tn} would be a quarantine table, which only Strata writes"
                    )));
                }
                _ => {}
            }
            Self::check_reads(&tn, role_layer, &sources)?;
            let state = self.state_for(resolved)?;
            let plan = state.statement_to_plan(stmt).await?;
            let df = DataFrame::new(state.clone(), plan);
            let fields: Vec<Field> = df
                .schema()
                .as_arrow()
                .fields()
                .iter()
                .map(|f| {
                    f.as_ref()
                        .clone()
                        .with_data_type(strata_table::delta_type(f.data_type()))
                })
                .collect();
            check_column_names(&fields)?;
            let spec = CreateTable {
                columns: fields,
                partition_by,
                comment,
                ..Default::default()
            };
            let opts = self.write_options(&state)?;
            let (info, version, rows) =
                self.lakehouse.create_table_as(&tn, spec, df, &opts).await?;
            self.record_lineage(&sources, &info.name, "ctas").await?;
            return Ok(Output::Status(format!(
                "created table {tn} (version {version}) with {rows} rows"
            )));
        }
        if ct.columns.is_empty() {
            return Err(Error::InvalidInput(format!(
                "CREATE TABLE {tn} needs columns, or AS SELECT ..."
            )));
        }
        let mut fields = Vec::new();
        let mut comments = BTreeMap::new();
        for c in &ct.columns {
            let name = if c.name.quote_style.is_some() {
                c.name.value.clone()
            } else {
                c.name.value.to_lowercase()
            };
            let data_type = strata_core::types::parse_type(&c.data_type.to_string())
                .map_err(|e| Error::InvalidInput(format!("column {name}: {e}")))?;
            let mut nullable = true;
            for opt in &c.options {
                use datafusion::sql::sqlparser::ast::ColumnOption;
                match &opt.option {
                    ColumnOption::NotNull => nullable = false,
                    ColumnOption::Null => nullable = true,
                    ColumnOption::Comment(s) => {
                        comments.insert(name.clone(), s.clone());
                    }
                    other => {
                        return Err(Error::Unsupported(format!(
                            "column option {other} on {name} is not supported"
                        )));
                    }
                }
            }
            fields.push(Field::new(name, data_type, nullable));
        }
        check_column_names(&fields)?;
        let (info, _) = self
            .lakehouse
            .create_table(
                &tn,
                CreateTable {
                    columns: fields,
                    column_comments: comments,
                    partition_by,
                    comment,
                    ..Default::default()
                },
            )
            .await?;
        Ok(Output::Status(format!("created table {}", info.name)))
    }

    /// Persists a view. Its definition is kept as the user wrote it: sqlparser prints a
    /// relation's version after its alias, which it cannot parse back.
    async fn run_create_view(
        &self,
        cv: datafusion::sql::sqlparser::ast::CreateView,
        text: &str,
    ) -> Result<Output> {
        let tn = table_name_of(&cv.name)?;
        if cv.materialized {
            return Err(Error::Unsupported(
                "materialized views are not supported; use CREATE TABLE .. AS SELECT or a pipeline"
                    .into(),
            ));
        }
        if !cv.columns.is_empty() {
            return Err(Error::Unsupported(
                "view column lists are not supported; name the columns in the SELECT".into(),
            ));
        }
        let query = text.trim().to_string();
        let stmt = DFStatement::Statement(Box::new(SqlStatement::Query(cv.query)));
        let DFStatement::Statement(inner) = &stmt else {
            unreachable!()
        };
        let resolved = self.resolve(inner.as_ref(), 0).await?;
        let sources = resolved.tables.clone();
        let (_, layer) = self.lakehouse.role_of(&tn.schema_name()).await?;
        Self::check_reads(&tn, layer, &sources)?;
        // the view must plan now
        let state = self.state_for(resolved)?;
        state.statement_to_plan(stmt).await?;
        if let Some(existing) = self.lakehouse.metastore().get_table(&tn).await? {
            if cv.or_replace && existing.kind == TableKind::View {
                self.lakehouse.drop_table(&tn, true).await?;
            } else {
                return Err(Error::Catalog(strata_catalog::Error::AlreadyExists(
                    format!("{tn} already exists"),
                )));
            }
        }
        let info = self.lakehouse.create_view(&tn, &query, None).await?;
        self.record_lineage(&sources, &info.name, "view").await?;
        Ok(Output::Status(format!("created view {tn}")))
    }

    /// Records that `target` reads each of `sources` (by a CTAS or a view).
    async fn record_lineage(
        &self,
        sources: &[TableInfo],
        target: &TableName,
        kind: &str,
    ) -> Result<()> {
        for s in sources.iter().filter(|s| &s.name != target) {
            self.lakehouse
                .metastore()
                .record_lineage(&s.name.to_string(), &target.to_string(), kind, None, None)
                .await?;
        }
        Ok(())
    }

    async fn run_extension(&self, ext: Extension) -> Result<Output> {
        match ext {
            Extension::Optimize { table, zorder } => {
                let info = self.lakehouse.table(&TableName::parse(&table)?).await?;
                Lakehouse::check_writable(&info)?;
                let t = self.lakehouse.open_delta(&info).await?;
                let (_, o) = strata_table::optimize(t, &info.name.to_string(), zorder).await?;
                let schema = Arc::new(Schema::new(vec![
                    Field::new("table", DataType::Utf8, false),
                    Field::new("version", DataType::Int64, true),
                    Field::new("files_added", DataType::Int64, false),
                    Field::new("files_removed", DataType::Int64, false),
                ]));
                let cols: Vec<ArrayRef> = vec![
                    Arc::new(StringArray::from(vec![info.name.to_string()])),
                    Arc::new(Int64Array::from(vec![o.version])),
                    Arc::new(Int64Array::from(vec![o.files_added as i64])),
                    Arc::new(Int64Array::from(vec![o.files_removed as i64])),
                ];
                Ok(Output::rows(
                    RecordBatch::try_new(schema, cols).map_err(df_err)?,
                ))
            }
            Extension::Vacuum {
                table,
                retain_hours,
                dry_run,
            } => {
                let tn = TableName::parse(&table)?;
                let (o, note) = self
                    .lakehouse
                    .vacuum_table(&tn, retain_hours, dry_run, false)
                    .await?;
                if let Some(n) = note {
                    tracing::warn!("{n}");
                }
                let schema = Arc::new(Schema::new(vec![Field::new(
                    if o.dry_run {
                        "file_to_delete"
                    } else {
                        "file_deleted"
                    },
                    DataType::Utf8,
                    false,
                )]));
                Ok(Output::rows(
                    RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(o.files))])
                        .map_err(df_err)?,
                ))
            }
            Extension::DescribeHistory { table, limit } => {
                let info = self.lakehouse.table(&TableName::parse(&table)?).await?;
                let t = self.lakehouse.open_delta(&info).await?;
                let commits = strata_table::history(&t, limit).await?;
                Ok(Output::rows(history_batch(&commits)?))
            }
            Extension::DescribeDetail { table } => {
                let info = self.lakehouse.table(&TableName::parse(&table)?).await?;
                let t = self.lakehouse.open_delta(&info).await?;
                let d = strata_table::detail(&t, &info.name.to_string())?;
                Ok(Output::rows(detail_batch(&info, &d)?))
            }
            Extension::Restore { table, to } => {
                let tn = TableName::parse(&table)?;
                let target = match to {
                    RestoreTo::Version(v) => RestoreTarget::Version(v),
                    RestoreTo::Timestamp(s) => RestoreTarget::Timestamp(parse_timestamp(&s)?),
                };
                let (restored, new_version) = self
                    .lakehouse
                    .restore_table(&tn, target, false)
                    .await
                    .map_err(|e| match e {
                        strata_catalog::Error::Refused(m) => Error::Refused(format!(
                            "{m} (RESTORE TABLE in SQL never forces; use the CLI)"
                        )),
                        other => other.into(),
                    })?;
                Ok(Output::Status(format!(
                    "restored {tn} to version {restored} (new version {new_version})"
                )))
            }
            Extension::AddColumns { table, columns } => {
                let info = self.lakehouse.table(&TableName::parse(&table)?).await?;
                Lakehouse::check_writable(&info)?;
                let cols = parse_columns(&columns)?;
                let t = self.lakehouse.open_delta(&info).await?;
                let fields = cols.iter().map(|c| c.to_field()).collect();
                strata_table::add_columns(t, &info.name.to_string(), fields).await?;
                for c in &cols {
                    if let Some(comment) = &c.comment {
                        self.lakehouse
                            .metastore()
                            .set_column_comment(&info.table_id, &c.name, Some(comment))
                            .await?;
                    }
                }
                self.lakehouse
                    .metastore()
                    .touch_table(&info.table_id)
                    .await?;
                Ok(Output::Status(format!(
                    "added {} column(s) to {}",
                    cols.len(),
                    info.name
                )))
            }
            Extension::SetTblProperties { table, properties } => {
                let info = self.lakehouse.table(&TableName::parse(&table)?).await?;
                let props: BTreeMap<String, String> = properties.into_iter().collect();
                self.lakehouse.set_properties(&info, props).await?;
                Ok(Output::Status(format!("properties set on {}", info.name)))
            }
            Extension::ShowTables { schema } => {
                let filter = match schema {
                    Some(s) => Some(SchemaName::parse(&s)?),
                    None => None,
                };
                let tables = self
                    .lakehouse
                    .metastore()
                    .list_tables(filter.as_ref(), None)
                    .await?;
                let schema = Arc::new(Schema::new(vec![
                    Field::new("schema", DataType::Utf8, false),
                    Field::new("name", DataType::Utf8, false),
                    Field::new("layer", DataType::Utf8, true),
                    Field::new("kind", DataType::Utf8, false),
                ]));
                let cols: Vec<ArrayRef> = vec![
                    Arc::new(StringArray::from(
                        tables
                            .iter()
                            .map(|t| t.name.schema_name().to_string())
                            .collect::<Vec<_>>(),
                    )),
                    Arc::new(StringArray::from(
                        tables
                            .iter()
                            .map(|t| t.name.table.to_string())
                            .collect::<Vec<_>>(),
                    )),
                    Arc::new(StringArray::from(
                        tables
                            .iter()
                            .map(|t| t.layer.map(|l| l.to_string()))
                            .collect::<Vec<_>>(),
                    )),
                    Arc::new(StringArray::from(
                        tables
                            .iter()
                            .map(|t| t.kind.to_string())
                            .collect::<Vec<_>>(),
                    )),
                ];
                Ok(Output::rows(
                    RecordBatch::try_new(schema, cols).map_err(df_err)?,
                ))
            }
            Extension::CreateSchema {
                name,
                layer,
                if_not_exists,
            } => {
                let sn = SchemaName::parse(&name)?;
                let layer: Layer = layer.parse()?;
                match self.lakehouse.create_schema(&sn, layer, None).await {
                    Ok(_) => Ok(Output::Status(format!("created schema {sn} ({layer})"))),
                    Err(strata_catalog::Error::AlreadyExists(_)) if if_not_exists => {
                        Ok(Output::Status(format!("schema {sn} exists already")))
                    }
                    Err(e) => Err(e.into()),
                }
            }
            Extension::SetTxn { key, value } => {
                let mut t = self.txn.lock().expect("txn lock");
                match (key, value) {
                    (TxnKey::AppId, v) => t.app_id = v.filter(|s| !s.is_empty()),
                    (TxnKey::Version, None) => t.version = None,
                    (TxnKey::Version, Some(v)) => {
                        t.version = Some(v.parse().map_err(|_| {
                            Error::InvalidInput(format!(
                                "strata.txn_version must be a whole number, not '{v}'"
                            ))
                        })?)
                    }
                }
                Ok(Output::Status("SET".into()))
            }
        }
    }
}

fn df_err(e: ArrowError) -> Error {
    Error::from(datafusion::error::DataFusionError::from(e))
}

/// Parses exactly one statement with Strata's dialect (trailing text is an error, not dropped).
pub(crate) fn parse_one(sql: &str) -> Result<DFStatement> {
    let sql = expand_merge_stars(sql)?;
    let dialect = StrataDialect::default();
    let mut parser = DFParserBuilder::new(sql.as_str())
        .with_dialect(&dialect)
        .build()
        .map_err(|e| Error::InvalidInput(format!("SQL syntax error: {e}")))?;
    let mut stmts = parser.parse_statements().map_err(|e| {
        Error::InvalidInput(format!(
            "SQL syntax error: {}",
            strata_table::error::strip_df_noise(&e.to_string()).replace("sql parser error: ", "")
        ))
    })?;
    match stmts.len() {
        1 => Ok(stmts.pop_front().expect("one statement")),
        0 => Err(Error::InvalidInput("empty statement".into())),
        n => Err(Error::InvalidInput(format!(
            "expected one statement, found {n}; separate statements with ';' in a script"
        ))),
    }
}

fn table_ref_name(r: &TableReference) -> Result<TableName> {
    match r {
        TableReference::Full {
            catalog,
            schema,
            table,
        } => Ok(TableName::new(catalog, schema, table)?),
        TableReference::Partial { schema, table } => {
            Ok(TableName::new("lakehouse", schema, table)?)
        }
        TableReference::Bare { table } => Ok(TableName::parse(table)?),
    }
}

fn unqualify(e: Expr) -> Result<Expr> {
    Ok(e.transform(|e| {
        Ok(match e {
            Expr::Column(c) if c.relation.is_some() => {
                Transformed::yes(Expr::Column(Column::new_unqualified(c.name)))
            }
            other => Transformed::no(other),
        })
    })
    .map_err(Error::from)?
    .data)
}

/// The predicate of a DELETE plan: `Filter(pred, TableScan)` or a bare scan.
fn filter_predicate(input: &LogicalPlan) -> Result<Option<Expr>> {
    match input {
        LogicalPlan::Filter(f) => Ok(Some(unqualify(f.predicate.clone())?)),
        LogicalPlan::TableScan(_) => Ok(None),
        LogicalPlan::Projection(p) => filter_predicate(&p.input),
        other => Err(Error::Unsupported(format!(
            "this DELETE or UPDATE shape is not supported ({})",
            other.display()
        ))),
    }
}

/// Column assignments of an UPDATE: (column, new value).
type Assignments = Vec<(String, Expr)>;

/// The predicate and assignments of an UPDATE plan: `Projection(exprs, Filter(..))`.
fn update_parts(input: &LogicalPlan) -> Result<(Option<Expr>, Assignments)> {
    let LogicalPlan::Projection(p) = input else {
        return Err(Error::Unsupported(
            "this UPDATE shape is not supported".into(),
        ));
    };
    let predicate = filter_predicate(&p.input)?;
    let mut assignments = Vec::new();
    for (expr, field) in p.expr.iter().zip(p.schema.fields()) {
        let inner = match expr {
            Expr::Alias(a) => a.expr.as_ref(),
            e => e,
        };
        if let Expr::Column(c) = inner
            && c.name == *field.name()
        {
            continue;
        }
        assignments.push((field.name().clone(), unqualify(inner.clone())?));
    }
    Ok((predicate, assignments))
}

fn status_line(verb: &str, name: &str, o: &strata_table::WriteOutcome) -> String {
    match o.version {
        Some(v) => format!("{verb} {}: {name} is at version {v}", o.rows),
        None => {
            format!("{verb} 0: the transaction was already committed to {name}; nothing written")
        }
    }
}

fn check_column_names(fields: &[Field]) -> Result<()> {
    let mut seen: HashMap<String, &str> = HashMap::new();
    for f in fields {
        if f.name().is_empty() {
            return Err(Error::InvalidInput("a column name is empty".into()));
        }
        if let Some(other) = seen.insert(f.name().to_lowercase(), f.name()) {
            return Err(Error::InvalidInput(format!(
                "columns {other} and {} differ only in case; give one of them another name (AS ...)",
                f.name()
            )));
        }
    }
    Ok(())
}

fn create_partitions(ct: &datafusion::sql::sqlparser::ast::CreateTable) -> Result<Vec<String>> {
    use datafusion::sql::sqlparser::ast::{Expr as SqlExpr, HiveDistributionStyle};
    let mut out = Vec::new();
    if let HiveDistributionStyle::PARTITIONED { columns } = &ct.hive_distribution {
        out.extend(columns.iter().map(|c| {
            if c.name.quote_style.is_some() {
                c.name.value.clone()
            } else {
                c.name.value.to_lowercase()
            }
        }));
    }
    if let Some(e) = &ct.partition_by {
        let mut push = |e: &SqlExpr| -> Result<()> {
            match e {
                SqlExpr::Identifier(i) => {
                    out.push(if i.quote_style.is_some() {
                        i.value.clone()
                    } else {
                        i.value.to_lowercase()
                    });
                    Ok(())
                }
                other => Err(Error::Unsupported(format!(
                    "PARTITION BY takes column names, not {other}"
                ))),
            }
        };
        match e.as_ref() {
            SqlExpr::Tuple(items) => {
                for i in items {
                    push(i)?;
                }
            }
            SqlExpr::Nested(inner) => push(inner)?,
            other => push(other)?,
        }
    }
    Ok(out)
}

fn history_batch(commits: &[strata_table::Commit]) -> Result<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("version", DataType::Int64, false),
        Field::new("timestamp", timestamp_type(), false),
        Field::new("operation", DataType::Utf8, false),
        Field::new("operation_parameters", DataType::Utf8, false),
        Field::new("operation_metrics", DataType::Utf8, false),
        Field::new("txn", DataType::Utf8, true),
        Field::new("engine_info", DataType::Utf8, true),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(
            commits.iter().map(|c| c.version).collect::<Vec<_>>(),
        )),
        Arc::new(
            TimestampMicrosecondArray::from(
                commits
                    .iter()
                    .map(|c| c.timestamp.timestamp_micros())
                    .collect::<Vec<_>>(),
            )
            .with_timezone("UTC"),
        ),
        Arc::new(StringArray::from(
            commits
                .iter()
                .map(|c| c.operation.clone())
                .collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            commits
                .iter()
                .map(|c| serde_json::Value::Object(c.parameters.clone()).to_string())
                .collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            commits
                .iter()
                .map(|c| serde_json::Value::Object(c.metrics.clone()).to_string())
                .collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            commits
                .iter()
                .map(|c| {
                    (!c.txns.is_empty()).then(|| {
                        c.txns
                            .iter()
                            .map(|(a, v)| format!("{a}:{v}"))
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                })
                .collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            commits.iter().map(|c| c.engine.clone()).collect::<Vec<_>>(),
        )),
    ];
    RecordBatch::try_new(schema, cols).map_err(df_err)
}

fn detail_batch(info: &TableInfo, d: &strata_table::Detail) -> Result<RecordBatch> {
    let props: BTreeMap<_, _> = d.properties.iter().collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("format", DataType::Utf8, false),
        Field::new("id", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("layer", DataType::Utf8, true),
        Field::new("kind", DataType::Utf8, false),
        Field::new("location", DataType::Utf8, true),
        Field::new("version", DataType::Int64, false),
        Field::new("partition_columns", DataType::Utf8, false),
        Field::new("num_files", DataType::Int64, false),
        Field::new("size_in_bytes", DataType::Int64, false),
        Field::new("properties", DataType::Utf8, false),
        Field::new("min_reader_version", DataType::Int64, false),
        Field::new("min_writer_version", DataType::Int64, false),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec!["delta"])),
        Arc::new(StringArray::from(vec![d.id.clone()])),
        Arc::new(StringArray::from(vec![info.name.to_string()])),
        Arc::new(StringArray::from(vec![info.layer.map(|l| l.to_string())])),
        Arc::new(StringArray::from(vec![info.kind.to_string()])),
        Arc::new(StringArray::from(vec![info.location.clone()])),
        Arc::new(Int64Array::from(vec![d.version])),
        Arc::new(StringArray::from(vec![
            serde_json::to_string(&d.partition_columns).unwrap_or_default(),
        ])),
        Arc::new(Int64Array::from(vec![d.num_files as i64])),
        Arc::new(Int64Array::from(vec![d.size_bytes as i64])),
        Arc::new(StringArray::from(vec![
            serde_json::to_string(&props).unwrap_or_default(),
        ])),
        Arc::new(Int64Array::from(vec![d.min_reader_version as i64])),
        Arc::new(Int64Array::from(vec![d.min_writer_version as i64])),
    ];
    RecordBatch::try_new(schema, cols).map_err(df_err)
}
