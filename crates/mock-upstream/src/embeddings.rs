//! `POST /v1/embeddings`: one deterministic vector per input.

use crate::error::MockError;
use crate::input::{read_json, Prompt};
use axum::body::Body;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

/// The vector length when the request sets no `dimensions`.
const DEFAULT_DIMENSIONS: u64 = 8;
const MAX_DIMENSIONS: u64 = 4096;

#[derive(Debug, Deserialize)]
struct EmbeddingRequest {
    model: String,
    input: Prompt,
    #[serde(default)]
    dimensions: Option<u64>,
    #[serde(default)]
    encoding_format: Option<String>,
}

pub async fn create(body: Body) -> Result<Json<Value>, MockError> {
    let req: EmbeddingRequest = read_json(body).await?;
    let items = req.input.items();
    if items.is_empty() {
        return Err(MockError::invalid(
            Some("input"),
            "'$.input' is invalid: it must not be empty.",
        ));
    }
    let dimensions = req.dimensions.unwrap_or(DEFAULT_DIMENSIONS);
    if !(1..=MAX_DIMENSIONS).contains(&dimensions) {
        return Err(MockError::invalid(
            Some("dimensions"),
            format!("dimensions must be between 1 and {MAX_DIMENSIONS}."),
        ));
    }
    let base64 = match req.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(MockError::invalid(
                Some("encoding_format"),
                format!("'{other}' is not one of ['float', 'base64']."),
            ))
        }
    };
    let data: Vec<Value> = items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let vector = embedding(item, dimensions);
            let embedding = if base64 {
                json!(encode_base64(&vector))
            } else {
                json!(vector)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    let prompt_tokens = req.input.tokens().max(1);
    Ok(Json(json!({
        "object": "list",
        "data": data,
        "model": req.model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}
    })))
}

/// `dimensions` values in [-1, 1], multiples of 1/1024 so that the float and base64 encodings
/// agree exactly; a function of the input's text alone.
fn embedding(text: &str, dimensions: u64) -> Vec<f32> {
    // FNV-1a seeds a splitmix64 sequence.
    let mut state = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (0..dimensions)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            // 0..=2048 → -1.0..=1.0; exact in f32.
            let step = (z % 2049) as i32 - 1024;
            step as f32 / 1024.0
        })
        .collect()
}

/// Little-endian `f32`s in standard base64 with padding, as OpenAI's `encoding_format: base64`.
fn encode_base64(vector: &[f32]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes: Vec<u8> = vector.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let b = [
            group[0],
            group.get(1).copied().unwrap_or(0),
            group.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= group.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_alphabet_and_padding() {
        // 1.0f32 is 00 00 80 3f.
        assert_eq!(encode_base64(&[1.0]), "AACAPw==");
        assert_eq!(encode_base64(&[]), "");
    }

    #[test]
    fn embeddings_are_deterministic_and_bounded() {
        let a = embedding("hello world", 8);
        assert_eq!(a, embedding("hello world", 8));
        assert_ne!(a, embedding("hello there", 8));
        assert!(a.iter().all(|v| (-1.0..=1.0).contains(v)));
    }
}
