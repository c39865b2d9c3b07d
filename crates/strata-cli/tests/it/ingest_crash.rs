//! Exactly once under crashes: `strata ingest` is killed with SIGKILL at seeded moments (and
//! aborted by a failpoint between a Delta commit and its ledger write), re-run each time, and
//! at the end every source record is in bronze exactly once. Also: two ingests into one table
//! at once, beside a reader.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::ingest::ingest_json;
use crate::*;

/// A small deterministic generator, so a failing seed can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn spawn_ingest(dir: &Path, data: &Path, failpoint: Option<&str>) -> Child {
    let mut c = Command::new(strata_bin());
    c.arg("--lakehouse")
        .arg(dir)
        .args(["ingest"])
        .arg(data)
        .args(["--into", "bronze.crash", "--max-files", "1"])
        .env("STRATA_INGEST_LEASE_TTL", "1")
        .env_remove("STRATA_LAKEHOUSE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(f) = failpoint {
        c.env("STRATA_FAILPOINT", f);
    }
    c.spawn().unwrap()
}

fn commits(dir: &Path) -> i64 {
    let log = dir.join("lakehouse/bronze/crash");
    if !log.join("_delta_log").exists() {
        return -1;
    }
    latest_version(&log)
}

/// Every (file, line) of the corpus, with how often bronze holds it.
fn pointers(dir: &Path) -> HashMap<(String, u64), u64> {
    let mut m = HashMap::new();
    for row in query(
        dir,
        "SELECT _source_file AS f, _source_line AS l, count(*) AS n FROM bronze.crash GROUP BY 1, 2",
    ) {
        m.insert(
            (
                row["f"].as_str().unwrap().to_string(),
                row["l"].as_u64().unwrap(),
            ),
            row["n"].as_u64().unwrap(),
        );
    }
    m
}

#[test]
fn killed_ingests_land_every_record_exactly_once() {
    let seed: u64 = std::env::var("STRATA_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261125);
    println!("crash test seed {seed} (set STRATA_CRASH_SEED to replay)");
    let mut rng = Rng(seed);
    let (tmp, dir) = lakehouse();
    let data = tmp.path().join("corpus");
    ok(
        &dir,
        &[
            "generate",
            "events",
            "--rows",
            "200000",
            "--files",
            "400",
            "--seed",
            "3",
            "--out",
            data.to_str().unwrap(),
        ],
    );
    let mut kills = 0;
    let mut after_first_commit = 0;
    let mut at_failpoint = 0;
    let mut finished_early = 0;
    for round in 0..28 {
        let failpoint = (round % 4 == 3).then_some("ingest::after_target_commit");
        let mut child = spawn_ingest(&dir, &data, failpoint);
        if failpoint.is_some() {
            let out = child.wait_with_output().unwrap();
            let status = out.status;
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                status.success() || err.contains("failpoint"),
                "round {round}: {err}"
            );
            if status.success() {
                finished_early += 1;
            } else {
                at_failpoint += 1;
                kills += 1;
                if commits(&dir) >= 1 {
                    after_first_commit += 1;
                }
            }
            continue;
        }
        // a killed run's lease expires within a second; then each batch takes tens of ms
        let delay = Duration::from_millis(700 + rng.next() % 900);
        let started = Instant::now();
        let mut done = false;
        while started.elapsed() < delay {
            if child.try_wait().unwrap().is_some() {
                done = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if done {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "round {round}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            if finished_early == 0 {
                println!(
                    "round {round} finished: {}",
                    String::from_utf8_lossy(&out.stdout)
                );
            }
            finished_early += 1;
            continue;
        }
        let version_at_kill = commits(&dir);
        child.kill().unwrap(); // SIGKILL
        let _ = child.wait();
        kills += 1;
        if version_at_kill >= 1 {
            after_first_commit += 1;
        }
        // The table loads after every kill, and nothing is in it twice.
        if version_at_kill >= 0 {
            let dups: Vec<_> = pointers(&dir).into_iter().filter(|(_, n)| *n > 1).collect();
            assert!(
                dups.is_empty(),
                "round {round}: records landed twice: {dups:?}"
            );
        }
    }
    // A last run finishes the job.
    let r = ingest_json(
        &dir,
        &[
            data.to_str().unwrap(),
            "--into",
            "bronze.crash",
            "--max-files",
            "1",
        ],
    );
    assert_eq!(r["status"], "succeeded", "{r}");
    println!(
        "crash test: {kills} kills ({at_failpoint} at the failpoint between a Delta commit and \
         its ledger write, {after_first_commit} after the first commit), {finished_early} runs \
         finished before their kill"
    );
    assert!(kills >= 20, "only {kills} kills landed");
    assert!(
        after_first_commit * 2 >= kills,
        "{after_first_commit} of {kills} after the first commit"
    );
    assert!(at_failpoint >= 3);
    let got = pointers(&dir);
    let expected = expected_pointers(&data);
    assert_eq!(got.len(), expected.len(), "every record landed");
    for p in &expected {
        assert_eq!(got.get(p), Some(&1), "{p:?} not exactly once");
    }
}

fn expected_pointers(data: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ndjson"))
        .collect();
    files.sort();
    for f in files {
        let uri = format!("file://{}", f.canonicalize().unwrap().display());
        let text = std::fs::read(&f).unwrap();
        for (i, line) in text.split(|b| *b == b'\n').enumerate() {
            if !line.iter().all(u8::is_ascii_whitespace) {
                out.push((uri.clone(), i as u64 + 1));
            }
        }
    }
    out
}

#[test]
fn two_ingests_at_once_beside_a_reader() {
    let (tmp, dir) = lakehouse();
    let data = tmp.path().join("corpus");
    ok(
        &dir,
        &[
            "generate",
            "events",
            "--rows",
            "12000",
            "--files",
            "12",
            "--seed",
            "5",
            "--out",
            data.to_str().unwrap(),
        ],
    );
    let a = spawn_ingest(&dir, &data, None);
    let b = spawn_ingest(&dir, &data, None);
    let mut reads = 0;
    let mut last = 0;
    let (mut a, mut b) = (a, b);
    loop {
        let a_done = a.try_wait().unwrap().is_some();
        let b_done = b.try_wait().unwrap().is_some();
        if commits(&dir) >= 1 {
            // a reader beside the writers sees a growing table, never a duplicate
            let rows = query(
                &dir,
                "SELECT count(*) AS n, count(DISTINCT _source_file || ':' || CAST(_source_line AS VARCHAR)) AS d FROM bronze.crash",
            );
            let (n, d) = (
                rows[0]["n"].as_u64().unwrap(),
                rows[0]["d"].as_u64().unwrap(),
            );
            assert_eq!(n, d, "a record is in the table twice");
            assert!(n >= last, "the table shrank");
            last = n;
            reads += 1;
        }
        if a_done && b_done {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for c in [a, b] {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    println!("two writers: {reads} reads beside them");
    let got = pointers(&dir);
    let expected = expected_pointers(&data);
    assert_eq!(got.len(), expected.len());
    assert!(got.values().all(|n| *n == 1));
}
