//! The one map from declared type names to Arrow types.
//!
//! `--columns "id BIGINT NOT NULL, name STRING, ts TIMESTAMP"`, `CREATE TABLE` and (later)
//! contracts all go through [`parse_type`]. `TIMESTAMP` is an instant: Arrow
//! `Timestamp(Microsecond, "UTC")`, Delta `timestamp`. `TIMESTAMP_NTZ` exists only when written.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, TimeUnit};

use crate::error::Error;

/// The zone Strata gives every instant. Delta accepts exactly this spelling.
pub const UTC: &str = "UTC";

/// Arrow's type for Strata's `TIMESTAMP`.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into()))
}

/// Arrow's type for Strata's `TIMESTAMP_NTZ`.
pub fn timestamp_ntz_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, None)
}

/// One column of a `--columns` list.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnDef {
    pub name: String,
    pub data_type: DataType,
    pub nullable: bool,
    pub comment: Option<String>,
}

impl ColumnDef {
    pub fn to_field(&self) -> Field {
        Field::new(&self.name, self.data_type.clone(), self.nullable)
    }
}

/// Parses a comma-separated column list: `name TYPE [NOT NULL] [COMMENT 'text']`, names bare
/// (folded to lower case) or double-quoted (kept as written).
pub fn parse_columns(text: &str) -> Result<Vec<ColumnDef>, Error> {
    let mut p = Parser::new(text);
    let mut cols: Vec<ColumnDef> = Vec::new();
    loop {
        p.skip_ws();
        if p.at_end() {
            break;
        }
        let name = p.ident()?;
        let data_type = p.data_type()?;
        let mut nullable = true;
        let mut comment = None;
        loop {
            if p.keyword("NOT") {
                if !p.keyword("NULL") {
                    return Err(p.error("expected NULL after NOT"));
                }
                nullable = false;
            } else if p.keyword("NULL") {
                nullable = true;
            } else if p.keyword("COMMENT") {
                comment = Some(p.string_literal()?);
            } else {
                break;
            }
        }
        if cols.iter().any(|c| c.name.eq_ignore_ascii_case(&name)) {
            return Err(Error::InvalidInput(format!(
                "column '{name}' is declared twice (column names are compared ignoring case)"
            )));
        }
        cols.push(ColumnDef {
            name,
            data_type,
            nullable,
            comment,
        });
        p.skip_ws();
        if p.at_end() {
            break;
        }
        if !p.eat(',') {
            return Err(p.error("expected ',' between columns"));
        }
    }
    if cols.is_empty() {
        return Err(Error::InvalidInput(
            "no columns given: write for example --columns \"id BIGINT NOT NULL, name STRING\""
                .into(),
        ));
    }
    Ok(cols)
}

/// Parses one type name (`BIGINT`, `DECIMAL(18,4)`, `ARRAY<STRING>`, `TIMESTAMP`, ...).
pub fn parse_type(text: &str) -> Result<DataType, Error> {
    let mut p = Parser::new(text);
    let t = p.data_type()?;
    p.skip_ws();
    if !p.at_end() {
        return Err(p.error("unexpected text after the type"));
    }
    Ok(t)
}

/// Strata's name for an Arrow type, the inverse of [`parse_type`] for the types it makes.
pub fn type_name(t: &DataType) -> String {
    match t {
        DataType::Int64 => "BIGINT".into(),
        DataType::Int32 => "INT".into(),
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int8 => "TINYINT".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "STRING".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Float32 => "FLOAT".into(),
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Date32 | DataType::Date64 => "DATE".into(),
        DataType::Timestamp(_, Some(_)) => "TIMESTAMP".into(),
        DataType::Timestamp(_, None) => "TIMESTAMP_NTZ".into(),
        DataType::Decimal128(p, s) => format!("DECIMAL({p},{s})"),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "BINARY".into(),
        DataType::List(f) | DataType::LargeList(f) | DataType::ListView(f) => {
            format!("ARRAY<{}>", type_name(f.data_type()))
        }
        DataType::Struct(fields) => {
            let parts: Vec<String> = fields
                .iter()
                .map(|f| {
                    format!(
                        "{}: {}",
                        quote_if_needed(f.name()),
                        type_name(f.data_type())
                    )
                })
                .collect();
            format!("STRUCT<{}>", parts.join(", "))
        }
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => format!(
                "MAP<{}, {}>",
                type_name(kv[0].data_type()),
                type_name(kv[1].data_type())
            ),
            other => format!("{other}"),
        },
        other => format!("{other}"),
    }
}

/// A column name as SQL must write it: bare when it is a lowercase identifier, otherwise quoted.
pub fn quote_if_needed(name: &str) -> String {
    let bare = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if bare {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        Parser { text, pos: 0 }
    }

    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }

    fn skip_ws(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.text.len() - trimmed.len();
    }

    fn error(&self, what: &str) -> Error {
        let near: String = self.rest().chars().take(20).collect();
        Error::InvalidInput(format!(
            "invalid column list at character {}: {what} (near '{near}') in '{}'",
            self.pos + 1,
            self.text
        ))
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_ws();
        if self.rest().starts_with(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn word(&mut self) -> Option<&'a str> {
        self.skip_ws();
        let rest = self.rest();
        let len = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if len == 0 {
            return None;
        }
        let w = &rest[..len];
        self.pos += len;
        Some(w)
    }

    fn peek_word(&mut self) -> Option<&'a str> {
        let save = self.pos;
        let w = self.word();
        self.pos = save;
        w
    }

    fn keyword(&mut self, kw: &str) -> bool {
        match self.peek_word() {
            Some(w) if w.eq_ignore_ascii_case(kw) => {
                self.word();
                true
            }
            _ => false,
        }
    }

    fn ident(&mut self) -> Result<String, Error> {
        self.skip_ws();
        if self.rest().starts_with('"') {
            self.pos += 1;
            let mut out = String::new();
            loop {
                let rest = self.rest();
                let Some(i) = rest.find('"') else {
                    return Err(self.error("unterminated quoted name"));
                };
                out.push_str(&rest[..i]);
                self.pos += i + 1;
                if self.rest().starts_with('"') {
                    out.push('"');
                    self.pos += 1;
                } else {
                    break;
                }
            }
            if out.is_empty() {
                return Err(self.error("a column name is empty"));
            }
            return Ok(out);
        }
        match self.word() {
            Some(w) if !w.as_bytes()[0].is_ascii_digit() => Ok(w.to_lowercase()),
            _ => Err(self.error("expected a column name")),
        }
    }

    fn string_literal(&mut self) -> Result<String, Error> {
        self.skip_ws();
        if !self.rest().starts_with('\'') {
            return Err(self.error("expected a quoted comment"));
        }
        self.pos += 1;
        let mut out = String::new();
        loop {
            let rest = self.rest();
            let Some(i) = rest.find('\'') else {
                return Err(self.error("unterminated comment"));
            };
            out.push_str(&rest[..i]);
            self.pos += i + 1;
            if self.rest().starts_with('\'') {
                out.push('\'');
                self.pos += 1;
            } else {
                return Ok(out);
            }
        }
    }

    fn number(&mut self) -> Result<u32, Error> {
        match self.word() {
            Some(w) => w
                .parse()
                .map_err(|_| self.error(&format!("expected a number, found '{w}'"))),
            None => Err(self.error("expected a number")),
        }
    }

    /// `(n)` or `(p, s)` after a type name; returns what was given.
    fn params(&mut self) -> Result<Vec<u32>, Error> {
        let mut out = Vec::new();
        if self.eat('(') {
            loop {
                out.push(self.number()?);
                if self.eat(')') {
                    break;
                }
                if !self.eat(',') {
                    return Err(self.error("expected ',' or ')'"));
                }
            }
        }
        Ok(out)
    }

    fn data_type(&mut self) -> Result<DataType, Error> {
        let Some(word) = self.word() else {
            return Err(self.error("expected a type"));
        };
        let upper = word.to_ascii_uppercase();
        let t = match upper.as_str() {
            "BIGINT" | "INT8" | "LONG" => DataType::Int64,
            "INT" | "INTEGER" | "INT4" => DataType::Int32,
            "SMALLINT" | "INT2" | "SHORT" => DataType::Int16,
            "TINYINT" | "BYTE" => DataType::Int8,
            "STRING" | "TEXT" | "VARCHAR" | "CHAR" => {
                self.params()?;
                DataType::Utf8
            }
            "CHARACTER" => {
                self.keyword("VARYING");
                self.params()?;
                DataType::Utf8
            }
            "DOUBLE" => {
                self.keyword("PRECISION");
                DataType::Float64
            }
            "FLOAT8" => DataType::Float64,
            "FLOAT" | "REAL" | "FLOAT4" => DataType::Float32,
            "BOOLEAN" | "BOOL" => DataType::Boolean,
            "DATE" => DataType::Date32,
            "TIMESTAMP" => {
                self.params()?;
                if self.keyword("WITHOUT") {
                    self.time_zone_words()?;
                    timestamp_ntz_type()
                } else {
                    if self.keyword("WITH") {
                        self.time_zone_words()?;
                    }
                    timestamp_type()
                }
            }
            "TIMESTAMPTZ" | "TIMESTAMP_LTZ" => timestamp_type(),
            "TIMESTAMP_NTZ" => timestamp_ntz_type(),
            "DECIMAL" | "NUMERIC" | "DEC" => {
                let ps = self.params()?;
                let (p, s) = match ps.as_slice() {
                    [] => (10, 0),
                    [p] => (*p, 0),
                    [p, s] => (*p, *s),
                    _ => return Err(self.error("DECIMAL takes (precision, scale)")),
                };
                if !(1..=38).contains(&p) || s > p {
                    return Err(self.error(&format!(
                        "DECIMAL({p},{s}) is out of range: precision 1 to 38, scale 0 to precision"
                    )));
                }
                DataType::Decimal128(p as u8, s as i8)
            }
            "BINARY" | "BYTEA" | "VARBINARY" => DataType::Binary,
            "ARRAY" => {
                if !self.eat('<') {
                    return Err(self.error("expected ARRAY<type>"));
                }
                let inner = self.data_type()?;
                if !self.eat('>') {
                    return Err(self.error("expected '>' closing ARRAY<"));
                }
                DataType::List(Arc::new(Field::new("element", inner, true)))
            }
            "STRUCT" => {
                if !self.eat('<') {
                    return Err(self.error("expected STRUCT<name: type, ...>"));
                }
                let mut fields = Vec::new();
                loop {
                    let name = self.ident()?;
                    self.eat(':');
                    let t = self.data_type()?;
                    fields.push(Field::new(name, t, true));
                    if self.eat('>') {
                        break;
                    }
                    if !self.eat(',') {
                        return Err(self.error("expected ',' or '>' in STRUCT<...>"));
                    }
                }
                DataType::Struct(Fields::from(fields))
            }
            "MAP" => {
                if !self.eat('<') {
                    return Err(self.error("expected MAP<key type, value type>"));
                }
                let k = self.data_type()?;
                if !self.eat(',') {
                    return Err(self.error("expected ',' in MAP<key, value>"));
                }
                let v = self.data_type()?;
                if !self.eat('>') {
                    return Err(self.error("expected '>' closing MAP<"));
                }
                let entries = Field::new(
                    "key_value",
                    DataType::Struct(Fields::from(vec![
                        Field::new("key", k, false),
                        Field::new("value", v, true),
                    ])),
                    false,
                );
                DataType::Map(Arc::new(entries), false)
            }
            _ => {
                return Err(Error::InvalidInput(format!(
                    "unknown type '{word}': use BIGINT, INT, SMALLINT, TINYINT, DOUBLE, FLOAT, \
                     DECIMAL(p,s), STRING, BOOLEAN, DATE, TIMESTAMP, TIMESTAMP_NTZ, BINARY, \
                     ARRAY<T>, STRUCT<name: T, ...> or MAP<K, V>"
                )));
            }
        };
        // `T[]` is PostgreSQL's spelling of ARRAY<T>.
        let mut t = t;
        loop {
            self.skip_ws();
            if self.rest().starts_with("[]") {
                self.pos += 2;
                t = DataType::List(Arc::new(Field::new("element", t, true)));
            } else {
                break;
            }
        }
        Ok(t)
    }

    fn time_zone_words(&mut self) -> Result<(), Error> {
        if self.keyword("TIME") && self.keyword("ZONE") {
            Ok(())
        } else {
            Err(self.error("expected TIME ZONE"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_issue_example() {
        let cols = parse_columns("id BIGINT NOT NULL, name STRING, ts TIMESTAMP").unwrap();
        assert_eq!(cols.len(), 3);
        assert_eq!(cols[0].data_type, DataType::Int64);
        assert!(!cols[0].nullable);
        assert!(cols[1].nullable);
        assert_eq!(cols[2].data_type, timestamp_type());
    }

    #[test]
    fn parses_nested_and_quoted() {
        let cols = parse_columns(
            "\"userId\" string comment 'the user''s id', amount decimal(18,4), \
             tags array<string>, props struct<a: bigint, \"b c\": map<string, double>>, \
             t2 timestamp_ntz, t3 TIMESTAMP(3) WITH TIME ZONE, xs INT[]",
        )
        .unwrap();
        assert_eq!(cols[0].name, "userId");
        assert_eq!(cols[0].comment.as_deref(), Some("the user's id"));
        assert_eq!(cols[1].data_type, DataType::Decimal128(18, 4));
        assert_eq!(type_name(&cols[2].data_type), "ARRAY<STRING>");
        assert_eq!(
            type_name(&cols[3].data_type),
            "STRUCT<a: BIGINT, \"b c\": MAP<STRING, DOUBLE>>"
        );
        assert_eq!(cols[4].data_type, timestamp_ntz_type());
        assert_eq!(cols[5].data_type, timestamp_type());
        assert_eq!(type_name(&cols[6].data_type), "ARRAY<INT>");
    }

    #[test]
    fn rejects_bad_lists() {
        for bad in [
            "",
            "id",
            "id BIGNUM",
            "id BIGINT, id STRING",
            "id BIGINT NOT",
            "id DECIMAL(40,2)",
            "\"\" STRING",
            "id BIGINT name STRING",
        ] {
            let e = parse_columns(bad);
            assert!(e.is_err(), "{bad:?} accepted: {e:?}");
        }
        let msg = parse_columns("id BIGNUM").unwrap_err().to_string();
        assert!(msg.contains("BIGNUM"), "{msg}");
    }

    #[test]
    fn names_round_trip() {
        for t in [
            "BIGINT",
            "STRING",
            "TIMESTAMP",
            "TIMESTAMP_NTZ",
            "DECIMAL(18,4)",
            "ARRAY<STRUCT<a: INT>>",
        ] {
            assert_eq!(type_name(&parse_type(t).unwrap()), t);
        }
    }
}
