//! Contracts: a registry subject bound to a bronze table. Every record ingested into the table
//! is checked against the subject's latest version before it reaches bronze; the table's
//! columns come from that schema through one type map (DECISIONS.md section 2).

use apache_avro::Schema as AvroSchema;
use arrow::datatypes::{DataType, TimeUnit};
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
        match self.schema.kind {
            SchemaKind::Avro => {
                let all = self.schema.avro();
                let names = Names::of(all.iter().copied());
                let root = names.resolve_ref(all[0]);
                let AvroSchema::Record(r) = root else {
                    return Err(RegistryError::invalid_schema(format!(
                        "subject {} is not an Avro record: a contract needs a record schema, whose fields become columns",
                        self.subject
                    )));
                };
                Ok(r.fields
                    .iter()
                    .map(|f| (f.name.clone(), avro_type(&f.schema, &names)))
                    .collect())
            }
            SchemaKind::Json => {
                let props = self
                    .schema
                    .json()
                    .get("properties")
                    .and_then(Value::as_object)
                    .ok_or_else(|| {
                        RegistryError::invalid_schema(format!(
                            "subject {} has no `properties`: a contract needs an object schema, whose properties become columns",
                            self.subject
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

/// The Delta type of an Avro type: int, long to BIGINT; float, double to DOUBLE; string, enum,
/// uuid to STRING; bytes to BINARY; decimal to DECIMAL(p,s); date to DATE;
/// timestamp-millis/micros to TIMESTAMP; local-timestamp to TIMESTAMP_NTZ; `["null", T]` to T
/// (nullable); records, arrays, maps, time, fixed and other unions to STRING (JSON text).
pub fn avro_type(s: &AvroSchema, names: &Names) -> DataType {
    match names.resolve_ref(s) {
        AvroSchema::Int | AvroSchema::Long => DataType::Int64,
        AvroSchema::Float | AvroSchema::Double => DataType::Float64,
        AvroSchema::String | AvroSchema::Enum(_) | AvroSchema::Uuid => DataType::Utf8,
        AvroSchema::Boolean => DataType::Boolean,
        AvroSchema::Bytes => DataType::Binary,
        AvroSchema::Decimal(d) => DataType::Decimal128(d.precision as u8, d.scale as i8),
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
                avro_type(non_null[0], names)
            } else {
                DataType::Utf8
            }
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
            if !v.is_number() {
                mismatch(out, "a number");
            }
        }
        AvroSchema::String | AvroSchema::Uuid => {
            if !v.is_string() {
                mismatch(out, "a string");
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
