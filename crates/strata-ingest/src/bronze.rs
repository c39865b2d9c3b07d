//! Bronze rows: system columns, which field becomes which column, `_rescued_data`, and the
//! record batches the landing writes (DECISIONS.md sections 2 and 4).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Int64Array, StringArray, StringBuilder, TimestampMicrosecondArray,
};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use base64::Engine as _;

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

/// Characters a Delta column name cannot hold without column mapping (which Strata never
/// turns on: deltalake refuses evolution, the change feed and OPTIMIZE on such tables).
const INVALID_NAME_CHARS: &[char] = &[' ', ',', ';', '{', '}', '(', ')', '\n', '\t', '='];

/// Why `name` cannot be a column, if it cannot.
pub fn unstorable(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("an empty name")
    } else if name.contains(INVALID_NAME_CHARS) {
        Some("a name with a space or one of ,;{}()= (Delta cannot store it without column mapping)")
    } else if name.len() > 255 {
        Some("a name longer than 255 bytes")
    } else {
        None
    }
}

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
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(columns.len());
        let mut rescued_rows = self.rescued_rows;
        let mut rescued = std::mem::take(&mut self.rescued);
        let mut extra: Vec<Option<Rescued>> = Vec::new();
        for i in 0..columns.len() {
            let field = columns.field(i);
            let array: ArrayRef = match field.name().as_str() {
                RESCUED_DATA | CORRUPT_RECORD | SOURCE_FILE | SOURCE_LINE | INGESTED_AT
                | BATCH_ID => Arc::new(StringArray::new_null(0)), // filled below
                _ => {
                    let strings: ArrayRef = match self.data[i].as_mut() {
                        Some(b) => Arc::new(b.finish()),
                        None => Arc::new(StringArray::new_null(rows)),
                    };
                    if field.data_type() == &DataType::Utf8 {
                        strings
                    } else {
                        let options = CastOptions {
                            safe: true,
                            ..Default::default()
                        };
                        let cast = cast_with_options(&strings, field.data_type(), &options)?;
                        let texts = strings
                            .as_any()
                            .downcast_ref::<StringArray>()
                            .cloned()
                            .unwrap_or_else(|| StringArray::new_null(rows));
                        for r in 0..rows {
                            if texts.is_valid(r) && cast.is_null(r) {
                                if extra.is_empty() {
                                    extra.resize_with(rows, || None);
                                }
                                extra[r]
                                    .get_or_insert_with(Rescued::default)
                                    .add(field.name(), &json_text(texts.value(r)));
                            }
                        }
                        cast
                    }
                }
            };
            arrays.push(array);
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
        let mut system: HashMap<&str, ArrayRef> = HashMap::new();
        system.insert(RESCUED_DATA, Arc::new(StringArray::from(rescued)));
        system.insert(CORRUPT_RECORD, Arc::new(self.corrupt.finish()));
        system.insert(SOURCE_FILE, Arc::new(self.file.finish()));
        system.insert(
            SOURCE_LINE,
            Arc::new(Int64Array::from(std::mem::take(&mut self.line))),
        );
        system.insert(
            INGESTED_AT,
            Arc::new(
                TimestampMicrosecondArray::from(vec![ingested_at_us; rows])
                    .with_timezone(strata_core::types::UTC),
            ),
        );
        system.insert(BATCH_ID, Arc::new(Int64Array::from(vec![batch_id; rows])));
        for (i, a) in arrays.iter_mut().enumerate() {
            let name = columns.field(i).name().as_str();
            if let Some(s) = system.remove(name) {
                *a = if s.data_type() == columns.field(i).data_type() {
                    s
                } else {
                    cast_with_options(&s, columns.field(i).data_type(), &CastOptions::default())?
                };
            }
        }
        let batch = RecordBatch::try_new(columns.schema(), arrays)?;
        Ok(BuiltChunk {
            batch,
            rows: rows as u64,
            rescued_rows,
            corrupt_rows: self.corrupt_rows,
        })
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
