//! Physical floors for the benchmark harness (`bench/run.sh`): what the hardware does for the
//! same job with nothing but arrow, parquet and serde_json, on one thread. They share no code
//! with Strata's engine, so a ratio to them says how far Strata is from the machine.
//!
//! ```text
//! floors ingest  --data DIR --out DIR [--compression zstd1|snappy]
//!                                          NDJSON -> bronze's shape (strings) -> Parquet zstd(1)
//! floors merge   --table DIR --changes DIR --out DIR
//!                                          rewrite only the target files holding changed keys
//! floors commits --dir DIR [--n 1200]      fsync'd small writes (a commit each) per second
//! floors load    --url URL ...             an HTTP load generator (see http.rs)
//! floors serve   --port P --dir DIR        a minimal axum server with the registry's and push
//!                                          ingest's routes (see http.rs)
//! ```
//!
//! Each prints one JSON line: `{"floor": ..., "op_s": ..., "rows": ...}`.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray, StringBuilder};
use arrow::compute::{concat_batches, filter_record_batch};
use arrow::datatypes::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde_json::Value;

mod http;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// The data columns of the generated events, as bronze stores them (literal text).
const COLUMNS: &[&str] = &[
    "event_id",
    "user_id",
    "event_type",
    "ts",
    "session_id",
    "amount",
    "country",
    "device",
    "props",
    "coupon",
];
const BATCH_ROWS: usize = 8192;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ingest") => ingest(
            &arg(&args, "--data"),
            &arg(&args, "--out"),
            opt(&args, "--compression").as_deref().unwrap_or("zstd1"),
        ),
        Some("merge") => merge(
            &arg(&args, "--table"),
            &arg(&args, "--changes"),
            &arg(&args, "--out"),
        ),
        Some("commits") => commits(
            &arg(&args, "--dir"),
            opt(&args, "--n").map_or(1200, |n| n.parse().unwrap_or(1200)),
        ),
        Some("load") => http::load(http::Load {
            url: opt(&args, "--url").unwrap_or_default(),
            method: opt(&args, "--method").unwrap_or_else(|| "GET".into()),
            body: match (opt(&args, "--body"), opt(&args, "--body-template")) {
                (Some(file), _) => fs::read_to_string(&file).ok(),
                (None, template) => template,
            },
            content_type: opt(&args, "--content-type")
                .unwrap_or_else(|| "application/vnd.schemaregistry.v1+json".into()),
            concurrency: num(&args, "--concurrency", 8) as usize,
            requests: num(&args, "--requests", 1000),
            warmup: num(&args, "--warmup", 50),
        }),
        Some("serve") => http::serve(num(&args, "--port", 0) as u16, arg(&args, "--dir")),
        _ => Err("usage: floors ingest|merge|commits|load|serve (see the source's header)".into()),
    };
    if let Err(e) = result {
        eprintln!("floors: {e}");
        std::process::exit(1);
    }
}

fn opt(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn num(args: &[String], name: &str, default: u64) -> u64 {
    opt(args, name).map_or(default, |n| n.parse().unwrap_or(default))
}

fn arg(args: &[String], name: &str) -> PathBuf {
    match opt(args, name) {
        Some(v) => PathBuf::from(v),
        None => {
            eprintln!("floors: {name} is required");
            std::process::exit(2);
        }
    }
}

fn props() -> WriterProperties {
    props_with(Compression::ZSTD(ZstdLevel::try_new(1).unwrap_or_default()))
}

fn props_with(compression: Compression) -> WriterProperties {
    WriterProperties::builder()
        .set_compression(compression)
        .build()
}

fn report(floor: &str, started: Instant, rows: u64, extra: Value) {
    let mut v = serde_json::json!({
        "floor": floor,
        "op_s": started.elapsed().as_secs_f64(),
        "rows": rows,
    });
    if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
        m.extend(e);
    }
    println!("{v}");
}

fn sorted_files(dir: &Path, ext: &str) -> Res<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    Ok(files)
}

/// NDJSON to bronze's shape: each field as its literal text (objects as JSON text), a line
/// that is not an object as a corrupt row, plus source file and line; one Parquet file per
/// input file, zstd(1), on this thread.
fn ingest(data: &Path, out: &Path, compression: &str) -> Res<()> {
    let props = match compression {
        "zstd1" => props(),
        "snappy" => props_with(Compression::SNAPPY),
        other => return Err(format!("--compression {other}: expected zstd1 or snappy").into()),
    };
    fs::create_dir_all(out)?;
    let mut fields: Vec<Field> = COLUMNS
        .iter()
        .map(|c| Field::new(*c, DataType::Utf8, true))
        .collect();
    fields.push(Field::new("_corrupt_record", DataType::Utf8, true));
    fields.push(Field::new("_source_file", DataType::Utf8, false));
    fields.push(Field::new("_source_line", DataType::Int64, false));
    let schema = Arc::new(Schema::new(fields));
    let started = Instant::now();
    let (mut rows, mut corrupt, mut bytes) = (0u64, 0u64, 0u64);
    for (i, path) in sorted_files(data, "ndjson")?.iter().enumerate() {
        let uri = format!("file://{}", path.display());
        let file = File::create(out.join(format!("part-{i:05}.parquet")))?;
        let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(props.clone()))?;
        let mut builders: Vec<StringBuilder> =
            (0..=COLUMNS.len()).map(|_| StringBuilder::new()).collect();
        let mut lines: Vec<i64> = Vec::new();
        let reader = BufReader::with_capacity(1 << 20, File::open(path)?);
        for (n, line) in reader.split(b'\n').enumerate() {
            let line = line?;
            bytes += line.len() as u64 + 1;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<serde_json::Map<String, Value>>(&line) {
                Ok(obj) => {
                    for (c, b) in COLUMNS.iter().zip(builders.iter_mut()) {
                        match obj.get(*c) {
                            None | Some(Value::Null) => b.append_null(),
                            Some(Value::String(s)) => b.append_value(s),
                            Some(other) => b.append_value(other.to_string()),
                        }
                    }
                    builders[COLUMNS.len()].append_null();
                }
                Err(_) => {
                    corrupt += 1;
                    for b in builders.iter_mut().take(COLUMNS.len()) {
                        b.append_null();
                    }
                    builders[COLUMNS.len()].append_value(String::from_utf8_lossy(&line));
                }
            }
            lines.push(n as i64 + 1);
            rows += 1;
            if lines.len() == BATCH_ROWS {
                writer.write(&finish(&schema, &mut builders, &mut lines, &uri)?)?;
            }
        }
        if !lines.is_empty() {
            writer.write(&finish(&schema, &mut builders, &mut lines, &uri)?)?;
        }
        writer.close()?;
    }
    let bytes_out: u64 = fs::read_dir(out)?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    report(
        "ingest",
        started,
        rows,
        serde_json::json!({"corrupt": corrupt, "bytes_in": bytes, "bytes_out": bytes_out,
                           "compression": compression}),
    );
    Ok(())
}

fn finish(
    schema: &Arc<Schema>,
    builders: &mut [StringBuilder],
    lines: &mut Vec<i64>,
    uri: &str,
) -> Res<RecordBatch> {
    let n = lines.len();
    let mut cols: Vec<ArrayRef> = builders
        .iter_mut()
        .map(|b| Arc::new(b.finish()) as ArrayRef)
        .collect();
    cols.push(Arc::new(StringArray::from(vec![uri; n])));
    cols.push(Arc::new(Int64Array::from(std::mem::take(lines))));
    Ok(RecordBatch::try_new(schema.clone(), cols)?)
}

/// A data file's smallest and largest `event_id`, from its statistics.
type KeyRange = (String, String);

/// The active data files of a Delta table with their `event_id` min/max statistics, read
/// from its JSON log (no checkpoint: the benchmark's tables have short logs).
fn active_files(table: &Path) -> Res<Vec<(String, Option<KeyRange>)>> {
    let mut active: HashMap<String, Option<KeyRange>> = HashMap::new();
    for commit in sorted_files(&table.join("_delta_log"), "json")? {
        for line in fs::read_to_string(&commit)?.lines() {
            let v: Value = serde_json::from_str(line)?;
            if let Some(add) = v.get("add") {
                let path = add["path"].as_str().unwrap_or_default().to_string();
                let range = add["stats"]
                    .as_str()
                    .and_then(|s| serde_json::from_str::<Value>(s).ok())
                    .and_then(|s| {
                        Some((
                            s["minValues"]["event_id"].as_str()?.to_string(),
                            s["maxValues"]["event_id"].as_str()?.to_string(),
                        ))
                    });
                active.insert(path, range);
            } else if let Some(remove) = v.get("remove") {
                active.remove(remove["path"].as_str().unwrap_or_default());
            }
        }
    }
    let mut files: Vec<_> = active.into_iter().collect();
    files.sort();
    Ok(files)
}

fn read_parquet(path: &Path) -> Res<Vec<RecordBatch>> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path)?)?.build()?;
    Ok(reader.collect::<Result<Vec<_>, _>>()?)
}

/// The MERGE floor: read the changes, then read and rewrite only the target files whose
/// `event_id` range holds a changed key (rows replaced by their change), and write the new
/// keys to one more file. No log is written: this is the data work a MERGE cannot avoid.
fn merge(table: &Path, changes: &Path, out: &Path) -> Res<()> {
    fs::create_dir_all(out)?;
    let started = Instant::now();
    let mut change_batches = Vec::new();
    for (path, _) in active_files(changes)? {
        change_batches.extend(read_parquet(&changes.join(path))?);
    }
    let Some(schema) = change_batches.first().map(|b| b.schema()) else {
        return Err("the changes table is empty".into());
    };
    let changed = concat_batches(&schema, &change_batches)?;
    let keys = key_column(&changed)?;
    let mut pending: HashSet<&str> = (0..keys.len())
        .filter(|&i| keys.is_valid(i))
        .map(|i| keys.value(i))
        .collect();
    let mut sorted: Vec<&str> = pending.iter().copied().collect();
    sorted.sort_unstable();
    let (mut touched, mut bytes_rewritten, mut rows_out) = (0u64, 0u64, 0u64);
    for (path, range) in active_files(table)? {
        // statistics first: a file whose key range holds no changed key is not read
        if let Some((lo, hi)) = &range {
            let i = sorted.partition_point(|k| *k < lo.as_str());
            if sorted.get(i).is_none_or(|k| *k > hi.as_str()) {
                continue;
            }
        }
        let full = table.join(&path);
        let batches = read_parquet(&full)?;
        let mut kept = Vec::new();
        let mut hit = false;
        for b in &batches {
            let k = key_column(b)?;
            let keep: arrow::array::BooleanArray = (0..k.len())
                .map(|i| Some(!(k.is_valid(i) && pending.contains(k.value(i)))))
                .collect();
            hit |= keep.false_count() > 0;
            kept.push(filter_record_batch(b, &keep)?);
        }
        if !hit {
            continue;
        }
        touched += 1;
        bytes_rewritten += fs::metadata(&full)?.len();
        let file = File::create(out.join(format!("rewritten-{touched:05}.parquet")))?;
        let mut w = ArrowWriter::try_new(file, kept[0].schema(), Some(props()))?;
        for b in &kept {
            rows_out += b.num_rows() as u64;
            w.write(b)?;
        }
        // the changed rows of this file's keys go beside its kept rows
        let mask: arrow::array::BooleanArray = (0..keys.len())
            .map(|i| {
                let hit = keys.is_valid(i)
                    && range.as_ref().is_none_or(|(lo, hi)| {
                        keys.value(i) >= lo.as_str() && keys.value(i) <= hi.as_str()
                    });
                Some(hit)
            })
            .collect();
        let mine = filter_record_batch(&changed, &mask)?;
        rows_out += mine.num_rows() as u64;
        w.write(&align(&mine, &kept[0].schema())?)?;
        w.close()?;
        let mk = key_column(&mine)?;
        for i in 0..mk.len() {
            pending.remove(mk.value(i));
        }
    }
    // keys in no file's range: new rows
    let mask: arrow::array::BooleanArray = (0..keys.len())
        .map(|i| Some(keys.is_valid(i) && pending.contains(keys.value(i))))
        .collect();
    let new_rows = filter_record_batch(&changed, &mask)?;
    if new_rows.num_rows() > 0 {
        let file = File::create(out.join("inserted.parquet"))?;
        let mut w = ArrowWriter::try_new(file, new_rows.schema(), Some(props()))?;
        w.write(&new_rows)?;
        w.close()?;
        rows_out += new_rows.num_rows() as u64;
    }
    report(
        "merge",
        started,
        rows_out,
        serde_json::json!({"files_rewritten": touched, "bytes_rewritten": bytes_rewritten}),
    );
    Ok(())
}

fn key_column(b: &RecordBatch) -> Res<&StringArray> {
    let col = b.column_by_name("event_id").ok_or("no event_id column")?;
    col.as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| "event_id is not a string column".into())
}

/// The changes' columns in the target's order (the writer needs the target's schema).
fn align(b: &RecordBatch, schema: &Arc<Schema>) -> Res<RecordBatch> {
    let cols: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| {
            let c = b
                .column_by_name(f.name())
                .ok_or_else(|| format!("changes lack {}", f.name()))?;
            Ok(arrow::compute::cast(c, f.data_type())?)
        })
        .collect::<Res<_>>()?;
    Ok(RecordBatch::try_new(schema.clone(), cols)?)
}

/// fsync'd small writes: `n` files of about a Delta commit's size, each made durable (file
/// and folder) before the next, as a commit must be.
fn commits(dir: &Path, n: u64) -> Res<()> {
    fs::create_dir_all(dir)?;
    let body = vec![b'x'; 1024];
    let folder = File::open(dir)?;
    let started = Instant::now();
    for i in 0..n {
        let mut f = File::create_new(dir.join(format!("{i:020}.json")))?;
        f.write_all(&body)?;
        f.sync_all()?;
        folder.sync_all()?;
    }
    let secs = started.elapsed().as_secs_f64();
    report(
        "commits",
        started,
        n,
        serde_json::json!({"commits_per_s": n as f64 / secs.max(1e-9)}),
    );
    Ok(())
}
