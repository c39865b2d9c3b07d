//! Error classes shared by every Strata crate.
//!
//! Each crate keeps its own error enum; each variant maps onto one [`ErrorClass`], which decides
//! the CLI's exit code, and later the HTTP status and SQLSTATE.

/// The fault class of an error: what the caller can do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The request is wrong: a bad name, type, predicate or argument.
    InvalidInput,
    /// A named object does not exist.
    NotFound,
    /// A named object exists already.
    AlreadyExists,
    /// Someone else changed the object first; retrying may succeed.
    Conflict,
    /// A layer rule or a read-only table refused the operation.
    Refused,
    /// A data-quality gate failed.
    QualityGate,
    /// Storage (files, object store, metastore) failed.
    Storage,
    /// A broken invariant inside Strata.
    Internal,
}

/// Errors raised by `strata-core` itself (name, type and configuration validation).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    InvalidInput(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Config(String),
}

impl Error {
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::InvalidInput(_) | Error::Config(_) => ErrorClass::InvalidInput,
            Error::NotFound(_) => ErrorClass::NotFound,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
