//! Pipelines beyond a plain run: scd2 history, backfills of a partition range, quarantine
//! replay (exactly once, also when stopped between its commits) and purge, `quality check` over
//! an existing table, and a forced restore of a flow's source and target.

use std::path::{Path, PathBuf};

use crate::*;

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Lands NDJSON lines as a new file into `table`.
fn land_lines(dir: &Path, tmp: &Path, table: &str, name: &str, lines: &[&str]) {
    let folder = tmp.join("in").join(name);
    write(
        &folder.join(format!("{name}.ndjson")),
        &(lines.join("\n") + "\n"),
    );
    ok(dir, &["ingest", folder.to_str().unwrap(), "--into", table]);
}

fn file(tmp: &Path, name: &str, toml: &str) -> PathBuf {
    let p = tmp.join(name);
    write(&p, toml);
    p
}

fn run(dir: &Path, f: &Path, extra: &[&str]) -> String {
    let mut args = vec!["pipeline", "run", f.to_str().unwrap()];
    args.extend_from_slice(extra);
    ok(dir, &args)
}

/// Rows of a query as `a|b|c` strings of the columns `cols`, in the query's order.
fn lines(dir: &Path, sql: &str, cols: &[&str]) -> Vec<String> {
    query(dir, sql)
        .iter()
        .map(|r| {
            cols.iter()
                .map(|c| match r.get(*c) {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    None | Some(serde_json::Value::Null) => "NULL".into(),
                    Some(other) => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect()
}

fn version_of(dir: &Path, schema_table: &str) -> i64 {
    let (s, t) = schema_table.split_once('.').unwrap();
    latest_version(&dir.join("lakehouse").join(s).join(t))
}

const CUSTOMERS: &str = r#"
[pipeline]
name = "cust"

[[flows]]
name = "customers"
target = "silver.customers"
source = "bronze.customers"
mode = "scd2"
keys = ["id"]
sequence_by = "ts"
steps = [{ cast = { ts = "TIMESTAMP" } }]
sql = "SELECT id, name, city, ts FROM input"
"#;

#[test]
fn scd2_keeps_history_and_a_late_arrival_lands_in_its_place() {
    let (tmp, dir) = lakehouse();
    let f = file(tmp.path(), "p.toml", CUSTOMERS);
    land_lines(
        &dir,
        tmp.path(),
        "bronze.customers",
        "a",
        &[
            r#"{"id":"1","name":"Ada","city":"London","ts":"2024-01-01T00:00:00Z"}"#,
            r#"{"id":"2","name":"Bob","city":"Paris","ts":"2024-01-01T00:00:00Z"}"#,
            r#"{"id":"1","name":"Ada","city":"Leeds","ts":"2024-03-01T00:00:00Z"}"#,
        ],
    );
    run(&dir, &f, &[]);
    let sql = "SELECT id, city, CAST(__start_at AS VARCHAR) AS s, CAST(__end_at AS VARCHAR) AS e, \
               __is_current AS c FROM silver.customers ORDER BY id, __start_at";
    assert_eq!(
        lines(&dir, sql, &["id", "city", "s", "e", "c"]),
        vec![
            "1|London|2024-01-01T00:00:00Z|2024-03-01T00:00:00Z|false",
            "1|Leeds|2024-03-01T00:00:00Z|NULL|true",
            "2|Paris|2024-01-01T00:00:00Z|NULL|true",
        ]
    );
    // a late version of 1 (between London and Leeds), an unchanged Bob, a new key
    land_lines(
        &dir,
        tmp.path(),
        "bronze.customers",
        "b",
        &[
            r#"{"id":"1","name":"Ada","city":"York","ts":"2024-02-01T00:00:00Z"}"#,
            r#"{"id":"2","name":"Bob","city":"Paris","ts":"2024-04-01T00:00:00Z"}"#,
            r#"{"id":"3","name":"Cy","city":"Rome","ts":"2024-04-01T00:00:00Z"}"#,
        ],
    );
    run(&dir, &f, &[]);
    assert_eq!(
        lines(&dir, sql, &["id", "city", "s", "e", "c"]),
        vec![
            "1|London|2024-01-01T00:00:00Z|2024-02-01T00:00:00Z|false",
            "1|York|2024-02-01T00:00:00Z|2024-03-01T00:00:00Z|false",
            "1|Leeds|2024-03-01T00:00:00Z|NULL|true",
            "2|Paris|2024-01-01T00:00:00Z|NULL|true",
            "3|Rome|2024-04-01T00:00:00Z|NULL|true",
        ]
    );
    // nothing new: nothing committed
    let v = version_of(&dir, "silver.customers");
    run(&dir, &f, &[]);
    assert_eq!(version_of(&dir, "silver.customers"), v);
}

const SALES: &str = r#"
[pipeline]
name = "sales"

[[flows]]
name = "silver_sales"
target = "silver.sales"
source = "bronze.sales"
mode = "append"
steps = [{ cast = { day = "DATE", amount = "DECIMAL(10,2)" } }]
sql = "SELECT id, day, amount FROM input"

[[flows.expect]]
name = "known_region"
check = "id NOT LIKE 'x%'"
action = "quarantine"

[[flows]]
name = "daily"
target = "gold.daily"
source = "silver.sales"
mode = "replace"
partition_by = ["day"]
sql = "SELECT day, sum(amount) AS total, count(*) AS n FROM silver.sales GROUP BY day"
"#;

fn sales_lakehouse() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let (tmp, dir) = lakehouse();
    let f = file(tmp.path(), "sales.toml", SALES);
    land_lines(
        &dir,
        tmp.path(),
        "bronze.sales",
        "a",
        &[
            r#"{"id":"a1","day":"2024-09-01","amount":"10.50"}"#,
            r#"{"id":"a2","day":"2024-09-01","amount":"2"}"#,
            r#"{"id":"a3","day":"2024-09-02","amount":"7"}"#,
            r#"{"id":"a4","day":"2024-09-03","amount":"1"}"#,
            r#"{"id":"x5","day":"2024-09-03","amount":"100"}"#,
            r#"{"id":"a6","day":"2024-09-0x","amount":"1"}"#,
        ],
    );
    (tmp, dir, f)
}

#[test]
fn a_backfill_recomputes_a_partition_range_and_can_be_repeated() {
    let (_tmp, dir, f) = sales_lakehouse();
    run(&dir, &f, &[]);
    let gold = "SELECT CAST(day AS VARCHAR) AS d, CAST(total AS VARCHAR) AS t, n FROM gold.daily ORDER BY day";
    let before = lines(&dir, gold, &["d", "t", "n"]);
    assert_eq!(
        before,
        vec![
            "2024-09-01|12.50|2",
            "2024-09-02|7.00|1",
            "2024-09-03|1.00|1"
        ]
    );
    let silver_v = version_of(&dir, "silver.sales");
    let gold_v = version_of(&dir, "gold.daily");
    for _ in 0..2 {
        let out = run(&dir, &f, &["--partitions", "day=2024-09-02..2024-09-03"]);
        assert!(out.contains("skipped"), "{out}");
        assert_eq!(lines(&dir, gold, &["d", "t", "n"]), before);
    }
    // every backfill commits gold (its own transaction), never silver (an append flow)
    assert_eq!(version_of(&dir, "silver.sales"), silver_v);
    assert_eq!(version_of(&dir, "gold.daily"), gold_v + 2);
    let history = query(
        &dir,
        "SELECT count(*) AS n FROM system.pipeline_runs WHERE trigger = 'backfill' AND status = 'succeeded'",
    );
    assert_eq!(history[0]["n"], 2);
    // a range on a column the flow is not partitioned by is refused per flow, not run
    let o = strata(
        &dir,
        &[
            "pipeline",
            "run",
            f.to_str().unwrap(),
            "--partitions",
            "nope",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

#[test]
fn replay_moves_rows_that_now_pass_exactly_once_even_when_stopped_between_commits() {
    let (tmp, dir, f) = sales_lakehouse();
    run(&dir, &f, &[]);
    let q = "SELECT _stage AS s, _rules AS r FROM quarantine.sales ORDER BY _stage";
    let got = lines(&dir, q, &["s", "r"]);
    assert_eq!(
        got,
        vec!["cast|[]", "expectation|[\"known_region\"]"],
        "{got:?}"
    );
    // show filters by rule
    let shown = ok(
        &dir,
        &[
            "quarantine",
            "show",
            "quarantine.sales",
            "--rule",
            "known_region",
        ],
    );
    assert!(
        shown.contains("x5") && !shown.contains("2024-09-0x"),
        "{shown}"
    );
    // widen the rule, run (records the new definition), replay with a stop between its commits
    let relaxed = SALES.replace(
        "check = \"id NOT LIKE 'x%'\"",
        "check = \"id NOT LIKE 'z%'\"",
    );
    let f2 = file(tmp.path(), "sales2.toml", &relaxed);
    run(&dir, &f2, &[]);
    let o = std::process::Command::new(strata_bin())
        .args(["--lakehouse", dir.to_str().unwrap()])
        .args([
            "quarantine",
            "replay",
            "quarantine.sales",
            "--stage",
            "expectation",
        ])
        .env("STRATA_FAILPOINT", "replay::after_target_commit")
        .output()
        .unwrap();
    assert!(!o.status.success(), "the failpoint aborts: {}", text(&o));
    // the target has the row; the quarantine still has it, until the next replay finishes it
    let x5 = "SELECT count(*) AS n FROM silver.sales WHERE id = 'x5'";
    assert_eq!(query(&dir, x5)[0]["n"], 1);
    let out = ok(
        &dir,
        &[
            "quarantine",
            "replay",
            "quarantine.sales",
            "--stage",
            "expectation",
        ],
    );
    assert!(out.contains("finished 1 replay"), "{out}");
    assert_eq!(query(&dir, x5)[0]["n"], 1, "replayed exactly once");
    assert_eq!(lines(&dir, q, &["s", "r"]), vec!["cast|[]"]);
    // again: nothing to move
    let out = ok(&dir, &["quarantine", "replay", "quarantine.sales"]);
    assert!(out.contains("no row moved"), "{out}");
    assert_eq!(query(&dir, x5)[0]["n"], 1);
    // the cast row still fails ('2024-09-0x' is no date) and stays
    assert_eq!(lines(&dir, q, &["s", "r"]), vec!["cast|[]"]);
    // gold follows at the next run
    run(&dir, &f2, &[]);
    let d3 = lines(
        &dir,
        "SELECT CAST(total AS VARCHAR) AS t FROM gold.daily WHERE day = DATE '2024-09-03'",
        &["t"],
    );
    assert_eq!(d3, vec!["101.00"]);
}

#[test]
fn purge_removes_the_rows_named_and_needs_a_filter() {
    let (_tmp, dir, f) = sales_lakehouse();
    run(&dir, &f, &[]);
    let err = fails(&dir, &["quarantine", "purge", "quarantine.sales"]);
    assert!(err.contains("--all"), "{err}");
    let err = fails(&dir, &["quarantine", "purge", "silver.sales", "--all"]);
    assert!(err.contains("not a quarantine table"), "{err}");
    let out = ok(
        &dir,
        &["quarantine", "purge", "quarantine.sales", "--stage", "cast"],
    );
    assert!(out.contains("removed 1 row"), "{out}");
    assert_eq!(
        lines(&dir, "SELECT _stage AS s FROM quarantine.sales", &["s"]),
        vec!["expectation"]
    );
    let out = ok(
        &dir,
        &[
            "quarantine",
            "purge",
            "quarantine.sales",
            "--older-than",
            "30d",
        ],
    );
    assert!(out.contains("removed 0 row"), "{out}");
    let out = ok(&dir, &["quarantine", "purge", "quarantine.sales", "--all"]);
    assert!(out.contains("removed 1 row"), "{out}");
}

#[test]
fn quality_check_runs_rules_over_a_table_and_exits_3_on_a_failed_gate() {
    let (tmp, dir, f) = sales_lakehouse();
    run(&dir, &f, &[]);
    let rules = file(
        tmp.path(),
        "rules.toml",
        r#"
[[expect]]
name = "amount_positive"
column = "amount"
min = 5
action = "warn"

[[expect]]
name = "one_row_per_id"
unique = ["id"]
action = "fail"

[[expect]]
name = "some_rows"
row_count = { min = 1 }
"#,
    );
    let out = ok(
        &dir,
        &[
            "quality",
            "check",
            "silver.sales",
            "--rules",
            rules.to_str().unwrap(),
        ],
    );
    assert!(out.contains("amount_positive"), "{out}");
    let r = query(
        &dir,
        "SELECT rule, rows_checked, rows_failed, passed FROM system.quality_results \
         WHERE flow IS NULL ORDER BY rule",
    );
    assert_eq!(r.len(), 3, "{r:?}");
    assert_eq!(r[0]["rule"], "amount_positive");
    assert_eq!(r[0]["rows_checked"], 4);
    assert_eq!(r[0]["rows_failed"], 2);
    assert_eq!(r[0]["passed"], false);
    // a duplicate id fails the gate: exit 3
    let dup = file(
        tmp.path(),
        "dup.toml",
        "[[expect]]\nname = \"one_row_per_day\"\nunique = [\"day\"]\naction = \"fail\"\n",
    );
    let o = strata(
        &dir,
        &[
            "quality",
            "check",
            "silver.sales",
            "--rules",
            dup.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    // version 1 of silver has the same rows: the check reads it
    let o = strata(
        &dir,
        &[
            "quality",
            "check",
            "silver.sales",
            "--version",
            "1",
            "--rules",
            rules.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    // quarantine or drop make no sense without a flow
    let bad = file(
        tmp.path(),
        "bad.toml",
        "[[expect]]\nname = \"x\"\nnot_null = \"id\"\naction = \"drop\"\n",
    );
    let err = fails(
        &dir,
        &[
            "quality",
            "check",
            "silver.sales",
            "--rules",
            bad.to_str().unwrap(),
        ],
    );
    assert!(err.contains("warn or fail"), "{err}");
}

#[test]
fn a_forced_restore_refreshes_readers_and_rewinds_the_writers_watermarks() {
    let (tmp, dir, f) = sales_lakehouse();
    run(&dir, &f, &[]);
    land_lines(
        &dir,
        tmp.path(),
        "bronze.sales",
        "b",
        &[r#"{"id":"b1","day":"2024-09-01","amount":"5"}"#],
    );
    run(&dir, &f, &[]);
    let gold = "SELECT CAST(day AS VARCHAR) AS d, CAST(total AS VARCHAR) AS t FROM gold.daily ORDER BY day";
    assert_eq!(lines(&dir, gold, &["d", "t"])[0], "2024-09-01|17.50");
    // silver is read by `daily` and written by `silver_sales`: a restore needs --force
    let err = fails(
        &dir,
        &["table", "restore", "silver.sales", "--version", "1"],
    );
    assert!(
        err.contains("--force")
            && err.contains("sales.daily")
            && err.contains("sales.silver_sales"),
        "{err}"
    );
    let err = fails(
        &dir,
        &["sql", "RESTORE TABLE silver.sales TO VERSION AS OF 1"],
    );
    assert!(err.contains("--force"), "{err}");
    ok(
        &dir,
        &[
            "table",
            "restore",
            "silver.sales",
            "--version",
            "1",
            "--force",
        ],
    );
    // b1 left silver; the writer's watermark went back, so the next run lands b1 again, and
    // the reader was marked for a full refresh, so gold is recomputed from silver
    assert_eq!(
        query(
            &dir,
            "SELECT count(*) AS n FROM silver.sales WHERE id = 'b1'"
        )[0]["n"],
        0
    );
    run(&dir, &f, &[]);
    assert_eq!(
        query(
            &dir,
            "SELECT count(*) AS n FROM silver.sales WHERE id = 'b1'"
        )[0]["n"],
        1
    );
    assert_eq!(lines(&dir, gold, &["d", "t"])[0], "2024-09-01|17.50");
    let marks = query(
        &dir,
        "SELECT count(*) AS n FROM system.flow_runs WHERE flow = 'daily' AND status = 'succeeded'",
    );
    assert_eq!(marks[0]["n"], 3);
}

#[test]
fn apply_deletes_removes_the_keys_the_source_deleted() {
    let (tmp, dir) = lakehouse();
    let f = file(
        tmp.path(),
        "items.toml",
        r#"
[pipeline]
name = "items"

[[flows]]
name = "items"
target = "silver.items"
source = "bronze.items"
mode = "merge"
keys = ["id"]
sql = "SELECT id, v FROM input"

[[flows]]
name = "items_copy"
target = "silver.items_copy"
source = "silver.items"
mode = "merge"
keys = ["id"]
apply_deletes = true

[[flows.expect]]
name = "v_present"
not_null = "v"
action = "quarantine"
"#,
    );
    land_lines(
        &dir,
        tmp.path(),
        "bronze.items",
        "a",
        &[
            r#"{"id":"1","v":"a"}"#,
            r#"{"id":"2","v":"b"}"#,
            r#"{"id":"3","v":"c"}"#,
        ],
    );
    run(&dir, &f, &[]);
    let copy = "SELECT id, v FROM silver.items_copy ORDER BY id";
    assert_eq!(lines(&dir, copy, &["id", "v"]), vec!["1|a", "2|b", "3|c"]);
    // a user deletes a row upstream and updates another
    ok(&dir, &["sql", "DELETE FROM silver.items WHERE id = '2'"]);
    ok(
        &dir,
        &["sql", "UPDATE silver.items SET v = 'C' WHERE id = '3'"],
    );
    run(&dir, &f, &[]);
    assert_eq!(lines(&dir, copy, &["id", "v"]), vec!["1|a", "3|C"]);
    // a validation error for apply_deletes outside merge
    let bad = file(
        tmp.path(),
        "bad.toml",
        "[pipeline]\nname = \"b\"\n[[flows]]\nname = \"f\"\ntarget = \"silver.z\"\nsource = \"silver.items\"\nmode = \"append\"\napply_deletes = true\n",
    );
    let err = fails(&dir, &["pipeline", "validate", bad.to_str().unwrap()]);
    assert!(
        err.contains("apply_deletes") && err.contains("merge"),
        "{err}"
    );
}

#[test]
fn on_schema_change_full_refresh_recomputes_the_target_with_its_new_shape() {
    let (tmp, dir) = lakehouse();
    let spec = |amount_type: &str| {
        format!(
            r#"
[pipeline]
name = "shape"

[[flows]]
name = "orders"
target = "silver.orders"
source = "bronze.orders"
mode = "append"
on_schema_change = "full_refresh"
steps = [{{ cast = {{ amount = "{amount_type}" }} }}]
"#
        )
    };
    let f = file(tmp.path(), "shape.toml", &spec("STRING"));
    land_lines(
        &dir,
        tmp.path(),
        "bronze.orders",
        "a",
        &[r#"{"id":"1","amount":"1.5"}"#, r#"{"id":"2","amount":"2"}"#],
    );
    run(&dir, &f, &[]);
    // bronze gains a column: silver is recomputed with it, old rows included
    land_lines(
        &dir,
        tmp.path(),
        "bronze.orders",
        "b",
        &[r#"{"id":"3","amount":"3","coupon":"X"}"#],
    );
    let out = run(&dir, &f, &[]);
    assert!(out.contains("orders"), "{out}");
    let sql = "SELECT id, CAST(amount AS VARCHAR) AS a, coupon FROM silver.orders ORDER BY id";
    assert_eq!(
        lines(&dir, sql, &["id", "a", "coupon"]),
        vec!["1|1.5|NULL", "2|2|NULL", "3|3|X"]
    );
    // a type change is a full refresh too, with this policy
    let f2 = file(tmp.path(), "shape2.toml", &spec("DECIMAL(10,2)"));
    ok(&dir, &["pipeline", "validate", f2.to_str().unwrap()]);
    run(&dir, &f2, &[]);
    assert_eq!(
        lines(&dir, sql, &["id", "a", "coupon"]),
        vec!["1|1.50|NULL", "2|2.00|NULL", "3|3.00|X"]
    );
    let t = query(
        &dir,
        "SELECT data_type FROM system.columns WHERE full_name = 'lakehouse.silver.orders' AND column_name = 'amount'",
    );
    assert_eq!(t[0]["data_type"], "DECIMAL(10,2)", "{t:?}");
    // and then nothing new: nothing committed
    let v = version_of(&dir, "silver.orders");
    run(&dir, &f2, &[]);
    assert_eq!(version_of(&dir, "silver.orders"), v);
}

#[test]
fn vacuum_keeps_what_a_flow_has_not_read_and_a_lost_watermark_says_full_refresh() {
    let (tmp, dir) = lakehouse();
    let f = file(
        tmp.path(),
        "items.toml",
        r#"
[pipeline]
name = "items"

[[flows]]
name = "items"
target = "silver.items"
source = "bronze.items"
mode = "merge"
keys = ["id"]
sql = "SELECT id, v FROM input"

[[flows]]
name = "copy"
target = "silver.items_copy"
source = "silver.items"
mode = "merge"
keys = ["id"]
"#,
    );
    land_lines(
        &dir,
        tmp.path(),
        "bronze.items",
        "a",
        &[r#"{"id":"1","v":"a"}"#, r#"{"id":"2","v":"b"}"#],
    );
    run(&dir, &f, &[]);
    // silver.items changes; `copy` has not read it yet
    ok(
        &dir,
        &["sql", "UPDATE silver.items SET v = 'B' WHERE id = '2'"],
    );
    ok(
        &dir,
        &[
            "sql",
            "ALTER TABLE silver.items SET TBLPROPERTIES ('delta.deletedFileRetentionDuration' = 'interval 0 hours')",
        ],
    );
    let o = strata(
        &dir,
        &["table", "vacuum", "silver.items", "--retain-hours", "0"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("items.copy"), "{err}");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("deleted 0 file"),
        "{}",
        text(&o)
    );
    // the flow still reads its changes
    run(&dir, &f, &["--select", "copy"]);
    let copy = "SELECT id, v FROM silver.items_copy ORDER BY id";
    assert_eq!(lines(&dir, copy, &["id", "v"]), vec!["1|a", "2|B"]);
    // an insert whose file OPTIMIZE then compacts away: a forced vacuum deletes the file the
    // insert's change feed reads, so `copy` cannot read its changes and says --full-refresh
    ok(&dir, &["sql", "INSERT INTO silver.items VALUES ('3', 'c')"]);
    ok(&dir, &["table", "optimize", "silver.items"]);
    let out = ok(
        &dir,
        &[
            "table",
            "vacuum",
            "silver.items",
            "--retain-hours",
            "0",
            "--force",
        ],
    );
    assert!(!out.contains("deleted 0 file"), "{out}");
    let o = strata(
        &dir,
        &["pipeline", "run", f.to_str().unwrap(), "--select", "copy"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("--full-refresh"), "{}", text(&o));
    run(&dir, &f, &["--select", "copy", "--full-refresh"]);
    assert_eq!(lines(&dir, copy, &["id", "v"]), vec!["1|a", "2|B", "3|c"]);
}

/// Bytes the flow's last run fetched per source file (STRATA_TRACE_READS), data files only.
fn reads_of(dir: &Path, flow: &str) -> std::collections::BTreeMap<String, u64> {
    let rows = query(
        dir,
        &format!(
            "SELECT samples FROM system.flow_runs WHERE flow = '{flow}' AND status = 'succeeded' \
             ORDER BY started_at DESC LIMIT 1"
        ),
    );
    let samples: serde_json::Value =
        serde_json::from_str(rows[0]["samples"].as_str().unwrap()).unwrap();
    let reads = samples
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "reads")
        .expect("a reads sample");
    reads["bytes"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.ends_with(".parquet"))
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect()
}

#[test]
fn a_flow_reads_each_source_file_once_and_only_the_new_ones_next_time() {
    let (tmp, dir) = lakehouse();
    let data = tmp.path().join("gen");
    let land = |seed: &str, out: &Path| {
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
                seed,
                "--out",
                out.to_str().unwrap(),
            ],
        );
        ok(
            &dir,
            &[
                "ingest",
                out.to_str().unwrap(),
                "--into",
                "bronze.events",
                "--max-files",
                "1",
            ],
        );
        ok(
            &dir,
            &["ingest", out.to_str().unwrap(), "--into", "bronze.events"],
        );
    };
    land("1", &data.join("a"));
    let example = crate::manifest_dir().join("../../examples/events.pipeline.toml");
    let run_traced = || {
        let o = std::process::Command::new(strata_bin())
            .args(["--lakehouse", dir.to_str().unwrap(), "pipeline", "run"])
            .arg(&example)
            .env("STRATA_TRACE_READS", "1")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
    };
    run_traced();
    let bronze = dir.join("lakehouse/bronze/events");
    let size = |rel: &str| {
        let name = rel.rsplit('/').next().unwrap();
        std::fs::metadata(bronze.join(name)).unwrap().len()
    };
    let first = reads_of(&dir, "silver_events");
    assert_eq!(first.len(), 2, "two bronze files, each read: {first:?}");
    for (f, n) in &first {
        // one scan: at most the file once (a Parquet reader may skip its footer bytes)
        assert!(*n > 0 && *n <= size(f), "{f}: {n} bytes of {}", size(f));
    }
    // new files: the next run reads only them
    land("2", &data.join("b"));
    run_traced();
    let second = reads_of(&dir, "silver_events");
    assert_eq!(second.len(), 2, "{second:?}");
    for (f, n) in &second {
        assert!(!first.contains_key(f), "{f} was read again");
        assert!(*n > 0 && *n <= size(f), "{f}: {n} bytes of {}", size(f));
    }
}

#[test]
fn every_runs_on_a_schedule_until_sigterm_and_on_failure_runs_its_command() {
    let (tmp, dir, f) = sales_lakehouse();
    let mut child = std::process::Command::new(strata_bin())
        .args(["--lakehouse", dir.to_str().unwrap(), "pipeline", "run"])
        .arg(&f)
        .args(["--every", "1s"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // wait for at least two scheduled runs, then SIGTERM
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let n = query(
            &dir,
            "SELECT count(*) AS n FROM system.pipeline_runs WHERE trigger = 'schedule' AND status = 'succeeded'",
        )[0]["n"]
            .as_i64()
            .unwrap();
        if n >= 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no second scheduled run"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let pid = child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "SIGTERM between runs ends the schedule cleanly: {status:?}"
    );
    // a failing run runs --on-failure with its run id
    let failing = file(
        tmp.path(),
        "failing.toml",
        &SALES.replace("action = \"quarantine\"", "action = \"fail\""),
    );
    land_lines(
        &dir,
        tmp.path(),
        "bronze.sales",
        "more",
        &[r#"{"id":"x9","day":"2024-09-04","amount":"1"}"#],
    );
    let marker = tmp.path().join("failed-run");
    let o = strata(
        &dir,
        &[
            "pipeline",
            "run",
            failing.to_str().unwrap(),
            "--on-failure",
            &format!("echo \"$STRATA_RUN_ID\" > {}", marker.display()),
        ],
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let run_id = std::fs::read_to_string(&marker).unwrap();
    let failed = query(
        &dir,
        &format!(
            "SELECT status FROM system.pipeline_runs WHERE run_id = '{}'",
            run_id.trim()
        ),
    );
    assert_eq!(failed[0]["status"], "failed", "{failed:?}");
}

#[test]
fn every_source_read_as_changes_contributes_only_its_new_rows() {
    let (tmp, dir) = lakehouse();
    let f = file(
        tmp.path(),
        "two.toml",
        r#"
[pipeline]
name = "two"

[[flows]]
name = "all_ids"
target = "silver.all_ids"
sources = [
  { table = "bronze.a", read = "changes" },
  { table = "bronze.b", read = "changes" },
]
mode = "append"
sql = "SELECT id, 'a' AS side FROM input UNION ALL SELECT id, 'b' AS side FROM bronze.b"
"#,
    );
    land_lines(&dir, tmp.path(), "bronze.a", "a1", &[r#"{"id":"1"}"#]);
    land_lines(&dir, tmp.path(), "bronze.b", "b1", &[r#"{"id":"2"}"#]);
    run(&dir, &f, &[]);
    // only b gets a new row: the next run appends just that one
    land_lines(&dir, tmp.path(), "bronze.b", "b2", &[r#"{"id":"3"}"#]);
    run(&dir, &f, &[]);
    let sql = "SELECT id, side FROM silver.all_ids ORDER BY id";
    assert_eq!(lines(&dir, sql, &["id", "side"]), vec!["1|a", "2|b", "3|b"]);
    land_lines(&dir, tmp.path(), "bronze.a", "a2", &[r#"{"id":"4"}"#]);
    run(&dir, &f, &[]);
    assert_eq!(
        lines(&dir, sql, &["id", "side"]),
        vec!["1|a", "2|b", "3|b", "4|a"]
    );
}

#[test]
fn zorder_optimizes_the_target_after_a_write_that_adds_rows() {
    let (tmp, dir) = lakehouse();
    let f = file(
        tmp.path(),
        "z.toml",
        r#"
[pipeline]
name = "z"

[[flows]]
name = "z"
target = "silver.z"
source = "bronze.z"
mode = "append"
zorder = ["user_id"]
sql = "SELECT id, user_id FROM input"
"#,
    );
    land_lines(
        &dir,
        tmp.path(),
        "bronze.z",
        "a",
        &[
            r#"{"id":"1","user_id":"u2"}"#,
            r#"{"id":"2","user_id":"u1"}"#,
        ],
    );
    run(&dir, &f, &[]);
    let history = query(&dir, "DESCRIBE HISTORY silver.z");
    let ops: Vec<String> = history
        .iter()
        .map(|r| r["operation"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(ops.iter().any(|o| o == "OPTIMIZE"), "{ops:?}");

    // nothing new: no write, so no OPTIMIZE either
    let v = version_of(&dir, "silver.z");
    run(&dir, &f, &[]);
    assert_eq!(version_of(&dir, "silver.z"), v);
}
