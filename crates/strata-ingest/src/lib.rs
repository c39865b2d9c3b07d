//! Strata's ingestion: get data onto the platform without loss.
//!
//! Files (NDJSON, JSON, CSV, Parquet, Avro; gzip or zstd) are listed through `object_store`,
//! decoded record by record, and landed into bronze tables in batches that commit exactly once
//! (a `txn` per batch, a ledger of every file's record ranges, a per-table lease). Bronze keeps
//! what arrived: values as their literal text, fields that do not fit in `_rescued_data`,
//! records that do not parse as corrupt rows or in quarantine. Every run counts the records of
//! its files independently of the decoders and fails when the commits do not add up.

pub mod bronze;
pub mod decode;
pub mod error;
pub mod generate;
pub mod land;
pub mod quarantine;
pub mod source;
pub mod typed;

pub use error::{Error, Result};
pub use land::{
    CorruptMode, EvolutionMode, FileOutcome, IngestOptions, IngestReport, ingest, land_source,
};
