//! Expectations over a table: the table rules a flow runs over its checked output, and
//! `strata quality check`, which runs a rules file over an existing table (as dbt `test` does).

use std::sync::Arc;

use arrow::array::Array;
use chrono::Utc;
use datafusion::catalog::TableProvider;
use datafusion::prelude::DataFrame;
use serde::Deserialize;
use strata_catalog::Lakehouse;
use strata_catalog::metastore::QualityResult;
use strata_core::TableName;

use crate::error::{Error, Result};
use crate::record::text;
use crate::rules::{Rule, RuleKind, ident};
use crate::run::provider;
use crate::spec::{Action, RuleSpec};
use crate::transform;

/// Whose results these are.
pub struct Scope<'a> {
    pub run_id: &'a str,
    pub pipeline: Option<&'a str>,
    pub flow: Option<&'a str>,
    pub table: &'a str,
}

/// Evaluates table rules over `output` (`rows` rows; `target` is the flow's target, read by
/// `freshness`); returns the results and, when a `fail` rule failed, the message.
pub async fn table_rules(
    lh: &Lakehouse,
    rules: &[&Rule],
    output: Arc<dyn TableProvider>,
    rows: i64,
    target: Option<Arc<dyn TableProvider>>,
    scope: &Scope<'_>,
) -> Result<(Vec<QualityResult>, Option<String>)> {
    if rules.is_empty() {
        return Ok((Vec::new(), None));
    }
    let has_target = target.is_some();
    let mut tables: Vec<(String, String, Arc<dyn TableProvider>)> =
        vec![("default".into(), "output".into(), output)];
    if let Some(t) = target {
        tables.push(("default".into(), "target".into(), t));
    }
    for r in rules {
        if let RuleKind::References { table, .. } = &r.kind {
            let n = TableName::parse(table)?;
            let info = lh.table(&n).await?;
            let t = lh.open_delta(&info).await?;
            let provider = provider(&t).await?;
            tables.push((n.schema.as_str().into(), n.table.as_str().into(), provider));
        }
    }
    let state = transform::session(tables)?;
    let scalar = |sql: String| {
        let state = state.clone();
        async move {
            let plan = transform::plan_query(&state, &sql).await?;
            let batches = DataFrame::new(state, plan).collect().await?;
            let v = batches
                .iter()
                .find(|b| b.num_rows() > 0)
                .map(|b| -> Result<Option<String>> {
                    let a = b.column(0);
                    if a.is_null(0) {
                        Ok(None)
                    } else {
                        Ok(Some(text(a, 0)?))
                    }
                })
                .transpose()?
                .flatten();
            Ok::<Option<String>, Error>(v)
        }
    };
    let n = rows;
    // Aggregates and one-column uniqueness share one scan of the output.
    let fused: Vec<(usize, String)> = rules
        .iter()
        .enumerate()
        .filter_map(|(i, r)| match &r.kind {
            RuleKind::Aggregate(sql) => Some((i, format!("({sql})"))),
            RuleKind::Unique(cols) if cols.len() == 1 => {
                let c = ident(&cols[0]);
                // rows beyond the first of each value, NULL being one value (as GROUP BY has it)
                Some((
                    i,
                    format!(
                        "count(*) - count(DISTINCT {c}) - CASE WHEN count({c}) < count(*) THEN 1 ELSE 0 END"
                    ),
                ))
            }
            _ => None,
        })
        .collect();
    let mut fused_values: std::collections::HashMap<usize, Option<String>> = Default::default();
    if !fused.is_empty() {
        let select = fused
            .iter()
            .map(|(_, e)| e.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let plan = transform::plan_query(&state, &format!("SELECT {select} FROM output")).await?;
        let batches = DataFrame::new(state.clone(), plan).collect().await?;
        let b = batches
            .iter()
            .find(|b| b.num_rows() > 0)
            .ok_or_else(|| Error::Internal("an aggregate returned no row".into()))?;
        for (k, (i, _)) in fused.iter().enumerate() {
            let a = b.column(k);
            let v = if a.is_null(0) {
                None
            } else {
                Some(text(a, 0)?)
            };
            fused_values.insert(*i, v);
        }
    }
    let mut out = Vec::new();
    let mut fail: Option<String> = None;
    for (i, r) in rules.iter().enumerate() {
        let (observed, failed_rows, passed): (Option<String>, i64, bool) = match &r.kind {
            RuleKind::Unique(cols) => {
                let v = match fused_values.remove(&i) {
                    Some(v) => v,
                    None => {
                        let c = cols.iter().map(|c| ident(c)).collect::<Vec<_>>().join(", ");
                        scalar(format!(
                            "SELECT coalesce(sum(c - 1), 0) FROM (SELECT count(*) AS c FROM output GROUP BY {c}) WHERE c > 1"
                        ))
                        .await?
                    }
                };
                let d: i64 = v.as_deref().and_then(|s| s.parse().ok()).unwrap_or(0);
                (Some(d.to_string()), d, d == 0)
            }
            RuleKind::RowCount(b) => {
                let ok = b.min.is_none_or(|m| n >= m) && b.max.is_none_or(|m| n <= m);
                (Some(n.to_string()), 0, ok)
            }
            RuleKind::Aggregate(_) => {
                let v = fused_values.remove(&i).flatten();
                let ok = v.as_deref() == Some("true");
                (v, 0, ok)
            }
            RuleKind::Freshness {
                column,
                max_age_secs,
            } => {
                let c = ident(column);
                let sql = if has_target {
                    format!(
                        "SELECT max(m) FROM (SELECT max({c}) AS m FROM output UNION ALL SELECT max({c}) AS m FROM target)"
                    )
                } else {
                    format!("SELECT max({c}) FROM output")
                };
                let v = scalar(sql).await?;
                let ok = v
                    .as_deref()
                    .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                    .is_some_and(|t| {
                        (Utc::now() - t.with_timezone(&Utc)).num_seconds() <= *max_age_secs as i64
                    });
                (v, 0, ok)
            }
            RuleKind::References {
                column,
                table,
                to_column,
            } => {
                let v = scalar(format!(
                    "SELECT count(*) FROM output o WHERE o.{c} IS NOT NULL AND NOT EXISTS \
                     (SELECT 1 FROM {table} r WHERE r.{t} = o.{c})",
                    c = ident(column),
                    t = ident(to_column)
                ))
                .await?;
                let d: i64 = v.as_deref().and_then(|s| s.parse().ok()).unwrap_or(0);
                (Some(d.to_string()), d, d == 0)
            }
            _ => continue,
        };
        if !passed && r.action == Action::Fail && fail.is_none() {
            fail = Some(format!(
                "table expectation {} failed (observed {})",
                r.name,
                observed.clone().unwrap_or_else(|| "NULL".into())
            ));
        }
        out.push(QualityResult {
            run_id: scope.run_id.to_string(),
            pipeline: scope.pipeline.map(str::to_string),
            flow: scope.flow.map(str::to_string),
            table: scope.table.to_string(),
            rule: r.name.clone(),
            kind: "table".into(),
            action: r.action.as_str().into(),
            rows_checked: n,
            rows_failed: failed_rows,
            passed,
            observed,
            evaluated_at: Utc::now(),
        });
    }
    Ok((out, fail))
}

/// A rules file for `strata quality check`: `[[expect]]` entries, as in a flow.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    expect: Vec<RuleSpec>,
}

/// Reads a rules file.
pub fn read_rules(path: &std::path::Path) -> Result<Vec<Rule>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::NotFound(format!("cannot read rules file {}: {e}", path.display())))?;
    let origin = path.display().to_string();
    let file: RulesFile = toml::from_str(&text).map_err(|e| {
        let at = e
            .span()
            .map(|s| format!(" line {}", crate::spec::line_of(&text, s.start)))
            .unwrap_or_default();
        Error::InvalidInput(format!(
            "{origin}:{at}: {}",
            e.message().trim_end_matches('\n')
        ))
    })?;
    if file.expect.is_empty() {
        return Err(Error::InvalidInput(format!(
            "{origin}: no rules: add [[expect]] entries (see docs/pipelines.md)"
        )));
    }
    let mut rules = Vec::new();
    for r in &file.expect {
        let at = format!(
            "{origin}: line {}",
            crate::spec::line_of(&text, r.name.span().start)
        );
        let rule = Rule::from_spec(r, &at)?;
        if rule.action == Action::Quarantine || rule.action == Action::Drop {
            return Err(Error::InvalidInput(format!(
                "{at}: expectation {}: `quality check` reads a table and changes nothing, so its \
                 actions are warn or fail",
                rule.name
            )));
        }
        rules.push(rule);
    }
    Ok(rules)
}

/// Runs `rules` over `name` (at `version`, else its latest) in one scan for the row rules plus
/// one query per table rule; records the results in `system.quality_results`. Returns them and,
/// when a `fail` rule failed, the message.
pub async fn check_table(
    lh: &Lakehouse,
    name: &TableName,
    version: Option<i64>,
    rules: &[Rule],
) -> Result<(Vec<QualityResult>, Option<String>)> {
    let info = lh.table(name).await?;
    let table = match version {
        Some(v) => lh.open_delta_at(&info, v).await?,
        None => lh.open_delta(&info).await?,
    };
    let full = name.to_string();
    let run_id = uuid::Uuid::new_v4().to_string();
    let scope = Scope {
        run_id: &run_id,
        pipeline: None,
        flow: None,
        table: &full,
    };
    let provider = provider(&table).await?;
    let state = transform::session(vec![("default".into(), "output".into(), provider.clone())])?;
    // every row rule in one scan: count(*) and, per rule, the rows for which it is not TRUE
    let row_rules: Vec<&Rule> = rules.iter().filter(|r| r.kind.is_row_rule()).collect();
    let mut cols = vec!["count(*)".to_string()];
    for r in &row_rules {
        let sql = r.kind.row_sql().unwrap_or_default();
        cols.push(format!(
            "sum(CASE WHEN coalesce(({sql}), false) THEN 0 ELSE 1 END)"
        ));
    }
    let plan = transform::plan_query(&state, &format!("SELECT {} FROM output", cols.join(", ")))
        .await
        .map_err(|e| Error::InvalidInput(format!("quality check of {full}: {e}")))?;
    let batches = DataFrame::new(state, plan).collect().await?;
    let b = batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .ok_or_else(|| Error::Internal("an aggregate returned no row".into()))?;
    let num = |i: usize| -> Result<i64> {
        let a = b.column(i);
        if a.is_null(0) {
            return Ok(0);
        }
        Ok(text(a, 0)?.parse().unwrap_or(0))
    };
    let rows = num(0)?;
    let now = Utc::now();
    let mut results = Vec::new();
    let mut fail: Option<String> = None;
    for (i, r) in row_rules.iter().enumerate() {
        let failed = num(i + 1)?;
        if failed > 0 && r.action == Action::Fail && fail.is_none() {
            fail = Some(format!(
                "expectation {} failed on {failed} of {rows} rows",
                r.name
            ));
        }
        results.push(QualityResult {
            run_id: run_id.clone(),
            pipeline: None,
            flow: None,
            table: full.clone(),
            rule: r.name.clone(),
            kind: "row".into(),
            action: r.action.as_str().into(),
            rows_checked: rows,
            rows_failed: failed,
            passed: failed == 0,
            observed: None,
            evaluated_at: now,
        });
    }
    let whole: Vec<&Rule> = rules.iter().filter(|r| !r.kind.is_row_rule()).collect();
    let (more, table_fail) = table_rules(lh, &whole, provider, rows, None, &scope).await?;
    results.extend(more);
    let fail = fail.or(table_fail);
    lh.metastore().record_quality_results(&results).await?;
    Ok((results, fail))
}
