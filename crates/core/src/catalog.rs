//! The built-in model catalog: OpenAI's current public models with default per-project rate
//! limits and list prices (USD per 1M tokens). Config may override or extend it.

#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    pub name: String,
    pub requests_per_minute: u64,
    pub tokens_per_minute: u64,
    pub requests_per_day: Option<u64>,
    pub images_per_minute: Option<u64>,
    /// USD per 1M input tokens.
    pub input_price: f64,
    /// USD per 1M cached input tokens.
    pub cached_input_price: f64,
    /// USD per 1M output tokens.
    pub output_price: f64,
    /// USD per image (image models).
    pub image_price: f64,
}

/// (name, rpm, tpm, rpd, images/min, input, cached input, output, per image)
type Row = (
    &'static str,
    u64,
    u64,
    Option<u64>,
    Option<u64>,
    f64,
    f64,
    f64,
    f64,
);

const BUILT_IN: &[Row] = &[
    (
        "gpt-4o",
        500,
        30_000,
        Some(10_000),
        None,
        2.50,
        1.25,
        10.00,
        0.0,
    ),
    (
        "gpt-4o-mini",
        500,
        200_000,
        Some(10_000),
        None,
        0.15,
        0.075,
        0.60,
        0.0,
    ),
    (
        "gpt-4.1",
        500,
        30_000,
        Some(10_000),
        None,
        2.00,
        0.50,
        8.00,
        0.0,
    ),
    (
        "gpt-4.1-mini",
        500,
        200_000,
        Some(10_000),
        None,
        0.40,
        0.10,
        1.60,
        0.0,
    ),
    (
        "gpt-4.1-nano",
        500,
        200_000,
        Some(10_000),
        None,
        0.10,
        0.025,
        0.40,
        0.0,
    ),
    (
        "o1",
        500,
        30_000,
        Some(10_000),
        None,
        15.00,
        7.50,
        60.00,
        0.0,
    ),
    ("o3", 500, 30_000, Some(10_000), None, 2.00, 0.50, 8.00, 0.0),
    (
        "o3-mini",
        500,
        200_000,
        Some(10_000),
        None,
        1.10,
        0.55,
        4.40,
        0.0,
    ),
    (
        "o4-mini",
        500,
        200_000,
        Some(10_000),
        None,
        1.10,
        0.275,
        4.40,
        0.0,
    ),
    (
        "text-embedding-3-small",
        3_000,
        1_000_000,
        None,
        None,
        0.02,
        0.02,
        0.0,
        0.0,
    ),
    (
        "text-embedding-3-large",
        3_000,
        1_000_000,
        None,
        None,
        0.13,
        0.13,
        0.0,
        0.0,
    ),
    (
        "text-embedding-ada-002",
        3_000,
        1_000_000,
        None,
        None,
        0.10,
        0.10,
        0.0,
        0.0,
    ),
    (
        "omni-moderation-latest",
        500,
        10_000,
        None,
        None,
        0.0,
        0.0,
        0.0,
        0.0,
    ),
    (
        "gpt-image-1",
        50,
        100_000,
        None,
        Some(5),
        5.00,
        1.25,
        40.00,
        0.04,
    ),
    ("dall-e-3", 50, 100_000, None, Some(5), 0.0, 0.0, 0.0, 0.04),
    ("whisper-1", 50, 100_000, None, None, 0.0, 0.0, 0.0, 0.0),
    ("tts-1", 50, 100_000, None, None, 0.0, 0.0, 0.0, 0.0),
];

/// The models a new project lists a rate limit for.
pub fn built_in() -> Vec<ModelSpec> {
    BUILT_IN
        .iter()
        .map(
            |&(name, rpm, tpm, rpd, ipm, input, cached, output, image)| ModelSpec {
                name: name.to_owned(),
                requests_per_minute: rpm,
                tokens_per_minute: tpm,
                requests_per_day: rpd,
                images_per_minute: ipm,
                input_price: input,
                cached_input_price: cached,
                output_price: output,
                image_price: image,
            },
        )
        .collect()
}

/// Limits for a model that is not in the catalog.
pub fn fallback(name: &str) -> ModelSpec {
    ModelSpec {
        name: name.to_owned(),
        requests_per_minute: 500,
        tokens_per_minute: 200_000,
        requests_per_day: None,
        images_per_minute: None,
        input_price: 0.0,
        cached_input_price: 0.0,
        output_price: 0.0,
        image_price: 0.0,
    }
}

/// The catalog entry for `model`: exact name, else the longest catalog name that prefixes it
/// (`gpt-4o-2024-08-06` → `gpt-4o`).
pub fn lookup<'a>(catalog: &'a [ModelSpec], model: &str) -> Option<&'a ModelSpec> {
    catalog.iter().find(|m| m.name == model).or_else(|| {
        catalog
            .iter()
            .filter(|m| {
                model.starts_with(&m.name) && model.as_bytes().get(m.name.len()) == Some(&b'-')
            })
            .max_by_key(|m| m.name.len())
    })
}

/// USD cost of a request's tokens under `spec`'s prices.
pub fn cost_usd(spec: &ModelSpec, input: u64, cached: u64, output: u64, images: u64) -> f64 {
    let uncached = input.saturating_sub(cached);
    (uncached as f64 * spec.input_price
        + cached as f64 * spec.cached_input_price
        + output as f64 * spec.output_price)
        / 1_000_000.0
        + images as f64 * spec.image_price
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_prefers_exact_then_longest_dated_prefix() {
        let c = built_in();
        assert_eq!(lookup(&c, "gpt-4o").unwrap().name, "gpt-4o");
        assert_eq!(
            lookup(&c, "gpt-4o-mini-2024-07-18").unwrap().name,
            "gpt-4o-mini"
        );
        assert_eq!(lookup(&c, "gpt-4o-2024-08-06").unwrap().name, "gpt-4o");
        assert!(lookup(&c, "gpt-4").is_none());
        assert!(lookup(&c, "gpt-4omega").is_none());
    }

    #[test]
    fn cost_uses_cached_price_for_cached_tokens() {
        let c = built_in();
        let m = lookup(&c, "gpt-4o").unwrap();
        // 1M input of which 0.5M cached, 1M output.
        let cost = cost_usd(m, 1_000_000, 500_000, 1_000_000, 0);
        assert!((cost - (1.25 + 0.625 + 10.0)).abs() < 1e-9, "{cost}");
    }
}
