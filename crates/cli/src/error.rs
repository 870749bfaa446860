//! The client's one error type: what went wrong in plain words, a hint, and the exit code.

use std::fmt;

/// Exit codes, documented in `keyplane --help` and docs/cli.md.
pub const EXIT_OK: u8 = 0;
pub const EXIT_OTHER: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_AUTH: u8 = 3;
pub const EXIT_NOT_FOUND: u8 = 4;
pub const EXIT_SERVER: u8 = 5;

/// The after-help of `keyplane --help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  other error (the server rejected the request, an operation it does not support, a local file)
  2  usage error (unknown flag, bad value, missing argument)
  3  authentication error (no admin key, wrong kind of key, revoked or expired key, missing scope)
  4  not found (an unknown project, key, service account, user or invite id)
  5  server or network error (5xx, 429 or connection failure after retries, timeout)

Environment:
  OPENAI_ADMIN_KEY   the admin key (sk-admin-…); or --admin-key-file FILE
  OPENAI_BASE_URL    the Admin API base URL (default http://127.0.0.1:8080/v1)

Examples:
  export OPENAI_ADMIN_KEY=$(keyplane init)
  keyplane projects create --name \"web app\"
  keyplane api-keys list --project proj_abc123
  KEY=$(keyplane api-keys create --project proj_abc123 --name ci --quiet)";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Usage,
    Auth,
    NotFound,
    Server,
    Other,
}

impl ErrorKind {
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorKind::Usage => EXIT_USAGE,
            ErrorKind::Auth => EXIT_AUTH,
            ErrorKind::NotFound => EXIT_NOT_FOUND,
            ErrorKind::Server => EXIT_SERVER,
            ErrorKind::Other => EXIT_OTHER,
        }
    }
}

#[derive(Debug)]
pub struct CliError {
    pub kind: ErrorKind,
    pub message: String,
    pub hint: Option<String>,
}

impl CliError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            hint: None,
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Usage, message)
    }

    pub fn auth(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Auth, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    pub fn server(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Server, message)
    }

    pub fn other(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Other, message)
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn exit_code(&self) -> u8 {
        self.kind.exit_code()
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CliError {}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::other(format!("cannot write the output: {e}"))
    }
}
