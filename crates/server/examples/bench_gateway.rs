//! Gateway benchmark (not a test): added latency and throughput of `keyplane serve` in front of
//! `keyplane-mock-upstream`, against the mock called directly and nginx as a plain proxy.
//!
//! ```sh
//! cargo build --release -p keyplane-cli -p keyplane-mock-upstream -p keyplane-server --bins --example bench_gateway --example bare_proxy
//! target/release/examples/bench_gateway [--duration 10] [--rates 1000,5000] [--concurrency 64] \
//!     [--redis redis://127.0.0.1:6379/0] [--modes plain,stream] [--timeline]
//!     [--keyplane-workers N] [--keyplane-only] [--no-max] [--rounds N]
//!     [--only "nginx proxy;keyplane"] [--keyplane-wrap "valgrind --tool=callgrind"]
//! ```
//! With `--redis`, a second Keyplane on the same database keeps its rate-limit and spend
//! counters in that Redis (`KEYPLANE_REDIS_URL`, keys under `kpbench-<pid>`, deleted at the end)
//! and is measured in the same run as the in-process one.
//! Needs `nginx` on PATH (`apt-get install nginx`). Seeds 10,000 keys over 100 projects with
//! limits high enough never to refuse (every check still runs), then for each target runs
//! open-loop fixed-rate phases and a closed-loop max-throughput phase, non-streaming and
//! streaming. Latency is measured from the moment each request is sent. Each fixed-rate phase
//! also reports the CPU time the target's process (all its threads; nginx's workers) used per
//! request, from `/proc`: on a host whose CPU time is stolen unevenly it varies far less than
//! the p99, and it is what the maximum throughput follows.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::disallowed_methods
)]

#[path = "common/mod.rs"]
mod common;
use common::{arg, flag};
use keyplane_core::ids::{OrgId, ProjectId, UserId};
use keyplane_core::keys::{KeyHasher, KeyKind};
use keyplane_core::model::{KeyOwnerId, NewApiKey, OrgRole, Organization, Project, User};
use keyplane_core::policy::RateLimitOverride;
use keyplane_core::ports::{KeyStore, OrgStore, PolicyStore, ProjectStore};
use keyplane_core::scopes::Permissions;
use keyplane_store::{Db, PoolSettings, Store};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PROJECTS: usize = 100;
const KEYS_PER_PROJECT: usize = 100;
const MODEL: &str = "gpt-4o-mini";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_port(port: u16) {
    for _ in 0..2000 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("port {port} never opened");
}

/// CPU time (user + system, in seconds) used so far by process `pid`, all its threads, and
/// its child processes (nginx's workers), from `/proc`. Zero where `/proc` is absent.
fn cpu_secs(pid: u32) -> f64 {
    let ticks = |stat: &str| -> Option<(u64, u32)> {
        // Fields after the command name, which is in parentheses and may hold spaces.
        let rest: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ppid = rest.get(1)?.parse().ok()?;
        Some((
            rest.get(11)?.parse::<u64>().ok()? + rest.get(12)?.parse::<u64>().ok()?,
            ppid,
        ))
    };
    let mut total = 0;
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(p) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
                continue;
            };
            if let Some((t, ppid)) = ticks(&stat) {
                if p == pid || ppid == pid {
                    total += t;
                }
            }
        }
    }
    total as f64 / rustix::param::clock_ticks_per_second() as f64
}

struct Proc(Child);
impl Drop for Proc {
    /// SIGTERM first, so nginx's master stops its workers (a killed master leaves them
    /// running), then SIGKILL after 5 s.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn seed(db_url: &str) -> Vec<String> {
    let db = Db::connect(db_url, &PoolSettings::default()).await.unwrap();
    db.migrate().await.unwrap();
    let store = Store::new(db);
    let hasher = KeyHasher::new(None);
    let owner = User {
        id: UserId::generate(),
        email: "bench@example.com".into(),
        name: "bench".into(),
        role: OrgRole::Owner,
        added_at: 1,
    };
    let key = |kind, project: Option<ProjectId>| {
        let (plain, m) = hasher.generate(kind);
        (
            plain.expose().to_owned(),
            NewApiKey {
                id: m.id,
                kind,
                project_id: project,
                name: "bench".into(),
                redacted_value: m.redacted_value,
                hash: m.hash,
                permissions: Permissions::All,
                owner: KeyOwnerId::User(owner.id.clone()),
                created_at: 1,
                expires_at: None,
            },
        )
    };
    let (_, admin) = key(KeyKind::Admin, None);
    let org = Organization {
        id: OrgId::generate().to_string(),
        name: "bench".into(),
        created_at: 1,
    };
    store.initialize(&org, &owner, &admin, &[]).await.unwrap();
    let mut keys = Vec::new();
    for p in 0..PROJECTS {
        let project = Project {
            id: ProjectId::generate(),
            name: format!("bench-{p}"),
            created_at: 1,
            archived_at: None,
            external_key_id: None,
            residency: None,
        };
        store
            .create_project(&project, &owner.id, &[])
            .await
            .unwrap();
        let unlimited = RateLimitOverride {
            model: MODEL.into(),
            max_requests_per_1_minute: Some(100_000_000),
            max_tokens_per_1_minute: Some(1_000_000_000),
            max_requests_per_1_day: Some(1_000_000_000),
            ..Default::default()
        };
        store
            .set_rate_limit(&project.id, &unlimited, &[])
            .await
            .unwrap();
        for _ in 0..KEYS_PER_PROJECT {
            let (plain, k) = key(KeyKind::Project, Some(project.id.clone()));
            store.insert_key(&k, &[]).await.unwrap();
            keys.push(plain);
        }
    }
    store.db().close().await;
    keys
}

#[derive(Clone)]
struct Target {
    name: &'static str,
    url: String,
    /// The process that serves it, whose CPU time each phase reports.
    pid: u32,
    keyed: bool,
}

fn body(stream: bool) -> bytes::Bytes {
    bytes::Bytes::from(format!(
        r#"{{"model":"{MODEL}","messages":[{{"role":"user","content":"hello from the benchmark"}}],"max_tokens":8,"stream":{stream}}}"#
    ))
}

async fn one(client: &reqwest::Client, t: &Target, key: &str, body: bytes::Bytes) -> bool {
    let mut req = client
        .post(&t.url)
        .header("content-type", "application/json")
        .body(body);
    if t.keyed {
        req = req.bearer_auth(key);
    }
    match req.send().await {
        Ok(r) => {
            let status = r.status();
            if !status.is_success() && std::env::var_os("KEYPLANE_BENCH_LOG").is_some() {
                eprintln!("{} answered {status}", t.name);
            }
            status.is_success() && r.bytes().await.is_ok()
        }
        Err(e) => {
            if std::env::var_os("KEYPLANE_BENCH_LOG").is_some() {
                eprintln!("{}: {e}", t.name);
            }
            false
        }
    }
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e3
}

struct RateResult {
    achieved: f64,
    p50: f64,
    p99: f64,
    errors: usize,
    /// CPU time the target's process used per request (µs), all its threads included: less
    /// noisy than latency on a host whose CPU time is stolen unevenly.
    cpu_us: f64,
    /// p99 of the requests sent in each second of the phase.
    p99_by_second: Vec<f64>,
}

async fn fixed_rate(
    client: &reqwest::Client,
    t: &Target,
    keys: &Arc<Vec<String>>,
    rate: u64,
    secs: u64,
    stream: bool,
) -> RateResult {
    let total = rate * secs;
    let cpu_before = cpu_secs(t.pid);
    let start = Instant::now();
    let mut handles = Vec::with_capacity(total as usize);
    let mut sent = 0u64;
    while sent < total {
        let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
        while sent < total.min(due + 1) {
            let (c, t, keys) = (client.clone(), t.clone(), keys.clone());
            let i = sent as usize;
            handles.push(tokio::spawn(async move {
                let begin = Instant::now();
                let ok = one(&c, &t, &keys[i % keys.len()], body(stream)).await;
                (begin.elapsed(), ok, begin.duration_since(start).as_secs())
            }));
            sent += 1;
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    let mut lat = Vec::with_capacity(handles.len());
    let mut by_second: Vec<Vec<Duration>> = vec![Vec::new(); secs as usize + 1];
    let mut errors = 0;
    for h in handles {
        let (d, ok, second) = h.await.unwrap();
        if ok {
            lat.push(d);
            by_second[(second as usize).min(secs as usize)].push(d);
        } else {
            errors += 1;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    lat.sort();
    let cpu_us = (cpu_secs(t.pid) - cpu_before) * 1e6 / total as f64;
    RateResult {
        cpu_us,
        achieved: lat.len() as f64 / elapsed,
        p50: pct(&lat, 0.5),
        p99: pct(&lat, 0.99),
        errors,
        p99_by_second: by_second
            .into_iter()
            .filter(|s| !s.is_empty())
            .map(|mut s| {
                s.sort();
                pct(&s, 0.99)
            })
            .collect(),
    }
}

async fn max_rps(
    client: &reqwest::Client,
    t: &Target,
    keys: &Arc<Vec<String>>,
    concurrency: usize,
    secs: u64,
    stream: bool,
) -> (f64, usize) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let (c, t, keys) = (client.clone(), t.clone(), keys.clone());
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut err, mut i) = (0usize, 0usize, w);
            while Instant::now() < deadline {
                if one(&c, &t, &keys[i % keys.len()], body(stream)).await {
                    ok += 1;
                } else {
                    err += 1;
                }
                i += concurrency;
            }
            (ok, err)
        }));
    }
    let (mut ok, mut err) = (0, 0);
    for t in tasks {
        let (o, e) = t.await.unwrap();
        ok += o;
        err += e;
    }
    (ok as f64 / start.elapsed().as_secs_f64(), err)
}

fn nginx(dir: &Path, port: u16, upstream_port: u16) -> Proc {
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "worker_processes auto;\npid {dir}/nginx.pid;\nerror_log {dir}/nginx-error.log warn;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {dir};\n  proxy_temp_path {dir};\n\
             upstream mock {{ server 127.0.0.1:{upstream_port}; keepalive 256; }}\n\
             server {{\n    listen 127.0.0.1:{port};\n    location / {{\n      proxy_pass http://mock;\n\
             proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n      proxy_buffering off;\n    }}\n  }}\n}}\n",
            dir = dir.display()
        ),
    )
    .unwrap();
    let child = Command::new("nginx")
        .args(["-c", conf.to_str().unwrap(), "-g", "daemon off;"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx on PATH (apt-get install nginx)");
    wait_port(port);
    Proc(child)
}

#[tokio::main]
async fn main() {
    let secs: u64 = arg("--duration").map(|s| s.parse().unwrap()).unwrap_or(10);
    let rates: Vec<u64> = arg("--rates")
        .unwrap_or_else(|| "1000,5000".into())
        .split(',')
        .filter(|r| !r.is_empty())
        .map(|r| r.parse().unwrap())
        .collect();
    // `--modes stream` measures streaming only; `--timeline` prints each phase's p99 per second.
    let modes = arg("--modes").unwrap_or_else(|| "plain,stream".into());
    let timeline = flag("--timeline");
    // `--keyplane-workers N`: Keyplane's serving threads (default: one per core).
    let keyplane_workers = arg("--keyplane-workers");
    // `--keyplane-only`: Keyplane's phases only (soak runs; add `--no-max` to skip the maxima).
    let no_max = flag("--no-max");
    let keyplane_only = flag("--keyplane-only");
    // `--rounds N`: each fixed rate and the maxima N times, targets taking turns, reported as
    // medians (on a host whose CPU time is stolen unevenly, one round can favour any target).
    let rounds: usize = arg("--rounds").map(|s| s.parse().unwrap()).unwrap_or(1);
    let concurrency: usize = arg("--concurrency")
        .map(|s| s.parse().unwrap())
        .unwrap_or(64);
    let bin_dir: PathBuf = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();

    let dir = std::env::temp_dir().join(format!("kp_bench_gw_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db_url = format!("sqlite://{}", dir.join("kp.db").display());
    let t = Instant::now();
    let keys = Arc::new(seed(&db_url).await);
    println!(
        "seeded {} keys over {PROJECTS} projects in {:.1} s",
        keys.len(),
        t.elapsed().as_secs_f64()
    );

    let mut mock = Command::new(bin_dir.join("keyplane-mock-upstream"))
        .args(["--listen", "127.0.0.1:0", "--record", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("target/release/keyplane-mock-upstream");
    let mut line = String::new();
    BufReader::new(mock.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let mock_url = line.trim().trim_start_matches("listening on ").to_owned();
    let mock_port: u16 = mock_url.rsplit(':').next().unwrap().parse().unwrap();
    let _mock = Proc(mock);

    let nginx_port = free_port();
    let _nginx = nginx(&dir, nginx_port, mock_port);

    let redis_url = arg("--redis");
    let redis_prefix = format!("kpbench-{}", std::process::id());
    let wrap = arg("--keyplane-wrap");
    let keyplane = |redis: Option<&str>| {
        let port = free_port();
        // `--keyplane-wrap "valgrind --tool=callgrind"`: Keyplane runs under that command.
        let mut cmd = match &wrap {
            Some(w) if !w.trim().is_empty() => {
                let mut parts = w.split_whitespace();
                let mut c = Command::new(parts.next().unwrap_or_default());
                c.args(parts).arg(bin_dir.join("keyplane"));
                c
            }
            _ => Command::new(bin_dir.join("keyplane")),
        };
        cmd.args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--database-url",
            &db_url,
        ])
        .env("KEYPLANE_UPSTREAM_URL", format!("{mock_url}/v1"))
        .env("KEYPLANE_UPSTREAM_API_KEY", "sk-upstream-bench")
        // `KEYPLANE_BENCH_RUST_LOG`: another filter for that log (`sqlx::query=debug`: every query).
        .env(
            "RUST_LOG",
            std::env::var("KEYPLANE_BENCH_RUST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        // `KEYPLANE_BENCH_LOG=file`: Keyplane's warnings and errors, to see why requests failed.
        .stderr(match std::env::var_os("KEYPLANE_BENCH_LOG") {
            Some(path) => Stdio::from(std::fs::File::create(path).unwrap()),
            None => Stdio::null(),
        });
        if let Some(n) = &keyplane_workers {
            cmd.env("KEYPLANE_WORKERS", n);
        }
        if let Some(url) = redis {
            cmd.env("KEYPLANE_REDIS_URL", url)
                .env("KEYPLANE_REDIS_PREFIX", &redis_prefix);
        }
        let child = cmd.spawn().expect("target/release/keyplane");
        wait_port(port);
        (port, Proc(child))
    };
    let (kp_port, _kp) = keyplane(None);
    let with_redis = redis_url.as_deref().map(|url| keyplane(Some(url)));
    // The stack's floor, when built (`--example bare_proxy`): Keyplane's server and client
    // with none of its checks.
    let bare = |client: &str| {
        let port = free_port();
        let child = Command::new(bin_dir.join("examples/bare_proxy"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--upstream", &mock_url, "--client", client])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        wait_port(port);
        Some((port, Proc(child)))
    };
    let bare_reqwest = bare("reqwest");
    let bare_hyper = bare("hyper");
    let mut targets = vec![
        Target {
            name: "mock direct",
            url: format!("{mock_url}/v1/chat/completions"),
            pid: _mock.0.id(),
            keyed: false,
        },
        Target {
            name: "nginx proxy",
            url: format!("http://127.0.0.1:{nginx_port}/v1/chat/completions"),
            pid: _nginx.0.id(),
            keyed: false,
        },
    ];
    for (name, bare) in [
        ("bare axum + reqwest", &bare_reqwest),
        ("bare axum + hyper client", &bare_hyper),
    ] {
        if let Some((port, proc)) = bare {
            targets.push(Target {
                name,
                url: format!("http://127.0.0.1:{port}/v1/chat/completions"),
                pid: proc.0.id(),
                keyed: false,
            });
        }
    }
    targets.push(Target {
        name: "keyplane",
        url: format!("http://127.0.0.1:{kp_port}/v1/chat/completions"),
        pid: _kp.0.id(),
        keyed: true,
    });
    if let Some((port, proc)) = &with_redis {
        targets.push(Target {
            name: "keyplane + redis",
            url: format!("http://127.0.0.1:{port}/v1/chat/completions"),
            pid: proc.0.id(),
            keyed: true,
        });
    }
    // `--only "nginx proxy;keyplane"`: those targets only (and the mock, which every added
    // latency is measured against).
    if let Some(only) = arg("--only") {
        let only: Vec<&str> = only.split(';').map(str::trim).collect();
        targets.retain(|t| t.name == "mock direct" || only.contains(&t.name));
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(4096)
        .tcp_nodelay(true)
        .build()
        .unwrap();
    // Warm up every target (and Keyplane's key cache: one request per key).
    for t in &targets {
        max_rps(&client, t, &keys, concurrency, 2, false).await;
    }
    for t in targets.iter().filter(|t| t.keyed) {
        for k in keys.iter() {
            one(&client, t, k, body(false)).await;
        }
    }

    for stream in [false, true] {
        if !modes.contains(if stream { "stream" } else { "plain" }) {
            continue;
        }
        println!(
            "\n## {} ({secs} s per phase, {concurrency} connections for max)",
            if stream { "streaming" } else { "non-streaming" }
        );
        println!("| target | rate | achieved rps | p50 ms | p99 ms | errors | cpu µs/req |");
        println!("|---|---|---|---|---|---|---|");
        // Fixed rates: with `--rounds N`, the targets take turns N times and each target's
        // median p50 / p99 is reported; Keyplane's added latency is the median of the rounds'
        // differences with the mock measured in the same round.
        for &rate in &rates {
            let measured: Vec<(usize, &Target)> = targets
                .iter()
                .enumerate()
                .filter(|(_, t)| !keyplane_only || t.keyed)
                .collect();
            let mut seen: Vec<Vec<(f64, f64)>> = vec![Vec::new(); targets.len()];
            let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); targets.len()];
            for round in 0..rounds {
                for &(ti, t) in &measured {
                    let r = fixed_rate(&client, t, &keys, rate, secs, stream).await;
                    let label = if rounds > 1 {
                        format!("{rate}, round {}", round + 1)
                    } else {
                        rate.to_string()
                    };
                    println!(
                        "| {} | {label} | {:.0} | {:.3} | {:.3} | {} | {:.0} |",
                        t.name, r.achieved, r.p50, r.p99, r.errors, r.cpu_us
                    );
                    if timeline {
                        let per_second: Vec<String> =
                            r.p99_by_second.iter().map(|p| format!("{p:.1}")).collect();
                        println!("|  p99 ms per second: {} |", per_second.join(" "));
                    }
                    seen[ti].push((r.p50, r.p99));
                    cpu[ti].push(r.cpu_us);
                }
            }
            let median = |v: Vec<f64>| {
                let mut v = v;
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            };
            if rounds > 1 {
                for &(ti, t) in &measured {
                    println!(
                        "| {} | {rate}, median of {rounds} | | {:.3} | {:.3} | | {:.0} |",
                        t.name,
                        median(seen[ti].iter().map(|s| s.0).collect()),
                        median(seen[ti].iter().map(|s| s.1).collect()),
                        median(cpu[ti].clone())
                    );
                }
            }
            if seen[0].is_empty() {
                continue;
            }
            for &(ti, t) in measured.iter().filter(|(_, t)| t.keyed) {
                let added = |f: fn(&(f64, f64)) -> f64| {
                    median(
                        seen[ti]
                            .iter()
                            .zip(&seen[0])
                            .map(|(k, m)| f(k) - f(m))
                            .collect(),
                    )
                };
                let label = if rounds > 1 {
                    format!("{rate}, median of {rounds} rounds' differences")
                } else {
                    rate.to_string()
                };
                println!(
                    "| {} added vs direct | {label} | | {:+.3} | {:+.3} | | |",
                    t.name,
                    added(|s| s.0),
                    added(|s| s.1)
                );
            }
        }
        if no_max {
            continue;
        }
        let measured: Vec<&Target> = targets
            .iter()
            .filter(|t| !keyplane_only || t.keyed)
            .collect();
        let mut runs: Vec<Vec<f64>> = vec![Vec::new(); measured.len()];
        for round in 0..rounds {
            for (i, t) in measured.iter().enumerate() {
                let (rps, errors) = max_rps(&client, t, &keys, concurrency, secs, stream).await;
                runs[i].push(rps);
                let label = if rounds > 1 {
                    format!("max, round {}", round + 1)
                } else {
                    "max".to_owned()
                };
                println!("| {} | {label} | {rps:.0} | | | {errors} | |", t.name);
            }
        }
        let maxes: Vec<f64> = runs
            .iter()
            .map(|r| {
                let mut r = r.clone();
                r.sort_by(f64::total_cmp);
                r[r.len() / 2]
            })
            .collect();
        if rounds > 1 {
            for (t, rps) in measured.iter().zip(&maxes) {
                println!(
                    "| {} | max, median of {rounds} | {rps:.0} | | | | |",
                    t.name
                );
            }
        }
        let Some(ng) = measured.iter().position(|t| t.name == "nginx proxy") else {
            continue;
        };
        for (i, t) in measured.iter().enumerate().skip(ng + 1) {
            let per_round: Vec<String> = runs[i]
                .iter()
                .zip(&runs[ng])
                .map(|(k, n)| format!("{:.0}%", 100.0 * k / n))
                .collect();
            println!(
                "{} max throughput = {:.0}% of nginx's (round by round: {})",
                t.name,
                100.0 * maxes[i] / maxes[ng],
                per_round.join(" ")
            );
        }
    }
    if let Some(url) = &redis_url {
        // The benchmark's keys only (never FLUSHALL: the Redis may be shared).
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{redis_prefix}:*"))
            .query_async(&mut conn)
            .await
            .unwrap();
        for chunk in keys.chunks(1000) {
            let _: () = redis::cmd("DEL")
                .arg(chunk)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
