//! What each data-plane route is: the scope it needs and the usage family it meters into.

/// Usage families, as `/v1/organization/usage/{family}` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UsageFamily {
    Completions,
    Embeddings,
    Moderations,
    Images,
    AudioSpeeches,
    AudioTranscriptions,
    /// Metered as requests only (files, batches, assistants, …).
    Other,
}

impl UsageFamily {
    pub const REPORTED: [UsageFamily; 6] = [
        UsageFamily::Completions,
        UsageFamily::Embeddings,
        UsageFamily::Moderations,
        UsageFamily::Images,
        UsageFamily::AudioSpeeches,
        UsageFamily::AudioTranscriptions,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            UsageFamily::Completions => "completions",
            UsageFamily::Embeddings => "embeddings",
            UsageFamily::Moderations => "moderations",
            UsageFamily::Images => "images",
            UsageFamily::AudioSpeeches => "audio_speeches",
            UsageFamily::AudioTranscriptions => "audio_transcriptions",
            UsageFamily::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::REPORTED.into_iter().find(|f| f.as_str() == s)
    }
}

/// The scope a request needs, and how it is metered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    pub scope: &'static str,
    pub family: UsageFamily,
}

/// Classifies a data-plane request by method and path (below `/v1`). Unknown routes need
/// `model.request` for writes and `api.model.read` for reads.
pub fn classify(method: &str, path: &str) -> Endpoint {
    let read = matches!(method, "GET" | "HEAD");
    let seg = path.trim_start_matches('/');
    let rw = |base: &'static [&'static str; 2]| if read { base[0] } else { base[1] };
    let (scope, family) = if seg.starts_with("chat/completions") || seg.starts_with("completions") {
        ("model.request", UsageFamily::Completions)
    } else if seg.starts_with("embeddings") {
        ("model.request", UsageFamily::Embeddings)
    } else if seg.starts_with("moderations") {
        ("model.request", UsageFamily::Moderations)
    } else if seg.starts_with("images") {
        ("model.request", UsageFamily::Images)
    } else if seg.starts_with("audio/speech") {
        ("model.request", UsageFamily::AudioSpeeches)
    } else if seg.starts_with("audio/") {
        ("model.request", UsageFamily::AudioTranscriptions)
    } else if seg.starts_with("models") {
        (
            if read {
                "api.model.read"
            } else {
                "model.request"
            },
            UsageFamily::Other,
        )
    } else if seg.starts_with("responses") {
        (
            rw(&["api.responses.read", "api.responses.write"]),
            UsageFamily::Completions,
        )
    } else if seg.starts_with("assistants") {
        (
            rw(&["api.assistants.read", "api.assistants.write"]),
            UsageFamily::Other,
        )
    } else if seg.starts_with("threads") {
        (
            rw(&["api.threads.read", "api.threads.write"]),
            UsageFamily::Other,
        )
    } else if seg.starts_with("files") || seg.starts_with("uploads") {
        (
            rw(&["api.files.read", "api.files.write"]),
            UsageFamily::Other,
        )
    } else if seg.starts_with("fine_tuning") {
        (
            rw(&["api.fine_tuning.jobs.read", "api.fine_tuning.jobs.write"]),
            UsageFamily::Other,
        )
    } else if seg.starts_with("batches") {
        (
            rw(&["api.batch.read", "api.batch.write"]),
            UsageFamily::Other,
        )
    } else if seg.starts_with("vector_stores") {
        (
            rw(&["api.vector_stores.read", "api.vector_stores.write"]),
            UsageFamily::Other,
        )
    } else if seg.starts_with("evals") {
        (
            rw(&["api.evals.read", "api.evals.write"]),
            UsageFamily::Other,
        )
    } else if seg.starts_with("videos") {
        (
            rw(&["api.videos.read", "api.videos.write"]),
            UsageFamily::Other,
        )
    } else {
        (
            if read {
                "api.model.read"
            } else {
                "model.request"
            },
            UsageFamily::Other,
        )
    };
    Endpoint { scope, family }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_has_its_scope() {
        assert_eq!(classify("POST", "/chat/completions").scope, "model.request");
        assert_eq!(
            classify("POST", "/chat/completions").family,
            UsageFamily::Completions
        );
        assert_eq!(classify("GET", "/models").scope, "api.model.read");
        assert_eq!(classify("GET", "/models/gpt-4o").scope, "api.model.read");
        assert_eq!(classify("POST", "/responses").scope, "api.responses.write");
        assert_eq!(
            classify("GET", "/responses/resp_1").scope,
            "api.responses.read"
        );
        assert_eq!(classify("POST", "/files").scope, "api.files.write");
        assert_eq!(classify("GET", "/batches").scope, "api.batch.read");
        assert_eq!(
            classify("POST", "/audio/speech").family,
            UsageFamily::AudioSpeeches
        );
        assert_eq!(
            classify("POST", "/audio/transcriptions").family,
            UsageFamily::AudioTranscriptions
        );
        assert_eq!(
            classify("POST", "/embeddings").family,
            UsageFamily::Embeddings
        );
        assert_eq!(classify("DELETE", "/something/new").scope, "model.request");
        // Every scope named here is a known scope.
        for (m, p) in [
            ("GET", "/videos"),
            ("POST", "/evals"),
            ("POST", "/vector_stores"),
            ("POST", "/fine_tuning/jobs"),
            ("POST", "/threads"),
            ("POST", "/assistants"),
        ] {
            assert!(crate::scopes::KNOWN_SCOPES.contains(&classify(m, p).scope));
        }
    }

    #[test]
    fn families_round_trip() {
        for f in UsageFamily::REPORTED {
            assert_eq!(UsageFamily::parse(f.as_str()), Some(f));
        }
        assert_eq!(UsageFamily::parse("other"), None);
    }
}
