//! Streaming writes with the commit in the caller's hands.
//!
//! deltalake's write builder streams and commits in one call. Ingest needs the step between:
//! data files written, nothing committed yet, so it can record the batch in its ledger and
//! commit the quarantine table before the target (DECISIONS.md section 6):
//!
//! ```text
//!  FileWriter::new ── write(chunk) ... ── finish() -> adds   (parquet files, invisible)
//!                                              │
//!                      caller: ledger, quarantine commit
//!                                              │
//!  commit_adds(adds, widened schema, txn) ────► one Delta commit (or none: txn already there)
//! ```
//!
//! Files that are written but never committed are invisible to readers, and VACUUM removes them.

use std::num::NonZeroU64;
use std::sync::Arc;

use arrow::datatypes::{DataType, Schema as ArrowSchema, SchemaRef};
use arrow::record_batch::RecordBatch;
use deltalake::DeltaTable;
use deltalake::datafile::writer::{DeltaWriter, WriterConfig};
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, Add, MetadataExt, TableFeatures, Transaction};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::table::config::TablePropertiesExt;

use crate::error::{Error, Result};
use crate::ops::{Txn, delta_schema};

/// Data files are rolled at this size: small enough to bound the writer's memory, large
/// enough that compaction has little to do.
const TARGET_FILE_SIZE: u64 = 64 * 1024 * 1024;

/// Writes record batches into uncommitted data files of a table.
pub struct FileWriter {
    writer: DeltaWriter,
    schema: SchemaRef,
    rows: u64,
}

impl FileWriter {
    /// A writer of files with `schema`: the table's columns, optionally widened by new
    /// nullable ones (then pass it to [`commit_adds`] too).
    pub fn new(table: &DeltaTable, name: &str, schema: SchemaRef) -> Result<Self> {
        let snapshot = table.snapshot().map_err(|e| Error::delta(name, e))?;
        let partitions: Vec<String> = snapshot.metadata().partition_columns().to_vec();
        let config = WriterConfig::new(
            schema.clone(),
            partitions,
            Some(crate::ops::writer_properties()),
            NonZeroU64::new(TARGET_FILE_SIZE),
            None,
            snapshot.table_config().num_indexed_cols(),
            None,
        );
        let writer = DeltaWriter::new(table.log_store().object_store(None), config);
        Ok(FileWriter {
            writer,
            schema,
            rows: 0,
        })
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    pub async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.writer
            .write(batch)
            .await
            .map_err(|e| Error::Storage(format!("writing a data file: {e}")))?;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Closes every open file; the returned actions are not committed yet.
    pub async fn finish(self) -> Result<Vec<Add>> {
        self.writer
            .close()
            .await
            .map_err(|e| Error::Storage(format!("closing a data file: {e}")))
    }

    /// Abandons the files (multipart uploads are aborted; finished local files stay as
    /// unreferenced files for VACUUM).
    pub async fn abort(self) {
        if let Err(e) = self.writer.abort().await {
            tracing::warn!(error = %e, "aborting a data file writer");
        }
    }
}

/// The number of records an add action holds, from its statistics.
pub fn add_records(add: &Add) -> u64 {
    add.stats
        .as_deref()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
        .and_then(|v| v.get("numRecords").and_then(serde_json::Value::as_u64))
        .unwrap_or(0)
}

/// Commits written files as one append. With `widened`, the commit also carries the table's
/// metadata with that schema (new columns must be nullable and come after the old ones).
/// `txn` makes the commit idempotent: when the table already has that transaction (or a later
/// one of the same app), nothing is committed and `None` is returned.
/// A table that gains its first TIMESTAMP_NTZ column needs Delta's `timestampNtz` feature
/// first: a commit of such a schema without it leaves a table no reader opens. The feature is
/// its own commit (deltalake's add-feature operation), before the data commit.
async fn enable_timestamp_ntz(
    table: &mut DeltaTable,
    name: &str,
    schema: &ArrowSchema,
) -> Result<()> {
    fn has_ntz(t: &DataType) -> bool {
        match t {
            DataType::Timestamp(_, None) => true,
            DataType::Struct(fields) => fields.iter().any(|f| has_ntz(f.data_type())),
            DataType::List(f) | DataType::LargeList(f) | DataType::Map(f, _) => {
                has_ntz(f.data_type())
            }
            _ => false,
        }
    }
    if !schema.fields().iter().any(|f| has_ntz(f.data_type())) {
        return Ok(());
    }
    let snapshot = table.snapshot().map_err(|e| Error::delta(name, e))?;
    let enabled = snapshot
        .protocol()
        .writer_features()
        .is_some_and(|fs| fs.iter().any(|f| f.to_string() == "timestampNtz"));
    if enabled {
        return Ok(());
    }
    *table = table
        .clone()
        .add_feature()
        .with_feature(TableFeatures::TimestampWithoutTimezone)
        .with_allow_protocol_versions_increase(true)
        .await
        .map_err(|e| Error::delta(name, e))?;
    Ok(())
}

pub async fn commit_adds(
    table: &mut DeltaTable,
    name: &str,
    adds: Vec<Add>,
    widened: Option<&ArrowSchema>,
    txn: Option<&Txn>,
    info: serde_json::Map<String, serde_json::Value>,
) -> Result<Option<i64>> {
    let txns: Vec<Txn> = txn.into_iter().cloned().collect();
    commit_actions(table, name, adds, widened, &txns, info).await
}

/// Commits only transactions (no data): moves a flow's watermarks when its sources advanced
/// but it has no rows to write. Nothing is committed when every one is committed already.
pub async fn commit_txns(table: &mut DeltaTable, name: &str, txns: &[Txn]) -> Result<Option<i64>> {
    commit_actions(table, name, Vec::new(), None, txns, serde_json::Map::new()).await
}

/// Commits transactions unconditionally, lower versions included: after a restore, a flow
/// target's watermarks go back to their values at the restored version (DECISIONS.md
/// section 6). Delta readers take an app id's latest `txn` action.
pub async fn reset_txns(table: &mut DeltaTable, name: &str, txns: &[Txn]) -> Result<Option<i64>> {
    if txns.is_empty() {
        return Ok(None);
    }
    table
        .update_state()
        .await
        .map_err(|e| Error::delta(name, e))?;
    commit_unchecked(table, name, Vec::new(), None, txns, serde_json::Map::new()).await
}

async fn all_at_least(table: &DeltaTable, name: &str, txns: &[Txn]) -> Result<bool> {
    for t in txns {
        if txn_version(table, name, &t.app_id).await? < Some(t.version) {
            return Ok(false);
        }
    }
    Ok(true)
}

async fn commit_actions(
    table: &mut DeltaTable,
    name: &str,
    adds: Vec<Add>,
    widened: Option<&ArrowSchema>,
    txns: &[Txn],
    info: serde_json::Map<String, serde_json::Value>,
) -> Result<Option<i64>> {
    table
        .update_state()
        .await
        .map_err(|e| Error::delta(name, e))?;
    if !txns.is_empty() && all_at_least(table, name, txns).await? {
        return Ok(None);
    }
    commit_unchecked(table, name, adds, widened, txns, info).await
}

async fn commit_unchecked(
    table: &mut DeltaTable,
    name: &str,
    adds: Vec<Add>,
    widened: Option<&ArrowSchema>,
    txns: &[Txn],
    info: serde_json::Map<String, serde_json::Value>,
) -> Result<Option<i64>> {
    if let Some(schema) = widened {
        enable_timestamp_ntz(table, name, schema).await?;
    }
    let snapshot = table.snapshot().map_err(|e| Error::delta(name, e))?;
    let mut actions: Vec<Action> = adds.into_iter().map(Action::Add).collect();
    if let Some(schema) = widened {
        let current = snapshot.metadata().clone();
        let metadata = current
            .with_schema(&delta_schema(schema)?)
            .map_err(|e| Error::delta(name, e.into()))?;
        actions.push(Action::Metadata(metadata));
    }
    let mut props = CommitProperties::default().with_metadata(info);
    for t in txns {
        props = props.with_application_transaction(Transaction::new(&t.app_id, t.version));
    }
    let operation = DeltaOperation::Write {
        mode: SaveMode::Append,
        partition_by: None,
        predicate: None,
    };
    let result = CommitBuilder::from(props)
        .with_actions(actions)
        .build(Some(snapshot), table.log_store(), operation)
        .await;
    match result {
        Ok(done) => {
            let version = done.version() as i64;
            table
                .update_state()
                .await
                .map_err(|e| Error::delta(name, e))?;
            Ok(Some(version))
        }
        Err(e) => {
            let err = Error::delta(name, e);
            // A concurrent writer holding the same transaction won: the work is done.
            if !txns.is_empty() && matches!(err, Error::Conflict(_)) {
                table
                    .update_state()
                    .await
                    .map_err(|e| Error::delta(name, e))?;
                if all_at_least(table, name, txns).await? {
                    return Ok(None);
                }
            }
            Err(err)
        }
    }
}

/// The latest version the table holds for an application id.
pub async fn txn_version(table: &DeltaTable, name: &str, app_id: &str) -> Result<Option<i64>> {
    let snapshot = table.snapshot().map_err(|e| Error::delta(name, e))?;
    snapshot
        .transaction_version(table.log_store().as_ref(), app_id)
        .await
        .map_err(|e| Error::delta(name, e))
}

/// The schema a table's files are written with.
pub fn table_schema(table: &DeltaTable, name: &str) -> Result<SchemaRef> {
    Ok(Arc::new(crate::ops::arrow_schema(table, name)?))
}
