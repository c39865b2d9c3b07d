//! Contracts: a registry subject bound to a bronze table. Every record ingested into the table
//! is checked against the subject's latest version before it reaches bronze; the table's
//! columns come from that schema through one type map (DECISIONS.md section 2).

use apache_avro::Schema as AvroSchema;
use apache_avro::schema::RecordSchema;
use arrow::datatypes::{DataType, Field, TimeUnit};
use serde_json::{Map, Value};

use crate::compat::avro::Names;
use crate::error::{RegistryError, Result};
use crate::schema::{Parsed, SchemaKind};

/// What happens to a record that does not conform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnViolation {
    /// The record goes to the quarantine table (stage `contract`) with every violation.
    Quarantine,
    /// The whole file or request is refused and nothing from it is committed.
    Fail,
}

impl OnViolation {
    pub fn as_str(self) -> &'static str {
        match self {
            OnViolation::Quarantine => "quarantine",
            OnViolation::Fail => "fail",
        }
    }

    pub fn parse(text: &str) -> Result<OnViolation> {
        match text.trim().to_ascii_lowercase().as_str() {
            "quarantine" => Ok(OnViolation::Quarantine),
            "fail" => Ok(OnViolation::Fail),
            other => Err(RegistryError::bad_request(format!(
                "--on-violation {other}: expected quarantine or fail"
            ))),
        }
    }
}

/// A bound contract at one version of its subject.
#[derive(Debug, Clone)]
pub struct Contract {
    pub subject: String,
    pub version: i64,
    pub id: i64,
    pub on_violation: OnViolation,
    pub schema: Parsed,
}

impl Contract {
    /// The bronze columns the schema gives, in its order: (name, type).
    pub fn columns(&self) -> Result<Vec<(String, DataType)>> {
        schema_columns(&self.subject, &self.schema)
    }

    /// The top-level fields that hold a timestamp or date logical type, where an epoch number
    /// must become text for the column's cast: the field itself (`Some`: its unit), or somewhere
    /// inside a record, array or map (`None`). JSON Schema contracts have none.
    pub fn epoch_fields(&self) -> Vec<(String, Option<Temporal>)> {
        self.with_root(|r, names| {
            r.fields
                .iter()
                .filter_map(|f| {
                    if let Some(t) = non_null(&f.schema, names).and_then(temporal) {
                        Some((f.name.clone(), Some(t)))
                    } else {
                        has_temporal(&f.schema, names, &mut Vec::new())
                            .then(|| (f.name.clone(), None))
                    }
                })
                .collect()
        })
        .unwrap_or_default()
    }

    /// `f` applied to the contract's root record and its named types; None for a JSON Schema
    /// contract or a root that is not a record.
    fn with_root<T>(&self, f: impl FnOnce(&RecordSchema, &Names) -> T) -> Option<T> {
        if self.schema.kind != SchemaKind::Avro {
            return None;
        }
        let all = self.schema.avro();
        let names = Names::of(all.iter().copied());
        match names.resolve_ref(all[0]) {
            AvroSchema::Record(r) => Some(f(r, &names)),
            _ => None,
        }
    }

    /// Rewrites the epoch numbers inside top-level field `field`'s nested value as ISO text
    /// (see [`Temporal::text`]); whether anything changed.
    pub fn nested_epochs_to_text(&self, field: &str, value: &mut Value) -> bool {
        self.with_root(|r, names| match r.fields.iter().find(|f| f.name == field) {
            Some(f) => epochs_to_text(&f.schema, names, value),
            None => false,
        })
        .unwrap_or(false)
    }

    /// Avro's schema resolution applied to a record already written as JSON (a wire-format
    /// message, decoded with its writer's schema): a field the record lacks gets the contract's
    /// default, a field named by one of a contract field's aliases takes the field's name, a
    /// field the contract does not have is dropped, and an enum symbol the contract lacks
    /// becomes the enum's default when it has one, in nested records too. Types are left to
    /// [`Contract::violations`], which applies the promotions.
    pub fn resolve(&self, record: &mut Value) {
        if self.schema.kind != SchemaKind::Avro {
            return;
        }
        let all = self.schema.avro();
        let names = Names::of(all.iter().copied());
        resolve_value(all[0], &names, record);
    }

    /// The top-level fields with a default other than null, as JSON text: a record that lacks
    /// one lands with the default, as an Avro reader would read it.
    pub fn defaults(&self) -> Vec<(String, String)> {
        self.with_root(|r, _| {
            r.fields
                .iter()
                .filter_map(|f| {
                    let d = f.default.as_ref().filter(|d| !d.is_null())?;
                    Some((f.name.clone(), d.to_string()))
                })
                .collect()
        })
        .unwrap_or_default()
    }

    /// Every way `record` breaks the contract (empty: it conforms). Each names the field.
    pub fn violations(&self, record: &Value) -> Vec<String> {
        match self.schema.kind {
            SchemaKind::Avro => {
                let all = self.schema.avro();
                let names = Names::of(all.iter().copied());
                let mut out = Vec::new();
                check_avro(all[0], &names, record, "", &mut out);
                out
            }
            SchemaKind::Json => match crate::schema::json_validator(self.schema.json()) {
                Ok(v) => v
                    .iter_errors(record)
                    .map(|e| {
                        let at = e.instance_path.to_string();
                        if at.is_empty() {
                            e.to_string()
                        } else {
                            format!("{at}: {e}")
                        }
                    })
                    .collect(),
                Err(e) => vec![format!("the contract's schema cannot be used: {e}")],
            },
            SchemaKind::Protobuf => vec!["PROTOBUF is not supported".into()],
        }
    }
}

/// The bronze columns a contract's schema gives, in its order: (name, type). `subject` names
/// the schema in errors.
pub fn schema_columns(subject: &str, schema: &Parsed) -> Result<Vec<(String, DataType)>> {
    match schema.kind {
        SchemaKind::Avro => {
            let all = schema.avro();
            let names = Names::of(all.iter().copied());
            let root = names.resolve_ref(all[0]);
            let AvroSchema::Record(r) = root else {
                return Err(RegistryError::invalid_schema(format!(
                    "subject {} is not an Avro record: a contract needs a record schema, whose fields become columns",
                    subject
                )));
            };
            Ok(r.fields
                .iter()
                .map(|f| {
                    let mut open = vec![r.name.fullname(None)];
                    (
                        f.name.clone(),
                        avro_type_in(&f.schema, &names, &mut open, false),
                    )
                })
                .collect())
        }
        SchemaKind::Json => {
            let props = schema
                .json()
                .get("properties")
                .and_then(Value::as_object)
                .ok_or_else(|| {
                    RegistryError::invalid_schema(format!(
                        "subject {} has no `properties`: a contract needs an object schema, whose properties become columns",
                        subject
                    ))
                })?;
            Ok(props
                .iter()
                .map(|(k, v)| (k.clone(), json_type(v)))
                .collect())
        }
        SchemaKind::Protobuf => Err(RegistryError::invalid_schema("PROTOBUF is not supported")),
    }
}

/// A timestamp or date logical type: the unit of its epoch number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Temporal {
    /// timestamp-millis, -micros, -nanos: an instant (UTC)
    Instant(TimeUnit),
    /// local-timestamp-millis, -micros, -nanos: a wall-clock time without zone
    Local(TimeUnit),
    /// date: days since 1970-01-01
    Date,
}

impl Temporal {
    /// The text the column's cast reads for an epoch number: RFC 3339 (with `Z` for an
    /// instant), or `YYYY-MM-DD` for a date. None when the number is out of range.
    pub fn text(self, n: i64) -> Option<String> {
        use chrono::{DateTime, SecondsFormat};
        let instant = |unit: TimeUnit| match unit {
            TimeUnit::Second => DateTime::from_timestamp(n, 0),
            TimeUnit::Millisecond => DateTime::from_timestamp_millis(n),
            TimeUnit::Microsecond => DateTime::from_timestamp_micros(n),
            TimeUnit::Nanosecond => Some(DateTime::from_timestamp_nanos(n)),
        };
        match self {
            Temporal::Instant(u) => Some(instant(u)?.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            Temporal::Local(u) => Some(
                instant(u)?
                    .naive_utc()
                    .format("%Y-%m-%dT%H:%M:%S%.f")
                    .to_string(),
            ),
            Temporal::Date => {
                let days = i32::try_from(n).ok()?;
                Some(
                    chrono::NaiveDate::from_num_days_from_ce_opt(days.checked_add(719_163)?)?
                        .format("%Y-%m-%d")
                        .to_string(),
                )
            }
        }
    }
}

fn temporal(s: &AvroSchema) -> Option<Temporal> {
    use TimeUnit::*;
    Some(match s {
        AvroSchema::TimestampMillis => Temporal::Instant(Millisecond),
        AvroSchema::TimestampMicros => Temporal::Instant(Microsecond),
        AvroSchema::TimestampNanos => Temporal::Instant(Nanosecond),
        AvroSchema::LocalTimestampMillis => Temporal::Local(Millisecond),
        AvroSchema::LocalTimestampMicros => Temporal::Local(Microsecond),
        AvroSchema::LocalTimestampNanos => Temporal::Local(Nanosecond),
        AvroSchema::Date => Temporal::Date,
        _ => return None,
    })
}

/// Whether a table's column of type `existing` can take a contract field of type `wanted`: the
/// same type, or STRING for a nested type (tables bound before nested fields became STRUCT,
/// ARRAY and MAP keep their JSON text).
pub fn column_fits(existing: &DataType, wanted: &DataType) -> bool {
    existing == wanted || (existing == &DataType::Utf8 && wanted.is_nested())
}

fn resolve_value(s: &AvroSchema, names: &Names, v: &mut Value) {
    match (names.resolve_ref(s), v) {
        (AvroSchema::Record(r), Value::Object(o)) => {
            for f in &r.fields {
                if !o.contains_key(&f.name) {
                    let alias = f
                        .aliases
                        .iter()
                        .flatten()
                        .find(|a| o.contains_key(a.as_str()))
                        .cloned();
                    if let Some(a) = alias
                        && let Some(x) = o.remove(&a)
                    {
                        o.insert(f.name.clone(), x);
                    } else if let Some(d) = &f.default {
                        o.insert(f.name.clone(), d.clone());
                    }
                }
                if let Some(x) = o.get_mut(&f.name) {
                    resolve_value(&f.schema, names, x);
                }
            }
            o.retain(|k, _| r.fields.iter().any(|f| &f.name == k));
        }
        (AvroSchema::Array(a), Value::Array(items)) => {
            for i in items {
                resolve_value(&a.items, names, i);
            }
        }
        (AvroSchema::Map(m), Value::Object(o)) => {
            for i in o.values_mut() {
                resolve_value(&m.types, names, i);
            }
        }
        (AvroSchema::Union(u), v) if !v.is_null() => {
            // the first branch the value fits once resolved to it
            for b in u
                .variants()
                .iter()
                .filter(|b| !matches!(b, AvroSchema::Null))
            {
                let mut tried = v.clone();
                resolve_value(b, names, &mut tried);
                let mut problems = Vec::new();
                check_avro(b, names, &tried, "", &mut problems);
                if problems.is_empty() {
                    *v = tried;
                    return;
                }
            }
        }
        (AvroSchema::Enum(e), Value::String(sym)) if !e.symbols.contains(sym) => {
            if let Some(d) = &e.default {
                *sym = d.clone();
            }
        }
        _ => {}
    }
}

/// Whether a timestamp or date logical type occurs in `s`.
fn has_temporal(s: &AvroSchema, names: &Names, open: &mut Vec<String>) -> bool {
    match names.resolve_ref(s) {
        t if temporal(t).is_some() => true,
        AvroSchema::Union(u) => u.variants().iter().any(|b| has_temporal(b, names, open)),
        AvroSchema::Array(a) => has_temporal(&a.items, names, open),
        AvroSchema::Map(m) => has_temporal(&m.types, names, open),
        AvroSchema::Record(r) => {
            let full = r.name.fullname(None);
            if open.contains(&full) {
                return false;
            }
            open.push(full);
            let found = r
                .fields
                .iter()
                .any(|f| has_temporal(&f.schema, names, open));
            open.pop();
            found
        }
        _ => false,
    }
}

/// Epoch numbers at timestamp and date positions of `v` (a value of `s`) rewritten as ISO text.
fn epochs_to_text(s: &AvroSchema, names: &Names, v: &mut Value) -> bool {
    let s = names.resolve_ref(s);
    if let Some(t) = temporal(s) {
        if let Some(text) = v.as_i64().and_then(|n| t.text(n)) {
            *v = Value::String(text);
            return true;
        }
        return false;
    }
    match (s, v) {
        (AvroSchema::Union(u), v) => {
            // the branch the value fits (as the contract check chose it)
            let branch = u.variants().iter().find(|b| {
                let mut tmp = Vec::new();
                check_avro(b, names, v, "", &mut tmp);
                tmp.is_empty()
            });
            branch.is_some_and(|b| epochs_to_text(b, names, v))
        }
        (AvroSchema::Array(a), Value::Array(items)) => items
            .iter_mut()
            .fold(false, |c, i| epochs_to_text(&a.items, names, i) | c),
        (AvroSchema::Map(m), Value::Object(o)) => o
            .values_mut()
            .fold(false, |c, i| epochs_to_text(&m.types, names, i) | c),
        (AvroSchema::Record(r), Value::Object(o)) => r.fields.iter().fold(false, |c, f| {
            o.get_mut(&f.name)
                .is_some_and(|i| epochs_to_text(&f.schema, names, i))
                | c
        }),
        _ => false,
    }
}

/// `s` itself, or the one non-null branch of a `["null", T]` union.
fn non_null<'a>(s: &'a AvroSchema, names: &'a Names) -> Option<&'a AvroSchema> {
    match names.resolve_ref(s) {
        AvroSchema::Union(u) => {
            let mut rest = u
                .variants()
                .iter()
                .filter(|v| !matches!(v, AvroSchema::Null));
            match (rest.next(), rest.next()) {
                (Some(only), None) => Some(names.resolve_ref(only)),
                _ => None,
            }
        }
        other => Some(other),
    }
}

/// Whether `text` is what a TIMESTAMP / TIMESTAMP_NTZ column's cast reads (ISO 8601), or a
/// DATE's (`YYYY-MM-DD`).
fn temporal_text_ok(t: Temporal, text: &str) -> bool {
    match t {
        Temporal::Date => chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok(),
        _ => arrow::compute::kernels::cast_utils::string_to_datetime(&chrono::Utc, text).is_ok(),
    }
}

/// The Delta type of an Avro type: int, long to BIGINT; float, double to DOUBLE; string, enum,
/// uuid to STRING; bytes to BINARY; decimal to DECIMAL(p,s); date to DATE;
/// timestamp-millis/micros to TIMESTAMP; local-timestamp to TIMESTAMP_NTZ; `["null", T]` to T
/// (nullable); records to STRUCT, arrays to ARRAY, maps to MAP (of the mapped types, every
/// child nullable); time, fixed, other unions, records without fields and a record nested in
/// itself to STRING (JSON text).
pub fn avro_type(s: &AvroSchema, names: &Names) -> DataType {
    avro_type_in(s, names, &mut Vec::new(), false)
}

/// `open`: the records being mapped (a record met again inside itself is JSON text);
/// `nested`: inside a record, array or map, where bytes are STRING holding Avro's JSON
/// encoding (one character per byte), since arrow-json reads BINARY only as hex.
fn avro_type_in(s: &AvroSchema, names: &Names, open: &mut Vec<String>, nested: bool) -> DataType {
    match names.resolve_ref(s) {
        AvroSchema::Int | AvroSchema::Long => DataType::Int64,
        AvroSchema::Float | AvroSchema::Double => DataType::Float64,
        AvroSchema::String | AvroSchema::Enum(_) | AvroSchema::Uuid => DataType::Utf8,
        AvroSchema::Boolean => DataType::Boolean,
        AvroSchema::Bytes if nested => DataType::Utf8,
        AvroSchema::Bytes => DataType::Binary,
        AvroSchema::Decimal(d) if d.precision <= 38 => {
            DataType::Decimal128(d.precision as u8, d.scale as i8)
        }
        AvroSchema::Date => DataType::Date32,
        AvroSchema::TimestampMillis | AvroSchema::TimestampMicros | AvroSchema::TimestampNanos => {
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        }
        AvroSchema::LocalTimestampMillis
        | AvroSchema::LocalTimestampMicros
        | AvroSchema::LocalTimestampNanos => DataType::Timestamp(TimeUnit::Microsecond, None),
        AvroSchema::Union(u) => {
            let non_null: Vec<&AvroSchema> = u
                .variants()
                .iter()
                .filter(|v| !matches!(v, AvroSchema::Null))
                .collect();
            if non_null.len() == 1 {
                avro_type_in(non_null[0], names, open, nested)
            } else {
                DataType::Utf8
            }
        }
        AvroSchema::Record(r) => {
            let full = r.name.fullname(None);
            if r.fields.is_empty() || open.contains(&full) {
                return DataType::Utf8;
            }
            open.push(full);
            let fields: Vec<Field> = r
                .fields
                .iter()
                .map(|f| Field::new(&f.name, avro_type_in(&f.schema, names, open, true), true))
                .collect();
            open.pop();
            DataType::Struct(fields.into())
        }
        AvroSchema::Array(a) => {
            strata_core::source_types::list_type(avro_type_in(&a.items, names, open, true))
        }
        AvroSchema::Map(m) => {
            strata_core::source_types::string_map_type(avro_type_in(&m.types, names, open, true))
        }
        _ => DataType::Utf8,
    }
}

/// The Delta type of a JSON Schema property: integer to BIGINT, number to STRING (its literal
/// text), boolean to BOOLEAN, string to STRING, object and array to STRING (JSON text).
pub fn json_type(s: &Value) -> DataType {
    let types: Vec<&str> = match s.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .collect(),
        _ => vec![],
    };
    match types.as_slice() {
        ["integer"] => DataType::Int64,
        ["boolean"] => DataType::Boolean,
        _ => DataType::Utf8,
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn field_path(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Whether `v` (JSON) is a value of Avro type `s`, with Avro's promotions (an int where a long,
/// float or double is expected, and so on); violations are appended with the field's path.
fn check_avro(s: &AvroSchema, names: &Names, v: &Value, at: &str, out: &mut Vec<String>) {
    let s = names.resolve_ref(s);
    let here = if at.is_empty() { "the record" } else { at };
    let mismatch = |out: &mut Vec<String>, want: &str| {
        out.push(format!(
            "field '{here}': expected {want}, found {} ({})",
            kind(v),
            short(v)
        ))
    };
    match s {
        AvroSchema::Null => {
            if !v.is_null() {
                mismatch(out, "null");
            }
        }
        AvroSchema::Boolean => {
            if !v.is_boolean() {
                mismatch(out, "a boolean");
            }
        }
        _ if temporal(s).is_some() && v.is_string() => {
            let t = temporal(s).unwrap_or(Temporal::Date);
            if !temporal_text_ok(t, v.as_str().unwrap_or_default()) {
                mismatch(
                    out,
                    if t == Temporal::Date {
                        "a date (days since 1970-01-01, or YYYY-MM-DD)"
                    } else {
                        "a timestamp (an epoch number, or ISO 8601 text)"
                    },
                );
            }
        }
        AvroSchema::TimeMillis | AvroSchema::TimeMicros if v.is_string() => {
            if chrono::NaiveTime::parse_from_str(v.as_str().unwrap_or_default(), "%H:%M:%S%.f")
                .is_err()
            {
                mismatch(out, "a time of day (a number, or HH:MM:SS text)");
            }
        }
        AvroSchema::Int | AvroSchema::Date | AvroSchema::TimeMillis => {
            if v.as_i64().is_none_or(|i| i32::try_from(i).is_err()) {
                mismatch(out, "an int (32-bit integer)");
            }
        }
        AvroSchema::Long
        | AvroSchema::TimeMicros
        | AvroSchema::TimestampMillis
        | AvroSchema::TimestampMicros
        | AvroSchema::TimestampNanos
        | AvroSchema::LocalTimestampMillis
        | AvroSchema::LocalTimestampMicros
        | AvroSchema::LocalTimestampNanos => {
            if v.as_i64().is_none() {
                mismatch(out, "a long (64-bit integer)");
            }
        }
        AvroSchema::Float | AvroSchema::Double => {
            // Avro's JSON encoding names the values JSON has no number for
            let special = matches!(v.as_str(), Some("NaN" | "Infinity" | "-Infinity"));
            if !v.is_number() && !special {
                mismatch(out, "a number");
            }
        }
        AvroSchema::String | AvroSchema::Uuid => {
            if !v.is_string() {
                mismatch(out, "a string");
            }
        }
        AvroSchema::Duration if v.is_object() => {
            let fits = ["months", "days", "millis"].iter().all(|k| {
                v.get(*k)
                    .and_then(Value::as_u64)
                    .is_some_and(|n| u32::try_from(n).is_ok())
            });
            if !fits {
                mismatch(out, "a duration (months, days and millis)");
            }
        }
        AvroSchema::Bytes
        | AvroSchema::BigDecimal
        | AvroSchema::Fixed(_)
        | AvroSchema::Duration => {
            if !v.is_string() {
                mismatch(out, "bytes (a string)");
            }
        }
        AvroSchema::Decimal(_) => {
            if !(v.is_string() || v.is_number()) {
                mismatch(out, "a decimal");
            }
        }
        AvroSchema::Enum(e) => match v.as_str() {
            Some(sym) if e.symbols.iter().any(|x| x == sym) => {}
            Some(sym) => out.push(format!(
                "field '{here}': '{sym}' is not a symbol of enum {} ({})",
                e.name.name,
                e.symbols.join(", ")
            )),
            None => mismatch(out, &format!("a symbol of enum {}", e.name.name)),
        },
        AvroSchema::Array(a) => match v.as_array() {
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    check_avro(&a.items, names, item, &format!("{here}[{i}]"), out);
                }
            }
            None => mismatch(out, "an array"),
        },
        AvroSchema::Map(m) => match v.as_object() {
            Some(entries) => {
                for (k, item) in entries {
                    check_avro(&m.types, names, item, &field_path(at, k), out);
                }
            }
            None => mismatch(out, "an object (map)"),
        },
        AvroSchema::Union(u) => {
            let fits = u.variants().iter().any(|b| {
                let mut tmp = Vec::new();
                check_avro(b, names, v, at, &mut tmp);
                tmp.is_empty()
            });
            if !fits {
                let options: Vec<String> = u
                    .variants()
                    .iter()
                    .map(|b| type_label(names.resolve_ref(b)))
                    .collect();
                mismatch(out, &format!("one of {}", options.join(", ")));
            }
        }
        AvroSchema::Record(r) => {
            let Some(obj) = v.as_object() else {
                return mismatch(out, &format!("an object (record {})", r.name.name));
            };
            check_record(r, names, obj, at, out);
        }
        AvroSchema::Ref { name } => out.push(format!(
            "field '{here}': the contract names type {} that it does not define",
            name.fullname(None)
        )),
    }
}

fn check_record(
    r: &apache_avro::schema::RecordSchema,
    names: &Names,
    obj: &Map<String, Value>,
    at: &str,
    out: &mut Vec<String>,
) {
    let mut missing = Vec::new();
    for f in &r.fields {
        let path = field_path(at, &f.name);
        match obj.get(&f.name) {
            Some(v) => check_avro(&f.schema, names, v, &path, out),
            None => {
                // absent is fine when the field has a default (null included)
                if f.default.is_none() {
                    missing.push(path);
                }
            }
        }
    }
    if !missing.is_empty() {
        out.push(format!(
            "missing required field(s): {}",
            missing
                .iter()
                .map(|m| format!("'{m}'"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let unexpected: Vec<String> = obj
        .keys()
        .filter(|k| !r.fields.iter().any(|f| &f.name == *k))
        .map(|k| format!("'{}'", field_path(at, k)))
        .collect();
    if !unexpected.is_empty() {
        out.push(format!(
            "unexpected field(s) not in the contract: {}",
            unexpected.join(", ")
        ));
    }
}

fn type_label(s: &AvroSchema) -> String {
    match s {
        AvroSchema::Record(r) => format!("record {}", r.name.name),
        AvroSchema::Enum(e) => format!("enum {}", e.name.name),
        AvroSchema::Fixed(f) => format!("fixed {}", f.name.name),
        other => format!("{:?}", apache_avro::schema::SchemaKind::from(other)).to_lowercase(),
    }
}

fn short(v: &Value) -> String {
    let t = v.to_string();
    if t.chars().count() > 40 {
        format!("{}...", t.chars().take(40).collect::<String>())
    } else {
        t
    }
}
