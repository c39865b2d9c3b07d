//! Typed sources: Parquet and Avro container files land with their own types, through the one
//! map in `strata_core::source_types` (DECISIONS.md section 2).
//!
//! A typed file is read in Arrow batches, never whole: Parquet through the async reader over
//! `object_store` (a row group's pages at a time), Avro through `arrow-avro` over the same
//! ranged reader the text formats use. Its records are counted independently from the footer
//! (Parquet) or the block headers (Avro). When a file cannot be read past some record, the
//! records from there to the independent count land as corrupt rows that name the file, the
//! record and the error: nothing disappears silently.

use std::collections::HashMap;
use std::io::{BufReader, Read};
use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray, new_null_array};
use arrow::datatypes::FieldRef;
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use futures::FutureExt;
use futures::StreamExt;
use futures::future::BoxFuture;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::{
    AsyncFileReader, ParquetRecordBatchStream, ParquetRecordBatchStreamBuilder,
};
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use strata_core::source_types::{json_values, to_delta};
use tokio::runtime::Handle;

use crate::bronze::{
    BuiltChunk, Columns, Place, RESCUED_DATA, Rescued, SystemValues, is_system_column,
};
use crate::decode::count::Count;
use crate::error::Result;
use crate::source::SourceFile;

/// Rows per Arrow batch read from a typed file.
pub const BATCH_ROWS: usize = 8192;

/// A pull reader of a typed file's records, in order, as Arrow batches of the source's types.
pub trait TypedReader: Send {
    /// The next batch, or None at the end. An Err is the reason the rest of the file cannot be
    /// read; the caller stops reading it.
    fn next_batch(&mut self) -> std::result::Result<Option<RecordBatch>, String>;
}

/// Parquet's view of a source file: ranged reads through `object_store`.
struct ParquetObject {
    store: Arc<dyn ObjectStore>,
    location: ObjectPath,
    size: u64,
}

impl AsyncFileReader for ParquetObject {
    fn get_bytes(
        &mut self,
        range: std::ops::Range<u64>,
    ) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        let store = self.store.clone();
        let location = self.location.clone();
        async move {
            store
                .get_range(&location, range)
                .await
                .map_err(|e| ParquetError::External(Box::new(e)))
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        _options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        let size = self.size;
        async move {
            let metadata = ParquetMetaDataReader::new()
                .load_and_finish(&mut *self, size)
                .await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}

struct ParquetReader {
    stream: ParquetRecordBatchStream<ParquetObject>,
    handle: Handle,
}

impl TypedReader for ParquetReader {
    fn next_batch(&mut self) -> std::result::Result<Option<RecordBatch>, String> {
        self.handle
            .block_on(self.stream.next())
            .transpose()
            .map_err(|e| format!("Parquet data: {e}"))
    }
}

fn parquet_object(store: &Arc<dyn ObjectStore>, file: &SourceFile) -> ParquetObject {
    ParquetObject {
        store: store.clone(),
        location: file.location.clone(),
        size: file.size,
    }
}

/// Opens a Parquet file at record `start`. Called from a blocking thread.
pub fn open_parquet(
    store: &Arc<dyn ObjectStore>,
    file: &SourceFile,
    start: u64,
    handle: &Handle,
) -> std::result::Result<Box<dyn TypedReader>, String> {
    let reader = parquet_object(store, file);
    let stream = handle
        .block_on(ParquetRecordBatchStreamBuilder::new(reader))
        .and_then(|b| {
            b.with_batch_size(BATCH_ROWS)
                .with_offset(usize::try_from(start).unwrap_or(usize::MAX))
                .build()
        })
        .map_err(|e| format!("Parquet footer: {e}"))?;
    Ok(Box::new(ParquetReader {
        stream,
        handle: handle.clone(),
    }))
}

/// A Parquet file's records by its footer's row count. A footer that cannot be read counts one
/// record: the unreadable file.
pub fn count_parquet(store: &Arc<dyn ObjectStore>, file: &SourceFile, handle: &Handle) -> Count {
    let mut reader = parquet_object(store, file);
    match handle.block_on(reader.get_metadata(None)) {
        Ok(m) => Count {
            records: u64::try_from(m.file_metadata().num_rows()).unwrap_or(0),
            bytes: file.size,
            valid_utf8: true,
            error: None,
        },
        Err(e) => Count {
            records: 1,
            bytes: 0,
            valid_utf8: false,
            error: Some(format!("Parquet footer: {e}")),
        },
    }
}

struct AvroReader {
    inner: arrow_avro::reader::Reader<BufReader<Box<dyn Read + Send>>>,
    /// Records still to skip: earlier batches landed them.
    skip: u64,
}

impl TypedReader for AvroReader {
    fn next_batch(&mut self) -> std::result::Result<Option<RecordBatch>, String> {
        loop {
            let batch = match self.inner.next() {
                None => return Ok(None),
                Some(Err(e)) => return Err(format!("Avro data: {e}")),
                Some(Ok(b)) => b,
            };
            let n = batch.num_rows() as u64;
            if self.skip >= n {
                self.skip -= n;
                continue;
            }
            let from = self.skip as usize;
            self.skip = 0;
            return Ok(Some(batch.slice(from, batch.num_rows() - from)));
        }
    }
}

/// Opens an Avro container file (already decompressed from any outer gzip or zstd) at record
/// `start`.
pub fn open_avro(
    stream: Box<dyn Read + Send>,
    start: u64,
) -> std::result::Result<Box<dyn TypedReader>, String> {
    let inner = arrow_avro::reader::ReaderBuilder::new()
        .with_batch_size(BATCH_ROWS)
        .build(BufReader::with_capacity(256 * 1024, stream))
        .map_err(|e| format!("Avro header: {e}"))?;
    Ok(Box::new(AvroReader { inner, skip: start }))
}

/// Lands one typed batch in `columns`' order. Fields with a column land there (cast when the
/// column's type differs; a value that does not fit moves to `_rescued_data`); fields without a
/// column (rescue mode, or names that cannot be columns) go to `_rescued_data` as JSON.
/// `first` is the 0-based index of the batch's first record in its file.
pub fn conform(
    rows: &RecordBatch,
    columns: &Columns,
    uri: &str,
    first: u64,
    batch_id: i64,
    ingested_at_us: i64,
) -> Result<BuiltChunk> {
    let n = rows.num_rows();
    let mut rescued: Vec<Option<Rescued>> = vec![None; n];
    let mut by_column: HashMap<usize, (FieldRef, ArrayRef)> = HashMap::new();
    let schema = rows.schema();
    for (field, array) in schema.fields().iter().zip(rows.columns()) {
        match columns.place(field.name()) {
            Place::Column(i) if !by_column.contains_key(&i) => {
                by_column.insert(i, (field.clone(), array.clone()));
            }
            _ => {
                for (r, v) in json_values(field, array)?.into_iter().enumerate() {
                    if let Some(v) = v {
                        rescued[r]
                            .get_or_insert_with(Rescued::default)
                            .add(field.name(), &v);
                    }
                }
            }
        }
    }
    let mut arrays: Vec<Option<ArrayRef>> = Vec::with_capacity(columns.len());
    for i in 0..columns.len() {
        let target = columns.field(i);
        if is_system_column(target.name()) {
            arrays.push(None);
            continue;
        }
        let Some((field, array)) = by_column.get(&i) else {
            arrays.push(Some(new_null_array(target.data_type(), n)));
            continue;
        };
        let converted = to_delta(field, array, target.data_type())?;
        if !converted.misfits.is_empty() {
            let values = json_values(field, array)?;
            for r in converted.misfits {
                if let Some(v) = &values[r] {
                    rescued[r]
                        .get_or_insert_with(Rescued::default)
                        .add(field.name(), v);
                }
            }
        }
        arrays.push(Some(converted.array));
    }
    let rescued: Vec<Option<String>> = rescued
        .into_iter()
        .map(|r| r.and_then(Rescued::finish))
        .collect();
    let rescued_rows = rescued.iter().filter(|r| r.is_some()).count() as u64;
    let lines: Vec<i64> = (0..n as u64)
        .map(|r| i64::try_from(first + r).unwrap_or(i64::MAX))
        .collect();
    let system = SystemValues {
        rescued: Arc::new(StringArray::from(rescued)),
        corrupt: new_null_array(&arrow::datatypes::DataType::Utf8, n),
        files: Arc::new(StringArray::from(vec![uri; n])),
        lines,
        batch_id,
        ingested_at_us,
    };
    let batch = system.assemble(columns, arrays)?;
    debug_assert!(columns.index_of(RESCUED_DATA).is_some());
    Ok(BuiltChunk {
        batch,
        rows: n as u64,
        rescued_rows,
        corrupt_rows: 0,
    })
}
