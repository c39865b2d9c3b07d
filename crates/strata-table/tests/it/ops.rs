use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::prelude::{DataFrame, SessionContext};
use strata_core::Layer;
use strata_table::{CreateSpec, DeltaTable, TableRole, Txn, WriteOptions};
use url::Url;

fn schema() -> Schema {
    Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ])
}

async fn new_table(dir: &tempfile::TempDir, role: TableRole) -> (Url, DeltaTable) {
    let path = dir.path().join("t");
    std::fs::create_dir_all(&path).unwrap();
    let url = Url::from_directory_path(&path).unwrap();
    let spec = CreateSpec {
        name: "lakehouse.silver.t".into(),
        schema: schema(),
        partition_by: vec![],
        comment: None,
        role,
        properties: HashMap::new(),
    };
    let t = strata_table::create_table(&url, &spec).await.unwrap();
    (url, t)
}

fn frame(ids: &[i64], names: &[&str]) -> DataFrame {
    let batch = RecordBatch::try_new(
        Arc::new(schema()),
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(StringArray::from(names.to_vec())),
        ],
    )
    .unwrap();
    SessionContext::new().read_batch(batch).unwrap()
}

/// The table's rows as "id|name" strings, sorted.
async fn rows(url: &Url) -> Vec<String> {
    let t = strata_table::open_table(url, "t").await.unwrap();
    let ctx = SessionContext::new();
    t.update_datafusion_session(&ctx.state()).unwrap();
    let provider = t.table_provider().build().await.unwrap();
    let batches = ctx
        .read_table(Arc::new(provider))
        .unwrap()
        .collect()
        .await
        .unwrap();
    let mut out = Vec::new();
    for b in batches {
        let ids = b
            .column_by_name("id")
            .unwrap()
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .clone();
        let names = cast(b.column_by_name("name").unwrap(), &DataType::Utf8).unwrap();
        let names = names
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap()
            .clone();
        for i in 0..b.num_rows() {
            out.push(format!(
                "{}|{}",
                ids.value(i),
                if names.is_null(i) {
                    "NULL"
                } else {
                    names.value(i)
                }
            ));
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn create_is_one_commit_with_layer_properties() {
    let dir = tempfile::tempdir().unwrap();
    let (_, t) = new_table(&dir, TableRole::Layer(Layer::Bronze)).await;
    assert_eq!(strata_table::current_version(&t), 0);
    let d = strata_table::detail(&t, "t").unwrap();
    assert_eq!(
        d.properties.get("delta.appendOnly").map(String::as_str),
        Some("true")
    );
    assert_eq!(
        d.properties
            .get("delta.enableChangeDataFeed")
            .map(String::as_str),
        Some("true")
    );
    assert_eq!(
        d.properties
            .get("delta.enableExpiredLogCleanup")
            .map(String::as_str),
        Some("false")
    );
}

#[tokio::test]
async fn append_merge_and_retried_txn() {
    let dir = tempfile::tempdir().unwrap();
    let (url, t) = new_table(&dir, TableRole::Layer(Layer::Silver)).await;
    let opts = WriteOptions {
        txn: Some(Txn::new("job", 1)),
        ..Default::default()
    };
    let (t, o) = strata_table::append(t, "t", frame(&[1, 2], &["a", "b"]), &opts)
        .await
        .unwrap();
    assert_eq!(o.version, Some(1));
    assert_eq!(o.rows, 2);
    // the same transaction again commits nothing
    let (t, o) = strata_table::append(t, "t", frame(&[1, 2], &["a", "b"]), &opts)
        .await
        .unwrap();
    assert_eq!(o.version, None);
    assert_eq!(strata_table::current_version(&t), 1);
    // so does a lower version of the same app
    let old = WriteOptions {
        txn: Some(Txn::new("job", 0)),
        ..Default::default()
    };
    let (t, o) = strata_table::append(t, "t", frame(&[9], &["z"]), &old)
        .await
        .unwrap();
    assert_eq!(o.version, None);
    assert_eq!(rows(&url).await, vec!["1|a", "2|b"]);

    let keys = vec!["id".to_string()];
    let (t, o) = strata_table::merge(
        t,
        "t",
        frame(&[2, 3], &["B", "c"]),
        &keys,
        None,
        &WriteOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(o.version, Some(2));
    assert_eq!(rows(&url).await, vec!["1|a", "2|B", "3|c"]);

    // delete condition over the source
    let (t, _) = strata_table::merge(
        t,
        "t",
        frame(&[1, 4], &["DEL", "DEL"]),
        &keys,
        Some("name = 'DEL'"),
        &WriteOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(rows(&url).await, vec!["2|B", "3|c"]);
    assert_eq!(strata_table::current_version(&t), 3);

    // the merge wrote change data files (the change feed is a table feature of silver)
    let commits = strata_table::history(&t, None).await.unwrap();
    assert_eq!(commits.len(), 4);
    assert_eq!(commits[0].version, 3);
    assert_eq!(commits[0].operation, "MERGE");
    assert_eq!(commits.last().unwrap().txns, Vec::<(String, i64)>::new());
    assert_eq!(commits[2].txns, vec![("job".to_string(), 1)]);
}

#[tokio::test]
async fn failed_writes_leave_the_previous_version() {
    let dir = tempfile::tempdir().unwrap();
    let (url, t) = new_table(&dir, TableRole::Layer(Layer::Silver)).await;
    let (t, _) = strata_table::append(
        t,
        "t",
        frame(&[1, 2], &["a", "b"]),
        &WriteOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(strata_table::current_version(&t), 1);

    // replace where id = 1 with a row outside the predicate: refused, nothing written
    let err = strata_table::replace_where(
        t,
        "t",
        frame(&[1, 5], &["x", "y"]),
        "id = 1",
        &WriteOptions::default(),
    )
    .await
    .expect_err("a row outside the predicate fails the replace");
    let t = strata_table::open_table(&url, "t").await.unwrap();
    assert_eq!(strata_table::current_version(&t), 1, "{err}");

    // a predicate naming a missing column is a clear error
    let err = strata_table::replace_where(
        t,
        "t",
        frame(&[1], &["x"]),
        "nope = 1",
        &WriteOptions::default(),
    )
    .await
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("nope"), "{err}");
    // injection text does not parse as a predicate
    let t = strata_table::open_table(&url, "t").await.unwrap();
    assert!(
        strata_table::replace_where(
            t,
            "t",
            frame(&[1], &["x"]),
            "name = 'a' OR '1'='1'; DROP TABLE t",
            &WriteOptions::default()
        )
        .await
        .is_err()
    );

    // a merge whose source value does not cast to the target type fails as a whole
    let t = strata_table::open_table(&url, "t").await.unwrap();
    let bad = SessionContext::new()
        .sql("SELECT * FROM (VALUES ('1', 'a'), ('not a number', 'b')) AS v(id, name)")
        .await
        .unwrap();
    let keys = vec!["id".to_string()];
    assert!(
        strata_table::merge(t, "t", bad, &keys, None, &WriteOptions::default())
            .await
            .is_err()
    );
    let t = strata_table::open_table(&url, "t").await.unwrap();
    assert_eq!(strata_table::current_version(&t), 1);

    // a good replace-where is one commit
    let (t, o) = strata_table::replace_where(
        t,
        "t",
        frame(&[1], &["A"]),
        "id = 1",
        &WriteOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(o.version, Some(2));
    assert_eq!(strata_table::current_version(&t), 2);
    assert_eq!(rows(&url).await, vec!["1|A", "2|b"]);
}

#[tokio::test]
async fn bronze_is_append_only_and_history_reads_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let (url, t) = new_table(&dir, TableRole::Layer(Layer::Bronze)).await;
    let (t, _) = strata_table::append(t, "t", frame(&[1], &["a"]), &WriteOptions::default())
        .await
        .unwrap();
    let err = strata_table::delete(t, "t", None, &WriteOptions::default())
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("append-only"), "{err}");
    let t = strata_table::open_table(&url, "t").await.unwrap();
    let h = strata_table::history(&t, None).await.unwrap();
    let v1 = strata_table::version_at_timestamp(&t, h[0].timestamp)
        .await
        .unwrap();
    assert_eq!(v1, 1);
    let before = h.last().unwrap().timestamp - chrono::Duration::seconds(5);
    assert!(
        strata_table::version_at_timestamp(&t, before)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn append_widens_the_schema_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let (url, t) = new_table(&dir, TableRole::Layer(Layer::Silver)).await;
    let wider = SessionContext::new()
        .sql("SELECT CAST(7 AS BIGINT) AS id, 'g' AS name, 'extra' AS note")
        .await
        .unwrap();
    let err = strata_table::append(t, "t", wider.clone(), &WriteOptions::default())
        .await
        .expect_err("a new column without evolution is refused")
        .to_string();
    assert!(err.contains("note"), "{err}");
    let t = strata_table::open_table(&url, "t").await.unwrap();
    assert_eq!(strata_table::current_version(&t), 0);
    let opts = WriteOptions {
        evolve_schema: true,
        ..Default::default()
    };
    let (t, o) = strata_table::append(t, "t", wider, &opts).await.unwrap();
    assert_eq!(o.version, Some(1));
    let schema = strata_table::arrow_schema(&t, "t").unwrap();
    let note = schema.field_with_name("note").unwrap();
    assert!(note.is_nullable());
    assert_eq!(note.data_type(), &DataType::Utf8);
    // older rows read the new column as NULL; a narrower frame still appends
    let (_, o) = strata_table::append(t, "t", frame(&[8], &["h"]), &WriteOptions::default())
        .await
        .unwrap();
    assert_eq!(o.version, Some(2));
    assert_eq!(rows(&url).await, vec!["7|g", "8|h"]);
}

#[tokio::test]
async fn a_time_between_commits_reads_the_older_one() {
    let dir = tempfile::tempdir().unwrap();
    let (url, mut t) = new_table(&dir, TableRole::Layer(Layer::Silver)).await;
    for i in 0..3 {
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        t = strata_table::append(t, "t", frame(&[i], &["x"]), &WriteOptions::default())
            .await
            .unwrap()
            .0;
    }
    let t = strata_table::open_table(&url, "t").await.unwrap();
    let mut h = strata_table::history(&t, None).await.unwrap();
    h.reverse();
    assert_eq!(
        h.iter().map(|c| c.version).collect::<Vec<_>>(),
        vec![0, 1, 2, 3]
    );
    for w in h.windows(2) {
        assert!(w[0].timestamp < w[1].timestamp, "commit times increase");
        let between = w[0].timestamp + (w[1].timestamp - w[0].timestamp) / 2;
        let v = strata_table::version_at_timestamp(&t, between)
            .await
            .unwrap();
        assert_eq!(
            v, w[0].version,
            "a time between v{} and v{}",
            w[0].version, w[1].version
        );
        assert_eq!(
            strata_table::version_at_timestamp(&t, w[1].timestamp)
                .await
                .unwrap(),
            w[1].version
        );
    }
    let err =
        strata_table::version_at_timestamp(&t, h[0].timestamp - chrono::Duration::milliseconds(1))
            .await
            .err()
            .unwrap()
            .to_string();
    assert!(err.contains("before the first commit"), "{err}");
}
