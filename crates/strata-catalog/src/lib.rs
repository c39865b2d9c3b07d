//! Strata's catalog: the metastore (SQLite, embedded by default) and the lakehouse that ties it
//! to the Delta tables under one root. The metastore never holds data; the Delta logs hold the
//! data's truth, and everything else (names, layers, owners, comments, tags, lineage, the
//! lakehouse key) lives only in the metastore.

pub mod describe;
pub mod doctor;
pub mod error;
pub mod lakehouse;
pub mod metastore;

pub use error::{Error, Result};
pub use lakehouse::Lakehouse;
