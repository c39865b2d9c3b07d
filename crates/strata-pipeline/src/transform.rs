//! A flow's transformation: steps over its first source, then its SQL over `input` and the
//! other sources. Validation runs it over empty batches of the sources' schemas, a run over the
//! data, so both see the same output schema.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::catalog::{
    CatalogProvider, CatalogProviderList, MemoryCatalogProvider, MemoryCatalogProviderList,
    MemorySchemaProvider, SchemaProvider, TableProvider,
};
use datafusion::common::tree_node::TreeNode;
use datafusion::datasource::MemTable;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::{Expr, LogicalPlan, Projection};
use datafusion::prelude::{DataFrame, col};
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;
use strata_core::TableName;

use crate::error::{Error, Result};
use crate::spec::Step;
use crate::steps::{self, CastFailed, ROW};

/// Bronze's system columns: steps-only flows do not pass them on.
pub const BRONZE_SYSTEM_COLUMNS: [&str; 6] = [
    "_source_file",
    "_source_line",
    "_ingested_at",
    "_batch_id",
    "_rescued_data",
    "_corrupt_record",
];

/// Columns of the change feed.
pub const CDF_COLUMNS: [&str; 3] = ["_change_type", "_commit_version", "_commit_timestamp"];

pub fn is_system_column(name: &str) -> bool {
    name == ROW || BRONZE_SYSTEM_COLUMNS.contains(&name) || CDF_COLUMNS.contains(&name)
}

/// The transformation's result, before expectations.
pub struct Transformed {
    /// The output, with the hidden arrival column when the query keeps one row per input row.
    pub output: DataFrame,
    pub failed: Vec<CastFailed>,
    /// Output columns holding masked values.
    pub masked: BTreeSet<String>,
    /// Output columns that carry a PII source column in clear.
    pub pii_out: BTreeMap<String, String>,
    /// Source columns of the first source the flow reads by name (all of them without SQL).
    pub used: BTreeSet<String>,
    /// The query aggregates (one output row is not one input row).
    pub aggregates: bool,
    pub session: Arc<SessionState>,
}

/// A session whose catalog holds exactly the given tables, plus `input`.
pub fn session(tables: Vec<(String, String, Arc<dyn TableProvider>)>) -> Result<SessionState> {
    let catalog = Arc::new(MemoryCatalogProvider::new());
    let default = Arc::new(MemorySchemaProvider::new());
    catalog.register_schema("default", default)?;
    for (schema, table, provider) in tables {
        let s = match catalog.schema(&schema) {
            Some(s) => s,
            None => {
                let s: Arc<dyn SchemaProvider> = Arc::new(MemorySchemaProvider::new());
                catalog.register_schema(&schema, s.clone())?;
                s
            }
        };
        s.register_table(table, provider)?;
    }
    let list = Arc::new(MemoryCatalogProviderList::new());
    list.register_catalog(strata_core::DEFAULT_CATALOG.to_string(), catalog);
    let mut state = SessionStateBuilder::new_from_existing(strata_table::session::session_state())
        .with_type_planner(Arc::new(strata_sql::types::StrataTypePlanner))
        .with_catalog_list(list)
        .build();
    state.mark_start_execution();
    Ok(state)
}

/// Plans one SELECT.
pub async fn plan_query(state: &SessionState, sql: &str) -> Result<LogicalPlan> {
    let stmt = state.sql_to_statement(sql, &datafusion::common::config::Dialect::PostgreSQL)?;
    match &stmt {
        DFStatement::Statement(s) if matches!(s.as_ref(), SqlStatement::Query(_)) => {}
        _ => {
            return Err(Error::InvalidInput(
                "a flow's sql must be one SELECT query".into(),
            ));
        }
    }
    Ok(state.statement_to_plan(stmt).await?)
}

/// Runs the steps and plans the query. `primary` is the first source's rows (in arrival order,
/// with [`ROW`]); `others` the other sources by name; `pii` the PII source columns.
#[allow(clippy::too_many_arguments)]
pub async fn transform(
    steps_spec: &[Step],
    sql: Option<&str>,
    primary_name: &TableName,
    primary: RecordBatch,
    others: Vec<(TableName, Arc<dyn TableProvider>)>,
    key: &[u8],
    pii: &BTreeSet<String>,
) -> Result<Transformed> {
    let raw_schema = primary.schema();
    let raw = Arc::new(MemTable::try_new(
        raw_schema.clone(),
        vec![vec![primary.clone()]],
    )?);
    let stepped = steps::apply(steps_spec, primary, key)?;
    // input columns that hold a PII source column in clear
    let pii_input: BTreeMap<String, String> = stepped
        .batch
        .schema()
        .fields()
        .iter()
        .filter_map(|f| {
            let src = stepped
                .origin
                .get(f.name())
                .cloned()
                .unwrap_or_else(|| f.name().clone());
            (pii.contains(&src) && !stepped.masked.contains(f.name()))
                .then(|| (f.name().clone(), src))
        })
        .collect();
    let input: Arc<dyn TableProvider> = Arc::new(MemTable::try_new(
        stepped.batch.schema(),
        vec![vec![stepped.batch.clone()]],
    )?);
    let mut tables: Vec<(String, String, Arc<dyn TableProvider>)> =
        vec![("default".into(), "input".into(), input)];
    let primary_provider: Arc<dyn TableProvider> = if steps_spec.is_empty() {
        tables[0].2.clone()
    } else {
        raw
    };
    tables.push((
        primary_name.schema.as_str().to_string(),
        primary_name.table.as_str().to_string(),
        primary_provider,
    ));
    for (n, p) in others {
        tables.push((
            n.schema.as_str().to_string(),
            n.table.as_str().to_string(),
            p,
        ));
    }
    let state = session(tables)?;
    let (plan, used, aggregates) = match sql {
        Some(sql) => {
            let plan = plan_query(&state, sql).await?;
            let mut used = stepped.used.clone();
            let names = referenced_columns(&plan);
            for f in stepped.batch.schema().fields() {
                if names.contains(f.name()) {
                    used.insert(
                        stepped
                            .origin
                            .get(f.name())
                            .cloned()
                            .unwrap_or_else(|| f.name().clone()),
                    );
                }
            }
            for f in raw_schema.fields() {
                if names.contains(f.name()) {
                    used.insert(f.name().clone());
                }
            }
            let aggregates = plan
                .exists(|p| {
                    Ok(matches!(
                        p,
                        LogicalPlan::Aggregate(_) | LogicalPlan::Distinct(_)
                    ))
                })
                .unwrap_or(true);
            let plan = if aggregates {
                plan
            } else {
                keep_row_column(plan)?
            };
            (plan, used, aggregates)
        }
        None => {
            // every column but bronze's system columns passes through
            let df = DataFrame::new(
                state.clone(),
                plan_query(&state, "SELECT * FROM input").await?,
            );
            let keep: Vec<Expr> = df
                .schema()
                .fields()
                .iter()
                .filter(|f| f.name() == ROW || !is_system_column(f.name()))
                .map(|f| col(format!("\"{}\"", f.name())))
                .collect();
            let df = df.select(keep)?;
            let used = raw_schema
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            (df.into_unoptimized_plan(), used, false)
        }
    };
    let lineage = column_lineage(&plan);
    let out_schema = plan.schema().clone();
    let mut pii_out = BTreeMap::new();
    let mut masked = BTreeSet::new();
    for (i, f) in out_schema.fields().iter().enumerate() {
        let from = lineage.get(i).cloned().unwrap_or_default();
        if let Some(src) = from.iter().find_map(|c| pii_input.get(c)) {
            pii_out.insert(f.name().clone(), src.clone());
        } else if !from.is_empty() && from.iter().all(|c| stepped.masked.contains(c)) {
            masked.insert(f.name().clone());
        }
    }
    Ok(Transformed {
        output: DataFrame::new(state.clone(), plan),
        failed: stepped.failed,
        masked,
        pii_out,
        used,
        aggregates,
        session: Arc::new(state),
    })
}

/// Every column name an expression anywhere in the plan names.
fn referenced_columns(plan: &LogicalPlan) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let _ = plan.apply(|p| {
        for e in p.expressions() {
            for c in e.column_refs() {
                names.insert(c.name.clone());
            }
        }
        if let LogicalPlan::TableScan(_) = p {
            // `SELECT *` expands before here; a scan alone names nothing
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    });
    names
}

/// Adds the hidden arrival column to the query's top projection when its input has it, so
/// `merge` can break sequence ties by arrival.
fn keep_row_column(plan: LogicalPlan) -> Result<LogicalPlan> {
    match plan {
        LogicalPlan::Projection(p) => {
            if p.schema.fields().iter().any(|f| f.name() == ROW) {
                return Ok(LogicalPlan::Projection(p));
            }
            let Some((q, f)) = p
                .input
                .schema()
                .iter()
                .find(|(_, f)| f.name() == ROW)
                .map(|(q, f)| (q.cloned(), f.clone()))
            else {
                return Ok(LogicalPlan::Projection(p));
            };
            let mut exprs = p.expr.clone();
            exprs.push(Expr::Column(datafusion::common::Column::new(q, f.name())));
            Ok(LogicalPlan::Projection(Projection::try_new(
                exprs,
                p.input.clone(),
            )?))
        }
        other => Ok(other),
    }
}

/// For each output column of `plan`, the names of the scanned columns it is computed from.
fn column_lineage(plan: &LogicalPlan) -> Vec<BTreeSet<String>> {
    fn from_exprs(exprs: &[Expr], child: &LogicalPlan) -> Vec<BTreeSet<String>> {
        let inner = column_lineage(child);
        let schema = child.schema();
        exprs
            .iter()
            .map(|e| {
                let mut out = BTreeSet::new();
                for c in e.column_refs() {
                    if let Ok(i) = schema.index_of_column(c) {
                        out.extend(inner.get(i).cloned().unwrap_or_default());
                    } else {
                        out.insert(c.name.clone());
                    }
                }
                out
            })
            .collect()
    }
    match plan {
        LogicalPlan::TableScan(s) => s
            .projected_schema
            .fields()
            .iter()
            .map(|f| BTreeSet::from([f.name().clone()]))
            .collect(),
        LogicalPlan::Projection(p) => from_exprs(&p.expr, &p.input),
        LogicalPlan::Aggregate(a) => {
            let exprs: Vec<Expr> = a
                .group_expr
                .iter()
                .chain(a.aggr_expr.iter())
                .cloned()
                .collect();
            from_exprs(&exprs, &a.input)
        }
        LogicalPlan::Window(w) => {
            let mut out = column_lineage(&w.input);
            out.extend(from_exprs(&w.window_expr, &w.input));
            out
        }
        LogicalPlan::Join(j) => {
            let mut out = column_lineage(&j.left);
            out.extend(column_lineage(&j.right));
            out
        }
        LogicalPlan::Union(u) => {
            let mut out: Vec<BTreeSet<String>> = Vec::new();
            for i in &u.inputs {
                for (k, s) in column_lineage(i).into_iter().enumerate() {
                    if out.len() <= k {
                        out.push(s);
                    } else {
                        out[k].extend(s);
                    }
                }
            }
            out
        }
        other => {
            let inputs = other.inputs();
            if inputs.len() == 1
                && inputs[0].schema().fields().len() == other.schema().fields().len()
            {
                column_lineage(inputs[0])
            } else {
                let all: BTreeSet<String> = inputs
                    .iter()
                    .flat_map(|i| column_lineage(i).into_iter().flatten())
                    .collect();
                vec![all; other.schema().fields().len()]
            }
        }
    }
}

/// An empty batch of `schema` plus the arrival column, for validation.
pub fn empty_with_row(schema: &Schema) -> Result<RecordBatch> {
    crate::run::with_row(RecordBatch::new_empty(Arc::new(schema.clone())))
}

/// The batch without the hidden arrival column.
pub fn without_row(b: &RecordBatch) -> Result<RecordBatch> {
    let keep: Vec<usize> = b
        .schema()
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| f.name() != ROW)
        .map(|(i, _)| i)
        .collect();
    Ok(b.project(&keep)?)
}

/// The output schema without the hidden arrival column.
pub fn visible_schema(schema: &SchemaRef) -> Schema {
    Schema::new(
        schema
            .fields()
            .iter()
            .filter(|f| f.name() != ROW)
            .cloned()
            .collect::<Vec<_>>(),
    )
}
