//! The catalog's error type.
//!
//! Every variant maps onto one [`ErrorClass`]. SQLite errors never surface raw: a database left
//! busy or locked past the busy timeout becomes [`Error::Conflict`] (retrying may succeed), any
//! other becomes [`Error::Storage`] with SQLite's message.

use strata_core::ErrorClass;

/// Errors raised by the metastore and the lakehouse catalog.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is wrong: a bad tag, a table without a location, an unknown lineage kind.
    #[error("{0}")]
    InvalidInput(String),
    /// A named catalog, schema, table or file does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A named object exists already.
    #[error("{0}")]
    AlreadyExists(String),
    /// Someone else holds or changed the object first; retrying may succeed.
    #[error("{0}")]
    Conflict(String),
    /// A rule refused the operation (a read-only schema, a metastore newer than this binary).
    #[error("{0}")]
    Refused(String),
    /// The metastore file or SQLite failed.
    #[error("{0}")]
    Storage(String),
    /// A Delta table operation failed.
    #[error(transparent)]
    Table(#[from] strata_table::Error),
    #[error(transparent)]
    Core(#[from] strata_core::Error),
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
            Error::Table(e) => e.class(),
            Error::Core(e) => e.class(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// SQLite's primary result codes for "another connection holds the lock".
const SQLITE_BUSY: i32 = 5;
const SQLITE_LOCKED: i32 = 6;

/// Whether `e` means the database stayed locked by another connection past the busy timeout.
pub(crate) fn is_busy(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            // extended result codes carry the primary code in the low byte
            .is_some_and(|c| matches!(c & 0xff, SQLITE_BUSY | SQLITE_LOCKED)),
        sqlx::Error::PoolTimedOut => true,
        _ => false,
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        if is_busy(&e) {
            Error::Conflict(format!(
                "the metastore is busy: another process held its lock past the busy timeout \
                 ({e}); retry the operation"
            ))
        } else {
            Error::Storage(format!("metastore error: {e}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert_eq!(Error::Conflict("x".into()).class(), ErrorClass::Conflict);
        let core = strata_core::Error::InvalidInput("bad".into());
        assert_eq!(Error::from(core).class(), ErrorClass::InvalidInput);
        let timed_out = Error::from(sqlx::Error::PoolTimedOut);
        assert_eq!(timed_out.class(), ErrorClass::Conflict);
        assert!(timed_out.to_string().contains("retry"), "{timed_out}");
        let other = Error::from(sqlx::Error::RowNotFound);
        assert_eq!(other.class(), ErrorClass::Storage);
    }
}
