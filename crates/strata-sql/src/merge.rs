//! `MERGE INTO` translated to deltalake's merge builder (deltalake's table provider does not
//! execute DataFusion's MERGE plan). Delta's `UPDATE SET *` and `INSERT *`, which sqlparser
//! rejects, arrive as placeholders (see `extensions::expand_merge_stars`) and are expanded here by
//! column name.

use std::ops::ControlFlow;

use datafusion::prelude::DataFrame;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{
    Assignment, AssignmentTarget, Expr as SqlExpr, Ident, Merge, MergeAction, MergeClauseKind,
    MergeInsertKind, ObjectName, SetExpr, Statement as SqlStatement, TableFactor,
    visit_expressions_mut,
};
use strata_catalog::Lakehouse;
use strata_table::{MergeClause, MergeExpr, MergeSpec};

use crate::engine::{Output, SqlEngine, parse_one};
use crate::error::{Error, Result};
use crate::extensions::STAR;
use crate::resolve::{name_parts, table_name_of};

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn ident_name(i: &Ident) -> String {
    if i.quote_style.is_some() {
        i.value.clone()
    } else {
        i.value.to_lowercase()
    }
}

/// The alias a relation is known by in the MERGE, and the relation without its alias.
fn split_alias(tf: &TableFactor) -> Result<(TableFactor, Option<String>)> {
    let mut tf = tf.clone();
    let alias = match &mut tf {
        TableFactor::Table { alias, .. } | TableFactor::Derived { alias, .. } => alias.take(),
        _ => {
            return Err(Error::Unsupported(
                "a MERGE source is a table or a (subquery) with an alias".into(),
            ));
        }
    };
    Ok((tf, alias.map(|a| ident_name(&a.name))))
}

/// Rewrites `schema.table.col` (a qualifier naming the target or source table) to
/// `alias.col`, since deltalake knows the two sides only by their aliases.
fn realias(expr: &mut SqlExpr, names: &[(Vec<String>, String)]) {
    let _ = visit_expressions_mut(expr, |e| {
        if let SqlExpr::CompoundIdentifier(ids) = e
            && ids.len() >= 3
        {
            let prefix: Vec<String> = ids[..ids.len() - 1].iter().map(ident_name).collect();
            for (full, alias) in names {
                if full.ends_with(&prefix) {
                    let col = ids.last().cloned().expect("non-empty");
                    *ids = vec![Ident::with_quote('"', alias.clone()), col];
                    break;
                }
            }
        }
        ControlFlow::<()>::Continue(())
    });
}

fn sql(mut e: SqlExpr, names: &[(Vec<String>, String)]) -> MergeExpr {
    realias(&mut e, names);
    MergeExpr::Sql(e.to_string())
}

fn is_star(name: &ObjectName) -> bool {
    name_parts(name).last().is_some_and(|p| p == STAR)
}

impl SqlEngine {
    pub(crate) async fn run_merge(&self, m: Merge) -> Result<Output> {
        let TableFactor::Table { name, version, .. } = &m.table else {
            return Err(Error::Unsupported("MERGE INTO needs a table".into()));
        };
        if version.is_some() {
            return Err(Error::Unsupported(
                "a MERGE target cannot be a past version; MERGE writes the current one".into(),
            ));
        }
        let tn = table_name_of(name)?;
        let (_, target_alias) = split_alias(&m.table)?;
        let target_alias = target_alias.unwrap_or_else(|| tn.table.to_string());
        let (source_factor, source_alias) = split_alias(&m.source)?;
        let source_alias = match (source_alias, &source_factor) {
            (Some(a), _) => a,
            (None, TableFactor::Table { name, .. }) => {
                name_parts(name).last().cloned().unwrap_or_default()
            }
            (None, _) => {
                return Err(Error::InvalidInput(
                    "give the MERGE source subquery an alias".into(),
                ));
            }
        };
        if source_alias == target_alias {
            return Err(Error::InvalidInput(format!(
                "the MERGE target and source are both known as {target_alias}; give them aliases"
            )));
        }
        let statement = SqlStatement::Merge(m.clone());
        let resolved = self.resolve(&statement, 0).await?;
        let tables = resolved.tables.clone();
        let info = tables
            .iter()
            .find(|t| t.name == tn)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("table {tn} does not exist")))?;
        Lakehouse::check_user_writable(&info)?;
        Self::check_reads(&info.name, info.layer, &tables)?;

        // the source, planned on its own: SELECT * FROM <source>
        let mut select = parse_one("SELECT * FROM strata_merge_source")?;
        if let DFStatement::Statement(s) = &mut select
            && let SqlStatement::Query(q) = s.as_mut()
            && let SetExpr::Select(sel) = q.body.as_mut()
        {
            sel.from[0].relation = source_factor.clone();
        }
        let state = self.state_for(resolved)?;
        let plan = state.statement_to_plan(select).await?;
        let source = DataFrame::new(state.clone(), plan);
        let source_columns: Vec<String> = source
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();

        let table = self.lakehouse.open_delta(&info).await?;
        let target_columns: Vec<String> = strata_table::arrow_schema(&table, &tn.to_string())?
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let mut names = vec![(
            vec![
                tn.catalog.to_string(),
                tn.schema.to_string(),
                tn.table.to_string(),
            ],
            target_alias.clone(),
        )];
        if let TableFactor::Table { name, .. } = &source_factor {
            let mut full = name_parts(name);
            if full.len() == 2 {
                full.insert(0, "lakehouse".into());
            }
            names.push((full, source_alias.clone()));
        }
        let all_from_source = |what: &str| -> Result<Vec<(String, MergeExpr)>> {
            target_columns
                .iter()
                .map(|c| {
                    if !source_columns.contains(c) {
                        return Err(Error::InvalidInput(format!(
                            "{what} * needs every column of {tn} in the source; the source has no column {}",
                            strata_core::types::quote_if_needed(c)
                        )));
                    }
                    Ok((c.clone(), MergeExpr::Sql(format!("{}.{}", quote(&source_alias), quote(c)))))
                })
                .collect()
        };
        let check_target_col = |c: &str| -> Result<String> {
            if target_columns.iter().any(|t| t == c) {
                Ok(c.to_string())
            } else {
                Err(Error::InvalidInput(format!("table {tn} has no column {c}")))
            }
        };

        let assignments = |list: Vec<Assignment>| -> Result<Vec<(String, MergeExpr)>> {
            let mut set = Vec::new();
            for a in list {
                let AssignmentTarget::ColumnName(n) = &a.target else {
                    return Err(Error::Unsupported(
                        "tuple assignments in MERGE are not supported".into(),
                    ));
                };
                let col = name_parts(n).last().cloned().unwrap_or_default();
                set.push((check_target_col(&col)?, sql(a.value, &names)));
            }
            Ok(set)
        };
        let mut clauses = Vec::new();
        for clause in m.clauses {
            let predicate = clause.predicate.map(|p| sql(p, &names));
            let c = match (clause.clause_kind, clause.action) {
                (MergeClauseKind::Matched, MergeAction::Update(u)) => {
                    if u.update_predicate.is_some() || u.delete_predicate.is_some() {
                        return Err(Error::Unsupported(
                            "UPDATE .. WHERE in MERGE is not supported; use WHEN MATCHED AND .."
                                .into(),
                        ));
                    }
                    let star = u.assignments.iter().any(
                        |a| matches!(&a.target, AssignmentTarget::ColumnName(n) if is_star(n)),
                    );
                    let set = if star {
                        all_from_source("UPDATE SET")?
                    } else {
                        assignments(u.assignments)?
                    };
                    MergeClause::MatchedUpdate { predicate, set }
                }
                (MergeClauseKind::Matched, MergeAction::Delete { .. }) => {
                    MergeClause::MatchedDelete { predicate }
                }
                (
                    MergeClauseKind::NotMatched | MergeClauseKind::NotMatchedByTarget,
                    MergeAction::Insert(ins),
                ) => {
                    if ins.insert_predicate.is_some() {
                        return Err(Error::Unsupported("INSERT .. WHERE in MERGE is not supported; use WHEN NOT MATCHED AND ..".into()));
                    }
                    let values = if ins.columns.iter().any(is_star) {
                        all_from_source("INSERT")?
                    } else {
                        let MergeInsertKind::Values(v) = ins.kind else {
                            return Err(Error::Unsupported(
                                "INSERT ROW in MERGE is not supported".into(),
                            ));
                        };
                        let row = v
                            .rows
                            .into_iter()
                            .next()
                            .map(|p| p.content)
                            .unwrap_or_default();
                        let cols: Vec<String> = if ins.columns.is_empty() {
                            target_columns.clone()
                        } else {
                            ins.columns
                                .iter()
                                .map(|n| {
                                    check_target_col(
                                        name_parts(n)
                                            .last()
                                            .map(String::as_str)
                                            .unwrap_or_default(),
                                    )
                                })
                                .collect::<Result<_>>()?
                        };
                        if cols.len() != row.len() {
                            return Err(Error::InvalidInput(format!(
                                "MERGE INSERT names {} columns but gives {} values",
                                cols.len(),
                                row.len()
                            )));
                        }
                        cols.into_iter()
                            .zip(row.into_iter().map(|e| sql(e, &names)))
                            .collect()
                    };
                    MergeClause::NotMatchedInsert { predicate, values }
                }
                (MergeClauseKind::NotMatchedBySource, MergeAction::Update(u)) => {
                    let set = assignments(u.assignments)?;
                    MergeClause::NotMatchedBySourceUpdate { predicate, set }
                }
                (MergeClauseKind::NotMatchedBySource, MergeAction::Delete { .. }) => {
                    MergeClause::NotMatchedBySourceDelete { predicate }
                }
                (kind, action) => {
                    return Err(Error::InvalidInput(format!(
                        "WHEN {kind} THEN {action} is not a valid MERGE clause"
                    )));
                }
            };
            clauses.push(c);
        }
        let spec = MergeSpec {
            on: sql(*m.on, &names),
            source_alias,
            target_alias,
            clauses,
        };
        let opts = self.write_options(&state)?;
        let name = tn.to_string();
        let (_, o) = strata_table::merge_with(table, &name, source, spec, &opts).await?;
        self.lakehouse
            .metastore()
            .touch_table(&info.table_id)
            .await?;
        Ok(Output::Status(match o.version {
            Some(v) => format!("MERGE {}: {name} is at version {v}", o.rows),
            None => {
                format!("MERGE 0: the transaction was already committed to {name}; nothing written")
            }
        }))
    }
}
