use crate::*;

#[test]
fn init_creates_schemas_and_refuses_twice() {
    let (_tmp, dir) = lakehouse();
    assert!(dir.join("strata.toml").is_file());
    assert!(dir.join("_strata/metastore.db").is_file());
    let out = ok(&dir, &["--format", "csv", "schema", "list"]);
    for s in ["bronze", "silver", "gold", "quarantine", "system"] {
        assert!(out.contains(&format!("lakehouse.{s},{s}")), "{out}");
    }
    let o = std::process::Command::new(strata_bin())
        .arg("init")
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("already a Strata lakehouse"),
        "{}",
        text(&o)
    );
}

#[test]
fn missing_or_foreign_lakehouse_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let err = fails(&tmp.path().join("nope"), &["table", "list"]);
    assert!(err.contains("does not exist"), "{err}");
    let err = fails(tmp.path(), &["table", "list"]);
    assert!(err.contains("is not a Strata lakehouse"), "{err}");
    // discovery from the current folder upwards
    let (_t, dir) = lakehouse();
    std::fs::create_dir_all(dir.join("a/b")).unwrap();
    let o = std::process::Command::new(strata_bin())
        .current_dir(dir.join("a/b"))
        .env_remove("STRATA_LAKEHOUSE")
        .args(["schema", "list"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn table_lifecycle() {
    let (_tmp, dir) = lakehouse();
    let out = ok(
        &dir,
        &[
            "table",
            "create",
            "silver.users",
            "--columns",
            "id BIGINT NOT NULL, name STRING COMMENT 'display name', ts TIMESTAMP",
            "--partition-by",
            "name",
            "--comment",
            "people",
            "--property",
            "team=core",
        ],
    );
    assert!(out.contains("version 0"), "{out}");
    let table_dir = dir.join("lakehouse/silver/users");
    assert_eq!(latest_version(&table_dir), 0);

    ok(
        &dir,
        &[
            "sql",
            "INSERT INTO silver.users VALUES (1, 'ada', TIMESTAMP '2024-01-01 00:00:00')",
        ],
    );
    ok(
        &dir,
        &["sql", "INSERT INTO silver.users VALUES (2, 'bob', NULL)"],
    );
    assert_eq!(latest_version(&table_dir), 2);

    ok(
        &dir,
        &[
            "table",
            "set",
            "silver.users",
            "--owner",
            "data-team",
            "--comment",
            "all people",
        ],
    );
    ok(
        &dir,
        &["table", "tag", "silver.users", "pii", "--column", "name"],
    );
    ok(&dir, &["table", "tag", "silver.users", "core"]);
    let err = fails(
        &dir,
        &["table", "tag", "silver.users", "pii", "--column", "nope"],
    );
    assert!(err.contains("nope"), "{err}");

    let d: serde_json::Value = serde_json::from_str(&ok(
        &dir,
        &["--format", "json", "table", "describe", "silver.users"],
    ))
    .unwrap();
    assert_eq!(d["owner"], "data-team");
    assert_eq!(d["comment"], "all people");
    assert_eq!(d["layer"], "silver");
    assert_eq!(d["version"], 2);
    assert_eq!(d["properties"]["team"], "core");
    assert_eq!(d["partition_columns"][0], "name");
    assert_eq!(d["tags"][0], "core");
    assert_eq!(d["delta_properties"]["delta.enableChangeDataFeed"], "true");
    let cols = d["columns"].as_array().unwrap();
    assert_eq!(cols[0]["name"], "id");
    assert_eq!(cols[0]["nullable"], false);
    assert_eq!(cols[1]["comment"], "display name");
    assert_eq!(cols[1]["tags"][0], "pii");
    assert_eq!(cols[2]["data_type"], "TIMESTAMP");
    assert!(d["files"].as_u64().unwrap() >= 2);

    ok(
        &dir,
        &["table", "untag", "silver.users", "pii", "--column", "name"],
    );
    let err = fails(
        &dir,
        &["table", "untag", "silver.users", "pii", "--column", "name"],
    );
    assert!(err.contains("has no tag"), "{err}");

    let h: Vec<serde_json::Value> = serde_json::from_str(&ok(
        &dir,
        &["--format", "json", "table", "history", "silver.users"],
    ))
    .unwrap();
    assert_eq!(h.len(), 3);
    assert_eq!(h[0]["version"], "2");
    assert_eq!(h[2]["operation"], "CREATE TABLE");

    let listed = ok(
        &dir,
        &["--format", "csv", "table", "list", "--layer", "silver"],
    );
    assert!(
        listed.contains("lakehouse.silver.users,silver,managed,data-team"),
        "{listed}"
    );

    // restore to version 1: one new commit
    ok(
        &dir,
        &["table", "restore", "silver.users", "--version", "1"],
    );
    assert_eq!(latest_version(&table_dir), 3);
    assert_eq!(
        query(&dir, "SELECT count(*) AS n FROM silver.users")[0]["n"],
        1
    );
    let err = fails(
        &dir,
        &["table", "restore", "silver.users", "--version", "42"],
    );
    assert!(err.contains("no version 42"), "{err}");
    assert_eq!(latest_version(&table_dir), 3);

    ok(
        &dir,
        &["sql", "INSERT INTO silver.users VALUES (3, 'cy', NULL)"],
    );
    let out = ok(
        &dir,
        &["table", "optimize", "silver.users", "--zorder", "id"],
    );
    assert!(out.contains("optimized"), "{out}");
    let out = ok(
        &dir,
        &[
            "table",
            "vacuum",
            "silver.users",
            "--retain-hours",
            "168",
            "--dry-run",
        ],
    );
    assert!(out.contains("would delete"), "{out}");

    // drop moves the folder to the trash, undrop brings it back
    ok(&dir, &["table", "drop", "silver.users"]);
    assert!(!table_dir.exists());
    let err = fails(&dir, &["sql", "SELECT * FROM silver.users"]);
    assert!(err.contains("does not exist"), "{err}");
    ok(&dir, &["table", "undrop", "silver.users"]);
    assert!(table_dir.exists());
    assert_eq!(
        query(&dir, "SELECT count(*) AS n FROM silver.users")[0]["n"],
        2
    );
    ok(&dir, &["table", "drop", "silver.users", "--purge"]);
    assert!(!table_dir.exists());
    assert!(fails(&dir, &["table", "undrop", "silver.users"]).contains("no dropped table"));
}

#[test]
fn bad_input_is_refused_without_partial_state() {
    let (_tmp, dir) = lakehouse();
    let before = std::fs::read_dir(dir.join("lakehouse"))
        .map(|d| d.count())
        .unwrap_or(0);
    for (args, needle) in [
        (
            vec!["table", "create", "users", "--columns", "id BIGINT"],
            "silver.users",
        ),
        (
            vec!["table", "create", "../x", "--columns", "id BIGINT"],
            "invalid",
        ),
        (
            vec!["table", "create", "silver.a/b", "--columns", "id BIGINT"],
            "not allowed",
        ),
        (
            vec!["table", "create", "silver.t", "--columns", "id BIGNUM"],
            "unknown type 'BIGNUM'",
        ),
        (
            vec!["table", "create", "nope.t", "--columns", "id BIGINT"],
            "schema",
        ),
        (
            vec![
                "table",
                "create",
                "silver.t",
                "--columns",
                "id BIGINT",
                "--partition-by",
                "zz",
            ],
            "zz",
        ),
        (
            vec!["table", "describe", "silver.missing"],
            "does not exist",
        ),
        (
            vec!["table", "restore", "silver.missing", "--version", "1"],
            "does not exist",
        ),
        (
            vec![
                "table",
                "register",
                "silver.ext",
                "--location",
                "/definitely/not/here",
            ],
            "does not exist",
        ),
    ] {
        let err = fails(&dir, &args);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    let tables = ok(&dir, &["--format", "json", "table", "list"]);
    assert_eq!(tables.trim(), "[]");
    let after = std::fs::read_dir(dir.join("lakehouse"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(before, after, "no table folder was left behind");
    // clap usage errors exit 2
    let o = strata(&dir, &["table", "create"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn sql_writes_obey_layer_rules() {
    let (_tmp, dir) = lakehouse();
    ok(
        &dir,
        &[
            "table",
            "create",
            "bronze.raw",
            "--columns",
            "id BIGINT, v STRING",
        ],
    );
    ok(
        &dir,
        &[
            "table",
            "create",
            "silver.clean",
            "--columns",
            "id BIGINT, v STRING",
        ],
    );
    let bronze_dir = dir.join("lakehouse/bronze/raw");
    let err = fails(&dir, &["sql", "INSERT INTO bronze.raw VALUES (1, 'a')"]);
    assert!(err.contains("only ingestion writes"), "{err}");
    assert_eq!(latest_version(&bronze_dir), 0);
    let err = fails(
        &dir,
        &["sql", "CREATE TABLE gold.g AS SELECT * FROM bronze.raw"],
    );
    assert!(err.contains("never reads bronze"), "{err}");
    assert!(!dir.join("lakehouse/gold/g").exists());
    let err = fails(
        &dir,
        &["sql", "CREATE VIEW gold.v AS SELECT * FROM bronze.raw"],
    );
    assert!(err.contains("never reads bronze"), "{err}");
    let err = fails(
        &dir,
        &["sql", "INSERT INTO silver.clean SELECT * FROM gold.nothing"],
    );
    assert!(err.contains("does not exist"), "{err}");
    ok(
        &dir,
        &["sql", "INSERT INTO silver.clean SELECT * FROM bronze.raw"],
    );
}

#[test]
fn metastore_backup_is_a_consistent_copy() {
    let (tmp, dir) = lakehouse();
    ok(
        &dir,
        &["table", "create", "silver.t", "--columns", "id BIGINT"],
    );
    let copy = tmp.path().join("backup.db");
    ok(&dir, &["metastore", "backup", copy.to_str().unwrap()]);
    let out = std::process::Command::new("sqlite3")
        .arg(&copy)
        .arg("SELECT catalog || '.' || schema || '.' || name FROM tables; SELECT count(*) FROM settings WHERE key = 'hmac_key';")
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("lakehouse.silver.t"), "{s}");
    assert!(s.lines().any(|l| l.trim() == "1"), "{s}");
    assert!(fails(&dir, &["metastore", "backup", copy.to_str().unwrap()]).contains("exists"));
}

/// `--help` is part of the interface: a change shows up here. Regenerate on purpose with
/// `STRATA_UPDATE_GOLDEN=1`.
#[test]
fn help_text_matches_golden_files() {
    let golden = crate::manifest_dir().join("tests/it/golden");
    for (args, file) in [
        (vec!["--help"], "help.txt"),
        (vec!["table", "--help"], "table_help.txt"),
        (vec!["table", "create", "--help"], "table_create_help.txt"),
        (vec!["sql", "--help"], "sql_help.txt"),
        (vec!["ingest", "--help"], "ingest_help.txt"),
        (
            vec!["generate", "events", "--help"],
            "generate_events_help.txt",
        ),
        (vec!["pipeline", "--help"], "pipeline_help.txt"),
        (vec!["pipeline", "run", "--help"], "pipeline_run_help.txt"),
        (vec!["quarantine", "--help"], "quarantine_help.txt"),
        (vec!["quality", "check", "--help"], "quality_check_help.txt"),
    ] {
        let o = std::process::Command::new(strata_bin())
            .args(&args)
            .env_remove("COLUMNS")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        let got = String::from_utf8_lossy(&o.stdout).to_string();
        let path = golden.join(file);
        if std::env::var_os("STRATA_UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_else(|_| {
            panic!(
                "missing {}: run with STRATA_UPDATE_GOLDEN=1",
                path.display()
            )
        });
        assert_eq!(
            got, want,
            "strata {args:?} changed; rerun with STRATA_UPDATE_GOLDEN=1 if on purpose"
        );
    }
}

#[test]
fn a_closed_stdout_is_not_a_crash() {
    let (_tmp, dir) = lakehouse();
    ok(
        &dir,
        &["table", "create", "silver.t", "--columns", "id BIGINT"],
    );
    ok(
        &dir,
        &[
            "sql",
            "INSERT INTO silver.t SELECT * FROM unnest(range(0, 20000))",
        ],
    );
    let mut child = std::process::Command::new(strata_bin())
        .arg("--lakehouse")
        .arg(&dir)
        .args(["--format", "csv", "sql", "SELECT * FROM silver.t"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away, as `| head` does
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
}
