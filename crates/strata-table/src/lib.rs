//! Strata's Delta Lake tables, on deltalake 1.1.
//!
//! Every function here is exactly one Delta commit (or none, when a transaction id says the
//! write was already committed), so the versions a user sees are predictable:
//!
//! ```text
//!  create  -> v0: protocol + metadata with every layer property
//!  append / replace_where / merge / delete / update -> one commit each, optional `txn`
//!  restore / optimize -> one maintenance commit, never a `txn`
//!  vacuum -> deletes unreferenced files; records VACUUM START and END commits when it deletes
//! ```
//!
//! Tables are plain Delta: Spark, DuckDB, Polars and delta-rs read what Strata writes.

pub mod counting;
pub mod error;
pub mod history;
pub mod ops;
pub mod props;
pub mod session;
pub mod stream;

pub use error::{Error, Result};
pub use history::{Commit, history, version_at_timestamp};
pub use ops::*;
pub use props::TableRole;
pub use session::default_session;
pub use stream::{
    FileWriter, add_records, commit_adds, commit_txns, reset_txns, table_schema, txn_version,
};

pub use deltalake;
pub use deltalake::DeltaTable;
