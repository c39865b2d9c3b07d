//! Corrupt records bound for `quarantine.<table>` (stage `ingest`), in the envelope of
//! DECISIONS.md section 5.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Int64Array, ListBuilder, StringArray, StringBuilder, TimestampMicrosecondArray,
};
use arrow::datatypes::Schema;
use arrow::record_batch::RecordBatch;
use base64::Engine as _;
use serde_json::json;

use crate::bronze::record_reference;
use crate::decode::{Body, Record};
use crate::error::Result;

/// Quarantine rows being collected.
#[derive(Default)]
pub struct QuarantineChunk {
    ids: Vec<String>,
    run: Vec<String>,
    target: Vec<String>,
    pointer: Vec<String>,
    reason: Vec<String>,
    record: Vec<String>,
    stage: Vec<&'static str>,
    rules: Vec<Vec<String>>,
}

/// `_record` for raw bytes: the text, `{"_base64": ...}` when not UTF-8, or a reference when the
/// record was too large to keep.
pub fn record_text(uri: &str, rec: &Record, raw: Option<&[u8]>) -> String {
    match raw {
        Some(bytes) => match std::str::from_utf8(bytes) {
            Ok(s) => s.to_string(),
            Err(_) => json!({"_base64": base64::engine::general_purpose::STANDARD.encode(bytes)})
                .to_string(),
        },
        None => record_reference(uri, rec.offset, rec.len),
    }
}

impl QuarantineChunk {
    pub fn rows(&self) -> usize {
        self.ids.len()
    }

    pub fn push(&mut self, rec: &Record, uri: &str, run_id: &str, target: &str) {
        let (raw, reason) = match &rec.body {
            Body::Corrupt { raw, reason } => (raw.as_deref(), reason.clone()),
            Body::Fields(_) => (None, "not a corrupt record".to_string()),
        };
        self.ids.push(uuid::Uuid::new_v4().to_string());
        self.run.push(run_id.to_string());
        self.target.push(target.to_string());
        self.pointer.push(format!("{uri}:{}", rec.line));
        self.reason.push(reason);
        self.record.push(record_text(uri, rec, raw));
        self.stage.push("ingest");
        self.rules.push(Vec::new());
    }

    /// A record that breaks the table's contract (stage `contract`): `record` is its JSON text,
    /// `rule` names the contract, `reason` lists every violation.
    pub fn push_contract(
        &mut self,
        rec: &Record,
        uri: &str,
        run_id: &str,
        target: &str,
        (record, rule, reason): (String, String, String),
    ) {
        self.ids.push(uuid::Uuid::new_v4().to_string());
        self.run.push(run_id.to_string());
        self.target.push(target.to_string());
        self.pointer.push(format!("{uri}:{}", rec.line));
        self.reason.push(reason);
        self.record.push(record);
        self.stage.push("contract");
        self.rules.push(vec![rule]);
    }

    pub fn finish(self) -> Result<RecordBatch> {
        let n = self.ids.len();
        let now = chrono::Utc::now().timestamp_micros();
        let nulls = || -> ArrayRef { Arc::new(StringArray::new_null(n)) };
        let strings = |v: Vec<String>| -> ArrayRef { Arc::new(StringArray::from(v)) };
        let mut rules = ListBuilder::new(StringBuilder::new());
        for r in &self.rules {
            for x in r {
                rules.values().append_value(x);
            }
            rules.append(true);
        }
        let columns: Vec<ArrayRef> = vec![
            strings(self.ids),
            Arc::new(
                TimestampMicrosecondArray::from(vec![now; n])
                    .with_timezone(strata_core::types::UTC),
            ),
            strings(self.run),
            strings(self.stage.iter().map(|s| s.to_string()).collect()),
            strings(self.target),
            nulls(),
            nulls(),
            nulls(),
            Arc::new(Int64Array::new_null(n)),
            strings(self.pointer),
            Arc::new(rules.finish()),
            strings(self.reason),
            strings(self.record),
        ];
        let schema = Arc::new(Schema::new(strata_core::quarantine::envelope_fields()));
        Ok(RecordBatch::try_new(schema, columns)?)
    }
}
