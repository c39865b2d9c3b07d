//! Strata's shared vocabulary: validated names (`catalog.schema.table`), layers, the one map from
//! declared type names to Arrow types, the error classes every crate maps onto, and the
//! lakehouse configuration. This crate does no I/O.

pub mod config;
pub mod error;
pub mod layer;
pub mod name;
pub mod quarantine;
pub mod source_types;
pub mod types;

pub use config::Config;
pub use error::{Error, ErrorClass, Result};
pub use layer::{Layer, SchemaKind, TableKind};
pub use name::{DEFAULT_CATALOG, Ident, SchemaName, TableName};
pub use types::{ColumnDef, parse_columns, parse_type};
