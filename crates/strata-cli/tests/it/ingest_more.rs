//! More of `strata ingest` end to end, each checked from outside Strata: what it lands reads back
//! the same in Python `deltalake` and DuckDB; `table erase` removes rows and the files that held
//! them, with an audit record; a forced restore reverts ledger batches so their files land again;
//! corrupt records go to quarantine and the run balances; `--watch` lands settled files once and
//! stops on SIGTERM, and runs `--on-failure`; Parquet and Avro land with their own types.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::ingest::{count_ndjson, ingest_json, n as num, url_of};
use crate::*;

/// `strata generate events` into `out`.
fn generate(dir: &Path, out: &Path, rows: u32, files: u32) {
    let rows = rows.to_string();
    let files = files.to_string();
    let g = ok(
        dir,
        &[
            "generate",
            "events",
            "--rows",
            rows.as_str(),
            "--files",
            files.as_str(),
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(
        g.contains(&format!("wrote {rows} rows in {files} files")),
        "{g}"
    );
}

/// A table's folder, from its location in `system.tables` (as the other tests find it).
fn table_dir(dir: &Path, full_name: &str) -> PathBuf {
    let rows = query(
        dir,
        &format!("SELECT location FROM system.tables WHERE full_name = '{full_name}'"),
    );
    let location = rows
        .first()
        .and_then(|r| r["location"].as_str())
        .unwrap_or_else(|| panic!("{full_name} is not in system.tables: {rows:?}"))
        .to_string();
    PathBuf::from(location.trim_start_matches("file://"))
}

/// A count query's `c`, or None while the query fails (the table does not exist yet).
fn try_count(dir: &Path, sql: &str) -> Option<u64> {
    let o = strata(dir, &["--format", "json", "sql", sql]);
    if !o.status.success() {
        return None;
    }
    let v: Value = serde_json::from_slice(&o.stdout).ok()?;
    v.get(0)?.get("c")?.as_u64()
}

fn count(dir: &Path, table: &str) -> u64 {
    query(dir, &format!("SELECT count(*) AS c FROM {table}"))[0]["c"]
        .as_u64()
        .unwrap()
}

/// (file, line) to how many rows of `table` carry it.
fn pointers(dir: &Path, table: &str) -> HashMap<(String, u64), u64> {
    let mut m = HashMap::new();
    for row in query(
        dir,
        &format!(
            "SELECT _source_file AS f, _source_line AS l, count(*) AS c FROM {table} GROUP BY 1, 2"
        ),
    ) {
        m.insert(
            (
                row["f"].as_str().unwrap().to_string(),
                row["l"].as_u64().unwrap(),
            ),
            row["c"].as_u64().unwrap(),
        );
    }
    m
}

/// Every expected pointer is in the table exactly once, and nothing else is.
fn assert_exactly_once(got: &HashMap<(String, u64), u64>, expected: &[(String, u64)]) {
    let want: HashSet<(String, u64)> = expected.iter().cloned().collect();
    assert_eq!(want.len(), expected.len(), "the expected pointers repeat");
    for p in expected {
        assert_eq!(
            got.get(p),
            Some(&1),
            "{p:?} is not in the table exactly once"
        );
    }
    let unexpected: Vec<_> = got.keys().filter(|k| !want.contains(*k)).collect();
    assert!(unexpected.is_empty(), "rows from nowhere: {unexpected:?}");
}

/// The `.ndjson` files of a folder, sorted.
fn ndjson_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ndjson"))
        .collect();
    files.sort();
    files
}

/// The actions of one commit of a Delta table, from its log.
fn commit_actions(table_dir: &Path, version: i64) -> Vec<Value> {
    let p = table_dir
        .join("_delta_log")
        .join(format!("{version:020}.json"));
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The paths (relative to the table folder, as the log spells them) of one kind of action.
fn action_paths(actions: &[Value], kind: &str) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| a[kind]["path"].as_str().map(str::to_string))
        .collect()
}

/// Every Parquet file under a table folder (outside `_delta_log`), relative to it.
fn data_files(table_dir: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, d: &Path, out: &mut BTreeSet<String>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                if p.file_name().is_some_and(|name| name != "_delta_log") {
                    walk(root, &p, out);
                }
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.insert(p.strip_prefix(root).unwrap().to_string_lossy().to_string());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(table_dir, table_dir, &mut out);
    out
}

/// Rows of a SQL result as sorted JSON arrays of `cols`, for comparing with other readers.
fn sorted_rows(rows: &[Value], cols: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = rows
        .iter()
        .map(|r| Value::Array(cols.iter().map(|c| r[*c].clone()).collect()).to_string())
        .collect();
    v.sort();
    v
}

fn assert_same_rows(what: &str, got: &[String], want: &[String]) {
    if let Some(i) = (0..got.len().min(want.len())).find(|&i| got[i] != want[i]) {
        panic!(
            "{what}: first difference at sorted row {i}:\n  got  {}\n  want {}",
            got[i], want[i]
        );
    }
    assert_eq!(got.len(), want.len(), "{what}: the row counts differ");
}

/// Reads a Strata table with Python `deltalake` and with DuckDB's delta extension.
const INTEROP_READ: &str = r##"
import json, os, sys
import duckdb
from deltalake import DeltaTable
path, ext = sys.argv[1], sys.argv[2]
cols = ["_source_file", "_source_line", "event_id", "amount", "props", "_corrupt_record", "_batch_id"]
t = DeltaTable(path).to_pyarrow_table()
us = t.column("_ingested_at").cast("int64").to_pylist()
py_rows = [[r[c] for c in cols] + [u] for r, u in zip(t.select(cols).to_pylist(), us)]
con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
con.execute(f"LOAD '{ext}'")
scan = f"delta_scan('{path}')"
duck_count = con.execute(f"SELECT count(*) FROM {scan}").fetchone()[0]
duck_rows = [list(r) for r in con.execute(
    f"SELECT {', '.join(cols)}, epoch_us(_ingested_at) FROM {scan}").fetchall()]
print(json.dumps({"python": {"count": t.num_rows, "rows": py_rows},
                  "duckdb": {"count": duck_count, "rows": duck_rows}}))
sys.stdout.flush()
os._exit(0)
"##;

#[test]
fn ingested_events_read_back_identically_in_python_deltalake_and_duckdb() {
    let (tmp, dir) = lakehouse();
    let data = tmp.path().join("landing");
    generate(&dir, &data, 2000, 4);
    // two batches, so rows differ in _batch_id and _ingested_at
    let r = ingest_json(
        &dir,
        &[
            data.to_str().unwrap(),
            "--into",
            "bronze.events",
            "--max-files",
            "2",
        ],
    );
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(num(&r, "batches"), 2, "{r}");
    let rows = count(&dir, "bronze.events");
    assert_eq!(rows, 2000);
    assert_eq!(rows, num(&r, "records_landed"));

    let cols = [
        "_source_file",
        "_source_line",
        "event_id",
        "amount",
        "props",
        "_corrupt_record",
        "_batch_id",
        "us",
    ];
    let strata_rows = sorted_rows(
        &query(
            &dir,
            "SELECT _source_file, _source_line, event_id, amount, props, _corrupt_record, \
             _batch_id, CAST(_ingested_at AS BIGINT) AS us FROM bronze.events",
        ),
        &cols,
    );
    assert_eq!(strata_rows.len() as u64, rows);

    let path = table_dir(&dir, "lakehouse.bronze.events");
    let ext = std::env::var("STRATA_DUCKDB_DELTA").expect("run the tests with ./test.sh");
    let read = py(INTEROP_READ, &[path.to_str().unwrap(), ext.as_str()]);
    for reader in ["python", "duckdb"] {
        assert_eq!(read[reader]["count"], rows, "{reader} counts other rows");
        let mut got: Vec<String> = read[reader]["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.to_string())
            .collect();
        got.sort();
        assert_same_rows(reader, &got, &strata_rows);
        // the multiset of pointers: each (file, line) once, for this reader too
        let distinct: HashSet<(String, String)> = read[reader]["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r[0].to_string(), r[1].to_string()))
            .collect();
        assert_eq!(distinct.len() as u64, rows, "{reader}: a pointer repeats");
    }
}

/// Scans every Parquet file under a table folder, referenced or not, for a value.
const SCAN_VALUE: &str = r##"
import json, os, sys
import pyarrow.parquet as pq
root, column, value = sys.argv[1], sys.argv[2], sys.argv[3]
files, hits = 0, []
for d, dirs, names in os.walk(root):
    dirs[:] = [x for x in dirs if x != "_delta_log"]
    for name in sorted(names):
        if not name.endswith(".parquet"):
            continue
        files += 1
        t = pq.read_table(os.path.join(d, name))
        if column in t.column_names:
            c = sum(1 for v in t.column(column).to_pylist() if v == value)
            if c:
                hits.append([os.path.relpath(os.path.join(d, name), root), c])
print(json.dumps({"files": files, "hits": hits}))
"##;

/// Rows of the metastore's SQLite file, through the sqlite3 shell.
fn sqlite_json(db: &Path, sql: &str) -> Vec<Value> {
    let o = Command::new("sqlite3")
        .arg("-json")
        .arg(db)
        .arg(sql)
        .output()
        .expect("sqlite3 runs");
    assert!(
        o.status.success(),
        "sqlite3: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    if out.trim().is_empty() {
        return Vec::new();
    }
    serde_json::from_str::<Value>(out.trim())
        .unwrap_or_else(|e| panic!("{e}: {out}"))
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn erase_deletes_the_rows_and_their_data_files_with_an_audit_record() {
    let (tmp, dir) = lakehouse();
    let data = tmp.path().join("landing");
    generate(&dir, &data, 2000, 4);
    // one batch per file: the rows of a user spread over several data files
    let r = ingest_json(
        &dir,
        &[
            data.to_str().unwrap(),
            "--into",
            "bronze.events",
            "--max-files",
            "1",
        ],
    );
    assert_eq!(num(&r, "batches"), 4, "{r}");
    let tdir = table_dir(&dir, "lakehouse.bronze.events");
    let v0 = latest_version(&tdir);
    let total = count(&dir, "bronze.events");

    // the user with rows in the most batches
    let pick = query(
        &dir,
        "SELECT user_id AS u, count(*) AS c, count(DISTINCT _batch_id) AS b FROM bronze.events \
         WHERE user_id IS NOT NULL GROUP BY user_id ORDER BY b DESC, c DESC, user_id LIMIT 1",
    );
    let victim = pick[0]["u"].as_str().unwrap().to_string();
    let victim_rows = pick[0]["c"].as_u64().unwrap();
    assert!(victim_rows >= 2, "{pick:?}");
    let predicate = format!("user_id = '{victim}'");
    let others_sql = format!(
        "SELECT _source_file, _source_line, event_id, user_id, amount, props, _corrupt_record \
         FROM bronze.events WHERE user_id IS NULL OR user_id <> '{victim}'"
    );
    let other_cols = [
        "_source_file",
        "_source_line",
        "event_id",
        "user_id",
        "amount",
        "props",
        "_corrupt_record",
    ];
    let others_before = sorted_rows(&query(&dir, &others_sql), &other_cols);
    assert_eq!(others_before.len() as u64, total - victim_rows);
    let files_before = data_files(&tdir);

    // without a reason: refused, and nothing happens
    let o = strata(
        &dir,
        &[
            "table",
            "erase",
            "bronze.events",
            "--where",
            predicate.as_str(),
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(2),
        "erase without --reason is a usage error: {}",
        text(&o)
    );
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(err.contains("--reason"), "{err}");
    let err = fails(
        &dir,
        &[
            "table",
            "erase",
            "bronze.events",
            "--where",
            predicate.as_str(),
            "--reason",
            " ",
        ],
    );
    assert!(err.contains("reason"), "{err}");
    assert_eq!(
        latest_version(&tdir),
        v0,
        "a refused erasure commits nothing"
    );
    assert_eq!(count(&dir, "bronze.events"), total);

    let out = ok(
        &dir,
        &[
            "--format",
            "json",
            "table",
            "erase",
            "bronze.events",
            "--where",
            predicate.as_str(),
            "--reason",
            "gdpr request 42",
        ],
    );
    let report: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    let versions = json!([v0 + 1, v0 + 2, v0 + 3]);
    assert_eq!(report["rows_deleted"], victim_rows, "{report}");
    assert_eq!(report["versions"], versions, "three commits: {report}");
    assert_eq!(latest_version(&tdir), v0 + 3, "exactly three new versions");

    // the rows are gone; every other row is as it was
    assert_eq!(
        query(
            &dir,
            &format!("SELECT count(*) AS c FROM bronze.events WHERE {predicate}")
        )[0]["c"],
        0
    );
    assert_eq!(count(&dir, "bronze.events"), total - victim_rows);
    let others_after = sorted_rows(&query(&dir, &others_sql), &other_cols);
    assert_same_rows("rows erase should not touch", &others_after, &others_before);

    // the documented sequence: lift append-only, delete, set it again
    let append_only = |v: i64| {
        commit_actions(&tdir, v).iter().find_map(|a| {
            a["metaData"]["configuration"]["delta.appendOnly"]
                .as_str()
                .map(str::to_string)
        })
    };
    assert_eq!(append_only(v0 + 1).as_deref(), Some("false"));
    assert_eq!(append_only(v0 + 3).as_deref(), Some("true"));
    let delete = commit_actions(&tdir, v0 + 2);
    let removed = action_paths(&delete, "remove");
    let added = action_paths(&delete, "add");
    let cdc = action_paths(&delete, "cdc");
    assert!(
        !removed.is_empty(),
        "the delete removed no file: {delete:?}"
    );

    // exactly the files the delete removed (and its change-data files) are gone from disk
    let files_after = data_files(&tdir);
    for p in &removed {
        assert!(files_before.contains(p), "{p} was not a data file before");
        assert!(
            !tdir.join(p).exists(),
            "{p} held erased rows and is still on disk"
        );
    }
    for p in &cdc {
        assert!(
            !tdir.join(p).exists(),
            "change-data file {p} is still on disk"
        );
    }
    for p in &files_before {
        if !removed.contains(p) {
            assert!(
                files_after.contains(p),
                "{p} was deleted but held no erased row"
            );
        }
    }
    for p in &added {
        assert!(
            files_after.contains(p),
            "{p}, written by the delete, is missing"
        );
    }
    assert_eq!(
        report["files_deleted"],
        (removed.len() + cdc.len()) as u64,
        "{report}"
    );
    // no file left under the table holds the erased value
    let scan = py(
        SCAN_VALUE,
        &[tdir.to_str().unwrap(), "user_id", victim.as_str()],
    );
    assert_eq!(
        scan["hits"],
        json!([]),
        "erased values still on disk: {scan}"
    );
    assert!(scan["files"].as_u64().unwrap() > 0, "{scan}");
    // time travel to before the erasure cannot read the deleted files
    fails(
        &dir,
        &[
            "sql",
            format!("SELECT event_id FROM bronze.events VERSION AS OF {v0} WHERE {predicate}")
                .as_str(),
        ],
    );

    // the audit record, in the metastore table `erasures`
    let audit = sqlite_json(
        &dir.join("_strata/metastore.db"),
        "SELECT erasure_id, table_name, predicate, reason, rows_deleted, files_deleted, \
         versions, erased_at FROM erasures",
    );
    assert_eq!(audit.len(), 1, "one erasure recorded: {audit:?}");
    let a = &audit[0];
    assert_eq!(a["erasure_id"], report["erasure_id"]);
    assert_eq!(a["table_name"], "lakehouse.bronze.events");
    assert_eq!(a["predicate"], predicate.as_str());
    assert_eq!(a["reason"], "gdpr request 42");
    assert_eq!(a["rows_deleted"], victim_rows);
    assert_eq!(a["files_deleted"], report["files_deleted"]);
    let recorded: Value = serde_json::from_str(a["versions"].as_str().unwrap()).unwrap();
    assert_eq!(recorded, versions);
    assert!(
        a["erased_at"].as_str().is_some_and(|s| !s.is_empty()),
        "{a}"
    );
}

/// Copies a file into a folder; its URI there.
fn copy_into(file: &Path, folder: &Path) -> String {
    let to = folder.join(file.file_name().unwrap());
    std::fs::copy(file, &to).unwrap();
    url_of(&to)
}

#[test]
fn forced_restore_reverts_ledger_batches_so_their_files_land_again() {
    let (tmp, dir) = lakehouse();
    let generated = tmp.path().join("generated");
    generate(&dir, &generated, 2000, 4);
    let files = ndjson_files(&generated);
    assert_eq!(files.len(), 4);
    let land = tmp.path().join("landing");
    std::fs::create_dir_all(&land).unwrap();
    let land_s = land.to_str().unwrap();

    // set A: version v1
    let a_uris: Vec<String> = files[..2].iter().map(|f| copy_into(f, &land)).collect();
    let (a_lines, _, a_pointers) = count_ndjson(&land);
    let r1 = ingest_json(&dir, &[land_s, "--into", "bronze.events"]);
    assert_eq!(num(&r1, "files_landed"), 2, "{r1}");
    let v1 = r1["last_version"].as_i64().unwrap();
    // set B: new files, version v2
    let b_uris: Vec<String> = files[2..].iter().map(|f| copy_into(f, &land)).collect();
    let (total, _, all_pointers) = count_ndjson(&land);
    let r2 = ingest_json(&dir, &[land_s, "--into", "bronze.events"]);
    assert_eq!(num(&r2, "files_landed"), 2, "{r2}");
    assert_eq!(num(&r2, "files_skipped"), 2, "{r2}");
    let v2 = r2["last_version"].as_i64().unwrap();
    assert!(v2 > v1, "{r1} {r2}");
    assert_eq!(count(&dir, "bronze.events"), total);
    let tdir = table_dir(&dir, "lakehouse.bronze.events");
    let before = latest_version(&tdir);

    // bronze keeps every record: without --force the restore is refused
    let v1_s = v1.to_string();
    let err = fails(
        &dir,
        &[
            "table",
            "restore",
            "bronze.events",
            "--version",
            v1_s.as_str(),
        ],
    );
    assert!(err.contains("--force"), "{err}");
    assert_eq!(
        latest_version(&tdir),
        before,
        "a refused restore commits nothing"
    );
    assert_eq!(count(&dir, "bronze.events"), total);

    let out = ok(
        &dir,
        &[
            "table",
            "restore",
            "bronze.events",
            "--version",
            v1_s.as_str(),
            "--force",
        ],
    );
    assert!(out.contains(&format!("to version {v1}")), "{out}");
    assert_eq!(
        latest_version(&tdir),
        before + 1,
        "restore is one new commit"
    );
    assert_eq!(count(&dir, "bronze.events"), a_lines, "only set A is left");
    assert_exactly_once(&pointers(&dir, "bronze.events"), &a_pointers);

    // the ledger: B's batch reverted, A's still landed
    let ledger = query(
        &dir,
        "SELECT file_uri AS f, status AS s FROM system.ingest_files",
    );
    let statuses = |uri: &str| -> Vec<String> {
        ledger
            .iter()
            .filter(|r| r["f"] == uri)
            .map(|r| r["s"].as_str().unwrap().to_string())
            .collect()
    };
    for uri in &b_uris {
        assert_eq!(statuses(uri.as_str()), ["reverted"], "{uri}: {ledger:?}");
    }
    for uri in &a_uris {
        assert_eq!(statuses(uri.as_str()), ["landed"], "{uri}: {ledger:?}");
    }

    // the same source again: B lands again, A is skipped
    let r3 = ingest_json(&dir, &[land_s, "--into", "bronze.events"]);
    assert_eq!(num(&r3, "files_landed"), 2, "{r3}");
    assert_eq!(num(&r3, "files_skipped"), 2, "{r3}");
    assert_eq!(num(&r3, "records_read"), total - a_lines, "{r3}");
    assert_eq!(num(&r3, "records_landed"), total - a_lines, "{r3}");
    assert_eq!(count(&dir, "bronze.events"), total);
    assert_exactly_once(&pointers(&dir, "bronze.events"), &all_pointers);
    let ledger = query(
        &dir,
        "SELECT file_uri AS f, status AS s FROM system.ingest_files WHERE status = 'landed'",
    );
    for uri in &b_uris {
        assert_eq!(
            ledger.iter().filter(|r| r["f"] == uri.as_str()).count(),
            1,
            "{uri} landed again: {ledger:?}"
        );
    }
    // and once more: nothing
    let r4 = ingest_json(&dir, &[land_s, "--into", "bronze.events"]);
    assert_eq!(num(&r4, "batches"), 0, "{r4}");
    assert_eq!(count(&dir, "bronze.events"), total);
}

/// Standard base64 with padding, for the `_base64` of quarantined bytes.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b1 = chunk.get(1).copied().unwrap_or(0);
        let b2 = chunk.get(2).copied().unwrap_or(0);
        let v = (u32::from(chunk[0]) << 16) | (u32::from(b1) << 8) | u32::from(b2);
        for i in 0..4u32 {
            if i as usize <= chunk.len() {
                out.push(char::from(ALPHABET[((v >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn corrupt_records_go_to_quarantine_and_the_run_balances() {
    let (tmp, dir) = lakehouse();
    let land = tmp.path().join("landing");
    std::fs::create_dir_all(&land).unwrap();
    let file = land.join("mixed.ndjson");
    let content: &[u8] = b"{\"id\":1,\"name\":\"a\"}\n\
        \n\
        {\"id\":2,\"name\":\n\
        {\"id\":3,\"name\":\"c\"}\n\
        {\"id\":4,\"name\":\"\xff\xfe\"}\n   \n\
        [1,2]\n\
        {\"id\":5,\"name\":\"e\"}\n";
    std::fs::write(&file, content).unwrap();
    let uri = url_of(&file);

    // my own count: non-blank lines, and which of them are JSON objects (1-based lines)
    let mut good: Vec<(u64, String)> = Vec::new();
    let mut bad: Vec<(u64, Vec<u8>)> = Vec::new();
    for (i, line) in content.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Value>(line) {
            Ok(v) if v.is_object() => good.push((i as u64 + 1, v["id"].to_string())),
            _ => bad.push((i as u64 + 1, line.to_vec())),
        }
    }
    let non_blank = (good.len() + bad.len()) as u64;
    assert_eq!((good.len(), bad.len()), (3, 3));

    let r = ingest_json(
        &dir,
        &[
            land.to_str().unwrap(),
            "--into",
            "bronze.things",
            "--corrupt",
            "quarantine",
        ],
    );
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(num(&r, "records_read"), non_blank, "{r}");
    assert_eq!(num(&r, "records_landed"), good.len() as u64, "{r}");
    assert_eq!(num(&r, "records_quarantined"), bad.len() as u64, "{r}");
    assert_eq!(num(&r, "records_corrupt"), bad.len() as u64, "{r}");
    assert_eq!(
        num(&r, "records_read"),
        num(&r, "records_landed") + num(&r, "records_quarantined"),
        "the run balances: {r}"
    );

    // bronze holds the good rows only
    let rows = query(
        &dir,
        "SELECT _source_line AS l, id, _corrupt_record AS c, _rescued_data AS r \
         FROM bronze.things ORDER BY _source_line",
    );
    let got: Vec<(u64, String)> = rows
        .iter()
        .map(|row| {
            assert_eq!(row["c"], Value::Null, "{row}");
            assert_eq!(row["r"], Value::Null, "{row}");
            (
                row["l"].as_u64().unwrap(),
                row["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(got, good);

    // quarantine.things holds the bad ones, in the quarantine envelope
    let columns: Vec<String> = query(
        &dir,
        "SELECT column_name FROM system.columns WHERE full_name = 'lakehouse.quarantine.things' \
         ORDER BY ordinal",
    )
    .iter()
    .map(|c| c["column_name"].as_str().unwrap().to_string())
    .collect();
    assert_eq!(
        columns,
        [
            "_quarantine_id",
            "_quarantined_at",
            "_run_id",
            "_stage",
            "_target_table",
            "_flow",
            "_scope",
            "_source_table",
            "_source_version",
            "_source_pointer",
            "_rules",
            "_reason",
            "_record",
        ]
    );
    let q = query(&dir, "SELECT * FROM quarantine.things");
    assert_eq!(q.len(), bad.len(), "{q:?}");
    let by_pointer: HashMap<String, &Value> = q
        .iter()
        .map(|row| (row["_source_pointer"].as_str().unwrap().to_string(), row))
        .collect();
    let ids: HashSet<&str> = q
        .iter()
        .map(|row| row["_quarantine_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), q.len(), "_quarantine_id is unique");
    for (line, raw) in &bad {
        let pointer = format!("{uri}:{line}");
        let row = by_pointer
            .get(&pointer)
            .unwrap_or_else(|| panic!("no quarantine row for {pointer}: {q:?}"));
        assert_eq!(row["_stage"], "ingest", "{row}");
        assert_eq!(row["_target_table"], "lakehouse.bronze.things", "{row}");
        assert_eq!(row["_run_id"], r["run_id"], "{row}");
        assert_eq!(row["_flow"], Value::Null, "{row}");
        assert_eq!(row["_source_table"], Value::Null, "{row}");
        assert_eq!(row["_source_version"], Value::Null, "{row}");
        assert_eq!(row["_rules"], json!([]), "{row}");
        assert!(row["_quarantined_at"].is_string(), "{row}");
        let reason = row["_reason"].as_str().unwrap_or_default();
        assert!(!reason.is_empty(), "{row}");
        match std::str::from_utf8(raw) {
            Ok(text) => assert_eq!(row["_record"], text, "the raw record: {row}"),
            Err(_) => {
                assert!(reason.contains("UTF-8"), "{row}");
                let record: Value = serde_json::from_str(row["_record"].as_str().unwrap()).unwrap();
                assert_eq!(record, json!({ "_base64": base64(raw) }), "{row}");
            }
        }
    }

    // nothing twice on a second run
    let again = ingest_json(
        &dir,
        &[
            land.to_str().unwrap(),
            "--into",
            "bronze.things",
            "--corrupt",
            "quarantine",
        ],
    );
    assert_eq!(num(&again, "batches"), 0, "{again}");
    assert_eq!(count(&dir, "quarantine.things"), bad.len() as u64);
    assert_eq!(count(&dir, "bronze.things"), good.len() as u64);
}

/// A `strata ingest --watch` child, killed if a test fails before it ends.
struct Watch {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Watch {
    fn start(dir: &Path, logs: &Path, tag: &str, args: &[&str]) -> Watch {
        let stdout = logs.join(format!("{tag}.stdout"));
        let stderr = logs.join(format!("{tag}.stderr"));
        let child = Command::new(strata_bin())
            .arg("--lakehouse")
            .arg(dir)
            .arg("ingest")
            .args(args)
            .env_remove("STRATA_LAKEHOUSE")
            .stdin(Stdio::null())
            .stdout(Stdio::from(File::create(&stdout).unwrap()))
            .stderr(Stdio::from(File::create(&stderr).unwrap()))
            .spawn()
            .expect("strata runs");
        Watch {
            child,
            stdout,
            stderr,
        }
    }

    fn output(&self) -> String {
        format!(
            "\n--- stdout:\n{}\n--- stderr:\n{}",
            std::fs::read_to_string(&self.stdout).unwrap_or_default(),
            std::fs::read_to_string(&self.stderr).unwrap_or_default()
        )
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    fn sigterm(&self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits for the child to exit, at most `limit`.
    fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if start.elapsed() > limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Polls `f` until it holds or `limit` has passed; whether it held.
fn poll(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if f() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn watch_lands_each_settled_file_once_and_stops_on_sigterm() {
    let (tmp, dir) = lakehouse();
    let land = tmp.path().join("landing");
    std::fs::create_dir_all(&land).unwrap();
    // --settle is longer than any pause of the slow writer below: a pause longer than it would
    // (by design) let the half-written file land
    let mut watch = Watch::start(
        &dir,
        tmp.path(),
        "watch",
        &[
            land.to_str().unwrap(),
            "--into",
            "bronze.w",
            "--watch",
            "--interval",
            "1s",
            "--settle",
            "4s",
        ],
    );
    let a: String = (0..20)
        .map(|i| format!("{{\"i\":{i},\"v\":\"a-{i}\"}}\n"))
        .collect();
    std::fs::write(land.join("a.ndjson"), a).unwrap();

    // a file written slowly, in pieces that each end inside a line
    let slow_values: Vec<String> = (0..30)
        .map(|i| format!("slow-{i}-{}", "x".repeat(200 + i)))
        .collect();
    let slow: String = slow_values
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{{\"i\":{i},\"v\":\"{v}\"}}\n"))
        .collect();
    let lines: Vec<&str> = slow.split_inclusive('\n').collect();
    let mid = |k: usize| lines[..k].iter().map(|l| l.len()).sum::<usize>() + lines[k].len() / 2;
    let cuts = [0, mid(5), mid(15), mid(25), slow.len()];
    let slow_path = land.join("slow.ndjson");
    {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&slow_path)
            .unwrap();
        for (k, w) in cuts.windows(2).enumerate() {
            f.write_all(&slow.as_bytes()[w[0]..w[1]]).unwrap();
            f.flush().unwrap();
            match k {
                0 | 1 => std::thread::sleep(Duration::from_millis(600)),
                // the last line stays cut off for more than 2 s
                2 => std::thread::sleep(Duration::from_millis(2500)),
                _ => {}
            }
        }
    }
    let slow_uri = url_of(&slow_path);
    std::thread::sleep(Duration::from_millis(300));
    let c: String = (0..10)
        .map(|i| format!("{{\"i\":{i},\"v\":\"c-{i}\"}}\n"))
        .collect();
    std::fs::write(land.join("c.ndjson"), c).unwrap();
    let (total, corrupt, expected) = count_ndjson(&land);
    assert_eq!((total, corrupt), (60, 0));

    let all_in = poll(Duration::from_secs(60), || {
        try_count(&dir, "SELECT count(*) AS c FROM bronze.w") == Some(total)
    });
    assert!(
        all_in,
        "not every record landed within 60 s (rows: {:?}; a half-landed file shows as a corrupt \
         row and then as a changed file): {}",
        try_count(&dir, "SELECT count(*) AS c FROM bronze.w"),
        watch.output()
    );
    assert!(
        watch.running(),
        "the watch ended by itself: {}",
        watch.output()
    );
    watch.sigterm();
    let status = watch.wait(Duration::from_secs(30));
    assert!(
        status.is_some(),
        "still running 30 s after SIGTERM: {}",
        watch.output()
    );
    assert_eq!(
        status.unwrap().code(),
        Some(0),
        "SIGTERM stops watching cleanly: {}",
        watch.output()
    );
    let out = watch.output();
    assert!(out.contains("stopped watching"), "{out}");
    assert!(out.contains("ingested into lakehouse.bronze.w"), "{out}");

    assert_exactly_once(&pointers(&dir, "bronze.w"), &expected);
    let bad = query(
        &dir,
        "SELECT count(_corrupt_record) AS c, count(_rescued_data) AS r FROM bronze.w",
    );
    assert_eq!(bad[0]["c"], 0, "no corrupt rows: {bad:?}");
    assert_eq!(bad[0]["r"], 0, "nothing rescued: {bad:?}");
    let rows = query(
        &dir,
        &format!(
            "SELECT i, v FROM bronze.w WHERE _source_file = '{slow_uri}' ORDER BY _source_line"
        ),
    );
    assert_eq!(rows.len(), slow_values.len());
    for (k, row) in rows.iter().enumerate() {
        assert_eq!(row["i"], k.to_string(), "{row}");
        assert_eq!(
            row["v"],
            slow_values[k].as_str(),
            "a truncated value: {row}"
        );
    }
    // each cycle that found files is a run of its own
    let landing_runs = query(
        &dir,
        "SELECT count(*) AS c FROM system.ingest_runs WHERE status = 'succeeded' AND records_landed > 0",
    )[0]["c"]
        .as_u64()
        .unwrap();
    assert!(landing_runs >= 2, "{landing_runs} cycles landed files");
}

#[test]
fn watch_runs_on_failure_and_goes_on_and_without_it_exits_1() {
    let (tmp, dir) = lakehouse();
    let land = tmp.path().join("landing");
    std::fs::create_dir_all(&land).unwrap();
    let land_s = land.to_str().unwrap();
    std::fs::write(
        land.join("f1.ndjson"),
        "{\"a\":1,\"b\":\"x\"}\n{\"a\":2,\"b\":\"y\"}\n",
    )
    .unwrap();
    // the table gets its columns a and b
    let r = ingest_json(&dir, &[land_s, "--into", "bronze.w"]);
    assert_eq!(num(&r, "records_landed"), 2, "{r}");

    let marker = tmp.path().join("failed.marker");
    let on_failure = format!(
        "printf '%s|%s\\n' \"$STRATA_INGEST_TABLE\" \"$STRATA_INGEST_ERROR\" >> '{}'",
        marker.display()
    );
    let args = [
        land_s,
        "--into",
        "bronze.w",
        "--watch",
        "--interval",
        "1s",
        "--settle",
        "1s",
        "--mode",
        "fail",
    ];
    let mut with_command: Vec<&str> = args.to_vec();
    with_command.extend(["--on-failure", on_failure.as_str()]);
    let mut watch = Watch::start(&dir, tmp.path(), "on-failure", &with_command);

    std::fs::write(land.join("f2.ndjson"), "{\"a\":3,\"b\":\"z\"}\n").unwrap();
    assert!(
        poll(Duration::from_secs(60), || {
            try_count(&dir, "SELECT count(*) AS c FROM bronze.w") == Some(3)
        }),
        "f2 did not land: {}",
        watch.output()
    );
    // a new field under --mode fail: the cycle fails
    std::fs::write(land.join("f3.ndjson"), "{\"a\":4,\"c\":\"new\"}\n").unwrap();
    assert!(
        poll(Duration::from_secs(60), || {
            std::fs::read_to_string(&marker).is_ok_and(|m| !m.is_empty())
        }),
        "--on-failure did not run: {}",
        watch.output()
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        watch.running(),
        "with --on-failure watching goes on: {}",
        watch.output()
    );
    watch.sigterm();
    let status = watch.wait(Duration::from_secs(30));
    assert!(
        status.is_some(),
        "still running 30 s after SIGTERM: {}",
        watch.output()
    );
    assert_eq!(status.unwrap().code(), Some(0), "{}", watch.output());
    let out = watch.output();
    assert!(
        out.contains("new field(s) c"),
        "the error is printed: {out}"
    );
    let calls = std::fs::read_to_string(&marker).unwrap();
    for line in calls.lines() {
        let (table, error) = line.split_once('|').unwrap_or_else(|| panic!("{line}"));
        assert_eq!(table, "lakehouse.bronze.w", "STRATA_INGEST_TABLE: {line}");
        assert!(
            error.contains("f3.ndjson line 1") && error.contains("new field(s) c"),
            "STRATA_INGEST_ERROR: {line}"
        );
    }
    assert_eq!(count(&dir, "bronze.w"), 3, "nothing of f3 landed");
    let c_column = query(
        &dir,
        "SELECT column_name FROM system.columns WHERE full_name = 'lakehouse.bronze.w' \
         AND column_name = 'c'",
    );
    assert!(c_column.is_empty(), "{c_column:?}");

    // without --on-failure the first failing cycle ends the command with exit code 1
    let mut watch = Watch::start(&dir, tmp.path(), "no-on-failure", &args);
    let status = watch.wait(Duration::from_secs(30));
    assert!(
        status.is_some(),
        "a failing watch without --on-failure should end: {}",
        watch.output()
    );
    assert_eq!(status.unwrap().code(), Some(1), "{}", watch.output());
    assert!(
        watch.output().contains("new field(s) c"),
        "{}",
        watch.output()
    );
    assert_eq!(count(&dir, "bronze.w"), 3);
}

/// Writes the Parquet sources: `typed.parquet` (every type of the map, with NULLs),
/// `extra.parquet` (a column the table lacks), `strid.parquet` (`id` as strings) and
/// `bad.parquet` (a valid file whose last 8 bytes, footer length and magic, are overwritten).
const PARQUET_WRITE: &str = r##"
import datetime, decimal, json, os, sys
import pyarrow as pa
import pyarrow.parquet as pq
out = sys.argv[1]
n = 100
utc = datetime.timezone.utc
def col(k, f):
    return [None if (i + k) % 7 == 0 else f(i) for i in range(n)]
schema = pa.schema([
    ("id", pa.int32()), ("big", pa.int64()), ("f", pa.float32()), ("d", pa.float64()),
    ("s", pa.string()), ("b", pa.binary()), ("dec", pa.decimal128(10, 2)), ("day", pa.date32()),
    ("ts", pa.timestamp("ms", tz="UTC")), ("ntz", pa.timestamp("us")), ("tm", pa.time64("us")),
    ("st", pa.struct([("a", pa.int64()), ("b", pa.string())])), ("li", pa.list_(pa.int64())),
    ("mp", pa.map_(pa.string(), pa.int64())),
])
texts = ["", "caf\u00e9", "a\"b", "line\nbreak", "x" * 40]
data = {
    "id": [i - 50 for i in range(n)],
    "big": col(1, lambda i: (i - 50) * 123456789012345),
    "f": col(2, lambda i: i * 0.1 - 3.3),
    "d": col(3, lambda i: i / 7.0 - 1e10),
    "s": col(4, lambda i: "" if i % 5 == 0 else texts[i % 5] + str(i)),
    "b": col(5, lambda i: bytes([i % 256, 0, 255, (i * 7) % 256])),
    "dec": col(6, lambda i: decimal.Decimal(i * 12345 - 500000).scaleb(-2)),
    "day": col(7, lambda i: datetime.date(1900, 1, 1) + datetime.timedelta(days=i * 997)),
    "ts": col(8, lambda i: datetime.datetime(1960, 1, 1, tzinfo=utc)
              + datetime.timedelta(days=i * 271, milliseconds=i * 1234567)),
    "ntz": col(9, lambda i: datetime.datetime(2001, 2, 3, 4, 5, 6)
               + datetime.timedelta(days=i * 13, microseconds=i * 7654321)),
    "tm": col(10, lambda i: (datetime.datetime(2000, 1, 1)
                             + datetime.timedelta(microseconds=i * 863_999_999)).time()),
    "st": col(11, lambda i: {"a": None if i % 5 == 1 else i * 3, "b": None if i % 4 == 2 else "s%d" % i}),
    "li": col(12, lambda i: [] if i % 6 == 1 else [j if j != 2 else None for j in range(i % 5 + 1)]),
    "mp": col(13, lambda i: [] if i % 6 == 2 else [("k%d" % j, None if j == 1 else i * j) for j in range(i % 4 + 1)]),
}
pq.write_table(pa.table(data, schema=schema), os.path.join(out, "typed.parquet"), row_group_size=30)
pq.write_table(pa.table({
    "id": pa.array([1001, 1002, 1003], pa.int32()),
    "s": pa.array(["e1", "e2", "e3"]),
    "extra": pa.array([42, -7, 0], pa.int64()),
}), os.path.join(out, "extra.parquet"))
pq.write_table(pa.table({
    "id": pa.array(["7", "abc", "-12"]),
    "s": pa.array(["t1", "t2", "t3"]),
}), os.path.join(out, "strid.parquet"))
bad = os.path.join(out, "bad.parquet")
pq.write_table(pa.table({"id": pa.array([1, 2, 3], pa.int64())}), bad)
with open(bad, "r+b") as fh:
    fh.seek(-8, os.SEEK_END)
    fh.write(b"\xde\xad\xbe\xefgarb")
print(json.dumps({"rows": n}))
sys.stdout.flush()
"##;

/// The start of the check scripts: reads the Delta table at argv[1] with Python `deltalake`
/// (`fields`: its schema; `t`: the rows of source file argv[3], by `_source_line`).
const CHECK_PRELUDE: &str = r##"
import json, sys
import pyarrow.compute as pc
from deltalake import DeltaTable
table_path, source, uri = sys.argv[1], sys.argv[2], sys.argv[3]

def tname(t):
    if isinstance(t, str):
        return t
    k = t["type"]
    if k == "struct":
        return "struct<" + ",".join(f["name"] + ":" + tname(f["type"]) for f in t["fields"]) + ">"
    if k == "array":
        return "array<" + tname(t["elementType"]) + ">"
    if k == "map":
        return "map<" + tname(t["keyType"]) + "," + tname(t["valueType"]) + ">"
    return json.dumps(t)

dt = DeltaTable(table_path)
fields = json.loads(dt.schema().to_json())["fields"]
t = dt.to_pyarrow_table()
t = t.filter(pc.equal(t.column("_source_file"), uri)).sort_by("_source_line")
"##;

/// Reads a Delta table with Python `deltalake` and compares the rows of one source file with
/// what pyarrow reads from it, column by column: the Delta schema's types, and the mismatches.
const PARQUET_CHECK: &str = r##"
import datetime, json, os, re, sys
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import DeltaTable
src = pq.read_table(source)

def time_us(v):
    # a time of day as text, to microseconds since midnight
    m = re.fullmatch(r"(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?", v)
    if not m:
        return "unparsable: " + v
    frac = (m.group(4) or "").ljust(9, "0")
    return ((int(m.group(1)) * 60 + int(m.group(2))) * 60 + int(m.group(3))) * 1_000_000 + int(frac) // 1000

def norm_src(v):
    if isinstance(v, datetime.time):
        return ((v.hour * 60 + v.minute) * 60 + v.second) * 1_000_000 + v.microsecond
    return v

def norm_delta(v, src_type):
    if v is not None and pa.types.is_time(src_type):
        return time_us(v) if isinstance(v, str) else "not text: " + repr(v)
    return v

mismatches = []
for name in src.column_names:
    if name not in t.column_names:
        mismatches.append({"column": name, "error": "not in the Delta table"})
        continue
    a = [norm_src(v) for v in src.column(name).to_pylist()]
    b = [norm_delta(v, src.schema.field(name).type) for v in t.column(name).to_pylist()]
    bad = [(i, repr(x), repr(y)) for i, (x, y) in enumerate(zip(a, b)) if x != y or type(x) != type(y)]
    if len(a) != len(b) or bad:
        mismatches.append({"column": name, "source_rows": len(a), "delta_rows": len(b), "first": bad[:3]})

print(json.dumps({
    "order": [f["name"] for f in fields],
    "types": {f["name"]: tname(f["type"]) for f in fields},
    "nullable": {f["name"]: f["nullable"] for f in fields},
    "rows": t.num_rows,
    "source_rows": src.num_rows,
    "lines": t.column("_source_line").to_pylist(),
    "rescued_rows": t.num_rows - t.column("_rescued_data").null_count,
    "corrupt_rows": t.num_rows - t.column("_corrupt_record").null_count,
    "mismatches": mismatches,
}))
sys.stdout.flush()
os._exit(0)
"##;

const SYSTEM_COLUMNS: [&str; 6] = [
    "_rescued_data",
    "_corrupt_record",
    "_source_file",
    "_source_line",
    "_ingested_at",
    "_batch_id",
];

/// Checks a typed landing's schema: the Delta types (as Python `deltalake` reads them) and the
/// types `system.columns` shows, per column, and the column order.
fn assert_typed_schema(dir: &Path, table: &str, check: &Value, expected: &[(&str, &str, &str)]) {
    let order: Vec<String> = check["order"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let mut want_order: Vec<String> = SYSTEM_COLUMNS.iter().map(|c| c.to_string()).collect();
    want_order.extend(expected.iter().map(|(c, _, _)| c.to_string()));
    assert_eq!(order, want_order, "system columns first, then the source's");
    assert_eq!(check["types"]["_source_line"], "long");
    assert_eq!(check["types"]["_ingested_at"], "timestamp");
    let shown: HashMap<String, String> = query(
        dir,
        &format!(
            "SELECT column_name AS c, data_type AS t FROM system.columns WHERE full_name = '{table}'"
        ),
    )
    .iter()
    .map(|r| {
        (
            r["c"].as_str().unwrap().to_string(),
            r["t"].as_str().unwrap().replace(' ', ""),
        )
    })
    .collect();
    for (column, delta, strata_type) in expected {
        assert_eq!(
            check["types"][*column], *delta,
            "Delta type of {column}: {}",
            check["types"]
        );
        assert_eq!(
            shown.get(*column).map(String::as_str),
            Some(*strata_type),
            "system.columns type of {column}: {shown:?}"
        );
    }
}

fn assert_lines(check: &Value, rows: u64) {
    let lines: Vec<u64> = check["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(
        lines,
        (0..rows).collect::<Vec<u64>>(),
        "_source_line is the 0-based record index, each once"
    );
}

/// A typed file landed by [`land_typed`], and what the check script found.
struct TypedLanding {
    src: PathBuf,
    rows: u64,
    file: PathBuf,
    uri: String,
    table_dir: PathBuf,
    check: Value,
}

/// Writes sample files with the Python script `write` into `tmp/folder`, lands `file` into
/// `table` (asserting a clean, balanced run), then runs `check` over the table.
fn land_typed(
    tmp: &tempfile::TempDir,
    dir: &Path,
    folder: &str,
    write: &str,
    file: &str,
    table: &str,
    check: &str,
) -> TypedLanding {
    let src = tmp.path().join(folder);
    std::fs::create_dir_all(&src).unwrap();
    let written = py(write, &[src.to_str().unwrap()]);
    let rows = written["rows"].as_u64().unwrap();
    let path = src.join(file);
    let uri = url_of(&path);
    let r = ingest_json(dir, &[path.to_str().unwrap(), "--into", table]);
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(num(&r, "files_landed"), 1, "{r}");
    assert_eq!(num(&r, "records_read"), rows, "{r}");
    assert_eq!(num(&r, "records_landed"), rows, "{r}");
    assert_eq!(num(&r, "records_corrupt"), 0, "{r}");
    assert_eq!(num(&r, "records_rescued"), 0, "{r}");
    let table_dir = table_dir(dir, &format!("lakehouse.{table}"));
    let check = py(
        &format!("{CHECK_PRELUDE}{check}"),
        &[
            table_dir.to_str().unwrap(),
            path.to_str().unwrap(),
            uri.as_str(),
        ],
    );
    TypedLanding {
        src,
        rows,
        file: path,
        uri,
        table_dir,
        check,
    }
}

#[test]
fn parquet_lands_with_its_types_and_rescues_what_does_not_fit() {
    let (tmp, dir) = lakehouse();
    let t = land_typed(
        &tmp,
        &dir,
        "parquet",
        PARQUET_WRITE,
        "typed.parquet",
        "bronze.p",
        PARQUET_CHECK,
    );
    let (src, rows, typed_s, uri, tdir, check) = (
        t.src,
        t.rows,
        t.file.to_str().unwrap().to_string(),
        t.uri,
        t.table_dir,
        t.check,
    );
    let typed_s = typed_s.as_str();
    let expected = [
        ("id", "long", "BIGINT"),
        ("big", "long", "BIGINT"),
        ("f", "double", "DOUBLE"),
        ("d", "double", "DOUBLE"),
        ("s", "string", "STRING"),
        ("b", "binary", "BINARY"),
        ("dec", "decimal(10,2)", "DECIMAL(10,2)"),
        ("day", "date", "DATE"),
        ("ts", "timestamp", "TIMESTAMP"),
        ("ntz", "timestamp_ntz", "TIMESTAMP_NTZ"),
        ("tm", "string", "STRING"),
        ("st", "struct<a:long,b:string>", "STRUCT<a:BIGINT,b:STRING>"),
        ("li", "array<long>", "ARRAY<BIGINT>"),
        ("mp", "map<string,long>", "MAP<STRING,BIGINT>"),
    ];
    assert_typed_schema(&dir, "lakehouse.bronze.p", &check, &expected);
    assert_eq!(check["rows"], rows, "{check}");
    assert_eq!(check["source_rows"], rows);
    assert_eq!(
        check["mismatches"],
        json!([]),
        "values differ from the source"
    );
    assert_lines(&check, rows);
    assert_eq!(check["rescued_rows"], 0);
    assert_eq!(check["corrupt_rows"], 0);
    let files = query(&dir, "SELECT DISTINCT _source_file AS f FROM bronze.p");
    assert_eq!(files.len(), 1);
    assert_eq!(files[0]["f"], uri.as_str(), "the file's file:// URI");

    // again: nothing lands
    let version = latest_version(&tdir);
    let again = ingest_json(&dir, &[typed_s, "--into", "bronze.p"]);
    assert_eq!(num(&again, "batches"), 0, "{again}");
    assert_eq!(num(&again, "files_skipped"), 1, "{again}");
    assert_eq!(num(&again, "records_landed"), 0, "{again}");
    assert_eq!(latest_version(&tdir), version);

    // a column the table lacks, under --mode rescue: to _rescued_data as JSON
    let extra = src.join("extra.parquet");
    let extra_uri = url_of(&extra);
    let r = ingest_json(
        &dir,
        &[
            extra.to_str().unwrap(),
            "--into",
            "bronze.p",
            "--mode",
            "rescue",
        ],
    );
    assert_eq!(num(&r, "records_landed"), 3, "{r}");
    assert_eq!(num(&r, "records_rescued"), 3, "{r}");
    let got = query(
        &dir,
        &format!(
            "SELECT _source_line AS l, id, s, big, _rescued_data AS r FROM bronze.p \
             WHERE _source_file = '{extra_uri}' ORDER BY _source_line"
        ),
    );
    assert_eq!(got.len(), 3, "{got:?}");
    for (i, (id, s, value)) in [(1001, "e1", 42), (1002, "e2", -7), (1003, "e3", 0)]
        .into_iter()
        .enumerate()
    {
        let row = &got[i];
        assert_eq!(row["l"], i as u64, "{row}");
        assert_eq!(row["id"], id, "{row}");
        assert_eq!(row["s"], s, "{row}");
        assert_eq!(row["big"], Value::Null, "{row}");
        let rescued: Value = serde_json::from_str(
            row["r"]
                .as_str()
                .unwrap_or_else(|| panic!("no _rescued_data: {row}")),
        )
        .unwrap();
        assert_eq!(rescued, json!({ "extra": value }), "{row}");
    }
    let extra_column = query(
        &dir,
        "SELECT column_name FROM system.columns WHERE full_name = 'lakehouse.bronze.p' \
         AND column_name = 'extra'",
    );
    assert!(extra_column.is_empty(), "rescue keeps the schema");

    // `id` as strings: what casts lands, what does not is NULL there and rescued
    let strid = src.join("strid.parquet");
    let strid_uri = url_of(&strid);
    let r = ingest_json(&dir, &[strid.to_str().unwrap(), "--into", "bronze.p"]);
    assert_eq!(num(&r, "records_landed"), 3, "{r}");
    assert_eq!(num(&r, "records_rescued"), 1, "{r}");
    let got = query(
        &dir,
        &format!(
            "SELECT id, s, _rescued_data AS r FROM bronze.p WHERE _source_file = '{strid_uri}' \
             ORDER BY _source_line"
        ),
    );
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[0]["id"], 7, "{got:?}");
    assert_eq!(got[0]["r"], Value::Null, "{got:?}");
    assert_eq!(got[1]["id"], Value::Null, "{got:?}");
    assert_eq!(got[1]["s"], "t2", "{got:?}");
    let rescued: Value = serde_json::from_str(got[1]["r"].as_str().unwrap()).unwrap();
    assert_eq!(rescued, json!({ "id": "abc" }));
    assert_eq!(got[2]["id"], -12, "{got:?}");
    assert_eq!(got[2]["r"], Value::Null, "{got:?}");
    let id_type = query(
        &dir,
        "SELECT data_type AS t FROM system.columns WHERE full_name = 'lakehouse.bronze.p' \
         AND column_name = 'id'",
    );
    assert_eq!(id_type[0]["t"], "BIGINT", "the column keeps its type");
    assert_eq!(count(&dir, "bronze.p"), rows + 6);
}

#[test]
fn parquet_with_a_corrupt_footer_lands_as_one_corrupt_row() {
    let (tmp, dir) = lakehouse();
    let src = tmp.path().join("parquet");
    std::fs::create_dir_all(&src).unwrap();
    py(PARQUET_WRITE, &[src.to_str().unwrap()]);
    let bad = src.join("bad.parquet");
    let r = ingest_json(&dir, &[bad.to_str().unwrap(), "--into", "bronze.pbad"]);
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(num(&r, "records_read"), 1, "{r}");
    assert_eq!(num(&r, "records_landed"), 1, "{r}");
    assert_eq!(num(&r, "records_corrupt"), 1, "{r}");
    let rows = query(
        &dir,
        "SELECT _corrupt_record AS c, _rescued_data AS r, _source_file AS f FROM bronze.pbad",
    );
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert!(row["c"].is_string(), "_corrupt_record is set: {row}");
    assert_eq!(row["f"], url_of(&bad), "{row}");
    let rescued: Value = serde_json::from_str(row["r"].as_str().unwrap()).unwrap();
    let keys: Vec<&String> = rescued.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["_corrupt_reason"], "{rescued}");
    let reason = rescued["_corrupt_reason"].as_str().unwrap();
    assert!(
        reason.contains("bad.parquet"),
        "the reason names the file: {reason}"
    );
}

/// Writes the Avro sources with fastavro (deflate): `typed.avro` and `truncated.avro`, a file
/// of many small blocks without its last 20 bytes. Prints the rows and the records per block.
const AVRO_WRITE: &str = r##"
import datetime, decimal, json, os, sys, uuid
import fastavro
out = sys.argv[1]
schema = fastavro.parse_schema({
    "type": "record", "name": "Row", "namespace": "strata.test",
    "fields": [
        {"name": "i", "type": "int"},
        {"name": "l", "type": "long"},
        {"name": "fl", "type": "float"},
        {"name": "db", "type": "double"},
        {"name": "s", "type": "string"},
        {"name": "by", "type": "bytes"},
        {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"]}},
        {"name": "u", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "dec", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}},
        {"name": "dt", "type": {"type": "int", "logicalType": "date"}},
        {"name": "tsm", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "ltu", "type": {"type": "long", "logicalType": "local-timestamp-micros"}},
        {"name": "opt", "type": ["null", "string"]},
        {"name": "rec", "type": {"type": "record", "name": "Rec", "fields": [
            {"name": "x", "type": "long"}, {"name": "y", "type": "string"}]}},
        {"name": "arr", "type": {"type": "array", "items": "long"}},
        {"name": "m", "type": {"type": "map", "values": "long"}},
    ],
})
utc = datetime.timezone.utc
texts = ["", "caf\u00e9", "tab\there", "q\"uote", "z" * 30]
def row(i):
    return {
        "i": (i - 60) * 35791394,
        "l": (i - 60) * 153722867280912930,
        "fl": i * 0.1 - 2.7,
        "db": i / 3.0 - 1e12,
        "s": texts[i % 5] + ("" if i % 5 == 0 else str(i)),
        "by": bytes([i % 256, 0, 255]) * (i % 3),
        "e": "A" if i % 3 else "B",
        "u": str(uuid.UUID(int=(i * 0x9E3779B97F4A7C15F39CC0605CEDC835) % (1 << 128))),
        "dec": decimal.Decimal(i * 98765 - 4000000).scaleb(-2),
        "dt": datetime.date(1950, 1, 1) + datetime.timedelta(days=i * 389),
        "tsm": datetime.datetime(1965, 5, 5, tzinfo=utc) + datetime.timedelta(days=i * 211, milliseconds=i * 987654),
        "ltu": datetime.datetime(2010, 10, 10, 10, 10, 10) + datetime.timedelta(days=i * 17, microseconds=i * 3333333),
        "opt": None if i % 4 == 0 else "o%d" % i,
        "rec": {"x": i * -11, "y": "r%d" % i},
        "arr": list(range(i % 4)),
        "m": {("k%d" % j): i * 100 + j for j in range(i % 3)},
    }
rows = [row(i) for i in range(120)]
with open(os.path.join(out, "typed.avro"), "wb") as fh:
    fastavro.writer(fh, schema, rows, codec="deflate")
multi = os.path.join(out, "multi.avro.tmp")
with open(multi, "wb") as fh:
    fastavro.writer(fh, schema, rows, codec="deflate", sync_interval=600)
with open(multi, "rb") as fh:
    blocks = [b.num_records for b in fastavro.block_reader(fh)]
with open(multi, "rb") as fh:
    data = fh.read()
os.remove(multi)
with open(os.path.join(out, "truncated.avro"), "wb") as fh:
    fh.write(data[:-20])
print(json.dumps({"rows": len(rows), "blocks": blocks}))
sys.stdout.flush()
"##;

/// Reads a Delta table with Python `deltalake` and compares the good rows of one source file
/// with what fastavro reads from it (up to where a truncated file breaks), field by field.
const AVRO_CHECK: &str = r##"
import json, os, sys
import fastavro
import pyarrow.compute as pc
from deltalake import DeltaTable
good = t.filter(pc.is_null(t.column("_corrupt_record")))
corrupt = t.filter(pc.is_valid(t.column("_corrupt_record")))
records = []
with open(source, "rb") as fh:
    try:
        for r in fastavro.reader(fh):
            records.append(r)
    except Exception:
        pass  # a truncated file: the records before the break

def norm_src(name, v):
    if v is None:
        return None
    if name == "u":
        return str(v)
    if name == "m":
        return sorted(v.items())
    return v

def norm_delta(name, v):
    if v is not None and name == "m":
        return sorted(v)
    return v

mismatches = []
for name in (list(records[0].keys()) if records else []):
    if name not in good.column_names:
        mismatches.append({"column": name, "error": "not in the Delta table"})
        continue
    a = [norm_src(name, r[name]) for r in records]
    b = [norm_delta(name, v) for v in good.column(name).to_pylist()]
    bad = [(i, repr(x), repr(y)) for i, (x, y) in enumerate(zip(a, b)) if x != y or type(x) != type(y)]
    if len(a) != len(b) or bad:
        mismatches.append({"column": name, "source_rows": len(a), "delta_rows": len(b), "first": bad[:3]})

print(json.dumps({
    "order": [f["name"] for f in fields],
    "types": {f["name"]: tname(f["type"]) for f in fields},
    "nullable": {f["name"]: f["nullable"] for f in fields},
    "rows": t.num_rows,
    "source_rows": len(records),
    "lines": good.column("_source_line").to_pylist(),
    "rescued_rows": good.num_rows - good.column("_rescued_data").null_count,
    "corrupt_rescued": corrupt.column("_rescued_data").to_pylist(),
    "mismatches": mismatches,
}))
sys.stdout.flush()
os._exit(0)
"##;

#[test]
fn avro_lands_with_its_types() {
    let (tmp, dir) = lakehouse();
    let t = land_typed(
        &tmp,
        &dir,
        "avro",
        AVRO_WRITE,
        "typed.avro",
        "bronze.a",
        AVRO_CHECK,
    );
    let (rows, typed_s, check) = (t.rows, t.file.to_str().unwrap(), t.check);
    let expected = [
        ("i", "long", "BIGINT"),
        ("l", "long", "BIGINT"),
        ("fl", "double", "DOUBLE"),
        ("db", "double", "DOUBLE"),
        ("s", "string", "STRING"),
        ("by", "binary", "BINARY"),
        ("e", "string", "STRING"),
        ("u", "string", "STRING"),
        ("dec", "decimal(10,2)", "DECIMAL(10,2)"),
        ("dt", "date", "DATE"),
        ("tsm", "timestamp", "TIMESTAMP"),
        ("ltu", "timestamp_ntz", "TIMESTAMP_NTZ"),
        ("opt", "string", "STRING"),
        (
            "rec",
            "struct<x:long,y:string>",
            "STRUCT<x:BIGINT,y:STRING>",
        ),
        ("arr", "array<long>", "ARRAY<BIGINT>"),
        ("m", "map<string,long>", "MAP<STRING,BIGINT>"),
    ];
    assert_typed_schema(&dir, "lakehouse.bronze.a", &check, &expected);
    assert_eq!(
        check["nullable"]["opt"], true,
        "[\"null\", string] is nullable"
    );
    assert_eq!(check["rows"], rows, "{check}");
    assert_eq!(check["source_rows"], rows);
    assert_eq!(
        check["mismatches"],
        json!([]),
        "values differ from fastavro's"
    );
    assert_lines(&check, rows);
    assert_eq!(check["rescued_rows"], 0);
    assert_eq!(check["corrupt_rescued"], json!([]));

    let again = ingest_json(&dir, &[typed_s, "--into", "bronze.a"]);
    assert_eq!(num(&again, "batches"), 0, "{again}");
}

#[test]
fn truncated_avro_lands_its_complete_blocks_and_corrupt_rows() {
    let (tmp, dir) = lakehouse();
    let src = tmp.path().join("avro");
    std::fs::create_dir_all(&src).unwrap();
    let written = py(AVRO_WRITE, &[src.to_str().unwrap()]);
    let blocks: Vec<u64> = written["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_u64().unwrap())
        .collect();
    assert!(blocks.len() >= 3, "several blocks: {blocks:?}");
    // the cut falls inside the last block: the blocks before it are whole
    let complete: u64 = blocks[..blocks.len() - 1].iter().sum();
    let last = *blocks.last().unwrap();
    let truncated = src.join("truncated.avro");
    let truncated_s = truncated.to_str().unwrap();
    let uri = url_of(&truncated);

    let r = ingest_json(&dir, &[truncated_s, "--into", "bronze.at"]);
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(
        num(&r, "records_read"),
        num(&r, "records_landed"),
        "the run balances: {r}"
    );
    let corrupt = num(&r, "records_corrupt");
    assert_eq!(
        corrupt, last,
        "each record of the cut-off block (its header counts {last}) lands as a corrupt row: {r}"
    );
    assert_eq!(num(&r, "records_landed"), complete + corrupt, "{r}");

    let tdir = table_dir(&dir, "lakehouse.bronze.at");
    let check = py(
        &format!("{CHECK_PRELUDE}{AVRO_CHECK}"),
        &[tdir.to_str().unwrap(), truncated_s, uri.as_str()],
    );
    assert_eq!(
        check["source_rows"], complete,
        "fastavro reads the complete blocks"
    );
    assert_eq!(
        check["mismatches"],
        json!([]),
        "values differ from fastavro's"
    );
    assert_lines(&check, complete);
    assert_eq!(check["rescued_rows"], 0);
    assert_eq!(check["rows"], complete + corrupt);
    let corrupt_rows = check["corrupt_rescued"].as_array().unwrap();
    assert_eq!(corrupt_rows.len() as u64, corrupt);
    for rescued in corrupt_rows {
        let v: Value = serde_json::from_str(rescued.as_str().unwrap()).unwrap();
        assert!(
            v["_corrupt_reason"]
                .as_str()
                .is_some_and(|s| s.contains(uri.as_str())),
            "{v}"
        );
    }
}

#[test]
fn limits_in_strata_toml_bound_records_and_columns() {
    let (tmp, dir) = lakehouse();
    let config = dir.join("strata.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text
        .replace("max_record_bytes = 67108864", "max_record_bytes = 100")
        .replace("max_columns = 1000", "max_columns = 2");
    assert!(text.contains("max_record_bytes = 100"), "{text}");
    std::fs::write(&config, text).unwrap();
    let src = tmp.path().join("limits");
    std::fs::create_dir_all(&src).unwrap();
    let long = format!("{{\"a\": \"{}\"}}", "x".repeat(200));
    std::fs::write(
        src.join("l.ndjson"),
        format!("{{\"a\": \"1\", \"b\": \"2\", \"c\": \"3\"}}\n{long}\n"),
    )
    .unwrap();
    let r = ingest_json(&dir, &[src.to_str().unwrap(), "--into", "bronze.lim"]);
    assert_eq!(num(&r, "records_read"), 2, "{r}");
    assert_eq!(num(&r, "records_landed"), 2, "{r}");
    assert_eq!(
        num(&r, "records_corrupt"),
        1,
        "the 200-byte record is over the limit: {r}"
    );
    let rows = query(
        &dir,
        "SELECT a, b, _rescued_data, _corrupt_record FROM bronze.lim ORDER BY _source_line",
    );
    // Two data columns at most: `c` is rescued.
    assert_eq!(rows[0]["a"], "1", "{rows:?}");
    assert_eq!(rows[0]["b"], "2", "{rows:?}");
    assert_eq!(rows[0]["_rescued_data"], "{\"c\":\"3\"}", "{rows:?}");
    // The long record is kept as a reference, not its text.
    let reference: Value =
        serde_json::from_str(rows[1]["_corrupt_record"].as_str().unwrap()).unwrap();
    assert_eq!(reference["length"], long.len(), "{reference}");
}

#[test]
fn a_stopped_batch_lands_again_from_exactly_its_recorded_ranges() {
    let (tmp, dir) = lakehouse();
    let land = tmp.path().join("landing");
    std::fs::create_dir_all(&land).unwrap();
    std::fs::write(
        land.join("b.ndjson"),
        "{\"id\":\"b1\"}\n{\"id\":\n{\"id\":\"b3\"}\n",
    )
    .unwrap();
    std::fs::write(land.join("c.ndjson"), "{\"id\":\"c1\"}\nnot json\n").unwrap();
    let args = [
        "--format",
        "json",
        "ingest",
        land.to_str().unwrap(),
        "--into",
        "bronze.replayed",
        "--corrupt",
        "quarantine",
    ];
    // The first run stops after its quarantine commit, before the target's.
    let out = Command::new(strata_bin())
        .args(args)
        .current_dir(&dir)
        .env("STRATA_FAILPOINT", "ingest::after_quarantine_commit")
        .env("STRATA_INGEST_LEASE_TTL", "0.5")
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("failpoint"), "{}", text(&out));
    assert_eq!(count(&dir, "quarantine.replayed"), 2);
    assert_eq!(count(&dir, "bronze.replayed"), 0);

    // A file that sorts first arrives before the re-run: it must not join the stopped batch,
    // whose quarantine commit already holds that batch's txn.
    std::fs::write(land.join("a.ndjson"), "{\"id\":\"a1\"}\n{oops\n").unwrap();
    std::thread::sleep(Duration::from_millis(1600));
    let out = Command::new(strata_bin())
        .args(args)
        .current_dir(&dir)
        .env("STRATA_INGEST_LEASE_TTL", "0.5")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(num(&r, "batches"), 2, "{r}");
    assert_eq!(num(&r, "records_read"), 7, "{r}");
    assert_eq!(num(&r, "records_landed"), 4, "{r}");
    assert_eq!(num(&r, "records_quarantined"), 3, "{r}");

    // Batch 1 is exactly what the stopped run recorded; the new file is batch 2.
    let batches: Vec<(String, u64)> = query(
        &dir,
        "SELECT file_uri AS f, batch_id AS b FROM system.ingest_files ORDER BY file_uri",
    )
    .iter()
    .map(|row| {
        let f = row["f"].as_str().unwrap();
        let name = f.rsplit('/').next().unwrap().to_string();
        (name, row["b"].as_u64().unwrap())
    })
    .collect();
    assert_eq!(
        batches,
        [
            ("a.ndjson".to_string(), 2),
            ("b.ndjson".to_string(), 1),
            ("c.ndjson".to_string(), 1)
        ]
    );
    // Every corrupt record is in quarantine once, the new file's included; every good one in
    // bronze once.
    let records: Vec<String> = query(
        &dir,
        "SELECT _record AS r FROM quarantine.replayed ORDER BY _record",
    )
    .iter()
    .map(|row| row["r"].as_str().unwrap().to_string())
    .collect();
    assert_eq!(records, ["not json", "{\"id\":", "{oops"], "{records:?}");
    let ids: Vec<String> = query(&dir, "SELECT id FROM bronze.replayed ORDER BY id")
        .iter()
        .map(|row| row["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["a1", "b1", "b3", "c1"]);
}
