//! The token counting rule (documented at the crate root) and the generated text.

use crate::input::header_u64;
use axum::http::HeaderMap;
use serde_json::{json, Value};

/// Completion tokens when the request sets no limit, and the most ever generated.
pub const MAX_COMPLETION_TOKENS: u64 = 16;

/// The generated text's words, in order.
const WORDS: [&str; MAX_COMPLETION_TOKENS as usize] = [
    "mock", "reply", "from", "the", "keyplane", "mock", "upstream", "one", "two", "three", "four",
    "five", "six", "seven", "eight", "nine",
];

/// Whitespace-separated words of `s`.
pub fn words(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

/// The generated text of `n` words (`n` ≤ 16): "mock reply from the keyplane …".
pub fn completion_text(n: u64) -> String {
    completion_words(n).concat()
}

/// The generated text split into stream deltas: "mock", " reply", " from", ….
pub fn completion_words(n: u64) -> Vec<String> {
    WORDS
        .iter()
        .take(n.min(MAX_COMPLETION_TOKENS) as usize)
        .enumerate()
        .map(|(i, w)| {
            if i == 0 {
                (*w).to_owned()
            } else {
                format!(" {w}")
            }
        })
        .collect()
}

/// The counts of one answer.
#[derive(Debug, Clone, Copy)]
pub struct Counts {
    pub prompt: u64,
    pub completion: u64,
    pub cached: u64,
    /// The request's limit cut the text short.
    pub truncated: bool,
}

impl Counts {
    /// `counted_prompt` words (at least 1 token) and `min(limit, 16)` completion tokens;
    /// `x-mock-cached-tokens` sets the cached part of the prompt.
    pub fn new(counted_prompt: u64, limit: Option<u64>, headers: &HeaderMap) -> Self {
        let prompt = counted_prompt.max(1);
        let completion = limit.map_or(MAX_COMPLETION_TOKENS, |l| l.min(MAX_COMPLETION_TOKENS));
        Counts {
            prompt,
            completion,
            cached: header_u64(headers, "x-mock-cached-tokens").map_or(0, |c| c.min(prompt)),
            truncated: completion < MAX_COMPLETION_TOKENS,
        }
    }

    pub fn finish_reason(&self) -> &'static str {
        if self.truncated {
            "length"
        } else {
            "stop"
        }
    }

    /// `usage` of chat completions and completions.
    pub fn chat_usage(&self) -> Value {
        json!({
            "prompt_tokens": self.prompt,
            "completion_tokens": self.completion,
            "total_tokens": self.prompt + self.completion,
            "prompt_tokens_details": {"cached_tokens": self.cached, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0
            }
        })
    }

    /// `usage` of the Responses API.
    pub fn responses_usage(&self) -> Value {
        json!({
            "input_tokens": self.prompt,
            "input_tokens_details": {"cached_tokens": self.cached},
            "output_tokens": self.completion,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": self.prompt + self.completion
        })
    }
}
