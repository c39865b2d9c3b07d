//! `strata ingest` end to end: accounting checked against counts the test makes itself from
//! the source files, re-runs that land nothing, the drift corpus through each evolution mode,
//! and hostile inputs with peak memory measured.

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::*;

/// Runs an ingest with `--format json` and returns its report.
pub fn ingest_json(dir: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--format", "json", "ingest"];
    all.extend_from_slice(args);
    let out = ok(dir, &all);
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

pub fn n(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

/// Non-blank lines of every `.ndjson` file under `dir`, and how many are not JSON objects:
/// computed here, independently of Strata.
pub fn count_ndjson(dir: &Path) -> (u64, u64, Vec<(String, u64)>) {
    let mut lines = 0;
    let mut corrupt = 0;
    let mut ids = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ndjson"))
        .collect();
    files.sort();
    for f in files {
        let text = std::fs::read(&f).unwrap();
        let uri = url_of(&f);
        for (i, line) in text.split(|b| *b == b'\n').enumerate() {
            if line.iter().all(|b| b.is_ascii_whitespace()) {
                continue;
            }
            lines += 1;
            ids.push((uri.clone(), i as u64 + 1));
            let ok = serde_json::from_slice::<Value>(line).is_ok_and(|v| v.is_object());
            if !ok {
                corrupt += 1;
            }
        }
    }
    (lines, corrupt, ids)
}

pub fn url_of(p: &Path) -> String {
    format!("file://{}", p.canonicalize().unwrap().display())
}

#[test]
fn generated_events_land_exactly_once_and_balance() {
    let (tmp, dir) = lakehouse();
    let data = tmp.path().join("landing");
    let g = ok(
        &dir,
        &[
            "generate",
            "events",
            "--rows",
            "5000",
            "--files",
            "4",
            "--seed",
            "7",
            "--out",
            data.to_str().unwrap(),
        ],
    );
    assert!(g.contains("wrote 5000 rows in 4 files"), "{g}");
    let (lines, corrupt, ids) = count_ndjson(&data);
    assert_eq!(lines, 5000);
    assert!(corrupt > 0, "the generator seeds malformed lines");

    let r = ingest_json(&dir, &[data.to_str().unwrap(), "--into", "bronze.events"]);
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(n(&r, "files_seen"), 4, "_generate.json is skipped: {r}");
    assert_eq!(n(&r, "files_landed"), 4);
    assert_eq!(n(&r, "records_read"), lines);
    assert_eq!(n(&r, "records_landed"), lines);
    assert_eq!(n(&r, "records_corrupt"), corrupt);
    assert_eq!(n(&r, "records_quarantined"), 0);

    let rows = query(
        &dir,
        "SELECT count(*) AS n, count(_corrupt_record) AS bad, count(DISTINCT _batch_id) AS batches FROM bronze.events",
    );
    assert_eq!(rows[0]["n"], lines);
    assert_eq!(rows[0]["bad"], corrupt);
    // every record exactly once, by its pointer
    let got = query(
        &dir,
        "SELECT _source_file AS f, _source_line AS l FROM bronze.events",
    );
    let mut seen = HashSet::new();
    for row in &got {
        let key = (
            row["f"].as_str().unwrap().to_string(),
            row["l"].as_u64().unwrap(),
        );
        assert!(seen.insert(key.clone()), "{key:?} landed twice");
    }
    let expected: HashSet<_> = ids.into_iter().collect();
    assert_eq!(seen, expected);
    // literal text: amounts keep their two decimals, props its JSON text
    let sample = query(
        &dir,
        "SELECT amount, props FROM bronze.events WHERE amount LIKE '%.%' LIMIT 1",
    );
    let amount = sample[0]["amount"].as_str().unwrap();
    assert_eq!(amount.split('.').nth(1).unwrap().len(), 2, "{amount}");
    assert!(sample[0]["props"].as_str().unwrap().starts_with('{'));
    // the new field half way became a column
    let coupons = query(&dir, "SELECT count(coupon) AS c FROM bronze.events");
    assert!(coupons[0]["c"].as_u64().unwrap() > 0);

    let location = query(
        &dir,
        "SELECT location FROM system.tables WHERE full_name = 'lakehouse.bronze.events'",
    )[0]["location"]
        .as_str()
        .unwrap()
        .to_string();
    let table_dir = std::path::PathBuf::from(location.trim_start_matches("file://"));
    let version = latest_version(&table_dir);
    // The same folder again, through a symlink, and through another glob: nothing lands.
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&data, &link).unwrap();
    let glob = format!("{}/events-*.ndjson", data.display());
    for source in [
        data.to_str().unwrap(),
        link.to_str().unwrap(),
        glob.as_str(),
    ] {
        let again = ingest_json(&dir, &[source, "--into", "bronze.events"]);
        assert_eq!(n(&again, "batches"), 0, "{source}: {again}");
        assert_eq!(n(&again, "records_landed"), 0);
        assert_eq!(n(&again, "files_skipped"), 4, "{again}");
        assert_eq!(n(&again, "records_read"), 0, "unchanged files are not read");
    }
    assert_eq!(latest_version(&table_dir), version, "no new Delta version");
    assert_eq!(
        query(&dir, "SELECT count(*) AS n FROM bronze.events")[0]["n"],
        lines
    );

    // The ledger and the runs are queryable.
    let runs = query(
        &dir,
        "SELECT status, records_read, records_landed FROM system.ingest_runs ORDER BY started_at",
    );
    assert_eq!(runs.len(), 4);
    assert_eq!(runs[0]["records_landed"], lines);
    let files = query(
        &dir,
        "SELECT file_uri, status, records FROM system.ingest_files WHERE status = 'landed'",
    );
    assert_eq!(files.len(), 4);
    let total: u64 = files.iter().map(|f| f["records"].as_u64().unwrap()).sum();
    assert_eq!(total, lines);
    let lineage = query(
        &dir,
        "SELECT source_table FROM system.lineage WHERE kind = 'ingest'",
    );
    assert!(!lineage.is_empty());
    let history = ok(&dir, &["ingest", "history", "bronze.events"]);
    assert!(history.contains("succeeded"), "{history}");
}

#[test]
fn changed_and_duplicate_files_follow_the_ledger() {
    let (tmp, dir) = lakehouse();
    let data = tmp.path().join("in");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("a.ndjson"), "{\"k\":1}\n{\"k\":2}\n").unwrap();
    let r = ingest_json(&dir, &[data.to_str().unwrap(), "--into", "bronze.t"]);
    assert_eq!(n(&r, "records_landed"), 2);
    // same content under a new name: landed, counted as duplicate content
    std::fs::write(data.join("b.ndjson"), "{\"k\":1}\n{\"k\":2}\n").unwrap();
    let r = ingest_json(&dir, &[data.to_str().unwrap(), "--into", "bronze.t"]);
    assert_eq!(n(&r, "duplicate_content_files"), 1, "{r}");
    assert_eq!(n(&r, "records_landed"), 2);
    // and skipped on request
    std::fs::write(data.join("c.ndjson"), "{\"k\":1}\n{\"k\":2}\n").unwrap();
    let r = ingest_json(
        &dir,
        &[
            data.to_str().unwrap(),
            "--into",
            "bronze.t",
            "--skip-duplicate-content",
        ],
    );
    assert_eq!(n(&r, "records_landed"), 0, "{r}");
    assert_eq!(n(&r, "duplicate_content_files"), 1);
    // a landed file that changed is reported, and lands again only when asked
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(data.join("a.ndjson"), "{\"k\":1}\n{\"k\":2}\n{\"k\":3}\n").unwrap();
    let r = ingest_json(&dir, &[data.to_str().unwrap(), "--into", "bronze.t"]);
    assert_eq!(n(&r, "records_landed"), 0, "{r}");
    assert_eq!(r["changed_files"].as_array().unwrap().len(), 1, "{r}");
    let r = ingest_json(
        &dir,
        &[
            data.to_str().unwrap(),
            "--into",
            "bronze.t",
            "--reingest-changed",
        ],
    );
    assert_eq!(n(&r, "records_landed"), 3, "{r}");
    assert_eq!(query(&dir, "SELECT count(*) AS n FROM bronze.t")[0]["n"], 7);
}

/// The drift corpus: what each evolution mode makes of new fields, type changes, missing
/// fields, nested values, nulls, a field named like a system column and a 40-digit integer.
#[test]
fn drift_corpus_through_each_mode() {
    let big = "1234567890123456789012345678901234567890";
    let first = format!(
        "{{\"id\":1,\"amount\":12.50,\"big\":{big},\"nested\":{{\"a\": [1, 2]}},\"tags\":[\"x\",\"y\"]}}\n"
    );
    let second = concat!(
        "{\"id\":2,\"amount\":\"12.50\",\"city\":\"Paris\"}\n",
        "{\"id\":3,\"amount\":null,\"_source_file\":\"spoof\",\"ID\":9}\n",
    );
    for mode in ["evolve", "rescue", "fail"] {
        let (tmp, dir) = lakehouse();
        let data = tmp.path().join("drift");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("1.ndjson"), &first).unwrap();
        std::fs::write(data.join("2.ndjson"), second).unwrap();
        let args = [
            data.to_str().unwrap(),
            "--into",
            "bronze.drift",
            "--mode",
            mode,
            "--max-files",
            "1",
        ];
        if mode == "fail" {
            let err = fails(&dir, &{
                let mut a = vec!["ingest"];
                a.extend_from_slice(&args);
                a
            });
            assert!(err.contains("2.ndjson line 1"), "{err}");
            assert!(err.contains("city"), "{err}");
            assert!(err.contains("not committed"), "{err}");
            // the first file's batch stays landed
            let rows = query(&dir, "SELECT id, big FROM bronze.drift");
            assert_eq!(rows.len(), 1);
            assert_eq!(rows[0]["big"], big);
            continue;
        }
        let r = ingest_json(&dir, &args);
        assert_eq!(n(&r, "records_landed"), 3, "{mode}: {r}");
        let rows = query(
            &dir,
            "SELECT * FROM bronze.drift ORDER BY _source_file, _source_line",
        );
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0]["id"], "1");
        assert_eq!(rows[0]["amount"], "12.50", "literal text kept");
        assert_eq!(rows[0]["big"], big, "every digit kept");
        assert_eq!(rows[0]["nested"], "{\"a\": [1, 2]}", "source bytes kept");
        assert_eq!(rows[0]["tags"], "[\"x\",\"y\"]");
        assert_eq!(rows[0]["_rescued_data"], Value::Null);
        assert_eq!(
            rows[1]["amount"], "12.50",
            "a string amount is the same text"
        );
        assert_eq!(rows[1]["big"], Value::Null, "a missing field is NULL");
        assert_eq!(rows[2]["amount"], Value::Null, "null where a number was");
        let rescued3: Value =
            serde_json::from_str(rows[2]["_rescued_data"].as_str().unwrap()).unwrap();
        assert_eq!(
            rescued3["_source_file"], "spoof",
            "system-column name rescued"
        );
        assert_eq!(rescued3["ID"], 9, "case-only duplicate rescued");
        assert!(
            rows[2]["_source_file"]
                .as_str()
                .unwrap()
                .ends_with("2.ndjson")
        );
        match mode {
            "evolve" => {
                assert_eq!(rows[1]["city"], "Paris");
                assert_eq!(rows[1]["_rescued_data"], Value::Null);
            }
            _ => {
                assert!(rows[1].get("city").is_none(), "rescue keeps the schema");
                assert_eq!(rows[1]["_rescued_data"], "{\"city\":\"Paris\"}");
            }
        }
    }
}

/// Peak resident memory of a child, polled from /proc (VmHWM is a high-water mark).
fn run_measured(mut cmd: Command) -> (std::process::Output, u64) {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0u64;
    let waiter = std::thread::spawn(move || child.wait_with_output().unwrap());
    while !waiter.is_finished() {
        if let Ok(s) = std::fs::read_to_string(&status_path)
            && let Some(line) = s.lines().find(|l| l.starts_with("VmHWM:"))
        {
            let kb: u64 = line
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            peak_kb = peak_kb.max(kb);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    (waiter.join().unwrap(), peak_kb * 1024)
}

#[test]
fn hostile_inputs_are_landed_rescued_or_rejected_within_the_memory_bound() {
    let (tmp, dir) = lakehouse();
    let h = tmp.path().join("hostile");
    std::fs::create_dir_all(&h).unwrap();
    std::fs::write(h.join("empty.ndjson"), "").unwrap();
    // one line of 100 MB: over max_record_bytes (64 MiB)
    {
        let mut f = std::fs::File::create(h.join("huge.ndjson")).unwrap();
        f.write_all(b"{\"blob\":\"").unwrap();
        let block = vec![b'x'; 1 << 20];
        for _ in 0..100 {
            f.write_all(&block).unwrap();
        }
        f.write_all(b"\"}\n{\"after\":1}\n").unwrap();
    }
    let deep = format!("{{\"d\":{}{}}}\n", "[".repeat(100_000), "]".repeat(100_000));
    std::fs::write(h.join("nested.ndjson"), deep).unwrap();
    std::fs::write(h.join("dupkeys.ndjson"), "{\"a\":1,\"a\":2,\"a\":3}\n").unwrap();
    let wide: String = (0..10_000)
        .map(|i| format!("\"f{i}\":{i}"))
        .collect::<Vec<_>>()
        .join(",");
    std::fs::write(h.join("wide.ndjson"), format!("{{{wide}}}\n")).unwrap();
    std::fs::write(
        h.join("names.ndjson"),
        "{\"a.b\":1,\"with space\":2,\"q\\\"uote\":3,\"ünï\":4,\"_source_file\":5}\n",
    )
    .unwrap();
    std::fs::write(h.join("utf8.ndjson"), b"{\"s\":\"\xff\xfe\"}\n{\"ok\":1}\n").unwrap();
    std::fs::write(h.join("latin1.csv"), b"name,city\nJos\xe9,M\xfcnchen\n").unwrap();
    {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        for i in 0..10_000 {
            writeln!(gz, "{{\"i\":{i},\"pad\":\"{}\"}}", "z".repeat(50)).unwrap();
        }
        let bytes = gz.finish().unwrap();
        std::fs::write(h.join("truncated.ndjson.gz"), &bytes[..bytes.len() / 2]).unwrap();
    }
    let mut cmd = Command::new(strata_bin());
    cmd.arg("--lakehouse")
        .arg(&dir)
        .args(["--format", "json", "ingest"])
        .arg(&h)
        .args(["--into", "bronze.hostile"]);
    let (out, peak) = run_measured(cmd);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    let bound = 2 * 64 * 1024 * 1024 + 256 * 1024 * 1024;
    println!(
        "hostile corpus: peak RSS {} MiB (bound {} MiB)",
        peak >> 20,
        bound >> 20
    );
    assert!(
        peak > 0 && peak < bound,
        "peak RSS {peak} over the bound {bound}"
    );
    let r: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(n(&r, "records_read"), n(&r, "records_landed"), "{r}");

    let by_file = |name: &str| {
        query(
            &dir,
            &format!(
                "SELECT _corrupt_record AS c, _rescued_data AS r FROM bronze.hostile \
                 WHERE _source_file LIKE '%/{name}' ORDER BY _source_line"
            ),
        )
    };
    let huge = by_file("huge.ndjson");
    assert_eq!(huge.len(), 2, "the 100 MB line and the line after it");
    let reference: Value = serde_json::from_str(huge[0]["c"].as_str().unwrap()).unwrap();
    assert!(
        reference["length"].as_u64().unwrap() > 100 << 20,
        "{reference}"
    );
    assert!(huge[0]["r"].as_str().unwrap().contains("max_record_bytes"));
    let nested = by_file("nested.ndjson");
    assert!(
        nested[0]["r"].as_str().unwrap().contains("nesting"),
        "{nested:?}"
    );
    let dup = by_file("dupkeys.ndjson");
    let dup_rescued: Value = serde_json::from_str(dup[0]["r"].as_str().unwrap()).unwrap();
    assert_eq!(dup_rescued["a"], 2);
    assert_eq!(dup_rescued["a#2"], 3);
    let wide = by_file("wide.ndjson");
    let wide_rescued: Value = serde_json::from_str(wide[0]["r"].as_str().unwrap()).unwrap();
    let f_columns = query(
        &dir,
        "SELECT count(*) AS n FROM system.columns WHERE full_name LIKE '%bronze.hostile' \
         AND column_name LIKE 'f%'",
    )[0]["n"]
        .as_u64()
        .unwrap();
    let data_columns = query(
        &dir,
        "SELECT count(*) AS n FROM system.columns WHERE full_name LIKE '%bronze.hostile' \
         AND column_name NOT LIKE '\\_%' ESCAPE '\\'",
    )[0]["n"]
        .as_u64()
        .unwrap();
    assert_eq!(data_columns, 1000, "max_columns data columns");
    assert_eq!(
        wide_rescued.as_object().unwrap().len() as u64 + f_columns,
        10_000,
        "fields past max_columns (1000) are rescued, none lost"
    );
    let names = by_file("names.ndjson");
    let names_rescued: Value = serde_json::from_str(names[0]["r"].as_str().unwrap()).unwrap();
    assert_eq!(
        names_rescued["with space"], 2,
        "a name Delta cannot store is rescued"
    );
    assert_eq!(names_rescued["_source_file"], 5);
    let cols = query(
        &dir,
        "SELECT column_name FROM system.columns WHERE full_name LIKE '%bronze.hostile' AND column_name IN ('a.b', 'q\"uote', 'ünï')",
    );
    assert_eq!(
        cols.len(),
        3,
        "dots, quotes and unicode are columns: {cols:?}"
    );
    let utf8 = by_file("utf8.ndjson");
    assert!(
        utf8[0]["c"].as_str().unwrap().starts_with("base64:"),
        "{utf8:?}"
    );
    let latin1 = query(
        &dir,
        "SELECT name, city FROM bronze.hostile WHERE _source_file LIKE '%latin1.csv'",
    );
    assert_eq!(latin1[0]["name"], "José");
    assert_eq!(latin1[0]["city"], "München");
    let gz = by_file("truncated.ndjson.gz");
    assert!(gz.len() > 10, "the readable part landed");
    let last = gz.last().unwrap();
    assert!(
        last["r"].as_str().unwrap().contains("could not be read"),
        "{last}"
    );
}
