//! The resolution pass: before DataFusion plans a statement, load a provider for every table,
//! view, pinned version and `table_changes(...)` call it names.
//!
//! DataFusion 55 ignores a relation's `VERSION AS OF` and has no async hook that sees it, so
//! this pass walks the AST, loads the pinned providers asynchronously, and a
//! [`VersionPlanner`] (a `RelationPlanner`) hands each versioned relation its own provider;
//! one query can so join two versions of a table.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::view::ViewTable;
use datafusion::catalog::{
    CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider, SchemaProvider, TableProvider,
};
use datafusion::datasource::provider_as_source;
use datafusion::error::Result as DFResult;
use datafusion::logical_expr::LogicalPlanBuilder;
use datafusion::logical_expr::planner::{
    PlannedRelation, RelationPlanner, RelationPlannerContext, RelationPlanning,
};
use datafusion::sql::sqlparser::ast::{
    Expr as SqlExpr, FunctionArg, FunctionArgExpr, ObjectName, Query, TableFactor,
    TableFunctionArgs, TableVersion, Value, Visit, Visitor,
};
use deltalake::delta_datafusion::DeltaCdfTableProvider;
use strata_catalog::metastore::TableInfo;
use strata_core::{TableKind, TableName};

use crate::engine::SqlEngine;
use crate::error::{Error, Result};
use crate::timestamp::parse_timestamp;

/// The providers a statement needs.
#[derive(Default)]
pub(crate) struct Resolved {
    pub catalogs: HashMap<String, Arc<MemoryCatalogProvider>>,
    pub pinned: HashMap<String, Arc<dyn TableProvider>>,
    /// Every metastore table or view the statement names, DML targets included.
    pub tables: Vec<TableInfo>,
}

/// One relation as the AST names it.
struct Relation {
    name: ObjectName,
    version: Option<TableVersion>,
    args: Option<TableFunctionArgs>,
}

#[derive(Default)]
struct Collector {
    relations: Vec<Relation>,
    names: Vec<ObjectName>,
    ctes: HashSet<String>,
}

impl Visitor for Collector {
    type Break = ();

    fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
        if let Some(with) = &q.with {
            for cte in &with.cte_tables {
                self.ctes.insert(cte.alias.name.value.to_lowercase());
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, name: &ObjectName) -> ControlFlow<()> {
        self.names.push(name.clone());
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, tf: &TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table {
            name,
            version,
            args,
            ..
        } = tf
            && (version.is_some() || args.is_some())
        {
            self.relations.push(Relation {
                name: name.clone(),
                version: version.clone(),
                args: args.clone(),
            });
        }
        ControlFlow::Continue(())
    }
}

/// The key under which a versioned relation's provider is kept, the same in both passes.
pub(crate) fn relation_key(
    name: &ObjectName,
    version: &Option<TableVersion>,
    args: &Option<TableFunctionArgs>,
) -> Option<String> {
    match (version, args) {
        (None, None) => None,
        _ => Some(format!(
            "{name}|{}|{}",
            version.as_ref().map(|v| v.to_string()).unwrap_or_default(),
            args.as_ref().map(|a| format!("{a:?}")).unwrap_or_default()
        )),
    }
}

/// The name parts of an object name, unquoted parts folded to lower case.
pub(crate) fn name_parts(name: &ObjectName) -> Vec<String> {
    name.0
        .iter()
        .filter_map(|p| p.as_ident())
        .map(|i| {
            if i.quote_style.is_some() {
                i.value.clone()
            } else {
                i.value.to_lowercase()
            }
        })
        .collect()
}

pub(crate) fn table_name_of(name: &ObjectName) -> Result<TableName> {
    Ok(TableName::parse(&name_parts(name).join("."))?)
}

fn literal_i64(e: &SqlExpr) -> Option<i64> {
    match e {
        SqlExpr::Value(v) => match &v.value {
            Value::Number(n, _) => n.parse().ok(),
            _ => None,
        },
        SqlExpr::UnaryOp { op, expr } if op.to_string() == "-" => literal_i64(expr).map(|v| -v),
        _ => None,
    }
}

fn literal_string(e: &SqlExpr) -> Option<String> {
    match e {
        SqlExpr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => Some(s.clone()),
            _ => None,
        },
        SqlExpr::TypedString(t) => match &t.value.value {
            Value::SingleQuotedString(s) => Some(s.clone()),
            _ => None,
        },
        SqlExpr::Cast { expr, .. } => literal_string(expr),
        _ => None,
    }
}

fn arg_expr(a: &FunctionArg) -> Option<&SqlExpr> {
    match a {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
        _ => None,
    }
}

impl SqlEngine {
    /// Loads what the statement names. `depth` bounds view expansion.
    pub(crate) async fn resolve<V: Visit>(&self, stmt: &V, depth: usize) -> Result<Resolved> {
        if depth > 16 {
            return Err(Error::InvalidInput(
                "views nest more than 16 deep (or refer to themselves)".into(),
            ));
        }
        let mut c = Collector::default();
        let _ = stmt.visit(&mut c);
        let mut resolved = Resolved::default();
        let mut seen: HashSet<TableName> = HashSet::new();
        for name in &c.names {
            let parts = name_parts(name);
            if parts.len() == 1 {
                if c.ctes.contains(&parts[0]) || parts[0] == "table_changes" {
                    continue;
                }
                // a one-part name is an error that suggests the qualified one
                table_name_of(name)?;
            }
            let tn = table_name_of(name)?;
            if !seen.insert(tn.clone()) {
                continue;
            }
            if tn.schema.as_str() == "system" {
                let provider = self.system_table(&tn).await?;
                self.register(&mut resolved, &tn, provider)?;
                continue;
            }
            let info = self.lakehouse.table(&tn).await?;
            let provider: Arc<dyn TableProvider> = match info.kind {
                TableKind::View => {
                    let sql = info.view_sql.clone().unwrap_or_default();
                    let plan = Box::pin(self.plan_query_text(&sql, depth + 1))
                        .await
                        .map_err(|e| {
                            Error::InvalidInput(format!("view {} no longer plans: {e}", info.name))
                        })?;
                    Arc::new(ViewTable::new(plan, Some(sql)))
                }
                _ => {
                    let table = self.lakehouse.open_delta(&info).await?;
                    table
                        .update_datafusion_session(&self.base)
                        .map_err(|e| strata_table::Error::delta(&tn.to_string(), e))?;
                    Arc::new(table.table_provider().build().await?)
                }
            };
            self.register(&mut resolved, &tn, provider)?;
            resolved.tables.push(info);
        }
        for rel in &c.relations {
            let Some(key) = relation_key(&rel.name, &rel.version, &rel.args) else {
                continue;
            };
            if resolved.pinned.contains_key(&key) {
                continue;
            }
            let provider = if let Some(args) = &rel.args {
                let (p, info) = self.table_changes(&rel.name, args).await?;
                if !resolved.tables.iter().any(|t| t.table_id == info.table_id) {
                    resolved.tables.push(info);
                }
                p
            } else {
                let tn = table_name_of(&rel.name)?;
                let info = self.lakehouse.table(&tn).await?;
                if info.kind == TableKind::View {
                    return Err(Error::InvalidInput(format!(
                        "{tn} is a view: time travel applies to tables"
                    )));
                }
                let version = match rel.version.as_ref().expect("versioned") {
                    TableVersion::VersionAsOf(e) => literal_i64(e).ok_or_else(|| {
                        Error::InvalidInput(format!(
                            "VERSION AS OF needs a version number, not {e}"
                        ))
                    })?,
                    TableVersion::TimestampAsOf(e) | TableVersion::ForSystemTimeAsOf(e) => {
                        let text = literal_string(e).ok_or_else(|| {
                            Error::InvalidInput(format!(
                                "TIMESTAMP AS OF needs a quoted timestamp such as '2024-09-01 12:00:00', not {e}"
                            ))
                        })?;
                        let ts = parse_timestamp(&text)?;
                        let latest = self.lakehouse.open_delta(&info).await?;
                        strata_table::version_at_timestamp(&latest, ts)
                            .await
                            .map_err(|e| match e {
                                strata_table::Error::InvalidInput(m) => {
                                    Error::InvalidInput(format!("{tn}: {m}"))
                                }
                                other => other.into(),
                            })?
                    }
                    other => {
                        return Err(Error::Unsupported(format!(
                            "{other} is not supported; use VERSION AS OF n or TIMESTAMP AS OF 'ts'"
                        )));
                    }
                };
                let table = self.lakehouse.open_delta_at(&info, version).await?;
                table
                    .update_datafusion_session(&self.base)
                    .map_err(|e| strata_table::Error::delta(&tn.to_string(), e))?;
                let p: Arc<dyn TableProvider> = Arc::new(table.table_provider().build().await?);
                if !resolved.tables.iter().any(|t| t.table_id == info.table_id) {
                    resolved.tables.push(info);
                }
                p
            };
            resolved.pinned.insert(key, provider);
        }
        Ok(resolved)
    }

    fn register(
        &self,
        resolved: &mut Resolved,
        tn: &TableName,
        provider: Arc<dyn TableProvider>,
    ) -> Result<()> {
        let catalog = resolved
            .catalogs
            .entry(tn.catalog.to_string())
            .or_insert_with(|| Arc::new(MemoryCatalogProvider::new()))
            .clone();
        let schema = match catalog.schema(tn.schema.as_str()) {
            Some(s) => s,
            None => {
                let s: Arc<dyn SchemaProvider> = Arc::new(MemorySchemaProvider::new());
                catalog.register_schema(tn.schema.as_str(), s.clone())?;
                s
            }
        };
        schema.register_table(tn.table.to_string(), provider)?;
        Ok(())
    }

    /// `table_changes('schema.table', start [, end])`: the change data feed between two
    /// versions (or timestamps), with `_change_type`, `_commit_version`, `_commit_timestamp`.
    async fn table_changes(
        &self,
        fname: &ObjectName,
        args: &TableFunctionArgs,
    ) -> Result<(Arc<dyn TableProvider>, TableInfo)> {
        let fname_s = name_parts(fname).join(".");
        if fname_s != "table_changes" {
            return Err(Error::Unsupported(format!(
                "unknown table function {fname_s}; Strata has table_changes('schema.table', start[, end])"
            )));
        }
        let usage = || {
            Error::InvalidInput(
                "table_changes('schema.table', start_version [, end_version]) takes a quoted table \
                 name and versions (or quoted timestamps)"
                    .to_string(),
            )
        };
        let exprs: Vec<&SqlExpr> = args
            .args
            .iter()
            .map(arg_expr)
            .collect::<Option<_>>()
            .ok_or_else(usage)?;
        if !(2..=3).contains(&exprs.len()) {
            return Err(usage());
        }
        let tn = TableName::parse(&literal_string(exprs[0]).ok_or_else(usage)?)?;
        let info = self.lakehouse.table(&tn).await?;
        if info.kind == TableKind::View {
            return Err(Error::InvalidInput(format!(
                "{tn} is a view: it has no change feed"
            )));
        }
        let table = self.lakehouse.open_delta(&info).await?;
        let latest = strata_table::current_version(&table);
        let version_of = |e: &SqlExpr, start: bool| {
            let table = &table;
            let tn = &tn;
            let e = e.clone();
            async move {
                if let Some(v) = literal_i64(&e) {
                    return Ok::<i64, Error>(v);
                }
                let text = literal_string(&e).ok_or_else(usage)?;
                let ts = parse_timestamp(&text)?;
                let at = strata_table::version_at_timestamp(table, ts)
                    .await
                    .map_err(|e| match e {
                        strata_table::Error::InvalidInput(m) if start => {
                            let _ = m;
                            Error::InvalidInput(format!(
                                "{tn}: the start time {text} is before its first commit"
                            ))
                        }
                        other => other.into(),
                    })?;
                // a start time between commits begins at the next commit
                let commit = strata_table::history::read_commit(table, at).await?;
                Ok(if start && commit.is_some_and(|c| c.timestamp < ts) {
                    at + 1
                } else {
                    at
                })
            }
        };
        let start = version_of(exprs[1], true).await?;
        let end = match exprs.get(2) {
            Some(e) => version_of(e, false).await?,
            None => latest,
        };
        if start < 0 || start > latest {
            return Err(Error::NotFound(format!(
                "table {tn} has no version {start} (latest is {latest})"
            )));
        }
        if end < start || end > latest {
            return Err(Error::InvalidInput(format!(
                "table_changes on {tn}: the end version {end} must be between {start} and {latest}"
            )));
        }
        if table
            .snapshot()
            .map(|s| !s.table_config().enable_change_data_feed.unwrap_or(false))
            .unwrap_or(true)
        {
            return Err(Error::InvalidInput(format!(
                "table {tn} does not record its change data feed (delta.enableChangeDataFeed is off)"
            )));
        }
        table
            .update_datafusion_session(&self.base)
            .map_err(|e| strata_table::Error::delta(&tn.to_string(), e))?;
        let cdf = table
            .scan_cdf()
            .with_starting_version(start as u64)
            .with_ending_version(end as u64);
        let provider = DeltaCdfTableProvider::try_new(cdf)
            .map_err(|e| strata_table::Error::delta(&tn.to_string(), e))?;
        Ok((Arc::new(OnePartition(Arc::new(provider))), info))
    }
}

/// A change-feed scan is a union of three parts (cdc files, adds, removes), often some empty
/// with zero partitions; DataFusion 55 pushes a sort into each part and then rejects the empty
/// one ("does not satisfy distribution requirements"). Empty parts become `EmptyExec`s.
#[derive(Debug)]
struct OnePartition(Arc<dyn TableProvider>);

#[async_trait::async_trait]
impl TableProvider for OnePartition {
    fn schema(&self) -> datafusion::arrow::datatypes::SchemaRef {
        self.0.schema()
    }

    fn table_type(&self) -> datafusion::datasource::TableType {
        self.0.table_type()
    }

    async fn scan(
        &self,
        state: &dyn datafusion::catalog::Session,
        projection: Option<&Vec<usize>>,
        filters: &[datafusion::logical_expr::Expr],
        limit: Option<usize>,
    ) -> DFResult<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        use datafusion::common::tree_node::{Transformed, TreeNode};
        let plan = self.0.scan(state, projection, filters, limit).await?;
        // a leaf with no partitions (no files of that kind) becomes an empty one-partition scan
        let plan = plan.transform_up(|node| {
            if node.children().is_empty()
                && node.properties().output_partitioning().partition_count() == 0
            {
                let empty: Arc<dyn datafusion::physical_plan::ExecutionPlan> = Arc::new(
                    datafusion::physical_plan::empty::EmptyExec::new(node.schema()),
                );
                Ok(Transformed::yes(empty))
            } else {
                Ok(Transformed::no(node))
            }
        })?;
        Ok(plan.data)
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&datafusion::logical_expr::Expr],
    ) -> DFResult<Vec<datafusion::logical_expr::TableProviderFilterPushDown>> {
        self.0.supports_filters_pushdown(filters)
    }
}

/// The change feed's columns as Strata types them: `_commit_version` BIGINT and
/// `_commit_timestamp` TIMESTAMP (deltalake gives UInt64 and milliseconds without zone).
fn cdf_projection(schema: &datafusion::common::DFSchema) -> Vec<datafusion::logical_expr::Expr> {
    use datafusion::logical_expr::{Expr, cast};
    schema
        .iter()
        .map(|(q, f)| {
            let c = Expr::Column(datafusion::common::Column::from((q, f)));
            match f.name().as_str() {
                "_commit_version" => cast(c, DataType::Int64).alias("_commit_version"),
                "_commit_timestamp" => {
                    cast(c, strata_core::types::timestamp_type()).alias("_commit_timestamp")
                }
                _ => c,
            }
        })
        .collect()
}

/// Hands each versioned relation and `table_changes(...)` call its own provider.
#[derive(Debug)]
pub(crate) struct VersionPlanner {
    pub pinned: HashMap<String, Arc<dyn TableProvider>>,
}

impl RelationPlanner for VersionPlanner {
    fn plan_relation(
        &self,
        relation: TableFactor,
        ctx: &mut dyn RelationPlannerContext,
    ) -> DFResult<RelationPlanning> {
        if let TableFactor::Table {
            name,
            version,
            args,
            alias,
            ..
        } = &relation
            && let Some(key) = relation_key(name, version, args)
            && let Some(p) = self.pinned.get(&key)
        {
            let reference = if args.is_some() {
                datafusion::common::TableReference::bare("table_changes")
            } else {
                ctx.object_name_to_table_reference(name.clone())?
            };
            let mut builder =
                LogicalPlanBuilder::scan(reference, provider_as_source(p.clone()), None)?;
            if args.is_some() {
                let schema = builder.schema().clone();
                builder = builder.project(cdf_projection(&schema))?;
            }
            let plan = builder.build()?;
            return Ok(RelationPlanning::Planned(Box::new(PlannedRelation::new(
                plan,
                alias.clone(),
            ))));
        }
        Ok(RelationPlanning::Original(Box::new(relation)))
    }
}
