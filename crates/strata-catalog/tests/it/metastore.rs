//! The SQLite metastore, on real files in temp dirs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::json;
use strata_catalog::error::Error;
use strata_catalog::metastore::{
    FlowRun, Metastore, NewTable, QualityResult, TableState, TableUpdate, Tag,
};
use strata_core::{ErrorClass, Layer, SchemaKind, SchemaName, TableKind, TableName};
use tempfile::TempDir;

const BUSY: Duration = Duration::from_secs(10);

fn db(dir: &TempDir) -> PathBuf {
    dir.path().join("metastore.db")
}

async fn new_store() -> (TempDir, Metastore) {
    let dir = tempfile::tempdir().unwrap();
    let store = Metastore::create(&db(&dir), BUSY).await.unwrap();
    (dir, store)
}

fn name(s: &str) -> TableName {
    TableName::parse(s).unwrap()
}

fn managed(full_name: &str) -> NewTable {
    let name = name(full_name);
    let layer = name.schema.as_str().parse::<Layer>().ok();
    NewTable {
        location: Some(format!("file:///lake/{}/", name.relative_path())),
        name,
        kind: TableKind::Managed,
        layer,
        view_sql: None,
        owner: None,
        comment: None,
        properties: BTreeMap::new(),
    }
}

/// Registers and activates a managed table; returns its id.
async fn active_table(store: &Metastore, full_name: &str) -> String {
    let t = store.begin_create_table(managed(full_name)).await.unwrap();
    store
        .activate_table(&t.table_id, Some("delta-id"))
        .await
        .unwrap();
    t.table_id
}

#[tokio::test]
async fn create_seeds_and_open_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let store = Metastore::create(&path, BUSY).await.unwrap();
    let key = store.secret_key().await.unwrap();
    assert_eq!(key.len(), 32);
    assert_ne!(key, vec![0u8; 32]);
    assert_eq!(store.schema_version().await.unwrap(), 4);

    let schemas: Vec<(String, String, SchemaKind)> = store
        .list_schemas()
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.catalog, s.name, s.kind))
        .collect();
    let lh = || "lakehouse".to_string();
    assert_eq!(
        schemas,
        vec![
            (lh(), "bronze".into(), SchemaKind::Layer(Layer::Bronze)),
            (lh(), "gold".into(), SchemaKind::Layer(Layer::Gold)),
            (lh(), "quarantine".into(), SchemaKind::Quarantine),
            (lh(), "silver".into(), SchemaKind::Layer(Layer::Silver)),
            (lh(), "system".into(), SchemaKind::System),
        ]
    );
    store.close().await;

    let again = Metastore::create(&path, BUSY).await.unwrap_err();
    assert!(matches!(again, Error::AlreadyExists(_)), "{again:?}");
    assert!(again.to_string().contains("metastore.db"), "{again}");

    // the refused create left the file alone
    let reopened = Metastore::open(&path, BUSY).await.unwrap();
    assert_eq!(reopened.secret_key().await.unwrap(), key);
    assert_eq!(reopened.list_schemas().await.unwrap().len(), 5);

    // a second, independent store has its own key
    let (_other_dir, other) = new_store().await;
    assert_ne!(other.secret_key().await.unwrap(), key);
}

#[tokio::test]
async fn open_refuses_missing_foreign_and_newer_files() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.db");
    let err = Metastore::open(&missing, BUSY).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::NotFound);
    assert!(err.to_string().contains("nope.db"), "{err}");
    assert!(!missing.exists(), "open must not create the file");

    // a SQLite file that is not a metastore
    let foreign = dir.path().join("foreign.db");
    let pool = sqlx::SqlitePool::connect_with(
        sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&foreign)
            .create_if_missing(true),
    )
    .await
    .unwrap();
    sqlx::query("CREATE TABLE t (x INTEGER)")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let err = Metastore::open(&foreign, BUSY).await.unwrap_err();
    assert!(matches!(err, Error::Refused(_)), "{err:?}");
    assert!(err.to_string().contains("not a Strata metastore"), "{err}");

    // a metastore migrated by a newer Strata
    let (dir2, store) = new_store().await;
    sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES (999, 'x')")
        .execute(store.pool())
        .await
        .unwrap();
    store.close().await;
    let err = Metastore::open(&db(&dir2), BUSY).await.unwrap_err();
    assert!(matches!(err, Error::Refused(_)), "{err:?}");
    assert!(err.to_string().contains("999"), "{err}");
    assert!(err.to_string().contains("upgrade Strata"), "{err}");
}

#[tokio::test]
async fn failed_create_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing-dir").join("metastore.db");
    let err = Metastore::create(&path, BUSY).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Storage, "{err:?}");
    assert!(!path.exists());
}

#[tokio::test]
async fn schemas_create_list_and_refuse_duplicates() {
    let (_dir, store) = new_store().await;
    let finance = SchemaName::parse("finance").unwrap();
    let info = store
        .create_schema(
            &finance,
            SchemaKind::Layer(Layer::Silver),
            Some("money tables"),
        )
        .await
        .unwrap();
    assert_eq!(info.catalog, "lakehouse");
    assert_eq!(info.name, "finance");
    assert_eq!(info.kind, SchemaKind::Layer(Layer::Silver));
    assert_eq!(info.comment.as_deref(), Some("money tables"));
    assert_eq!(
        store.get_schema(&finance).await.unwrap(),
        Some(info.clone())
    );

    let dup = store
        .create_schema(&finance, SchemaKind::Layer(Layer::Gold), None)
        .await
        .unwrap_err();
    assert!(matches!(dup, Error::AlreadyExists(_)), "{dup:?}");
    assert_eq!(dup.to_string(), "schema lakehouse.finance already exists");

    let elsewhere = SchemaName::parse("other.finance").unwrap();
    let err = store
        .create_schema(&elsewhere, SchemaKind::Layer(Layer::Gold), None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");
    assert!(err.to_string().contains("catalog other"), "{err}");
    assert_eq!(store.get_schema(&elsewhere).await.unwrap(), None);

    let names: Vec<String> = store
        .list_schemas()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(
        names,
        [
            "bronze",
            "finance",
            "gold",
            "quarantine",
            "silver",
            "system"
        ]
    );
}

#[tokio::test]
async fn table_lifecycle() {
    let (_dir, store) = new_store().await;
    let events = name("silver.events");

    // creating: registered but not visible
    let mut new = managed("silver.events");
    new.owner = Some("ana".into());
    new.properties
        .insert("strata.layer".into(), "silver".into());
    let first = store.begin_create_table(new).await.unwrap();
    assert_eq!(first.state, TableState::Creating);
    assert_eq!(first.name, events);
    assert_eq!(first.layer, Some(Layer::Silver));
    assert_eq!(first.owner.as_deref(), Some("ana"));
    assert_eq!(first.properties["strata.layer"], "silver");
    assert!(uuid::Uuid::parse_str(&first.table_id).is_ok());
    assert_eq!(store.get_table(&events).await.unwrap(), None);
    let creating = store
        .list_tables_in_state(TableState::Creating)
        .await
        .unwrap();
    assert_eq!(creating.len(), 1);
    assert_eq!(creating[0].table_id, first.table_id);

    let err = store
        .begin_create_table(managed("silver.events"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists(_)), "{err:?}");
    assert!(err.to_string().contains("being created"), "{err}");

    // active
    store
        .activate_table(&first.table_id, Some("delta-1"))
        .await
        .unwrap();
    let active = store.get_table(&events).await.unwrap().unwrap();
    assert_eq!(active.state, TableState::Active);
    assert_eq!(active.delta_id.as_deref(), Some("delta-1"));
    assert!(active.updated_at >= active.created_at);
    assert_eq!(active.created_at, first.created_at);

    let err = store
        .begin_create_table(managed("silver.events"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "table lakehouse.silver.events already exists"
    );
    let err = store
        .activate_table(&first.table_id, None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err:?}");
    let err = store.abort_create_table(&first.table_id).await.unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err:?}");

    // dropped: the name is free again
    store.mark_dropped(&first.table_id).await.unwrap();
    assert_eq!(store.get_table(&events).await.unwrap(), None);
    let dropped = store.find_dropped(&events).await.unwrap().unwrap();
    assert_eq!(dropped.table_id, first.table_id);
    assert_eq!(dropped.state, TableState::Dropped);
    assert!(dropped.dropped_at.is_some());
    let err = store.mark_dropped(&first.table_id).await.unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err:?}");

    let second = active_table(&store, "silver.events").await;
    assert_ne!(second, first.table_id);
    assert_eq!(
        store.get_table(&events).await.unwrap().unwrap().table_id,
        second
    );

    // undrop is refused while the new table holds the name
    let err = store.undrop(&first.table_id).await.unwrap_err();
    assert!(matches!(err, Error::AlreadyExists(_)), "{err:?}");
    assert!(err.to_string().contains("lakehouse.silver.events"), "{err}");
    assert_eq!(
        store
            .get_table_by_id(&first.table_id)
            .await
            .unwrap()
            .unwrap()
            .state,
        TableState::Dropped
    );

    // drop the second: find_dropped returns the newest drop; undrop the first
    tokio::time::sleep(Duration::from_millis(2)).await;
    store.mark_dropped(&second).await.unwrap();
    assert_eq!(
        store.find_dropped(&events).await.unwrap().unwrap().table_id,
        second
    );
    let back = store.undrop(&first.table_id).await.unwrap();
    assert_eq!(back.state, TableState::Active);
    assert_eq!(back.dropped_at, None);
    assert_eq!(back.delta_id.as_deref(), Some("delta-1"));
    assert_eq!(
        store.get_table(&events).await.unwrap().unwrap().table_id,
        first.table_id
    );

    // purge the second
    store.delete_table_row(&second).await.unwrap();
    assert_eq!(store.get_table_by_id(&second).await.unwrap(), None);
    assert_eq!(store.find_dropped(&events).await.unwrap(), None);
    let err = store.delete_table_row(&second).await.unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");

    // doctor repairs
    store
        .set_location(&first.table_id, "file:///elsewhere/")
        .await
        .unwrap();
    store
        .set_delta_id(&first.table_id, "delta-2")
        .await
        .unwrap();
    let repaired = store.get_table(&events).await.unwrap().unwrap();
    assert_eq!(repaired.location.as_deref(), Some("file:///elsewhere/"));
    assert_eq!(repaired.delta_id.as_deref(), Some("delta-2"));
    let err = store.set_delta_id("no-such-id", "x").await.unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");
}

#[tokio::test]
async fn begin_create_table_validates() {
    let (_dir, store) = new_store().await;

    let err = store
        .begin_create_table(managed("nowhere.t"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");
    assert_eq!(err.to_string(), "schema lakehouse.nowhere does not exist");

    let mut wrong_layer = managed("silver.t");
    wrong_layer.layer = Some(Layer::Gold);
    let err = store.begin_create_table(wrong_layer).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");

    let mut in_system = managed("system.t");
    in_system.layer = None;
    let err = store.begin_create_table(in_system).await.unwrap_err();
    assert!(matches!(err, Error::Refused(_)), "{err:?}");

    let mut view = managed("gold.v");
    view.kind = TableKind::View;
    let err = store.begin_create_table(view.clone()).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    view.location = None;
    view.view_sql = Some("SELECT 1".into());
    let v = store.begin_create_table(view).await.unwrap();
    assert_eq!(v.kind, TableKind::View);
    assert_eq!(v.location, None);
    assert_eq!(v.view_sql.as_deref(), Some("SELECT 1"));

    let mut no_location = managed("bronze.t");
    no_location.location = None;
    let err = store.begin_create_table(no_location).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");

    // a quarantine table has no layer
    let q = store
        .begin_create_table(managed("quarantine.silver_events"))
        .await
        .unwrap();
    assert_eq!(q.layer, None);

    // abort deletes a creating row, and only that
    store.abort_create_table(&q.table_id).await.unwrap();
    assert_eq!(store.get_table_by_id(&q.table_id).await.unwrap(), None);
    let err = store.abort_create_table(&q.table_id).await.unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");
    store
        .begin_create_table(managed("quarantine.silver_events"))
        .await
        .unwrap();
}

#[tokio::test]
async fn list_tables_filters_and_orders() {
    let (_dir, store) = new_store().await;
    let finance = SchemaName::parse("finance").unwrap();
    store
        .create_schema(&finance, SchemaKind::Layer(Layer::Gold), None)
        .await
        .unwrap();
    for t in ["silver.b", "silver.a", "gold.z", "bronze.raw"] {
        active_table(&store, t).await;
    }
    let mut fin = managed("finance.totals");
    fin.layer = Some(Layer::Gold);
    let fin = store.begin_create_table(fin).await.unwrap();
    store.activate_table(&fin.table_id, None).await.unwrap();
    // neither creating nor dropped tables are listed
    store
        .begin_create_table(managed("silver.pending"))
        .await
        .unwrap();
    let gone = active_table(&store, "silver.gone").await;
    store.mark_dropped(&gone).await.unwrap();

    let names = |ts: Vec<strata_catalog::metastore::TableInfo>| -> Vec<String> {
        ts.into_iter().map(|t| t.name.to_string()).collect()
    };
    assert_eq!(
        names(store.list_tables(None, None).await.unwrap()),
        [
            "lakehouse.bronze.raw",
            "lakehouse.finance.totals",
            "lakehouse.gold.z",
            "lakehouse.silver.a",
            "lakehouse.silver.b",
        ]
    );
    let silver = SchemaName::parse("silver").unwrap();
    assert_eq!(
        names(store.list_tables(Some(&silver), None).await.unwrap()),
        ["lakehouse.silver.a", "lakehouse.silver.b"]
    );
    assert_eq!(
        names(store.list_tables(None, Some(Layer::Gold)).await.unwrap()),
        ["lakehouse.finance.totals", "lakehouse.gold.z"]
    );
    assert_eq!(
        names(
            store
                .list_tables(Some(&finance), Some(Layer::Silver))
                .await
                .unwrap()
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        names(
            store
                .list_tables_in_state(TableState::Dropped)
                .await
                .unwrap()
        ),
        ["lakehouse.silver.gone"]
    );
}

#[tokio::test]
async fn update_table_changes_and_bumps_updated_at() {
    let (_dir, store) = new_store().await;
    let mut new = managed("gold.daily");
    new.comment = Some("old".into());
    new.properties.insert("keep".into(), "1".into());
    new.properties.insert("drop_me".into(), "2".into());
    let t = store.begin_create_table(new).await.unwrap();
    store.activate_table(&t.table_id, None).await.unwrap();
    let before = store.get_table_by_id(&t.table_id).await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(2)).await;

    let updated = store
        .update_table(
            &t.table_id,
            TableUpdate {
                comment: Some(None),
                owner: Some(Some("team-gold".into())),
                set_properties: BTreeMap::from([("added".into(), "3".into())]),
                unset_properties: vec!["drop_me".into(), "absent".into()],
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.comment, None);
    assert_eq!(updated.owner.as_deref(), Some("team-gold"));
    assert_eq!(
        updated.properties,
        BTreeMap::from([("added".into(), "3".into()), ("keep".into(), "1".into())])
    );
    assert!(updated.updated_at > before.updated_at);
    assert_eq!(updated.created_at, before.created_at);
    assert_eq!(
        store.get_table_by_id(&t.table_id).await.unwrap().unwrap(),
        updated
    );

    // an empty update leaves the fields alone
    let same = store
        .update_table(&t.table_id, TableUpdate::default())
        .await
        .unwrap();
    assert_eq!(same.owner.as_deref(), Some("team-gold"));
    assert_eq!(same.properties, updated.properties);

    let err = store
        .update_table(
            &t.table_id,
            TableUpdate {
                set_properties: BTreeMap::from([("k".into(), "v".into())]),
                unset_properties: vec!["k".into()],
                ..TableUpdate::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    let err = store
        .update_table("missing", TableUpdate::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");

    // touch only bumps updated_at, and only of a live table
    tokio::time::sleep(Duration::from_millis(2)).await;
    store.touch_table(&t.table_id).await.unwrap();
    let touched = store.get_table_by_id(&t.table_id).await.unwrap().unwrap();
    assert!(touched.updated_at > same.updated_at);
    assert_eq!(touched.properties, same.properties);
    store.mark_dropped(&t.table_id).await.unwrap();
    let err = store.touch_table(&t.table_id).await.unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err:?}");
}

#[tokio::test]
async fn tags_and_column_comments() {
    let (_dir, store) = new_store().await;
    let id = active_table(&store, "silver.users").await;

    store.add_tag(&id, None, "PII").await.unwrap();
    store.add_tag(&id, None, "pii").await.unwrap(); // idempotent after folding
    store
        .add_tag(&id, Some("email"), "pii:email")
        .await
        .unwrap();
    store
        .add_tag(&id, Some("email"), "owner-x_1")
        .await
        .unwrap();
    assert_eq!(
        store.tags(&id).await.unwrap(),
        vec![
            Tag {
                column: None,
                tag: "pii".into()
            },
            Tag {
                column: Some("email".into()),
                tag: "owner-x_1".into()
            },
            Tag {
                column: Some("email".into()),
                tag: "pii:email".into()
            },
        ]
    );
    for bad in ["", "with space", "dot.ted", &"x".repeat(65)] {
        let err = store.add_tag(&id, None, bad).await.unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{bad:?}: {err:?}");
    }
    let err = store.add_tag("missing", None, "pii").await.unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");

    assert!(
        store
            .remove_tag(&id, Some("email"), "OWNER-X_1")
            .await
            .unwrap()
    );
    assert!(
        !store
            .remove_tag(&id, Some("email"), "owner-x_1")
            .await
            .unwrap()
    );
    assert!(!store.remove_tag(&id, Some("other"), "pii").await.unwrap());
    assert_eq!(store.tags(&id).await.unwrap().len(), 2);

    store
        .set_column_comment(&id, "email", Some("primary address"))
        .await
        .unwrap();
    store
        .set_column_comment(&id, "email", Some("login address"))
        .await
        .unwrap();
    store
        .set_column_comment(&id, "name", Some("display name"))
        .await
        .unwrap();
    assert_eq!(
        store.column_comments(&id).await.unwrap(),
        BTreeMap::from([
            ("email".into(), "login address".into()),
            ("name".into(), "display name".into()),
        ])
    );
    store.set_column_comment(&id, "name", None).await.unwrap();
    assert_eq!(store.column_comments(&id).await.unwrap().len(), 1);

    // tags and comments survive drop and undrop, and go with a purge
    store.mark_dropped(&id).await.unwrap();
    let err = store.add_tag(&id, None, "late").await.unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");
    store.undrop(&id).await.unwrap();
    assert_eq!(store.tags(&id).await.unwrap().len(), 2);
    store.delete_table_row(&id).await.unwrap();
    assert!(store.tags(&id).await.unwrap().is_empty());
    assert!(store.column_comments(&id).await.unwrap().is_empty());
    let leftovers: i64 = sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM tags) + (SELECT COUNT(*) FROM column_comments)",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(leftovers, 0);
}

#[tokio::test]
async fn lineage_upserts() {
    let (_dir, store) = new_store().await;
    store
        .record_lineage(
            "lakehouse.bronze.raw",
            "lakehouse.silver.events",
            "flow",
            Some("daily"),
            Some("clean"),
        )
        .await
        .unwrap();
    let first = store.lineage().await.unwrap();
    assert_eq!(first.len(), 1);
    tokio::time::sleep(Duration::from_millis(2)).await;
    store
        .record_lineage(
            "lakehouse.bronze.raw",
            "lakehouse.silver.events",
            "flow",
            Some("daily"),
            Some("clean"),
        )
        .await
        .unwrap();
    store
        .record_lineage(
            "s3://landing/events/",
            "lakehouse.bronze.raw",
            "ingest",
            None,
            None,
        )
        .await
        .unwrap();
    let edges = store.lineage().await.unwrap();
    assert_eq!(edges.len(), 2);
    let flow = &edges[0];
    assert_eq!(flow.source_table, "lakehouse.bronze.raw");
    assert_eq!(flow.kind, "flow");
    assert_eq!(flow.pipeline.as_deref(), Some("daily"));
    assert_eq!(flow.flow.as_deref(), Some("clean"));
    assert_eq!(flow.first_seen, first[0].first_seen);
    assert!(flow.last_seen > first[0].last_seen);
    let ingest = &edges[1];
    assert_eq!(ingest.source_table, "s3://landing/events/");
    assert_eq!(ingest.kind, "ingest");
    assert_eq!((ingest.pipeline.clone(), ingest.flow.clone()), (None, None));
    assert_eq!(ingest.first_seen, ingest.last_seen);

    let err = store
        .record_lineage("a", "b", "copy", None, None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
}

#[tokio::test]
async fn backup_is_an_openable_copy() {
    let (dir, store) = new_store().await;
    let id = active_table(&store, "silver.events").await;
    store.add_tag(&id, None, "pii").await.unwrap();
    let dest = dir.path().join("backup.db");
    store.backup(&dest).await.unwrap();

    // later changes do not reach the copy
    store.mark_dropped(&id).await.unwrap();

    let copy = Metastore::open(&dest, BUSY).await.unwrap();
    assert_eq!(
        copy.secret_key().await.unwrap(),
        store.secret_key().await.unwrap()
    );
    let t = copy
        .get_table(&name("silver.events"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(t.table_id, id);
    assert_eq!(copy.tags(&id).await.unwrap().len(), 1);

    let err = store.backup(&dest).await.unwrap_err();
    assert!(matches!(err, Error::AlreadyExists(_)), "{err:?}");
    assert!(err.to_string().contains("backup.db"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_handles_write_concurrently() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    Metastore::create(&path, BUSY).await.unwrap().close().await;
    let a = Metastore::open(&path, BUSY).await.unwrap();
    let b = Metastore::open(&path, BUSY).await.unwrap();
    let shared = active_table(&a, "silver.shared").await;

    let writer = |store: Metastore, who: &'static str, shared: String| {
        tokio::spawn(async move {
            for i in 0..50 {
                match i % 3 {
                    0 => {
                        let t = store
                            .begin_create_table(managed(&format!("silver.{who}_{i}")))
                            .await?;
                        store.activate_table(&t.table_id, None).await?;
                    }
                    1 => store.add_tag(&shared, None, &format!("{who}-{i}")).await?,
                    _ => {
                        store
                            .record_lineage(who, "lakehouse.silver.shared", "flow", None, None)
                            .await?
                    }
                }
            }
            Ok::<_, Error>(())
        })
    };
    let (ra, rb) = tokio::join!(
        writer(a.clone(), "a", shared.clone()),
        writer(b.clone(), "b", shared.clone())
    );
    ra.unwrap().unwrap();
    rb.unwrap().unwrap();

    // 17 tables each (i = 0, 3, .., 48), 17 tags each (i = 1, 4, .., 49), one edge each
    assert_eq!(a.list_tables(None, None).await.unwrap().len(), 1 + 2 * 17);
    assert_eq!(b.tags(&shared).await.unwrap().len(), 2 * 17);
    assert_eq!(a.lineage().await.unwrap().len(), 2);
}

#[tokio::test]
async fn lock_held_past_timeout_is_a_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let holder = Metastore::create(&path, BUSY).await.unwrap();
    let impatient = Metastore::open(&path, Duration::from_millis(50))
        .await
        .unwrap();
    let tx = holder.pool().begin_with("BEGIN IMMEDIATE").await.unwrap();
    let err = impatient
        .record_lineage("a", "b", "ctas", None, None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err:?}");
    assert!(err.to_string().contains("busy"), "{err}");
    assert!(err.to_string().contains("retry"), "{err}");
    tx.rollback().await.unwrap();
    impatient
        .record_lineage("a", "b", "ctas", None, None)
        .await
        .unwrap();
}

/// The metastore's schema is a persisted format: any change must show up in review. Set
/// `STRATA_UPDATE_GOLDEN=1` to rewrite the golden file after an intended change.
#[tokio::test]
async fn schema_matches_golden_file() {
    let (_dir, store) = new_store().await;
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY type, name",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    let mut dump = String::new();
    for (kind, name, sql) in rows {
        dump.push_str(&format!("-- {kind} {name}\n{sql};\n\n"));
    }
    let golden = crate::manifest_dir().join("tests/it/golden/metastore_schema.sql");
    if std::env::var_os("STRATA_UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
        std::fs::write(&golden, &dump).unwrap();
    }
    let expected = std::fs::read_to_string(&golden)
        .unwrap_or_else(|e| panic!("reading {}: {e}", golden.display()));
    assert!(
        dump == expected,
        "metastore schema differs from {}; rerun with STRATA_UPDATE_GOLDEN=1 if intended:\n{dump}",
        golden.display()
    );
}

// ---- pipeline runs, flow runs, quality results ------------------------------------------------

/// A time the metastore stores exactly (microseconds), `secs` after a fixed instant.
fn at(secs: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2024-05-01T12:00:00.123456Z")
        .unwrap()
        .with_timezone(&Utc)
        + chrono::Duration::seconds(secs)
}

fn flow_run(run_id: &str, flow: &str, status: &str, started: i64) -> FlowRun {
    FlowRun {
        run_id: run_id.into(),
        pipeline: "events".into(),
        flow: flow.into(),
        target: format!("lakehouse.silver.{flow}"),
        status: status.into(),
        started_at: at(started),
        source_versions: json!({}),
        samples: json!([]),
        definition: json!({}),
        ..Default::default()
    }
}

#[tokio::test]
async fn pipeline_runs_begin_finish_and_list() {
    let (_dir, store) = new_store().await;
    let before = Utc::now().trunc_subsecs(6);
    store
        .begin_pipeline_run("r1", "events", "manual")
        .await
        .unwrap();
    let r1 = store.pipeline_run("r1").await.unwrap().unwrap();
    assert_eq!(
        (
            r1.pipeline.as_str(),
            r1.trigger.as_str(),
            r1.status.as_str()
        ),
        ("events", "manual", "running")
    );
    assert!(r1.started_at >= before && r1.started_at <= Utc::now());
    assert_eq!((r1.finished_at, r1.error), (None, None));

    // a run id is used once
    let err = store
        .begin_pipeline_run("r1", "events", "manual")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists(_)), "{err:?}");
    assert!(err.to_string().contains("r1"), "{err}");

    store
        .finish_pipeline_run("r1", "failed", Some("flow silver_events failed"))
        .await
        .unwrap();
    let r1 = store.pipeline_run("r1").await.unwrap().unwrap();
    assert_eq!(r1.status, "failed");
    assert_eq!(r1.error.as_deref(), Some("flow silver_events failed"));
    assert!(r1.finished_at.unwrap() >= r1.started_at);

    tokio::time::sleep(Duration::from_millis(2)).await;
    store
        .begin_pipeline_run("r2", "events", "backfill")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2)).await;
    store
        .begin_pipeline_run("r3", "orders", "schedule")
        .await
        .unwrap();
    store
        .finish_pipeline_run("r2", "succeeded", None)
        .await
        .unwrap();

    let ids = |runs: Vec<strata_catalog::metastore::PipelineRun>| {
        runs.into_iter().map(|r| r.run_id).collect::<Vec<_>>()
    };
    // newest first
    assert_eq!(
        ids(store.pipeline_runs(None, None).await.unwrap()),
        ["r3", "r2", "r1"]
    );
    assert_eq!(
        ids(store.pipeline_runs(Some("events"), None).await.unwrap()),
        ["r2", "r1"]
    );
    assert_eq!(
        ids(store.pipeline_runs(Some("events"), Some(1)).await.unwrap()),
        ["r2"]
    );
    assert!(
        store
            .pipeline_runs(Some("nope"), None)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.pipeline_run("missing").await.unwrap(), None);

    let err = store
        .finish_pipeline_run("missing", "succeeded", None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");
}

#[tokio::test]
async fn invalid_status_trigger_and_kind_are_refused() {
    let (_dir, store) = new_store().await;
    let err = store
        .begin_pipeline_run("r1", "events", "cron")
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::InvalidInput, "{err:?}");
    assert_eq!(
        err.to_string(),
        "unknown pipeline run trigger 'cron': expected manual, schedule, backfill or replay"
    );
    assert_eq!(store.pipeline_run("r1").await.unwrap(), None);

    store
        .begin_pipeline_run("r1", "events", "replay")
        .await
        .unwrap();
    for bad in ["done", "running", ""] {
        let err = store
            .finish_pipeline_run("r1", bad, None)
            .await
            .unwrap_err();
        assert_eq!(err.class(), ErrorClass::InvalidInput, "{bad}: {err:?}");
        assert!(
            err.to_string()
                .contains("expected succeeded, failed or aborted"),
            "{err}"
        );
    }
    assert_eq!(
        store.pipeline_run("r1").await.unwrap().unwrap().status,
        "running"
    );

    let err = store
        .record_flow_run(&flow_run("r1", "f", "ok", 0))
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::InvalidInput, "{err:?}");
    assert_eq!(
        err.to_string(),
        "unknown flow run status 'ok': expected running, succeeded, failed, skipped or \
         upstream_failed"
    );
    let mut bad_versions = flow_run("r1", "f", "running", 0);
    bad_versions.source_versions = json!([1, 2]);
    let err = store.record_flow_run(&bad_versions).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::InvalidInput, "{err:?}");
    assert!(store.flow_runs(None).await.unwrap().is_empty());

    let mut result = quality("r1", "not_null", at(0));
    result.kind = "column".into();
    let err = store
        .record_quality_results(&[quality("r1", "ok", at(0)), result])
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::InvalidInput, "{err:?}");
    assert!(err.to_string().contains("expected row or table"), "{err}");
    // nothing of the refused batch was stored
    assert!(store.quality_results().await.unwrap().is_empty());

    // the CHECK constraints hold even for writes that bypass the API
    let err = sqlx::query(
        "INSERT INTO pipeline_runs (run_id, pipeline, trigger, status, started_at) \
         VALUES ('x', 'p', 'manual', 'exploded', '2024-01-01T00:00:00.000000Z')",
    )
    .execute(store.pool())
    .await
    .unwrap_err();
    assert!(err.to_string().contains("CHECK"), "{err}");
}

#[tokio::test]
async fn record_flow_run_replaces_by_run_and_flow() {
    let (_dir, store) = new_store().await;
    store
        .begin_pipeline_run("r1", "events", "manual")
        .await
        .unwrap();
    let started = FlowRun {
        source_versions: serde_json::Value::Null,
        samples: serde_json::Value::Null,
        definition: serde_json::Value::Null,
        ..flow_run("r1", "silver_events", "running", 0)
    };
    store.record_flow_run(&started).await.unwrap();
    let got = store.flow_runs(Some("r1")).await.unwrap();
    assert_eq!(got.len(), 1);
    // Null JSON is stored as the column's empty value
    assert_eq!(got[0].source_versions, json!({}));
    assert_eq!(got[0].samples, json!([]));
    assert_eq!(got[0].definition, json!({}));
    assert_eq!(got[0].finished_at, None);

    let definition = json!({"mode": "merge", "keys": ["event_id"], "expect": [{"name": "id"}]});
    let finished = FlowRun {
        status: "succeeded".into(),
        finished_at: Some(at(5)),
        rows_read: 100,
        rows_written: 90,
        rows_quarantined: 7,
        rows_dropped: 3,
        source_versions: json!({"lakehouse.bronze.events": [3, 7]}),
        target_version: Some(12),
        unmapped_columns: vec!["props".into(), "Extra Col".into()],
        samples: json!([{"rule": "positive_amount", "row": {"amount": -1}}]),
        error: None,
        definition: definition.clone(),
        ..started.clone()
    };
    store.record_flow_run(&finished).await.unwrap();
    // a second flow of the run and a flow of another run
    store
        .record_flow_run(&flow_run("r1", "gold_daily", "upstream_failed", 1))
        .await
        .unwrap();
    let mut other = flow_run("r0", "silver_events", "failed", -10);
    other.error = Some("boom".into());
    other.definition = json!({"mode": "append"});
    store.record_flow_run(&other).await.unwrap();

    let r1 = store.flow_runs(Some("r1")).await.unwrap();
    assert_eq!(r1.len(), 2, "the replace must not add a row: {r1:?}");
    assert_eq!(r1[0], finished);
    assert_eq!(r1[1].flow, "gold_daily");
    assert_eq!(r1[1].status, "upstream_failed");

    // all runs, by start time then flow
    let all: Vec<(String, String)> = store
        .flow_runs(None)
        .await
        .unwrap()
        .into_iter()
        .map(|f| (f.run_id, f.flow))
        .collect();
    assert_eq!(
        all,
        [
            ("r0".to_string(), "silver_events".to_string()),
            ("r1".into(), "silver_events".into()),
            ("r1".into(), "gold_daily".into()),
        ]
    );

    // the definition of the latest succeeded run, not of a later failed or running one
    assert_eq!(
        store
            .last_flow_definition("events", "silver_events")
            .await
            .unwrap(),
        Some(definition.clone())
    );
    let mut later_failed = flow_run("r2", "silver_events", "failed", 60);
    later_failed.definition = json!({"mode": "broken"});
    store.record_flow_run(&later_failed).await.unwrap();
    assert_eq!(
        store
            .last_flow_definition("events", "silver_events")
            .await
            .unwrap(),
        Some(definition.clone())
    );
    assert_eq!(
        store
            .last_flow_definition("events", "gold_daily")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.flow_definition("r0", "silver_events").await.unwrap(),
        Some(json!({"mode": "append"}))
    );
    assert_eq!(store.flow_definition("r0", "nope").await.unwrap(), None);
}

fn quality(run_id: &str, rule: &str, evaluated_at: DateTime<Utc>) -> QualityResult {
    QualityResult {
        run_id: run_id.into(),
        pipeline: Some("events".into()),
        flow: Some("silver_events".into()),
        table: "lakehouse.silver.events".into(),
        rule: rule.into(),
        kind: "row".into(),
        action: "quarantine".into(),
        rows_checked: 100,
        rows_failed: 0,
        passed: true,
        observed: None,
        evaluated_at,
    }
}

#[tokio::test]
async fn quality_results_round_trip() {
    let (_dir, store) = new_store().await;
    let failing = QualityResult {
        rows_failed: 4,
        passed: false,
        ..quality("r1", "positive_amount", at(1))
    };
    let table_rule = QualityResult {
        kind: "table".into(),
        action: "fail".into(),
        rows_checked: 100,
        observed: Some("100".into()),
        ..quality("r1", "row_count", at(1))
    };
    // a check of a table outside any pipeline
    let standalone = QualityResult {
        pipeline: None,
        flow: None,
        table: "lakehouse.gold.daily".into(),
        action: "warn".into(),
        ..quality("q1", "not_null_day", at(-5))
    };
    store
        .record_quality_results(&[
            quality("r1", "event_id_present", at(1)),
            failing.clone(),
            table_rule.clone(),
        ])
        .await
        .unwrap();
    store
        .record_quality_results(std::slice::from_ref(&standalone))
        .await
        .unwrap();
    store.record_quality_results(&[]).await.unwrap();

    let got = store.quality_results().await.unwrap();
    // by evaluation time, then in the order recorded
    assert_eq!(
        got,
        vec![
            standalone,
            quality("r1", "event_id_present", at(1)),
            failing,
            table_rule,
        ]
    );
}

#[tokio::test]
async fn next_sequence_is_monotonic_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let store = Metastore::create(&path, BUSY).await.unwrap();
    assert_eq!(store.next_sequence("backfill:events:f").await.unwrap(), 1);
    assert_eq!(store.next_sequence("backfill:events:f").await.unwrap(), 2);
    assert_eq!(store.next_sequence("replay:q1").await.unwrap(), 1);
    assert_eq!(store.next_sequence("backfill:events:f").await.unwrap(), 3);
    let err = store.next_sequence("").await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::InvalidInput, "{err:?}");
    store.close().await;

    let store = Metastore::open(&path, BUSY).await.unwrap();
    assert_eq!(store.next_sequence("backfill:events:f").await.unwrap(), 4);
    assert_eq!(store.next_sequence("replay:q1").await.unwrap(), 2);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_sequence_never_repeats_between_handles() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    Metastore::create(&path, BUSY).await.unwrap().close().await;
    let a = Metastore::open(&path, BUSY).await.unwrap();
    let b = Metastore::open(&path, BUSY).await.unwrap();
    let take = |store: Metastore| {
        tokio::spawn(async move {
            let mut got = Vec::new();
            for _ in 0..40 {
                got.push(store.next_sequence("replay:q").await?);
            }
            Ok::<_, Error>(got)
        })
    };
    let (ra, rb) = tokio::join!(take(a.clone()), take(b.clone()));
    let mut all = ra.unwrap().unwrap();
    let from_b = rb.unwrap().unwrap();
    assert!(from_b.windows(2).all(|w| w[0] < w[1]), "{from_b:?}");
    all.extend(from_b);
    all.sort_unstable();
    assert_eq!(all, (1..=80).collect::<Vec<i64>>());
}

#[tokio::test]
async fn full_refresh_marks_set_merge_and_clear() {
    let (_dir, store) = new_store().await;
    assert!(store.full_refresh_marks("events").await.unwrap().is_empty());
    store
        .mark_full_refresh(
            "events",
            "silver_events",
            "bronze.events restored to version 3",
        )
        .await
        .unwrap();
    store
        .mark_full_refresh(
            "events",
            "gold_daily",
            "silver.events restored to version 9",
        )
        .await
        .unwrap();
    store
        .mark_full_refresh("orders", "silver_orders", "erasure")
        .await
        .unwrap();
    // the same reason again is not repeated; a new one is added
    store
        .mark_full_refresh(
            "events",
            "silver_events",
            "bronze.events restored to version 3",
        )
        .await
        .unwrap();
    store
        .mark_full_refresh("events", "silver_events", "rows erased from bronze.events")
        .await
        .unwrap();

    assert_eq!(
        store.full_refresh_marks("events").await.unwrap(),
        vec![
            (
                "gold_daily".to_string(),
                "silver.events restored to version 9".to_string()
            ),
            (
                "silver_events".into(),
                "bronze.events restored to version 3; rows erased from bronze.events".into()
            ),
        ]
    );

    store
        .clear_full_refresh("events", "silver_events")
        .await
        .unwrap();
    // clearing an unmarked flow is a no-op
    store
        .clear_full_refresh("events", "silver_events")
        .await
        .unwrap();
    assert_eq!(
        store.full_refresh_marks("events").await.unwrap(),
        vec![(
            "gold_daily".to_string(),
            "silver.events restored to version 9".to_string()
        )]
    );
    assert_eq!(store.full_refresh_marks("orders").await.unwrap().len(), 1);

    let err = store
        .mark_full_refresh("events", "f", "")
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::InvalidInput, "{err:?}");
}

#[tokio::test]
async fn abandon_running_pipeline_runs_settles_a_crashed_run() {
    let (_dir, store) = new_store().await;
    // an earlier run that finished, and one that crashed mid-way
    store
        .begin_pipeline_run("old", "events", "manual")
        .await
        .unwrap();
    store
        .finish_pipeline_run("old", "succeeded", None)
        .await
        .unwrap();
    store
        .begin_pipeline_run("crashed", "events", "schedule")
        .await
        .unwrap();
    let mut done = flow_run("crashed", "silver_events", "succeeded", 0);
    done.finished_at = Some(at(1));
    store.record_flow_run(&done).await.unwrap();
    store
        .record_flow_run(&flow_run("crashed", "gold_daily", "running", 2))
        .await
        .unwrap();
    // another pipeline's run is not touched
    store
        .begin_pipeline_run("other", "orders", "manual")
        .await
        .unwrap();
    let mut other_flow = flow_run("other", "silver_orders", "running", 3);
    other_flow.pipeline = "orders".into();
    store.record_flow_run(&other_flow).await.unwrap();

    assert_eq!(
        store.abandon_running_pipeline_runs("events").await.unwrap(),
        1
    );
    let crashed = store.pipeline_run("crashed").await.unwrap().unwrap();
    assert_eq!(crashed.status, "aborted");
    assert!(crashed.finished_at.is_some());
    assert!(
        crashed.error.as_deref().unwrap().contains("stopped"),
        "{crashed:?}"
    );
    let old = store.pipeline_run("old").await.unwrap().unwrap();
    assert_eq!((old.status.as_str(), old.error), ("succeeded", None));

    let flows = store.flow_runs(Some("crashed")).await.unwrap();
    assert_eq!(flows[0], done, "a finished flow keeps its row");
    assert_eq!(flows[1].status, "failed");
    assert_eq!(
        flows[1].error.as_deref(),
        Some("the run stopped before this flow finished")
    );
    assert!(flows[1].finished_at.is_some());

    assert_eq!(
        store.pipeline_run("other").await.unwrap().unwrap().status,
        "running"
    );
    assert_eq!(
        store.flow_runs(Some("other")).await.unwrap()[0].status,
        "running"
    );
    // nothing left to abandon
    assert_eq!(
        store.abandon_running_pipeline_runs("events").await.unwrap(),
        0
    );
}
