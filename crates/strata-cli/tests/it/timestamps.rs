//! `TIMESTAMP` is Delta `timestamp` (an instant), never `timestamp_ntz`, however it is made.

use crate::*;

fn field_types(table_dir: &std::path::Path) -> serde_json::Value {
    let log =
        std::fs::read_to_string(table_dir.join("_delta_log/00000000000000000000.json")).unwrap();
    for line in log.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if let Some(m) = v.get("metaData") {
            let schema: serde_json::Value =
                serde_json::from_str(m["schemaString"].as_str().unwrap()).unwrap();
            return serde_json::Value::Object(
                schema["fields"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| (f["name"].as_str().unwrap().to_string(), f["type"].clone()))
                    .collect(),
            );
        }
    }
    panic!("no metaData in version 0");
}

#[test]
fn timestamp_columns_are_delta_timestamps() {
    let (_tmp, dir) = lakehouse();
    ok(
        &dir,
        &[
            "table",
            "create",
            "silver.a",
            "--columns",
            "ts TIMESTAMP, ntz TIMESTAMP_NTZ",
        ],
    );
    ok(
        &dir,
        &[
            "sql",
            "CREATE TABLE silver.b (ts TIMESTAMP, t3 TIMESTAMP(3), tz TIMESTAMPTZ, ntz TIMESTAMP WITHOUT TIME ZONE)",
        ],
    );
    ok(
        &dir,
        &[
            "sql",
            "CREATE TABLE silver.c AS SELECT CAST('2024-09-01 12:00:00' AS TIMESTAMP) AS ts, now() AS at",
        ],
    );
    let a = field_types(&dir.join("lakehouse/silver/a"));
    assert_eq!(a["ts"], "timestamp");
    assert_eq!(a["ntz"], "timestamp_ntz");
    let b = field_types(&dir.join("lakehouse/silver/b"));
    assert_eq!(b["ts"], "timestamp");
    assert_eq!(b["t3"], "timestamp");
    assert_eq!(b["tz"], "timestamp");
    assert_eq!(b["ntz"], "timestamp_ntz");
    let c = field_types(&dir.join("lakehouse/silver/c"));
    assert_eq!(c["ts"], "timestamp");
    assert_eq!(c["at"], "timestamp");
    // a literal without a zone means UTC; one with a zone is converted
    ok(
        &dir,
        &[
            "sql",
            "INSERT INTO silver.a VALUES (TIMESTAMP '2024-09-01 14:00:00+02:00', TIMESTAMP '2024-09-01 12:00:00')",
        ],
    );
    let r = query(
        &dir,
        "SELECT CAST(ts AS STRING) AS ts FROM silver.a WHERE ts = TIMESTAMP '2024-09-01 12:00:00'",
    );
    assert_eq!(r.len(), 1, "{r:?}");
}
