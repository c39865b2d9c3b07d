//! Interoperability both ways: what Strata writes reads back identically in Python `deltalake`
//! and in DuckDB's delta extension; a table Python `deltalake` writes is registered and queried
//! by Strata.

use crate::*;

/// Runs a Python snippet with the test interpreter; it prints JSON on its last line.
fn py(code: &str) -> serde_json::Value {
    crate::py(code, &[])
}

/// Rows as sorted "id|name|epoch-micros" strings.
fn norm(rows: &serde_json::Value) -> Vec<String> {
    let mut v: Vec<String> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{}|{}|{}",
                r["id"],
                r["name"].as_str().unwrap_or("NULL"),
                r["us"]
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn strata_tables_read_back_in_python_and_duckdb() {
    let (_tmp, dir) = lakehouse();
    ok(
        &dir,
        &[
            "table",
            "create",
            "silver.t",
            "--columns",
            "id BIGINT NOT NULL, name STRING, ts TIMESTAMP",
        ],
    );
    ok(
        &dir,
        &[
            "sql",
            "INSERT INTO silver.t VALUES (1, 'a', TIMESTAMP '2024-09-01 12:00:00.123456'), (2, 'b', TIMESTAMP '2024-09-01 14:00:00+02:00')",
        ],
    );
    ok(
        &dir,
        &[
            "sql",
            "INSERT INTO silver.t VALUES (3, NULL, NULL), (4, 'd', TIMESTAMP '1999-12-31 23:59:59')",
        ],
    );
    ok(
        &dir,
        &[
            "sql",
            "CREATE TABLE silver.u AS SELECT * FROM (VALUES (2, 'B', TIMESTAMP '2030-01-01 00:00:00'), (5, 'e', TIMESTAMP '2024-02-29 00:00:00')) AS v(id, name, ts)",
        ],
    );
    ok(
        &dir,
        &[
            "sql",
            "MERGE INTO silver.t AS t USING silver.u AS s ON t.id = s.id WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *",
        ],
    );
    ok(&dir, &["table", "optimize", "silver.t"]);
    let path = dir.join("lakehouse/silver/t");
    let path = path.to_str().unwrap();

    let strata_rows = serde_json::Value::Array(query(
        &dir,
        "SELECT id, name, CAST(ts AS BIGINT) AS us FROM silver.t",
    ));
    let strata_rows: Vec<String> = norm(&strata_rows);
    assert_eq!(strata_rows.len(), 5, "{strata_rows:?}");

    let python_rows = py(&format!(
        r#"
import json, os
from deltalake import DeltaTable
t = DeltaTable({path:?}).to_pyarrow_table()
rows = []
for r in t.to_pylist():
    ts = r["ts"]
    us = None if ts is None else int(ts.timestamp()) * 1000000 + ts.microsecond
    rows.append({{"id": r["id"], "name": r["name"], "us": us}})
print(json.dumps(rows))
os._exit(0)
"#
    ));
    assert_eq!(
        norm(&python_rows),
        strata_rows,
        "python deltalake reads the same rows"
    );

    let ext = std::env::var("STRATA_DUCKDB_DELTA").expect("run the tests with ./test.sh");
    let duck_rows = py(&format!(
        r#"
import json, os, duckdb
con = duckdb.connect(config={{"allow_unsigned_extensions": "true"}})
con.execute("LOAD '{ext}'")
rows = con.execute("SELECT id, name, epoch_us(ts) AS us FROM delta_scan('{path}')").fetchall()
print(json.dumps([{{"id": r[0], "name": r[1], "us": r[2]}} for r in rows]))
os._exit(0)
"#
    ));
    assert_eq!(norm(&duck_rows), strata_rows, "duckdb reads the same rows");

    // the column is a zoned instant for both readers
    let kinds = py(&format!(
        r#"
import json, os
from deltalake import DeltaTable
s = DeltaTable({path:?}).schema().to_arrow()
print(json.dumps(str(s.field("ts").type)))
os._exit(0)
"#
    ));
    assert!(kinds.as_str().unwrap().contains("UTC"), "{kinds}");
}

#[test]
fn python_written_tables_register_in_strata() {
    let (tmp, dir) = lakehouse();
    let ext_path = tmp.path().join("external_orders");
    let ext = ext_path.to_str().unwrap();
    py(&format!(
        r#"
import json, os
import pyarrow as pa
from deltalake import write_deltalake
t = pa.table({{"order_id": pa.array([1, 2, 3], pa.int64()), "amount": pa.array([9.5, 10.0, None])}})
write_deltalake({ext:?}, t)
write_deltalake({ext:?}, pa.table({{"order_id": pa.array([4], pa.int64()), "amount": pa.array([1.25])}}), mode="append")
print(json.dumps("ok"))
os._exit(0)
"#
    ));
    ok(
        &dir,
        &["table", "register", "silver.orders", "--location", ext],
    );
    let r = query(
        &dir,
        "SELECT count(*) AS n, sum(amount) AS total FROM silver.orders",
    );
    assert_eq!(r[0]["n"], 4);
    assert_eq!(r[0]["total"], 20.75);
    let r = query(
        &dir,
        "SELECT count(*) AS n FROM silver.orders VERSION AS OF 0",
    );
    assert_eq!(r[0]["n"], 3);
    // external tables are read-only, and dropping one leaves its files
    let err = fails(&dir, &["sql", "INSERT INTO silver.orders VALUES (5, 1.0)"]);
    assert!(err.contains("read-only"), "{err}");
    let err = fails(&dir, &["table", "optimize", "silver.orders"]);
    assert!(err.contains("read-only"), "{err}");
    ok(&dir, &["table", "drop", "silver.orders"]);
    assert!(ext_path.join("_delta_log").is_dir());
}
