//! The pipeline error type. Messages name the pipeline file's line and key, the flow, the table
//! and the column they are about.

use strata_core::ErrorClass;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The pipeline file or an option is wrong.
    #[error("{0}")]
    InvalidInput(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// A layer rule, a PII rule or a schema-change policy refused the flow.
    #[error("{0}")]
    Refused(String),
    /// An expectation with action `fail` failed: nothing was committed to the flow's target.
    #[error("{0}")]
    QualityGate(String),
    /// The run was stopped (Ctrl-C, SIGTERM) before committing.
    #[error("{0}")]
    Cancelled(String),
    #[error("internal error: {0}")]
    Internal(String),
    #[error(transparent)]
    Table(#[from] strata_table::Error),
    #[error(transparent)]
    Catalog(#[from] strata_catalog::Error),
    #[error(transparent)]
    Sql(#[from] strata_sql::Error),
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
            Error::QualityGate(_) => ErrorClass::QualityGate,
            Error::Internal(_) => ErrorClass::Internal,
            Error::Table(e) => e.class(),
            Error::Catalog(e) => e.class(),
            Error::Sql(e) => e.class(),
            Error::Core(e) => e.class(),
        }
    }
}

impl From<arrow::error::ArrowError> for Error {
    fn from(e: arrow::error::ArrowError) -> Self {
        Error::Internal(format!("building a record batch: {e}"))
    }
}

impl From<datafusion::error::DataFusionError> for Error {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        Error::InvalidInput(strata_table::error::strip_df_noise(&e.to_string()))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
