//! Validated names: `catalog.schema.table`.
//!
//! Every part is lowercase ASCII letters, digits and `_`, starts with a letter, and has at most
//! 128 characters. Names are validated once, here; storage paths are derived only from these
//! types, so nothing a user types can place files outside the lakehouse root.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// The catalog a two-part name belongs to.
pub const DEFAULT_CATALOG: &str = "lakehouse";

const MAX_LEN: usize = 128;

/// One validated name part.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ident(String);

impl Ident {
    /// Validates one name part. ASCII upper case folds to lower case, as unquoted identifiers do
    /// in SQL; anything else outside `[a-z0-9_]` is refused.
    pub fn new(part: &str) -> Result<Self, Error> {
        let folded = part.to_ascii_lowercase();
        let what = || format!("invalid name '{part}'");
        if folded.is_empty() {
            return Err(Error::InvalidInput(format!(
                "{}: a name part is empty",
                what()
            )));
        }
        if folded.len() > MAX_LEN {
            return Err(Error::InvalidInput(format!(
                "{}: a name part has at most {MAX_LEN} characters",
                what()
            )));
        }
        if !folded.as_bytes()[0].is_ascii_lowercase() {
            return Err(Error::InvalidInput(format!(
                "{}: a name starts with a letter (a-z)",
                what()
            )));
        }
        if let Some(bad) = folded
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
        {
            return Err(Error::InvalidInput(format!(
                "{}: '{bad}' is not allowed; names use only letters a-z, digits and '_'",
                what()
            )));
        }
        Ok(Ident(folded))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Ident {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A schema: `catalog.schema`, or `schema` in the default catalog.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SchemaName {
    pub catalog: Ident,
    pub schema: Ident,
}

impl SchemaName {
    pub fn new(catalog: &str, schema: &str) -> Result<Self, Error> {
        Ok(SchemaName {
            catalog: Ident::new(catalog)?,
            schema: Ident::new(schema)?,
        })
    }

    pub fn parse(s: &str) -> Result<Self, Error> {
        let parts: Vec<&str> = s.split('.').collect();
        match parts.as_slice() {
            [schema] => Self::new(DEFAULT_CATALOG, schema),
            [catalog, schema] => Self::new(catalog, schema),
            _ => Err(Error::InvalidInput(format!(
                "invalid schema name '{s}': expected 'schema' or 'catalog.schema'"
            ))),
        }
    }
}

impl fmt::Display for SchemaName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.catalog, self.schema)
    }
}

/// A table: `catalog.schema.table`; `schema.table` means the default catalog `lakehouse`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableName {
    pub catalog: Ident,
    pub schema: Ident,
    pub table: Ident,
}

impl TableName {
    pub fn new(catalog: &str, schema: &str, table: &str) -> Result<Self, Error> {
        Ok(TableName {
            catalog: Ident::new(catalog)?,
            schema: Ident::new(schema)?,
            table: Ident::new(table)?,
        })
    }

    /// Parses `schema.table` or `catalog.schema.table`. A one-part name is an error that
    /// suggests the qualified form; a column is never a fourth part.
    pub fn parse(s: &str) -> Result<Self, Error> {
        let parts: Vec<&str> = s.split('.').collect();
        match parts.as_slice() {
            [table] => Err(Error::InvalidInput(format!(
                "table name '{s}' needs its schema: write 'silver.{t}' (or bronze, gold, ...), \
                 or 'lakehouse.silver.{t}'",
                t = table.to_ascii_lowercase()
            ))),
            [schema, table] => Self::new(DEFAULT_CATALOG, schema, table),
            [catalog, schema, table] => Self::new(catalog, schema, table),
            _ => Err(Error::InvalidInput(format!(
                "invalid table name '{s}': expected 'schema.table' or 'catalog.schema.table' \
                 (name a column with --column)"
            ))),
        }
    }

    pub fn schema_name(&self) -> SchemaName {
        SchemaName {
            catalog: self.catalog.clone(),
            schema: self.schema.clone(),
        }
    }

    /// The managed folder of this table relative to the lakehouse root:
    /// `<catalog>/<schema>/<table>`. Only validated parts go into it.
    pub fn relative_path(&self) -> String {
        format!("{}/{}/{}", self.catalog, self.schema, self.table)
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.catalog, self.schema, self.table)
    }
}

impl FromStr for TableName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        TableName::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_defaults_catalog() {
        let t = TableName::parse("silver.events").unwrap();
        assert_eq!(t.to_string(), "lakehouse.silver.events");
        assert_eq!(t.relative_path(), "lakehouse/silver/events");
        let t = TableName::parse("Other.Gold.Daily_Totals").unwrap();
        assert_eq!(t.to_string(), "other.gold.daily_totals");
    }

    #[test]
    fn refuses_bad_names() {
        let one = TableName::parse("events").unwrap_err().to_string();
        assert!(one.contains("silver.events"), "{one}");
        for bad in [
            "../x",
            "a/b",
            "silver./x",
            "silver.",
            ".x",
            "silver.1abc",
            "silver.a-b",
            "silver.é",
            "a.b.c.d",
            "silver.a b",
            "silver.%2e%2e",
        ] {
            assert!(TableName::parse(bad).is_err(), "{bad} accepted");
        }
        assert!(TableName::parse(&format!("silver.{}", "a".repeat(129))).is_err());
        assert!(TableName::parse(&format!("silver.{}", "a".repeat(128))).is_ok());
    }

    #[test]
    fn accepted_names_stay_under_root() {
        // every accepted part is [a-z][a-z0-9_]*, so the relative path never has '.', '/' or '\'
        for s in ["a.b", "x1.y_2", "c.s.t"] {
            let t = TableName::parse(s).unwrap();
            let p = t.relative_path();
            assert!(!p.contains(".."));
            assert_eq!(p.matches('/').count(), 2);
        }
    }
}
