//! Bronze rows: system columns, which field becomes which column, `_rescued_data`, and the
//! record batches the landing writes (DECISIONS.md sections 2 and 4).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, StringArray, StringBuilder, TimestampMicrosecondArray,
};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use base64::Engine as _;

use strata_core::source_types::to_delta;

use crate::decode::{Body, FieldValue, Record};
use crate::error::Result;

pub const RESCUED_DATA: &str = "_rescued_data";
pub const CORRUPT_RECORD: &str = "_corrupt_record";
pub const SOURCE_FILE: &str = "_source_file";
pub const SOURCE_LINE: &str = "_source_line";
pub const INGESTED_AT: &str = "_ingested_at";
pub const BATCH_ID: &str = "_batch_id";
/// The key of `_rescued_data` that says why a record is corrupt.
pub const CORRUPT_REASON: &str = "_corrupt_reason";

/// Bronze's system columns, in table order.
pub const SYSTEM_COLUMNS: [&str; 6] = [
    RESCUED_DATA,
    CORRUPT_RECORD,
    SOURCE_FILE,
    SOURCE_LINE,
    INGESTED_AT,
    BATCH_ID,
];

/// The system columns as Arrow fields (all nullable: a table written before a column existed
/// must still take rows).
pub fn system_fields() -> Vec<Field> {
    vec![
        Field::new(RESCUED_DATA, DataType::Utf8, true),
        Field::new(CORRUPT_RECORD, DataType::Utf8, true),
        Field::new(SOURCE_FILE, DataType::Utf8, true),
        Field::new(SOURCE_LINE, DataType::Int64, true),
        Field::new(INGESTED_AT, strata_core::types::timestamp_type(), true),
        Field::new(BATCH_ID, DataType::Int64, true),
    ]
}

pub fn is_system_column(name: &str) -> bool {
    SYSTEM_COLUMNS.iter().any(|c| c.eq_ignore_ascii_case(name))
}

pub use strata_core::source_types::unstorable_name as unstorable;

/// Where a field of a record goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Column(usize),
    /// Into `_rescued_data`, whatever the evolution mode.
    Rescue,
    /// A field the table does not have yet.
    New,
}

/// The columns of one batch: the table's, plus the new ones this batch adds.
#[derive(Debug, Clone)]
pub struct Columns {
    fields: Vec<FieldRef>,
    index: HashMap<String, usize>,
    lower: HashMap<String, usize>,
    data_columns: usize,
    max_columns: usize,
    /// How many of `fields` the table already had.
    table_len: usize,
}

impl Columns {
    pub fn new(table: &Schema, max_columns: usize) -> Self {
        let mut c = Columns {
            fields: Vec::new(),
            index: HashMap::new(),
            lower: HashMap::new(),
            data_columns: 0,
            max_columns,
            table_len: table.fields().len(),
        };
        for f in table.fields() {
            c.push(f.clone());
        }
        c
    }

    fn push(&mut self, f: FieldRef) {
        let i = self.fields.len();
        self.index.insert(f.name().clone(), i);
        self.lower.entry(f.name().to_lowercase()).or_insert(i);
        if !is_system_column(f.name()) {
            self.data_columns += 1;
        }
        self.fields.push(f);
    }

    pub fn place(&self, name: &str) -> Place {
        if let Some(&i) = self.index.get(name) {
            return if is_system_column(name) {
                Place::Rescue
            } else {
                Place::Column(i)
            };
        }
        if is_system_column(name)
            || self.lower.contains_key(&name.to_lowercase())
            || unstorable(name).is_some()
            || self.data_columns >= self.max_columns
        {
            return Place::Rescue;
        }
        Place::New
    }

    /// Adds a nullable column of `data_type` for a new field.
    pub fn add(&mut self, name: &str, data_type: DataType) -> usize {
        self.push(Arc::new(Field::new(name, data_type, true)));
        self.fields.len() - 1
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Indexes of the columns this batch adds.
    pub fn added(&self) -> std::ops::Range<usize> {
        self.table_len..self.fields.len()
    }

    /// Changes the type of a column this batch adds (`--infer-types`, before the write starts).
    pub fn retype(&mut self, i: usize, data_type: DataType) {
        debug_assert!(i >= self.table_len);
        let name = self.fields[i].name().clone();
        self.fields[i] = Arc::new(Field::new(name, data_type, true));
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    pub fn field(&self, i: usize) -> &FieldRef {
        &self.fields[i]
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// Whether this batch adds columns to the table.
    pub fn widened(&self) -> bool {
        self.fields.len() > self.table_len
    }

    pub fn new_columns(&self) -> Vec<String> {
        self.fields[self.table_len..]
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }

    pub fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(self.fields.clone()))
    }
}

/// Builds `_rescued_data` objects as JSON text: `{"field": <raw value>, ...}`.
#[derive(Debug, Default, Clone)]
pub struct Rescued {
    text: String,
    keys: Vec<String>,
}

impl Rescued {
    pub fn add(&mut self, key: &str, raw_json: &str) {
        // A repeated key (a duplicate field, or a cast misfit of a duplicate) gets a suffix, so
        // no value is lost in a reader that keeps the last of equal keys.
        let mut k = key.to_string();
        let mut n = 1;
        while self.keys.iter().any(|x| x == &k) {
            n += 1;
            k = format!("{key}#{n}");
        }
        self.text.push(if self.text.is_empty() { '{' } else { ',' });
        self.text
            .push_str(&serde_json::Value::String(k.clone()).to_string());
        self.text.push(':');
        self.text.push_str(raw_json);
        self.keys.push(k);
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn finish(mut self) -> Option<String> {
        if self.keys.is_empty() {
            return None;
        }
        self.text.push('}');
        Some(self.text)
    }
}

/// `_corrupt_record`'s text for raw bytes: the text, or `base64:` and the bytes when they are
/// not UTF-8.
pub fn corrupt_text(raw: &[u8]) -> String {
    match std::str::from_utf8(raw) {
        Ok(s) => s.to_string(),
        Err(_) => format!(
            "base64:{}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        ),
    }
}

/// A reference to a record too large to keep: file, offset, length.
pub fn record_reference(uri: &str, offset: u64, len: u64) -> String {
    serde_json::json!({"file": uri, "offset": offset, "length": len}).to_string()
}

/// Rows of one Arrow batch being built.
pub struct Chunk {
    data: Vec<Option<StringBuilder>>,
    /// Row stamp of the last value set per column, to see a duplicate field.
    set_in_row: Vec<usize>,
    rescued: Vec<Option<String>>,
    corrupt: StringBuilder,
    file: StringBuilder,
    line: Vec<i64>,
    rows: usize,
    bytes: usize,
    pub rescued_rows: u64,
    pub corrupt_rows: u64,
}

/// What a finished chunk holds.
pub struct BuiltChunk {
    pub batch: RecordBatch,
    pub rows: u64,
    pub rescued_rows: u64,
    pub corrupt_rows: u64,
}

impl Chunk {
    pub fn new(columns: &Columns) -> Self {
        let mut c = Chunk {
            data: Vec::new(),
            set_in_row: Vec::new(),
            rescued: Vec::new(),
            corrupt: StringBuilder::new(),
            file: StringBuilder::new(),
            line: Vec::new(),
            rows: 0,
            bytes: 0,
            rescued_rows: 0,
            corrupt_rows: 0,
        };
        c.fit(columns);
        c
    }

    /// Makes room for columns added since the chunk started (earlier rows get NULL).
    pub fn fit(&mut self, columns: &Columns) {
        while self.data.len() < columns.len() {
            let i = self.data.len();
            let b = if is_system_column(columns.field(i).name()) {
                None
            } else {
                let mut b = StringBuilder::new();
                b.append_nulls(self.rows);
                Some(b)
            };
            self.data.push(b);
            self.set_in_row.push(usize::MAX);
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The text values of column `i` so far.
    pub fn texts(&self, i: usize) -> Option<StringArray> {
        self.data.get(i)?.as_ref().map(StringBuilder::finish_cloned)
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Adds a record. Every field must already have a place (`Place::New` fields are added to
    /// `columns` first, or rescued, by the caller's evolution mode).
    pub fn push(&mut self, columns: &Columns, uri: &str, rec: &Record) {
        let row = self.rows;
        let mut rescued = Rescued::default();
        match &rec.body {
            Body::Fields(fields) => {
                for (name, value) in fields {
                    let target = match columns.place(name) {
                        Place::Column(i) if self.set_in_row[i] != row => Some(i),
                        _ => None,
                    };
                    match target.and_then(|i| self.data[i].as_mut().map(|b| (i, b))) {
                        Some((i, b)) => {
                            self.set_in_row[i] = row;
                            match value {
                                Some(v) => {
                                    let t = v.bronze_text();
                                    self.bytes += t.len();
                                    b.append_value(t);
                                }
                                None => b.append_null(),
                            }
                        }
                        None => {
                            let raw = value.as_ref().map(FieldValue::rescued_json);
                            rescued.add(name, raw.as_deref().unwrap_or("null"));
                        }
                    }
                }
                self.corrupt.append_null();
            }
            Body::Corrupt { raw, reason } => {
                rescued.add(
                    CORRUPT_REASON,
                    &serde_json::Value::String(reason.clone()).to_string(),
                );
                let text = match raw {
                    Some(bytes) => corrupt_text(bytes),
                    None => record_reference(uri, rec.offset, rec.len),
                };
                self.bytes += text.len();
                self.corrupt.append_value(text);
                self.corrupt_rows += 1;
            }
        }
        for (i, b) in self.data.iter_mut().enumerate() {
            if let Some(b) = b
                && self.set_in_row[i] != row
            {
                b.append_null();
            }
        }
        if !rescued.is_empty() && matches!(rec.body, Body::Fields(_)) {
            self.rescued_rows += 1;
        }
        let r = rescued.finish();
        self.bytes += r.as_ref().map_or(0, String::len);
        self.rescued.push(r);
        self.file.append_value(uri);
        self.line.push(i64::try_from(rec.line).unwrap_or(i64::MAX));
        self.rows += 1;
    }

    /// The record batch, in `columns`' order. A value that does not cast to a typed column
    /// becomes NULL there and moves to `_rescued_data`.
    pub fn finish(
        mut self,
        columns: &Columns,
        batch_id: i64,
        ingested_at_us: i64,
    ) -> Result<BuiltChunk> {
        self.fit(columns);
        let rows = self.rows;
        let mut arrays: Vec<Option<ArrayRef>> = Vec::with_capacity(columns.len());
        let mut rescued_rows = self.rescued_rows;
        let mut rescued = std::mem::take(&mut self.rescued);
        let mut extra: Vec<Option<Rescued>> = Vec::new();
        let text_field: FieldRef = Arc::new(Field::new("text", DataType::Utf8, true));
        for i in 0..columns.len() {
            let field = columns.field(i);
            if is_system_column(field.name()) {
                arrays.push(None);
                continue;
            }
            let strings: ArrayRef = match self.data[i].as_mut() {
                Some(b) => Arc::new(b.finish()),
                None => Arc::new(StringArray::new_null(rows)),
            };
            let converted = to_delta(&text_field, &strings, field.data_type())?;
            if !converted.misfits.is_empty() {
                let texts = strings.as_string::<i32>();
                extra.resize_with(rows, || None);
                for r in converted.misfits {
                    extra[r]
                        .get_or_insert_with(Rescued::default)
                        .add(field.name(), &json_text(texts.value(r)));
                }
            }
            arrays.push(Some(converted.array));
        }
        // Cast misfits join what the row already rescued.
        for (r, more) in extra.into_iter().enumerate() {
            let Some(more) = more else { continue };
            let Some(more) = more.finish() else { continue };
            let slot = &mut rescued[r];
            match slot {
                Some(existing) => {
                    existing.pop();
                    existing.push(',');
                    existing.push_str(&more[1..]);
                }
                None => {
                    *slot = Some(more);
                    rescued_rows += 1;
                }
            }
        }
        let system = SystemValues {
            rescued: Arc::new(StringArray::from(rescued)),
            corrupt: Arc::new(self.corrupt.finish()),
            files: Arc::new(self.file.finish()),
            lines: std::mem::take(&mut self.line),
            batch_id,
            ingested_at_us,
        };
        let batch = system.assemble(columns, arrays)?;
        Ok(BuiltChunk {
            batch,
            rows: rows as u64,
            rescued_rows,
            corrupt_rows: self.corrupt_rows,
        })
    }
}

/// The system columns' values for the rows of one batch.
pub struct SystemValues {
    pub rescued: ArrayRef,
    pub corrupt: ArrayRef,
    pub files: ArrayRef,
    pub lines: Vec<i64>,
    pub batch_id: i64,
    pub ingested_at_us: i64,
}

impl SystemValues {
    /// The record batch of `columns`: `data[i]` for data columns, the system values (cast to a
    /// hand-made table's types when they differ) for system columns.
    pub fn assemble(self, columns: &Columns, data: Vec<Option<ArrayRef>>) -> Result<RecordBatch> {
        let rows = self.lines.len();
        let mut system: HashMap<&str, ArrayRef> = HashMap::new();
        system.insert(RESCUED_DATA, self.rescued);
        system.insert(CORRUPT_RECORD, self.corrupt);
        system.insert(SOURCE_FILE, self.files);
        system.insert(SOURCE_LINE, Arc::new(Int64Array::from(self.lines)));
        system.insert(
            INGESTED_AT,
            Arc::new(
                TimestampMicrosecondArray::from(vec![self.ingested_at_us; rows])
                    .with_timezone(strata_core::types::UTC),
            ),
        );
        system.insert(
            BATCH_ID,
            Arc::new(Int64Array::from(vec![self.batch_id; rows])),
        );
        let mut arrays = Vec::with_capacity(columns.len());
        for (i, a) in data.into_iter().enumerate() {
            let field = columns.field(i);
            let array = match (a, system.remove(field.name().as_str())) {
                (_, Some(s)) if s.data_type() == field.data_type() => s,
                (_, Some(s)) => cast_with_options(&s, field.data_type(), &CastOptions::default())?,
                (Some(a), None) => a,
                (None, None) => arrow::array::new_null_array(field.data_type(), rows),
            };
            arrays.push(array);
        }
        Ok(RecordBatch::try_new(columns.schema(), arrays)?)
    }
}

/// A bronze text value as a JSON value for `_rescued_data`: numbers and literals stay as they
/// are when they are valid JSON, anything else becomes a JSON string.
fn json_text(text: &str) -> String {
    let t = text.trim();
    let looks_json = t.starts_with(['{', '[', '"']) || t.parse::<f64>().is_ok();
    if looks_json && serde_json::from_str::<&serde_json::value::RawValue>(t).is_ok() {
        t.to_string()
    } else {
        serde_json::Value::String(text.to_string()).to_string()
    }
}

/// The type `--infer-types` gives a new column from its first values (bronze text): BIGINT when
/// every value is an integer that fits (without leading zeros, which an identifier keeps),
/// DOUBLE when every value is a number, BOOLEAN for `true`/`false`, DATE for `YYYY-MM-DD`,
/// TIMESTAMP for ISO 8601 date-times (no zone means UTC), otherwise STRING. A later value that
/// does not fit the inferred type lands in `_rescued_data`, never as a silent NULL.
pub fn infer_type(values: &StringArray) -> DataType {
    let texts: Vec<&str> = values.iter().flatten().collect();
    if texts.is_empty() {
        return DataType::Utf8;
    }
    let all = |f: fn(&str) -> bool| texts.iter().all(|t| f(t));
    if all(is_integer) {
        DataType::Int64
    } else if all(is_number) {
        DataType::Float64
    } else if all(|t| t == "true" || t == "false") {
        DataType::Boolean
    } else if all(is_date) {
        DataType::Date32
    } else if all(is_timestamp) {
        strata_core::types::timestamp_type()
    } else {
        DataType::Utf8
    }
}

fn is_integer(t: &str) -> bool {
    let digits = t.strip_prefix('-').unwrap_or(t);
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && t.parse::<i64>().is_ok()
}

fn is_number(t: &str) -> bool {
    let body = t.strip_prefix('-').unwrap_or(t);
    // Digits first: "NaN", "inf" and "1e5x" stay text.
    body.starts_with(|c: char| c.is_ascii_digit())
        && body
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
        && t.parse::<f64>().is_ok_and(f64::is_finite)
        && (body == "0" || !body.starts_with('0') || body.starts_with("0."))
        // An integer too long for BIGINT stays text: a DOUBLE would drop its digits.
        && (body.contains(['.', 'e', 'E']) || is_integer(t))
}

fn is_date(t: &str) -> bool {
    t.len() == 10 && chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d").is_ok()
}

fn is_timestamp(t: &str) -> bool {
    t.len() > 10
        && t.as_bytes()
            .get(10)
            .is_some_and(|b| matches!(b, b'T' | b' '))
        && (chrono::DateTime::parse_from_rfc3339(t).is_ok()
            || chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f").is_ok()
            || chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f").is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn infer(values: &[Option<&str>]) -> DataType {
        infer_type(&StringArray::from(values.to_vec()))
    }

    #[test]
    fn inference_picks_the_narrowest_type_every_value_fits() {
        assert_eq!(infer(&[Some("1"), None, Some("-42")]), DataType::Int64);
        assert_eq!(infer(&[Some("1"), Some("2.5")]), DataType::Float64);
        assert_eq!(infer(&[Some("007")]), DataType::Utf8);
        assert_eq!(
            infer(&[Some("1234567890123456789012345678901234567890")]),
            DataType::Utf8
        );
        assert_eq!(infer(&[Some("true"), Some("false")]), DataType::Boolean);
        assert_eq!(infer(&[Some("2026-11-25")]), DataType::Date32);
        assert_eq!(
            infer(&[Some("2026-11-25T10:00:00Z"), Some("2026-11-25 10:00:00.5")]),
            strata_core::types::timestamp_type()
        );
        assert_eq!(infer(&[Some("NaN")]), DataType::Utf8);
        assert_eq!(infer(&[Some("{\"a\":1}")]), DataType::Utf8);
        assert_eq!(infer(&[None]), DataType::Utf8);
    }
}
