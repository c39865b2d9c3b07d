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
use crate::schema::{Parsed, SchemaKind};

/// Decodes one payload (the bytes after the magic byte and the schema id) written with
/// `writer`. With an Avro contract the record is resolved to the contract's schema: fields the
/// writer lacks get the contract's defaults, promotions apply, and fields the contract does not
/// have are dropped, as any Avro reader does. A record that cannot be resolved is returned as
/// written, so that the contract check names every way it breaks the contract.
pub fn decode(
    writer: &Parsed,
    payload: &[u8],
    contract: Option<&Contract>,
) -> Result<Value, String> {
    let schemas = writer.avro();
    let Some(root) = schemas.first() else {
        return Err("its schema is not an Avro schema".into());
    };
    let mut rest = payload;
    let value = apache_avro::from_avro_datum_schemata(root, schemas[1..].to_vec(), &mut rest, None)
        .map_err(|e| format!("cannot decode its Avro payload: {e}"))?;
    if !rest.is_empty() {
        return Err(format!("{} bytes left after the record", rest.len()));
    }
    if let Some(c) = contract
        && c.schema.kind == SchemaKind::Avro
    {
        let reader = c.schema.avro();
        if let Ok(resolved) = value.clone().resolve_schemata(reader[0], reader.clone()) {
            return Ok(to_json(
                resolved,
                reader[0],
                &Names::of(reader.iter().copied()),
            ));
        }
    }
    Ok(to_json(value, root, &Names::of(schemas.iter().copied())))
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
            Ok(bytes) => decimal_text(&bytes, ds.scale)
                .map(Value::String)
                .unwrap_or(Value::Null),
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
        Avro::Float(f) => serde_json::Number::from_f64(f64::from(f))
            .map_or_else(|| Value::String(f.to_string()), Value::Number),
        Avro::Double(d) => serde_json::Number::from_f64(d)
            .map_or_else(|| Value::String(d.to_string()), Value::Number),
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
        Avro::TimeMillis(ms) => Value::String(time_text(i64::from(ms) * 1_000)),
        Avro::TimeMicros(us) => Value::String(time_text(us)),
        Avro::TimestampMillis(n) => temporal(Temporal::Instant(TimeUnit::Millisecond), n),
        Avro::TimestampMicros(n) => temporal(Temporal::Instant(TimeUnit::Microsecond), n),
        Avro::TimestampNanos(n) => temporal(Temporal::Instant(TimeUnit::Nanosecond), n),
        Avro::LocalTimestampMillis(n) => temporal(Temporal::Local(TimeUnit::Millisecond), n),
        Avro::LocalTimestampMicros(n) => temporal(Temporal::Local(TimeUnit::Microsecond), n),
        Avro::LocalTimestampNanos(n) => temporal(Temporal::Local(TimeUnit::Nanosecond), n),
        Avro::Decimal(d) => match Vec::<u8>::try_from(&d) {
            Ok(bytes) => decimal_text(&bytes, 0).map_or(Value::Null, Value::String),
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

/// `HH:MM:SS.ffffff` from microseconds after midnight.
fn time_text(us: i64) -> String {
    let (s, frac) = (us.div_euclid(1_000_000), us.rem_euclid(1_000_000));
    format!(
        "{:02}:{:02}:{:02}.{frac:06}",
        s / 3600 % 24,
        s / 60 % 60,
        s % 60
    )
}

/// A decimal's text from its big-endian two's-complement unscaled bytes and its scale.
fn decimal_text(bytes: &[u8], scale: usize) -> Option<String> {
    if bytes.len() > 16 {
        return None;
    }
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    let mut buf = [if negative { 0xff } else { 0 }; 16];
    buf[16 - bytes.len()..].copy_from_slice(bytes);
    let n = i128::from_be_bytes(buf);
    let digits = n.unsigned_abs().to_string();
    let sign = if n < 0 { "-" } else { "" };
    if scale == 0 {
        return Some(format!("{sign}{digits}"));
    }
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    Some(format!("{sign}{int}.{frac}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_and_times_render_as_their_columns_read_them() {
        assert_eq!(decimal_text(&[0x30, 0x39], 2).as_deref(), Some("123.45"));
        assert_eq!(decimal_text(&[0xff, 0x85], 3).as_deref(), Some("-0.123"));
        assert_eq!(decimal_text(&[0x07], 0).as_deref(), Some("7"));
        assert_eq!(time_text(3_723_000_001), "01:02:03.000001");
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
