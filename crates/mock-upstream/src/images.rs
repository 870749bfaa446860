//! `POST /v1/images/generations`: `n` copies of a 1×1 PNG.

use crate::error::MockError;
use crate::input::read_json;
use crate::tokens::{words, MAX_COMPLETION_TOKENS};
use axum::body::Body;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

/// A transparent 1×1 PNG.
const PIXEL_PNG_BASE64: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=";
const MAX_IMAGES: u64 = 10;

#[derive(Debug, Deserialize)]
struct ImageRequest {
    prompt: String,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    n: Option<u64>,
    #[serde(default)]
    response_format: Option<String>,
}

pub async fn generate(body: Body) -> Result<Json<Value>, MockError> {
    let req: ImageRequest = read_json(body).await?;
    let n = req.n.unwrap_or(1);
    if !(1..=MAX_IMAGES).contains(&n) {
        return Err(MockError::invalid(
            Some("n"),
            format!("n must be between 1 and {MAX_IMAGES}."),
        ));
    }
    let image = match req.response_format.as_deref() {
        Some("url") => json!({"url": "https://mock-upstream.invalid/image.png"}),
        None | Some("b64_json") => json!({"b64_json": PIXEL_PNG_BASE64}),
        Some(other) => {
            return Err(MockError::invalid(
                Some("response_format"),
                format!("'{other}' is not one of ['url', 'b64_json']."),
            ))
        }
    };
    let input = words(&req.prompt).max(1);
    let output = MAX_COMPLETION_TOKENS * n;
    Ok(Json(json!({
        "created": crate::now(),
        "model": req.model.as_deref().unwrap_or("dall-e-2"),
        "data": vec![image; n as usize],
        "usage": {
            "input_tokens": input,
            "input_tokens_details": {"text_tokens": input, "image_tokens": 0},
            "output_tokens": output,
            "total_tokens": input + output
        }
    })))
}
