//! Contract checks of single records (the ingest side that applies them comes with push ingest).

use arrow::datatypes::{DataType, TimeUnit};
use serde_json::json;
use strata_registry::contract::{Contract, OnViolation};
use strata_registry::schema::{SchemaKind, parse};

fn contract(kind: SchemaKind, schema: serde_json::Value) -> Contract {
    Contract {
        subject: "events-value".into(),
        version: 1,
        id: 1,
        on_violation: OnViolation::Quarantine,
        schema: parse(kind, &schema.to_string(), &[]).unwrap(),
    }
}

fn avro() -> Contract {
    contract(
        SchemaKind::Avro,
        json!({"type": "record", "name": "Event", "fields": [
            {"name": "id", "type": "long"},
            {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["view", "click"]}},
            {"name": "amount", "type": "double"},
            {"name": "note", "type": ["null", "string"], "default": null},
            {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "tags", "type": {"type": "array", "items": "string"}, "default": []}
        ]}),
    )
}

#[test]
fn an_avro_contract_lists_every_violation_by_field() {
    let c = avro();
    assert!(
        c.violations(&json!({"id": 1, "kind": "view", "amount": 2, "at": 5}))
            .is_empty()
    );
    assert!(
        c.violations(
            &json!({"id": 1, "kind": "click", "amount": 2.5, "note": "x", "at": 5, "tags": ["a"]})
        )
        .is_empty()
    );
    let v = c.violations(&json!({"id": "1", "kind": "buy", "extra": true, "tags": [1]}));
    let all = v.join("\n");
    assert!(all.contains("field 'id': expected a long"), "{all}");
    assert!(all.contains("'buy' is not a symbol of enum Kind"), "{all}");
    assert!(
        all.contains("missing required field(s): 'amount', 'at'"),
        "{all}"
    );
    assert!(
        all.contains("unexpected field(s) not in the contract: 'extra'"),
        "{all}"
    );
    assert!(all.contains("field 'tags[0]': expected a string"), "{all}");
    assert_eq!(v.len(), 5, "{all}");
}

#[test]
fn contract_columns_follow_the_type_map() {
    let cols = avro().columns().unwrap();
    assert_eq!(
        cols,
        vec![
            ("id".to_string(), DataType::Int64),
            ("kind".to_string(), DataType::Utf8),
            ("amount".to_string(), DataType::Float64),
            ("note".to_string(), DataType::Utf8),
            (
                "at".to_string(),
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
            ),
            (
                "tags".to_string(),
                strata_core::source_types::list_type(DataType::Utf8)
            ),
        ]
    );
    let j = contract(
        SchemaKind::Json,
        json!({"type": "object", "properties": {"n": {"type": "integer"}, "x": {"type": "number"},
               "ok": {"type": "boolean"}}, "required": ["n"], "additionalProperties": false}),
    );
    assert_eq!(
        j.columns().unwrap(),
        vec![
            ("n".to_string(), DataType::Int64),
            ("ok".to_string(), DataType::Boolean),
            ("x".to_string(), DataType::Utf8),
        ]
    );
    assert!(j.violations(&json!({"n": 1, "x": 1.5})).is_empty());
    let v = j.violations(&json!({"x": "a", "y": 1})).join("\n");
    assert!(v.contains("\"n\" is a required property"), "{v}");
    assert!(v.contains("/x"), "{v}");
    assert!(v.contains("y"), "{v}");
}

#[test]
fn epoch_numbers_become_iso_text_at_the_top_level_and_inside_nested_values() {
    let c = contract(
        SchemaKind::Avro,
        json!({"type": "record", "name": "R", "fields": [
            {"name": "at", "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}]},
            {"name": "visits", "type": {"type": "array", "items": {"type": "record", "name": "Visit",
                "fields": [{"name": "day", "type": {"type": "int", "logicalType": "date"}},
                           {"name": "n", "type": "long"}]}}},
            {"name": "n", "type": "long"}
        ]}),
    );
    let fields = c.epoch_fields();
    assert_eq!(fields.len(), 2, "{fields:?}");
    assert_eq!(fields[0].0, "at");
    assert!(fields[0].1.is_some());
    assert_eq!(fields[1], ("visits".to_string(), None));
    let mut v = json!([{"day": 1, "n": 7}, {"day": "2026-01-01", "n": 8}]);
    assert!(c.nested_epochs_to_text("visits", &mut v));
    assert_eq!(
        v,
        json!([{"day": "1970-01-02", "n": 7}, {"day": "2026-01-01", "n": 8}])
    );
    // ISO text conforms where an epoch number does; other text does not
    let ok =
        json!({"at": "2026-01-01T00:00:00Z", "visits": [{"day": "2026-01-01", "n": 1}], "n": 1});
    assert!(c.violations(&ok).is_empty(), "{:?}", c.violations(&ok));
    let bad = json!({"at": "yesterday", "visits": [{"day": "soon", "n": 1}], "n": 1});
    let all = c.violations(&bad).join("\n");
    assert!(all.contains("field 'at'"), "{all}");
    assert!(
        all.contains("field 'visits[0].day': expected a date"),
        "{all}"
    );
}

/// The Confluent wire payload of `record` (Avro JSON) written with `schema`.
fn payload(schema: &serde_json::Value, record: &serde_json::Value) -> Vec<u8> {
    let s = apache_avro::Schema::parse_str(&schema.to_string()).unwrap();
    let v = apache_avro::types::Value::from(record.clone())
        .resolve(&s)
        .unwrap();
    apache_avro::to_avro_datum(&s, v).unwrap()
}

#[test]
fn wire_records_are_decoded_with_their_writer_and_resolved_to_the_contract() {
    // the writer names a type once and uses it twice (a reference inside its own schema)
    let writer = json!({"type": "record", "name": "Order", "fields": [
        {"name": "id", "type": "long"},
        {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["a", "b", "c"]}},
        {"name": "from", "type": {"type": "record", "name": "Place", "fields": [{"name": "city", "type": "string"}]}},
        {"name": "to", "type": "Place"},
        {"name": "legacy", "type": "string"},
        {"name": "amt", "type": "int"}
    ]});
    let parsed = parse(SchemaKind::Avro, &writer.to_string(), &[]).unwrap();
    let bytes = payload(
        &writer,
        &json!({"id": 7, "kind": "c", "from": {"city": "Oslo"}, "to": {"city": "Rome"}, "legacy": "x", "amt": 3}),
    );
    let plain = strata_registry::wire::decode(&parsed, &bytes, None).unwrap();
    assert_eq!(
        plain,
        json!({"id": 7, "kind": "c", "from": {"city": "Oslo"}, "to": {"city": "Rome"}, "legacy": "x", "amt": 3})
    );
    // the contract renamed `to` (alias), dropped `legacy`, added `channel` with a default,
    // narrowed the enum (with a default) and widened `amt` to double
    let c = contract(
        SchemaKind::Avro,
        json!({"type": "record", "name": "Order", "fields": [
            {"name": "id", "type": "long"},
            {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["a", "b"], "default": "a"}},
            {"name": "from", "type": {"type": "record", "name": "Place", "fields": [{"name": "city", "type": "string"}]}},
            {"name": "dest", "type": "Place", "aliases": ["to"]},
            {"name": "amt", "type": "double"},
            {"name": "channel", "type": "string", "default": "web"}
        ]}),
    );
    let resolved = strata_registry::wire::decode(&parsed, &bytes, Some(&c)).unwrap();
    assert_eq!(
        resolved,
        json!({"id": 7, "kind": "a", "from": {"city": "Oslo"}, "dest": {"city": "Rome"}, "amt": 3, "channel": "web"})
    );
    assert!(
        c.violations(&resolved).is_empty(),
        "{:?}",
        c.violations(&resolved)
    );
    // a truncated payload is an error, not a record
    assert!(strata_registry::wire::decode(&parsed, &bytes[..bytes.len() - 2], None).is_err());
}

#[test]
fn wire_values_render_as_their_columns_read_them() {
    let writer = json!({"type": "record", "name": "T", "fields": [
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "t", "type": {"type": "int", "logicalType": "time-millis"}},
        {"name": "d", "type": {"type": "int", "logicalType": "date"}},
        {"name": "x", "type": "double"}
    ]});
    let parsed = parse(SchemaKind::Avro, &writer.to_string(), &[]).unwrap();
    let s = apache_avro::Schema::parse_str(&writer.to_string()).unwrap();
    use apache_avro::types::Value as A;
    let v = A::Record(vec![
        ("at".into(), A::TimestampMillis(1_700_000_000_123)),
        ("t".into(), A::TimeMillis(3_723_004)),
        ("d".into(), A::Date(1)),
        ("x".into(), A::Double(f64::NAN)),
    ]);
    let bytes = apache_avro::to_avro_datum(&s, v).unwrap();
    let c = contract(SchemaKind::Avro, writer);
    let j = strata_registry::wire::decode(&parsed, &bytes, Some(&c)).unwrap();
    assert_eq!(
        j,
        json!({"at": "2023-11-14T22:13:20.123Z", "t": "01:02:03.004000", "d": "1970-01-02", "x": "NaN"})
    );
    assert!(c.violations(&j).is_empty(), "{:?}", c.violations(&j));
}

#[test]
fn a_string_column_keeps_taking_a_nested_field() {
    use strata_registry::contract::column_fits;
    let list = strata_core::source_types::list_type(DataType::Utf8);
    assert!(column_fits(&list, &list));
    assert!(column_fits(&DataType::Utf8, &list));
    assert!(!column_fits(&DataType::Int64, &list));
    assert!(!column_fits(&DataType::Int64, &DataType::Float64));
}
