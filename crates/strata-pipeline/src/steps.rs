//! Declarative steps over a flow's first source: cast, rename, dedupe, mask. They run on the
//! source rows (already in arrival order, with the hidden arrival column [`ROW`]), and on an
//! empty batch of the source's schema when a pipeline is validated, so both see the same shapes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, StringArray, UInt64Array, new_null_array,
};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use strata_core::types::{parse_type, type_name};

use crate::cast::cast_strict;
use crate::error::{Error, Result};
use crate::spec::{MaskKind, Step};

/// The hidden column holding each source row's arrival ordinal; dropped before any write.
pub const ROW: &str = "__strata_row";

/// What redaction writes.
pub const REDACTED: &str = "[REDACTED]";

/// A source row whose cast failed: its arrival ordinal and one reason per failed column.
#[derive(Debug, Clone)]
pub struct CastFailed {
    pub row: u64,
    pub reasons: Vec<String>,
}

/// The steps' result.
pub struct Stepped {
    pub batch: RecordBatch,
    pub failed: Vec<CastFailed>,
    /// Output columns that hold masked values (tagged `pii_masked`).
    pub masked: BTreeSet<String>,
    /// Source columns the steps read by name (for the unmapped-columns report).
    pub used: BTreeSet<String>,
    /// Renamed columns: new name -> source name.
    pub origin: HashMap<String, String>,
}

/// Applies `steps` in order. `key` is the lakehouse's HMAC key (only read by `hmac` masks).
pub fn apply(steps: &[Step], mut batch: RecordBatch, key: &[u8]) -> Result<Stepped> {
    let mut failed: Vec<CastFailed> = Vec::new();
    let mut masked = BTreeSet::new();
    let mut used = BTreeSet::new();
    // columns renamed so far: new name -> source name
    let mut origin: HashMap<String, String> = HashMap::new();
    for step in steps {
        match step {
            Step::Cast(cols) => {
                let (b, f) = cast_step(batch, cols)?;
                batch = b;
                failed.extend(f);
                for c in cols.keys() {
                    used.insert(origin.get(c).cloned().unwrap_or_else(|| c.clone()));
                }
            }
            Step::Rename(map) => {
                batch = rename(batch, map)?;
                for (old, new) in map {
                    let src = origin.remove(old).unwrap_or_else(|| old.clone());
                    used.insert(src.clone());
                    origin.insert(new.clone(), src);
                    if masked.remove(old) {
                        masked.insert(new.clone());
                    }
                }
            }
            Step::Mask(map) => {
                batch = mask(batch, map, key)?;
                for c in map.keys() {
                    if batch.schema().field_with_name(c).is_ok() {
                        masked.insert(c.clone());
                    }
                }
            }
            Step::Dedupe(d) => {
                for c in d.keys.iter().chain(&d.order_by) {
                    if batch.schema().field_with_name(c).is_err() {
                        return Err(Error::InvalidInput(format!(
                            "dedupe step: column '{c}' does not exist (columns: {})",
                            columns(&batch.schema())
                        )));
                    }
                    used.insert(origin.get(c).cloned().unwrap_or_else(|| c.clone()));
                }
                batch = crate::reduce::latest_per_key(&batch, &d.keys, &d.order_by)?;
            }
        }
    }
    Ok(Stepped {
        batch,
        failed,
        masked,
        used,
        origin,
    })
}

pub(crate) fn columns(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .filter(|n| *n != ROW)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Casts columns strictly; a row with a failed cast leaves the batch with its reasons. A column
/// the source lacks is added as NULL of its type (a source that has not sent it yet).
fn cast_step(
    batch: RecordBatch,
    cols: &BTreeMap<String, String>,
) -> Result<(RecordBatch, Vec<CastFailed>)> {
    let schema = batch.schema();
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut arrays: Vec<ArrayRef> = batch.columns().to_vec();
    let mut reasons: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for (col, ty) in cols {
        let target = parse_type(ty)
            .map_err(|e| Error::InvalidInput(format!("cast step: column '{col}': {e}")))?;
        match schema.index_of(col) {
            Ok(i) => {
                let casted = cast_strict(&arrays[i], &target)
                    .map_err(|e| Error::InvalidInput(format!("cast step: column '{col}': {e}")))?;
                for f in casted.failures {
                    reasons.entry(f.row).or_default().push(format!(
                        "column {col}: value '{}' is not a valid {}",
                        f.value,
                        type_name(&target)
                    ));
                }
                fields[i] = Field::new(col, target, true);
                arrays[i] = casted.array;
            }
            Err(_) => {
                fields.push(Field::new(col, target.clone(), true));
                arrays.push(new_null_array(&target, batch.num_rows()));
            }
        }
    }
    let out = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?;
    if reasons.is_empty() {
        return Ok((out, Vec::new()));
    }
    let rows = out
        .column_by_name(ROW)
        .ok_or_else(|| Error::Internal("the arrival column is missing".into()))?
        .as_any()
        .downcast_ref::<UInt64Array>()
        .ok_or_else(|| Error::Internal("the arrival column is not UInt64".into()))?
        .clone();
    let keep = BooleanArray::from(
        (0..out.num_rows())
            .map(|r| !reasons.contains_key(&r))
            .collect::<Vec<_>>(),
    );
    let failed = reasons
        .into_iter()
        .map(|(r, reasons)| CastFailed {
            row: rows.value(r),
            reasons,
        })
        .collect();
    Ok((filter_record_batch(&out, &keep)?, failed))
}

fn rename(batch: RecordBatch, map: &BTreeMap<String, String>) -> Result<RecordBatch> {
    let schema = batch.schema();
    for (old, new) in map {
        if schema.field_with_name(old).is_err() {
            return Err(Error::InvalidInput(format!(
                "rename step: column '{old}' does not exist (columns: {})",
                columns(&schema)
            )));
        }
        if old != new && schema.field_with_name(new).is_ok() && !map.contains_key(new) {
            return Err(Error::InvalidInput(format!(
                "rename step: '{old}' cannot become '{new}': a column '{new}' exists already"
            )));
        }
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match map.get(f.name()) {
            Some(new) => f.as_ref().clone().with_name(new),
            None => f.as_ref().clone(),
        })
        .collect();
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        batch.columns().to_vec(),
    )?)
}

/// HMAC-SHA256 of `value` with `key`, lowercase hex.
pub fn hmac_hex(key: &[u8], value: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(value.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Masks columns (a column the source lacks is skipped: there is nothing to mask).
fn mask(batch: RecordBatch, map: &BTreeMap<String, MaskKind>, key: &[u8]) -> Result<RecordBatch> {
    let schema = batch.schema();
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut arrays: Vec<ArrayRef> = batch.columns().to_vec();
    for (col, kind) in map {
        let Ok(i) = schema.index_of(col) else {
            continue;
        };
        let texts = arrow::compute::cast(&arrays[i], &DataType::Utf8)?;
        let texts = texts.as_string::<i32>();
        let out: StringArray = texts
            .iter()
            .map(|v| {
                v.map(|s| match kind {
                    MaskKind::Hmac => hmac_hex(key, s),
                    MaskKind::Redact => REDACTED.to_string(),
                })
            })
            .collect();
        fields[i] = Field::new(col, DataType::Utf8, true);
        arrays[i] = Arc::new(out);
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(cols: &[(&str, Vec<Option<&str>>)]) -> RecordBatch {
        let n = cols[0].1.len();
        let mut fields: Vec<Field> = cols
            .iter()
            .map(|(c, _)| Field::new(*c, DataType::Utf8, true))
            .collect();
        let mut arrays: Vec<ArrayRef> = cols
            .iter()
            .map(|(_, v)| Arc::new(StringArray::from(v.clone())) as ArrayRef)
            .collect();
        fields.push(Field::new(ROW, DataType::UInt64, false));
        arrays.push(Arc::new(UInt64Array::from_iter_values(0..n as u64)));
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap()
    }

    #[test]
    fn a_failed_cast_leaves_the_batch_with_its_reason_and_null_is_no_failure() {
        let b = batch(&[("amount", vec![Some("1.5"), Some("x"), None])]);
        let steps = vec![Step::Cast(BTreeMap::from([(
            "amount".to_string(),
            "DECIMAL(18,4)".to_string(),
        )]))];
        let s = apply(&steps, b, b"k").unwrap();
        assert_eq!(s.batch.num_rows(), 2);
        assert_eq!(s.failed.len(), 1);
        assert_eq!(s.failed[0].row, 1);
        assert_eq!(
            s.failed[0].reasons,
            vec!["column amount: value 'x' is not a valid DECIMAL(18,4)"]
        );
    }

    #[test]
    fn rename_then_mask_and_missing_columns_become_null() {
        let b = batch(&[("ts", vec![Some("a")]), ("email", vec![Some("a@b.c")])]);
        let steps = vec![
            Step::Rename(BTreeMap::from([("ts".into(), "event_ts".into())])),
            Step::Mask(BTreeMap::from([("email".into(), MaskKind::Hmac)])),
            Step::Cast(BTreeMap::from([("country".into(), "STRING".into())])),
        ];
        let s = apply(&steps, b, b"key").unwrap();
        let schema = s.batch.schema();
        assert!(schema.field_with_name("event_ts").is_ok());
        assert!(s.batch.column_by_name("country").unwrap().is_null(0));
        let email = s.batch.column_by_name("email").unwrap();
        assert_eq!(email.as_string::<i32>().value(0), hmac_hex(b"key", "a@b.c"));
        assert!(s.masked.contains("email"));
        assert!(s.used.contains("ts"));
    }
}
