//! Where the admin key comes from (`--admin-key-file`, `--admin-key`, `OPENAI_ADMIN_KEY`) and
//! the check, before anything is sent, that it is an admin key at all.

use crate::error::CliError;
use secrecy::{ExposeSecret, SecretString};
use std::fmt;
use std::path::{Path, PathBuf};

pub const ADMIN_KEY_ENV: &str = "OPENAI_ADMIN_KEY";

/// Where the key was read from, so errors can say which one to fix.
#[derive(Debug, Clone)]
pub enum KeySource {
    Env,
    File(PathBuf),
    Flag,
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Env => write!(f, "{ADMIN_KEY_ENV}"),
            KeySource::File(p) => write!(f, "--admin-key-file {}", p.display()),
            KeySource::Flag => write!(f, "--admin-key"),
        }
    }
}

pub struct AdminKey {
    pub secret: SecretString,
    pub source: KeySource,
}

/// The kinds of non-admin keys that are recognisable by their prefix.
const NON_ADMIN_PREFIXES: &[(&str, &str)] = &[
    ("sk-proj-", "a project key (sk-proj-…)"),
    ("sk-svcacct-", "a service account key (sk-svcacct-…)"),
];

const CREATE_ONE: &str = "the Admin API needs an admin key (sk-admin-…): `keyplane init` prints \
     the first one, `keyplane admin-keys create` makes more (on OpenAI: Settings → Organization → \
     Admin keys)";

/// Resolves the admin key: `--admin-key-file`, then `--admin-key` (with a warning), then the
/// environment.
pub fn resolve(file: Option<&Path>, flag: Option<&str>) -> Result<AdminKey, CliError> {
    let (raw, source) = if let Some(path) = file {
        (read_key_file(path)?, KeySource::File(path.to_owned()))
    } else if let Some(value) = flag {
        eprintln!(
            "keyplane: warning: --admin-key puts the key in your shell history and the process \
             list; prefer {ADMIN_KEY_ENV} or --admin-key-file"
        );
        (value.to_owned(), KeySource::Flag)
    } else {
        match std::env::var(ADMIN_KEY_ENV) {
            Ok(v) => (v, KeySource::Env),
            Err(_) => {
                let mut err = CliError::auth(format!(
                    "no admin key: set {ADMIN_KEY_ENV} or pass --admin-key-file FILE"
                ))
                .hint(CREATE_ONE);
                if std::env::var_os("OPENAI_API_KEY").is_some() {
                    err = err.hint(format!(
                        "OPENAI_API_KEY is set, but {CREATE_ONE}; put it in {ADMIN_KEY_ENV}"
                    ));
                }
                return Err(err);
            }
        }
    };
    let key = raw.trim();
    if key.is_empty() {
        return Err(
            CliError::auth(format!("the admin key from {source} is empty")).hint(CREATE_ONE),
        );
    }
    check_kind(key, &source)?;
    Ok(AdminKey {
        secret: SecretString::from(key.to_owned()),
        source,
    })
}

/// Rejects a project or service-account key before it is sent anywhere.
pub fn check_kind(key: &str, source: &KeySource) -> Result<(), CliError> {
    for (prefix, kind) in NON_ADMIN_PREFIXES {
        if key.starts_with(prefix) {
            return Err(CliError::auth(format!(
                "the key from {source} is {kind}, not an admin key"
            ))
            .hint(CREATE_ONE));
        }
    }
    Ok(())
}

fn read_key_file(path: &Path) -> Result<String, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::usage(format!(
            "cannot read the admin key file {}: {e}",
            path.display()
        ))
    })?;
    warn_if_readable_by_others(path);
    Ok(text)
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            eprintln!(
                "keyplane: warning: {} is readable by other users; `chmod 600` it",
                path.display()
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_: &Path) {}

impl AdminKey {
    pub fn expose(&self) -> &str {
        self.secret.expose_secret()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_and_service_account_keys_are_refused() {
        let err = check_kind("sk-proj-abc", &KeySource::Env).unwrap_err();
        assert_eq!(err.exit_code(), crate::error::EXIT_AUTH);
        assert!(err.message.contains("project key"), "{}", err.message);
        assert!(err.message.contains(ADMIN_KEY_ENV));
        assert!(check_kind("sk-svcacct-abc", &KeySource::Flag).is_err());
        assert!(check_kind("sk-admin-abc", &KeySource::Env).is_ok());
    }

    #[test]
    fn key_debug_is_redacted() {
        let key = AdminKey {
            secret: SecretString::from("sk-admin-secret".to_owned()),
            source: KeySource::Env,
        };
        assert!(!format!("{:?}", key.secret).contains("sk-admin-secret"));
        assert_eq!(key.expose(), "sk-admin-secret");
    }
}
