//! End-to-end tests of the `strata` binary on real lakehouses in temp folders.

mod cli;
mod concurrency;
mod doctor;
mod ingest;
mod ingest_crash;
mod ingest_more;
mod interop;
mod pipeline;
mod pipeline_crash;
mod pipeline_more;
mod quickstart;
mod registry;
mod timestamps;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn strata_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_strata"))
}

/// Runs `strata --lakehouse DIR args...`.
pub fn strata(dir: &Path, args: &[&str]) -> Output {
    Command::new(strata_bin())
        .arg("--lakehouse")
        .arg(dir)
        .args(args)
        .env_remove("STRATA_LAKEHOUSE")
        .output()
        .expect("strata runs")
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs and requires success; returns stdout.
pub fn ok(dir: &Path, args: &[&str]) -> String {
    let o = strata(dir, args);
    assert!(o.status.success(), "strata {args:?} failed: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// Runs and requires failure with exit code 1; returns stderr.
pub fn fails(dir: &Path, args: &[&str]) -> String {
    let o = strata(dir, args);
    assert_eq!(
        o.status.code(),
        Some(1),
        "strata {args:?} should fail: {}",
        text(&o)
    );
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// A new lakehouse in a temp folder.
pub fn lakehouse() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("lh");
    let o = Command::new(strata_bin())
        .arg("init")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    (tmp, dir)
}

/// Rows of a query as JSON objects.
pub fn query(dir: &Path, sql: &str) -> Vec<serde_json::Value> {
    let out = ok(dir, &["--format", "json", "sql", sql]);
    let v: serde_json::Value =
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    v.as_array().cloned().unwrap_or_default()
}

/// The newest version of a table, read from its log folder.
pub fn latest_version(table_dir: &Path) -> i64 {
    std::fs::read_dir(table_dir.join("_delta_log"))
        .unwrap()
        .filter_map(|e| {
            let n = e.ok()?.file_name().to_string_lossy().to_string();
            n.strip_suffix(".json")?.parse::<i64>().ok()
        })
        .max()
        .unwrap()
}

/// The Python interpreter with deltalake and DuckDB that `./test.sh` installs.
pub fn python() -> String {
    std::env::var("STRATA_TEST_PYTHON").expect(
        "STRATA_TEST_PYTHON is not set: run the tests with ./test.sh, which installs Python deltalake and DuckDB",
    )
}

/// Runs a Python script (its text, with `args` as `sys.argv[1:]`) with the test interpreter; it
/// prints JSON on its last line.
///
/// A script that runs to its end leaves through `os._exit(0)` after flushing its output: Python
/// deltalake's native threads can abort the interpreter while it tears down ("terminate called
/// without an active exception"), after every check has passed. A script that raises still exits
/// non-zero, before reaching that line.
pub fn py(script: &str, args: &[&str]) -> serde_json::Value {
    let script = format!(
        "{script}\nimport os as _os, sys as _sys\n_sys.stdout.flush()\n_sys.stderr.flush()\n_os._exit(0)\n"
    );
    let o = Command::new(python())
        .arg("-c")
        .arg(&script)
        .args(args)
        .env("PYTHONUNBUFFERED", "1")
        .output()
        .expect("python runs");
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        o.status.success(),
        "python failed: {out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let last = out.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// This crate's folder, from the environment `cargo test` runs the tests in: the value compiled
/// in is where the binary was built, which a build cache shared between clones can make another
/// clone's folder.
pub fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}
