//! The read-only `system` tables over the metastore (DECISIONS.md section 9). Their columns
//! change only with a migration and a docs update.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Int64Array, ListBuilder, RecordBatch, StringArray, StringBuilder,
    TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;
use strata_catalog::metastore::TableInfo;
use strata_core::types::{timestamp_type, type_name};
use strata_core::{TableKind, TableName};

use crate::engine::SqlEngine;
use crate::error::{Error, Result};

pub(crate) const SYSTEM_TABLES: &[&str] = &[
    "tables",
    "columns",
    "lineage",
    "ingest_runs",
    "ingest_files",
    "pipeline_runs",
    "flow_runs",
    "quality_results",
];

fn ts_array(values: impl IntoIterator<Item = Option<i64>>) -> ArrayRef {
    Arc::new(
        TimestampMicrosecondArray::from(values.into_iter().collect::<Vec<_>>())
            .with_timezone("UTC"),
    )
}

fn str_array<S: AsRef<str>>(values: impl IntoIterator<Item = Option<S>>) -> ArrayRef {
    Arc::new(StringArray::from(
        values
            .into_iter()
            .map(|v| v.map(|s| s.as_ref().to_string()))
            .collect::<Vec<Option<String>>>(),
    ))
}

fn list_array(values: &[Vec<String>]) -> ArrayRef {
    let mut b = ListBuilder::new(StringBuilder::new());
    for row in values {
        for v in row {
            b.values().append_value(v);
        }
        b.append(true);
    }
    Arc::new(b.finish())
}

fn tags_type() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
}

impl SqlEngine {
    pub(crate) async fn system_table(&self, name: &TableName) -> Result<Arc<dyn TableProvider>> {
        let batch = match name.table.as_str() {
            "tables" => self.system_tables().await?,
            "columns" => self.system_columns().await?,
            "lineage" => self.system_lineage().await?,
            "ingest_runs" => self.system_ingest_runs().await?,
            "ingest_files" => self.system_ingest_files().await?,
            "pipeline_runs" => self.system_pipeline_runs().await?,
            "flow_runs" => self.system_flow_runs().await?,
            "quality_results" => self.system_quality_results().await?,
            _ => {
                return Err(Error::NotFound(format!(
                    "table {name} does not exist: the system tables are {}",
                    SYSTEM_TABLES
                        .iter()
                        .map(|t| format!("system.{t}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        };
        let schema = batch.schema();
        Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
    }

    async fn all_tables(&self) -> Result<Vec<TableInfo>> {
        Ok(self.lakehouse.metastore().list_tables(None, None).await?)
    }

    async fn system_tables(&self) -> Result<RecordBatch> {
        let tables = self.all_tables().await?;
        let ms = self.lakehouse.metastore();
        let mut tags = Vec::new();
        for t in &tables {
            tags.push(
                ms.tags(&t.table_id)
                    .await?
                    .into_iter()
                    .filter(|g| g.column.is_none())
                    .map(|g| g.tag)
                    .collect::<Vec<_>>(),
            );
        }
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("table_id", DataType::Utf8, false),
            Field::new("full_name", DataType::Utf8, false),
            Field::new("catalog", DataType::Utf8, false),
            Field::new("schema", DataType::Utf8, false),
            Field::new("name", DataType::Utf8, false),
            Field::new("layer", DataType::Utf8, true),
            Field::new("kind", DataType::Utf8, false),
            Field::new("location", DataType::Utf8, true),
            Field::new("owner", DataType::Utf8, true),
            Field::new("comment", DataType::Utf8, true),
            Field::new("properties", DataType::Utf8, false),
            Field::new("tags", tags_type(), false),
            Field::new("created_at", timestamp_type(), false),
            Field::new("updated_at", timestamp_type(), false),
        ]));
        let cols: Vec<ArrayRef> = vec![
            str_array(tables.iter().map(|t| Some(&t.table_id))),
            str_array(tables.iter().map(|t| Some(t.name.to_string()))),
            str_array(tables.iter().map(|t| Some(t.name.catalog.as_str()))),
            str_array(tables.iter().map(|t| Some(t.name.schema.as_str()))),
            str_array(tables.iter().map(|t| Some(t.name.table.as_str()))),
            str_array(tables.iter().map(|t| t.layer.map(|l| l.as_str()))),
            str_array(tables.iter().map(|t| Some(t.kind.as_str()))),
            str_array(tables.iter().map(|t| t.location.as_deref())),
            str_array(tables.iter().map(|t| t.owner.as_deref())),
            str_array(tables.iter().map(|t| t.comment.as_deref())),
            str_array(tables.iter().map(|t| {
                Some(serde_json::to_string(&t.properties).unwrap_or_else(|_| "{}".into()))
            })),
            list_array(&tags),
            ts_array(tables.iter().map(|t| Some(t.created_at.timestamp_micros()))),
            ts_array(tables.iter().map(|t| Some(t.updated_at.timestamp_micros()))),
        ];
        Ok(RecordBatch::try_new(schema, cols).map_err(datafusion::error::DataFusionError::from)?)
    }

    async fn system_columns(&self) -> Result<RecordBatch> {
        let tables = self.all_tables().await?;
        let ms = self.lakehouse.metastore();
        let (mut full, mut col, mut ord, mut ty, mut nullable, mut comment, mut tags) =
            (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
        for t in &tables {
            let fields: Vec<Field> = match t.kind {
                TableKind::View => {
                    let sql = t.view_sql.clone().unwrap_or_default();
                    match Box::pin(self.plan_query_text(&sql, 1)).await {
                        Ok(plan) => plan
                            .schema()
                            .as_arrow()
                            .fields()
                            .iter()
                            .map(|f| f.as_ref().clone())
                            .collect(),
                        Err(_) => continue,
                    }
                }
                _ => match self.lakehouse.open_delta(t).await {
                    Ok(d) => strata_table::arrow_schema(&d, &t.name.to_string())?
                        .fields()
                        .iter()
                        .map(|f| f.as_ref().clone())
                        .collect(),
                    Err(_) => continue,
                },
            };
            let comments = ms.column_comments(&t.table_id).await?;
            let table_tags = ms.tags(&t.table_id).await?;
            for (i, f) in fields.iter().enumerate() {
                full.push(t.name.to_string());
                col.push(f.name().clone());
                ord.push(i as i64 + 1);
                ty.push(type_name(f.data_type()));
                nullable.push(f.is_nullable());
                comment.push(comments.get(f.name()).cloned());
                tags.push(
                    table_tags
                        .iter()
                        .filter(|g| g.column.as_deref() == Some(f.name().as_str()))
                        .map(|g| g.tag.clone())
                        .collect::<Vec<_>>(),
                );
            }
        }
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("full_name", DataType::Utf8, false),
            Field::new("column_name", DataType::Utf8, false),
            Field::new("ordinal", DataType::Int64, false),
            Field::new("data_type", DataType::Utf8, false),
            Field::new("nullable", DataType::Boolean, false),
            Field::new("comment", DataType::Utf8, true),
            Field::new("tags", tags_type(), false),
        ]));
        let cols: Vec<ArrayRef> = vec![
            str_array(full.iter().map(Some)),
            str_array(col.iter().map(Some)),
            Arc::new(Int64Array::from(ord)),
            str_array(ty.iter().map(Some)),
            Arc::new(BooleanArray::from(nullable)),
            str_array(comment.iter().map(|c| c.as_deref())),
            list_array(&tags),
        ];
        Ok(RecordBatch::try_new(schema, cols).map_err(datafusion::error::DataFusionError::from)?)
    }

    async fn system_lineage(&self) -> Result<RecordBatch> {
        let edges = self.lakehouse.metastore().lineage().await?;
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("source_table", DataType::Utf8, false),
            Field::new("target_table", DataType::Utf8, false),
            Field::new("kind", DataType::Utf8, false),
            Field::new("pipeline", DataType::Utf8, true),
            Field::new("flow", DataType::Utf8, true),
            Field::new("first_seen", timestamp_type(), false),
            Field::new("last_seen", timestamp_type(), false),
        ]));
        let cols: Vec<ArrayRef> = vec![
            str_array(edges.iter().map(|e| Some(&e.source_table))),
            str_array(edges.iter().map(|e| Some(&e.target_table))),
            str_array(edges.iter().map(|e| Some(&e.kind))),
            str_array(edges.iter().map(|e| e.pipeline.as_deref())),
            str_array(edges.iter().map(|e| e.flow.as_deref())),
            ts_array(edges.iter().map(|e| Some(e.first_seen.timestamp_micros()))),
            ts_array(edges.iter().map(|e| Some(e.last_seen.timestamp_micros()))),
        ];
        Ok(RecordBatch::try_new(schema, cols).map_err(datafusion::error::DataFusionError::from)?)
    }

    async fn system_ingest_runs(&self) -> Result<RecordBatch> {
        let runs = self.lakehouse.metastore().ingest_runs(None, None).await?;
        let count = |n: &str| Field::new(n, DataType::Int64, false);
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("run_id", DataType::Utf8, false),
            Field::new("table", DataType::Utf8, false),
            Field::new("source", DataType::Utf8, false),
            Field::new("status", DataType::Utf8, false),
            Field::new("started_at", timestamp_type(), false),
            Field::new("finished_at", timestamp_type(), true),
            count("files_seen"),
            count("files_skipped"),
            count("files_landed"),
            count("duplicate_content_files"),
            count("records_read"),
            count("records_landed"),
            count("records_rescued"),
            count("records_corrupt"),
            count("records_quarantined"),
            count("bytes_read"),
            Field::new("first_version", DataType::Int64, true),
            Field::new("last_version", DataType::Int64, true),
            Field::new("samples", DataType::Utf8, false),
            Field::new("error", DataType::Utf8, true),
        ]));
        let n = |f: &dyn Fn(&strata_catalog::metastore::RunCounts) -> u64| -> ArrayRef {
            Arc::new(Int64Array::from(
                runs.iter()
                    .map(|r| i64::try_from(f(&r.counts)).unwrap_or(i64::MAX))
                    .collect::<Vec<_>>(),
            ))
        };
        let cols: Vec<ArrayRef> = vec![
            str_array(runs.iter().map(|r| Some(&r.run_id))),
            str_array(runs.iter().map(|r| Some(&r.table_name))),
            str_array(runs.iter().map(|r| Some(&r.source))),
            str_array(runs.iter().map(|r| Some(&r.status))),
            ts_array(runs.iter().map(|r| Some(r.started_at.timestamp_micros()))),
            ts_array(
                runs.iter()
                    .map(|r| r.finished_at.map(|t| t.timestamp_micros())),
            ),
            n(&|c| c.files_seen),
            n(&|c| c.files_skipped),
            n(&|c| c.files_landed),
            n(&|c| c.duplicate_content_files),
            n(&|c| c.records_read),
            n(&|c| c.records_landed),
            n(&|c| c.records_rescued),
            n(&|c| c.records_corrupt),
            n(&|c| c.records_quarantined),
            n(&|c| c.bytes_read),
            Arc::new(Int64Array::from(
                runs.iter().map(|r| r.first_version).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                runs.iter().map(|r| r.last_version).collect::<Vec<_>>(),
            )),
            str_array(runs.iter().map(|r| Some(r.samples.to_string()))),
            str_array(runs.iter().map(|r| r.error.as_deref())),
        ];
        Ok(RecordBatch::try_new(schema, cols).map_err(datafusion::error::DataFusionError::from)?)
    }

    async fn system_ingest_files(&self) -> Result<RecordBatch> {
        let files = self.lakehouse.metastore().ingest_files(None).await?;
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("table", DataType::Utf8, false),
            Field::new("file_uri", DataType::Utf8, false),
            Field::new("size", DataType::Int64, false),
            Field::new("modified_at", timestamp_type(), false),
            Field::new("content_hash", DataType::Utf8, true),
            Field::new("batch_id", DataType::Int64, false),
            Field::new("run_id", DataType::Utf8, false),
            Field::new("version", DataType::Int64, true),
            Field::new("first_record", DataType::Int64, false),
            Field::new("records", DataType::Int64, false),
            Field::new("status", DataType::Utf8, false),
            Field::new("landed_at", timestamp_type(), true),
        ]));
        let big = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let cols: Vec<ArrayRef> = vec![
            str_array(files.iter().map(|f| Some(&f.table_name))),
            str_array(files.iter().map(|f| Some(&f.range.file_uri))),
            Arc::new(Int64Array::from(
                files.iter().map(|f| big(f.range.size)).collect::<Vec<_>>(),
            )),
            ts_array(
                files
                    .iter()
                    .map(|f| Some(f.range.modified_at.timestamp_micros())),
            ),
            str_array(files.iter().map(|f| f.range.content_hash.as_deref())),
            Arc::new(Int64Array::from(
                files.iter().map(|f| f.range.batch_id).collect::<Vec<_>>(),
            )),
            str_array(files.iter().map(|f| Some(&f.range.run_id))),
            Arc::new(Int64Array::from(
                files.iter().map(|f| f.version).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                files
                    .iter()
                    .map(|f| big(f.range.first_record))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                files
                    .iter()
                    .map(|f| big(f.range.records))
                    .collect::<Vec<_>>(),
            )),
            str_array(files.iter().map(|f| Some(&f.range.status))),
            ts_array(
                files
                    .iter()
                    .map(|f| f.range.landed_at.map(|t| t.timestamp_micros())),
            ),
        ];
        Ok(RecordBatch::try_new(schema, cols).map_err(datafusion::error::DataFusionError::from)?)
    }

    async fn system_pipeline_runs(&self) -> Result<RecordBatch> {
        let runs = self.lakehouse.metastore().pipeline_runs(None, None).await?;
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("run_id", DataType::Utf8, false),
            Field::new("pipeline", DataType::Utf8, false),
            Field::new("trigger", DataType::Utf8, false),
            Field::new("status", DataType::Utf8, false),
            Field::new("started_at", timestamp_type(), false),
            Field::new("finished_at", timestamp_type(), true),
            Field::new("error", DataType::Utf8, true),
        ]));
        let cols: Vec<ArrayRef> = vec![
            str_array(runs.iter().map(|r| Some(&r.run_id))),
            str_array(runs.iter().map(|r| Some(&r.pipeline))),
            str_array(runs.iter().map(|r| Some(&r.trigger))),
            str_array(runs.iter().map(|r| Some(&r.status))),
            ts_array(runs.iter().map(|r| Some(r.started_at.timestamp_micros()))),
            ts_array(
                runs.iter()
                    .map(|r| r.finished_at.map(|t| t.timestamp_micros())),
            ),
            str_array(runs.iter().map(|r| r.error.as_deref())),
        ];
        Ok(RecordBatch::try_new(schema, cols).map_err(datafusion::error::DataFusionError::from)?)
    }

    async fn system_flow_runs(&self) -> Result<RecordBatch> {
        let runs = self.lakehouse.metastore().flow_runs(None).await?;
        let count = |n: &str| Field::new(n, DataType::Int64, false);
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("run_id", DataType::Utf8, false),
            Field::new("flow", DataType::Utf8, false),
            Field::new("target", DataType::Utf8, false),
            Field::new("status", DataType::Utf8, false),
            Field::new("started_at", timestamp_type(), false),
            Field::new("finished_at", timestamp_type(), true),
            count("rows_read"),
            count("rows_written"),
            count("rows_quarantined"),
            count("rows_dropped"),
            Field::new("source_versions", DataType::Utf8, false),
            Field::new("target_version", DataType::Int64, true),
            Field::new("unmapped_columns", tags_type(), false),
            Field::new("samples", DataType::Utf8, false),
            Field::new("error", DataType::Utf8, true),
        ]));
        let n = |f: &dyn Fn(&strata_catalog::metastore::FlowRun) -> i64| -> ArrayRef {
            Arc::new(Int64Array::from(runs.iter().map(f).collect::<Vec<_>>()))
        };
        let unmapped: Vec<Vec<String>> = runs.iter().map(|r| r.unmapped_columns.clone()).collect();
        let cols: Vec<ArrayRef> = vec![
            str_array(runs.iter().map(|r| Some(&r.run_id))),
            str_array(runs.iter().map(|r| Some(&r.flow))),
            str_array(runs.iter().map(|r| Some(&r.target))),
            str_array(runs.iter().map(|r| Some(&r.status))),
            ts_array(runs.iter().map(|r| Some(r.started_at.timestamp_micros()))),
            ts_array(
                runs.iter()
                    .map(|r| r.finished_at.map(|t| t.timestamp_micros())),
            ),
            n(&|r| r.rows_read),
            n(&|r| r.rows_written),
            n(&|r| r.rows_quarantined),
            n(&|r| r.rows_dropped),
            str_array(runs.iter().map(|r| Some(r.source_versions.to_string()))),
            Arc::new(Int64Array::from(
                runs.iter().map(|r| r.target_version).collect::<Vec<_>>(),
            )),
            list_array(&unmapped),
            str_array(runs.iter().map(|r| Some(r.samples.to_string()))),
            str_array(runs.iter().map(|r| r.error.as_deref())),
        ];
        Ok(RecordBatch::try_new(schema, cols).map_err(datafusion::error::DataFusionError::from)?)
    }

    async fn system_quality_results(&self) -> Result<RecordBatch> {
        let results = self.lakehouse.metastore().quality_results().await?;
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("run_id", DataType::Utf8, false),
            Field::new("flow", DataType::Utf8, true),
            Field::new("table", DataType::Utf8, false),
            Field::new("rule", DataType::Utf8, false),
            Field::new("kind", DataType::Utf8, false),
            Field::new("action", DataType::Utf8, false),
            Field::new("rows_checked", DataType::Int64, false),
            Field::new("rows_failed", DataType::Int64, false),
            Field::new("passed", DataType::Boolean, false),
            Field::new("observed", DataType::Utf8, true),
            Field::new("evaluated_at", timestamp_type(), false),
        ]));
        let cols: Vec<ArrayRef> = vec![
            str_array(results.iter().map(|r| Some(&r.run_id))),
            str_array(results.iter().map(|r| r.flow.as_deref())),
            str_array(results.iter().map(|r| Some(&r.table))),
            str_array(results.iter().map(|r| Some(&r.rule))),
            str_array(results.iter().map(|r| Some(&r.kind))),
            str_array(results.iter().map(|r| Some(&r.action))),
            Arc::new(Int64Array::from(
                results.iter().map(|r| r.rows_checked).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                results.iter().map(|r| r.rows_failed).collect::<Vec<_>>(),
            )),
            Arc::new(BooleanArray::from(
                results.iter().map(|r| r.passed).collect::<Vec<_>>(),
            )),
            str_array(results.iter().map(|r| r.observed.as_deref())),
            ts_array(
                results
                    .iter()
                    .map(|r| Some(r.evaluated_at.timestamp_micros())),
            ),
        ];
        Ok(RecordBatch::try_new(schema, cols).map_err(datafusion::error::DataFusionError::from)?)
    }
}
