//! `POST /v1/moderations`: nothing is ever flagged.

use crate::error::MockError;
use crate::input::read_json;
use crate::Seq;
use axum::body::Body;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Map, Value};

const CATEGORIES: [&str; 13] = [
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
];

#[derive(Debug, Deserialize)]
struct ModerationRequest {
    #[serde(default)]
    model: Option<String>,
    input: Value,
}

pub async fn create(
    Extension(Seq(seq)): Extension<Seq>,
    body: Body,
) -> Result<Json<Value>, MockError> {
    let req: ModerationRequest = read_json(body).await?;
    // A string or an array of strings has one result per string; an array of multimodal parts
    // is a single input.
    let inputs = match &req.input {
        Value::String(_) => 1,
        Value::Array(items) if items.iter().all(Value::is_string) => items.len(),
        Value::Array(items) if items.iter().all(Value::is_object) => 1,
        _ => 0,
    };
    if inputs == 0 {
        return Err(MockError::invalid(
            Some("input"),
            "'$.input' is invalid: expected a string, an array of strings or of content parts.",
        ));
    }
    let each = |v: Value| -> Value {
        Value::Object(
            CATEGORIES
                .iter()
                .map(|c| ((*c).to_owned(), v.clone()))
                .collect::<Map<_, _>>(),
        )
    };
    let result = json!({
        "flagged": false,
        "categories": each(json!(false)),
        "category_scores": each(json!(0.0)),
        "category_applied_input_types": each(json!(["text"])),
    });
    Ok(Json(json!({
        "id": format!("modr-mock{seq}"),
        "model": req.model.as_deref().unwrap_or("omni-moderation-latest"),
        "results": vec![result; inputs],
    })))
}
