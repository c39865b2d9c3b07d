//! The floors run end to end on small inputs: the ingest floor lands every line (a malformed one
//! as a corrupt row) in a Parquet file readable back with the same row count, and the commits
//! floor makes its files.

use std::path::Path;
use std::process::Command;

use parquet::file::reader::{FileReader, SerializedFileReader};
use serde_json::Value;

fn floors(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_floors"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn parquet_rows(dir: &Path) -> i64 {
    let mut rows = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let f = std::fs::File::open(e.unwrap().path()).unwrap();
        rows += SerializedFileReader::new(f)
            .unwrap()
            .metadata()
            .file_metadata()
            .num_rows();
    }
    rows
}

#[test]
fn ingest_floor_lands_every_line() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("a.ndjson"),
        "{\"event_id\":\"e1\",\"amount\":12.50,\"props\":{\"n\":1}}\n\n{broken\n{\"event_id\":\"e2\"}\n",
    )
    .unwrap();
    let out = tmp.path().join("out");
    let r = floors(&[
        "ingest",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(r["floor"], "ingest");
    assert_eq!(r["rows"], 3, "{r}");
    assert_eq!(r["corrupt"], 1, "{r}");
    assert_eq!(parquet_rows(&out), 3);
}

#[test]
fn commits_floor_writes_each_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let r = floors(&["commits", "--n", "5", "--dir", dir.to_str().unwrap()]);
    assert_eq!(r["rows"], 5, "{r}");
    assert!(r["commits_per_s"].as_f64().unwrap() > 0.0, "{r}");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 5);
}
