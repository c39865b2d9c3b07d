//! `strata quarantine show | replay | purge`: reading, replaying and removing quarantined rows.
//!
//! Replay (DECISIONS.md section 5) re-checks `cast` and `expectation` rows of non-aggregating
//! flows (`append`, `merge`) against the flow's current definition (that of its latest
//! successful run) and moves the rows that pass into the target, exactly once: the target
//! commit first, carrying the `txn` `replay:<quarantine table id>` with a number from the
//! metastore, then the deletion of those rows from quarantine with the same `txn`. The rows are
//! recorded in the metastore before the target commit, so a replay stopped between the two
//! commits is finished by the next one, never repeated.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch, UInt64Array};
use arrow::compute::{concat_batches, filter_record_batch};
use arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;
use datafusion::logical_expr::{Expr, lit};
use datafusion::prelude::DataFrame;
use deltalake::DeltaTable;
use strata_catalog::Lakehouse;
use strata_catalog::metastore::TableInfo;
use strata_core::TableName;
use strata_table::{Txn, WriteOptions};

use crate::error::{Error, Result};
use crate::rules::{Rule, RuleKind, quote};
use crate::run::{frame, merge_rows, provider};
use crate::spec::{Action, Mode, PipelineFile};
use crate::steps::ROW;
use crate::transform;
use crate::validate::{Flow, resolve};

/// Which quarantined rows a command means.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub stage: Option<String>,
    pub rule: Option<String>,
    pub flow: Option<String>,
    /// Rows quarantined longer ago than this.
    pub older_than: Option<Duration>,
}

impl Filter {
    /// The filter as a SQL condition over the envelope.
    pub fn sql(&self) -> Result<String> {
        let mut parts = vec!["TRUE".to_string()];
        if let Some(s) = &self.stage {
            if !strata_core::quarantine::STAGES.contains(&s.as_str()) {
                return Err(Error::InvalidInput(format!(
                    "unknown stage '{s}': expected {}",
                    strata_core::quarantine::STAGES.join(", ")
                )));
            }
            parts.push(format!("_stage = {}", quote(s)));
        }
        if let Some(r) = &self.rule {
            parts.push(format!("array_has(_rules, {})", quote(r)));
        }
        if let Some(f) = &self.flow {
            parts.push(format!("_flow = {}", quote(f)));
        }
        if let Some(d) = self.older_than {
            parts.push(format!(
                "_quarantined_at < CAST({} AS TIMESTAMP)",
                quote(&cutoff(d).to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
            ));
        }
        Ok(parts.join(" AND "))
    }

    /// The filter as an expression over the envelope, for a delete (the age as a timestamp
    /// literal, which deltalake can write into its commit).
    fn expr(&self, schema: &Schema, table: &str) -> Result<Option<Expr>> {
        let rest = Filter {
            older_than: None,
            ..self.clone()
        }
        .sql()?;
        let session = strata_table::session::session_state();
        let mut e = (rest != "TRUE")
            .then(|| strata_table::parse_predicate(&session, schema, table, &rest))
            .transpose()?;
        if let Some(d) = self.older_than {
            let at = lit(datafusion::common::ScalarValue::TimestampMicrosecond(
                Some(cutoff(d).timestamp_micros()),
                Some(strata_core::types::UTC.into()),
            ));
            let age = datafusion::prelude::col("_quarantined_at").lt(at);
            e = Some(match e {
                Some(x) => x.and(age),
                None => age,
            });
        }
        Ok(e)
    }
}

fn cutoff(d: Duration) -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now() - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::zero())
}

/// The quarantine table `name` (it must be in the schema `quarantine`).
pub async fn open_quarantine(lh: &Lakehouse, name: &TableName) -> Result<(TableInfo, DeltaTable)> {
    if name.schema.as_str() != "quarantine" {
        return Err(Error::InvalidInput(format!(
            "{name} is not a quarantine table: name one in the schema quarantine, e.g. \
             quarantine.{}",
            name.table
        )));
    }
    let info = lh.table(name).await?;
    let t = lh.open_delta(&info).await?;
    Ok((info, t))
}

async fn select(t: &DeltaTable, sql: &str) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let p = provider(t).await?;
    let state = transform::session(vec![("quarantine".into(), "q".into(), p)])?;
    let plan = transform::plan_query(&state, sql).await?;
    let df = DataFrame::new(state, plan);
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    Ok((schema, df.collect().await?))
}

/// The rows matching `filter`, newest first.
pub async fn show(
    lh: &Lakehouse,
    name: &TableName,
    filter: &Filter,
    limit: usize,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let (_, t) = open_quarantine(lh, name).await?;
    select(
        &t,
        &format!(
            "SELECT _quarantined_at, _stage, _flow, _rules, _reason, _source_pointer, _record, \
             _quarantine_id FROM quarantine.q WHERE {} ORDER BY _quarantined_at DESC, \
             _source_pointer LIMIT {limit}",
            filter.sql()?
        ),
    )
    .await
}

/// Deletes the rows matching `filter` in one commit; `all` is needed when the filter is empty.
pub async fn purge(lh: &Lakehouse, name: &TableName, filter: &Filter, all: bool) -> Result<u64> {
    let (info, t) = open_quarantine(lh, name).await?;
    let cond = filter.sql()?;
    if cond == "TRUE" && !all {
        return Err(Error::InvalidInput(format!(
            "purge of {name} names no rows: give --stage, --rule, --flow or --older-than, or \
             --all to remove every row"
        )));
    }
    let full = info.name.to_string();
    let schema = strata_table::arrow_schema(&t, &full)?;
    let pred = filter.expr(&schema, &full)?;
    let (_, o) = strata_table::delete(t, &full, pred, &WriteOptions::default()).await?;
    Ok(o.rows)
}

/// What a replay did.
#[derive(Debug, Clone, Default)]
pub struct ReplayOutcome {
    /// Rows moved into their targets, per target.
    pub moved: BTreeMap<String, u64>,
    /// Rows that still fail, per flow.
    pub still_failing: BTreeMap<String, u64>,
    /// Replays stopped between their two commits and finished now.
    pub finished: u64,
    /// Rows of stages replay does not handle (ingest, contract), left in place.
    pub skipped: u64,
}

/// Replays the rows matching `filter`.
pub async fn replay(lh: &Lakehouse, name: &TableName, filter: &Filter) -> Result<ReplayOutcome> {
    let ms = lh.metastore();
    let (qinfo, qtable) = open_quarantine(lh, name).await?;
    let qname = qinfo.name.to_string();
    let app = format!("replay:{}", qinfo.table_id);
    let mut out = ReplayOutcome::default();
    // a replay stopped between its commits: finish it
    for (n, target, ids) in ms.pending_replays(&qinfo.table_id).await? {
        let tn = TableName::parse(&target)?;
        let tinfo = lh.table(&tn).await?;
        let ttable = lh.open_delta(&tinfo).await?;
        let moved = strata_table::txn_version(&ttable, &target, &app).await? >= Some(n);
        let removed = strata_table::txn_version(&qtable, &qname, &app).await? >= Some(n);
        if moved && !removed {
            delete_ids(lh, &qinfo, &ids, &Txn::new(app.clone(), n)).await?;
            out.finished += 1;
        }
        ms.finish_replay(&qinfo.table_id, n).await?;
    }
    let qtable = lh.open_delta(&qinfo).await?;
    let (_, batches) = select(
        &qtable,
        &format!(
            "SELECT _quarantine_id, _stage, _flow, _target_table, _run_id, _record FROM \
             quarantine.q WHERE {} ORDER BY _quarantined_at, _source_pointer",
            filter.sql()?
        ),
    )
    .await?;
    // rows per (target, flow, run)
    struct Row {
        id: String,
        stage: String,
        record: String,
    }
    let mut groups: BTreeMap<(String, String), (BTreeSet<String>, Vec<Row>)> = BTreeMap::new();
    for b in &batches {
        let col = |n: &str| {
            b.column_by_name(n)
                .and_then(|c| arrow::compute::cast(c, &DataType::Utf8).ok())
                .map(|c| c.as_string::<i32>().clone())
        };
        let (Some(id), Some(stage), Some(flow), Some(target), Some(run), Some(record)) = (
            col("_quarantine_id"),
            col("_stage"),
            col("_flow"),
            col("_target_table"),
            col("_run_id"),
            col("_record"),
        ) else {
            return Err(Error::Internal(format!(
                "{qname} lacks the envelope columns"
            )));
        };
        for r in 0..b.num_rows() {
            let stage_s = stage.value(r).to_string();
            if !(stage_s == "cast" || stage_s == "expectation") || flow.is_null(r) {
                out.skipped += 1;
                continue;
            }
            let g = groups
                .entry((target.value(r).to_string(), flow.value(r).to_string()))
                .or_default();
            g.0.insert(run.value(r).to_string());
            g.1.push(Row {
                id: id.value(r).to_string(),
                stage: stage_s,
                record: record.value(r).to_string(),
            });
        }
    }
    let key = ms.secret_key().await?;
    for ((target, flow_name), (runs, rows)) in groups {
        let f = current_flow(lh, &flow_name, &runs).await?;
        if !matches!(f.mode, Mode::Append | Mode::Merge) {
            return Err(Error::Refused(format!(
                "rows of flow {flow_name} (mode {}) are not replayed one by one: its output \
                 is recomputed; run `strata pipeline run FILE --select {flow_name} \
                 --full-refresh` after fixing the cause",
                f.mode
            )));
        }
        let tn = TableName::parse(&target)?;
        let tinfo = lh.table(&tn).await?;
        let ttable = lh.open_delta(&tinfo).await?;
        let target_schema = strata_table::arrow_schema(&ttable, &target)?;
        // cast rows: the flow's steps and SQL again, from the source row
        let cast_rows: Vec<&Row> = rows.iter().filter(|r| r.stage == "cast").collect();
        let mut outputs: Vec<RecordBatch> = Vec::new();
        let mut ids: Vec<String> = Vec::new();
        if !cast_rows.is_empty() {
            let src = &f.sources[0].name;
            let sinfo = lh.table(src).await?;
            let stable = lh.open_delta(&sinfo).await?;
            let sschema = strata_table::arrow_schema(&stable, &src.to_string())?;
            let decoded = decode(&sschema, cast_rows.iter().map(|r| r.record.as_str()), true)?;
            let mut others: Vec<(TableName, Arc<dyn TableProvider>)> = Vec::new();
            for s in f.sources.iter().skip(1) {
                let i = lh.table(&s.name).await?;
                let t = lh.open_delta(&i).await?;
                others.push((s.name.clone(), provider(&t).await?));
            }
            let t = transform::transform(
                &f.spec
                    .steps
                    .iter()
                    .map(|s| s.get_ref().clone())
                    .collect::<Vec<_>>(),
                f.spec.sql.as_ref().map(|s| s.get_ref().as_str()),
                src,
                decoded,
                others,
                &key,
                &crate::validate::pii_columns(lh, &f).await?,
            )
            .await?;
            if t.aggregates {
                return Err(Error::Refused(format!(
                    "flow {flow_name} aggregates, so its rows are not replayed one by one; \
                     run it with --full-refresh"
                )));
            }
            let cast_failed = t.failed.len() as u64;
            *out.still_failing.entry(flow_name.clone()).or_default() += cast_failed;
            let batches = t.output.collect().await?;
            for b in batches {
                let rows_col = b
                    .column_by_name(ROW)
                    .and_then(|c| c.as_any().downcast_ref::<UInt64Array>().cloned())
                    .ok_or_else(|| Error::Internal("replay lost the row column".into()))?;
                for r in 0..b.num_rows() {
                    ids.push(cast_rows[rows_col.value(r) as usize].id.clone());
                }
                outputs.push(conform_batch(&b, &target_schema)?);
            }
        }
        // expectation rows: the checked output row as it was
        let exp_rows: Vec<&Row> = rows.iter().filter(|r| r.stage == "expectation").collect();
        if !exp_rows.is_empty() {
            outputs.push(decode(
                &target_schema,
                exp_rows.iter().map(|r| r.record.as_str()),
                false,
            )?);
            ids.extend(exp_rows.iter().map(|r| r.id.clone()));
        }
        let schema = Arc::new(target_schema.clone());
        let all = concat_batches(&schema, &outputs)?;
        // the current rules; a row moves when no rule but `warn` fails it
        let mut rules: Vec<Rule> = f
            .rules
            .iter()
            .filter(|r| r.kind.is_row_rule())
            .cloned()
            .collect();
        if f.mode == Mode::Merge {
            for k in &f.spec.keys {
                rules.push(Rule {
                    name: "key_not_null".into(),
                    action: Action::Quarantine,
                    kind: RuleKind::NotNull(k.clone()),
                });
            }
        }
        let pass = passing(&all, &rules, &f).await?;
        let moved_ids: Vec<String> = ids
            .iter()
            .zip(pass.iter())
            .filter(|(_, p)| **p)
            .map(|(i, _)| i.clone())
            .collect();
        *out.still_failing.entry(flow_name.clone()).or_default() +=
            (ids.len() - moved_ids.len()) as u64;
        if moved_ids.is_empty() {
            continue;
        }
        let data = filter_record_batch(&all, &BooleanArray::from(pass))?;
        let n = ms.next_sequence(&app).await?;
        ms.begin_replay(&qinfo.table_id, n, &target, &moved_ids)
            .await?;
        let txn = Txn::new(app.clone(), n);
        let wopts = WriteOptions {
            txn: Some(txn.clone()),
            ..Default::default()
        };
        match f.mode {
            Mode::Merge => {
                merge_rows(ttable, &target, data, &f, &wopts, None).await?;
            }
            _ => {
                strata_table::append(ttable, &target, frame(data)?, &wopts).await?;
            }
        }
        crate::run::failpoint("replay::after_target_commit");
        delete_ids(lh, &qinfo, &moved_ids, &txn).await?;
        ms.finish_replay(&qinfo.table_id, n).await?;
        *out.moved.entry(target.clone()).or_default() += moved_ids.len() as u64;
    }
    Ok(out)
}

/// The flow's current definition: that of the latest successful run of the pipeline that
/// quarantined its rows.
async fn current_flow(lh: &Lakehouse, flow: &str, runs: &BTreeSet<String>) -> Result<Flow> {
    let ms = lh.metastore();
    let mut pipeline = None;
    for r in runs {
        if let Some(fr) = ms
            .flow_runs(Some(r))
            .await?
            .into_iter()
            .find(|x| x.flow == flow)
        {
            pipeline = Some(fr.pipeline);
            break;
        }
    }
    let pipeline = pipeline.ok_or_else(|| {
        Error::NotFound(format!(
            "no run of flow {flow} is recorded in the metastore; its rows cannot be replayed"
        ))
    })?;
    let def = ms
        .last_flow_definition(&pipeline, flow)
        .await?
        .ok_or_else(|| {
            Error::NotFound(format!(
                "flow {pipeline}.{flow} has no successful run whose definition replay could use"
            ))
        })?;
    let text = def["pipeline_file"].as_str().ok_or_else(|| {
        Error::NotFound(format!(
            "the stored definition of flow {pipeline}.{flow} has no pipeline file"
        ))
    })?;
    let origin = def["origin"].as_str().unwrap_or("pipeline");
    let p = resolve(PipelineFile::parse(text, origin)?)?;
    p.flows
        .into_iter()
        .find(|f| f.name == flow)
        .ok_or_else(|| Error::NotFound(format!("pipeline {pipeline} no longer has flow {flow}")))
}

/// Decodes `_record` JSON objects into `schema` (values as the one encoding wrote them:
/// strings, numbers, booleans; decimals and timestamps as text), plus the arrival column.
fn decode<'a>(
    schema: &Schema,
    records: impl Iterator<Item = &'a str>,
    with_row: bool,
) -> Result<RecordBatch> {
    let text: String = records.map(|r| format!("{r}\n")).collect();
    let reader = arrow::json::ReaderBuilder::new(Arc::new(schema.clone()))
        .with_coerce_primitive(true)
        .build(Cursor::new(text.into_bytes()))?;
    let batches = reader.collect::<std::result::Result<Vec<_>, _>>()?;
    let b = concat_batches(&Arc::new(schema.clone()), &batches)?;
    if !with_row {
        return Ok(b);
    }
    crate::run::with_row(b)
}

/// A batch shaped as `schema`: columns by name, cast to its types, missing ones NULL.
pub(crate) fn conform_batch(b: &RecordBatch, schema: &Schema) -> Result<RecordBatch> {
    let mut cols = Vec::new();
    for f in schema.fields() {
        let c = match b.column_by_name(f.name()) {
            Some(c) if c.data_type() == f.data_type() => c.clone(),
            Some(c) => arrow::compute::cast(c, f.data_type())?,
            None => arrow::array::new_null_array(f.data_type(), b.num_rows()),
        };
        cols.push(c);
    }
    Ok(RecordBatch::try_new(Arc::new(schema.clone()), cols)?)
}

/// For each row: does it pass every rule whose action is not `warn`?
async fn passing(batch: &RecordBatch, rules: &[Rule], f: &Flow) -> Result<Vec<bool>> {
    let n = batch.num_rows();
    let strict: Vec<&Rule> = rules.iter().filter(|r| r.action != Action::Warn).collect();
    if strict.is_empty() || n == 0 {
        return Ok(vec![true; n]);
    }
    let state = transform::session(vec![(
        "default".into(),
        "rows".into(),
        Arc::new(MemTable::try_new(
            batch.schema(),
            vec![vec![batch.clone()]],
        )?),
    )])?;
    let df = DataFrame::new(
        state.clone(),
        transform::plan_query(&state, "SELECT * FROM rows").await?,
    );
    let schema = df.schema().clone();
    let mut ok: Option<Expr> = None;
    for r in strict {
        let e = r.row_expr(&state, &schema, &f.at, &f.name)?;
        let e = datafusion::functions::expr_fn::coalesce(vec![e, lit(false)]);
        ok = Some(match ok {
            Some(x) => x.and(e),
            None => e,
        });
    }
    let df = df.select(vec![ok.expect("a rule").alias("ok")])?;
    let mut out = Vec::with_capacity(n);
    for b in df.collect().await? {
        let a = b.column(0).as_boolean();
        out.extend((0..b.num_rows()).map(|i| a.is_valid(i) && a.value(i)));
    }
    Ok(out)
}

async fn delete_ids(lh: &Lakehouse, q: &TableInfo, ids: &[String], txn: &Txn) -> Result<()> {
    let t = lh.open_delta(q).await?;
    let full = q.name.to_string();
    let list = ids.iter().map(|i| quote(i)).collect::<Vec<_>>().join(", ");
    let schema = strata_table::arrow_schema(&t, &full)?;
    let session = strata_table::session::session_state();
    let pred = strata_table::parse_predicate(
        &session,
        &schema,
        &full,
        &format!("_quarantine_id IN ({list})"),
    )?;
    strata_table::delete(
        t,
        &full,
        Some(pred),
        &WriteOptions {
            txn: Some(txn.clone()),
            ..Default::default()
        },
    )
    .await?;
    Ok(())
}
