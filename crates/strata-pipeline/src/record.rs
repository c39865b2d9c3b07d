//! The one encoding of a row as JSON text, for `_record` of `cast` and `expectation` quarantine
//! rows and for samples: an object of every column in order; strings, integers, floats and
//! booleans as JSON values; decimals, dates, timestamps and everything else as their text (so
//! no precision is lost); NULL as `null`.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
};
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use serde_json::{Map, Value};

use crate::error::Result;

/// Encodes row `row` of `batch`, leaving out the columns `skip` says to.
pub fn row_json(batch: &RecordBatch, row: usize, skip: &dyn Fn(&str) -> bool) -> Result<String> {
    let schema = batch.schema();
    let mut obj = Map::new();
    for (i, f) in schema.fields().iter().enumerate() {
        if skip(f.name()) {
            continue;
        }
        obj.insert(f.name().clone(), value(batch.column(i), row)?);
    }
    Ok(Value::Object(obj).to_string())
}

/// One value as JSON.
pub fn value(a: &ArrayRef, row: usize) -> Result<Value> {
    if a.is_null(row) {
        return Ok(Value::Null);
    }
    Ok(match a.data_type() {
        DataType::Utf8 => Value::String(a.as_string::<i32>().value(row).to_string()),
        DataType::LargeUtf8 => Value::String(a.as_string::<i64>().value(row).to_string()),
        DataType::Utf8View => Value::String(a.as_string_view().value(row).to_string()),
        DataType::Boolean => Value::Bool(a.as_boolean().value(row)),
        DataType::Int8 => a.as_primitive::<Int8Type>().value(row).into(),
        DataType::Int16 => a.as_primitive::<Int16Type>().value(row).into(),
        DataType::Int32 => a.as_primitive::<Int32Type>().value(row).into(),
        DataType::Int64 => a.as_primitive::<Int64Type>().value(row).into(),
        DataType::Float32 => float(a.as_primitive::<Float32Type>().value(row) as f64),
        DataType::Float64 => float(a.as_primitive::<Float64Type>().value(row)),
        _ => Value::String(text(a, row)?),
    })
}

fn float(v: f64) -> Value {
    serde_json::Number::from_f64(v)
        .map(Value::Number)
        .unwrap_or_else(|| Value::String(v.to_string()))
}

/// A value as display text (timestamps in RFC 3339, decimals with their scale).
pub fn text(a: &ArrayRef, row: usize) -> Result<String> {
    let opts = FormatOptions::default();
    let f = ArrayFormatter::try_new(a.as_ref(), &opts)?;
    Ok(f.value(row).to_string())
}
