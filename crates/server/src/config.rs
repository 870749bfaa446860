//! One typed configuration, layered: defaults < `keyplane.toml` < `KEYPLANE_*` env < flags.
//! (Flags and their env variables are read by clap in the CLI and passed in as [`Overrides`].)

use keyplane_core::catalog::{self, ModelSpec};
use secrecy::SecretString;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    /// Where the gateway forwards, tried in order; the last is the catch-all.
    pub upstreams: Vec<Upstream>,
    /// The model catalog: built-in models, overridden and extended by `[[models]]`.
    pub models: Vec<ModelSpec>,
    pub upstream_timeout: Duration,
    pub upstream_connect_timeout: Duration,
    /// Largest request body the gateway forwards (uploads included).
    pub gateway_max_body_bytes: usize,
    pub alert_webhook_url: Option<String>,
    pub alert_webhook_secret: Option<SecretString>,
    /// Base URL people reach Keyplane at, for invite and setup links
    /// (`KEYPLANE_PUBLIC_URL`; default `http://{listen}`).
    pub public_url: String,
    /// The first owner's password for `init` (`KEYPLANE_OWNER_PASSWORD[_FILE]`); without it
    /// `init` prints a one-time setup link.
    pub owner_password: Option<SecretString>,
    /// Audit events older than this many days are pruned; `None` keeps them forever.
    pub audit_retention_days: Option<u32>,
    /// How long a request may wait for a database connection before it gets a 503.
    pub db_acquire_timeout: Duration,
    /// How often cached keys and policies are re-read from the database (the safety net
    /// behind pushed invalidation).
    pub reconcile_interval: Duration,
    /// While the database is unreachable, cached keys keep working this long after the cache
    /// was last confirmed; then they too get a 503.
    pub outage_grace: Duration,
    /// Redis for cluster-wide rate-limit and spend counters (`KEYPLANE_REDIS_URL[_FILE]`; may
    /// carry a password). Without it limits are per instance, in process.
    pub redis_url: Option<SecretString>,
    /// Namespace of every Redis key (`KEYPLANE_REDIS_PREFIX`, default `keyplane`).
    pub redis_prefix: String,
    /// Per-call Redis timeout (`KEYPLANE_REDIS_TIMEOUT_MS`, default 50 ms); past it the request
    /// is decided in process.
    pub redis_timeout: Duration,
    /// How long a client may take to send a request's headers (HTTP/1), counted from when
    /// its connection is ready for the next request, and how long it may stay silent while
    /// sending a body (`KEYPLANE_CLIENT_TIMEOUT_SECS`, default 30 s). A client that trickles
    /// its headers or holds its body back (slowloris) is cut off, and so is a kept-alive
    /// connection idle this long.
    pub client_timeout: Duration,
    /// How many instances share the limits (`KEYPLANE_INSTANCES`, default 1): while Redis is
    /// unreachable each instance enforces `limit / instances`.
    pub instances: u32,
    /// Serving threads (`KEYPLANE_WORKERS`, default one per core), each with its own
    /// single-threaded runtime; see `workers.rs`.
    pub workers: usize,
    /// How many nice levels below the serving threads every other thread runs
    /// (`KEYPLANE_BACKGROUND_NICE`, 0–19; default 10, or 0 with Redis, whose connection those
    /// threads drive for every request); see [`crate::workers::keep_background_behind`].
    pub background_nice: i32,
}

/// An OpenAI-compatible provider the gateway forwards to.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub name: String,
    /// Base URL including `/v1` (or the provider's equivalent).
    pub url: String,
    pub api_key: Option<SecretString>,
    /// Model patterns routed here (`gpt-4o`, `llama-*`); empty means every model.
    pub models: Vec<String>,
}

impl Upstream {
    pub fn serves(&self, model: &str) -> bool {
        self.models.is_empty()
            || self.models.iter().any(|p| match p.strip_suffix('*') {
                Some(prefix) => model.starts_with(prefix),
                None => p == model,
            })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileUpstream {
    name: String,
    url: String,
    api_key_env: Option<String>,
    api_key_file: Option<PathBuf>,
    #[serde(default)]
    models: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileModel {
    name: String,
    requests_per_minute: Option<u64>,
    tokens_per_minute: Option<u64>,
    requests_per_day: Option<u64>,
    images_per_minute: Option<u64>,
    input_price: Option<f64>,
    cached_input_price: Option<f64>,
    output_price: Option<f64>,
    image_price: Option<f64>,
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
    upstream_url: Option<String>,
    upstream_api_key_file: Option<PathBuf>,
    upstream_timeout_secs: Option<u64>,
    upstream_connect_timeout_secs: Option<u64>,
    gateway_max_body_bytes: Option<usize>,
    alert_webhook_url: Option<String>,
    alert_webhook_secret_file: Option<PathBuf>,
    public_url: Option<String>,
    audit_retention_days: Option<u32>,
    db_acquire_timeout_secs: Option<u64>,
    reconcile_interval_secs: Option<u64>,
    outage_grace_secs: Option<u64>,
    client_timeout_secs: Option<u64>,
    redis_url: Option<SecretString>,
    redis_url_file: Option<PathBuf>,
    redis_prefix: Option<String>,
    redis_timeout_ms: Option<u64>,
    instances: Option<u32>,
    workers: Option<usize>,
    background_nice: Option<i32>,
    #[serde(default)]
    upstreams: Vec<FileUpstream>,
    #[serde(default)]
    models: Vec<FileModel>,
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

/// A number from the environment variable `var`, if set.
fn number_from_env<T: std::str::FromStr>(var: &str) -> Result<Option<T>, ConfigError> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => {
            v.trim().parse().map(Some).map_err(|_| {
                ConfigError::Invalid(format!("{var} must be a whole number, not '{v}'"))
            })
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
        let upstreams = upstreams(&file)?;
        let models = models(&file.models)?;
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
        let mut alert_webhook_secret = secret_from_env("KEYPLANE_ALERT_WEBHOOK_SECRET")?;
        if alert_webhook_secret.is_none() {
            if let Some(path) = &file.alert_webhook_secret_file {
                alert_webhook_secret = Some(read_secret_file("alert_webhook_secret_file", path)?);
            }
        }
        let public_url = match std::env::var("KEYPLANE_PUBLIC_URL")
            .ok()
            .filter(|v| !v.is_empty())
            .or(file.public_url.clone())
        {
            Some(url) => check_url("public_url", &url)?,
            None => format!("http://{listen}"),
        };
        if file.audit_retention_days == Some(0) {
            return Err(ConfigError::Invalid(
                "audit_retention_days must be at least 1 (leave it out to keep events forever)"
                    .into(),
            ));
        }
        let secs = |var: &str, file: Option<u64>, default: u64, min: u64| {
            let value = match std::env::var(var).ok().filter(|v| !v.is_empty()) {
                Some(v) => v.parse::<u64>().map_err(|_| {
                    ConfigError::Invalid(format!(
                        "{var} must be a whole number of seconds, not '{v}'"
                    ))
                })?,
                None => file.unwrap_or(default),
            };
            if value < min {
                return Err(ConfigError::Invalid(format!(
                    "{var} must be at least {min} second(s)"
                )));
            }
            Ok(Duration::from_secs(value))
        };
        let db_acquire_timeout = secs(
            "KEYPLANE_DB_ACQUIRE_TIMEOUT_SECS",
            file.db_acquire_timeout_secs,
            5,
            1,
        )?;
        let reconcile_interval = secs(
            "KEYPLANE_RECONCILE_INTERVAL_SECS",
            file.reconcile_interval_secs,
            30,
            1,
        )?;
        let outage_grace = secs("KEYPLANE_OUTAGE_GRACE_SECS", file.outage_grace_secs, 600, 0)?;
        let client_timeout = secs(
            "KEYPLANE_CLIENT_TIMEOUT_SECS",
            file.client_timeout_secs,
            30,
            1,
        )?;
        let mut redis_url = secret_from_env("KEYPLANE_REDIS_URL")?;
        if redis_url.is_none() {
            redis_url = match (&file.redis_url, &file.redis_url_file) {
                (Some(url), _) => Some(url.clone()),
                (None, Some(path)) => Some(read_secret_file("redis_url_file", path)?),
                (None, None) => None,
            };
        }
        let instances = number_from_env::<u32>("KEYPLANE_INSTANCES")?
            .or(file.instances)
            .unwrap_or(1);
        if instances == 0 {
            return Err(ConfigError::Invalid(
                "instances (KEYPLANE_INSTANCES) must be at least 1".into(),
            ));
        }
        let workers = number_from_env::<usize>("KEYPLANE_WORKERS")?
            .or(file.workers)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        if workers == 0 || workers > 1024 {
            return Err(ConfigError::Invalid(
                "workers (KEYPLANE_WORKERS) must be between 1 and 1024".into(),
            ));
        }
        let background_nice = number_from_env::<i32>("KEYPLANE_BACKGROUND_NICE")?
            .or(file.background_nice)
            .unwrap_or(if redis_url.is_some() { 0 } else { 10 });
        if !(0..=19).contains(&background_nice) {
            return Err(ConfigError::Invalid(
                "background_nice (KEYPLANE_BACKGROUND_NICE) must be between 0 and 19".into(),
            ));
        }
        let redis_timeout_ms = number_from_env::<u64>("KEYPLANE_REDIS_TIMEOUT_MS")?
            .or(file.redis_timeout_ms)
            .unwrap_or(50);
        if redis_timeout_ms == 0 {
            return Err(ConfigError::Invalid(
                "redis_timeout_ms (KEYPLANE_REDIS_TIMEOUT_MS) must be at least 1".into(),
            ));
        }
        let redis_prefix = std::env::var("KEYPLANE_REDIS_PREFIX")
            .ok()
            .filter(|v| !v.is_empty())
            .or(file.redis_prefix.clone())
            .unwrap_or_else(|| "keyplane".to_owned());
        Ok(Config {
            db_acquire_timeout,
            reconcile_interval,
            outage_grace,
            redis_url,
            redis_prefix,
            redis_timeout: Duration::from_millis(redis_timeout_ms),
            client_timeout,
            instances,
            workers,
            background_nice,
            public_url,
            owner_password: secret_from_env("KEYPLANE_OWNER_PASSWORD")?,
            audit_retention_days: file.audit_retention_days,
            upstreams,
            models,
            upstream_timeout: Duration::from_secs(file.upstream_timeout_secs.unwrap_or(600)),
            upstream_connect_timeout: Duration::from_secs(
                file.upstream_connect_timeout_secs.unwrap_or(10),
            ),
            gateway_max_body_bytes: file.gateway_max_body_bytes.unwrap_or(64 * 1024 * 1024),
            alert_webhook_url: std::env::var("KEYPLANE_ALERT_WEBHOOK_URL")
                .ok()
                .filter(|v| !v.is_empty())
                .or(file.alert_webhook_url.clone()),
            alert_webhook_secret,
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

pub const DEFAULT_UPSTREAM_URL: &str = "https://api.openai.com/v1";

fn check_url(what: &str, url: &str) -> Result<String, ConfigError> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(url.trim_end_matches('/').to_owned())
    } else {
        Err(ConfigError::Invalid(format!(
            "{what} must be an http:// or https:// URL, not '{url}'"
        )))
    }
}

/// The `[[upstreams]]` of the file, then the default upstream (`KEYPLANE_UPSTREAM_URL`, key from
/// `KEYPLANE_UPSTREAM_API_KEY[_FILE]`) as the catch-all.
fn upstreams(file: &FileConfig) -> Result<Vec<Upstream>, ConfigError> {
    let mut out = Vec::new();
    for u in &file.upstreams {
        let api_key = match (&u.api_key_env, &u.api_key_file) {
            (Some(var), _) => secret_from_env(var)?,
            (None, Some(path)) => Some(read_secret_file(
                &format!("upstream {} api_key_file", u.name),
                path,
            )?),
            (None, None) => None,
        };
        out.push(Upstream {
            name: u.name.clone(),
            url: check_url(&format!("upstream {} url", u.name), &u.url)?,
            api_key,
            models: u.models.clone(),
        });
    }
    let url = std::env::var("KEYPLANE_UPSTREAM_URL")
        .ok()
        .filter(|v| !v.is_empty())
        .or(file.upstream_url.clone())
        .unwrap_or_else(|| DEFAULT_UPSTREAM_URL.to_owned());
    let mut api_key = secret_from_env("KEYPLANE_UPSTREAM_API_KEY")?;
    if api_key.is_none() {
        if let Some(path) = &file.upstream_api_key_file {
            api_key = Some(read_secret_file("upstream_api_key_file", path)?);
        }
    }
    out.push(Upstream {
        name: "default".to_owned(),
        url: check_url("KEYPLANE_UPSTREAM_URL", &url)?,
        api_key,
        models: Vec::new(),
    });
    Ok(out)
}

/// The built-in catalog with `[[models]]` applied (a known name overrides, a new one is added).
fn models(file: &[FileModel]) -> Result<Vec<ModelSpec>, ConfigError> {
    let mut models = catalog::built_in();
    for m in file {
        if m.name.trim().is_empty() {
            return Err(ConfigError::Invalid(
                "a [[models]] entry has an empty name".into(),
            ));
        }
        let idx = match models.iter().position(|x| x.name == m.name) {
            Some(i) => i,
            None => {
                models.push(catalog::fallback(&m.name));
                models.len() - 1
            }
        };
        let spec = &mut models[idx];
        if let Some(v) = m.requests_per_minute {
            spec.requests_per_minute = v;
        }
        if let Some(v) = m.tokens_per_minute {
            spec.tokens_per_minute = v;
        }
        if m.requests_per_day.is_some() {
            spec.requests_per_day = m.requests_per_day;
        }
        if m.images_per_minute.is_some() {
            spec.images_per_minute = m.images_per_minute;
        }
        for (dst, src) in [
            (&mut spec.input_price, m.input_price),
            (&mut spec.cached_input_price, m.cached_input_price),
            (&mut spec.output_price, m.output_price),
            (&mut spec.image_price, m.image_price),
        ] {
            if let Some(v) = src {
                if !(0.0..=1e6).contains(&v) {
                    return Err(ConfigError::Invalid(format!(
                        "model {}: invalid price {v}",
                        m.name
                    )));
                }
                *dst = v;
            }
        }
    }
    Ok(models)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

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
    fn upstreams_route_by_model_and_models_extend_the_catalog() {
        let dir = std::env::temp_dir().join(format!("kp-config-up-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("up.toml");
        std::fs::write(
            &file,
            "[[upstreams]]\nname = \"local\"\nurl = \"http://127.0.0.1:9/v1/\"\nmodels = [\"llama-*\"]\n\n\
             [[models]]\nname = \"llama-3\"\nrequests_per_minute = 7\n\n\
             [[models]]\nname = \"gpt-4o\"\ntokens_per_minute = 5\n",
        )
        .unwrap();
        let cfg = Config::load(&Overrides {
            config_file: Some(file),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(cfg.upstreams.len(), 2);
        assert_eq!(cfg.upstreams[0].url, "http://127.0.0.1:9/v1");
        assert!(cfg.upstreams[0].serves("llama-3-70b"));
        assert!(!cfg.upstreams[0].serves("gpt-4o"));
        assert!(cfg.upstreams[1].serves("anything"));
        let llama = cfg.models.iter().find(|m| m.name == "llama-3").unwrap();
        assert_eq!(llama.requests_per_minute, 7);
        let gpt = cfg.models.iter().find(|m| m.name == "gpt-4o").unwrap();
        assert_eq!((gpt.tokens_per_minute, gpt.requests_per_minute), (5, 500));
    }

    #[test]
    fn redis_settings_come_from_the_file_and_the_url_stays_secret() {
        let dir = std::env::temp_dir().join(format!("kp-config-redis-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("redis.toml");
        std::fs::write(
            &file,
            "redis_url = \"redis://:hunter2@127.0.0.1:6379/0\"\nredis_prefix = \"kp-a\"\n\
             redis_timeout_ms = 20\ninstances = 3\n",
        )
        .unwrap();
        let cfg = Config::load(&Overrides {
            config_file: Some(file.clone()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            cfg.redis_url.as_ref().map(|u| u.expose_secret().to_owned()),
            Some("redis://:hunter2@127.0.0.1:6379/0".to_owned())
        );
        assert_eq!(cfg.redis_prefix, "kp-a");
        assert_eq!(cfg.redis_timeout, Duration::from_millis(20));
        assert_eq!(cfg.instances, 3);
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("hunter2"), "{shown}");

        std::fs::write(&file, "instances = 0\n").unwrap();
        let err = Config::load(&Overrides {
            config_file: Some(file),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("at least 1"), "{err}");

        let defaults = Config::load(&Overrides::default()).unwrap();
        assert!(defaults.redis_url.is_none());
        assert_eq!(
            (defaults.instances, defaults.redis_prefix.as_str()),
            (1, "keyplane")
        );
        assert_eq!(defaults.redis_timeout, Duration::from_millis(50));
    }

    #[test]
    fn the_client_timeout_is_read_from_the_file_and_must_be_positive() {
        let dir = std::env::temp_dir().join(format!("kp-config-client-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("client.toml");
        let load = |text: &str| {
            std::fs::write(&file, text).unwrap();
            Config::load(&Overrides {
                config_file: Some(file.clone()),
                ..Default::default()
            })
        };
        assert_eq!(
            load("client_timeout_secs = 7\n").unwrap().client_timeout,
            Duration::from_secs(7)
        );
        assert_eq!(load("").unwrap().client_timeout, Duration::from_secs(30));
        let err = load("client_timeout_secs = 0\n").unwrap_err();
        assert!(
            err.to_string()
                .contains("KEYPLANE_CLIENT_TIMEOUT_SECS must be at least 1"),
            "{err}"
        );
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
