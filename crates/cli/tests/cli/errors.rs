//! Each error: its plain-words message, its hint and its exit code.

use crate::helpers::{closed_port, error_body, keyplane, FaultServer, Keyplane};

#[test]
fn a_project_key_as_admin_key_is_refused_before_sending() {
    let fault = FaultServer::always(serde_json::json!({}));
    for key in ["sk-proj-abcdefghijklmnop", "sk-svcacct-abcdefghijklmnop"] {
        let run = fault
            .run_env(&["projects", "list"], &[("OPENAI_ADMIN_KEY", key)])
            .code(3);
        assert!(run.stderr.contains("not an admin key"), "{run:#?}");
        assert!(run.stderr.contains("hint: ") && run.stderr.contains("sk-admin-"));
        assert!(!run.stderr.contains(key), "the key is never echoed");
    }
    assert!(fault.requests().is_empty(), "nothing was sent");

    // The same with a real key from a real server, from a key file.
    let kp = Keyplane::start();
    let project = kp.create_project("p");
    let key = kp
        .run(&[
            "api-keys",
            "create",
            "--project",
            &project,
            "--name",
            "k",
            "-q",
        ])
        .ok()
        .stdout;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("key");
    std::fs::write(&file, &key).unwrap();
    let run = kp
        .run(&[
            "projects",
            "list",
            "--admin-key-file",
            file.to_str().unwrap(),
        ])
        .code(3);
    assert!(run.stderr.contains("project key"), "{run:#?}");
    assert!(run.stderr.contains("--admin-key-file"));
}

#[test]
fn a_401_naming_the_admin_key_gets_the_same_hint() {
    let fault = FaultServer::start(|_, _| {
        (
            401,
            vec![],
            error_body(
                "This route needs an admin key (sk-admin-…); you provided a project key (sk-proj-…).",
                None,
            ),
        )
    });
    let run = fault
        .run_env(
            &["projects", "list"],
            &[("OPENAI_ADMIN_KEY", "sk-something-else")],
        )
        .code(3);
    assert!(run.stderr.contains("is not an admin key"), "{run:#?}");
    assert!(run
        .stderr
        .contains("hint: the Admin API needs an admin key"));
}

#[test]
fn unknown_project_is_not_found_with_a_hint() {
    let kp = Keyplane::start();
    for args in [
        vec!["projects", "get", "proj_doesnotexist"],
        vec!["api-keys", "list", "--project", "proj_doesnotexist"],
        vec!["service-accounts", "list", "--project", "proj_doesnotexist"],
    ] {
        let run = kp.run(&args).code(4);
        assert!(run.stderr.contains("proj_doesnotexist"), "{run:#?}");
        assert!(
            run.stderr.contains("hint: `keyplane projects list"),
            "{run:#?}"
        );
    }
    let project = kp.create_project("p");
    let run = kp
        .run(&["api-keys", "get", "--project", &project, "key_doesnotexist"])
        .code(4);
    assert!(
        run.stderr.contains("hint: `keyplane api-keys list"),
        "{run:#?}"
    );
}

#[test]
fn a_revoked_admin_key_is_an_auth_error() {
    let kp = Keyplane::start();
    let second = kp
        .run(&["admin-keys", "create", "--name", "temp", "-q"])
        .ok()
        .stdout;
    let second = second.trim();
    let id = kp.json(&["admin-keys", "list", "--order", "desc"])[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    kp.run_env(&["projects", "list"], &[("OPENAI_ADMIN_KEY", second)])
        .ok();
    kp.run(&["admin-keys", "delete", &id]).ok();
    let run = kp
        .run_env(&["projects", "list"], &[("OPENAI_ADMIN_KEY", second)])
        .code(3);
    assert!(run.stderr.contains("was rejected"), "{run:#?}");
    assert!(run.stderr.contains("revoked"), "{run:#?}");
    assert!(!run.stderr.contains(second));
}

#[test]
fn an_unreachable_server_names_its_url() {
    let port = closed_port();
    let url = format!("http://127.0.0.1:{port}/v1");
    let run = keyplane(
        &["projects", "list", "--max-retries", "1"],
        &[
            ("OPENAI_ADMIN_KEY", "sk-admin-x"),
            ("OPENAI_BASE_URL", &url),
        ],
    )
    .code(5);
    assert!(run.stderr.contains(&url), "{run:#?}");
    assert!(run.stderr.contains("connection refused"), "{run:#?}");
    assert!(
        run.stderr.contains("retry 1 of 1"),
        "connection errors are retried: {run:#?}"
    );
    assert!(run.stderr.contains("hint: ") && run.stderr.contains("keyplane serve"));
}

#[test]
fn missing_key_and_usage_errors() {
    let run = keyplane(&["projects", "list"], &[]).code(3);
    assert!(run.stderr.contains("OPENAI_ADMIN_KEY"), "{run:#?}");
    let run = keyplane(&["projects", "list"], &[("OPENAI_API_KEY", "sk-proj-x")]).code(3);
    assert!(run.stderr.contains("OPENAI_API_KEY is set"), "{run:#?}");

    keyplane(&["projects", "frobnicate"], &[]).code(2);
    keyplane(&["projects", "list", "--limit", "zero"], &[]).code(2);
    keyplane(&["api-keys", "list"], &[]).code(2);
    keyplane(&["usage", "completions", "--bucket", "5m"], &[]).code(2);
    let run = keyplane(&["usage", "completions", "--start", "yesterday"], &[]).code(2);
    assert!(
        run.stderr.contains("--start"),
        "bad arguments are reported before a missing key: {run:#?}"
    );
    let run = keyplane(&["usage", "embeddings", "--group-by", "color"], &[]).code(2);
    assert!(run.stderr.contains("project_id"), "{run:#?}");
    let run = keyplane(&["costs", "--bucket", "1h"], &[]).code(2);
    assert!(run.stderr.contains("1d"), "{run:#?}");
    let run = keyplane(
        &["projects", "list", "--base-url", "not a url"],
        &[("OPENAI_ADMIN_KEY", "sk-admin-x")],
    )
    .code(2);
    assert!(run.stderr.contains("--base-url"), "{run:#?}");
    let run = keyplane(
        &[
            "api-keys",
            "create",
            "--project",
            "p",
            "--name",
            "n",
            "--expires-in",
            "soon",
        ],
        &[],
    )
    .code(2);
    assert!(run.stderr.contains("--expires-in"), "{run:#?}");
}

#[test]
fn admin_key_flag_warns_about_shell_history() {
    let fault = FaultServer::start(|_, _| (200, vec![], crate::helpers::list(vec![], false)));
    let run = keyplane(
        &[
            "projects",
            "list",
            "--admin-key",
            "sk-admin-flag",
            "--base-url",
            &fault.base_url,
        ],
        &[],
    )
    .ok();
    assert!(run.stderr.contains("shell history"), "{run:#?}");
    assert_eq!(fault.requests()[0].authorization, "Bearer sk-admin-flag");
}

#[test]
fn keyplane_extensions_say_when_the_server_lacks_them() {
    // What OpenAI answers for a route it does not have.
    let fault = FaultServer::start(|r, _| {
        (
            404,
            vec![],
            error_body(&format!("Invalid URL ({} /v1{})", r.method, r.path), None),
        )
    });
    let run = fault
        .run(&["api-keys", "create", "--project", "proj_a", "--name", "n"])
        .code(1);
    assert!(
        run.stderr.contains(
            "this server does not support creating project API keys (a Keyplane extension)"
        ),
        "{run:#?}"
    );
    let run = fault
        .run(&[
            "api-keys",
            "update",
            "--project",
            "proj_a",
            "key_a",
            "--name",
            "n",
        ])
        .code(1);
    assert!(
        run.stderr
            .contains("updating project API keys (a Keyplane extension)"),
        "{run:#?}"
    );
    let fault = FaultServer::start(|_, _| (405, vec![], error_body("Method not allowed", None)));
    let run = fault
        .run(&["api-keys", "create", "--project", "proj_a", "--name", "n"])
        .code(1);
    assert!(run.stderr.contains("a Keyplane extension"), "{run:#?}");
    let fault = FaultServer::start(|_, _| {
        (
            400,
            vec![],
            error_body("Unrecognized request argument supplied: scopes", None),
        )
    });
    let run = fault
        .run(&[
            "admin-keys",
            "create",
            "--name",
            "n",
            "--scope",
            "api.management.read",
        ])
        .code(1);
    assert!(
        run.stderr
            .contains("scopes on admin keys (a Keyplane extension)"),
        "{run:#?}"
    );
}

#[test]
fn a_base_url_without_v1_gets_a_hint() {
    let kp = Keyplane::start();
    let root = kp.base_url.trim_end_matches("/v1").to_owned();
    let run = kp
        .run_env(&["projects", "list"], &[("OPENAI_BASE_URL", &root)])
        .code(1);
    assert!(run.stderr.contains("/v1"), "{run:#?}");
}
