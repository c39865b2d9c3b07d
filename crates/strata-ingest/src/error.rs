//! The ingest error type. Every message names the source file, line or field it is about.

use strata_core::ErrorClass;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is wrong: a bad option, a source that is not a file, a table outside bronze.
    #[error("{0}")]
    InvalidInput(String),
    #[error("{0}")]
    NotFound(String),
    /// Another writer holds the table; retrying later may succeed.
    #[error("{0}")]
    Conflict(String),
    /// A rule refused the run: `--mode fail` met a new field, a run did not balance.
    #[error("{0}")]
    Refused(String),
    /// Reading a source failed.
    #[error("{0}")]
    Io(String),
    /// The run was stopped (Ctrl-C, SIGTERM) between batches.
    #[error("{0}")]
    Cancelled(String),
    /// A broken invariant: Strata's own bug.
    #[error("internal error: {0}")]
    Internal(String),
    #[error(transparent)]
    Table(#[from] strata_table::Error),
    #[error(transparent)]
    Catalog(#[from] strata_catalog::Error),
    #[error(transparent)]
    Core(#[from] strata_core::Error),
}

impl Error {
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::InvalidInput(_) => ErrorClass::InvalidInput,
            Error::NotFound(_) => ErrorClass::NotFound,
            Error::Conflict(_) => ErrorClass::Conflict,
            Error::Refused(_) | Error::Cancelled(_) => ErrorClass::Refused,
            Error::Io(_) => ErrorClass::Storage,
            Error::Internal(_) => ErrorClass::Internal,
            Error::Table(e) => e.class(),
            Error::Catalog(e) => e.class(),
            Error::Core(e) => e.class(),
        }
    }
}

impl From<arrow::error::ArrowError> for Error {
    fn from(e: arrow::error::ArrowError) -> Self {
        Error::Internal(format!("building a record batch: {e}"))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
