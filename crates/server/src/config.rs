//! One typed configuration, layered: defaults < `keyplane.toml` < `KEYPLANE_*` env < flags.
//! (Flags and their env variables are read by clap in the CLI and passed in as [`Overrides`].)

use secrecy::SecretString;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATABASE_URL: &str = "sqlite://keyplane.db";

#[derive(Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub database_url: String,
    /// HMAC pepper for key hashes (`KEYPLANE_KEY_PEPPER[_FILE]`). Changing it invalidates
    /// every existing key.
    pub key_pepper: Option<SecretString>,
    pub max_body_bytes: usize,
    pub db_max_connections: u32,
    pub key_cache_capacity: u64,
    pub org_name: String,
    pub owner_email: String,
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

/// The `[server]`-less flat file format of `keyplane.toml`. Unknown keys are errors.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    database_url: Option<String>,
    key_pepper_file: Option<PathBuf>,
    max_body_bytes: Option<usize>,
    db_max_connections: Option<u32>,
    key_cache_capacity: Option<u64>,
    org_name: Option<String>,
    owner_email: Option<String>,
    log_format: Option<LogFormat>,
}

/// Values from flags or their environment variables (highest precedence).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub listen: Option<String>,
    pub database_url: Option<String>,
    pub org_name: Option<String>,
    pub owner_email: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid listen address '{0}': expected HOST:PORT, e.g. 127.0.0.1:8080")]
    Listen(String),
    #[error("cannot read {var}: {source}")]
    SecretFile { var: String, source: std::io::Error },
    #[error("{0}")]
    Invalid(String),
}

fn read_secret_file(var: &str, path: &Path) -> Result<SecretString, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::SecretFile {
        var: var.to_owned(),
        source,
    })?;
    Ok(SecretString::from(
        text.trim_end_matches(['\r', '\n']).to_owned(),
    ))
}

/// `NAME` or the contents of the file named by `NAME_FILE`.
pub fn secret_from_env(var: &str) -> Result<Option<SecretString>, ConfigError> {
    if let Ok(v) = std::env::var(var) {
        if !v.is_empty() {
            return Ok(Some(SecretString::from(v)));
        }
    }
    match std::env::var(format!("{var}_FILE")) {
        Ok(path) if !path.is_empty() => {
            read_secret_file(&format!("{var}_FILE"), Path::new(&path)).map(Some)
        }
        _ => Ok(None),
    }
}

impl Config {
    pub fn load(overrides: &Overrides) -> Result<Self, ConfigError> {
        let file = match &overrides.config_file {
            None => FileConfig::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    path: path.clone(),
                    message: e.to_string(),
                })?
            }
        };
        let listen_raw = overrides
            .listen
            .clone()
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen = listen_raw
            .parse()
            .map_err(|_| ConfigError::Listen(listen_raw.clone()))?;
        let mut key_pepper = secret_from_env("KEYPLANE_KEY_PEPPER")?;
        if key_pepper.is_none() {
            if let Some(path) = &file.key_pepper_file {
                key_pepper = Some(read_secret_file("key_pepper_file", path)?);
            }
        }
        let log_format = match std::env::var("KEYPLANE_LOG_FORMAT").ok().as_deref() {
            Some("json") => LogFormat::Json,
            Some("pretty") => LogFormat::Pretty,
            Some(other) => {
                return Err(ConfigError::Invalid(format!(
                    "KEYPLANE_LOG_FORMAT must be 'json' or 'pretty', not '{other}'"
                )))
            }
            None => file.log_format.unwrap_or(LogFormat::Pretty),
        };
        Ok(Config {
            listen,
            database_url: overrides
                .database_url
                .clone()
                .or(file.database_url)
                .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned()),
            key_pepper,
            max_body_bytes: file.max_body_bytes.unwrap_or(1024 * 1024),
            db_max_connections: file.db_max_connections.unwrap_or(16),
            key_cache_capacity: file.key_cache_capacity.unwrap_or(1_000_000),
            org_name: overrides
                .org_name
                .clone()
                .or(file.org_name)
                .unwrap_or_else(|| "Default Organization".to_owned()),
            owner_email: overrides
                .owner_email
                .clone()
                .or(file.owner_email)
                .unwrap_or_else(|| "owner@localhost".to_owned()),
            log_format,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_file_keys_are_errors_and_flags_win() {
        let dir = std::env::temp_dir().join(format!("kp-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bad = dir.join("bad.toml");
        std::fs::write(&bad, "listen = \"127.0.0.1:1\"\nlisten_adress = \"x\"\n").unwrap();
        let err = Config::load(&Overrides {
            config_file: Some(bad),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("listen_adress"), "{err}");

        let good = dir.join("good.toml");
        std::fs::write(
            &good,
            "listen = \"127.0.0.1:1\"\ndatabase_url = \"sqlite://a.db\"\n",
        )
        .unwrap();
        let cfg = Config::load(&Overrides {
            config_file: Some(good),
            listen: Some("127.0.0.1:2".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(cfg.listen.port(), 2);
        assert_eq!(cfg.database_url, "sqlite://a.db");
    }

    #[test]
    fn debug_output_never_shows_the_pepper() {
        let mut cfg = Config::load(&Overrides::default()).unwrap();
        cfg.key_pepper = Some(SecretString::from("pepper-value-123".to_owned()));
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("pepper-value-123"), "{shown}");
        assert!(shown.contains("REDACTED"), "{shown}");
    }

    #[test]
    fn bad_listen_address_is_explained() {
        let err = Config::load(&Overrides {
            listen: Some("localhost".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("HOST:PORT"));
    }
}
