use keyplane_mock_upstream::MockUpstream;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::net::TcpStream;
use std::time::{Duration, Instant};

pub async fn spawn(record: usize) -> MockUpstream {
    keyplane_mock_upstream::spawn("127.0.0.1:0".parse().unwrap(), record)
        .await
        .unwrap()
}

/// A whole answer, the chunked encoding removed.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// When each body chunk arrived, counted from sending the request.
    pub chunk_times: Vec<Duration>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `data:` payloads of an SSE body, in order.
    pub fn sse_data(&self) -> Vec<String> {
        self.text()
            .split("\n\n")
            .filter_map(|event| {
                event
                    .lines()
                    .find_map(|l| l.strip_prefix("data: "))
                    .map(str::to_owned)
            })
            .collect()
    }

    /// The `event:` names of an SSE body, in order.
    pub fn sse_events(&self) -> Vec<String> {
        self.text()
            .split("\n\n")
            .filter_map(|event| {
                event
                    .lines()
                    .find_map(|l| l.strip_prefix("event: "))
                    .map(str::to_owned)
            })
            .collect()
    }
}

/// Sends one request (`Connection: close`) and reads the answer to its end.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Reply {
    let method = method.to_owned();
    let path = path.to_owned();
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
    let body = body.cloned();
    // A blocking socket on a blocking thread: no extra tokio features, exact arrival times.
    tokio::task::spawn_blocking(move || exchange(addr, &method, &path, &headers, body.as_ref()))
        .await
        .unwrap()
}

fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: Option<&Value>,
) -> Reply {
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        head.push_str("content-type: application/json\r\n");
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut stream = TcpStream::connect(addr).unwrap();
    let start = Instant::now();
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body.as_bytes()).unwrap();

    // Read everything, noting when each read returned.
    let mut raw = Vec::new();
    let mut arrivals = Vec::new();
    let mut buf = [0_u8; 16 * 1024];
    loop {
        let n = stream.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
        arrivals.push((raw.len(), start.elapsed()));
    }
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no end of head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("bad status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let body_start = split + 4;
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let arrived_at = |offset: usize| {
        arrivals
            .iter()
            .find(|(end, _)| *end > offset)
            .map_or(Duration::ZERO, |(_, t)| *t)
    };
    let (body, chunk_times) = if chunked {
        let mut body = Vec::new();
        let mut times = Vec::new();
        let mut at = body_start;
        loop {
            let line_end = at + raw[at..].windows(2).position(|w| w == b"\r\n").unwrap();
            let size_hex = String::from_utf8_lossy(&raw[at..line_end]).into_owned();
            let size =
                usize::from_str_radix(size_hex.split(';').next().unwrap().trim(), 16).unwrap();
            if size == 0 {
                break;
            }
            let data = line_end + 2;
            body.extend_from_slice(&raw[data..data + size]);
            times.push(arrived_at(data + size - 1));
            at = data + size + 2;
        }
        (body, times)
    } else {
        (raw[body_start..].to_vec(), vec![arrived_at(body_start)])
    };
    Reply {
        status,
        headers,
        body,
        chunk_times,
    }
}

pub async fn post(addr: SocketAddr, path: &str, body: &Value, headers: &[(&str, &str)]) -> Reply {
    send(addr, "POST", path, headers, Some(body)).await
}

pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    send(addr, "GET", path, &[], None).await
}
