//! `GET /v1/models` and `GET /v1/models/{id}`.

use crate::error::MockError;
use axum::extract::Path;
use axum::Json;
use serde_json::{json, Value};

/// The models the mock lists: `(id, owned_by)`.
pub const MODELS: [(&str, &str); 8] = [
    ("gpt-4o", "system"),
    ("gpt-4o-mini", "system"),
    ("gpt-4.1", "system"),
    ("o3-mini", "system"),
    ("text-embedding-3-small", "system"),
    ("text-embedding-3-large", "system"),
    ("omni-moderation-latest", "system"),
    ("gpt-image-1", "system"),
];

/// A fixed date (2024-05-13), so answers do not change between runs.
const CREATED: u64 = 1_715_558_400;

fn model(id: &str, owned_by: &str) -> Value {
    json!({"id": id, "object": "model", "created": CREATED, "owned_by": owned_by})
}

pub async fn list() -> Json<Value> {
    let data: Vec<Value> = MODELS.iter().map(|(id, by)| model(id, by)).collect();
    Json(json!({"object": "list", "data": data}))
}

pub async fn retrieve(Path(id): Path<String>) -> Result<Json<Value>, MockError> {
    MODELS
        .iter()
        .find(|(known, _)| *known == id)
        .map(|(known, by)| Json(model(known, by)))
        .ok_or_else(|| {
            MockError::not_found(
                format!("The model '{id}' does not exist or you do not have access to it."),
                Some("model_not_found"),
            )
        })
}
