//! `pipeline validate`: resolves a pipeline file into flows in dependency order and checks
//! everything that can be checked without touching data: names, modes, the graph (cycles),
//! layer rules, tables, columns and types (by planning each flow over empty inputs), aggregates
//! in `append` flows and PII carried in clear. It also reports bronze columns no flow maps.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;
use strata_catalog::Lakehouse;
use strata_core::{Layer, SchemaKind, TableName};

use crate::error::{Error, Result};
use crate::rules::Rule;
use crate::spec::{FlowSpec, Mode, PipelineFile, Read};
use crate::steps::ROW;
use crate::transform::{self, empty_with_row, is_system_column, visible_schema};

/// A flow resolved against the file (names parsed, rules classified, sources linked).
#[derive(Debug, Clone)]
pub struct Flow {
    pub spec: FlowSpec,
    pub name: String,
    /// Where the flow is declared, `file: line N`.
    pub at: String,
    pub target: TableName,
    pub quarantine: TableName,
    pub mode: Mode,
    pub sources: Vec<Source>,
    /// Flows whose targets this flow reads.
    pub upstream: Vec<usize>,
    pub rules: Vec<Rule>,
    /// PII source columns declared by the pipeline and the flow.
    pub pii: BTreeSet<String>,
}

#[derive(Debug, Clone)]
pub struct Source {
    pub name: TableName,
    pub read: Read,
    /// The flow of this pipeline that writes it.
    pub produced_by: Option<usize>,
}

/// A pipeline file resolved into flows in dependency order.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub file: PipelineFile,
    pub flows: Vec<Flow>,
    /// Indexes into `flows`, upstream first.
    pub order: Vec<usize>,
}

impl Pipeline {
    pub fn name(&self) -> &str {
        self.file.name()
    }

    /// Flows that read `i`'s target, directly or further down.
    pub fn downstream(&self, i: usize) -> BTreeSet<usize> {
        let mut out = BTreeSet::new();
        let mut todo = vec![i];
        while let Some(x) = todo.pop() {
            for (j, f) in self.flows.iter().enumerate() {
                if f.upstream.contains(&x) && out.insert(j) {
                    todo.push(j);
                }
            }
        }
        out
    }

    /// Flows `i` reads from, directly or further up.
    pub fn upstream(&self, i: usize) -> BTreeSet<usize> {
        let mut out = BTreeSet::new();
        let mut todo = vec![i];
        while let Some(x) = todo.pop() {
            for &u in &self.flows[x].upstream {
                if out.insert(u) {
                    todo.push(u);
                }
            }
        }
        out
    }

    /// `--select`: `flow`, `+flow` (with its upstream), `flow+` (with its downstream).
    pub fn select(&self, selectors: &[String]) -> Result<BTreeSet<usize>> {
        if selectors.is_empty() {
            return Ok((0..self.flows.len()).collect());
        }
        let mut out = BTreeSet::new();
        for s in selectors {
            for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let up = part.starts_with('+');
                let down = part.ends_with('+') && part.len() > 1;
                let name = part.trim_start_matches('+').trim_end_matches('+');
                let i = self
                    .flows
                    .iter()
                    .position(|f| f.name == name)
                    .ok_or_else(|| {
                        Error::NotFound(format!(
                            "--select {part}: pipeline {} has no flow {name} (its flows: {})",
                            self.name(),
                            self.flows
                                .iter()
                                .map(|f| f.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))
                    })?;
                out.insert(i);
                if up {
                    out.extend(self.upstream(i));
                }
                if down {
                    out.extend(self.downstream(i));
                }
            }
        }
        Ok(out)
    }
}

fn table_name(
    file: &PipelineFile,
    span: std::ops::Range<usize>,
    text: &str,
    what: &str,
) -> Result<TableName> {
    TableName::parse(text).map_err(|e| file.err(span, format!("{what} '{text}': {e}")))
}

/// Resolves names, modes, rules and the graph; needs no lakehouse.
pub fn resolve(file: PipelineFile) -> Result<Pipeline> {
    strata_core::Ident::new(file.name())
        .map_err(|e| file.err(file.pipeline.name.span(), format!("pipeline name: {e}")))?;
    let mut flows: Vec<Flow> = Vec::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut targets: HashMap<TableName, usize> = HashMap::new();
    for spec in &file.flows {
        let at = file.at(spec.name.span());
        let name = spec.name().to_string();
        strata_core::Ident::new(&name)
            .map_err(|e| file.err(spec.name.span(), format!("flow name '{name}': {e}")))?;
        if names.insert(name.clone(), flows.len()).is_some() {
            return Err(file.err(spec.name.span(), format!("a second flow is named {name}")));
        }
        let target = table_name(&file, spec.target.span(), spec.target.get_ref(), "target")?;
        if let Some(other) = targets.insert(target.clone(), flows.len()) {
            return Err(file.err(
                spec.target.span(),
                format!(
                    "flows {} and {name} both write {target}: a table has one writing flow",
                    flows[other].name
                ),
            ));
        }
        let quarantine = match &spec.quarantine {
            Some(q) => table_name(&file, spec.target.span(), q, "quarantine")?,
            None => TableName::new(target.catalog.as_str(), "quarantine", target.table.as_str())?,
        };
        if quarantine.schema.as_str() != "quarantine" {
            return Err(file.err(
                spec.target.span(),
                format!("quarantine table {quarantine} must be in the schema quarantine"),
            ));
        }
        let mut sources = Vec::new();
        for (s, read) in spec.source_list() {
            let n = table_name(&file, s.span(), s.get_ref(), "source")?;
            sources.push(Source {
                name: n,
                read,
                produced_by: None,
            });
        }
        if sources.is_empty() {
            return Err(file.err(
                spec.name.span(),
                format!("flow {name} reads nothing: give it `source = \"schema.table\"` or `sources = [...]`"),
            ));
        }
        if spec.source.is_some() && !spec.sources.is_empty() {
            return Err(file.err(
                spec.name.span(),
                format!("flow {name} has both `source` and `sources`: list them all in `sources`"),
            ));
        }
        let mode = *spec.mode.get_ref();
        let mode_at = if spec.mode.span().is_empty() {
            spec.name.span()
        } else {
            spec.mode.span()
        };
        match mode {
            Mode::Merge | Mode::Scd2 if spec.keys.is_empty() => {
                return Err(file.err(
                    mode_at,
                    format!("flow {name}: mode {mode} needs `keys = [...]`"),
                ));
            }
            Mode::Scd2 if spec.sequence_by.is_none() => {
                return Err(file.err(
                    mode_at,
                    format!("flow {name}: mode scd2 needs `sequence_by`"),
                ));
            }
            Mode::Replace if spec.partition_by.is_empty() => {
                return Err(file.err(
                    mode_at,
                    format!(
                        "flow {name}: mode replace recomputes the partitions its changes touch, so it \
                         needs `partition_by = [...]`"
                    ),
                ));
            }
            _ => {}
        }
        if mode != Mode::Merge && spec.delete_when.is_some() {
            return Err(file.err(
                mode_at,
                format!("flow {name}: `delete_when` applies to mode merge only"),
            ));
        }
        if !matches!(mode, Mode::Merge | Mode::Scd2)
            && (!spec.keys.is_empty() || spec.sequence_by.is_some())
        {
            return Err(file.err(
                mode_at,
                format!("flow {name}: `keys` and `sequence_by` apply to modes merge and scd2, not {mode}"),
            ));
        }
        if spec.apply_deletes && mode != Mode::Merge {
            return Err(file.err(
                spec.name.span(),
                format!(
                    "flow {name}: apply_deletes removes the keys its source deletes, which only \
                     mode merge does; this flow's mode is {mode}"
                ),
            ));
        }
        let mut rules = Vec::new();
        let mut rule_names = BTreeSet::new();
        for r in &spec.expect {
            let rat = file.at(r.name.span());
            let rule = Rule::from_spec(r, &rat)?;
            if !rule_names.insert(rule.name.clone()) {
                return Err(file.err(
                    r.name.span(),
                    format!("flow {name} has two rules named {}", rule.name),
                ));
            }
            rules.push(rule);
        }
        let pii = file.pipeline.pii.iter().chain(&spec.pii).cloned().collect();
        flows.push(Flow {
            spec: spec.clone(),
            name,
            at,
            target,
            quarantine,
            mode,
            sources,
            upstream: Vec::new(),
            rules,
            pii,
        });
    }
    for flow in flows.iter_mut() {
        let mut up = Vec::new();
        for s in flow.sources.iter_mut() {
            s.produced_by = targets.get(&s.name).copied();
            if let Some(p) = s.produced_by {
                up.push(p);
            }
        }
        if flow.sources.iter().any(|s| s.name == flow.target) {
            return Err(Error::InvalidInput(format!(
                "{}: flow {} reads its own target {}: a flow cannot read what it writes",
                flow.at, flow.name, flow.target
            )));
        }
        flow.upstream = up;
    }
    let order = topo_order(&flows)?;
    Ok(Pipeline { file, flows, order })
}

fn topo_order(flows: &[Flow]) -> Result<Vec<usize>> {
    let mut indeg: Vec<usize> = flows.iter().map(|f| f.upstream.len()).collect();
    let mut ready: Vec<usize> = (0..flows.len()).filter(|&i| indeg[i] == 0).rev().collect();
    let mut order = Vec::new();
    while let Some(i) = ready.pop() {
        order.push(i);
        for (j, f) in flows.iter().enumerate().rev() {
            if f.upstream.contains(&i) {
                indeg[j] -= f.upstream.iter().filter(|&&u| u == i).count();
                if indeg[j] == 0 {
                    ready.push(j);
                }
            }
        }
    }
    if order.len() < flows.len() {
        let cycle: Vec<String> = (0..flows.len())
            .filter(|i| !order.contains(i))
            .map(|i| {
                format!(
                    "{} ({} <- {})",
                    flows[i].name,
                    flows[i].target,
                    flows[i]
                        .sources
                        .iter()
                        .map(|s| s.name.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
            .collect();
        return Err(Error::InvalidInput(format!(
            "the flows form a cycle: {}; a pipeline goes bronze to silver to gold, each flow \
             reading what earlier flows wrote",
            cycle.join("; ")
        )));
    }
    Ok(order)
}

/// What validation found.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// Problems that stop the pipeline from running.
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
    /// Per flow: columns of its bronze source that no step or query reads.
    pub unmapped: BTreeMap<String, Vec<String>>,
    /// Per flow: its output schema.
    pub outputs: BTreeMap<String, Schema>,
    /// Per flow: output columns tagged `pii` (allowed in clear) and `pii_masked`.
    pub pii_allowed: BTreeMap<String, Vec<String>>,
    pub pii_masked: BTreeMap<String, Vec<String>>,
}

/// The layer a schema belongs to, or why a flow cannot write it.
async fn target_layer(lh: &Lakehouse, flow: &Flow) -> Result<Layer> {
    let schema = lh.schema(&flow.target.schema_name()).await.map_err(|e| {
        Error::NotFound(format!(
            "{}: flow {}: target {}: {e}",
            flow.at, flow.name, flow.target
        ))
    })?;
    match schema.kind {
        SchemaKind::Layer(Layer::Bronze) => Err(Error::Refused(format!(
            "{}: flow {} writes bronze table {}: bronze is written only by ingest; a flow \
             writes silver or gold",
            flow.at, flow.name, flow.target
        ))),
        SchemaKind::Layer(l) => Ok(l),
        other => Err(Error::Refused(format!(
            "{}: flow {} writes {} in schema {}, which is a {} schema; a flow writes silver or gold",
            flow.at,
            flow.name,
            flow.target,
            flow.target.schema,
            other.as_str()
        ))),
    }
}

/// The schema and layer of each source, from the lakehouse or from the flow that writes it.
async fn source_shape(
    lh: &Lakehouse,
    p: &Pipeline,
    s: &Source,
    outputs: &HashMap<usize, (Schema, Layer)>,
) -> Result<(SchemaRef, Layer)> {
    if let Some(i) = s.produced_by {
        if let Some((schema, layer)) = outputs.get(&i) {
            return Ok((Arc::new(schema.clone()), *layer));
        }
        // the producing flow's check failed; it was reported there
        return Err(Error::InvalidInput(String::new()));
    }
    let info = lh.table(&s.name).await.map_err(|_| {
        Error::NotFound(format!(
            "source {} does not exist, and no flow of pipeline {} writes it",
            s.name,
            p.name()
        ))
    })?;
    let layer = info.layer.ok_or_else(|| {
        Error::Refused(format!(
            "source {} is not in a layer (bronze, silver or gold); flows read layer tables",
            s.name
        ))
    })?;
    let table = lh.open_delta(&info).await?;
    Ok((
        strata_table::table_schema(&table, &s.name.to_string())?,
        layer,
    ))
}

/// The PII columns of a flow's sources: those the pipeline and the flow declare, and every
/// source column tagged `pii` (DECISIONS.md section 10: the tag is what is PII).
pub async fn pii_columns(lh: &Lakehouse, f: &Flow) -> Result<BTreeSet<String>> {
    let mut out = f.pii.clone();
    for s in &f.sources {
        if let Some(info) = lh.metastore().get_table(&s.name).await? {
            for t in lh.metastore().tags(&info.table_id).await? {
                if t.tag == "pii"
                    && let Some(c) = t.column
                {
                    out.insert(c);
                }
            }
        }
    }
    Ok(out)
}

/// Checks the pipeline against the lakehouse, planning every flow over empty inputs.
pub async fn check(lh: &Lakehouse, p: &Pipeline) -> Result<Report> {
    let mut report = Report::default();
    let mut outputs: HashMap<usize, (Schema, Layer)> = HashMap::new();
    let key = lh.metastore().secret_key().await?;
    for &i in &p.order {
        let f = &p.flows[i];
        match check_flow(lh, p, i, &outputs, &key, &mut report).await {
            Ok(Some((schema, layer))) => {
                report.outputs.insert(f.name.clone(), schema.clone());
                outputs.insert(i, (schema, layer));
            }
            Ok(None) => {}
            Err(e) => {
                let m = e.to_string();
                if !m.is_empty() {
                    report.problems.push(if m.starts_with(&p.file.origin) {
                        m
                    } else {
                        format!("{}: flow {}: {m}", f.at, f.name)
                    });
                }
            }
        }
    }
    // a bronze column is unmapped when no flow reading that table maps it
    let mut by_table: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, f) in p.flows.iter().enumerate() {
        if report.unmapped.contains_key(&f.name) {
            by_table
                .entry(f.sources[0].name.to_string())
                .or_default()
                .push(i);
        }
    }
    for (table, flows) in by_table {
        let mut common: Option<BTreeSet<String>> = None;
        for &i in &flows {
            let cols: BTreeSet<String> =
                report.unmapped[&p.flows[i].name].iter().cloned().collect();
            common = Some(match common {
                Some(c) => c.intersection(&cols).cloned().collect(),
                None => cols,
            });
        }
        let common: Vec<String> = common.unwrap_or_default().into_iter().collect();
        for &i in &flows {
            let name = &p.flows[i].name;
            if common.is_empty() {
                report.unmapped.remove(name);
            } else {
                report.unmapped.insert(name.clone(), common.clone());
            }
        }
        if !common.is_empty() {
            let f = &p.flows[flows[0]];
            report.warnings.push(format!(
                "{}: bronze columns no flow maps, in {table}: {} (new fields waiting for a \
                 decision: map them in a flow, or leave them in bronze on purpose)",
                f.at,
                common.join(", ")
            ));
        }
    }
    Ok(report)
}

async fn check_flow(
    lh: &Lakehouse,
    p: &Pipeline,
    i: usize,
    outputs: &HashMap<usize, (Schema, Layer)>,
    key: &[u8],
    report: &mut Report,
) -> Result<Option<(Schema, Layer)>> {
    let f = &p.flows[i];
    let layer = target_layer(lh, f).await?;
    let mut shapes = Vec::new();
    for s in &f.sources {
        let (schema, sl) = source_shape(lh, p, s, outputs).await?;
        if !layer.may_read(sl) {
            let why = if layer == Layer::Gold && sl == Layer::Bronze {
                "a gold flow never reads bronze: refine the data into silver first".to_string()
            } else {
                format!("a {layer} table does not read {sl}")
            };
            return Err(Error::Refused(format!(
                "{}: flow {} writes {} ({layer}) from {} ({sl}): {why}",
                f.at, f.name, f.target, s.name
            )));
        }
        if s.read == Read::Changes && f.mode == Mode::Append && sl != Layer::Bronze {
            report.warnings.push(format!(
                "{}: flow {} appends the changes of {}, which is not append-only: its updates \
                 arrive as new rows",
                f.at, f.name, s.name
            ));
        }
        shapes.push((s, schema, sl));
    }
    let (first, first_schema, first_layer) = &shapes[0];
    let primary = empty_with_row(first_schema)?;
    let mut others: Vec<(TableName, Arc<dyn TableProvider>)> = Vec::new();
    for (s, schema, _) in shapes.iter().skip(1) {
        others.push((
            s.name.clone(),
            Arc::new(MemTable::try_new(schema.clone(), vec![vec![]])?),
        ));
    }
    let mut pii = pii_columns(lh, f).await?;
    // a column an upstream flow of this pipeline carries in clear (allow_pii) is PII here too
    for s in &f.sources {
        if let Some(u) = s.produced_by {
            pii.extend(
                report
                    .pii_allowed
                    .get(&p.flows[u].name)
                    .into_iter()
                    .flatten()
                    .cloned(),
            );
        }
    }
    let t = transform::transform(
        &f.spec
            .steps
            .iter()
            .map(|s| s.get_ref().clone())
            .collect::<Vec<_>>(),
        f.spec.sql.as_ref().map(|s| s.get_ref().as_str()),
        &first.name,
        primary,
        others,
        key,
        &pii,
    )
    .await?;
    let out = visible_schema(&Arc::new(t.output.schema().as_arrow().clone()));
    if f.mode == Mode::Append && t.aggregates {
        return Err(Error::InvalidInput(format!(
            "{}: flow {} aggregates (GROUP BY or DISTINCT) but its mode is append: each run \
             would append new totals beside the old ones; use mode replace (by partition) or \
             full",
            f.at, f.name
        )));
    }
    let has = |c: &str| out.field_with_name(c).is_ok();
    let cols = || crate::steps::columns(&out);
    let mut need: Vec<(&str, &str)> = Vec::new();
    for k in &f.spec.keys {
        need.push(("key", k));
    }
    if let Some(s) = &f.spec.sequence_by {
        need.push(("sequence_by", s));
    }
    for c in &f.spec.partition_by {
        need.push(("partition_by", c));
    }
    for c in &f.spec.zorder {
        need.push(("zorder", c));
    }
    for c in &f.spec.track {
        need.push(("track", c));
    }
    if f.mode == Mode::Scd2 {
        for c in crate::run::SCD2_COLUMNS {
            if has(c) {
                return Err(Error::InvalidInput(format!(
                    "{}: flow {}: output column {c} is the name scd2 gives its own column; rename it",
                    f.at, f.name
                )));
            }
        }
    }
    let rule_what: Vec<(String, &str)> = f
        .rules
        .iter()
        .flat_map(|r| {
            r.kind
                .columns()
                .into_iter()
                .map(move |c| (format!("expectation {}", r.name), c))
        })
        .collect();
    for (what, c) in &rule_what {
        need.push((what.as_str(), c));
    }
    for (what, c) in need {
        if !has(c) {
            return Err(Error::InvalidInput(format!(
                "{}: flow {}: {what} column '{c}' is not an output column (its output: {})",
                f.at,
                f.name,
                cols()
            )));
        }
    }
    if f.mode == Mode::Replace {
        for c in &f.spec.partition_by {
            if first_schema.field_with_name(c).is_err() {
                return Err(Error::InvalidInput(format!(
                    "{}: flow {}: mode replace finds the partitions to recompute from its \
                     source's changes, so partition column '{c}' must be a column of {} passed \
                     through by name",
                    f.at, f.name, first.name
                )));
            }
        }
    }
    // row rules must plan over the output
    let df_schema = datafusion::common::DFSchema::try_from(out.clone())?;
    for r in f.rules.iter().filter(|r| r.kind.is_row_rule()) {
        r.row_expr(&t.session, &df_schema, &f.at, &f.name)?;
    }
    let carried: Vec<(&String, &String)> = t
        .pii_out
        .iter()
        .filter(|(out_col, src)| {
            !f.spec.allow_pii.contains(out_col) && !f.spec.allow_pii.contains(src)
        })
        .collect();
    if let Some((out_col, src)) = carried.first() {
        return Err(Error::Refused(format!(
            "{}: flow {}: output column {out_col} carries PII column {src} in clear; mask it \
             (a step `{{ mask = {{ {src} = \"hmac\" }} }}`), leave it out, or list it in \
             `allow_pii` to carry it on purpose",
            f.at, f.name
        )));
    }
    report
        .pii_allowed
        .insert(f.name.clone(), t.pii_out.keys().cloned().collect());
    report
        .pii_masked
        .insert(f.name.clone(), t.masked.iter().cloned().collect());
    if *first_layer == Layer::Bronze {
        let unmapped: Vec<String> = first_schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|n| n != ROW && !is_system_column(n) && !t.used.contains(n))
            .collect();
        // narrowed to what no flow reading this table maps, in `check`
        report.unmapped.insert(f.name.clone(), unmapped);
    }
    // an existing target must take the output's types
    if let Ok(info) = lh.table(&f.target).await {
        let table = lh.open_delta(&info).await?;
        let existing = strata_table::arrow_schema(&table, &f.target.to_string())?;
        for of in out.fields() {
            if let Ok(tf) = existing.field_with_name(of.name())
                && f.spec.on_schema_change != crate::spec::OnSchemaChange::FullRefresh
                && strata_table::delta_type(tf.data_type())
                    != strata_table::delta_type(of.data_type())
            {
                return Err(Error::Refused(format!(
                    "{}: flow {}: column {} of {} is {} but the flow now writes {}: a column's \
                     type cannot change in place; run the flow with --full-refresh after \
                     dropping the table, or cast it to {}",
                    f.at,
                    f.name,
                    of.name(),
                    f.target,
                    strata_core::types::type_name(tf.data_type()),
                    strata_core::types::type_name(of.data_type()),
                    strata_core::types::type_name(tf.data_type()),
                )));
            }
        }
    }
    Ok(Some((out, layer)))
}
