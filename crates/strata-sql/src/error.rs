//! SQL errors.

use datafusion::common::SchemaError;
use datafusion::error::DataFusionError;
use strata_core::ErrorClass;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    InvalidInput(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Unsupported(String),
    #[error(transparent)]
    Catalog(#[from] strata_catalog::Error),
    #[error(transparent)]
    Table(#[from] strata_table::Error),
    #[error(transparent)]
    Core(#[from] strata_core::Error),
}

impl Error {
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::InvalidInput(_) | Error::Unsupported(_) => ErrorClass::InvalidInput,
            Error::NotFound(_) => ErrorClass::NotFound,
            Error::Refused(_) => ErrorClass::Refused,
            Error::Catalog(e) => e.class(),
            Error::Table(e) => e.class(),
            Error::Core(e) => e.class(),
        }
    }
}

impl From<DataFusionError> for Error {
    fn from(e: DataFusionError) -> Self {
        let root = e.find_root();
        if let DataFusionError::SchemaError(err, _) = root
            && let SchemaError::FieldNotFound {
                field,
                valid_fields,
            } = err.as_ref()
        {
            let wanted = &field.name;
            let hint = valid_fields
                .iter()
                .find(|c| c.name.eq_ignore_ascii_case(wanted) && &c.name != wanted)
                .map(|c| {
                    format!(
                        "; the column is named {} (a mixed-case name is written quoted)",
                        strata_core::types::quote_if_needed(&c.name)
                    )
                })
                .unwrap_or_default();
            return Error::InvalidInput(format!("column {wanted} does not exist{hint}"));
        }
        let text = strata_table::error::strip_df_noise(&root.to_string());
        if text.starts_with("table") && text.contains("not found") {
            return Error::NotFound(text);
        }
        Error::InvalidInput(text)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
