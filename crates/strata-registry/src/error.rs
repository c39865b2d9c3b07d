//! Registry errors, with Confluent's HTTP status and error code.

use thiserror::Error;

#[derive(Debug, Clone, Error)]
#[error("{message}")]
pub struct RegistryError {
    /// The HTTP status.
    pub status: u16,
    /// Confluent's error code (40401, 42201, ...).
    pub code: u32,
    pub message: String,
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

impl RegistryError {
    pub fn new(status: u16, code: u32, message: impl Into<String>) -> Self {
        RegistryError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn subject_not_found(subject: &str) -> Self {
        Self::new(404, 40401, format!("Subject '{subject}' not found."))
    }

    pub fn version_not_found(version: impl std::fmt::Display) -> Self {
        Self::new(404, 40402, format!("Version {version} not found."))
    }

    pub fn schema_not_found(what: impl Into<String>) -> Self {
        Self::new(404, 40403, what)
    }

    pub fn subject_soft_deleted(subject: &str) -> Self {
        Self::new(
            404,
            40404,
            format!(
                "Subject '{subject}' was soft deleted. Set permanent=true to delete permanently"
            ),
        )
    }

    pub fn subject_not_soft_deleted(subject: &str) -> Self {
        Self::new(
            404,
            40405,
            format!("Subject '{subject}' was not deleted first before being permanently deleted"),
        )
    }

    pub fn version_soft_deleted(subject: &str, version: i64) -> Self {
        Self::new(
            404,
            40406,
            format!(
                "Subject '{subject}' Version {version} was soft deleted. Set permanent=true to delete permanently"
            ),
        )
    }

    pub fn version_not_soft_deleted(subject: &str, version: i64) -> Self {
        Self::new(
            404,
            40407,
            format!(
                "Subject '{subject}' Version {version} was not deleted first before being permanently deleted"
            ),
        )
    }

    pub fn subject_level_compatibility_not_configured(subject: &str) -> Self {
        Self::new(
            404,
            40408,
            format!("Subject '{subject}' does not have subject-level compatibility configured"),
        )
    }

    pub fn incompatible(subject: &str, details: &[String]) -> Self {
        Self::new(
            409,
            409,
            format!(
                "Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: [{}]",
                details.join(", ")
            ),
        )
    }

    pub fn invalid_schema(message: impl Into<String>) -> Self {
        Self::new(422, 42201, message)
    }

    pub fn invalid_version(version: &str) -> Self {
        Self::new(
            422,
            42202,
            format!(
                "The specified version '{version}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\""
            ),
        )
    }

    pub fn invalid_compatibility_level(message: impl Into<String>) -> Self {
        Self::new(422, 42203, message)
    }

    pub fn invalid_mode(message: impl Into<String>) -> Self {
        Self::new(422, 42204, message)
    }

    pub fn operation_not_permitted(message: impl Into<String>) -> Self {
        Self::new(422, 42205, message)
    }

    pub fn reference_exists(message: impl Into<String>) -> Self {
        Self::new(422, 42206, message)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, 400, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, 50001, message)
    }
}

impl From<sqlx::Error> for RegistryError {
    fn from(e: sqlx::Error) -> Self {
        RegistryError::internal(format!("Error in the backend data store: {e}"))
    }
}

impl From<strata_catalog::Error> for RegistryError {
    fn from(e: strata_catalog::Error) -> Self {
        RegistryError::internal(format!("Error in the backend data store: {e}"))
    }
}

impl RegistryError {
    /// How the CLI reports it (exit codes).
    pub fn class(&self) -> strata_core::ErrorClass {
        use strata_core::ErrorClass;
        match self.status {
            404 => ErrorClass::NotFound,
            409 => ErrorClass::Refused,
            400 | 422 => ErrorClass::InvalidInput,
            _ => ErrorClass::Storage,
        }
    }
}
