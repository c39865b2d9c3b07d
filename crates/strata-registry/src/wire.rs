//! Confluent wire-format Avro payloads as the JSON records ingest lands: decoded with the
//! writer's schema (the message's id), resolved to the bound contract's latest version by Avro's
//! resolution rules (DECISIONS.md section 12), and rendered so that each value is what its
//! bronze column's cast reads (timestamps and dates as ISO text, decimals as decimal text).

use apache_avro::Schema as AvroSchema;
use apache_avro::types::Value as Avro;
use arrow::datatypes::TimeUnit;
use serde_json::{Map, Value};

use crate::compat::avro::Names;
use crate::contract::{Contract, Temporal};
use crate::schema::Parsed;

/// Decodes one payload (the bytes after the magic byte and the schema id) written with
/// `writer`, as JSON. With an Avro contract the record is then resolved to the contract's
/// latest version by Avro's rules ([`Contract::resolve`]): fields the writer lacks get the
/// contract's defaults, fields renamed by an alias take the contract's name, fields the
/// contract does not have are dropped, as any Avro reader does. Types are left for the contract
/// check, which applies Avro's promotions and names every violation.
pub fn decode(
    writer: &Parsed,
    payload: &[u8],
    contract: Option<&Contract>,
) -> Result<Value, String> {
    let schemas = writer.avro();
    let Some(root) = schemas.first().copied() else {
        return Err("its schema is not an Avro schema".into());
    };
    // the name table: the references first, then the root, each name defined before its use
    let mut named: Vec<&AvroSchema> = schemas[1..].to_vec();
    named.push(root);
    let mut rest = payload;
    let value = apache_avro::from_avro_datum_schemata(root, named, &mut rest, None)
        .map_err(|e| format!("cannot decode its Avro payload: {e}"))?;
    if !rest.is_empty() {
        return Err(format!("{} bytes left after the record", rest.len()));
    }
    let mut json = to_json(value, root, &Names::of(schemas.iter().copied()));
    if let Some(c) = contract {
        c.resolve(&mut json);
    }
    Ok(json)
}

/// An Avro value as JSON, walking its schema for what the value alone does not say (a
/// decimal's scale, a union's branch).
fn to_json(v: Avro, s: &AvroSchema, names: &Names) -> Value {
    let s = names.resolve_ref(s);
    match (v, s) {
        (Avro::Union(i, b), AvroSchema::Union(u)) => match u.variants().get(i as usize) {
            Some(branch) => to_json(*b, branch, names),
            None => scalar(*b),
        },
        (Avro::Union(_, b), _) => to_json(*b, s, names),
        (Avro::Record(fields), AvroSchema::Record(r)) => Value::Object(
            fields
                .into_iter()
                .map(|(k, v)| {
                    let j = match r.fields.iter().find(|f| f.name == k) {
                        Some(f) => to_json(v, &f.schema, names),
                        None => scalar(v),
                    };
                    (k, j)
                })
                .collect(),
        ),
        (Avro::Array(items), AvroSchema::Array(a)) => Value::Array(
            items
                .into_iter()
                .map(|v| to_json(v, &a.items, names))
                .collect(),
        ),
        (Avro::Map(m), AvroSchema::Map(ms)) => {
            let mut keys: Vec<(String, Avro)> = m.into_iter().collect();
            keys.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                keys.into_iter()
                    .map(|(k, v)| (k, to_json(v, &ms.types, names)))
                    .collect(),
            )
        }
        (Avro::Decimal(d), AvroSchema::Decimal(ds)) => match Vec::<u8>::try_from(&d) {
            Ok(bytes) => Value::String(decimal_text(&bytes, ds.scale)),
            Err(_) => Value::Null,
        },
        (v, _) => scalar(v),
    }
}

fn scalar(v: Avro) -> Value {
    let temporal = |t: Temporal, n: i64| t.text(n).map_or(Value::from(n), Value::String);
    match v {
        Avro::Null => Value::Null,
        Avro::Boolean(b) => Value::Bool(b),
        Avro::Int(i) => Value::from(i),
        Avro::Long(l) => Value::from(l),
        Avro::Float(f) => float(f64::from(f)),
        Avro::Double(d) => float(d),
        // Avro's JSON encoding of bytes: one character per byte
        Avro::Bytes(b) | Avro::Fixed(_, b) => Value::String(b.iter().map(|x| *x as char).collect()),
        Avro::String(s) | Avro::Enum(_, s) => Value::String(s),
        Avro::Union(_, b) => scalar(*b),
        Avro::Array(items) => Value::Array(items.into_iter().map(scalar).collect()),
        Avro::Map(m) => Value::Object(m.into_iter().map(|(k, v)| (k, scalar(v))).collect()),
        Avro::Record(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(k, v)| (k, scalar(v)))
                .collect::<Map<_, _>>(),
        ),
        Avro::Date(d) => temporal(Temporal::Date, i64::from(d)),
        Avro::TimeMillis(ms) => {
            time_text(i64::from(ms) * 1_000).map_or(Value::from(ms), Value::String)
        }
        Avro::TimeMicros(us) => time_text(us).map_or(Value::from(us), Value::String),
        Avro::TimestampMillis(n) => temporal(Temporal::Instant(TimeUnit::Millisecond), n),
        Avro::TimestampMicros(n) => temporal(Temporal::Instant(TimeUnit::Microsecond), n),
        Avro::TimestampNanos(n) => temporal(Temporal::Instant(TimeUnit::Nanosecond), n),
        Avro::LocalTimestampMillis(n) => temporal(Temporal::Local(TimeUnit::Millisecond), n),
        Avro::LocalTimestampMicros(n) => temporal(Temporal::Local(TimeUnit::Microsecond), n),
        Avro::LocalTimestampNanos(n) => temporal(Temporal::Local(TimeUnit::Nanosecond), n),
        Avro::Decimal(d) => match Vec::<u8>::try_from(&d) {
            Ok(bytes) => Value::String(decimal_text(&bytes, 0)),
            Err(_) => Value::Null,
        },
        Avro::BigDecimal(b) => Value::String(b.to_string()),
        Avro::Duration(d) => serde_json::json!({
            "months": u32::from(d.months()),
            "days": u32::from(d.days()),
            "millis": u32::from(d.millis()),
        }),
        Avro::Uuid(u) => Value::String(u.to_string()),
    }
}

/// A float as JSON: a number, or Avro's JSON names for the values JSON has no number for.
fn float(f: f64) -> Value {
    match serde_json::Number::from_f64(f) {
        Some(n) => Value::Number(n),
        None if f.is_nan() => Value::String("NaN".into()),
        None if f > 0.0 => Value::String("Infinity".into()),
        None => Value::String("-Infinity".into()),
    }
}

/// `HH:MM:SS.ffffff` from microseconds after midnight; None outside one day.
fn time_text(us: i64) -> Option<String> {
    if !(0..86_400_000_000).contains(&us) {
        return None;
    }
    let (s, frac) = (us / 1_000_000, us % 1_000_000);
    Some(format!(
        "{:02}:{:02}:{:02}.{frac:06}",
        s / 3600,
        s / 60 % 60,
        s % 60
    ))
}

/// A decimal's text from its big-endian two's-complement unscaled bytes (any length) and its
/// scale.
fn decimal_text(bytes: &[u8], scale: usize) -> String {
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    // the magnitude, big-endian: the two's complement negated when negative
    let mut mag: Vec<u8> = bytes.to_vec();
    if negative {
        for b in &mut mag {
            *b = !*b;
        }
        for b in mag.iter_mut().rev() {
            let (v, carry) = b.overflowing_add(1);
            *b = v;
            if !carry {
                break;
            }
        }
    }
    // decimal digits by repeated division of the magnitude by 10
    let mut digits = Vec::new();
    while mag.iter().any(|b| *b != 0) {
        let mut rem = 0u32;
        for b in &mut mag {
            let cur = (rem << 8) | u32::from(*b);
            *b = (cur / 10) as u8;
            rem = cur % 10;
        }
        digits.push(b'0' + rem as u8);
    }
    if digits.is_empty() {
        digits.push(b'0');
    }
    digits.reverse();
    let text = String::from_utf8(digits).unwrap_or_default();
    let sign = if negative { "-" } else { "" };
    if scale == 0 {
        return format!("{sign}{text}");
    }
    let padded = format!("{text:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{sign}{int}.{frac}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_and_times_render_as_their_columns_read_them() {
        assert_eq!(decimal_text(&[0x30, 0x39], 2), "123.45");
        assert_eq!(decimal_text(&[0xff, 0x85], 3), "-0.123");
        assert_eq!(decimal_text(&[0x07], 0), "7");
        assert_eq!(decimal_text(&[0x80], 0), "-128");
        assert_eq!(decimal_text(&[], 2), "0.00");
        // 2^128, beyond i128: 17 bytes
        let mut big = vec![0x00, 0x01];
        big.extend([0u8; 16]);
        assert_eq!(
            decimal_text(&big, 0),
            "340282366920938463463374607431768211456"
        );
        assert_eq!(time_text(3_723_000_001).as_deref(), Some("01:02:03.000001"));
        assert_eq!(time_text(-1), None);
        assert_eq!(float(f64::NAN), Value::String("NaN".into()));
        assert_eq!(
            Temporal::Instant(TimeUnit::Millisecond)
                .text(1_700_000_000_123)
                .as_deref(),
            Some("2023-11-14T22:13:20.123Z")
        );
        assert_eq!(Temporal::Date.text(0).as_deref(), Some("1970-01-01"));
        assert_eq!(
            Temporal::Local(TimeUnit::Microsecond).text(1).as_deref(),
            Some("1970-01-01T00:00:00.000001")
        );
    }
}
