//! Rows bound for a flow's quarantine table (stages `cast` and `expectation`), in the envelope
//! of DECISIONS.md section 5.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Int64Array, ListBuilder, StringArray, StringBuilder, TimestampMicrosecondArray,
};
use arrow::datatypes::Schema;
use arrow::record_batch::RecordBatch;

use crate::error::Result;

/// One quarantined row.
#[derive(Debug, Clone)]
pub struct QRow {
    pub stage: &'static str,
    pub scope: Option<String>,
    pub source_table: String,
    pub source_version: i64,
    pub pointer: String,
    pub rules: Vec<String>,
    pub reason: String,
    pub record: String,
}

/// Builds the envelope batch for `rows`.
pub fn envelope(rows: &[QRow], run_id: &str, target: &str, flow: &str) -> Result<RecordBatch> {
    let n = rows.len();
    let now = chrono::Utc::now().timestamp_micros();
    let strings = |f: &dyn Fn(&QRow) -> Option<String>| -> ArrayRef {
        Arc::new(StringArray::from(rows.iter().map(f).collect::<Vec<_>>()))
    };
    let mut rules = ListBuilder::new(StringBuilder::new());
    for r in rows {
        for rule in &r.rules {
            rules.values().append_value(rule);
        }
        rules.append(true);
    }
    let columns: Vec<ArrayRef> = vec![
        strings(&|_| Some(uuid::Uuid::new_v4().to_string())),
        Arc::new(
            TimestampMicrosecondArray::from(vec![now; n]).with_timezone(strata_core::types::UTC),
        ),
        strings(&|_| Some(run_id.to_string())),
        strings(&|r| Some(r.stage.to_string())),
        strings(&|_| Some(target.to_string())),
        strings(&|_| Some(flow.to_string())),
        strings(&|r| r.scope.clone()),
        strings(&|r| Some(r.source_table.clone())),
        Arc::new(Int64Array::from(
            rows.iter().map(|r| r.source_version).collect::<Vec<_>>(),
        )),
        strings(&|r| Some(r.pointer.clone())),
        Arc::new(rules.finish()),
        strings(&|r| Some(r.reason.clone())),
        strings(&|r| Some(r.record.clone())),
    ];
    let schema = Arc::new(Schema::new(strata_core::quarantine::envelope_fields()));
    Ok(RecordBatch::try_new(schema, columns)?)
}
