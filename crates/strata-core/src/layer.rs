//! Layers, schema kinds and table kinds.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// One of the three medallion layers. Every table lives in exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Layer {
    Bronze,
    Silver,
    Gold,
}

impl Layer {
    pub const ALL: [Layer; 3] = [Layer::Bronze, Layer::Silver, Layer::Gold];

    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Bronze => "bronze",
            Layer::Silver => "silver",
            Layer::Gold => "gold",
        }
    }

    /// Whether a table of this layer may read from a table of `source`'s layer: gold never reads
    /// bronze, and nothing reads a layer above its own.
    pub fn may_read(self, source: Layer) -> bool {
        match self {
            Layer::Bronze => source == Layer::Bronze,
            Layer::Silver => source != Layer::Gold,
            Layer::Gold => source != Layer::Bronze,
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Layer {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.to_ascii_lowercase().as_str() {
            "bronze" => Ok(Layer::Bronze),
            "silver" => Ok(Layer::Silver),
            "gold" => Ok(Layer::Gold),
            other => Err(Error::InvalidInput(format!(
                "unknown layer '{other}': expected bronze, silver or gold"
            ))),
        }
    }
}

/// What a schema holds: tables of one layer, quarantine tables, or the read-only system tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchemaKind {
    Layer(Layer),
    Quarantine,
    System,
}

impl SchemaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SchemaKind::Layer(l) => l.as_str(),
            SchemaKind::Quarantine => "quarantine",
            SchemaKind::System => "system",
        }
    }

    pub fn layer(self) -> Option<Layer> {
        match self {
            SchemaKind::Layer(l) => Some(l),
            _ => None,
        }
    }
}

impl fmt::Display for SchemaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SchemaKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.to_ascii_lowercase().as_str() {
            "quarantine" => Ok(SchemaKind::Quarantine),
            "system" => Ok(SchemaKind::System),
            other => Ok(SchemaKind::Layer(other.parse()?)),
        }
    }
}

/// How a table is stored and who owns its files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TableKind {
    /// Strata chose the folder under the lakehouse root and owns the files.
    Managed,
    /// An existing Delta table registered by location: read-only, never written or deleted.
    External,
    /// A SQL view persisted in the metastore.
    View,
}

impl TableKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TableKind::Managed => "managed",
            TableKind::External => "external",
            TableKind::View => "view",
        }
    }
}

impl fmt::Display for TableKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TableKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "managed" => Ok(TableKind::Managed),
            "external" => Ok(TableKind::External),
            "view" => Ok(TableKind::View),
            other => Err(Error::InvalidInput(format!("unknown table kind '{other}'"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_reads() {
        assert!(Layer::Silver.may_read(Layer::Bronze));
        assert!(!Layer::Gold.may_read(Layer::Bronze));
        assert!(Layer::Gold.may_read(Layer::Silver));
        assert!(!Layer::Silver.may_read(Layer::Gold));
        assert!("SILVER".parse::<Layer>().is_ok());
        assert!("platinum".parse::<Layer>().is_err());
    }
}
