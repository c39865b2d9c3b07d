//! A read-counting object store: how many bytes a run fetched from each file. Pipelines open
//! their sources through it when `STRATA_TRACE_READS` is set and record the counts with the flow
//! run, which is how a test proves that a flow reads each source file once.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use deltalake::DeltaTable;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};
use url::Url;

use crate::error::{Error, Result};

/// Bytes fetched per path, shared by every handle of one counting store.
#[derive(Debug, Clone, Default)]
pub struct ReadCounter(Arc<Mutex<BTreeMap<String, u64>>>);

impl ReadCounter {
    fn add(&self, path: &Path, bytes: u64) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry(path.to_string()).or_default() += bytes;
    }

    /// The counts so far: path (relative to the store's root) to bytes.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// An object store that counts the bytes read through it.
#[derive(Debug)]
pub struct CountingStore {
    inner: Arc<dyn ObjectStore>,
    counter: ReadCounter,
}

impl fmt::Display for CountingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CountingStore({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for CountingStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let r = self.inner.get_opts(location, options).await?;
        self.counter.add(location, r.range.end - r.range.start);
        Ok(r)
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        let out = self.inner.get_ranges(location, ranges).await?;
        self.counter
            .add(location, out.iter().map(|b| b.len() as u64).sum());
        Ok(out)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

/// Opens the latest version of the table at `location` with every read counted in `counter`.
pub async fn open_table_counted(
    location: &Url,
    name: &str,
    counter: &ReadCounter,
) -> Result<DeltaTable> {
    let plain = crate::ops::open_table(location, name).await?;
    let root = plain.log_store().root_object_store(None);
    let store = Arc::new(CountingStore {
        inner: root,
        counter: counter.clone(),
    });
    let mut table = deltalake::DeltaTableBuilder::from_url(location.clone())
        .map_err(|e| Error::delta(name, e))?
        .with_storage_backend(store, location.clone())
        .build()
        .map_err(|e| Error::delta(name, e))?;
    table.load().await.map_err(|e| Error::delta(name, e))?;
    Ok(table)
}
