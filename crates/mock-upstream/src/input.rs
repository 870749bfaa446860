//! Request bodies: the JSON reader and the input shapes several endpoints share.

use crate::error::MockError;
use crate::tokens::words;
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// Reads the body and parses it as `T`; a malformed body is a 400 in OpenAI's envelope.
pub async fn read_json<T: DeserializeOwned>(body: Body) -> Result<T, MockError> {
    let bytes = axum::body::to_bytes(body, crate::MAX_BODY_BYTES)
        .await
        .map_err(|e| MockError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: format!("Cannot read the request body: {e}"),
            kind: "invalid_request_error",
            param: None,
            code: Some("request_too_large"),
        })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        MockError::invalid(
            None,
            format!("We could not parse the JSON body of your request: {e}"),
        )
    })
}

/// A `u64` header, if present and well-formed.
pub fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// A message's `content`: a string, or an array of parts of which only `text` counts.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Debug, Deserialize)]
pub struct Part {
    #[serde(default)]
    pub text: Option<String>,
}

impl Content {
    pub fn words(&self) -> u64 {
        match self {
            Content::Text(s) => words(s),
            Content::Parts(parts) => parts
                .iter()
                .filter_map(|p| p.text.as_deref())
                .map(words)
                .sum(),
        }
    }
}

/// `prompt` (completions) and `input` (embeddings, moderations): text or token ids.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Prompt {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u64>),
    TokenLists(Vec<Vec<u64>>),
}

impl Prompt {
    /// Words of the text, or the number of token ids.
    pub fn tokens(&self) -> u64 {
        match self {
            Prompt::Text(s) => words(s),
            Prompt::Texts(v) => v.iter().map(|s| words(s)).sum(),
            Prompt::Tokens(v) => v.len() as u64,
            Prompt::TokenLists(v) => v.iter().map(|t| t.len() as u64).sum(),
        }
    }

    /// One string per input, as the seed of that input's embedding: the text, or the ids.
    pub fn items(&self) -> Vec<String> {
        let ids = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(" ");
        match self {
            Prompt::Text(s) => vec![s.clone()],
            Prompt::Texts(v) => v.clone(),
            Prompt::Tokens(v) => vec![ids(v)],
            Prompt::TokenLists(v) => v.iter().map(|t| ids(t)).collect(),
        }
    }
}

/// `stream_options`.
#[derive(Debug, Default, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: Option<bool>,
}

impl StreamOptions {
    pub fn include_usage(options: Option<&StreamOptions>) -> bool {
        options.and_then(|o| o.include_usage).unwrap_or(false)
    }
}
