//! Strata's schema registry: subjects and versions of Avro and JSON Schema schemas, global ids,
//! compatibility levels with Avro's resolution rules, kept in the lakehouse's metastore, and
//! served over the Confluent Schema Registry REST API.

pub mod api;
pub mod compat;
pub mod contract;
pub mod error;
pub mod schema;
pub mod store;
pub mod wire;

pub use compat::Level;
pub use error::{RegistryError, Result};
pub use schema::{Parsed, Reference, SchemaKind};
