use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use keyplane_server::config::{Config, Overrides};
use serde_json::Value;
use std::sync::Arc;
use tower::ServiceExt;

pub struct TestApp {
    pub router: keyplane_server::router::App,
    pub admin_key: String,
    /// Cache invalidation and reconciliation, to run a reconciliation pass by hand.
    pub changes: Arc<keyplane_server::changes::Changes>,
    dir: std::path::PathBuf,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(None).await
    }

    /// With `owner_password`, the first owner (`owner@localhost` by default) can sign in to
    /// the dashboard.
    pub async fn spawn_with(owner_password: Option<&str>) -> Self {
        Self::spawn_configured(owner_password, |_| {}).await
    }

    /// [`TestApp::spawn_with`], with a last change to the configuration.
    pub async fn spawn_configured(
        owner_password: Option<&str>,
        change: impl FnOnce(&mut Config),
    ) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "kp_api_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        // A directory left by an earlier run whose process had the same id would hold an
        // initialized database: start from an empty one.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // An upstream that refuses connections: the data plane answers 502.
        std::env::set_var("KEYPLANE_UPSTREAM_URL", "http://127.0.0.1:9/v1");
        let config = Config::load(&Overrides {
            database_url: Some(format!("sqlite://{}", dir.join("kp.db").display())),
            ..Overrides::default()
        })
        .unwrap();
        let mut config = config;
        config.owner_password = owner_password.map(|p| secrecy::SecretString::from(p.to_owned()));
        change(&mut config);
        let store = keyplane_server::startup::open_store(&config).await.unwrap();
        let hasher = keyplane_server::startup::hasher(&config);
        let key = keyplane_server::startup::initialize(&store, &config, &hasher)
            .await
            .unwrap();
        let state = keyplane_server::startup::state(Arc::new(config), store).unwrap();
        TestApp {
            changes: state.changes.clone(),
            router: keyplane_server::router::build(state),
            admin_key: key.expose().to_owned(),
            dir,
        }
    }

    /// The SQLite file the app runs on, for writes made around Keyplane.
    pub fn database_file(&self) -> std::path::PathBuf {
        self.dir.join("kp.db")
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(key) = key {
            req = req.header("authorization", format!("Bearer {key}"));
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b.to_owned())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, json)
    }

    pub async fn admin(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
    ) -> (StatusCode, Value) {
        self.call(method, path, Some(&self.admin_key.clone()), body)
            .await
    }

    /// Creates a project and a key in it; returns the project's id and the key's value.
    pub async fn project_with_key(&self) -> (String, String) {
        let (s, project) = self
            .admin(
                Method::POST,
                "/v1/organization/projects",
                Some(r#"{"name":"p"}"#),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{project}");
        let pid = project["id"].as_str().unwrap().to_owned();
        let (s, key) = self
            .admin(
                Method::POST,
                &format!("/v1/organization/projects/{pid}/api_keys"),
                Some(r#"{"name":"k"}"#),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{key}");
        (pid, key["value"].as_str().unwrap().to_owned())
    }
}

/// Asserts OpenAI's error envelope with all four keys.
pub fn assert_error(body: &Value) {
    let e = &body["error"];
    for k in ["message", "type", "param", "code"] {
        assert!(e.get(k).is_some(), "missing {k} in {body}");
    }
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()));
}
