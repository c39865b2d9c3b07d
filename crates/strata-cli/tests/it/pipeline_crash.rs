//! Exactly once under crashes: `strata pipeline run` of the shipped event pipeline is aborted at
//! its failpoints (before its commits, between the quarantine commit and the target commit,
//! after the target commit) and killed with SIGKILL at seeded moments, with new bronze batches
//! landing between some kills; each time it runs again, and at the end silver.events,
//! gold.daily_totals and quarantine.events equal those of a lakehouse that ingested the same
//! files and ran the pipeline without crashing: row for row, on every column but the ones
//! DECISIONS.md section 6 names as run-specific (`_quarantine_id`, `_quarantined_at`,
//! `_run_id`, and `_ingested_at`, which the `_record` of a `cast` row carries). A run with no
//! new input then commits nothing.
//!
//! `STRATA_CRASH_SEED=n` replays the seeded kills (as far as timing allows);
//! `STRATA_CRASH_KEEP=1` keeps the lakehouses of the failpoint and seeded-kill tests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::*;

const FAILPOINTS: [&str; 3] = [
    "pipeline::before_commits",
    "pipeline::after_quarantine_commit",
    "pipeline::after_target_commit",
];

/// The tables a run of the event pipeline touches, as folders under `DIR/lakehouse`.
const TABLES: [&str; 4] = [
    "bronze/events",
    "quarantine/events",
    "silver/events",
    "gold/daily_totals",
];

/// The `txn` app ids of the two flows start with these.
const SILVER_APP: &str = "flow:events:silver_events:";
const GOLD_APP: &str = "flow:events:daily_totals:";

/// `STRATA_PIPELINE_LEASE_TTL` of the runs started here: a run after a killed one waits this
/// long for the killed run's lease to expire.
const LEASE_TTL_SECS: u64 = 1;

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

/// A temp folder for one test's lakehouses and data; kept (and named) when
/// `STRATA_CRASH_KEEP` is set, to look into after a failure.
fn workdir(test: &str) -> (Option<tempfile::TempDir>, PathBuf) {
    let t = tempfile::Builder::new()
        .prefix(&format!("strata-{test}-"))
        .tempdir()
        .unwrap();
    if std::env::var_os("STRATA_CRASH_KEEP").is_some() {
        let p = t.keep();
        println!("{test}: lakehouses kept in {}", p.display());
        (None, p)
    } else {
        let p = t.path().to_path_buf();
        (Some(t), p)
    }
}

/// `strata init ROOT/NAME`.
fn lakehouse_in(root: &Path, name: &str) -> PathBuf {
    let dir = root.join(name);
    let o = Command::new(strata_bin())
        .arg("init")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out_text(&o));
    dir
}

fn pipeline_file() -> PathBuf {
    crate::manifest_dir().join("../../examples/events.pipeline.toml")
}

fn generate(dir: &Path, out: &Path, rows: u32, files: u32, seed: u64) {
    ok(
        dir,
        &[
            "generate",
            "events",
            "--rows",
            &rows.to_string(),
            "--files",
            &files.to_string(),
            "--seed",
            &seed.to_string(),
            "--out",
            out.to_str().unwrap(),
        ],
    );
}

fn ingest(dir: &Path, data: &Path) {
    ok(
        dir,
        &["ingest", "--into", "bronze.events", data.to_str().unwrap()],
    );
}

fn run_command(dir: &Path, failpoint: Option<&str>) -> Command {
    let mut c = Command::new(strata_bin());
    c.arg("--lakehouse")
        .arg(dir)
        .args(["--format", "json", "pipeline", "run"])
        .arg(pipeline_file())
        .env_remove("STRATA_LAKEHOUSE")
        .env_remove("STRATA_FAILPOINT")
        // a killed run's lease expires after a second, not the default 15
        .env("STRATA_PIPELINE_LEASE_TTL", LEASE_TTL_SECS.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(f) = failpoint {
        c.env("STRATA_FAILPOINT", f);
    }
    c
}

fn spawn_run(dir: &Path) -> Child {
    run_command(dir, None).spawn().unwrap()
}

fn out_text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// One `pipeline run` that must succeed; its JSON summary.
fn run_ok(dir: &Path, what: &str) -> Value {
    let o = run_command(dir, None).output().unwrap();
    assert!(
        o.status.success(),
        "{what}: `strata pipeline run` failed ({}):\n{}",
        o.status,
        out_text(&o)
    );
    let v: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{what}: {e}: {}", out_text(&o)));
    assert_eq!(v["status"], "succeeded", "{what}: {v}");
    v
}

/// Aborts a run at `failpoint`.
fn run_to_failpoint(dir: &Path, failpoint: &str) {
    let o = run_command(dir, Some(failpoint)).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains(&format!("failpoint {failpoint} reached")),
        "the run should abort at {failpoint} ({}): {}",
        o.status,
        out_text(&o)
    );
}

fn table_dir(dir: &Path, table: &str) -> PathBuf {
    dir.join("lakehouse").join(table)
}

/// The newest version of a table, or None when it has no commit yet.
fn version_of(dir: &Path, table: &str) -> Option<i64> {
    let log = table_dir(dir, table).join("_delta_log");
    std::fs::read_dir(log)
        .ok()?
        .filter_map(|e| {
            let n = e.ok()?.file_name().to_string_lossy().to_string();
            n.strip_suffix(".json")?.parse::<i64>().ok()
        })
        .max()
}

/// The newest version of each table in [`TABLES`].
fn versions(dir: &Path) -> BTreeMap<&'static str, Option<i64>> {
    TABLES.iter().map(|t| (*t, version_of(dir, t))).collect()
}

/// Every version of the `txn` whose app id starts with `app_prefix` in the table's log, in
/// commit order.
fn txns(dir: &Path, table: &str, app_prefix: &str) -> Vec<i64> {
    let log = table_dir(dir, table).join("_delta_log");
    let mut commits: Vec<(i64, PathBuf)> = match std::fs::read_dir(&log) {
        Ok(entries) => entries
            .filter_map(|e| {
                let p = e.ok()?.path();
                let v = p
                    .file_name()?
                    .to_str()?
                    .strip_suffix(".json")?
                    .parse::<i64>()
                    .ok()?;
                Some((v, p))
            })
            .collect(),
        Err(_) => return Vec::new(),
    };
    commits.sort();
    let mut out = Vec::new();
    for (_, p) in commits {
        for line in std::fs::read_to_string(&p).unwrap().lines() {
            let Ok(a) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            if let Some(t) = a.get("txn")
                && t["appId"]
                    .as_str()
                    .is_some_and(|s| s.starts_with(app_prefix))
            {
                out.push(t["version"].as_i64().unwrap());
            }
        }
    }
    out
}

/// The flow's watermark in a table: its latest `txn` version there.
fn watermark(dir: &Path, table: &str, app_prefix: &str) -> Option<i64> {
    txns(dir, table, app_prefix).into_iter().max()
}

/// Runs until neither flow has input left (a run stopped between its quarantine and target
/// commits is completed at the versions it had pinned, so new input may need one more run).
/// Returns how many runs it took.
fn run_to_completion(dir: &Path, what: &str) -> usize {
    for n in 1..=4 {
        run_ok(dir, &format!("{what}: completion run {n}"));
        let bronze = version_of(dir, "bronze/events");
        let silver = version_of(dir, "silver/events");
        if watermark(dir, "silver/events", SILVER_APP) == bronze
            && watermark(dir, "gold/daily_totals", GOLD_APP) == silver
        {
            return n;
        }
    }
    panic!(
        "{what}: four runs did not catch up: bronze at {:?}, silver's watermark {:?}, silver at \
         {:?}, gold's watermark {:?}",
        version_of(dir, "bronze/events"),
        watermark(dir, "silver/events", SILVER_APP),
        version_of(dir, "silver/events"),
        watermark(dir, "gold/daily_totals", GOLD_APP)
    );
}

/// A run with no new input commits nothing anywhere, and says every flow was skipped.
fn assert_rerun_commits_nothing(dir: &Path, what: &str) {
    let before = versions(dir);
    let v = run_ok(dir, &format!("{what}: run without new input"));
    let after = versions(dir);
    assert_eq!(
        before, after,
        "{what}: a run without new input committed: {v}"
    );
    for f in v["flows"].as_array().unwrap() {
        assert_eq!(f["status"], "skipped", "{what}: {f}");
        assert_eq!(f["commits"], serde_json::json!([]), "{what}: {f}");
    }
}

fn silver(dir: &Path) -> Vec<Value> {
    let rows = query(
        dir,
        "SELECT * FROM silver.events ORDER BY event_id, user_id, event_type, event_ts, \
         session_id, amount, event_date, country, device",
    );
    if let Some(r) = rows.first() {
        let cols: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
        let mut want = vec![
            "amount",
            "country",
            "device",
            "event_date",
            "event_id",
            "event_ts",
            "event_type",
            "session_id",
            "user_id",
        ];
        want.sort();
        let mut cols = cols;
        cols.sort();
        assert_eq!(cols, want, "silver.events has other columns than compared");
    }
    rows
}

fn gold(dir: &Path) -> Vec<Value> {
    query(
        dir,
        "SELECT * FROM gold.daily_totals ORDER BY user_id, event_date, daily_total, event_count",
    )
}

/// The columns of a quarantine row that are the same in every run (DECISIONS.md section 6):
/// all but `_quarantine_id`, `_quarantined_at` and `_run_id`; in `_record` (a `cast` row's
/// bronze source row) the bronze column `_ingested_at`, which ingest sets at landing time,
/// is left out too. Sorted, as a multiset.
fn quarantine(dir: &Path) -> Vec<Value> {
    let mut rows: Vec<Value> = query(dir, "SELECT * FROM quarantine.events")
        .into_iter()
        .map(|mut r| {
            let o = r.as_object_mut().unwrap();
            for c in ["_quarantine_id", "_quarantined_at", "_run_id"] {
                assert!(o.remove(c).is_some(), "quarantine.events has no {c}");
            }
            let rec: Value = serde_json::from_str(o["_record"].as_str().unwrap()).unwrap();
            let mut rec = rec;
            if let Some(m) = rec.as_object_mut() {
                m.remove("_ingested_at");
            }
            o.insert("_record".into(), rec);
            r
        })
        .collect();
    rows.sort_by_key(|r| r.to_string());
    rows
}

/// What of a quarantine row does not depend on which runs read which versions: without
/// `_source_version`, the `@version` of `_source_pointer` and the change feed's
/// `_commit_version` inside `_record`.
fn run_history_free(rows: &[Value]) -> Vec<Value> {
    let mut out: Vec<Value> = rows
        .iter()
        .map(|r| {
            let mut r = r.clone();
            let o = r.as_object_mut().unwrap();
            o.remove("_source_version");
            let p = o["_source_pointer"].as_str().unwrap().to_string();
            let (table, rest) = p.split_once('@').unwrap();
            let rest = rest.split_once(' ').map(|(_, k)| k).unwrap_or("");
            o.insert("_source_pointer".into(), format!("{table} {rest}").into());
            if let Some(m) = o.get_mut("_record").and_then(Value::as_object_mut) {
                m.remove("_commit_version");
            }
            r
        })
        .collect();
    out.sort_by_key(|r| r.to_string());
    out
}

/// Equal as multisets of rows; on a difference, says which rows each side has alone.
fn assert_same_rows(what: &str, got: &[Value], want: &[Value]) {
    if got == want {
        return;
    }
    let count = |rows: &[Value]| {
        let mut m: BTreeMap<String, i64> = BTreeMap::new();
        for r in rows {
            *m.entry(r.to_string()).or_default() += 1;
        }
        m
    };
    let (g, w) = (count(got), count(want));
    let only_got: Vec<String> = g
        .iter()
        .filter(|(k, n)| w.get(*k).copied().unwrap_or(0) < **n)
        .map(|(k, n)| format!("{n}x {k}"))
        .take(5)
        .collect();
    let only_want: Vec<String> = w
        .iter()
        .filter(|(k, n)| g.get(*k).copied().unwrap_or(0) < **n)
        .map(|(k, n)| format!("{n}x {k}"))
        .take(5)
        .collect();
    let order_only = only_got.is_empty() && only_want.is_empty();
    panic!(
        "{what}: {} rows after the crashes, {} in the clean run{}\n  only after the crashes \
         (first 5):\n    {}\n  only in the clean run (first 5):\n    {}",
        got.len(),
        want.len(),
        if order_only {
            " (same rows, other order)"
        } else {
            ""
        },
        only_got.join("\n    "),
        only_want.join("\n    ")
    );
}

/// The three tables of a lakehouse, as compared.
struct Tables {
    silver: Vec<Value>,
    gold: Vec<Value>,
    quarantine: Vec<Value>,
}

fn tables(dir: &Path) -> Tables {
    Tables {
        silver: silver(dir),
        gold: gold(dir),
        quarantine: quarantine(dir),
    }
}

fn assert_same_tables(what: &str, got: &Tables, want: &Tables) {
    assert!(!want.silver.is_empty() && !want.gold.is_empty() && !want.quarantine.is_empty());
    assert_same_rows(&format!("{what}: silver.events"), &got.silver, &want.silver);
    assert_same_rows(&format!("{what}: gold.daily_totals"), &got.gold, &want.gold);
    assert_same_rows(
        &format!("{what}: quarantine.events"),
        &got.quarantine,
        &want.quarantine,
    );
}

/// No quarantine row is there twice: no two share a (_source_pointer, _stage).
fn assert_no_row_twice(dir: &Path, what: &str) {
    let repeated = query(
        dir,
        "SELECT _source_pointer, _stage, count(*) AS n FROM quarantine.events \
         GROUP BY _source_pointer, _stage HAVING count(*) > 1 ORDER BY 1, 2",
    );
    assert!(
        repeated.is_empty(),
        "{what}: quarantine rows share a (_source_pointer, _stage): {repeated:?}"
    );
}

/// Each failpoint, on the first run (the tables are created) and on an incremental run (a new
/// batch: the quarantine commit appends, the target commit merges): the process aborts there,
/// the next run finishes the work, and the tables equal a clean run's. Stopped between its two
/// commits, the next run does not repeat the quarantine commit.
#[test]
fn failpoints_then_rerun_match_a_clean_run() {
    let (_keep, root) = workdir("failpoints");
    let clean = lakehouse_in(&root, "clean");
    let d1 = root.join("d1");
    let d2 = root.join("d2");
    generate(&clean, &d1, 2000, 2, 5);
    generate(&clean, &d2, 500, 1, 6);
    ingest(&clean, &d1);
    run_ok(&clean, "clean run 1");
    let want1 = tables(&clean);
    ingest(&clean, &d2);
    run_ok(&clean, "clean run 2");
    let want2 = tables(&clean);

    for fp in FAILPOINTS {
        let dir = lakehouse_in(&root, &fp.replace("::", "-"));
        for (phase, data, want) in [(1, &d1, &want1), (2, &d2, &want2)] {
            let what = format!("{fp}, run {phase}");
            ingest(&dir, data);
            let before = versions(&dir);
            run_to_failpoint(&dir, fp);
            let crashed = versions(&dir);
            let q = watermark(&dir, "quarantine/events", SILVER_APP);
            let s = watermark(&dir, "silver/events", SILVER_APP);
            let bronze = version_of(&dir, "bronze/events");
            match fp {
                "pipeline::before_commits" => {
                    assert_eq!(crashed, before, "{what}: committed before its commits")
                }
                "pipeline::after_quarantine_commit" => {
                    assert_eq!(q, bronze, "{what}: no quarantine commit before the abort");
                    assert!(s < q, "{what}: the target commit happened ({s:?}, {q:?})");
                }
                _ => {
                    assert_eq!(s, bronze, "{what}: no target commit before the abort");
                    assert_eq!(
                        crashed["gold/daily_totals"], before["gold/daily_totals"],
                        "{what}"
                    );
                }
            }
            let quarantine_version = version_of(&dir, "quarantine/events");
            // A second run with the same failpoint: silver_events stops at the same place
            // without committing anything again; after its target commit it has nothing left
            // to do, so daily_totals runs and stops after its own target commit.
            run_to_failpoint(&dir, fp);
            let again = versions(&dir);
            if fp == "pipeline::after_target_commit" {
                assert_eq!(
                    watermark(&dir, "gold/daily_totals", GOLD_APP),
                    version_of(&dir, "silver/events"),
                    "{what}: the second abort is not after daily_totals' target commit"
                );
                assert_eq!(
                    again["silver/events"], crashed["silver/events"],
                    "{what}: silver_events committed again"
                );
            } else {
                assert_eq!(again, crashed, "{what}: a second abort at {fp} committed");
            }
            let v = run_ok(&dir, &format!("{what}: the run after the aborts"));
            if fp == "pipeline::after_quarantine_commit" {
                assert_eq!(
                    version_of(&dir, "quarantine/events"),
                    quarantine_version,
                    "{what}: the run after the abort committed to quarantine.events again: {v}"
                );
            }
            assert_eq!(
                watermark(&dir, "silver/events", SILVER_APP),
                bronze,
                "{what}: {v}"
            );
            assert_same_tables(&what, &tables(&dir), want);
            assert_no_row_twice(&dir, &what);
        }
        assert_rerun_commits_nothing(&dir, fp);
        println!("{fp}: first and incremental run aborted there, re-run equals a clean run");
    }
}

/// Generates the next batch of 500 events (seed 100 + its number) into a new folder.
fn new_batch(dir: &Path, root: &Path, batches: &mut Vec<PathBuf>) -> PathBuf {
    let out = root.join(format!("batch{}", batches.len()));
    generate(dir, &out, 500, 1, 100 + batches.len() as u64);
    batches.push(out.clone());
    out
}

/// SIGKILL at seeded moments of `pipeline run`: at 0..T ms from its start (T: a clean run's
/// duration), or, every other kill, 0..T/2 ms after its first commit. Before a run, a new bronze batch lands when the
/// pipeline has caught up (so the run has work to be killed in), and at seeded other times (so
/// new input arrives while a killed run's work is half done). After the last kill the pipeline
/// runs to completion, and its tables equal those of clean lakehouses that landed the same
/// folders in the same order: one that ran the pipeline after each ingest, and one that ran it
/// once at the end.
#[test]
fn seeded_kills_then_rerun_match_a_clean_run() {
    let seed: u64 = std::env::var("STRATA_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261202);
    println!("pipeline crash test seed {seed} (set STRATA_CRASH_SEED to replay)");
    let mut rng = Rng(seed);
    let (_keep, root) = workdir("seeded-kills");
    let dir = lakehouse_in(&root, "crashed");
    const KILLS: usize = 24;
    const MAX_BATCHES: usize = 40;
    let mut batches: Vec<PathBuf> = Vec::new();

    // how long a clean run takes (the first, and one over a second batch): kills land in
    // 0..that
    let timing = lakehouse_in(&root, "timing");
    let mut span: u64 = 50;
    for seed in [100, 101] {
        let b = root.join(format!("timing{seed}"));
        generate(&timing, &b, 500, 1, seed);
        ingest(&timing, &b);
        let started = Instant::now();
        run_ok(&timing, "timing run");
        span = span.max(started.elapsed().as_millis() as u64);
    }
    let span = span;
    println!("a clean run takes {span} ms; kills land in 0..{span} ms");

    let first = new_batch(&dir, &root, &mut batches);
    ingest(&dir, &first);
    let caught_up = |dir: &Path| {
        watermark(dir, "silver/events", SILVER_APP) == version_of(dir, "bronze/events")
            && watermark(dir, "gold/daily_totals", GOLD_APP) == version_of(dir, "silver/events")
    };
    let mut kills = 0;
    let mut after_first_commit = 0;
    let mut between_commits = 0;
    let mut ingests_mid_work = 0;
    let mut finished_early = 0;
    let mut spawns = 0;
    let mut log: Vec<String> = Vec::new();
    while kills < KILLS || after_first_commit * 2 < kills {
        assert!(
            spawns < 70,
            "only {kills} kills ({after_first_commit} after a first commit) in {spawns} runs"
        );
        let idle = caught_up(&dir);
        if batches.len() < MAX_BATCHES && (idle || rng.next().is_multiple_of(4)) {
            if !idle {
                ingests_mid_work += 1;
            }
            let b = new_batch(&dir, &root, &mut batches);
            ingest(&dir, &b);
            log.push(format!("ingest batch{}", batches.len() - 1));
        }
        let before = versions(&dir);
        // every other kill waits for the run's first commit, then a seeded 0..span/2 ms more;
        // the others land at a seeded 0..span ms from the start
        let after_commit = kills % 2 == 0;
        let delay = Duration::from_millis(if after_commit {
            rng.next() % (span / 2)
        } else {
            rng.next() % span
        });
        spawns += 1;
        let mut child = spawn_run(&dir);
        let mut started = Instant::now();
        let mut done = false;
        let mut waiting_for_commit = after_commit;
        while waiting_for_commit || started.elapsed() < delay {
            if child.try_wait().unwrap().is_some() {
                done = true;
                break;
            }
            if waiting_for_commit && versions(&dir) != before {
                waiting_for_commit = false;
                started = Instant::now();
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        if done {
            let o = child.wait_with_output().unwrap();
            assert!(
                o.status.success(),
                "a run after {kills} kill(s) failed (seed {seed}; {}):\n{}\nhistory: {}",
                o.status,
                out_text(&o),
                log.join(", ")
            );
            finished_early += 1;
            log.push("run finished".into());
            continue;
        }
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        if status.success() {
            // it finished between the last poll and the kill
            finished_early += 1;
            log.push("run finished".into());
            continue;
        }
        kills += 1;
        let after = versions(&dir);
        let committed: Vec<&str> = TABLES
            .iter()
            .filter(|t| after[*t] != before[*t])
            .copied()
            .collect();
        if !committed.is_empty() {
            after_first_commit += 1;
        }
        // this run's quarantine commit is in, its target commit is not
        let between = after["quarantine/events"] != before["quarantine/events"]
            && watermark(&dir, "quarantine/events", SILVER_APP)
                > watermark(&dir, "silver/events", SILVER_APP);
        if between {
            between_commits += 1;
        }
        log.push(format!(
            "kill {} ms after {}{}{}",
            delay.as_millis(),
            if after_commit {
                "its first commit"
            } else {
                "the start"
            },
            if committed.is_empty() {
                String::new()
            } else {
                format!(", committed to {}", committed.join(", "))
            },
            if between {
                " (between its quarantine and target commits)"
            } else {
                ""
            }
        ));
        // the killed run's lease expires; the next run starts working at once
        std::thread::sleep(Duration::from_millis(LEASE_TTL_SECS * 1000 + 150));
    }
    let runs = run_to_completion(&dir, "after the last kill");
    println!(
        "pipeline crash test: {kills} kills in {spawns} runs (delays in 0..{span} ms), \
         {after_first_commit} after the run's first commit, {between_commits} between the \
         quarantine and the target commit of silver_events, {finished_early} runs finished before their kill; {} batches landed, \
         {ingests_mid_work} of them while a killed run's work was pending; {runs} run(s) to \
         complete after the last kill",
        batches.len()
    );
    println!("history: {}", log.join(", "));
    assert_eq!(
        version_of(&dir, "bronze/events"),
        Some(batches.len() as i64),
        "one bronze commit per ingest"
    );

    // The first silver commit read a snapshot: its quarantine rows name the version it pinned.
    // The clean lakehouse runs the pipeline after every ingest from that version on.
    let first_pin = txns(&dir, "silver/events", SILVER_APP)[0];
    let clean = lakehouse_in(&root, "clean");
    for (i, b) in batches.iter().enumerate() {
        ingest(&clean, b);
        if i as i64 + 1 >= first_pin {
            run_ok(&clean, &format!("clean run after batch{i}"));
        }
    }
    let once = lakehouse_in(&root, "once");
    for b in &batches {
        ingest(&once, b);
    }
    run_ok(&once, "clean run once at the end");

    let got = tables(&dir);
    let want = tables(&clean);
    let want_once = tables(&once);
    assert_same_tables("seeded kills vs a run after each ingest", &got, &want);
    assert_same_rows(
        "seeded kills vs one run at the end: silver.events",
        &got.silver,
        &want_once.silver,
    );
    assert_same_rows(
        "seeded kills vs one run at the end: gold.daily_totals",
        &got.gold,
        &want_once.gold,
    );
    // one run at the end reads one snapshot: its quarantine rows name the version it pinned
    // and their `_record` has no `_commit_version`; all else is the same
    assert_same_rows(
        "seeded kills vs one run at the end: quarantine.events (without source versions)",
        &run_history_free(&got.quarantine),
        &run_history_free(&want_once.quarantine),
    );
    assert_no_row_twice(&dir, "after the seeded kills");
    assert_rerun_commits_nothing(&dir, "after the seeded kills");

    assert!(kills >= 20, "only {kills} kills landed");
    assert!(
        after_first_commit * 2 >= kills,
        "{after_first_commit} of {kills} kills after the run's first commit"
    );
}

/// A kill while a flow creates its quarantine or target table (its metastore row is
/// `creating`, its folder there, its first Delta commit maybe too) is followed by a run that
/// finishes the work, as after any other kill.
#[test]
fn kill_while_a_flow_creates_a_table_then_rerun() {
    let tmp = tempfile::tempdir().unwrap();
    let (_clean_tmp, clean) = lakehouse();
    let data = tmp.path().join("d");
    generate(&clean, &data, 500, 1, 7);
    ingest(&clean, &data);
    run_ok(&clean, "clean run");
    let want = tables(&clean);
    let mut failures = Vec::new();
    for table in ["quarantine/events", "silver/events", "gold/daily_totals"] {
        let (_t, dir) = lakehouse();
        ingest(&dir, &data);
        let folder = table_dir(&dir, table);
        let mut child = spawn_run(&dir);
        let started = Instant::now();
        // kill as soon as the table's folder appears: its row is `creating` then
        while !folder.exists() && child.try_wait().unwrap().is_none() {
            assert!(started.elapsed() < Duration::from_secs(60));
            std::thread::sleep(Duration::from_micros(200));
        }
        child.kill().unwrap();
        let status = child.wait().unwrap();
        if status.success() {
            println!("{table}: the run finished before its folder was seen; nothing to check");
            continue;
        }
        let state = format!(
            "killed at {} ms with {table} at version {:?}",
            started.elapsed().as_millis(),
            version_of(&dir, table)
        );
        let o = run_command(&dir, None).output().unwrap();
        if !o.status.success() {
            let err = String::from_utf8_lossy(&o.stderr)
                .lines()
                .filter(|l| l.starts_with("error"))
                .collect::<Vec<_>>()
                .join(" | ");
            failures.push(format!("{table} ({state}): the next run failed: {err}"));
            continue;
        }
        assert_same_tables(&format!("{table} ({state})"), &tables(&dir), &want);
        assert_rerun_commits_nothing(&dir, table);
        println!("{table}: {state}; the next run finished the work");
    }
    assert!(
        failures.is_empty(),
        "a kill while a table is created leaves the pipeline unable to run:\n  {}",
        failures.join("\n  ")
    );
}

/// After the runs that did the work, a run with no new input commits nothing, on the first
/// batch and after an incremental one.
#[test]
fn a_run_without_new_input_commits_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (_t, dir) = lakehouse();
    for (i, seed) in [8, 9].into_iter().enumerate() {
        let data = tmp.path().join(format!("d{i}"));
        generate(&dir, &data, 500, 1, seed);
        ingest(&dir, &data);
        let v = run_ok(&dir, "a run with new input");
        assert!(
            v["flows"]
                .as_array()
                .unwrap()
                .iter()
                .all(|f| f["status"] == "succeeded"),
            "{v}"
        );
        assert_rerun_commits_nothing(&dir, &format!("batch {i}"));
        assert_rerun_commits_nothing(&dir, &format!("batch {i}, again"));
    }
}
