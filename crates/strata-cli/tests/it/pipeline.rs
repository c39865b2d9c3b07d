//! `strata pipeline` end to end, on real lakehouses in temp folders: the shipped event pipeline
//! against an oracle written in DuckDB SQL over the raw NDJSON files (never Strata's tables, never
//! Rust that shares code with the pipeline), incrementally over a second batch of late and
//! out-of-order rows; idempotent re-runs; every write mode; every rule kind and action; strict
//! casts; validation errors; bronze columns no flow maps; and the run history.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::*;

// ---------------------------------------------------------------------------------------------
// helpers

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Writes `text` to `path`, creating its folder.
fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A pipeline file `name` in the temp folder.
fn pipeline_file(tmp: &Path, name: &str, toml: &str) -> PathBuf {
    let path = tmp.join("pipelines").join(name);
    write(&path, toml);
    path
}

fn example() -> PathBuf {
    crate::manifest_dir().join("../../examples/events.pipeline.toml")
}

/// `strata ingest SRC --into TABLE`.
fn ingest(dir: &Path, src: &Path, table: &str) {
    ok(dir, &["ingest", s(src), "--into", table]);
}

/// Lands NDJSON `lines` as the file `name` of a new landing folder, into `table`.
fn land(dir: &Path, tmp: &Path, table: &str, name: &str, lines: &[&str]) {
    let folder = tmp.join("landing").join(name.replace('.', "_"));
    write(&folder.join(name), &(lines.join("\n") + "\n"));
    ingest(dir, &folder, table);
}

/// `pipeline run FILE [extra]` with JSON output: the exit code, the summary and stderr.
fn run_with(dir: &Path, file: &Path, extra: &[&str]) -> (i32, Value, String) {
    let mut args = vec!["--format", "json", "pipeline", "run", s(file)];
    args.extend_from_slice(extra);
    let o = strata(dir, &args);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    let v: Value = serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("pipeline run printed no summary ({e}): {}", text(&o)));
    (o.status.code().unwrap_or(-1), v, err)
}

/// A run that must succeed; returns its summary.
fn run_ok(dir: &Path, file: &Path) -> Value {
    let (code, v, err) = run_with(dir, file, &[]);
    assert_eq!(code, 0, "pipeline run failed: {v:#}\n{err}");
    assert_eq!(v["status"], "succeeded", "{v:#}\n{err}");
    v
}

/// flow -> status of a run summary.
fn statuses(v: &Value) -> BTreeMap<String, String> {
    v["flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["flow"].as_str().unwrap().to_string(),
                f["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn flow<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["flows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["flow"] == name)
        .unwrap_or_else(|| panic!("no flow {name} in {v:#}"))
}

/// A JSON cell as text; NULL (a key the JSON output leaves out) as "NULL".
fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "NULL".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// The rows of a query as text, columns in the order given, sorted.
fn rows(dir: &Path, sql: &str, cols: &[&str]) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = query(dir, sql)
        .iter()
        .map(|r| cols.iter().map(|c| cell(r.get(*c))).collect())
        .collect();
    out.sort();
    out
}

/// The folder of `schema.table`.
fn table_dir(dir: &Path, name: &str) -> PathBuf {
    let (schema, table) = name.split_once('.').unwrap();
    dir.join("lakehouse").join(schema).join(table)
}

fn version(dir: &Path, name: &str) -> i64 {
    latest_version(&table_dir(dir, name))
}

/// The Delta versions of tables, by name.
fn versions(dir: &Path, tables: &[&str]) -> BTreeMap<String, i64> {
    tables
        .iter()
        .map(|t| (t.to_string(), version(dir, t)))
        .collect()
}

/// Runs again: every flow `skipped`, and no table gains a version.
fn assert_idempotent(dir: &Path, file: &Path, tables: &[&str]) {
    let before = versions(dir, tables);
    let v = run_ok(dir, file);
    for (f, st) in statuses(&v) {
        assert_eq!(st, "skipped", "flow {f} of a run with no new input: {v:#}");
    }
    for f in v["flows"].as_array().unwrap() {
        assert_eq!(f["commits"], serde_json::json!([]), "{v:#}");
    }
    assert_eq!(
        versions(dir, tables),
        before,
        "a run with no new input committed"
    );
}

/// The actions of one Delta commit.
fn commit_actions(dir: &Path, table: &str, v: i64) -> Vec<Value> {
    let path = table_dir(dir, table)
        .join("_delta_log")
        .join(format!("{v:020}.json"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path:?}: {e}"))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// One row of a quarantine table.
#[derive(Debug, Clone)]
struct QRow {
    stage: String,
    flow: String,
    rules: BTreeSet<String>,
    reason: String,
    record: Value,
}

fn quarantine(dir: &Path, table: &str) -> Vec<QRow> {
    query(
        dir,
        &format!("SELECT _stage, _flow, _rules, _reason, _record FROM {table}"),
    )
    .iter()
    .map(|r| QRow {
        stage: cell(r.get("_stage")),
        flow: cell(r.get("_flow")),
        rules: r["_rules"]
            .as_array()
            .map(|a| a.iter().map(|x| x.as_str().unwrap().to_string()).collect())
            .unwrap_or_default(),
        reason: cell(r.get("_reason")),
        record: serde_json::from_str(r["_record"].as_str().unwrap()).unwrap(),
    })
    .collect()
}

/// `system.flow_runs` of one run, by flow.
fn flow_runs(dir: &Path, run_id: &str) -> BTreeMap<String, Value> {
    query(
        dir,
        &format!("SELECT * FROM system.flow_runs WHERE run_id = '{run_id}'"),
    )
    .into_iter()
    .map(|r| (r["flow"].as_str().unwrap().to_string(), r))
    .collect()
}

/// `system.quality_results` of one run: rule -> (action, rows_checked, rows_failed, passed, observed).
fn quality(dir: &Path, run_id: &str) -> BTreeMap<String, (String, i64, i64, bool, String)> {
    query(
        dir,
        &format!("SELECT * FROM system.quality_results WHERE run_id = '{run_id}'"),
    )
    .into_iter()
    .map(|r| {
        (
            cell(r.get("rule")),
            (
                cell(r.get("action")),
                r["rows_checked"].as_i64().unwrap(),
                r["rows_failed"].as_i64().unwrap(),
                r["passed"].as_bool().unwrap(),
                cell(r.get("observed")),
            ),
        )
    })
    .collect()
}

/// Column tags of a table, from `system.columns`.
fn column_tags(dir: &Path, table: &str) -> BTreeMap<String, Vec<String>> {
    query(
        dir,
        &format!(
            "SELECT column_name, tags FROM system.columns WHERE full_name = 'lakehouse.{table}'"
        ),
    )
    .into_iter()
    .map(|r| {
        let mut tags: Vec<String> = r["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect();
        tags.sort();
        (r["column_name"].as_str().unwrap().to_string(), tags)
    })
    .collect()
}

/// Asserts two sorted row lists are equal, showing the rows only one side has.
fn assert_same_rows(what: &str, strata_rows: &[Vec<String>], oracle: &[Vec<String>]) {
    if strata_rows == oracle {
        return;
    }
    let a: BTreeSet<&Vec<String>> = strata_rows.iter().collect();
    let b: BTreeSet<&Vec<String>> = oracle.iter().collect();
    let only_strata: Vec<_> = a.difference(&b).take(10).collect();
    let only_oracle: Vec<_> = b.difference(&a).take(10).collect();
    panic!(
        "{what}: Strata has {} rows, the oracle {}\n  only in Strata: {only_strata:?}\n  only in the oracle: {only_oracle:?}",
        strata_rows.len(),
        oracle.len()
    );
}

// ---------------------------------------------------------------------------------------------
// the event pipeline against DuckDB

/// The oracle: the issue's "Shipped example" semantics in DuckDB SQL over the raw NDJSON files
/// (given in arrival order). Prints silver and gold rows as text, and the event ids of the
/// quarantined rows per stage.
const ORACLE: &str = r##"
import json, os, sys, duckdb
files = json.loads(sys.argv[1])
con = duckdb.connect()
con.execute("CREATE TABLE files(fileno INTEGER, path VARCHAR)")
con.executemany("INSERT INTO files VALUES (?, ?)", list(enumerate(files)))
# one row per non-blank line, with its file's arrival rank and its 1-based line number
con.execute("""
CREATE TABLE raw AS
SELECT f.fileno, t.lineno, t.line
FROM (SELECT filename, generate_subscripts(lines, 1) AS lineno, unnest(lines) AS line
      FROM (SELECT filename, string_split(content, chr(10)) AS lines FROM read_text($paths))) t
JOIN files f ON f.path = t.filename
WHERE t.line <> ''
""", {"paths": files})
def lit(k):
    # the text bronze keeps for top-level field k: a string unescaped, a number as written,
    # true/false as text, null (or absent, or a corrupt line) as NULL
    return f"""CASE WHEN j IS NULL OR json_type(j, '$.{k}') IS NULL THEN NULL ELSE CASE json_type(j, '$.{k}')
      WHEN 'VARCHAR' THEN json_extract_string(j, '$.{k}')
      WHEN 'NULL' THEN NULL
      WHEN 'BOOLEAN' THEN json_extract(j, '$.{k}')::VARCHAR
      WHEN 'OBJECT' THEN json_extract(j, '$.{k}')::VARCHAR
      WHEN 'ARRAY' THEN json_extract(j, '$.{k}')::VARCHAR
      ELSE regexp_extract(line, '"{k}"\\s*:\\s*(-?[0-9][0-9.eE+-]*)', 1) END END"""
cols = ["event_id", "user_id", "event_type", "ts", "session_id", "amount", "country", "device"]
con.execute(f"""
CREATE TABLE bronze AS
SELECT fileno, lineno, {", ".join(lit(c) + " AS " + c for c in cols)}
FROM (SELECT fileno, lineno, line,
        CASE WHEN json_valid(line) THEN
          CASE WHEN json_type(line) = 'OBJECT' THEN line::JSON END END AS j
      FROM raw)
""")
TS = r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}(?::\d{2})?)?$"
NUM = r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$"
con.execute(f"""
CREATE TABLE typed AS
WITH p AS (
  SELECT *, regexp_extract(ts, '{TS}', ['y','mo','d','h','mi','s','f','z']) AS m,
         regexp_full_match(coalesce(ts, ''), '{TS}') AS ts_shape,
         regexp_full_match(coalesce(amount, ''), '{NUM}') AS amount_shape
  FROM bronze
), q AS (
  SELECT *,
    try_cast(m.y || '-' || m.mo || '-' || m.d AS DATE) AS day,
    CASE WHEN m.s = '' THEN 0 ELSE try_cast(m.s AS INT) END AS sec,
    CASE WHEN m.f = '' THEN 0 ELSE try_cast(rpad(left(m.f, 6), 6, '0') AS BIGINT) END AS frac,
    CASE WHEN m.z IN ('', 'Z') THEN 0
         ELSE (CASE WHEN left(m.z, 1) = '-' THEN -1 ELSE 1 END)
              * (try_cast(substr(m.z, 2, 2) AS INT) * 3600
                 + coalesce(try_cast(substr(m.z, 5, 2) AS INT), 0) * 60) END AS off,
    CASE WHEN m.z IN ('', 'Z') THEN TRUE
         ELSE try_cast(substr(m.z, 2, 2) AS INT) <= 23
              AND coalesce(try_cast(substr(m.z, 5, 2) AS INT), 0) <= 59 END AS off_ok,
    CASE WHEN amount_shape THEN round(CAST(amount AS DECIMAL(38,10)), 4) END AS amount_val
  FROM p
)
SELECT fileno, lineno, event_id, user_id, event_type, session_id, country, device, ts, amount,
  CASE WHEN ts IS NULL THEN TRUE
       ELSE ts_shape AND day IS NOT NULL AND try_cast(m.h AS INT) <= 23
            AND try_cast(m.mi AS INT) <= 59 AND sec <= 59 AND off_ok END AS ts_ok,
  CASE WHEN ts IS NULL OR NOT ts_shape OR day IS NULL THEN NULL
       ELSE (day - DATE '1970-01-01')::BIGINT * 86400000000
            + ((try_cast(m.h AS BIGINT) * 60 + try_cast(m.mi AS BIGINT)) * 60 + sec - off) * 1000000
            + frac END AS event_us,
  amount IS NULL OR (amount_shape AND abs(amount_val) < 100000000000000) AS amount_ok,
  amount_val::DECIMAL(18,4) AS amount_dec
FROM q
""")
con.execute("""
CREATE TABLE checked AS
SELECT *,
  NOT (ts_ok AND amount_ok) AS cast_failed,
  coalesce(event_id IS NOT NULL AND user_id IS NOT NULL AND event_us IS NOT NULL
           AND event_type IN ('click', 'purchase', 'view', 'signup') AND amount_dec >= 0,
           FALSE) AS passed
FROM typed
""")
def rows(sql):
    return [["NULL" if v is None else str(v) for v in r] for r in con.execute(sql).fetchall()]
silver = """
SELECT event_id, user_id, event_type, event_us, session_id, amount_dec,
       CAST(make_timestamp(event_us) AS DATE) AS event_date, country, device
FROM checked WHERE NOT cast_failed AND passed
QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY event_us DESC, fileno DESC, lineno DESC) = 1
"""
out = {
  "silver": rows(silver),
  "gold": rows(f"SELECT user_id, event_date, sum(amount_dec), count(*) FROM ({silver}) GROUP BY ALL"),
  "cast": rows("SELECT event_id FROM checked WHERE cast_failed"),
  "expectation": rows("SELECT event_id FROM checked WHERE NOT cast_failed AND NOT passed"),
  "lines": con.execute("SELECT count(*) FROM bronze").fetchone()[0],
}
print(json.dumps(out))
os._exit(0)
"##;

/// The oracle's tables for these files (in arrival order): silver, gold, and the quarantined
/// event ids per stage, each sorted.
struct Expected {
    silver: Vec<Vec<String>>,
    gold: Vec<Vec<String>>,
    cast: Vec<String>,
    expectation: Vec<String>,
}

fn oracle(files: &[PathBuf]) -> Expected {
    let list: Vec<&str> = files.iter().map(|p| s(p)).collect();
    let arg = serde_json::to_string(&list).unwrap();
    let v = py(ORACLE, &[&arg]);
    let table = |k: &str| -> Vec<Vec<String>> {
        let mut t: Vec<Vec<String>> = v[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r.as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c.as_str().unwrap().to_string())
                    .collect()
            })
            .collect();
        t.sort();
        t
    };
    let ids = |k: &str| -> Vec<String> {
        let mut t: Vec<String> = table(k).into_iter().map(|r| r[0].clone()).collect();
        t.sort();
        t
    };
    Expected {
        silver: table("silver"),
        gold: table("gold"),
        cast: ids("cast"),
        expectation: ids("expectation"),
    }
}

const SILVER_COLS: [&str; 9] = [
    "event_id",
    "user_id",
    "event_type",
    "us",
    "session_id",
    "amount",
    "event_date",
    "country",
    "device",
];

fn strata_silver(dir: &Path) -> Vec<Vec<String>> {
    rows(
        dir,
        "SELECT event_id, user_id, event_type, CAST(CAST(event_ts AS BIGINT) AS STRING) AS us, \
         session_id, CAST(amount AS STRING) AS amount, CAST(event_date AS STRING) AS event_date, \
         country, device FROM silver.events",
        &SILVER_COLS,
    )
}

fn strata_gold(dir: &Path) -> Vec<Vec<String>> {
    rows(
        dir,
        "SELECT user_id, CAST(event_date AS STRING) AS d, CAST(daily_total AS STRING) AS t, \
         CAST(event_count AS STRING) AS n FROM gold.daily_totals",
        &["user_id", "d", "t", "n"],
    )
}

/// Compares silver, gold and the quarantine with the oracle.
fn assert_matches_oracle(dir: &Path, exp: &Expected) {
    // silver has exactly the documented columns, in order
    let cols: Vec<String> = query(
        dir,
        "SELECT column_name FROM system.columns WHERE full_name = 'lakehouse.silver.events' ORDER BY ordinal",
    )
    .iter()
    .map(|r| cell(r.get("column_name")))
    .collect();
    assert_eq!(
        cols,
        [
            "event_id",
            "user_id",
            "event_type",
            "event_ts",
            "session_id",
            "amount",
            "event_date",
            "country",
            "device"
        ]
    );
    assert_same_rows("silver.events", &strata_silver(dir), &exp.silver);
    assert_same_rows("gold.daily_totals", &strata_gold(dir), &exp.gold);
    let q = quarantine(dir, "quarantine.events");
    for (stage, want) in [("cast", &exp.cast), ("expectation", &exp.expectation)] {
        let mut got: Vec<String> = q
            .iter()
            .filter(|r| r.stage == stage)
            .map(|r| cell(r.record.get("event_id")))
            .collect();
        got.sort();
        assert_eq!(&got, want, "quarantine.events rows of stage {stage}");
    }
    assert!(
        q.iter()
            .all(|r| r.flow == "silver_events" && (r.stage == "cast") == r.rules.is_empty()),
        "{q:?}"
    );
}

/// Howard Hinnant's days-to-civil: (year, month, day) of a day count from 1970-01-01.
fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Epoch microseconds as an RFC 3339 timestamp written at `offset_min` minutes from UTC.
fn iso(us: i64, offset_min: i64) -> String {
    const DAY: i64 = 86_400_000_000;
    let local = us + offset_min * 60_000_000;
    let (y, m, d) = civil(local.div_euclid(DAY));
    let rem = local.rem_euclid(DAY);
    let (secs, frac) = (rem / 1_000_000, rem % 1_000_000);
    let off = if offset_min == 0 {
        "Z".to_string()
    } else {
        let sign = if offset_min < 0 { '-' } else { '+' };
        format!(
            "{sign}{:02}:{:02}",
            offset_min.abs() / 60,
            offset_min.abs() % 60
        )
    };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:06}{off}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// One event line; `amount` is JSON (a number, or a quoted string).
fn event_line(r: &[String], event_type: &str, ts: &str, amount: &str, session: &str) -> String {
    format!(
        r#"{{"event_id":"{}","user_id":"{}","event_type":"{event_type}","ts":"{ts}","session_id":"{session}","amount":{amount},"country":"{}","device":"{}"}}"#,
        r[0], r[1], r[7], r[8]
    )
}

fn silver_row(dir: &Path, event_id: &str) -> Option<Vec<String>> {
    strata_silver(dir).into_iter().find(|r| r[0] == event_id)
}

#[test]
fn event_pipeline_matches_a_duckdb_oracle_across_two_batches() {
    let (tmp, dir) = lakehouse();
    let tmp = tmp.path();
    let data = tmp.join("data1");
    ok(
        &dir,
        &[
            "generate",
            "events",
            "--rows",
            "3000",
            "--files",
            "2",
            "--seed",
            "11",
            "--out",
            s(&data),
        ],
    );
    ingest(&dir, &data, "bronze.events");
    let file = example();
    let v = run_ok(&dir, &file);
    assert_eq!(
        statuses(&v).values().collect::<Vec<_>>(),
        ["succeeded", "succeeded"]
    );
    let mut files = vec![
        data.join("events-00000.ndjson"),
        data.join("events-00001.ndjson"),
    ];
    let exp = oracle(&files);
    // the generated defects are there to be caught
    assert!(
        exp.cast.len() >= 5 && exp.expectation.len() >= 20,
        "{:?}",
        exp.cast
    );
    assert_matches_oracle(&dir, &exp);
    let sv = flow(&v, "silver_events");
    assert_eq!(sv["rows_read"], 3000);
    assert_eq!(
        sv["rows_quarantined"],
        (exp.cast.len() + exp.expectation.len()) as i64
    );
    assert_eq!(
        sv["rows_written"].as_i64().unwrap(),
        exp.silver.len() as i64
    );
    let tables = [
        "bronze.events",
        "silver.events",
        "gold.daily_totals",
        "quarantine.events",
    ];
    assert_idempotent(&dir, &file, &tables);

    // the second batch: late and out-of-order duplicates of first-batch events, built from the
    // oracle's silver rows (event_id, user_id, type, us, session, amount, date, country, device)
    let base = &exp.silver;
    let moved = base
        .iter()
        .find(|r| r[2] == "purchase" && r[5] != "0.0000")
        .expect("a purchase with an amount")
        .clone();
    let others: Vec<&Vec<String>> = base.iter().filter(|r| r[0] != moved[0]).collect();
    let (later, earlier, negative, tie) = (others[0], others[1], others[2], others[3]);
    let us = |r: &[String]| r[3].parse::<i64>().unwrap();
    let hour = 3_600_000_000i64;
    let new = |id: &str, user: &str| -> Vec<String> {
        vec![
            id.into(),
            user.into(),
            "purchase".into(),
            "0".into(),
            "s-new".into(),
            "0".into(),
            "".into(),
            "DE".into(),
            "ios".into(),
        ]
    };
    let n1 = new("evt-new-1", "u-90001");
    let n2 = new("evt-new-2", "u-90002");
    let n3 = new("evt-new-3", "u-90003");
    let n4 = new("evt-new-4", "u-90004");
    let n5 = new("evt-new-5", "u-90005");
    let n6 = new("evt-new-6", "u-90006");
    let n7 = new("evt-new-7", "u-90007");
    let n8 = new("evt-new-8", "u-90008");
    let batch2 = [
        // (a) later ts and a new amount: replaces
        event_line(
            later,
            "purchase",
            &iso(us(later) + hour, 0),
            "123.45",
            "s-late",
        ),
        // (b) an earlier ts: never overwrites the newer row
        event_line(
            earlier,
            "purchase",
            &iso(us(earlier) - 24 * hour, 0),
            "\"999.99\"",
            "s-old",
        ),
        // a later version that fails a rule: quarantined, the old row stays
        event_line(
            negative,
            "purchase",
            &iso(us(negative) + hour, 0),
            "-5.00",
            "s-neg",
        ),
        // (d) moves the event three days later: gold's old day drops, the new day grows
        event_line(
            &moved,
            "purchase",
            &iso(us(&moved) + 72 * hour, 0),
            "50.00",
            "s-moved",
        ),
        // the same instant written with an offset: a tie, the later arrival wins
        event_line(tie, "click", &iso(us(tie), 120), "7.5", "s-tie"),
        // (c) two rows of one new key in one file: the later ts wins, though it arrived first
        event_line(&n1, "purchase", "2026-02-01T10:00:00Z", "1.00", "s-n1-late"),
        event_line(
            &n1,
            "purchase",
            "2026-02-01T09:00:00Z",
            "2.00",
            "s-n1-early",
        ),
        // two rows of one key at the same instant (written two ways): the later arrival wins
        event_line(&n2, "purchase", "2026-02-01 12:00", "3.00", "s-n2-first"),
        event_line(
            &n2,
            "purchase",
            "2026-02-01T12:00:00.000000000Z",
            "4.00",
            "s-n2-second",
        ),
        // a space after the amount is a failed cast, not a NULL
        event_line(&n3, "purchase", "2026-02-01T10:00:00Z", "\"12.5 \"", "s-n3"),
        // an offset moves the UTC date; an exponent; half away from zero
        event_line(
            &n4,
            "purchase",
            "2026-02-01T23:30:00-02:00",
            "1.23456e2",
            "s-n4",
        ),
        event_line(&n5, "view", "2026-02-01T10:00:00Z", "0.00005", "s-n5"),
        event_line(&n6, "bogus", "2026-02-01T10:00:00Z", "1.00", "s-n6"),
        event_line(&n7, "purchase", "2026-02-30T10:00:00Z", "1.00", "s-n7"),
        event_line(&n8, "view", "2026-02-01T10:00:00Z", "-0.00004", "s-n8"),
        r#"{"event_id": "evt-broken", "user_id": "#.to_string(),
    ];
    let data2 = tmp.join("data2");
    let late = data2.join("late-00000.ndjson");
    write(&late, &(batch2.join("\n") + "\n"));
    let gold_before = strata_gold(&dir);
    ingest(&dir, &data2, "bronze.events");
    let v = run_ok(&dir, &file);
    assert_eq!(
        statuses(&v).values().collect::<Vec<_>>(),
        ["succeeded", "succeeded"]
    );
    assert_eq!(
        flow(&v, "silver_events")["rows_read"],
        batch2.len() as i64,
        "the second run reads only the new bronze rows"
    );
    files.push(late);
    let exp2 = oracle(&files);
    assert_matches_oracle(&dir, &exp2);

    // the cases, spelled out
    let row = |id: &str| silver_row(&dir, id).unwrap_or_else(|| panic!("{id} not in silver"));
    assert_eq!(row(&later[0])[5], "123.4500");
    assert_eq!(row(&later[0])[4], "s-late");
    assert_eq!(
        &row(&earlier[0]),
        earlier,
        "an older duplicate overwrote a newer row"
    );
    assert_eq!(&row(&negative[0]), negative);
    assert_eq!(row(&tie[0])[4], "s-tie");
    assert_eq!(row(&tie[0])[3], tie[3]);
    assert_eq!(row("evt-new-1")[4], "s-n1-late");
    assert_eq!(row("evt-new-2")[4], "s-n2-second");
    assert!(silver_row(&dir, "evt-new-3").is_none());
    assert_eq!(row("evt-new-4")[5], "123.4560");
    assert_eq!(row("evt-new-4")[6], "2026-02-02");
    assert_eq!(row("evt-new-5")[5], "0.0001");
    assert_eq!(row("evt-new-8")[5], "0.0000");
    let m = row(&moved[0]);
    assert_ne!(m[6], moved[6], "the moved event changed its date");
    // gold followed the move
    let gold_after = strata_gold(&dir);
    let find = |g: &[Vec<String>], user: &str, day: &str| {
        g.iter()
            .find(|r| r[0] == user && r[1] == day)
            .map(|r| (r[2].clone(), r[3].parse::<i64>().unwrap()))
    };
    let (_, old_n) = find(&gold_before, &moved[1], &moved[6]).unwrap();
    match find(&gold_after, &moved[1], &moved[6]) {
        None => assert_eq!(old_n, 1),
        Some((_, n)) => assert_eq!(n, old_n - 1),
    }
    let (total, _) = find(&gold_after, &moved[1], &m[6]).expect("the new day's row");
    assert!(total.parse::<f64>().unwrap() >= 50.0, "{total}");
    let q = quarantine(&dir, "quarantine.events");
    let n3q = q
        .iter()
        .find(|r| r.record["event_id"] == "evt-new-3")
        .unwrap();
    assert_eq!(n3q.stage, "cast");
    assert!(
        n3q.reason.contains("amount") && n3q.reason.contains("'12.5 '"),
        "{}",
        n3q.reason
    );
    let negq = q
        .iter()
        .find(|r| r.record["event_id"] == negative[0].as_str())
        .unwrap();
    assert_eq!(negq.stage, "expectation");
    assert_eq!(
        negq.rules,
        BTreeSet::from(["amount_not_negative".to_string()])
    );
    assert_idempotent(&dir, &file, &tables);
    // a full refresh recomputes both flows from the snapshots: the same tables, and each
    // failure still quarantined once
    let (code, v, err) = run_with(&dir, &file, &["--full-refresh"]);
    assert_eq!(code, 0, "{v:#}\n{err}");
    assert_eq!(
        statuses(&v).values().collect::<Vec<_>>(),
        ["succeeded", "succeeded"]
    );
    assert_matches_oracle(&dir, &exp2);
    assert_idempotent(&dir, &file, &tables);
}

#[test]
fn a_second_run_with_no_new_input_commits_nothing() {
    let (tmp, dir) = lakehouse();
    let data = tmp.path().join("data");
    ok(
        &dir,
        &[
            "generate",
            "events",
            "--rows",
            "400",
            "--files",
            "2",
            "--seed",
            "3",
            "--out",
            s(&data),
        ],
    );
    ingest(&dir, &data, "bronze.events");
    let file = example();
    let tables = ["silver.events", "gold.daily_totals", "quarantine.events"];
    run_ok(&dir, &file);
    assert_idempotent(&dir, &file, &tables);
    assert_idempotent(&dir, &file, &tables);
    // an ingest that lands nothing new leaves the pipeline with nothing to do
    ingest(&dir, &data, "bronze.events");
    assert_idempotent(&dir, &file, &tables);
    // new bronze rows that all fail: the watermark still moves (a commit), then nothing again
    let bad = tmp.path().join("bad");
    write(
        &bad.join("bad.ndjson"),
        r#"{"event_id":"evt-bad","user_id":null,"event_type":"view","ts":"2026-01-01T00:00:00Z","amount":0}"#,
    );
    ingest(&dir, &bad, "bronze.events");
    let v = run_ok(&dir, &file);
    assert_eq!(flow(&v, "silver_events")["status"], "succeeded");
    assert_eq!(flow(&v, "silver_events")["rows_quarantined"], 1);
    assert_idempotent(&dir, &file, &tables);
}

// ---------------------------------------------------------------------------------------------
// write modes

#[test]
fn append_adds_only_new_rows_and_refuses_aggregates() {
    let (tmp, dir) = lakehouse();
    let tmp = tmp.path();
    land(
        &dir,
        tmp,
        "bronze.clicks",
        "c1.ndjson",
        &[
            r#"{"id": 1, "page": "/a"}"#,
            r#"{"id": 2, "page": "/b"}"#,
            r#"{"id": 3, "page": "/a"}"#,
        ],
    );
    let file = pipeline_file(
        tmp,
        "clicks.toml",
        r#"
[pipeline]
name = "clicks"

[[flows]]
name = "clicks"
target = "silver.clicks"
source = "bronze.clicks"
mode = "append"
steps = [ { cast = { id = "BIGINT" } } ]
"#,
    );
    let v = run_ok(&dir, &file);
    assert_eq!(flow(&v, "clicks")["rows_written"], 3);
    assert_idempotent(&dir, &file, &["silver.clicks"]);
    land(
        &dir,
        tmp,
        "bronze.clicks",
        "c2.ndjson",
        &[r#"{"id": 4, "page": "/c"}"#, r#"{"id": 5, "page": "/a"}"#],
    );
    let v = run_ok(&dir, &file);
    assert_eq!(flow(&v, "clicks")["rows_read"], 2);
    assert_eq!(flow(&v, "clicks")["rows_written"], 2);
    assert_eq!(
        rows(
            &dir,
            "SELECT CAST(id AS STRING) AS id, page FROM silver.clicks",
            &["id", "page"]
        ),
        [
            ["1", "/a"],
            ["2", "/b"],
            ["3", "/a"],
            ["4", "/c"],
            ["5", "/a"]
        ]
    );
    // steps-only: every column but bronze's system columns
    let cols = column_tags(&dir, "silver.clicks");
    assert_eq!(cols.keys().collect::<Vec<_>>(), ["id", "page"]);
    assert_idempotent(&dir, &file, &["silver.clicks"]);

    for sql in [
        "SELECT page, count(*) AS n FROM input GROUP BY page",
        "SELECT DISTINCT page FROM input",
    ] {
        let bad = pipeline_file(
            tmp,
            "agg.toml",
            &format!(
                r#"
[pipeline]
name = "agg"

[[flows]]
name = "per_page"
target = "silver.per_page"
source = "bronze.clicks"
mode = "append"
sql = "{sql}"
"#
            ),
        );
        let err = fails(&dir, &["pipeline", "validate", s(&bad)]);
        assert!(
            err.contains("append") && err.contains("per_page"),
            "{sql}: {err}"
        );
        let err = fails(&dir, &["pipeline", "run", s(&bad)]);
        assert!(err.contains("append"), "{err}");
    }
    assert!(!table_dir(&dir, "silver.per_page").exists());
}

const KV: &str = r#"
[pipeline]
name = "kv"

[[flows]]
name = "kv"
target = "silver.kv"
source = "bronze.cdc"
mode = "merge"
keys = ["id"]
sequence_by = "seq"
delete_when = "op = 'D'"
steps = [ { cast = { seq = "BIGINT" } } ]
sql = "SELECT id, v, seq, op FROM input"
"#;

fn kv(dir: &Path) -> Vec<Vec<String>> {
    rows(
        dir,
        "SELECT id, v, CAST(seq AS STRING) AS seq FROM silver.kv",
        &["id", "v", "seq"],
    )
}

#[test]
fn merge_sequences_late_rows_and_deletes() {
    let (tmp, dir) = lakehouse();
    let tmp = tmp.path();
    let file = pipeline_file(tmp, "kv.toml", KV);
    land(
        &dir,
        tmp,
        "bronze.cdc",
        "b1.ndjson",
        &[
            r#"{"id": "k1", "v": "a", "seq": 1, "op": "U"}"#,
            r#"{"id": "k2", "v": "b", "seq": 1, "op": "U"}"#,
            r#"{"id": "k3", "v": "c", "seq": 1, "op": "U"}"#,
            r#"{"id": "k8", "v": "h", "seq": 1, "op": "U"}"#,
        ],
    );
    run_ok(&dir, &file);
    assert_eq!(
        kv(&dir),
        [
            ["k1", "a", "1"],
            ["k2", "b", "1"],
            ["k3", "c", "1"],
            ["k8", "h", "1"]
        ]
    );
    assert_idempotent(&dir, &file, &["silver.kv"]);
    land(
        &dir,
        tmp,
        "bronze.cdc",
        "b2.ndjson",
        &[
            r#"{"id": "k1", "v": "a2", "seq": 3, "op": "U"}"#,
            r#"{"id": "k2", "v": "old", "seq": 0, "op": "U"}"#,
            r#"{"id": "k3", "v": "c", "seq": 2, "op": "D"}"#,
            r#"{"id": "k4", "v": "d", "seq": 1, "op": "D"}"#,
            r#"{"id": "k5", "v": "e5", "seq": 5, "op": "U"}"#,
            r#"{"id": "k5", "v": "e4", "seq": 4, "op": "U"}"#,
            r#"{"id": "k6", "v": "f1", "seq": 1, "op": "U"}"#,
            r#"{"id": "k6", "v": "f2", "seq": 1, "op": "U"}"#,
            r#"{"id": "k8", "v": "h0", "seq": 0, "op": "D"}"#,
            r#"{"id": null, "v": "x", "seq": 1, "op": "U"}"#,
        ],
    );
    let v = run_ok(&dir, &file);
    assert_eq!(flow(&v, "kv")["rows_quarantined"], 1);
    assert_eq!(
        kv(&dir),
        [
            // newer: updated
            ["k1", "a2", "3"],
            // older, arriving later: ignored
            ["k2", "b", "1"],
            // two rows of one key in one batch: the larger seq, though it arrived first
            ["k5", "e5", "5"],
            // same seq twice: the later arrival
            ["k6", "f2", "1"],
            // an older delete does not delete a newer row
            ["k8", "h", "1"],
        ],
        "k3 deleted, k4 (a delete of a key never seen) not inserted"
    );
    let q = quarantine(&dir, "quarantine.kv");
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!(q[0].stage, "expectation");
    assert_eq!(q[0].rules, BTreeSet::from(["key_not_null".to_string()]));
    assert_idempotent(&dir, &file, &["silver.kv", "quarantine.kv"]);
}

/// `delete_when` is a condition: a row for which it is NULL (no `op`) is not a delete, so it
/// is upserted like any other row.
#[test]
fn merge_upserts_rows_whose_delete_condition_is_null() {
    let (tmp, dir) = lakehouse();
    let tmp = tmp.path();
    let file = pipeline_file(tmp, "kv.toml", KV);
    land(
        &dir,
        tmp,
        "bronze.cdc",
        "b1.ndjson",
        &[
            r#"{"id": "k1", "v": "a", "seq": 1}"#,
            r#"{"id": "k2", "v": "b", "seq": 1, "op": "U"}"#,
            r#"{"id": "k3", "v": "c", "seq": 1, "op": null}"#,
        ],
    );
    let v = run_ok(&dir, &file);
    let written = flow(&v, "kv")["rows_written"].clone();
    assert_eq!(
        kv(&dir),
        [["k1", "a", "1"], ["k2", "b", "1"], ["k3", "c", "1"]],
        "rows without op were lost (the run reported {written} rows written, nothing quarantined \
         or dropped)"
    );
    land(
        &dir,
        tmp,
        "bronze.cdc",
        "b2.ndjson",
        &[
            r#"{"id": "k1", "v": "a2", "seq": 2}"#,
            r#"{"id": "k4", "v": "d", "seq": 1}"#,
        ],
    );
    run_ok(&dir, &file);
    assert_eq!(
        kv(&dir),
        [
            ["k1", "a2", "2"],
            ["k2", "b", "1"],
            ["k3", "c", "1"],
            ["k4", "d", "1"]
        ]
    );
}

#[test]
fn replace_rewrites_only_the_partitions_the_changes_touch() {
    let (tmp, dir) = lakehouse();
    let tmp = tmp.path();
    land(
        &dir,
        tmp,
        "bronze.sales",
        "s1.ndjson",
        &[
            r#"{"day": "2024-01-01", "store": "s1", "amount": "10"}"#,
            r#"{"day": "2024-01-01", "store": "s2", "amount": "5"}"#,
            r#"{"day": "2024-01-02", "store": "s1", "amount": "7"}"#,
        ],
    );
    let file = pipeline_file(
        tmp,
        "sales.toml",
        r#"
[pipeline]
name = "sales"

[[flows]]
name = "daily"
target = "silver.daily_sales"
source = "bronze.sales"
mode = "replace"
partition_by = ["day"]
steps = [ { cast = { amount = "BIGINT" } } ]
sql = "SELECT day, store, sum(amount) AS total, count(*) AS n FROM input GROUP BY day, store"
"#,
    );
    let q = "SELECT day, store, CAST(total AS STRING) AS total, CAST(n AS STRING) AS n FROM silver.daily_sales";
    let cols = ["day", "store", "total", "n"];
    run_ok(&dir, &file);
    assert_eq!(
        rows(&dir, q, &cols),
        [
            ["2024-01-01", "s1", "10", "1"],
            ["2024-01-01", "s2", "5", "1"],
            ["2024-01-02", "s1", "7", "1"]
        ]
    );
    assert_idempotent(&dir, &file, &["silver.daily_sales"]);
    let before = version(&dir, "silver.daily_sales");
    land(
        &dir,
        tmp,
        "bronze.sales",
        "s2.ndjson",
        &[
            r#"{"day": "2024-01-02", "store": "s1", "amount": "3"}"#,
            r#"{"day": "2024-01-03", "store": "s2", "amount": "1"}"#,
        ],
    );
    let v = run_ok(&dir, &file);
    assert_eq!(
        rows(&dir, q, &cols),
        [
            ["2024-01-01", "s1", "10", "1"],
            ["2024-01-01", "s2", "5", "1"],
            ["2024-01-02", "s1", "10", "2"],
            ["2024-01-03", "s2", "1", "1"]
        ],
        "a re-run never duplicates: the touched day is recomputed from all its rows"
    );
    let after = version(&dir, "silver.daily_sales");
    assert_eq!(after, before + 1, "one commit: {v:#}");
    // that commit adds and removes files of the touched days only
    let mut touched = BTreeSet::new();
    for a in commit_actions(&dir, "silver.daily_sales", after) {
        for kind in ["add", "remove"] {
            if let Some(x) = a.get(kind) {
                touched.insert(cell(x["partitionValues"].get("day")));
            }
        }
    }
    assert_eq!(
        touched,
        BTreeSet::from(["2024-01-02".to_string(), "2024-01-03".to_string()])
    );
    assert_idempotent(&dir, &file, &["silver.daily_sales"]);
    // a backfill of a range recomputes exactly those days from the versions the flow consumed,
    // and can be repeated; it leaves the watermark alone
    land(
        &dir,
        tmp,
        "bronze.sales",
        "s3.ndjson",
        &[r#"{"day": "2024-01-01", "store": "s1", "amount": "100"}"#],
    );
    let expected_before = rows(&dir, q, &cols);
    for _ in 0..2 {
        let v0 = version(&dir, "silver.daily_sales");
        let (code, v, err) = run_with(&dir, &file, &["--partitions", "day=2024-01-01..2024-01-02"]);
        assert_eq!(code, 0, "{v:#}\n{err}");
        let v1 = version(&dir, "silver.daily_sales");
        assert_eq!(v1, v0 + 1, "a backfill always commits: {v:#}");
        let mut touched = BTreeSet::new();
        for a in commit_actions(&dir, "silver.daily_sales", v1) {
            for kind in ["add", "remove"] {
                if let Some(x) = a.get(kind) {
                    touched.insert(cell(x["partitionValues"].get("day")));
                }
            }
        }
        assert_eq!(
            touched,
            BTreeSet::from(["2024-01-01".to_string(), "2024-01-02".to_string()])
        );
        assert_eq!(
            rows(&dir, q, &cols),
            expected_before,
            "the backfill read the source past the flow's watermark"
        );
    }
    // the next run reads the new row as a change
    run_ok(&dir, &file);
    assert_eq!(
        rows(&dir, q, &cols),
        [
            ["2024-01-01", "s1", "110", "2"],
            ["2024-01-01", "s2", "5", "1"],
            ["2024-01-02", "s1", "10", "2"],
            ["2024-01-03", "s2", "1", "1"]
        ]
    );
    assert_idempotent(&dir, &file, &["silver.daily_sales"]);
}

#[test]
fn full_recomputes_from_an_upstream_silver_table() {
    let (tmp, dir) = lakehouse();
    let tmp = tmp.path();
    let file = pipeline_file(
        tmp,
        "items.toml",
        r#"
[pipeline]
name = "items"

[[flows]]
name = "counts"
target = "gold.item_counts"
source = "silver.items"
mode = "full"
sql = "SELECT category, count(*) AS n FROM silver.items GROUP BY category"

[[flows]]
name = "items"
target = "silver.items"
source = "bronze.items"
mode = "merge"
keys = ["id"]
sequence_by = "seq"
delete_when = "op = 'D'"
steps = [ { cast = { seq = "BIGINT" } } ]
sql = "SELECT id, category, seq, op FROM input"
"#,
    );
    land(
        &dir,
        tmp,
        "bronze.items",
        "i1.ndjson",
        &[
            r#"{"id": "i1", "category": "A", "seq": 1, "op": "U"}"#,
            r#"{"id": "i2", "category": "A", "seq": 1, "op": "U"}"#,
            r#"{"id": "i3", "category": "B", "seq": 1, "op": "U"}"#,
        ],
    );
    let v = run_ok(&dir, &file);
    // dependency order, whatever the file's order
    let order: Vec<&str> = v["flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["flow"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["items", "counts"]);
    let q = "SELECT category, CAST(n AS STRING) AS n FROM gold.item_counts";
    assert_eq!(rows(&dir, q, &["category", "n"]), [["A", "2"], ["B", "1"]]);
    let tables = ["silver.items", "gold.item_counts"];
    assert_idempotent(&dir, &file, &tables);
    land(
        &dir,
        tmp,
        "bronze.items",
        "i2.ndjson",
        &[
            r#"{"id": "i3", "category": "B", "seq": 2, "op": "D"}"#,
            r#"{"id": "i1", "category": "C", "seq": 2, "op": "U"}"#,
        ],
    );
    run_ok(&dir, &file);
    assert_eq!(
        rows(&dir, q, &["category", "n"]),
        [["A", "1"], ["C", "1"]],
        "a deleted row and a moved row are recomputed; category B is gone"
    );
    assert_idempotent(&dir, &file, &tables);
}

/// `scd2` keeps every version of a key: late arrivals land in their place in history, a row
/// with a key and sequence already there replaces that version, and an unchanged row opens none.
#[test]
fn scd2_keeps_history_and_places_late_arrivals() {
    let (tmp, dir) = lakehouse();
    let tmp = tmp.path();
    let file = pipeline_file(
        tmp,
        "dim.toml",
        r#"
[pipeline]
name = "dim"

[[flows]]
name = "dim"
target = "silver.dim"
source = "bronze.dim"
mode = "scd2"
keys = ["id"]
sequence_by = "seq"
steps = [ { cast = { seq = "BIGINT" } } ]
sql = "SELECT id, v, seq FROM input"
"#,
    );
    land(
        &dir,
        tmp,
        "bronze.dim",
        "d1.ndjson",
        &[
            r#"{"id": "k1", "v": "a", "seq": 1}"#,
            r#"{"id": "k1", "v": "b", "seq": 3}"#,
            r#"{"id": "k2", "v": "p", "seq": 1}"#,
        ],
    );
    run_ok(&dir, &file);
    let q = "SELECT id, v, CAST(__start_at AS STRING) AS s, CAST(__end_at AS STRING) AS e, \
             CAST(__is_current AS STRING) AS c FROM silver.dim";
    let cols = ["id", "v", "s", "e", "c"];
    assert_eq!(
        rows(&dir, q, &cols),
        [
            ["k1", "a", "1", "3", "false"],
            ["k1", "b", "3", "NULL", "true"],
            ["k2", "p", "1", "NULL", "true"]
        ]
    );
    assert_idempotent(&dir, &file, &["silver.dim"]);
    land(
        &dir,
        tmp,
        "bronze.dim",
        "d2.ndjson",
        &[
            // late: between a and b
            r#"{"id": "k1", "v": "x", "seq": 2}"#,
            // no tracked change: no new version
            r#"{"id": "k1", "v": "b", "seq": 4}"#,
            // same key and sequence: replaces the version
            r#"{"id": "k2", "v": "p2", "seq": 1}"#,
            r#"{"id": "k3", "v": "q", "seq": 5}"#,
        ],
    );
    run_ok(&dir, &file);
    assert_eq!(
        rows(&dir, q, &cols),
        [
            ["k1", "a", "1", "2", "false"],
            ["k1", "b", "3", "NULL", "true"],
            ["k1", "x", "2", "3", "false"],
            ["k2", "p2", "1", "NULL", "true"],
            ["k3", "q", "5", "NULL", "true"]
        ]
    );
    assert_idempotent(&dir, &file, &["silver.dim"]);
}

// ---------------------------------------------------------------------------------------------
// expectations

#[test]
fn row_rules_warn_quarantine_and_drop() {
    let (tmp, dir) = lakehouse();
    let tmp = tmp.path();
    land(
        &dir,
        tmp,
        "bronze.readings",
        "r.ndjson",
        &[
            r#"{"id": 1, "kind": "a", "code": "ABC", "score": 50, "amount": 10, "note": "x"}"#,
            r#"{"id": 2, "kind": "z", "code": "ABC", "score": 50, "amount": 10, "note": "x"}"#,
            r#"{"id": 3, "kind": "a", "code": "abc1", "score": -1, "amount": 10, "note": "x"}"#,
            r#"{"id": 4, "kind": "purchase", "code": "ABC", "score": 50, "amount": 0, "note": "x"}"#,
            r#"{"id": 5, "kind": "b", "code": "ABC", "score": 150, "amount": 10, "note": "x"}"#,
            r#"{"id": 6, "kind": "b", "code": "ABC", "score": 20, "amount": 10, "note": null}"#,
            r#"{"id": 7, "kind": "b", "code": "ABC", "score": 200, "amount": 10}"#,
            r#"{"id": 8, "kind": null, "code": "ABC", "score": 10, "amount": 10, "note": "x"}"#,
            r#"{"id": 9, "kind": "a", "code": "XYZ", "score": 100, "amount": 1, "note": "y"}"#,
        ],
    );
    let file = pipeline_file(
        tmp,
        "readings.toml",
        r#"
[pipeline]
name = "readings"

[[flows]]
name = "readings"
target = "silver.readings"
source = "bronze.readings"
steps = [ { cast = { id = "BIGINT", score = "BIGINT", amount = "DECIMAL(10,2)" } } ]

[[flows.expect]]
name = "kind_known"
column = "kind"
in = ["a", "b", "purchase"]
action = "quarantine"

[[flows.expect]]
name = "code_format"
column = "code"
matches = "^[A-Z]{3}$"
action = "quarantine"

[[flows.expect]]
name = "score_min"
column = "score"
min = 0
action = "quarantine"

[[flows.expect]]
name = "score_max"
column = "score"
max = 100
action = "warn"

[[flows.expect]]
name = "score_between"
column = "score"
min = -100
max = 1000

[[flows.expect]]
name = "purchase_has_amount"
check = "amount > 0 OR kind <> 'purchase'"
action = "quarantine"

[[flows.expect]]
name = "note_present"
not_null = "note"
action = "drop"
"#,
    );
    let (code, v, err) = run_with(&dir, &file, &[]);
    assert_eq!(code, 0, "{v:#}\n{err}");
    assert!(
        err.contains("expectation score_max failed on 2 of 9 rows (action warn)"),
        "{err}"
    );
    let run_id = v["run_id"].as_str().unwrap().to_string();
    assert_eq!(
        rows(
            &dir,
            "SELECT CAST(id AS STRING) AS id FROM silver.readings",
            &["id"]
        ),
        [["1"], ["5"], ["9"]],
        "warn keeps its row (5); quarantine and drop remove theirs"
    );
    let mut q: Vec<(String, String, BTreeSet<String>)> = quarantine(&dir, "quarantine.readings")
        .into_iter()
        .map(|r| (cell(r.record.get("id")), r.stage, r.rules))
        .collect();
    q.sort();
    let set = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(
        q,
        [
            ("2".into(), "expectation".into(), set(&["kind_known"])),
            (
                "3".into(),
                "expectation".into(),
                set(&["code_format", "score_min"])
            ),
            (
                "4".into(),
                "expectation".into(),
                set(&["purchase_has_amount"])
            ),
            ("8".into(), "expectation".into(), set(&["kind_known"])),
        ]
    );
    // the quarantined record is the checked output row, typed values as text
    let r3 = quarantine(&dir, "quarantine.readings")
        .into_iter()
        .find(|r| r.record["id"] == 3)
        .unwrap();
    assert_eq!(r3.record["amount"], "10.00");
    assert_eq!(r3.record["score"], -1);
    assert!(r3.reason.contains("code_format") && r3.reason.contains("score_min"));

    let fr = &flow_runs(&dir, &run_id)["readings"];
    assert_eq!(fr["status"], "succeeded");
    assert_eq!(fr["rows_read"], 9);
    assert_eq!(fr["rows_written"], 3);
    assert_eq!(fr["rows_quarantined"], 4);
    assert_eq!(fr["rows_dropped"], 2);
    let samples: Value = serde_json::from_str(fr["samples"].as_str().unwrap()).unwrap();
    let dropped: BTreeSet<String> = samples
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["kind"] == "dropped")
        .map(|x| {
            let row: Value = match &x["row"] {
                Value::String(t) => serde_json::from_str(t).unwrap(),
                other => other.clone(),
            };
            cell(row.get("id"))
        })
        .collect();
    assert_eq!(dropped, set(&["6", "7"]), "{samples:#}");

    let qr = quality(&dir, &run_id);
    let expect = [
        ("kind_known", "quarantine", 2),
        ("code_format", "quarantine", 1),
        ("score_min", "quarantine", 1),
        ("score_max", "warn", 2),
        ("score_between", "warn", 0),
        ("purchase_has_amount", "quarantine", 1),
        ("note_present", "drop", 2),
    ];
    assert_eq!(qr.len(), expect.len(), "{qr:?}");
    for (rule, action, failed) in expect {
        let (a, checked, f, passed, _) = &qr[rule];
        assert_eq!(
            (a.as_str(), *checked, *f, *passed),
            (action, 9, failed, failed == 0),
            "{rule}"
        );
    }
    let table = query(
        &dir,
        &format!("SELECT DISTINCT \"table\" FROM system.quality_results WHERE run_id = '{run_id}'"),
    );
    assert_eq!(table.len(), 1);
    assert_eq!(table[0]["table"], "lakehouse.silver.readings");
}

#[test]
fn table_rules_record_what_they_observed() {
    let (tmp, dir) = lakehouse();
    let tmp = tmp.path();
    ok(
        &dir,
        &[
            "sql",
            "CREATE TABLE silver.users AS SELECT * FROM (VALUES ('u1'), ('u2'), ('u3')) AS v(user_id)",
        ],
    );
    land(
        &dir,
        tmp,
        "bronze.orders",
        "o.ndjson",
        &[
            r#"{"id": 1, "user_id": "u1", "ts": "2020-01-01T00:00:00Z", "amount": 10}"#,
            r#"{"id": 2, "user_id": "u2", "ts": "2020-01-02T00:00:00Z", "amount": 20}"#,
            r#"{"id": 2, "user_id": "u3", "ts": "2020-01-03T00:00:00Z", "amount": 5}"#,
            r#"{"id": 3, "user_id": "u9", "ts": "2020-01-04T00:00:00Z", "amount": 1}"#,
            r#"{"id": 4, "user_id": null, "ts": "2020-01-05T00:00:00Z", "amount": 1}"#,
        ],
    );
    let file = pipeline_file(
        tmp,
        "orders.toml",
        r#"
[pipeline]
name = "orders"

[[flows]]
name = "orders"
target = "silver.orders"
source = "bronze.orders"
steps = [ { cast = { id = "BIGINT", ts = "TIMESTAMP", amount = "DECIMAL(10,2)" } } ]

[[flows.expect]]
name = "ids_unique"
unique = ["id"]

[[flows.expect]]
name = "some_rows"
row_count = { min = 1, max = 10 }

[[flows.expect]]
name = "many_rows"
row_count = { min = 6 }

[[flows.expect]]
name = "fresh"
freshness = { column = "ts", max_age = "2d" }

[[flows.expect]]
name = "not_too_stale"
freshness = { column = "ts", max_age = "5200w" }

[[flows.expect]]
name = "users_exist"
column = "user_id"
references = "silver.users.user_id"

[[flows.expect]]
name = "total_small"
aggregate = "sum(amount) < 100"

[[flows.expect]]
name = "total_big"
aggregate = "sum(amount) > 1000"
action = "warn"
"#,
    );
    let v = run_ok(&dir, &file);
    let run_id = v["run_id"].as_str().unwrap();
    let qr = quality(&dir, run_id);
    let get = |r: &str| {
        qr.get(r)
            .unwrap_or_else(|| panic!("no result for {r}: {qr:?}"))
            .clone()
    };
    // (action, rows_checked, rows_failed, passed, observed)
    assert_eq!(get("ids_unique"), ("warn".into(), 5, 1, false, "1".into()));
    assert_eq!(get("some_rows"), ("warn".into(), 5, 0, true, "5".into()));
    assert_eq!(get("many_rows"), ("warn".into(), 5, 0, false, "5".into()));
    let fresh = get("fresh");
    assert!(!fresh.3, "{fresh:?}");
    assert!(fresh.4.starts_with("2020-01-05"), "{fresh:?}");
    assert!(get("not_too_stale").3);
    // u9 has no user; a NULL user is not checked
    assert_eq!(get("users_exist"), ("warn".into(), 5, 1, false, "1".into()));
    assert_eq!(
        get("total_small"),
        ("warn".into(), 5, 0, true, "true".into())
    );
    let big = get("total_big");
    assert!(!big.3, "{big:?}");
    assert!(qr.values().all(|x| x.0 == "warn"));
    assert_eq!(
        query(&dir, "SELECT count(*) AS n FROM silver.orders")[0]["n"],
        5,
        "warn rules keep every row"
    );
}

#[test]
fn a_fail_rule_commits_nothing_and_stops_the_flows_downstream() {
    let (tmp, dir) = lakehouse();
    let tmp = tmp.path();
    land(
        &dir,
        tmp,
        "bronze.m",
        "m1.ndjson",
        &[r#"{"id": 1, "v": 5}"#, r#"{"id": 2, "v": 7}"#],
    );
    let file = pipeline_file(
        tmp,
        "m.toml",
        r#"
[pipeline]
name = "m"

[[flows]]
name = "clean"
target = "silver.m"
source = "bronze.m"
steps = [ { cast = { id = "BIGINT", v = "BIGINT" } } ]

[[flows.expect]]
name = "v_not_negative"
column = "v"
min = 0
action = "fail"

[[flows]]
name = "total"
target = "gold.m_total"
source = "silver.m"
mode = "full"
sql = "SELECT count(*) AS n, sum(v) AS total FROM silver.m"
"#,
    );
    run_ok(&dir, &file);
    let tables = ["silver.m", "gold.m_total"];
    let before = versions(&dir, &tables);
    land(
        &dir,
        tmp,
        "bronze.m",
        "m2.ndjson",
        &[r#"{"id": 3, "v": -1}"#, r#"{"id": 4, "v": 2}"#],
    );
    for _ in 0..2 {
        let (code, v, err) = run_with(&dir, &file, &[]);
        assert_eq!(code, 3, "{v:#}\n{err}");
        assert_eq!(v["status"], "failed");
        assert_eq!(flow(&v, "clean")["status"], "failed");
        assert_eq!(flow(&v, "total")["status"], "upstream_failed");
        let e = cell(flow(&v, "clean").get("error"));
        assert!(
            e.contains("v_not_negative") && e.contains("nothing was committed"),
            "{e}"
        );
        assert_eq!(versions(&dir, &tables), before, "a failed gate committed");
        assert!(!table_dir(&dir, "quarantine.m").exists());
        let run_id = v["run_id"].as_str().unwrap();
        let show = ok(&dir, &["pipeline", "show", run_id]);
        assert!(show.contains("upstream_failed"), "{show}");
        assert!(show.contains("v_not_negative"), "{show}");
        let fr = flow_runs(&dir, run_id);
        assert_eq!(fr["clean"]["status"], "failed");
        assert!(
            cell(fr["clean"].get("error")).contains("v_not_negative"),
            "{fr:?}"
        );
        assert_eq!(fr["total"]["status"], "upstream_failed");
        let qr = quality(&dir, run_id);
        let (action, checked, failed, passed, _) = &qr["v_not_negative"];
        assert_eq!(
            (action.as_str(), *checked, *failed, *passed),
            ("fail", 2, 1, false)
        );
        let pr = query(
            &dir,
            &format!("SELECT status FROM system.pipeline_runs WHERE run_id = '{run_id}'"),
        );
        assert_eq!(pr[0]["status"], "failed");
    }
    assert_eq!(query(&dir, "SELECT count(*) AS n FROM silver.m")[0]["n"], 2);

    // a table rule with action fail gates the same way
    land(
        &dir,
        tmp,
        "bronze.u",
        "u.ndjson",
        &[r#"{"id": 1}"#, r#"{"id": 1}"#],
    );
    let file = pipeline_file(
        tmp,
        "u.toml",
        r#"
[pipeline]
name = "u"

[[flows]]
name = "u"
target = "silver.u"
source = "bronze.u"

[[flows.expect]]
name = "id_unique"
unique = ["id"]
action = "fail"
"#,
    );
    let (code, v, err) = run_with(&dir, &file, &[]);
    assert_eq!(code, 3, "{v:#}\n{err}");
    assert!(
        cell(flow(&v, "u").get("error")).contains("id_unique"),
        "{v:#}"
    );
    let exists = table_dir(&dir, "silver.u").join("_delta_log").exists();
    assert!(
        !exists || latest_version(&table_dir(&dir, "silver.u")) == 0,
        "rows were committed to silver.u"
    );
}

/// The issue: "`unique` may also quarantine the duplicates after the first"; validation accepts
/// `action = "quarantine"` on a unique rule, so the duplicates must not land.
#[test]
fn a_unique_rule_with_action_quarantine_moves_the_later_duplicates() {
    let (tmp, dir) = lakehouse();
    let tmp = tmp.path();
    land(
        &dir,
        tmp,
        "bronze.dups",
        "d.ndjson",
        &[
            r#"{"id": "a", "v": "1"}"#,
            r#"{"id": "b", "v": "2"}"#,
            r#"{"id": "a", "v": "3"}"#,
            r#"{"id": "a", "v": "4"}"#,
        ],
    );
    let file = pipeline_file(
        tmp,
        "dups.toml",
        r#"
[pipeline]
name = "dups"

[[flows]]
name = "dups"
target = "silver.dups"
source = "bronze.dups"

[[flows.expect]]
name = "id_unique"
unique = ["id"]
action = "quarantine"
"#,
    );
    ok(&dir, &["pipeline", "validate", s(&file)]);
    let v = run_ok(&dir, &file);
    assert_eq!(
        rows(&dir, "SELECT id, v FROM silver.dups", &["id", "v"]),
        [["a", "1"], ["b", "2"]],
        "the duplicates after the first landed: {v:#}"
    );
    let q = quarantine(&dir, "quarantine.dups");
    let mut got: Vec<String> = q.iter().map(|r| cell(r.record.get("v"))).collect();
    got.sort();
    assert_eq!(got, ["3", "4"], "{q:?}");
    assert!(
        q.iter()
            .all(|r| r.stage == "expectation"
                && r.rules == BTreeSet::from(["id_unique".to_string()]))
    );
}

/// A `replace` commit deletes the flow's earlier `cast` and `expectation` rows of the partitions
/// it recomputes, so a failure is quarantined once; other partitions' rows stay as they were.
#[test]
fn replace_quarantines_a_recomputed_partition_once() {
    let (tmp, dir) = lakehouse();
    let tmp = tmp.path();
    land(
        &dir,
        tmp,
        "bronze.q",
        "q1.ndjson",
        &[
            r#"{"day": "2024-01-01", "id": "a1", "amount": "10"}"#,
            r#"{"day": "2024-01-01", "id": "a2", "amount": "-1"}"#,
            r#"{"day": "2024-01-01", "id": "a3", "amount": "x"}"#,
            r#"{"day": "2024-01-02", "id": "b1", "amount": "-2"}"#,
            r#"{"day": "2024-01-02", "id": "b2", "amount": "y"}"#,
            r#"{"day": "2024-01-02", "id": "b3", "amount": "3"}"#,
        ],
    );
    let file = pipeline_file(
        tmp,
        "q.toml",
        r#"
[pipeline]
name = "q"

[[flows]]
name = "daily"
target = "silver.q"
source = "bronze.q"
mode = "replace"
partition_by = ["day"]
steps = [ { cast = { amount = "BIGINT" } } ]
sql = "SELECT day, id, amount FROM input"

[[flows.expect]]
name = "amount_ok"
column = "amount"
min = 0
action = "quarantine"
"#,
    );
    let first = run_ok(&dir, &file);
    let scoped = |dir: &Path| -> Vec<Vec<String>> {
        rows(
            dir,
            "SELECT _run_id, _stage, _scope, _source_pointer FROM quarantine.q",
            &["_run_id", "_stage", "_scope", "_source_pointer"],
        )
    };
    assert_eq!(scoped(&dir).len(), 4);
    land(
        &dir,
        tmp,
        "bronze.q",
        "q2.ndjson",
        &[r#"{"day": "2024-01-01", "id": "a4", "amount": "5"}"#],
    );
    let second = run_ok(&dir, &file);
    assert_eq!(
        rows(&dir, "SELECT id FROM silver.q", &["id"]),
        [["a1"], ["a4"], ["b3"]]
    );
    let q = quarantine(&dir, "quarantine.q");
    let mut ids: Vec<(String, String)> = q
        .iter()
        .map(|r| (cell(r.record.get("id")), r.stage.clone()))
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        [
            ("a2".to_string(), "expectation".to_string()),
            ("a3".into(), "cast".into()),
            ("b1".into(), "expectation".into()),
            ("b2".into(), "cast".into()),
        ],
        "each failure once"
    );
    // the recomputed day's rows are the second run's; the other day's are the first run's
    for r in scoped(&dir) {
        let run = if r[2].contains("2024-01-01") {
            &second["run_id"]
        } else {
            &first["run_id"]
        };
        assert_eq!(r[0], run.as_str().unwrap(), "{r:?}");
    }
    assert_idempotent(&dir, &file, &["silver.q", "quarantine.q"]);
}

/// `--dry-run` reads, transforms and checks but commits and records nothing; `--select` runs
/// part of the graph.
#[test]
fn dry_run_commits_nothing_and_select_runs_part_of_the_graph() {
    let (tmp, dir) = lakehouse();
    let data = tmp.path().join("data");
    ok(
        &dir,
        &[
            "generate",
            "events",
            "--rows",
            "300",
            "--files",
            "1",
            "--seed",
            "8",
            "--out",
            s(&data),
        ],
    );
    ingest(&dir, &data, "bronze.events");
    let file = example();
    let v = {
        let (code, v, err) = run_with(&dir, &file, &["--select", "silver_events"]);
        assert_eq!(code, 0, "{v:#}\n{err}");
        v
    };
    assert_eq!(
        statuses(&v).keys().collect::<Vec<_>>(),
        ["silver_events"],
        "{v:#}"
    );
    assert!(!table_dir(&dir, "gold.daily_totals").exists());
    let (code, v, err) = run_with(&dir, &file, &["--select", "+daily_totals"]);
    assert_eq!(code, 0, "{v:#}\n{err}");
    assert_eq!(
        statuses(&v),
        BTreeMap::from([
            ("daily_totals".to_string(), "succeeded".to_string()),
            ("silver_events".to_string(), "skipped".to_string()),
        ])
    );
    let tables = ["silver.events", "gold.daily_totals", "quarantine.events"];
    let before = versions(&dir, &tables);
    let runs_before = query(&dir, "SELECT run_id FROM system.pipeline_runs").len();
    let more = tmp.path().join("more");
    write(
        &more.join("m.ndjson"),
        r#"{"event_id":"evt-x","user_id":"u-1","event_type":"view","ts":"2026-03-01T00:00:00Z","amount":0}
{"event_id":"evt-y","user_id":null,"event_type":"view","ts":"2026-03-01T00:00:00Z","amount":0}
"#,
    );
    ingest(&dir, &more, "bronze.events");
    let (code, v, err) = run_with(&dir, &file, &["--dry-run"]);
    assert_eq!(code, 0, "{v:#}\n{err}");
    assert_eq!(v["dry_run"], true);
    let sv = flow(&v, "silver_events");
    assert_eq!(
        (
            &sv["rows_read"],
            &sv["rows_written"],
            &sv["rows_quarantined"]
        ),
        (&Value::from(2), &Value::from(1), &Value::from(1)),
        "{v:#}"
    );
    assert_eq!(versions(&dir, &tables), before, "a dry run committed");
    assert_eq!(
        query(&dir, "SELECT run_id FROM system.pipeline_runs").len(),
        runs_before,
        "a dry run was recorded"
    );
    // the real run then does the work
    let v = run_ok(&dir, &file);
    assert_eq!(flow(&v, "silver_events")["rows_written"], 1);
    assert!(silver_row(&dir, "evt-x").is_some());
}

// ---------------------------------------------------------------------------------------------
// casts

#[test]
fn every_cast_target_quarantines_what_does_not_convert_and_keeps_nulls() {
    let (tmp, dir) = lakehouse();
    let tmp = tmp.path();
    let good = r#""b": 42, "i": -7, "d": "12.345", "f": 1.5e3, "bo": true, "dt": "2024-02-29", "ts": "2024-03-01T12:00:00+01:00""#;
    // column, type name, a value that does not convert (as JSON), its text in bronze
    let bad: [(&str, &str, &str, &str); 7] = [
        ("b", "BIGINT", "1.5", "1.5"),
        ("i", "INT", "2147483648", "2147483648"),
        ("d", "DECIMAL(10,2)", "123456789.5", "123456789.5"),
        ("f", "DOUBLE", "\"NaN\"", "NaN"),
        ("bo", "BOOLEAN", "\"yes\"", "yes"),
        ("dt", "DATE", "\"2024-02-30\"", "2024-02-30"),
        (
            "ts",
            "TIMESTAMP",
            "\"2024-01-01T24:00:00Z\"",
            "2024-01-01T24:00:00Z",
        ),
    ];
    let mut lines = vec![
        format!(r#"{{"id": "good", {good}}}"#),
        r#"{"id": "nulls", "b": null, "i": null, "d": null, "f": null, "bo": null, "dt": null, "ts": null}"#.to_string(),
    ];
    for (c, _, json, _) in bad {
        // the good row with one column replaced
        let mut fields: Vec<String> = good
            .split(", ")
            .map(|f| {
                if f.starts_with(&format!("\"{c}\":")) {
                    format!("\"{c}\": {json}")
                } else {
                    f.to_string()
                }
            })
            .collect();
        fields.insert(0, format!("\"id\": \"bad_{c}\""));
        lines.push(format!("{{{}}}", fields.join(", ")));
    }
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    land(&dir, tmp, "bronze.typed", "t.ndjson", &refs);
    let file = pipeline_file(
        tmp,
        "typed.toml",
        r#"
[pipeline]
name = "typed"

[[flows]]
name = "typed"
target = "silver.typed"
source = "bronze.typed"
steps = [ { cast = { b = "BIGINT", i = "INT", d = "DECIMAL(10,2)", f = "DOUBLE", bo = "BOOLEAN", dt = "DATE", ts = "TIMESTAMP" } } ]
"#,
    );
    let v = run_ok(&dir, &file);
    assert_eq!(flow(&v, "typed")["rows_quarantined"], 7);
    let types: BTreeMap<String, String> = query(
        &dir,
        "SELECT column_name, data_type FROM system.columns WHERE full_name = 'lakehouse.silver.typed'",
    )
    .iter()
    .map(|r| (cell(r.get("column_name")), cell(r.get("data_type"))))
    .collect();
    for (c, t, _, _) in bad {
        assert_eq!(types[c], t, "{types:?}");
    }
    assert_eq!(
        rows(
            &dir,
            "SELECT id, CAST(b AS STRING) AS b, CAST(i AS STRING) AS i, CAST(d AS STRING) AS d, \
             CAST(f AS STRING) AS f, CAST(bo AS STRING) AS bo, CAST(dt AS STRING) AS dt, \
             CAST(CAST(ts AS BIGINT) AS STRING) AS ts FROM silver.typed",
            &["id", "b", "i", "d", "f", "bo", "dt", "ts"]
        ),
        [
            vec![
                "good",
                "42",
                "-7",
                "12.35",
                "1500.0",
                "true",
                "2024-02-29",
                "1709290800000000"
            ],
            vec![
                "nulls", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL"
            ],
        ],
        "a NULL is not a failed cast; 12.345 rounds half away from zero"
    );
    let q = quarantine(&dir, "quarantine.typed");
    assert_eq!(q.len(), 7, "{q:?}");
    for (c, t, _, text) in bad {
        let id = format!("bad_{c}");
        let mine: Vec<&QRow> = q.iter().filter(|r| r.record["id"] == id.as_str()).collect();
        assert_eq!(mine.len(), 1, "{id}: {q:?}");
        let r = mine[0];
        assert_eq!(r.stage, "cast");
        assert!(r.rules.is_empty());
        assert!(
            r.reason.contains(&format!("column {c}")) && r.reason.contains(&format!("'{text}'")),
            "{id}: {}",
            r.reason
        );
        assert!(r.reason.contains(t), "{id}: {}", r.reason);
        assert!(!r.reason.contains(';'), "one reason only: {}", r.reason);
        // the record is the source row, as bronze holds it
        assert_eq!(r.record[c], text);
    }
}

// ---------------------------------------------------------------------------------------------
// validation

fn validate_fails(dir: &Path, file: &Path, needles: &[&str]) -> String {
    let err = fails(dir, &["pipeline", "validate", s(file)]);
    for n in needles {
        assert!(err.contains(n), "expected {n:?} in: {err}");
    }
    err
}

#[test]
fn layer_rules_cycles_and_malformed_files_are_refused() {
    let (tmp, dir) = lakehouse();
    let tmp = tmp.path();
    land(
        &dir,
        tmp,
        "bronze.events",
        "e.ndjson",
        &[r#"{"event_id": "e1", "user_id": "u1", "amount": "1"}"#],
    );
    let one = |name: &str, target: &str, source: &str, extra: &str| {
        pipeline_file(
            tmp,
            &format!("{name}.toml"),
            &format!(
                "[pipeline]\nname = \"{name}\"\n\n[[flows]]\nname = \"f\"\ntarget = \"{target}\"\nsource = \"{source}\"\n{extra}"
            ),
        )
    };
    let gold_from_bronze = one("g", "gold.x", "bronze.events", "");
    validate_fails(&dir, &gold_from_bronze, &["never reads bronze", "gold.x"]);
    let err = fails(&dir, &["pipeline", "run", s(&gold_from_bronze)]);
    assert!(err.contains("never reads bronze"), "{err}");
    assert!(!table_dir(&dir, "gold.x").exists());

    let writes_bronze = one("b", "bronze.copy", "bronze.events", "");
    validate_fails(&dir, &writes_bronze, &["bronze.copy", "only by ingest"]);

    let cycle = pipeline_file(
        tmp,
        "cycle.toml",
        r#"
[pipeline]
name = "cycle"

[[flows]]
name = "a"
target = "silver.a"
source = "silver.b"

[[flows]]
name = "b"
target = "silver.b"
source = "silver.a"
"#,
    );
    validate_fails(&dir, &cycle, &["cycle", "silver.a", "silver.b"]);

    // line 7 holds the unknown key
    let typo = pipeline_file(
        tmp,
        "typo.toml",
        "[pipeline]\nname = \"typo\"\n\n[[flows]]\nname = \"f\"\ntarget = \"silver.t\"\nmodee = \"merge\"\nsource = \"bronze.events\"\n",
    );
    validate_fails(&dir, &typo, &["line 7", "modee"]);
    let bad_mode = one("m", "silver.t", "bronze.events", "mode = \"upsert\"\n");
    validate_fails(&dir, &bad_mode, &["line 8", "upsert"]);

    let unknown_col = one(
        "u",
        "silver.t",
        "bronze.events",
        "\n[[flows.expect]]\nname = \"nope_present\"\nnot_null = \"nope\"\naction = \"quarantine\"\n",
    );
    validate_fails(&dir, &unknown_col, &["'nope'", "expectation", "line "]);
    let unknown_in_check = one(
        "c",
        "silver.t",
        "bronze.events",
        "\n[[flows.expect]]\nname = \"bad_check\"\ncheck = \"missing_col > 0\"\n",
    );
    validate_fails(&dir, &unknown_in_check, &["missing_col", "bad_check"]);
    let unknown_source = one("s", "silver.t", "bronze.nothing", "");
    validate_fails(&dir, &unknown_source, &["bronze.nothing"]);

    // the valid one passes and lists its output
    let fine = one("fine", "silver.t", "bronze.events", "");
    let out = ok(&dir, &["pipeline", "validate", s(&fine)]);
    assert!(
        out.contains("event_id") && out.contains("silver.t"),
        "{out}"
    );
    assert!(
        !table_dir(&dir, "silver.t").exists(),
        "validate touched data"
    );
}

fn people(dir: &Path, tmp: &Path) {
    land(
        dir,
        tmp,
        "bronze.people",
        "p.ndjson",
        &[
            r#"{"id": "1", "email": "ada@example.com", "name": "Ada"}"#,
            r#"{"id": "2", "email": "bob@example.com", "name": "Bob"}"#,
            r#"{"id": "3", "email": "ada@example.com", "name": "Ada L"}"#,
        ],
    );
}

fn people_pipeline(tmp: &Path, name: &str, pii: &str, flow: &str) -> PathBuf {
    pipeline_file(
        tmp,
        &format!("{name}.toml"),
        &format!(
            "[pipeline]\nname = \"{name}\"\n{pii}\n\n[[flows]]\nname = \"people\"\ntarget = \"silver.{name}\"\nsource = \"bronze.people\"\n{flow}\n"
        ),
    )
}

#[test]
fn pii_in_clear_is_refused_and_masked_columns_are_tagged() {
    let (tmp, dir) = lakehouse();
    let tmp = tmp.path();
    people(&dir, tmp);
    let pii = "pii = [\"email\"]";
    for (name, flow) in [
        ("direct", "sql = \"SELECT id, email FROM input\""),
        (
            "computed",
            "sql = \"SELECT id, lower(email) AS contact FROM input\"",
        ),
        (
            "renamed",
            "steps = [ { rename = { email = \"contact\" } } ]\nsql = \"SELECT id, contact FROM input\"",
        ),
        ("passthrough", "steps = [ { cast = { id = \"BIGINT\" } } ]"),
    ] {
        let file = people_pipeline(tmp, name, pii, flow);
        validate_fails(&dir, &file, &["email", "allow_pii"]);
        let err = fails(&dir, &["pipeline", "run", s(&file)]);
        assert!(err.contains("allow_pii"), "{name}: {err}");
        assert!(!table_dir(&dir, &format!("silver.{name}")).exists());
    }

    // masked: accepted, the value is an HMAC (the same input, the same text), tagged pii_masked
    let masked = people_pipeline(
        tmp,
        "masked",
        pii,
        "steps = [ { mask = { email = \"hmac\" } } ]\nsql = \"SELECT id, email, name FROM input\"",
    );
    ok(&dir, &["pipeline", "validate", s(&masked)]);
    run_ok(&dir, &masked);
    let r = rows(
        &dir,
        "SELECT id, email FROM silver.masked",
        &["id", "email"],
    );
    assert_eq!(r.len(), 3);
    for x in &r {
        assert_eq!(x[1].len(), 64, "{r:?}");
        assert!(
            x[1].bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert!(!x[1].contains('@'));
    }
    assert_eq!(r[0][1], r[2][1], "one value masks to one text");
    assert_ne!(r[0][1], r[1][1]);
    let tags = column_tags(&dir, "silver.masked");
    assert_eq!(tags["email"], ["pii_masked"], "{tags:?}");
    assert!(tags["name"].is_empty() && tags["id"].is_empty(), "{tags:?}");

    // redacted
    let redacted = people_pipeline(
        tmp,
        "redacted",
        pii,
        "steps = [ { mask = { email = \"redact\" } } ]",
    );
    run_ok(&dir, &redacted);
    let r = rows(&dir, "SELECT email FROM silver.redacted", &["email"]);
    assert_eq!(r, vec![vec!["[REDACTED]".to_string()]; 3]);

    // carried on purpose: allowed, and tagged pii
    let allowed = people_pipeline(
        tmp,
        "allowed",
        pii,
        "allow_pii = [\"email\"]\nsql = \"SELECT id, email FROM input\"",
    );
    run_ok(&dir, &allowed);
    let tags = column_tags(&dir, "silver.allowed");
    assert_eq!(tags["email"], ["pii"], "{tags:?}");
}

/// DECISIONS.md section 10: "A pipeline may declare `pii = [columns]`; `pipeline run` tags them
/// on its sources as they appear."
#[test]
fn declared_pii_columns_are_tagged_on_their_sources() {
    let (tmp, dir) = lakehouse();
    let tmp = tmp.path();
    people(&dir, tmp);
    let declared = people_pipeline(
        tmp,
        "declared",
        "pii = [\"email\"]",
        "steps = [ { mask = { email = \"hmac\" } } ]",
    );
    run_ok(&dir, &declared);
    let tags = column_tags(&dir, "bronze.people");
    assert_eq!(
        tags["email"],
        ["pii"],
        "pipeline run did not tag the declared PII column on its source: {tags:?}"
    );
    assert!(tags["name"].is_empty(), "{tags:?}");
}

/// docs/pipelines.md: "A source column is PII when the pipeline or the flow lists it in `pii`,
/// or when it has the tag `pii`"; DECISIONS.md section 10: the tag is the single source of what
/// is PII, and a column carried with `allow_pii` is tagged `pii` in its turn.
#[test]
fn a_column_tagged_pii_is_refused_in_clear() {
    let (tmp, dir) = lakehouse();
    let tmp = tmp.path();
    people(&dir, tmp);
    ok(
        &dir,
        &["table", "tag", "bronze.people", "pii", "--column", "name"],
    );
    let tagged = people_pipeline(tmp, "tagged", "", "sql = \"SELECT id, name FROM input\"");
    let o = strata(&dir, &["pipeline", "validate", s(&tagged)]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "a column tagged pii was accepted in clear: {}",
        text(&o)
    );
    assert!(text(&o).contains("allow_pii"), "{}", text(&o));
    let o = strata(&dir, &["pipeline", "run", s(&tagged)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(!table_dir(&dir, "silver.tagged").exists());
}

/// A column carried in clear with `allow_pii` is tagged `pii`, so the next flow down must mask it
/// or allow it in its turn.
#[test]
fn a_pii_column_allowed_into_silver_is_still_pii_for_gold() {
    let (tmp, dir) = lakehouse();
    let tmp = tmp.path();
    people(&dir, tmp);
    let silver = pipeline_file(
        tmp,
        "silver.toml",
        r#"
[pipeline]
name = "people"
pii = ["email"]

[[flows]]
name = "people"
target = "silver.people"
source = "bronze.people"
allow_pii = ["email"]
sql = "SELECT id, email FROM input"
"#,
    );
    run_ok(&dir, &silver);
    assert_eq!(column_tags(&dir, "silver.people")["email"], ["pii"]);
    // another pipeline, which declares nothing: the tag alone makes silver's email PII
    let gold = pipeline_file(
        tmp,
        "gold.toml",
        r#"
[pipeline]
name = "contacts"

[[flows]]
name = "contacts"
target = "gold.contacts"
source = "silver.people"
mode = "full"
sql = "SELECT email, count(*) AS n FROM silver.people GROUP BY email"
"#,
    );
    let o = strata(&dir, &["pipeline", "validate", s(&gold)]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "gold may not carry silver's pii column in clear: {}",
        text(&o)
    );
    assert!(
        text(&o).contains("email") && text(&o).contains("allow_pii"),
        "{}",
        text(&o)
    );
}

#[test]
fn a_new_bronze_column_is_reported_and_steps_only_flows_add_it() {
    let (tmp, dir) = lakehouse();
    let tmp = tmp.path();
    land(
        &dir,
        tmp,
        "bronze.feed",
        "f1.ndjson",
        &[r#"{"id": "1", "v": "a"}"#, r#"{"id": "2", "v": "b"}"#],
    );
    let file = pipeline_file(
        tmp,
        "feed.toml",
        r#"
[pipeline]
name = "feed"

[[flows]]
name = "mapped"
target = "silver.feed_mapped"
source = "bronze.feed"
sql = "SELECT id, v FROM input"

[[flows]]
name = "all"
target = "silver.feed_all"
source = "bronze.feed"
steps = [ { cast = { id = "BIGINT" } } ]
"#,
    );
    let (_, v, err) = run_with(&dir, &file, &[]);
    assert_eq!(v["status"], "succeeded", "{err}");
    assert!(!err.contains("no flow maps"), "{err}");
    land(
        &dir,
        tmp,
        "bronze.feed",
        "f2.ndjson",
        &[r#"{"id": "3", "v": "c", "extra": "x3"}"#],
    );
    // the SQL flow alone leaves `extra` unmapped: validate reports it
    let mapped_only = pipeline_file(
        tmp,
        "feed_mapped.toml",
        r#"
[pipeline]
name = "feed_mapped"

[[flows]]
name = "mapped_only"
target = "silver.feed_mapped_only"
source = "bronze.feed"
sql = "SELECT id, v FROM input"
"#,
    );
    let o = strata(&dir, &["pipeline", "validate", s(&mapped_only)]);
    assert!(o.status.success(), "{}", text(&o));
    let verr = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(
        verr.contains("bronze columns no flow maps") && verr.contains("extra"),
        "{verr}"
    );
    let (code, v, err) = run_with(&dir, &mapped_only, &[]);
    assert_eq!(code, 0, "{v:#}\n{err}");
    assert!(
        err.contains("bronze columns no flow maps") && err.contains("extra"),
        "{err}"
    );
    let fr = flow_runs(&dir, v["run_id"].as_str().unwrap());
    assert_eq!(
        fr["mapped_only"]["unmapped_columns"],
        serde_json::json!(["extra"])
    );
    // in the pipeline where the steps-only flow carries every column on, every column is mapped
    let (code, v, err) = run_with(&dir, &file, &[]);
    assert_eq!(code, 0, "{v:#}\n{err}");
    assert!(!err.contains("no flow maps"), "{err}");
    let fr = flow_runs(&dir, v["run_id"].as_str().unwrap());
    assert_eq!(fr["mapped"]["unmapped_columns"], serde_json::json!([]));
    assert_eq!(fr["all"]["unmapped_columns"], serde_json::json!([]));
    // the SQL flow's output did not change; the steps-only flow gained the column
    assert_eq!(
        column_tags(&dir, "silver.feed_mapped")
            .keys()
            .collect::<Vec<_>>(),
        ["id", "v"]
    );
    assert_eq!(
        rows(
            &dir,
            "SELECT CAST(id AS STRING) AS id, v, extra FROM silver.feed_all",
            &["id", "v", "extra"]
        ),
        [["1", "a", "NULL"], ["2", "b", "NULL"], ["3", "c", "x3"]]
    );
    assert_idempotent(&dir, &file, &["silver.feed_mapped", "silver.feed_all"]);

    // with on_schema_change = "fail" the new column stops the flow, naming it
    let strict = pipeline_file(
        tmp,
        "strict.toml",
        r#"
[pipeline]
name = "strict"

[[flows]]
name = "all"
target = "silver.feed_strict"
source = "bronze.feed"
on_schema_change = "fail"
sql = "SELECT id, v FROM input"
"#,
    );
    run_ok(&dir, &strict);
    land(
        &dir,
        tmp,
        "bronze.feed",
        "f3.ndjson",
        &[r#"{"id": "4", "v": "d", "extra": "x4", "more": "m"}"#],
    );
    let strict2 = pipeline_file(
        tmp,
        "strict.toml",
        r#"
[pipeline]
name = "strict"

[[flows]]
name = "all"
target = "silver.feed_strict"
source = "bronze.feed"
on_schema_change = "fail"
sql = "SELECT id, v, more FROM input"
"#,
    );
    let before = version(&dir, "silver.feed_strict");
    let (code, v, err) = run_with(&dir, &strict2, &[]);
    assert_eq!(code, 1, "{v:#}\n{err}");
    let e = cell(flow(&v, "all").get("error"));
    assert!(e.contains("more") && e.contains("on_schema_change"), "{e}");
    assert_eq!(version(&dir, "silver.feed_strict"), before);
}

// ---------------------------------------------------------------------------------------------
// run history

#[test]
fn runs_and_flow_runs_are_recorded_and_printed() {
    let (tmp, dir) = lakehouse();
    let data = tmp.path().join("data");
    ok(
        &dir,
        &[
            "generate",
            "events",
            "--rows",
            "200",
            "--files",
            "1",
            "--seed",
            "5",
            "--out",
            s(&data),
        ],
    );
    ingest(&dir, &data, "bronze.events");
    let file = example();
    let first = run_ok(&dir, &file);
    let second = run_ok(&dir, &file);
    let id1 = first["run_id"].as_str().unwrap();
    let id2 = second["run_id"].as_str().unwrap();
    assert_ne!(id1, id2);
    let pr = query(
        &dir,
        "SELECT run_id, pipeline, trigger, status, finished_at FROM system.pipeline_runs",
    );
    assert_eq!(pr.len(), 2, "{pr:?}");
    for r in &pr {
        assert_eq!(r["pipeline"], "events");
        assert_eq!(r["trigger"], "manual");
        assert_eq!(r["status"], "succeeded");
        assert!(r.get("finished_at").is_some_and(|f| !f.is_null()));
    }
    let f1 = flow_runs(&dir, id1);
    assert_eq!(f1.len(), 2);
    assert_eq!(f1["silver_events"]["status"], "succeeded");
    assert_eq!(f1["silver_events"]["rows_read"], 200);
    assert_eq!(f1["silver_events"]["target"], "lakehouse.silver.events");
    assert_eq!(
        f1["silver_events"]["target_version"],
        version(&dir, "silver.events")
    );
    let sv: Value =
        serde_json::from_str(f1["silver_events"]["source_versions"].as_str().unwrap()).unwrap();
    assert!(sv.get("lakehouse.bronze.events").is_some(), "{sv}");
    assert_eq!(f1["daily_totals"]["status"], "succeeded");
    let f2 = flow_runs(&dir, id2);
    assert_eq!(f2["silver_events"]["status"], "skipped");
    assert_eq!(f2["daily_totals"]["status"], "skipped");

    let runs = ok(&dir, &["pipeline", "runs"]);
    assert!(runs.contains(id1) && runs.contains(id2), "{runs}");
    assert!(runs.contains("succeeded"), "{runs}");
    let listed = ok(
        &dir,
        &["--format", "json", "pipeline", "runs", "--limit", "1"],
    );
    let listed: Value = serde_json::from_str(listed.trim()).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["run_id"], id2, "newest first");

    let show = ok(&dir, &["pipeline", "show", id1]);
    for needle in [
        id1,
        "silver_events",
        "daily_totals",
        "succeeded",
        "event_id_present",
        "one_row_per_user_and_day",
    ] {
        assert!(show.contains(needle), "{needle} not in: {show}");
    }
    let show2 = ok(&dir, &["pipeline", "show", id2]);
    assert!(show2.contains("skipped"), "{show2}");
    let err = fails(&dir, &["pipeline", "show", "no-such-run"]);
    assert!(err.contains("no-such-run"), "{err}");
    // lineage edges of kind flow
    let lin = query(&dir, "SELECT * FROM system.lineage WHERE kind = 'flow'");
    assert!(lin.len() >= 2, "{lin:?}");
}
