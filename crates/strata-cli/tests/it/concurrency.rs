//! Two `strata` processes appending to one table at once: every acknowledged append is there
//! exactly once, and the versions count the acknowledged appends.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};

use crate::*;

const APPENDS: usize = 200;

#[test]
fn two_processes_append_to_one_table() {
    let (tmp, dir) = lakehouse();
    ok(
        &dir,
        &[
            "table",
            "create",
            "silver.log",
            "--columns",
            "writer STRING NOT NULL, seq BIGINT NOT NULL",
        ],
    );
    let mut children = Vec::new();
    for writer in ["a", "b"] {
        let script = tmp.path().join(format!("{writer}.sql"));
        let mut f = std::fs::File::create(&script).unwrap();
        for seq in 0..APPENDS {
            writeln!(f, "INSERT INTO silver.log VALUES ('{writer}', {seq});").unwrap();
        }
        let child = Command::new(strata_bin())
            .arg("--lakehouse")
            .arg(&dir)
            .args(["sql", "--file"])
            .arg(&script)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        children.push((writer, child));
    }
    let mut acknowledged: HashMap<(String, i64), usize> = HashMap::new();
    let mut acks = 0;
    for (writer, child) in children {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        // each acknowledged append printed one "INSERT 1" line, in script order
        let n = stdout
            .lines()
            .filter(|l| l.starts_with("INSERT 1:"))
            .count();
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains("retry") || err.contains("concurrent"),
                "writer {writer} failed unclean: {err}"
            );
        }
        for seq in 0..n {
            acknowledged.insert((writer.to_string(), seq as i64), 0);
        }
        acks += n;
    }
    assert!(acks > 0);
    let rows = query(&dir, "SELECT writer, seq FROM silver.log");
    for r in &rows {
        let key = (
            r["writer"].as_str().unwrap().to_string(),
            r["seq"].as_i64().unwrap(),
        );
        *acknowledged.entry(key).or_insert(0) += 1;
    }
    for (k, n) in &acknowledged {
        assert_eq!(*n, 1, "append {k:?} is in the table {n} times");
    }
    assert_eq!(rows.len(), acks, "every row is an acknowledged append");
    assert_eq!(
        latest_version(&dir.join("lakehouse/silver/log")),
        acks as i64
    );
    println!("acknowledged appends: {acks} of {}", 2 * APPENDS);
}
