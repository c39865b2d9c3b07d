//! The latest row per key: by the order columns (larger wins, NULL loses), then by arrival
//! (the later wins). Used by the `dedupe` step and by `merge` and `scd2` before they write.

use arrow::array::{Array, UInt32Array};
use arrow::compute::{SortColumn, SortOptions, lexsort_to_indices, take_record_batch};
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};

use crate::error::{Error, Result};
use crate::steps::ROW;

/// Keeps, per distinct value of `keys`, the row that is last by `order_by` then by arrival;
/// the result is in arrival order.
pub fn latest_per_key(
    batch: &RecordBatch,
    keys: &[String],
    order_by: &[String],
) -> Result<RecordBatch> {
    if batch.num_rows() == 0 || keys.is_empty() {
        return Ok(batch.clone());
    }
    let col = |name: &str| {
        batch.column_by_name(name).cloned().ok_or_else(|| {
            Error::InvalidInput(format!(
                "column '{name}' does not exist (columns: {})",
                crate::steps::columns(&batch.schema())
            ))
        })
    };
    let mut sort = Vec::new();
    for k in keys {
        sort.push(SortColumn {
            values: col(k)?,
            options: Some(SortOptions::default()),
        });
    }
    let desc = SortOptions {
        descending: true,
        nulls_first: false,
    };
    for o in order_by
        .iter()
        .map(String::as_str)
        .chain(batch.schema().field_with_name(ROW).ok().map(|_| ROW))
    {
        sort.push(SortColumn {
            values: col(o)?,
            options: Some(desc),
        });
    }
    let indices = lexsort_to_indices(&sort, None)?;
    let key_cols = keys.iter().map(|k| col(k)).collect::<Result<Vec<_>>>()?;
    let converter = RowConverter::new(
        key_cols
            .iter()
            .map(|c| SortField::new(c.data_type().clone()))
            .collect(),
    )?;
    let rows = converter.convert_columns(&key_cols)?;
    let mut keep: Vec<u32> = Vec::new();
    let mut last: Option<usize> = None;
    for i in indices.values().iter().map(|i| *i as usize) {
        if last.is_none_or(|l| rows.row(l) != rows.row(i)) {
            keep.push(i as u32);
        }
        last = Some(i);
    }
    keep.sort_unstable();
    Ok(take_record_batch(batch, &UInt32Array::from(keep))?)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{AsArray, Int64Array, StringArray, UInt64Array};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};

    use super::*;

    #[test]
    fn the_latest_by_sequence_wins_and_ties_go_to_the_later_arrival() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("seq", DataType::Int64, true),
            Field::new("v", DataType::Int64, true),
            Field::new(ROW, DataType::UInt64, false),
        ]));
        let b = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["a", "a", "b", "a", "b"])),
                Arc::new(Int64Array::from(vec![
                    Some(2),
                    Some(1),
                    Some(5),
                    Some(2),
                    None,
                ])),
                Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5])),
                Arc::new(UInt64Array::from(vec![0, 1, 2, 3, 4])),
            ],
        )
        .unwrap();
        let out = latest_per_key(&b, &["k".into()], &["seq".into()]).unwrap();
        let v: Vec<i64> = out
            .column_by_name("v")
            .unwrap()
            .as_primitive::<Int64Type>()
            .values()
            .to_vec();
        assert_eq!(v, vec![3, 4]);
    }
}
