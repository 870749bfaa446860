//! Extractors whose rejections are OpenAI-shaped 400/413 errors instead of axum's plain text.

use crate::error::ApiError;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

/// `Json<T>` with errors in our envelope.
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE
        || crate::silence::client_timed_out(&rejection)
    {
        return ApiError::unreadable_body(&rejection);
    }
    let message = match &rejection {
        JsonRejection::MissingJsonContentType(_) => {
            "Expected a JSON body with 'Content-Type: application/json'.".to_owned()
        }
        JsonRejection::JsonSyntaxError(_) => {
            format!(
                "We could not parse the JSON body of your request. {}",
                rejection.body_text()
            )
        }
        JsonRejection::JsonDataError(_) => {
            format!("Invalid request body: {}", rejection.body_text())
        }
        _ => format!("Invalid request body: {}", rejection.body_text()),
    };
    ApiError::invalid(field_of(&message).as_deref(), message)
}

/// Best effort: the field serde named in its message (`missing field `name``, `name: invalid type`).
fn field_of(message: &str) -> Option<String> {
    let tail = message.split("target type: ").nth(1)?;
    if let Some(rest) = tail.strip_prefix("missing field `") {
        return rest.split('`').next().map(str::to_owned);
    }
    if let Some(rest) = tail.strip_prefix("unknown field `") {
        return rest.split('`').next().map(str::to_owned);
    }
    let field = tail.split(": ").next()?;
    (!field.is_empty()
        && field
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.'))
    .then(|| field.to_owned())
}

impl<T: serde::Serialize> axum::response::IntoResponse for Json<T> {
    fn into_response(self) -> axum::response::Response {
        axum::Json(self.0).into_response()
    }
}

/// An optional JSON body: an empty body is `T::default()`.
pub struct OptionalJson<T>(pub T);

impl<S, T> FromRequest<S> for OptionalJson<T>
where
    T: DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let empty = req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .is_some_and(|v| v == "0");
        let typed = req.headers().contains_key(axum::http::header::CONTENT_TYPE);
        if empty || !typed {
            let bytes = axum::body::Bytes::from_request(req, state)
                .await
                .map_err(|e| ApiError::unreadable_body(&e))?;
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(OptionalJson(T::default()));
            }
            return serde_json::from_slice(&bytes)
                .map(OptionalJson)
                .map_err(|e| ApiError::invalid(None, format!("Invalid request body: {e}")));
        }
        Json::<T>::from_request(req, state)
            .await
            .map(|Json(v)| OptionalJson(v))
    }
}

/// `Path<T>` with errors in our envelope (e.g. invalid UTF-8 in an id is a 404 for that id).
pub struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(rejection) => Err(ApiError::NotFound(format!(
                "Invalid URL ({}): {}",
                crate::error::shown(parts.uri.path()),
                rejection.body_text()
            ))),
        }
    }
}

/// `Query<T>` with errors in our envelope.
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(rejection) => Err(query_rejection(rejection)),
        }
    }
}

fn query_rejection(rejection: QueryRejection) -> ApiError {
    ApiError::invalid(
        None,
        format!("Invalid query string: {}", rejection.body_text()),
    )
}

/// Every query pair, accepting both array styles: `name[]=a&name[]=b` and `name=a&name=b`,
/// and nested `name[gt]=1`.
pub struct QueryParams(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let raw = parts.uri.query().unwrap_or("");
        serde_urlencoded::from_str::<Vec<(String, String)>>(raw)
            .map(QueryParams)
            .map_err(|e| ApiError::invalid(None, format!("Invalid query string: {e}")))
    }
}

impl QueryParams {
    /// The single value of `name` (the last one if repeated).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of the array parameter `name` (`name`, `name[]` or `name[0]`).
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| {
                k == name
                    || k.strip_prefix(name).is_some_and(|rest| {
                        rest.starts_with('[')
                            && rest.ends_with(']')
                            && rest[1..rest.len() - 1].bytes().all(|b| b.is_ascii_digit())
                    })
            })
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// Parses an integer query parameter, naming it in the error.
pub fn int_param(name: &str, raw: Option<&str>) -> Result<Option<i64>, ApiError> {
    raw.map(|v| {
        v.trim().parse::<i64>().map_err(|_| {
            ApiError::invalid(
                Some(name),
                format!(
                    "Invalid '{name}': expected an integer, got '{}'.",
                    crate::error::shown(v)
                ),
            )
        })
    })
    .transpose()
}

/// Parses a boolean query parameter (`true`/`false`, `1`/`0`).
pub fn bool_param(name: &str, raw: Option<&str>) -> Result<Option<bool>, ApiError> {
    raw.map(|v| match v {
        "true" | "True" | "1" => Ok(true),
        "false" | "False" | "0" => Ok(false),
        _ => Err(ApiError::invalid(
            Some(name),
            format!(
                "Invalid '{name}': expected true or false, got '{}'.",
                crate::error::shown(v)
            ),
        )),
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_are_found_in_serde_messages() {
        assert_eq!(
            field_of("Failed to deserialize the JSON body into the target type: missing field `name` at line 1 column 2").as_deref(),
            Some("name")
        );
        assert_eq!(
            field_of("Failed to deserialize the JSON body into the target type: name: invalid type: integer `5`, expected a string at line 1 column 10").as_deref(),
            Some("name")
        );
        assert_eq!(field_of("nothing to see"), None);
    }

    #[test]
    fn both_array_styles_are_read() {
        let q = QueryParams(
            serde_urlencoded::from_str("ids%5B%5D=a&ids%5B%5D=b&ids=c&ids%5Bgt%5D=x&one=1&one=2")
                .unwrap(),
        );
        assert_eq!(q.all("ids"), vec!["a", "b", "c"]);
        assert_eq!(q.get("ids[gt]"), Some("x"));
        assert_eq!(q.get("one"), Some("2"));
        assert!(q.all("none").is_empty());
    }

    #[test]
    fn params_parse_or_name_themselves() {
        assert_eq!(int_param("limit", Some("5")).unwrap(), Some(5));
        assert_eq!(int_param("limit", None).unwrap(), None);
        let err = int_param("limit", Some("abc")).unwrap_err();
        assert!(matches!(err, ApiError::InvalidRequest { param: Some(ref p), .. } if p == "limit"));
        assert_eq!(
            bool_param("include_archived", Some("true")).unwrap(),
            Some(true)
        );
        assert!(bool_param("include_archived", Some("yes")).is_err());
    }
}
