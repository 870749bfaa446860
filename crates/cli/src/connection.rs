//! The HTTP side of the client: one admin key, one base URL, requests with bounded retries, and
//! every failure turned into a [`CliError`] in plain words with a hint.

use crate::credentials::{self, AdminKey};
use crate::error::CliError;
use crate::output::Format;
use crate::retry::{self, DEFAULT_MAX_RETRIES, MAX_SERVER_DELAY};
use clap::Args;
use keyplane_api_types::ErrorBody;
use reqwest::header::{HeaderMap, ACCEPT};
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

pub const DEFAULT_BASE_URL: &str = "http://127.0.0.1:8080/v1";

/// Connection and output options, accepted before or after the subcommand.
#[derive(Args, Debug, Clone)]
pub struct ClientArgs {
    /// The Admin API base URL (Keyplane's or https://api.openai.com/v1).
    #[arg(
        long,
        global = true,
        env = "OPENAI_BASE_URL",
        default_value = DEFAULT_BASE_URL,
        value_name = "URL",
        help_heading = "Connection"
    )]
    pub base_url: String,
    /// Read the admin key from FILE (instead of OPENAI_ADMIN_KEY).
    #[arg(long, global = true, value_name = "FILE", help_heading = "Connection")]
    pub admin_key_file: Option<PathBuf>,
    /// The admin key itself. Discouraged: it lands in shell history and the process list.
    #[arg(
        long,
        global = true,
        value_name = "KEY",
        conflicts_with = "admin_key_file",
        help_heading = "Connection"
    )]
    pub admin_key: Option<String>,
    /// Seconds to wait for each answer.
    #[arg(
        long,
        global = true,
        value_name = "SECS",
        default_value_t = 60,
        value_parser = clap::value_parser!(u64).range(1..=86_400),
        help_heading = "Connection"
    )]
    pub timeout: u64,
    /// Retries on 429, 5xx and connection errors (exponential backoff with jitter).
    #[arg(
        long,
        global = true,
        value_name = "N",
        default_value_t = DEFAULT_MAX_RETRIES,
        value_parser = clap::value_parser!(u32).range(0..=10),
        help_heading = "Connection"
    )]
    pub max_retries: u32,
    /// Output format: a table that fits the terminal, the raw API objects, or CSV.
    #[arg(
        long,
        short = 'o',
        global = true,
        value_enum,
        default_value_t = Format::Table,
        help_heading = "Output"
    )]
    pub output: Format,
}

/// One Admin API request: path segments under the base URL, query pairs and an optional body.
#[derive(Debug, Clone)]
pub struct Call {
    method: Method,
    segments: Vec<String>,
    query: Vec<(String, String)>,
    body: Option<Value>,
    /// Set on Keyplane-only operations: names what the server may not support.
    extension: Option<&'static str>,
}

impl Call {
    fn new(method: Method, segments: &[&str]) -> Self {
        Self {
            method,
            segments: segments.iter().map(|s| (*s).to_owned()).collect(),
            query: Vec::new(),
            body: None,
            extension: None,
        }
    }

    pub fn get(segments: &[&str]) -> Self {
        Self::new(Method::GET, segments)
    }

    pub fn post(segments: &[&str], body: Value) -> Self {
        let mut call = Self::new(Method::POST, segments);
        call.body = Some(body);
        call
    }

    /// A POST without a body (`…/archive`).
    pub fn post_empty(segments: &[&str]) -> Self {
        Self::new(Method::POST, segments)
    }

    pub fn delete(segments: &[&str]) -> Self {
        Self::new(Method::DELETE, segments)
    }

    pub fn query(mut self, name: &str, value: impl ToString) -> Self {
        self.query.push((name.to_owned(), value.to_string()));
        self
    }

    pub fn query_opt(self, name: &str, value: Option<impl ToString>) -> Self {
        match value {
            Some(v) => self.query(name, v),
            None => self,
        }
    }

    /// Arrays the way the SDKs send them: `name[]=a&name[]=b`.
    pub fn query_list(mut self, name: &str, values: &[String]) -> Self {
        for v in values {
            self.query.push((format!("{name}[]"), v.clone()));
        }
        self
    }

    /// Replaces the value of `name` (the cursor of the next page).
    pub fn set_query(&mut self, name: &str, value: &str) {
        self.query.retain(|(k, _)| k != name);
        self.query.push((name.to_owned(), value.to_owned()));
    }

    pub fn extension(mut self, what: &'static str) -> Self {
        self.extension = Some(what);
        self
    }

    pub fn path(&self) -> String {
        format!("/{}", self.segments.join("/"))
    }

    fn describe(&self) -> String {
        format!("{} {}", self.method, self.path())
    }
}

pub struct Connection {
    http: reqwest::Client,
    base: Url,
    key: AdminKey,
    max_retries: u32,
    timeout: Duration,
}

/// What `GET /projects` and the like name by each path collection: (kind, the command that lists it).
fn collection(segment: &str, parent: Option<&str>) -> Option<(&'static str, &'static str)> {
    Some(match (segment, parent) {
        ("projects", _) => (
            "project",
            "`keyplane projects list --include-archived` lists the project ids",
        ),
        ("api_keys", Some("service_accounts")) => (
            "service account key",
            "`keyplane api-keys list --project P` lists the keys",
        ),
        ("api_keys", _) => (
            "API key",
            "`keyplane api-keys list --project P` lists the project's keys",
        ),
        ("service_accounts", _) => (
            "service account",
            "`keyplane service-accounts list --project P` lists the project's service accounts",
        ),
        ("admin_api_keys", _) => (
            "admin key",
            "`keyplane admin-keys list` lists the admin keys",
        ),
        ("users", Some(_)) => (
            "project user",
            "`keyplane project-users list --project P` lists the project's members",
        ),
        ("users", None) => (
            "user",
            "`keyplane users list` lists the organization's users",
        ),
        ("invites", _) => ("invite", "`keyplane invites list` lists the invites"),
        ("rate_limits", _) => (
            "rate limit",
            "`keyplane rate-limits list --project P` lists the rate limit ids",
        ),
        _ => return None,
    })
}

impl Connection {
    pub fn new(args: &ClientArgs) -> Result<Self, CliError> {
        let base = Url::parse(args.base_url.trim()).map_err(|e| {
            CliError::usage(format!("--base-url '{}' is not a URL: {e}", args.base_url)).hint(
                format!("for example {DEFAULT_BASE_URL} or https://api.openai.com/v1"),
            )
        })?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(CliError::usage(format!(
                "--base-url '{}' must be an http:// or https:// URL",
                args.base_url
            )));
        }
        let key = credentials::resolve(args.admin_key_file.as_deref(), args.admin_key.as_deref())?;
        if base.scheme() == "http" && !is_loopback(&base) {
            eprintln!("keyplane: warning: {base} is plain HTTP; the admin key travels unencrypted");
        }
        let timeout = Duration::from_secs(args.timeout);
        let http = reqwest::Client::builder()
            .user_agent(concat!("keyplane-cli/", env!("CARGO_PKG_VERSION")))
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| CliError::other(format!("cannot set up HTTP: {e}")))?;
        Ok(Self {
            http,
            base,
            key,
            max_retries: args.max_retries,
            timeout,
        })
    }

    fn url(&self, call: &Call) -> Result<Url, CliError> {
        if let Some(empty) = call.segments.iter().position(|s| s.trim().is_empty()) {
            let what = empty
                .checked_sub(1)
                .and_then(|i| call.segments.get(i))
                .and_then(|s| collection(s, None))
                .map_or("an", |(kind, _)| kind);
            return Err(CliError::usage(format!("expected a non-empty {what} id")));
        }
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| {
                CliError::usage(format!("--base-url '{}' cannot take a path", self.base))
            })?
            .pop_if_empty()
            .extend(&call.segments);
        if !call.query.is_empty() {
            url.query_pairs_mut().extend_pairs(&call.query);
        }
        Ok(url)
    }

    /// Sends `call`, retrying what is worth retrying, and returns the JSON answer.
    pub async fn send(&self, call: &Call) -> Result<Value, CliError> {
        let url = self.url(call)?;
        let mut retries = 0;
        loop {
            let mut request = self
                .http
                .request(call.method.clone(), url.clone())
                .bearer_auth(self.key.expose())
                .header(ACCEPT, "application/json");
            if let Some(body) = &call.body {
                request = request.json(body);
            }
            let failure = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let headers = response.headers().clone();
                    match response.text().await {
                        Ok(text) if status.is_success() => return parse_success(&text, call),
                        Ok(text) => Failure::Status {
                            status,
                            headers,
                            text,
                        },
                        Err(e) => Failure::Transport(e),
                    }
                }
                Err(e) => Failure::Transport(e),
            };
            let retry_in = match &failure {
                Failure::Status {
                    status, headers, ..
                } if retry::retryable_status(*status, headers) => {
                    match retry::server_delay(headers, SystemTime::now()) {
                        Some(asked) if asked > MAX_SERVER_DELAY => {
                            eprintln!(
                                "keyplane: {}: {status}; the server asks to wait {}s, \
                                 longer than the client waits; not retrying",
                                call.describe(),
                                asked.as_secs()
                            );
                            None
                        }
                        Some(asked) => Some((asked, " (as the server asked)")),
                        None => Some((retry::backoff(retries), "")),
                    }
                }
                Failure::Status { .. } => None,
                // A POST that may have reached the server is not repeated: it could create twice.
                Failure::Transport(e)
                    if e.is_connect() || (call.method != Method::POST && !e.is_builder()) =>
                {
                    Some((retry::backoff(retries), ""))
                }
                Failure::Transport(_) => None,
            };
            match retry_in {
                Some((delay, why)) if retries < self.max_retries => {
                    retries += 1;
                    eprintln!(
                        "keyplane: {}: {}; retry {retries} of {} in {:.1}s{why}",
                        call.describe(),
                        failure.short(self),
                        self.max_retries,
                        delay.as_secs_f64()
                    );
                    tokio::time::sleep(delay).await;
                }
                _ => {
                    return Err(match failure {
                        Failure::Status { status, text, .. } => {
                            self.explain(status, &text, call, retries)
                        }
                        Failure::Transport(e) => self.transport_error(&e, retries),
                    })
                }
            }
        }
    }

    fn transport_error(&self, e: &reqwest::Error, retries: u32) -> CliError {
        let after = after_retries(retries);
        if e.is_connect() {
            CliError::server(format!(
                "cannot connect to {} ({}){after}",
                self.base,
                root_cause(e)
            ))
            .hint(
                "is the server running there? Start one with `keyplane serve`, or point \
                 --base-url / OPENAI_BASE_URL at the Admin API (the URL ends in /v1)",
            )
        } else if e.is_timeout() {
            CliError::server(format!(
                "no answer from {} within {}s{after}",
                self.base,
                self.timeout.as_secs()
            ))
            .hint("raise --timeout, or check that the server is healthy")
        } else {
            CliError::server(format!(
                "the request to {} failed ({}){after}",
                self.base,
                root_cause(e)
            ))
        }
    }

    /// Turns an error answer into plain words and a hint.
    fn explain(&self, status: StatusCode, text: &str, call: &Call, retries: u32) -> CliError {
        let detail = serde_json::from_str::<ErrorBody>(text)
            .ok()
            .map(|b| b.error);
        let message = match &detail {
            Some(d) => d.message.clone(),
            None if text.trim().is_empty() => {
                status.canonical_reason().unwrap_or("no details").to_owned()
            }
            None => text.trim().chars().take(300).collect(),
        };
        let code = detail.as_ref().and_then(|d| d.code.clone());
        let param = detail.as_ref().and_then(|d| d.param.clone());
        let source = &self.key.source;
        let lower = message.to_lowercase();
        let unknown_route = status == StatusCode::METHOD_NOT_ALLOWED
            || (status == StatusCode::NOT_FOUND && message.starts_with("Invalid URL"));
        if let Some(what) = call.extension {
            let unknown_field = status == StatusCode::BAD_REQUEST
                && (lower.contains("unrecognized request argument")
                    || param.as_deref() == Some("scopes"));
            if unknown_route || unknown_field {
                return CliError::other(format!(
                    "this server does not support {what} (a Keyplane extension): {message}"
                ))
                .hint(format!(
                    "{} is not a Keyplane server, or an older one; OpenAI's Admin API does not \
                     offer this operation",
                    self.base
                ));
            }
        }
        match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                if code.as_deref() == Some("invalid_api_key") {
                    CliError::auth(format!(
                        "the admin key from {source} was rejected: {message}"
                    ))
                    .hint(format!(
                        "the key is revoked, expired or mistyped: check {source}; an owner \
                             can create a new one with `keyplane admin-keys create`"
                    ))
                } else if lower.contains("admin key") {
                    CliError::auth(format!(
                        "the key from {source} is not an admin key: {message}"
                    ))
                    .hint(
                        "the Admin API needs an admin key (sk-admin-…), not a project or service \
                         account key: `keyplane init` prints the first one, `keyplane admin-keys \
                         create` makes more",
                    )
                } else if lower.contains("missing scopes") {
                    CliError::auth(format!("the admin key may not do this: {message}")).hint(
                        "use an admin key with that scope; a read-only admin key \
                         (api.management.read) cannot make changes",
                    )
                } else {
                    CliError::auth(format!("not allowed ({status}): {message}"))
                }
            }
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED if unknown_route => {
                CliError::other(format!(
                    "this server does not offer {}: {message}",
                    call.describe()
                ))
                .hint(format!(
                    "check that --base-url ({}) is the API root ending in /v1; a Keyplane server \
                     may not serve this endpoint yet",
                    self.base
                ))
            }
            StatusCode::NOT_FOUND => {
                let err = CliError::not_found(format!("not found: {message}"));
                match referenced(call, &message) {
                    Some((_, hint)) => err.hint(hint),
                    None => err,
                }
            }
            StatusCode::TOO_MANY_REQUESTS => {
                CliError::server(format!("rate limited{}: {message}", after_retries(retries)))
                    .hint("wait a little and run it again, or raise --max-retries")
            }
            s if s.is_server_error() => CliError::server(format!(
                "the server failed ({status}){}: {message}",
                after_retries(retries)
            ))
            .hint("try again later; if it persists, check the server's logs"),
            _ => {
                let what = match param {
                    Some(p) => format!(" (parameter '{p}')"),
                    None => String::new(),
                };
                CliError::other(format!(
                    "the server refused the request ({status}){what}: {message}"
                ))
            }
        }
    }
}

enum Failure {
    Status {
        status: StatusCode,
        headers: HeaderMap,
        text: String,
    },
    Transport(reqwest::Error),
}

impl Failure {
    fn short(&self, conn: &Connection) -> String {
        match self {
            Failure::Status { status, .. } => format!("server answered {status}"),
            Failure::Transport(e) if e.is_connect() => {
                format!("cannot connect to {} ({})", conn.base, root_cause(e))
            }
            Failure::Transport(e) if e.is_timeout() => {
                format!("no answer within {}s", conn.timeout.as_secs())
            }
            Failure::Transport(e) => root_cause(e),
        }
    }
}

fn after_retries(retries: u32) -> String {
    match retries {
        0 => String::new(),
        1 => " after 1 retry".to_owned(),
        n => format!(" after {n} retries"),
    }
}

/// The id kind a 404 is most likely about: the innermost id the server's message names (a
/// message may name the parent too: "No user with id 'u' in project 'p'."), else the last id in
/// the path.
fn referenced(call: &Call, message: &str) -> Option<(&'static str, &'static str)> {
    let mut named = None;
    let mut found = None;
    let mut parent: Option<&str> = None;
    let mut segments = call.segments.iter().skip(1).peekable();
    while let Some(segment) = segments.next() {
        let Some(id) = segments.peek() else { break };
        if let Some(kind) = collection(segment, parent) {
            if message.contains(id.as_str()) {
                named = Some(kind);
            }
            found = Some(kind);
        }
        parent = Some(segment);
        segments.next();
    }
    named.or(found)
}

fn parse_success(text: &str, call: &Call) -> Result<Value, CliError> {
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(text).map_err(|_| {
        CliError::other(format!(
            "the answer to {} is not JSON: {}",
            call.describe(),
            text.trim().chars().take(120).collect::<String>()
        ))
        .hint("check that --base-url is the API root ending in /v1")
    })
}

/// The innermost cause of a transport error, in words ("connection refused").
fn root_cause(e: &reqwest::Error) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut last = e.to_string();
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return "connection refused".to_owned();
            }
        }
        last = err.to_string();
        source = err.source();
    }
    last
}

fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_404_is_about_the_innermost_id_its_message_names() {
        let call = Call::get(&["organization", "projects", "proj_a", "users", "user-1"]);
        let kind = |message: &str| referenced(&call, message).map(|(kind, _)| kind);
        assert_eq!(
            kind("No user with id 'user-1' in project 'proj_a'."),
            Some("project user")
        );
        assert_eq!(kind("No project with id 'proj_a'."), Some("project"));
        assert_eq!(kind("Not found."), Some("project user"));
    }
}
