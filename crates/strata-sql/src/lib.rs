//! Strata's SQL front end: DataFusion over the lakehouse catalog.
//!
//! One dialect (PostgreSQL's, plus `VERSION AS OF` and `TIMESTAMP AS OF`), one front end for
//! every access path. A statement goes through these steps:
//!
//! ```text
//!  text ──> Strata's own statements? (OPTIMIZE, VACUUM, DESCRIBE HISTORY, RESTORE, ...) ──> run
//!    └──> sqlparser (StrataDialect) ──> resolve: load a provider for every table, pinned
//!         version, view and table_changes(...) the statement names ──> DataFusion plan
//!         (a RelationPlanner hands each versioned relation its own provider) ──> run queries;
//!         writes go through strata-table with the layer rules
//! ```

pub mod dialect;
pub mod engine;
pub mod error;
pub mod extensions;
mod merge;
mod resolve;
mod system;
pub mod timestamp;
pub mod types;

pub use engine::{Output, SqlEngine};
pub use error::{Error, Result};
