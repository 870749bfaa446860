//! A real `keyplane serve` on port 0 (SQLite in a temporary directory), a scriptable loopback
//! fault server, and a runner for the `keyplane` binary.

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_keyplane");

/// What one run of the binary did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(self.code, 0, "expected success: {self:#?}");
        self
    }

    #[track_caller]
    pub fn code(self, expected: i32) -> Self {
        assert_eq!(self.code, expected, "unexpected exit code: {self:#?}");
        self
    }

    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {self:#?}"))
    }
}

/// Runs `keyplane args…` with a clean environment plus `envs`.
pub fn keyplane(args: &[&str], envs: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("OPENAI_ADMIN_KEY")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("OPENAI_API_KEY")
        .env_remove("COLUMNS")
        .env_remove("KEYPLANE_DATABASE_URL")
        .env_remove("KEYPLANE_LISTEN")
        .stdin(Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run keyplane");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A `keyplane serve` process with its own database and first admin key; killed on drop.
pub struct Keyplane {
    child: Child,
    pub base_url: String,
    pub admin_key: String,
    _dir: tempfile::TempDir,
}

impl Keyplane {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = format!("sqlite://{}/kp.db", dir.path().display());
        let init = keyplane(&["init", "--database-url", &db], &[]).ok();
        let admin_key = init.stdout.trim().to_owned();
        assert!(admin_key.starts_with("sk-admin-"), "{init:#?}");
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--database-url", &db])
            .env("KEYPLANE_LOG_FORMAT", "json")
            .env_remove("KEYPLANE_LISTEN")
            .env_remove("KEYPLANE_DATABASE_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn keyplane serve");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        // Reads the log until the listen line, then keeps draining so the pipe never fills.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let Ok(rec) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if rec.pointer("/fields/message").and_then(Value::as_str)
                    == Some("keyplane serving")
                {
                    if let (Some(tx), Some(listen)) = (
                        tx.take(),
                        rec.pointer("/fields/listen").and_then(Value::as_str),
                    ) {
                        let _ = tx.send(listen.to_owned());
                    }
                }
            }
        });
        let listen = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                panic!("keyplane serve did not log its listen address");
            }
        };
        let port = listen.rsplit(':').next().expect("port").to_owned();
        Self {
            child,
            base_url: format!("http://127.0.0.1:{port}/v1"),
            admin_key,
            _dir: dir,
        }
    }

    /// Runs a client command against this server with its admin key.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_env(args, &[])
    }

    pub fn run_env(&self, args: &[&str], envs: &[(&str, &str)]) -> Run {
        let mut all = vec![
            ("OPENAI_ADMIN_KEY", self.admin_key.as_str()),
            ("OPENAI_BASE_URL", self.base_url.as_str()),
        ];
        all.extend_from_slice(envs);
        keyplane(args, &all)
    }

    /// Runs with `--output json` and returns the document.
    #[track_caller]
    pub fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.extend(["--output", "json"]);
        self.run(&args).ok().json()
    }

    pub fn create_project(&self, name: &str) -> String {
        let p = self.json(&["projects", "create", "--name", name]);
        p["id"].as_str().expect("project id").to_owned()
    }

    /// Sends one gateway request with `key`, so that its `last_used_at` gets recorded.
    pub fn use_key(&self, key: &str) {
        let addr = self
            .base_url
            .trim_start_matches("http://")
            .trim_end_matches("/v1")
            .to_owned();
        let mut stream = TcpStream::connect(addr).expect("connect");
        write!(
            stream,
            "GET /v1/models HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {key}\r\n\
             Connection: close\r\n\r\n"
        )
        .expect("send");
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
    }
}

impl Drop for Keyplane {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A request the fault server received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    pub body: String,
    pub authorization: String,
}

impl Recorded {
    pub fn json_body(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// How the fault server answers: the request and how many came before it.
pub type Script =
    dyn Fn(&Recorded, usize) -> (u16, Vec<(&'static str, String)>, String) + Send + Sync;

/// A loopback axum server that records every request and answers as its script says.
pub struct FaultServer {
    pub base_url: String,
    pub requests: Arc<Mutex<Vec<Recorded>>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FaultServer {
    pub fn start(
        script: impl Fn(&Recorded, usize) -> (u16, Vec<(&'static str, String)>, String)
            + Send
            + Sync
            + 'static,
    ) -> Self {
        use axum::body::Body;
        use axum::extract::State;
        use axum::http::{HeaderMap, Method, Response, Uri};

        type Shared = (Arc<Mutex<Vec<Recorded>>>, Arc<Script>);
        async fn handle(
            State((log, script)): State<Shared>,
            method: Method,
            uri: Uri,
            headers: HeaderMap,
            body: String,
        ) -> Response<Body> {
            let rec = Recorded {
                method: method.to_string(),
                path: uri.path().to_owned(),
                query: uri.query().unwrap_or_default().to_owned(),
                body,
                authorization: headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned(),
            };
            let n = {
                let mut log = log.lock().unwrap();
                log.push(rec.clone());
                log.len() - 1
            };
            let (status, extra, body) = script(&rec, n);
            let mut response = Response::builder()
                .status(status)
                .header("content-type", "application/json");
            for (k, v) in extra {
                response = response.header(k, v);
            }
            response.body(Body::from(body)).unwrap()
        }

        let requests = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Script> = Arc::new(script);
        let state: Shared = (requests.clone(), script);
        let (addr_tx, addr_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let app = axum::Router::new().fallback(handle).with_state(state);
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stop_rx.await;
                    })
                    .await
                    .unwrap();
            });
        });
        let addr = addr_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        Self {
            base_url: format!("http://{addr}/v1"),
            requests,
            shutdown: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// Answers every request with `body` (200).
    pub fn always(body: Value) -> Self {
        let text = body.to_string();
        Self::start(move |_, _| (200, vec![], text.clone()))
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// Runs a client command against this server with a well-formed admin key.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_env(args, &[])
    }

    pub fn run_env(&self, args: &[&str], envs: &[(&str, &str)]) -> Run {
        let mut all = vec![
            ("OPENAI_ADMIN_KEY", "sk-admin-test"),
            ("OPENAI_BASE_URL", self.base_url.as_str()),
        ];
        all.extend_from_slice(envs);
        keyplane(args, &all)
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        if let Some(stop) = self.shutdown.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// An OpenAI-style error body.
pub fn error_body(message: &str, code: Option<&str>) -> String {
    serde_json::json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": code}})
        .to_string()
}

/// A list envelope.
pub fn list(data: Vec<Value>, has_more: bool) -> String {
    let last = data.last().and_then(|d| d.get("id")).cloned();
    let first = data.first().and_then(|d| d.get("id")).cloned();
    serde_json::json!({"object": "list", "data": data, "first_id": first, "last_id": last, "has_more": has_more})
        .to_string()
}

/// A port on which nothing listens.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    port
}

/// Polls `check` until it holds or `timeout` passes.
pub fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    check()
}

/// A project key value as Keyplane mints them.
pub fn is_project_key(s: &str) -> bool {
    s.starts_with("sk-proj-")
        && s.len() == "sk-proj-".len() + 58
        && s["sk-proj-".len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric())
}
