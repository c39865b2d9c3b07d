//! SQL behaviour as sqllogictest files (`tests/slt/*.slt`), each run against a new lakehouse.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::array_value_to_string;
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType};
use strata_catalog::Lakehouse;
use strata_sql::{Output, SqlEngine};

struct Slt {
    engine: Arc<SqlEngine>,
}

fn column_type(t: &DataType) -> DefaultColumnType {
    match t {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => DefaultColumnType::Integer,
        DataType::Float16 | DataType::Float32 | DataType::Float64 | DataType::Decimal128(_, _) => {
            DefaultColumnType::FloatingPoint
        }
        _ => DefaultColumnType::Text,
    }
}

#[async_trait]
impl AsyncDB for Slt {
    type Error = strata_sql::Error;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, strata_sql::Error> {
        match self.engine.execute_one(sql).await? {
            Output::Status(_) => Ok(DBOutput::StatementComplete(0)),
            Output::Rows { schema, batches } => {
                let types = schema
                    .fields()
                    .iter()
                    .map(|f| column_type(f.data_type()))
                    .collect();
                let mut rows = Vec::new();
                for b in &batches {
                    for i in 0..b.num_rows() {
                        let mut row = Vec::new();
                        for c in b.columns() {
                            let v = if c.is_null(i) {
                                "NULL".to_string()
                            } else {
                                let s = array_value_to_string(c, i).expect("displayable");
                                if s.is_empty() {
                                    "(empty)".to_string()
                                } else {
                                    s
                                }
                            };
                            row.push(v);
                        }
                        rows.push(row);
                    }
                }
                Ok(DBOutput::Rows { types, rows })
            }
        }
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "strata"
    }
}

async fn run_file(path: &Path) {
    let tmp = tempfile::tempdir().unwrap();
    let lh = Lakehouse::init(&tmp.path().join("lh")).await.unwrap();
    let engine = Arc::new(SqlEngine::new(lh));
    let mut runner = sqllogictest::Runner::new(move || {
        let engine = engine.clone();
        async move { Ok(Slt { engine }) }
    });
    if let Err(e) = runner.run_file_async(path).await {
        panic!("{}: {e}", path.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqllogictests() {
    let dir = crate::manifest_dir().join("tests/slt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "slt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .slt files in {}", dir.display());
    for f in &files {
        println!("running {}", f.display());
        run_file(f).await;
    }
}

/// This crate's folder, from the environment `cargo test` runs the tests in: the value compiled
/// in is where the binary was built, which a build cache shared between clones can make another
/// clone's folder.
pub fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}
