use thiserror::Error;

/// Why a domain operation was refused. The server maps each variant to one HTTP status.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DomainError {
    /// A client-supplied value failed to parse; `param` names the field.
    #[error("{message}")]
    InvalidInput {
        param: Option<String>,
        message: String,
    },
    #[error("No {kind} found with id '{id}'.")]
    NotFound { kind: &'static str, id: String },
    /// The operation is understood but not allowed in the object's current state.
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Forbidden(String),
}

impl DomainError {
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        DomainError::InvalidInput {
            param: Some(param.into()),
            message: message.into(),
        }
    }

    pub fn not_found(kind: &'static str, id: impl Into<String>) -> Self {
        DomainError::NotFound {
            kind,
            id: id.into(),
        }
    }
}
