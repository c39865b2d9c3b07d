use crate::*;

#[test]
fn doctor_names_and_repairs_each_problem() {
    let (_tmp, dir) = lakehouse();
    ok(
        &dir,
        &["table", "create", "silver.fine", "--columns", "id BIGINT"],
    );
    assert!(ok(&dir, &["doctor"]).contains("agree"));

    // an orphan entry: the table's folder vanished behind Strata's back
    ok(
        &dir,
        &["table", "create", "silver.gone", "--columns", "id BIGINT"],
    );
    std::fs::remove_dir_all(dir.join("lakehouse/silver/gone")).unwrap();

    // an orphan log: a Delta table under the root that no entry names
    ok(
        &dir,
        &["table", "create", "silver.orphan", "--columns", "id BIGINT"],
    );
    let id = std::process::Command::new("sqlite3")
        .arg(dir.join("_strata/metastore.db"))
        .arg("SELECT table_id FROM tables WHERE name = 'orphan'")
        .output()
        .unwrap();
    let id = String::from_utf8_lossy(&id.stdout).trim().to_string();
    assert!(!id.is_empty());
    let del = std::process::Command::new("sqlite3")
        .arg(dir.join("_strata/metastore.db"))
        .arg(format!("DELETE FROM tables WHERE table_id = '{id}'"))
        .status()
        .unwrap();
    assert!(del.success());

    // a wrong location: the entry points elsewhere than its name's folder
    ok(
        &dir,
        &["table", "create", "silver.moved", "--columns", "id BIGINT"],
    );
    let set = std::process::Command::new("sqlite3")
        .arg(dir.join("_strata/metastore.db"))
        .arg("UPDATE tables SET location = 'file:///tmp/strata-elsewhere/' WHERE name = 'moved'")
        .status()
        .unwrap();
    assert!(set.success());

    let o = strata(&dir, &["doctor"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let report = text(&o);
    assert!(
        report.contains("[missing_log]") && report.contains("lakehouse.silver.gone"),
        "{report}"
    );
    assert!(
        report.contains("[orphan_log]") && report.contains("silver/orphan"),
        "{report}"
    );
    assert!(
        report.contains("[outside_root]") && report.contains("lakehouse.silver.moved"),
        "{report}"
    );
    assert!(!report.contains("silver.fine"), "{report}");

    let repaired = ok(&dir, &["doctor", "--repair"]);
    assert!(repaired.matches("fixed").count() >= 3, "{repaired}");
    assert!(ok(&dir, &["doctor"]).contains("agree"));
    // the orphan is a table again, the moved one reads from its folder
    assert_eq!(
        query(&dir, "SELECT count(*) AS n FROM silver.orphan")[0]["n"],
        0
    );
    assert_eq!(
        query(&dir, "SELECT count(*) AS n FROM silver.moved")[0]["n"],
        0
    );
    assert!(fails(&dir, &["sql", "SELECT * FROM silver.gone"]).contains("does not exist"));
}
