//! Reading `usage` out of provider responses, whole or streamed (SSE).

use bytes::BytesMut;
use memchr::memmem;
use serde::Deserialize;
use std::sync::LazyLock;

/// Token counts of one request as the provider reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input: u64,
    pub output: u64,
    pub cached: u64,
}

#[derive(Debug, Default, Deserialize)]
struct Details {
    cached_tokens: Option<u64>,
}

/// Both usage shapes: chat/completions/embeddings (`prompt_tokens`…) and Responses
/// (`input_tokens`…). Unknown fields are skipped without allocating.
#[derive(Debug, Default, Deserialize)]
struct WireUsage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    prompt_tokens_details: Option<Details>,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    input_tokens_details: Option<Details>,
}

impl From<WireUsage> for Usage {
    fn from(u: WireUsage) -> Self {
        let cached = |d: Option<Details>| d.and_then(|d| d.cached_tokens).unwrap_or(0);
        if u.input_tokens.is_some() {
            Usage {
                input: u.input_tokens.unwrap_or(0),
                output: u.output_tokens.unwrap_or(0),
                cached: cached(u.input_tokens_details),
            }
        } else {
            Usage {
                input: u.prompt_tokens.unwrap_or(0),
                output: u.completion_tokens.unwrap_or(0),
                cached: cached(u.prompt_tokens_details),
            }
        }
    }
}

#[derive(Debug, Deserialize)]
struct WireResponse {
    usage: Option<WireUsage>,
}

/// The parts of a response body (or SSE event) that carry usage.
#[derive(Debug, Deserialize)]
struct WireBody {
    usage: Option<WireUsage>,
    response: Option<WireResponse>,
    choices: Option<Vec<serde::de::IgnoredAny>>,
}

/// `usage` of a whole JSON response (top-level, or `response.usage`); `None` when absent or
/// the body is not JSON.
pub fn from_body(body: &[u8]) -> Option<Usage> {
    if let Some(usage) = top_level_usage_from_end(body) {
        return Some(usage);
    }
    let b: WireBody = serde_json::from_slice(body).ok()?;
    b.usage
        .or_else(|| b.response.and_then(|r| r.usage))
        .map(Usage::from)
}

/// The top-level `usage` object of a response, found from the end of the body: providers put
/// `usage` last or nearly so, and reading the whole response to reach it cost about a tenth of
/// the gateway's work per request. The last `"usage"` key is taken when what follows its value
/// closes exactly the outermost object (so it is not nested at any depth). `None` sends the
/// caller to the whole parse (usage absent, `null`, nested, or followed by a nested one).
fn top_level_usage_from_end(body: &[u8]) -> Option<Usage> {
    let at = FIND_USAGE_KEY_REV.rfind(body)?;
    // A quote after `{` or `,` opens a string in valid JSON (inside a string it would close
    // it, and `usage` could not follow): this is a key.
    if !matches!(body[..at].trim_ascii_end().last(), Some(b'{' | b',')) {
        return None;
    }
    let value = object_after_key(body, at)?;
    let mut values = serde_json::Deserializer::from_slice(value).into_iter::<WireUsage>();
    let usage = values.next()?.ok()?;
    closes_outermost(&value[values.byte_offset()..]).then(|| usage.into())
}

/// `"usage"`, as it appears as a key.
const USAGE_KEY: &[u8] = b"\"usage\"";

/// Searchers for the gateway's hot path, built once: `memmem::find` builds one per call, which
/// cost more than the search itself on a stream's short events.
static FIND_USAGE_KEY: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(USAGE_KEY));
static FIND_USAGE_KEY_REV: LazyLock<memmem::FinderRev<'static>> =
    LazyLock::new(|| memmem::FinderRev::new(USAGE_KEY));
static FIND_LF_BLANK_LINE: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"\n\n"));
static FIND_CRLF_BLANK_LINE: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"\r\n\r\n"));

/// The value of the [`USAGE_KEY`] found at `at` in `json`, from its opening brace, when it is
/// an object (a colon and the brace follow, whitespace allowed).
fn object_after_key(json: &[u8], at: usize) -> Option<&[u8]> {
    let value = json[at + USAGE_KEY.len()..]
        .trim_ascii_start()
        .strip_prefix(b":")?
        .trim_ascii_start();
    (value.first() == Some(&b'{')).then_some(value)
}

/// Whether `tail`, the JSON that follows an object's member, closes that object and nothing
/// comes after it: the object is then the outermost one.
fn closes_outermost(tail: &[u8]) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, &b) in tail.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' if depth > 0 => depth -= 1,
            b'}' => return tail[i + 1..].trim_ascii_start().is_empty(),
            b']' => return false,
            _ => {}
        }
    }
    false
}

/// Splits an SSE byte stream into events, notes the usage they carry, and drops the usage-only
/// chunk Keyplane asked for on the client's behalf. Events pass through as soon as complete.
pub struct SseObserver {
    buf: BytesMut,
    strip_usage_chunk: bool,
    pub usage: Option<Usage>,
}

impl SseObserver {
    pub fn new(strip_usage_chunk: bool) -> Self {
        Self {
            buf: BytesMut::new(),
            strip_usage_chunk,
            usage: None,
        }
    }

    /// Takes the next piece of the upstream stream and appends to `out` what to send the
    /// client now. Whole events are copied once, from the piece straight to `out`; only an
    /// event split across pieces waits in the observer's buffer.
    pub fn feed(&mut self, chunk: &[u8], out: &mut BytesMut) {
        if self.buf.is_empty() {
            let rest = self.pass_events(chunk, out);
            self.buf.extend_from_slice(rest);
        } else {
            self.buf.extend_from_slice(chunk);
            let pending = self.buf.split();
            let rest = self.pass_events(&pending, out);
            self.buf.extend_from_slice(rest);
        }
    }

    /// Appends the complete events of `data` that are kept to `out`; returns the incomplete
    /// rest.
    fn pass_events<'a>(&mut self, mut data: &'a [u8], out: &mut BytesMut) -> &'a [u8] {
        while let Some(end) = event_end(data) {
            let (event, rest) = data.split_at(end);
            if self.keep(event) {
                out.extend_from_slice(event);
            }
            data = rest;
        }
        data
    }

    /// The end of the stream: appends whatever is left (an unterminated last event) to `out`.
    pub fn finish(&mut self, out: &mut BytesMut) {
        let rest = self.buf.split();
        if !rest.is_empty() && self.keep(&rest) {
            out.extend_from_slice(&rest);
        }
    }

    fn keep(&mut self, event: &[u8]) -> bool {
        // Cheap test first: most chunks carry no usage object at all (at most `"usage":null`).
        if !has_usage_object(event) {
            return true;
        }
        let Some(data) = data_of(event) else {
            return true;
        };
        let Ok(body) = serde_json::from_slice::<WireBody>(&data) else {
            return true;
        };
        let usage_only = body.choices.as_ref().is_some_and(|c| c.is_empty());
        if let Some(u) = body.usage.or_else(|| body.response.and_then(|r| r.usage)) {
            self.usage = Some(u.into());
            if self.strip_usage_chunk && usage_only {
                return false;
            }
        }
        true
    }
}

/// Index just past the first blank line (`\n\n` or `\r\n\r\n`).
fn event_end(buf: &[u8]) -> Option<usize> {
    let lf = FIND_LF_BLANK_LINE.find(buf).map(|i| i + 2);
    // A CRLF blank line ending after the first LF one would not be the first: look before it.
    let crlf = FIND_CRLF_BLANK_LINE
        .find(&buf[..lf.unwrap_or(buf.len())])
        .map(|i| i + 4);
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Whether the event holds `"usage":` followed by an object (not `null`).
fn has_usage_object(event: &[u8]) -> bool {
    FIND_USAGE_KEY
        .find_iter(event)
        .any(|at| object_after_key(event, at).is_some())
}

/// The concatenated `data:` lines of one event.
fn data_of(event: &[u8]) -> Option<Vec<u8>> {
    let mut data = Vec::new();
    for line in event.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(rest) = line.strip_prefix(b"data:") {
            let rest = rest.strip_prefix(b" ").unwrap_or(rest);
            if !data.is_empty() {
                data.push(b'\n');
            }
            data.extend_from_slice(rest);
        }
    }
    (!data.is_empty()).then_some(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHUNK: &str = "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\n";
    const USAGE: &str = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"prompt_tokens_details\":{\"cached_tokens\":1}}}\n\n";
    const DONE: &str = "data: [DONE]\n\n";

    #[test]
    fn usage_chunk_is_read_and_stripped_across_chunk_boundaries() {
        let all = format!("{CHUNK}{USAGE}{DONE}");
        let mut o = SseObserver::new(true);
        let mut out = BytesMut::new();
        for piece in all.as_bytes().chunks(7) {
            o.feed(piece, &mut out);
        }
        o.finish(&mut out);
        assert_eq!(
            String::from_utf8(out.to_vec()).unwrap(),
            format!("{CHUNK}{DONE}")
        );
        assert_eq!(
            o.usage,
            Some(Usage {
                input: 3,
                output: 2,
                cached: 1
            })
        );
    }

    #[test]
    fn crlf_events_are_split_in_any_pieces() {
        let crlf = |e: &str| e.replace("\n\n", "\r\n\r\n");
        let all = format!("{}{}{}", crlf(CHUNK), crlf(USAGE), crlf(DONE));
        for size in [1, 5, 64, all.len()] {
            let mut o = SseObserver::new(true);
            let mut out = BytesMut::new();
            for piece in all.as_bytes().chunks(size) {
                o.feed(piece, &mut out);
            }
            o.finish(&mut out);
            assert_eq!(out, format!("{}{}", crlf(CHUNK), crlf(DONE)).as_bytes());
            assert_eq!(o.usage.map(|u| u.output), Some(2));
        }
        // A CRLF event followed by an LF one: the CRLF blank line comes first.
        assert_eq!(event_end(b"data: a\r\n\r\ndata: b\n\n"), Some(11));
        assert_eq!(event_end(b"data: a\n\ndata: b\r\n\r\n"), Some(9));
        assert_eq!(event_end(b"data: a\r\n"), None);
    }

    #[test]
    fn usage_chunk_passes_when_the_client_asked_for_it() {
        let all = format!("{CHUNK}{USAGE}{DONE}");
        let mut o = SseObserver::new(false);
        let mut out = BytesMut::new();
        o.feed(all.as_bytes(), &mut out);
        assert_eq!(out, all.as_bytes());
        assert_eq!(o.usage.map(|u| u.input), Some(3));
    }

    #[test]
    fn responses_api_usage_is_found_in_response_completed() {
        let ev = "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":5,\"output_tokens\":7,\"input_tokens_details\":{\"cached_tokens\":0}}}}\n\n";
        let mut o = SseObserver::new(true);
        let mut out = BytesMut::new();
        o.feed(ev.as_bytes(), &mut out);
        assert_eq!(out, ev.as_bytes());
        assert_eq!(
            o.usage,
            Some(Usage {
                input: 5,
                output: 7,
                cached: 0
            })
        );
    }

    #[test]
    fn only_usage_objects_are_parsed() {
        assert!(has_usage_object(br#"data: {"usage": {"prompt_tokens":1}}"#));
        assert!(has_usage_object(br#"data: {"x":"usage","usage":{}}"#));
        assert!(!has_usage_object(br#"data: {"usage":null}"#));
        assert!(!has_usage_object(br#"data: {"content":"the usage"}"#));
        assert!(!has_usage_object(b"\"usage\""));
    }

    #[test]
    fn whole_bodies() {
        let body = br#"{"id":"x","data":[1,2],"usage":{"prompt_tokens":4,"total_tokens":4}}"#;
        assert_eq!(
            from_body(body),
            Some(Usage {
                input: 4,
                output: 0,
                cached: 0
            })
        );
        let responses = br#"{"response":{"usage":{"input_tokens":2,"output_tokens":3}}}"#;
        assert_eq!(
            from_body(responses),
            Some(Usage {
                input: 2,
                output: 3,
                cached: 0
            })
        );
        assert_eq!(from_body(b"null"), None);
        assert_eq!(from_body(b"not json"), None);
        assert_eq!(from_body(br#"{"usage":null}"#), None);
        let both = br#"{"usage":null,"response":{"usage":{"input_tokens":1}}}"#;
        assert_eq!(from_body(both).map(|u| u.input), Some(1));
    }

    #[test]
    fn usage_read_from_the_end_is_what_the_whole_parse_reads() {
        let whole = |body: &[u8]| {
            serde_json::from_slice::<WireBody>(body)
                .ok()
                .and_then(|b| b.usage.or_else(|| b.response.and_then(|r| r.usage)))
                .map(Usage::from)
        };
        let bodies: &[&[u8]] = &[
            br#"{"id":"c","choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":5,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":2}},"service_tier":"default","system_fingerprint":"fp_1"}"#,
            b"{\n  \"object\": \"list\",\n  \"usage\" :\n {\"prompt_tokens\": 9, \"total_tokens\": 9}\n}\n",
            br#"{"usage":{"input_tokens":4,"output_tokens":6,"input_tokens_details":{"cached_tokens":1}},"output":[]}"#,
            // Found from the end but nested: the whole parse decides.
            br#"{"usage":{"prompt_tokens":1},"choices":[{"usage":{"prompt_tokens":99}}]}"#,
            br#"{"usage":{"prompt_tokens":1},"x":{"usage":{"prompt_tokens":99}}}"#,
            br#"{"choices":[{"usage":{"prompt_tokens":99}}]}"#,
            br#"[{"usage":{"prompt_tokens":99}}]"#,
            br#"{"response":{"usage":{"input_tokens":2,"output_tokens":3}}}"#,
            // Not keys, or not objects.
            br#"{"usage":{"prompt_tokens":1},"content":"usage"}"#,
            br#"{"usage":{"prompt_tokens":1},"tags":["a","usage"]}"#,
            br#"{"usage":{"prompt_tokens":1},"s":"{\"usage\":{\"prompt_tokens\":99}}"}"#,
            br#"{"usage":null}"#,
            br#"{"usage":7}"#,
            // A string after the usage object holding brackets and escaped quotes.
            br#"{"usage":{"prompt_tokens":8},"fp":"a\"}]\\"}"#,
            // Broken or trailing input.
            br#"{"usage":{"prompt_tokens":1}} {"#,
            br#"{"usage":{"prompt_tokens":1}"#,
            br#"{"usage":{"prompt_tokens":"x"}}"#,
            br#"{"usage":{"prompt_tokens":1}}]"#,
            b"",
        ];
        for body in bodies {
            assert_eq!(
                from_body(body),
                whole(body),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert!(top_level_usage_from_end(bodies[0]).is_some());
        assert!(top_level_usage_from_end(bodies[1]).is_some());
        assert!(top_level_usage_from_end(bodies[3]).is_none());
        assert!(top_level_usage_from_end(bodies[13]).is_some());
    }

    #[test]
    fn only_the_top_level_usage_counts() {
        // Keys named usage inside strings, arrays and nested objects come first.
        let body = br#" { "choices" : [ {"message":{"content":"say \"usage\":{\"prompt_tokens\":99} ]}","tool_calls":[{"function":{"arguments":"{\"usage\":1}"}}]},"usage":{"prompt_tokens":98}} ],
            "tools": [{"parameters":{"properties":{"usage":{"type":"object"}}}}],
            "usage" : { "prompt_tokens" : 4 , "completion_tokens" : 2 } , "after": true }"#;
        assert_eq!(
            from_body(body),
            Some(Usage {
                input: 4,
                output: 2,
                cached: 0
            })
        );
    }
}
