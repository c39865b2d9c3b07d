//! Registered schemas: their kind, text and parsed form.

use apache_avro::Schema as AvroSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{RegistryError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SchemaKind {
    #[serde(rename = "AVRO")]
    Avro,
    #[serde(rename = "JSON")]
    Json,
    #[serde(rename = "PROTOBUF")]
    Protobuf,
}

impl SchemaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SchemaKind::Avro => "AVRO",
            SchemaKind::Json => "JSON",
            SchemaKind::Protobuf => "PROTOBUF",
        }
    }

    /// The kind named in a request (absent means AVRO, as Confluent has it).
    pub fn parse(name: Option<&str>) -> Result<SchemaKind> {
        match name.map(str::trim) {
            None | Some("") => Ok(SchemaKind::Avro),
            Some(n) if n.eq_ignore_ascii_case("AVRO") => Ok(SchemaKind::Avro),
            Some(n) if n.eq_ignore_ascii_case("JSON") => Ok(SchemaKind::Json),
            Some(n) if n.eq_ignore_ascii_case("PROTOBUF") => Err(RegistryError::invalid_schema(
                "PROTOBUF schemas are not supported yet: register AVRO or JSON (JSON Schema)",
            )),
            Some(n) => Err(RegistryError::invalid_schema(format!(
                "Invalid schema type {n}: expected AVRO or JSON"
            ))),
        }
    }
}

/// A reference from one schema to another registered one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reference {
    pub name: String,
    pub subject: String,
    pub version: i64,
}

/// A schema, parsed and checked.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub kind: SchemaKind,
    /// The schema text without insignificant whitespace, in its own key order: what the
    /// registry stores, returns and compares.
    pub text: String,
    avro: Vec<AvroSchema>,
    json: Value,
}

impl Parsed {
    /// The Avro schema first, then the schemas it references.
    pub fn avro(&self) -> Vec<&AvroSchema> {
        self.avro.iter().collect()
    }

    /// The parsed JSON document of the schema text (Avro schemas are JSON too).
    pub fn json(&self) -> &Value {
        &self.json
    }
}

/// Parses `text` as a schema of `kind`. `references` are the referenced schemas' texts, in an
/// order where each comes after those it needs (Avro named types).
pub fn parse(kind: SchemaKind, text: &str, references: &[String]) -> Result<Parsed> {
    let doc: Value = serde_json::from_str(text)
        .map_err(|e| RegistryError::invalid_schema(format!("Invalid schema: not JSON ({e})")))?;
    let compact = minify(text);
    match kind {
        SchemaKind::Avro => {
            let (main, refs) = if references.is_empty() {
                (AvroSchema::parse_str(text), Vec::new())
            } else {
                match AvroSchema::parse_str_with_list(text, references) {
                    Ok((m, r)) => (Ok(m), r),
                    Err(e) => (Err(e), Vec::new()),
                }
            };
            let main = main.map_err(|e| {
                RegistryError::invalid_schema(format!("Invalid schema {compact}: {e}"))
            })?;
            let mut avro = vec![main];
            avro.extend(refs);
            Ok(Parsed {
                kind,
                text: compact,
                avro,
                json: doc,
            })
        }
        SchemaKind::Json => {
            if !matches!(doc, Value::Object(_) | Value::Bool(_)) {
                return Err(RegistryError::invalid_schema(format!(
                    "Invalid schema {compact}: a JSON Schema is an object or a boolean"
                )));
            }
            json_validator(&doc).map_err(|e| {
                RegistryError::invalid_schema(format!("Invalid schema {compact}: {e}"))
            })?;
            Ok(Parsed {
                kind,
                text: compact,
                avro: Vec::new(),
                json: doc,
            })
        }
        SchemaKind::Protobuf => Err(RegistryError::invalid_schema(
            "PROTOBUF schemas are not supported yet: register AVRO or JSON (JSON Schema)",
        )),
    }
}

/// `text` (valid JSON) without whitespace outside strings.
pub fn minify(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_whitespace() {
            out.push(c);
        }
    }
    out
}

/// The schema with object keys sorted (what `normalize=true` compares and stores).
pub fn normalized(doc: &Value) -> String {
    // serde_json's map keeps keys sorted, so a round trip through Value sorts them.
    serde_json::to_string(doc).unwrap_or_default()
}

/// A validator for a JSON Schema: its `$schema`'s draft, else draft 7 (what Confluent and
/// Karapace assume when a schema names none).
pub fn json_validator(doc: &Value) -> std::result::Result<jsonschema::Validator, String> {
    let built = if doc.get("$schema").is_some() {
        jsonschema::validator_for(doc)
    } else {
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft7)
            .build(doc)
    };
    built.map_err(|e| e.to_string())
}
