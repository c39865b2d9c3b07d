//! Errors of Delta table operations.

use deltalake::DeltaTableError;
use deltalake::kernel::transaction::TransactionError;
use strata_core::ErrorClass;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    InvalidInput(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    /// Another writer committed first in a way that conflicts; retrying may succeed.
    #[error("{0}")]
    Conflict(String),
    /// The table refuses the operation (append-only, read-only).
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Storage(String),
    #[error(transparent)]
    Core(#[from] strata_core::Error),
    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),
}

impl Error {
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::InvalidInput(_) => ErrorClass::InvalidInput,
            Error::NotFound(_) => ErrorClass::NotFound,
            Error::AlreadyExists(_) => ErrorClass::AlreadyExists,
            Error::Conflict(_) => ErrorClass::Conflict,
            Error::Refused(_) => ErrorClass::Refused,
            Error::Storage(_) => ErrorClass::Storage,
            Error::Core(e) => e.class(),
            Error::DataFusion(_) => ErrorClass::InvalidInput,
        }
    }

    /// Maps a deltalake error for an operation on `table` (a name or location for messages).
    pub fn delta(table: &str, e: DeltaTableError) -> Error {
        match e {
            DeltaTableError::Transaction { source } => match source {
                TransactionError::CommitConflict(c) => Error::Conflict(format!(
                    "concurrent change to table {table}: {c}; the operation committed nothing \
                     and can be retried"
                )),
                TransactionError::MaxCommitAttempts(n) => Error::Conflict(format!(
                    "table {table} is busy: gave up after {n} commit attempts; retry later"
                )),
                TransactionError::VersionAlreadyExists(v) => Error::Conflict(format!(
                    "concurrent commit to table {table} at version {v}; retry"
                )),
                TransactionError::DeltaTableAppendOnly => Error::Refused(format!(
                    "table {table} is append-only: rows can only be added"
                )),
                other => Error::Storage(format!("commit to table {table} failed: {other}")),
            },
            DeltaTableError::VersionAlreadyExists(v) => Error::Conflict(format!(
                "concurrent commit to table {table} at version {v}; retry"
            )),
            DeltaTableError::InvalidVersion(v) => {
                Error::NotFound(format!("table {table} has no version {v}"))
            }
            DeltaTableError::NotATable(_) => Error::NotFound(format!("no Delta table at {table}")),
            DeltaTableError::SchemaMismatch { msg } => Error::InvalidInput(format!(
                "data does not match the schema of table {table}: {msg}"
            )),
            DeltaTableError::Arrow { source } => Error::InvalidInput(format!(
                "table {table}: {}",
                strip_df_noise(&source.to_string())
            )),
            DeltaTableError::ObjectStore { source } => {
                Error::Storage(format!("table {table}: storage error: {source}"))
            }
            DeltaTableError::Io { source } => {
                Error::Storage(format!("table {table}: I/O error: {source}"))
            }
            other => {
                let text = other.to_string();
                if text.contains("retention period") {
                    Error::InvalidInput(format!(
                        "table {table}: {}; time travel and the change feed need those files \
                         (lower delta.deletedFileRetentionDuration first to mean it)",
                        strip_df_noise(&text)
                    ))
                } else if text.contains("append-only") || text.contains("appendOnly") {
                    Error::Refused(format!(
                        "table {table} is append-only: rows can only be added"
                    ))
                } else {
                    Error::Storage(format!("table {table}: {}", strip_df_noise(&text)))
                }
            }
        }
    }
}

/// DataFusion nests context prefixes ("Error during planning: External error: ...");
/// users want the sentence at the end.
pub fn strip_df_noise(text: &str) -> String {
    let mut t = text.trim();
    for prefix in [
        "Error during planning: ",
        "External error: ",
        "Arrow error: ",
        "Execution error: ",
        "Optimizer rule 'simplify_expressions' failed\ncaused by\n",
        "DataFusion error: ",
        "Schema error: ",
        "Cast error: ",
        "Invalid argument error: ",
        "Generic DeltaTable error: ",
    ] {
        while let Some(rest) = t.strip_prefix(prefix) {
            t = rest.trim();
        }
    }
    t.to_string()
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
