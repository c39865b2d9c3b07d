//! The one map from the types of typed sources (Parquet, Avro, and later contracts) to the types
//! Delta stores (DECISIONS.md section 2).
//!
//! Readers of Parquet and Avro produce Arrow types richer than Delta's: unsigned and small
//! integers, half floats, dictionary-encoded enums, nanosecond timestamps, time of day, fixed
//! bytes, unions. [`delta_type`] says what each one lands as; [`to_delta`] converts an array and
//! reports the values that do not fit a column's type, so a caller can rescue them instead of
//! losing them to a NULL.
//!
//! | source | Delta |
//! |---|---|
//! | int8..int64, uint8..uint32 (Avro int, long) | BIGINT |
//! | uint64 | DECIMAL(20,0) |
//! | float16, float32, float64 | DOUBLE |
//! | utf8 (any), dictionary of strings (Avro enum), uuid | STRING |
//! | binary (any) | BINARY |
//! | decimal(p,s), p <= 38 | DECIMAL(p,s) |
//! | date32, date64 | DATE |
//! | timestamp with a zone (any unit) | TIMESTAMP (µs, UTC) |
//! | timestamp without a zone | TIMESTAMP_NTZ (µs) |
//! | struct, list, map | STRUCT, ARRAY, MAP of the mapped children |
//! | time, duration, interval, fixed bytes, union, wider decimals | STRING (the value as JSON text) |

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, FixedSizeBinaryArray, StringArray, StringBuilder, UnionArray, new_null_array,
};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, Field, FieldRef, Fields, Schema};
use arrow::error::ArrowError;
use arrow::json::writer::{EncoderOptions, make_encoder};
use arrow::util::display::{ArrayFormatter, FormatOptions};

use crate::types::{timestamp_ntz_type, timestamp_type};

/// The name Delta's Arrow schemas give a list's element.
pub const LIST_ELEMENT: &str = "element";
/// The names Delta's Arrow schemas give a map's entries, key and value.
pub const MAP_ENTRIES: &str = "key_value";
pub const MAP_KEY: &str = "key";
pub const MAP_VALUE: &str = "value";

/// Delta's ARRAY of `element` (elements nullable), as its Arrow schemas spell it.
pub fn list_type(element: DataType) -> DataType {
    DataType::List(Arc::new(Field::new(LIST_ELEMENT, element, true)))
}

/// Delta's MAP from STRING keys to `value` (values nullable), as its Arrow schemas spell it.
pub fn string_map_type(value: DataType) -> DataType {
    DataType::Map(
        Arc::new(Field::new(
            MAP_ENTRIES,
            DataType::Struct(Fields::from(vec![
                Field::new(MAP_KEY, DataType::Utf8, false),
                Field::new(MAP_VALUE, value, true),
            ])),
            false,
        )),
        false,
    )
}

/// Characters a Delta column name cannot hold without column mapping (which Strata never turns
/// on: deltalake refuses evolution, the change feed and OPTIMIZE on such tables).
const INVALID_NAME_CHARS: &[char] = &[' ', ',', ';', '{', '}', '(', ')', '\n', '\t', '='];

/// Why `name` cannot be a Delta column (or nested field) name, if it cannot.
pub fn unstorable_name(name: &str) -> Option<&'static str> {
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

/// The Delta type values of `t` land as, or None when they land as STRING holding JSON text.
pub fn delta_type(t: &DataType) -> Option<DataType> {
    Some(match t {
        DataType::Null => DataType::Utf8,
        DataType::Boolean => DataType::Boolean,
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32 => DataType::Int64,
        DataType::UInt64 => DataType::Decimal128(20, 0),
        DataType::Float16 | DataType::Float32 | DataType::Float64 => DataType::Float64,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => DataType::Utf8,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => DataType::Binary,
        DataType::Dictionary(_, values) => return delta_type(values),
        DataType::RunEndEncoded(_, values) => return delta_type(values.data_type()),
        DataType::Decimal32(p, s) | DataType::Decimal64(p, s) | DataType::Decimal128(p, s)
            if *s >= 0 && (*s as u8) <= *p && *p <= 38 =>
        {
            DataType::Decimal128(*p, *s)
        }
        DataType::Decimal256(p, s) if *s >= 0 && (*s as u8) <= *p && *p <= 38 => {
            DataType::Decimal128(*p, *s)
        }
        DataType::Date32 | DataType::Date64 => DataType::Date32,
        DataType::Timestamp(_, Some(_)) => timestamp_type(),
        DataType::Timestamp(_, None) => timestamp_ntz_type(),
        DataType::Struct(fields) => {
            if fields.is_empty() {
                return None;
            }
            let mut out = Vec::with_capacity(fields.len());
            for f in fields {
                if unstorable_name(f.name()).is_some() {
                    return None;
                }
                out.push(Field::new(f.name(), delta_type(f.data_type())?, true));
            }
            DataType::Struct(Fields::from(out))
        }
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::ListView(f)
        | DataType::LargeListView(f)
        | DataType::FixedSizeList(f, _) => DataType::List(Arc::new(Field::new(
            LIST_ELEMENT,
            delta_type(f.data_type())?,
            true,
        ))),
        DataType::Map(entries, _) => {
            let DataType::Struct(kv) = entries.data_type() else {
                return None;
            };
            if kv.len() != 2 {
                return None;
            }
            let key = delta_type(kv[0].data_type())?;
            let value = delta_type(kv[1].data_type())?;
            DataType::Map(
                Arc::new(Field::new(
                    MAP_ENTRIES,
                    DataType::Struct(Fields::from(vec![
                        Field::new(MAP_KEY, key, false),
                        Field::new(MAP_VALUE, value, true),
                    ])),
                    false,
                )),
                false,
            )
        }
        _ => return None,
    })
}

/// The type a column of `field` lands as: [`delta_type`], or STRING.
pub fn landing_type(field: &Field) -> DataType {
    delta_type(field.data_type()).unwrap_or(DataType::Utf8)
}

/// An array converted to a column's type, and the rows whose value did not fit (valid in the
/// source, NULL in the result).
pub struct Converted {
    pub array: ArrayRef,
    pub misfits: Vec<usize>,
}

/// Converts `array` (of `field`) to `target`. Values land as they are when the types agree,
/// cast when they differ, and as text when `target` is STRING and the source is nested or has
/// no Delta type (JSON text for objects and lists, the plain text for scalars). A value the
/// cast cannot carry becomes NULL and is listed in `misfits`.
pub fn to_delta(
    field: &FieldRef,
    array: &ArrayRef,
    target: &DataType,
) -> Result<Converted, ArrowError> {
    let rows = array.len();
    if array.data_type() == target {
        return Ok(Converted {
            array: array.clone(),
            misfits: Vec::new(),
        });
    }
    if let Some(texts) = array.as_any().downcast_ref::<StringArray>() {
        if target.is_nested() {
            return json_to_nested(texts, target);
        }
        if target == &DataType::Binary {
            return Ok(Converted {
                array: Arc::new(text_to_binary(texts)),
                misfits: Vec::new(),
            });
        }
    }
    if target == &DataType::Utf8 && needs_text(field) {
        return Ok(Converted {
            array: text_array(field, array)?,
            misfits: Vec::new(),
        });
    }
    let options = CastOptions {
        safe: true,
        ..Default::default()
    };
    let cast = match cast_with_options(array, target, &options) {
        Ok(a) => a,
        // No cast between the two types: every value is a misfit.
        Err(ArrowError::CastError(_)) | Err(ArrowError::NotYetImplemented(_)) => {
            new_null_array(target, rows)
        }
        Err(e) => return Err(e),
    };
    let misfits = (0..rows)
        .filter(|&r| array.is_valid(r) && cast.is_null(r))
        .collect();
    Ok(Converted {
        array: cast,
        misfits,
    })
}

/// JSON text decoded into a nested type (STRUCT, ARRAY, MAP), as the values of a contract's
/// nested fields arrive. A value that is not JSON of that shape is NULL and listed in
/// `misfits`.
fn json_to_nested(texts: &StringArray, target: &DataType) -> Result<Converted, ArrowError> {
    let rows = texts.len();
    if rows == 0 {
        return Ok(Converted {
            array: arrow::array::new_empty_array(target),
            misfits: Vec::new(),
        });
    }
    let schema = Arc::new(Schema::new(vec![Field::new("v", target.clone(), true)]));
    let decode = |lines: &str, n: usize| -> Result<Option<ArrayRef>, ArrowError> {
        let mut d = arrow::json::ReaderBuilder::new(schema.clone())
            .with_batch_size(n)
            .build_decoder()?;
        d.decode(lines.as_bytes())?;
        Ok(d.flush()?
            .filter(|b| b.num_rows() == n)
            .map(|b| b.column(0).clone()))
    };
    // each value is checked to be one whole JSON value, so none can spill into another row
    let lines: Vec<Option<String>> = (0..rows)
        .map(|r| {
            if texts.is_null(r) {
                return Some("{}\n".to_string());
            }
            let t = texts.value(r);
            serde_json::from_str::<serde::de::IgnoredAny>(t).ok()?;
            Some(format!("{{\"v\":{t}}}\n"))
        })
        .collect();
    if lines.iter().all(Option::is_some) {
        let all: String = lines.iter().flatten().map(String::as_str).collect();
        if let Ok(Some(array)) = decode(&all, rows) {
            return Ok(Converted {
                array,
                misfits: Vec::new(),
            });
        }
    }
    // row by row: values in STRING positions that are not strings become their JSON text
    // (arrow-json reads only strings there), and a value that still does not decode is a misfit
    let mut parts: Vec<ArrayRef> = Vec::with_capacity(rows);
    let mut misfits = Vec::new();
    for r in 0..rows {
        let line = if texts.is_null(r) {
            Some("{}\n".to_string())
        } else {
            serde_json::from_str::<serde_json::Value>(texts.value(r))
                .ok()
                .map(|mut v| {
                    text_in_string_positions(&mut v, target);
                    format!("{{\"v\":{v}}}\n")
                })
        };
        match line.as_deref().map(|l| decode(l, 1)) {
            Some(Ok(Some(a))) => parts.push(a),
            _ => {
                misfits.push(r);
                parts.push(new_null_array(target, 1));
            }
        }
    }
    let refs: Vec<&dyn Array> = parts.iter().map(AsRef::as_ref).collect();
    Ok(Converted {
        array: arrow::compute::concat(&refs)?,
        misfits,
    })
}

/// Non-string values at STRING positions of `t` replaced by their JSON text.
fn text_in_string_positions(v: &mut serde_json::Value, t: &DataType) {
    use serde_json::Value;
    match (t, v) {
        (DataType::Utf8, v) if !v.is_string() && !v.is_null() => {
            *v = Value::String(v.to_string());
        }
        (DataType::Struct(fields), Value::Object(o)) => {
            for f in fields {
                if let Some(x) = o.get_mut(f.name()) {
                    text_in_string_positions(x, f.data_type());
                }
            }
        }
        (DataType::List(f), Value::Array(items)) => {
            for x in items {
                text_in_string_positions(x, f.data_type());
            }
        }
        (DataType::Map(entries, _), Value::Object(o)) => {
            if let DataType::Struct(kv) = entries.data_type()
                && kv.len() == 2
            {
                for x in o.values_mut() {
                    text_in_string_positions(x, kv[1].data_type());
                }
            }
        }
        _ => {}
    }
}

/// Text as BINARY: each character one byte when every character is below U+0100 (Avro's JSON
/// encoding of bytes, which ASCII text also is), otherwise the text's UTF-8 bytes.
fn text_to_binary(texts: &StringArray) -> arrow::array::BinaryArray {
    texts
        .iter()
        .map(|t| {
            t.map(|t| {
                if t.chars().all(|c| (c as u32) < 0x100) {
                    t.chars().map(|c| c as u8).collect::<Vec<u8>>()
                } else {
                    t.as_bytes().to_vec()
                }
            })
        })
        .collect()
}

/// Whether values of `field` land in a STRING column as text rather than by a cast.
fn needs_text(field: &Field) -> bool {
    let t = field.data_type();
    delta_type(t).is_none() || t.is_nested() || is_uuid(field)
}

/// A UUID in 16 bytes: Arrow's canonical extension, or Avro's logical type as `arrow-avro`
/// keeps it in the field's metadata.
fn is_uuid(field: &Field) -> bool {
    let m = field.metadata();
    matches!(field.data_type(), DataType::FixedSizeBinary(16))
        && (m
            .get("ARROW:extension:name")
            .is_some_and(|n| n == "arrow.uuid")
            || m.get("logicalType").is_some_and(|n| n == "uuid"))
}

/// Each value of `array` as JSON text (`None` for NULL), for `_rescued_data` and for the text of
/// values without a Delta type.
pub fn json_values(field: &FieldRef, array: &ArrayRef) -> Result<Vec<Option<String>>, ArrowError> {
    let rows = array.len();
    let mut out = Vec::with_capacity(rows);
    if is_uuid(field) {
        let a = array
            .as_any()
            .downcast_ref::<FixedSizeBinaryArray>()
            .ok_or_else(|| ArrowError::CastError("uuid is not fixed-size binary".into()))?;
        for r in 0..rows {
            out.push(
                a.is_valid(r)
                    .then(|| format!("\"{}\"", uuid_text(a.value(r)))),
            );
        }
        return Ok(out);
    }
    if let Some(union) = array.as_any().downcast_ref::<UnionArray>() {
        // A union's value is its branch's value.
        let DataType::Union(branches, _) = field.data_type() else {
            return Err(ArrowError::CastError(
                "a union array without a union type".into(),
            ));
        };
        let mut encoded: HashMap<i8, Vec<Option<String>>> = HashMap::new();
        for (type_id, branch) in branches.iter() {
            encoded.insert(type_id, json_values(branch, union.child(type_id))?);
        }
        for r in 0..rows {
            let value = encoded
                .get(&union.type_id(r))
                .and_then(|v| v.get(union.value_offset(r)).cloned().flatten());
            out.push(value);
        }
        return Ok(out);
    }
    let options = EncoderOptions::default();
    match make_encoder(field, array.as_ref(), &options) {
        Ok(mut encoder) => {
            let mut buf = Vec::new();
            for r in 0..rows {
                if encoder.is_null(r) {
                    out.push(None);
                    continue;
                }
                buf.clear();
                encoder.encode(r, &mut buf);
                out.push(Some(String::from_utf8_lossy(&buf).into_owned()));
            }
        }
        // Types JSON cannot encode: their display text, as a JSON string.
        Err(_) => {
            let f = ArrayFormatter::try_new(array.as_ref(), &FormatOptions::default())?;
            for r in 0..rows {
                out.push(
                    array
                        .is_valid(r)
                        .then(|| serde_json::Value::String(f.value(r).to_string()).to_string()),
                );
            }
        }
    }
    Ok(out)
}

/// The STRING column of `array`: JSON text for nested values, the unquoted text for scalars.
fn text_array(field: &FieldRef, array: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    let values = json_values(field, array)?;
    let mut b = StringBuilder::new();
    for v in values {
        match v {
            None => b.append_null(),
            Some(json) if json.starts_with('"') => match serde_json::from_str::<String>(&json) {
                Ok(s) => b.append_value(s),
                Err(_) => b.append_value(json),
            },
            Some(json) => b.append_value(json),
        }
    }
    Ok(Arc::new(b.finish()))
}

fn uuid_text(b: &[u8]) -> String {
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    if hex.len() != 32 {
        return hex;
    }
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{
        Int32Array, ListArray, StringArray, StructArray, Time64MicrosecondArray, UInt64Array,
    };
    use arrow::datatypes::{Int32Type, TimeUnit};

    fn field(name: &str, a: &ArrayRef) -> FieldRef {
        Arc::new(Field::new(name, a.data_type().clone(), true))
    }

    #[test]
    fn text_lands_in_binary_one_byte_per_character_below_u0100() {
        let texts: ArrayRef = Arc::new(StringArray::from(vec![
            Some("ab"),
            Some("\u{ff}\u{80}"),
            Some("€"),
            None,
        ]));
        let c = to_delta(&field("b", &texts), &texts, &DataType::Binary).unwrap();
        let b = c
            .array
            .as_any()
            .downcast_ref::<arrow::array::BinaryArray>()
            .unwrap();
        assert_eq!(b.value(0), b"ab");
        assert_eq!(b.value(1), &[0xff, 0x80]);
        assert_eq!(b.value(2), "€".as_bytes());
        assert!(b.is_null(3));
        assert!(c.misfits.is_empty());
    }

    #[test]
    fn json_text_decodes_into_nested_columns_with_text_at_string_positions() {
        let target = DataType::Struct(Fields::from(vec![
            Field::new("n", DataType::Int64, true),
            Field::new("raw", DataType::Utf8, true),
            Field::new("tags", list_type(DataType::Utf8), true),
        ]));
        let texts: ArrayRef = Arc::new(StringArray::from(vec![
            Some(r#"{"n": 1, "raw": "x", "tags": ["a"]}"#),
            // an object and a number where STRING is expected: their JSON text
            Some(r#"{"n": 2, "raw": {"k": [1]}, "tags": [3]}"#),
            // not JSON of this shape: a misfit, not a guess
            Some(r#"{"n": "two"}"#),
            Some("not json"),
            None,
        ]));
        let c = to_delta(&field("s", &texts), &texts, &target).unwrap();
        assert_eq!(c.misfits, vec![2, 3]);
        let s = c.array.as_any().downcast_ref::<StructArray>().unwrap();
        let raw = s.column(1).as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(raw.value(0), "x");
        assert_eq!(raw.value(1), r#"{"k":[1]}"#);
        let tags = s.column(2).as_any().downcast_ref::<ListArray>().unwrap();
        let second = tags.value(1);
        let second = second.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(second.value(0), "3");
        assert!(s.is_null(2) && s.is_null(3) && s.is_null(4));
    }

    #[test]
    fn scalar_types_follow_the_map() {
        assert_eq!(delta_type(&DataType::Int32), Some(DataType::Int64));
        assert_eq!(
            delta_type(&DataType::UInt64),
            Some(DataType::Decimal128(20, 0))
        );
        assert_eq!(delta_type(&DataType::Float32), Some(DataType::Float64));
        assert_eq!(
            delta_type(&DataType::Timestamp(
                TimeUnit::Nanosecond,
                Some("+02:00".into())
            )),
            Some(timestamp_type())
        );
        assert_eq!(
            delta_type(&DataType::Timestamp(TimeUnit::Millisecond, None)),
            Some(timestamp_ntz_type())
        );
        assert_eq!(delta_type(&DataType::Time64(TimeUnit::Microsecond)), None);
        assert_eq!(delta_type(&DataType::FixedSizeBinary(4)), None);
        assert_eq!(delta_type(&DataType::Decimal256(50, 2)), None);
        assert_eq!(
            delta_type(&DataType::Dictionary(
                Box::new(DataType::Int32),
                Box::new(DataType::Utf8)
            )),
            Some(DataType::Utf8)
        );
    }

    #[test]
    fn nested_types_map_their_children_and_refuse_unstorable_names() {
        let s = DataType::Struct(Fields::from(vec![Field::new("a", DataType::Int16, false)]));
        assert_eq!(
            delta_type(&s),
            Some(DataType::Struct(Fields::from(vec![Field::new(
                "a",
                DataType::Int64,
                true
            )])))
        );
        let bad = DataType::Struct(Fields::from(vec![Field::new("a b", DataType::Int16, true)]));
        assert_eq!(delta_type(&bad), None);
        let l = DataType::List(Arc::new(Field::new(
            "item",
            DataType::Time32(TimeUnit::Second),
            true,
        )));
        assert_eq!(delta_type(&l), None);
    }

    #[test]
    fn casts_keep_values_and_report_misfits() {
        let a: ArrayRef = Arc::new(StringArray::from(vec![Some("7"), Some("abc"), None]));
        let c = to_delta(&field("id", &a), &a, &DataType::Int64).unwrap();
        assert_eq!(c.misfits, vec![1]);
        assert_eq!(c.array.null_count(), 2);
        let u: ArrayRef = Arc::new(UInt64Array::from(vec![u64::MAX]));
        let c = to_delta(&field("u", &u), &u, &DataType::Decimal128(20, 0)).unwrap();
        assert!(c.misfits.is_empty());
    }

    #[test]
    fn nested_and_untyped_values_become_text() {
        let l: ArrayRef = Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
            Some(vec![Some(1), None]),
            None,
        ]));
        let c = to_delta(&field("l", &l), &l, &DataType::Utf8).unwrap();
        let s = c.array.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(s.value(0), "[1,null]");
        assert!(s.is_null(1));
        let t: ArrayRef = Arc::new(Time64MicrosecondArray::from(vec![3_723_000_001]));
        let c = to_delta(&field("t", &t), &t, &DataType::Utf8).unwrap();
        let s = c.array.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(s.value(0), "01:02:03.000001");
        let st: ArrayRef = Arc::new(StructArray::from(vec![(
            Arc::new(Field::new("x", DataType::Int32, true)),
            Arc::new(Int32Array::from(vec![5])) as ArrayRef,
        )]));
        assert_eq!(
            json_values(&field("st", &st), &st).unwrap(),
            vec![Some("{\"x\":5}".to_string())]
        );
    }
}
