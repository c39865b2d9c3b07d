//! Finding and opening source files, through `object_store`.
//!
//! A source is a file, a folder (walked recursively) or a glob. Names starting with `_` or `.`
//! are skipped (at any level below the source root), files are identified by their canonical
//! URI (symlinks, `.` and `..` resolved) and listed in lexicographic URI order
//! (DECISIONS.md section 3).

use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, SubsecRound, Utc};
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use url::Url;

use crate::error::{Error, Result};

/// How a file's records are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InputFormat {
    /// One JSON object per line (`.ndjson`, `.jsonl`).
    Ndjson,
    /// A JSON array of objects, or a sequence of objects (`.json`).
    Json,
    Csv,
    Parquet,
    Avro,
}

impl InputFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            InputFormat::Ndjson => "ndjson",
            InputFormat::Json => "json",
            InputFormat::Csv => "csv",
            InputFormat::Parquet => "parquet",
            InputFormat::Avro => "avro",
        }
    }

    /// Binary container formats carry their own types and are not decoded line by line.
    pub fn is_text(self) -> bool {
        matches!(
            self,
            InputFormat::Ndjson | InputFormat::Json | InputFormat::Csv
        )
    }
}

impl FromStr for InputFormat {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "ndjson" | "jsonl" | "jsonlines" => Ok(InputFormat::Ndjson),
            "json" => Ok(InputFormat::Json),
            "csv" | "tsv" => Ok(InputFormat::Csv),
            "parquet" => Ok(InputFormat::Parquet),
            "avro" => Ok(InputFormat::Avro),
            other => Err(Error::InvalidInput(format!(
                "unknown input format '{other}': expected ndjson, json, csv, parquet or avro"
            ))),
        }
    }
}

/// How a file's bytes are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// A file to ingest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Canonical `file://` URI: the file's identity in the ledger and `_source_file`.
    pub uri: String,
    /// Where the object store finds it.
    pub location: ObjectPath,
    pub size: u64,
    pub modified_at: DateTime<Utc>,
    pub format: Option<InputFormat>,
    pub compression: Compression,
    /// Tab-separated (`.tsv`): the default delimiter is a tab.
    pub tab_separated: bool,
}

/// Splits `name` into format and compression by its extensions.
pub fn detect(name: &str) -> (Option<InputFormat>, Compression, bool) {
    let lower = name.to_ascii_lowercase();
    let (stem, compression) = if let Some(s) = lower.strip_suffix(".gz") {
        (s, Compression::Gzip)
    } else if let Some(s) = lower.strip_suffix(".gzip") {
        (s, Compression::Gzip)
    } else if let Some(s) = lower.strip_suffix(".zst") {
        (s, Compression::Zstd)
    } else if let Some(s) = lower.strip_suffix(".zstd") {
        (s, Compression::Zstd)
    } else {
        (lower.as_str(), Compression::None)
    };
    let ext = stem.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    let format = match ext {
        "ndjson" | "jsonl" => Some(InputFormat::Ndjson),
        "json" => Some(InputFormat::Json),
        "csv" | "tsv" => Some(InputFormat::Csv),
        "parquet" | "parq" => Some(InputFormat::Parquet),
        "avro" => Some(InputFormat::Avro),
        _ => None,
    };
    (format, compression, ext == "tsv")
}

fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

fn hidden(name: &str) -> bool {
    name.starts_with('_') || name.starts_with('.')
}

/// A source location, resolved: the store to read it through and the files it names.
#[derive(Clone)]
pub struct Source {
    pub store: Arc<dyn ObjectStore>,
    /// What the user gave, for messages and lineage.
    pub given: String,
    /// The canonical location (folder, file or glob) as a URL, for lineage.
    pub location: String,
    root: PathBuf,
    pattern: Option<glob::Pattern>,
    /// Exactly these files (of `root`), when the source was given as a list.
    only: Option<Vec<PathBuf>>,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("location", &self.location)
            .finish()
    }
}

impl Source {
    /// Resolves a local path, `file://` URL or glob.
    pub fn resolve(given: &str) -> Result<Self> {
        let raw = if let Ok(u) = Url::parse(given)
            && u.scheme().len() > 1
        {
            if u.scheme() != "file" {
                return Err(Error::InvalidInput(format!(
                    "source {given}: only local paths and file:// URLs are supported by this \
                     build (object storage is not built in yet)"
                )));
            }
            u.to_file_path()
                .map_err(|_| Error::InvalidInput(format!("source {given}: not a file path")))?
        } else {
            PathBuf::from(given)
        };
        let absolute = if raw.is_absolute() {
            raw
        } else {
            std::env::current_dir()
                .map_err(|e| Error::Io(format!("reading the current folder: {e}")))?
                .join(raw)
        };
        let text = absolute.to_string_lossy().to_string();
        let (root, pattern) = if is_glob(&text) {
            // The literal folders before the first component with a wildcard.
            let mut base = PathBuf::new();
            let mut rest = PathBuf::new();
            let mut in_glob = false;
            for c in absolute.components() {
                let s = c.as_os_str().to_string_lossy();
                if !in_glob && !is_glob(&s) {
                    base.push(c);
                } else {
                    in_glob = true;
                    rest.push(c);
                }
            }
            let base = canonical_dir(&base, given)?;
            let full = base.join(&rest);
            let pattern = glob::Pattern::new(&full.to_string_lossy()).map_err(|e| {
                Error::InvalidInput(format!("source {given} is not a valid glob: {e}"))
            })?;
            (base, Some(pattern))
        } else {
            let root = std::fs::canonicalize(&absolute).map_err(|e| {
                Error::NotFound(format!(
                    "source {given} does not exist or cannot be read: {e}"
                ))
            })?;
            (root, None)
        };
        let location = match &pattern {
            Some(p) => format!("file://{}", p.as_str()),
            None => file_uri(&root)?,
        };
        Ok(Source {
            store: Arc::new(LocalFileSystem::new()),
            given: given.to_string(),
            location,
            root,
            pattern,
            only: None,
        })
    }

    /// Exactly the files `files` in folder `dir` (push ingest's spool files of one group
    /// commit): lineage names the folder.
    pub fn of_files(dir: &Path, files: Vec<PathBuf>) -> Result<Self> {
        let root = canonical_dir(dir, &dir.to_string_lossy())?;
        Ok(Source {
            store: Arc::new(LocalFileSystem::new()),
            given: dir.to_string_lossy().to_string(),
            location: file_uri(&root)?,
            root,
            pattern: None,
            only: Some(files),
        })
    }

    /// The files the source names, in lexicographic URI order, without duplicates.
    pub async fn list(&self, format: Option<InputFormat>) -> Result<Vec<SourceFile>> {
        let mut out = Vec::new();
        if let Some(files) = &self.only {
            for f in files {
                let canonical = std::fs::canonicalize(f)
                    .map_err(|e| Error::NotFound(format!("{} cannot be read: {e}", f.display())))?;
                let meta = std::fs::metadata(&canonical)
                    .map_err(|e| Error::Io(format!("reading {}: {e}", f.display())))?;
                out.push(self.file(f, &canonical, meta.len(), modified(&meta)?, format)?);
            }
            out.sort_by(|a, b| a.uri.cmp(&b.uri));
            out.dedup_by(|a, b| a.uri == b.uri);
            return Ok(out);
        }
        if self.root.is_file() {
            let meta = std::fs::metadata(&self.root)
                .map_err(|e| Error::Io(format!("reading {}: {e}", self.root.display())))?;
            out.push(self.file(&self.root, &self.root, meta.len(), modified(&meta)?, format)?);
            return Ok(out);
        }
        let prefix = object_path(&self.root)?;
        let metas: Vec<object_store::ObjectMeta> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| Error::Io(format!("listing {}: {e}", self.root.display())))?;
        for meta in metas {
            let abs = PathBuf::from(format!("/{}", meta.location));
            let rel = abs.strip_prefix(&self.root).unwrap_or(&abs);
            if rel.components().any(|c| match c {
                Component::Normal(n) => hidden(&n.to_string_lossy()),
                _ => false,
            }) {
                continue;
            }
            if let Some(p) = &self.pattern
                && !p.matches_path(&abs)
            {
                continue;
            }
            let canonical = match std::fs::canonicalize(&abs) {
                Ok(c) => c,
                // removed between listing and now
                Err(_) => continue,
            };
            out.push(self.file(&abs, &canonical, meta.size, meta.last_modified, format)?);
        }
        out.sort_by(|a, b| a.uri.cmp(&b.uri));
        out.dedup_by(|a, b| a.uri == b.uri);
        Ok(out)
    }

    fn file(
        &self,
        listed: &Path,
        canonical: &Path,
        size: u64,
        modified_at: DateTime<Utc>,
        format: Option<InputFormat>,
    ) -> Result<SourceFile> {
        let name = listed
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let (detected, compression, tab_separated) = detect(&name);
        Ok(SourceFile {
            uri: file_uri(canonical)?,
            location: object_path(canonical)?,
            size,
            // The ledger keeps microseconds; compare like with like.
            modified_at: modified_at.trunc_subsecs(6),
            format: format.or(detected),
            compression,
            tab_separated,
        })
    }

    /// Size and modification time of a file now (for `--watch`'s settle check).
    pub async fn stat(&self, file: &SourceFile) -> Result<(u64, DateTime<Utc>)> {
        let meta = self
            .store
            .head(&file.location)
            .await
            .map_err(|e| Error::Io(format!("reading {}: {e}", file.uri)))?;
        Ok((meta.size, meta.last_modified))
    }
}

fn canonical_dir(base: &Path, given: &str) -> Result<PathBuf> {
    std::fs::canonicalize(base).map_err(|e| {
        Error::NotFound(format!(
            "source {given}: folder {} does not exist or cannot be read: {e}",
            base.display()
        ))
    })
}

fn modified(meta: &std::fs::Metadata) -> Result<DateTime<Utc>> {
    let t = meta
        .modified()
        .map_err(|e| Error::Io(format!("reading a modification time: {e}")))?;
    Ok(DateTime::<Utc>::from(t))
}

/// The `file://` URI of an absolute path.
pub fn file_uri(path: &Path) -> Result<String> {
    Url::from_file_path(path)
        .map(|u| u.to_string())
        .map_err(|_| Error::InvalidInput(format!("{} is not an absolute path", path.display())))
}

fn object_path(path: &Path) -> Result<ObjectPath> {
    ObjectPath::from_absolute_path(path)
        .map_err(|e| Error::InvalidInput(format!("{}: {e}", path.display())))
}

/// Reads an object's first `size` bytes in large ranges, from a blocking thread.
pub struct ObjectReader {
    store: Arc<dyn ObjectStore>,
    location: ObjectPath,
    uri: String,
    size: u64,
    pos: u64,
    buf: Bytes,
    handle: tokio::runtime::Handle,
}

const RANGE: u64 = 4 * 1024 * 1024;

impl ObjectReader {
    /// Must be called inside the runtime; the reader is then used on a blocking thread.
    pub fn new(store: Arc<dyn ObjectStore>, file: &SourceFile) -> Self {
        ObjectReader {
            store,
            location: file.location.clone(),
            uri: file.uri.clone(),
            size: file.size,
            pos: 0,
            buf: Bytes::new(),
            handle: tokio::runtime::Handle::current(),
        }
    }
}

impl Read for ObjectReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.buf.is_empty() {
            if self.pos >= self.size {
                return Ok(0);
            }
            let end = (self.pos + RANGE).min(self.size);
            let fetch = self.store.get_range(&self.location, self.pos..end);
            self.buf = self.handle.block_on(fetch).map_err(|e| {
                io::Error::other(format!(
                    "reading bytes {}..{end} of {}: {e}",
                    self.pos, self.uri
                ))
            })?;
            if self.buf.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "{} ended at byte {} (listed with {} bytes)",
                        self.uri, self.pos, self.size
                    ),
                ));
            }
            self.pos += self.buf.len() as u64;
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        let _ = self.buf.split_to(n);
        Ok(n)
    }
}

/// Hashes the bytes that pass through it (the file's raw, compressed bytes).
pub struct HashingReader<R> {
    inner: R,
    hasher: blake3::Hasher,
    bytes: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: blake3::Hasher::new(),
            bytes: 0,
        }
    }

    /// `blake3:<hex>` of everything read.
    pub fn finish(&self) -> (String, u64) {
        (
            format!("blake3:{}", self.hasher.finalize().to_hex()),
            self.bytes,
        )
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(out)?;
        self.hasher.update(&out[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Wraps a raw byte stream in its decompressor.
pub fn decompress<'a>(
    raw: impl Read + Send + 'a,
    compression: Compression,
) -> io::Result<Box<dyn Read + Send + 'a>> {
    Ok(match compression {
        Compression::None => Box::new(raw),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(raw)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(raw)?),
    })
}
