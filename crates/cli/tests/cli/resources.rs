//! Every command whose endpoint Keyplane serves, in table and JSON output.

use crate::helpers::{eventually, is_project_key, Keyplane};
use serde_json::Value;
use std::time::Duration;

#[test]
fn projects_create_get_rename_list_archive() {
    let kp = Keyplane::start();
    let table = kp.run(&["projects", "create", "--name", "web app"]).ok();
    assert!(table.stdout.contains("NAME"), "{table:#?}");
    assert!(table.stdout.contains("web app"));
    assert!(table.stdout.contains("just now"));

    let created = kp.json(&["projects", "create", "--name", "batch jobs"]);
    assert_eq!(created["object"], "organization.project");
    let id = created["id"].as_str().unwrap();

    let got = kp.json(&["projects", "get", id]);
    assert_eq!(got["name"], "batch jobs");
    let got = kp.run(&["projects", "get", id]).ok();
    assert!(
        got.stdout
            .lines()
            .any(|l| l.starts_with("ID") && l.ends_with(id)),
        "{got:#?}"
    );

    let renamed = kp.json(&["projects", "rename", id, "--name", "batch (prod)"]);
    assert_eq!(renamed["name"], "batch (prod)");

    let list = kp.run(&["projects", "list"]).ok();
    let header = list.stdout.lines().next().unwrap();
    for column in ["ID", "NAME", "STATUS", "CREATED"] {
        assert!(header.contains(column), "{header}");
    }
    assert!(list.stdout.contains("web app") && list.stdout.contains("batch (prod)"));

    let archived = kp.json(&["projects", "archive", id]);
    assert_eq!(archived["status"], "archived");
    assert!(archived["archived_at"].is_i64());
    let active = kp.json(&["projects", "list"]);
    assert_eq!(active.as_array().unwrap().len(), 1);
    let all = kp.json(&["projects", "list", "--include-archived"]);
    assert_eq!(all.as_array().unwrap().len(), 2);
}

#[test]
fn api_keys_list_get_create_update_delete() {
    let kp = Keyplane::start();
    let project = kp.create_project("keys");
    let created = kp.json(&[
        "api-keys",
        "create",
        "--project",
        &project,
        "--name",
        "ci",
        "--expires-in",
        "30d",
    ]);
    let key_id = created["id"].as_str().unwrap().to_owned();
    assert!(is_project_key(created["value"].as_str().unwrap()));
    assert!(created["expires_at"].as_i64().unwrap() > created["created_at"].as_i64().unwrap());

    let table = kp.run(&["api-keys", "list", "--project", &project]).ok();
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{table:#?}");
    assert!(lines[0].contains("LAST USED") && lines[0].contains("EXPIRES"));
    assert!(lines[1].contains(&key_id));
    assert!(lines[1].contains(created["redacted_value"].as_str().unwrap()));
    assert!(
        lines[1].contains("never"),
        "null last_used_at reads never: {}",
        lines[1]
    );
    assert!(lines[1].contains("in 29 days") || lines[1].contains("in 30 days"));
    assert!(!table.stdout.contains(created["value"].as_str().unwrap()));

    let listed = kp.json(&["api-keys", "list", "--project", &project]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(listed[0].get("value").is_none(), "lists never carry values");
    let got = kp.json(&["api-keys", "get", "--project", &project, &key_id]);
    assert_eq!(got["name"], "ci");

    let updated = kp.json(&[
        "api-keys",
        "update",
        "--project",
        &project,
        &key_id,
        "--name",
        "deploy",
        "--scope",
        "model.request",
        "--expires-in",
        "1d",
    ]);
    assert_eq!(updated["name"], "deploy");
    assert_eq!(updated["scopes"], serde_json::json!(["model.request"]));
    let updated = kp.json(&[
        "api-keys",
        "update",
        "--project",
        &project,
        &key_id,
        "--all-scopes",
        "--no-expiry",
    ]);
    assert_eq!(updated["scopes"], Value::Null);
    assert_eq!(updated["expires_at"], Value::Null);
    let nothing = kp
        .run(&["api-keys", "update", "--project", &project, &key_id])
        .code(2);
    assert!(nothing.stderr.contains("nothing to change"), "{nothing:#?}");

    let deleted = kp
        .run(&["api-keys", "delete", "--project", &project, &key_id])
        .ok();
    assert_eq!(deleted.stdout.trim(), format!("Deleted API key {key_id}."));
    kp.run(&["api-keys", "get", "--project", &project, &key_id])
        .code(4);
}

#[test]
fn service_accounts_and_their_keys() {
    let kp = Keyplane::start();
    let project = kp.create_project("bots");
    let created = kp
        .run(&[
            "service-accounts",
            "create",
            "--project",
            &project,
            "--name",
            "deploy-bot",
        ])
        .ok();
    let value_lines: Vec<&str> = created
        .stdout
        .lines()
        .filter(|l| l.starts_with("sk-svcacct-"))
        .collect();
    assert_eq!(
        value_lines.len(),
        1,
        "the key value is printed once: {created:#?}"
    );
    assert!(created.stdout.contains("deploy-bot"));

    let quiet = kp
        .run(&[
            "service-accounts",
            "create",
            "--project",
            &project,
            "--name",
            "ci-bot",
            "--quiet",
        ])
        .ok();
    assert!(quiet.stdout.trim().starts_with("sk-svcacct-"));
    assert_eq!(quiet.stdout.lines().count(), 1);

    let only = kp.json(&[
        "service-accounts",
        "create",
        "--project",
        &project,
        "--name",
        "bare",
        "--service-account-only",
    ]);
    assert_eq!(only["api_key"], Value::Null);

    let list = kp.json(&["service-accounts", "list", "--project", &project]);
    assert_eq!(list.as_array().unwrap().len(), 3);
    let sa = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "deploy-bot")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let table = kp
        .run(&["service-accounts", "list", "--project", &project])
        .ok();
    assert!(table.stdout.lines().next().unwrap().contains("ROLE"));
    assert_eq!(table.stdout.lines().count(), 4);

    let got = kp.json(&["service-accounts", "get", "--project", &project, &sa]);
    assert_eq!(got["name"], "deploy-bot");
    let updated = kp.json(&[
        "service-accounts",
        "update",
        "--project",
        &project,
        &sa,
        "--name",
        "deployer",
    ]);
    assert_eq!(updated["name"], "deployer");

    let key = kp.json(&[
        "service-accounts",
        "create-key",
        "--project",
        &project,
        &sa,
        "--name",
        "rotated",
        "--scope",
        "model.request",
        "--expires-in",
        "7d",
    ]);
    assert!(key["value"].as_str().unwrap().starts_with("sk-svcacct-"));
    assert_eq!(key["name"], "rotated");
    let keys = kp.json(&["api-keys", "list", "--project", &project]);
    assert!(keys
        .as_array()
        .unwrap()
        .iter()
        .any(|k| k["id"] == key["id"]));

    let deleted = kp
        .run(&["service-accounts", "delete", "--project", &project, &sa])
        .ok();
    assert!(deleted.stdout.contains("Deleted service account"));
    kp.run(&["service-accounts", "get", "--project", &project, &sa])
        .code(4);
}

#[test]
fn admin_keys_and_a_read_only_key() {
    let kp = Keyplane::start();
    let table = kp.run(&["admin-keys", "list"]).ok();
    assert!(table.stdout.contains("Initial admin key") || table.stdout.lines().count() == 2);
    let quiet = kp
        .run(&[
            "admin-keys",
            "create",
            "--name",
            "reader",
            "--scope",
            "api.management.read",
            "-q",
        ])
        .ok();
    let reader = quiet.stdout.trim().to_owned();
    assert!(reader.starts_with("sk-admin-"));
    let list = kp.json(&["admin-keys", "list", "--order", "desc"]);
    let id = list[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(list[0]["name"], "reader");
    assert_eq!(
        list[0]["scopes"],
        serde_json::json!(["api.management.read"])
    );
    let got = kp.json(&["admin-keys", "get", &id]);
    assert_eq!(got["name"], "reader");

    // The read-only key reads but may not write: an auth error with a hint.
    kp.run_env(&["projects", "list"], &[("OPENAI_ADMIN_KEY", &reader)])
        .ok();
    let denied = kp
        .run_env(
            &["projects", "create", "--name", "x"],
            &[("OPENAI_ADMIN_KEY", &reader)],
        )
        .code(3);
    assert!(denied.stderr.contains("Missing scopes"), "{denied:#?}");
    assert!(denied.stderr.contains("hint: "));

    let deleted = kp.run(&["admin-keys", "delete", &id]).ok();
    assert_eq!(deleted.stdout.trim(), format!("Deleted admin key {id}."));
    let json = kp.json(&["admin-keys", "list"]);
    assert_eq!(json.as_array().unwrap().len(), 1);
}

#[test]
fn audit_logs_list_in_table_and_json() {
    let kp = Keyplane::start();
    let project = kp.create_project("audited");
    kp.run(&[
        "api-keys",
        "create",
        "--project",
        &project,
        "--name",
        "k",
        "-q",
    ])
    .ok();
    let events = kp.json(&["audit-logs", "list", "--all"]);
    let types: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert!(
        types.contains(&"project.created") && types.contains(&"api_key.created"),
        "{types:?}"
    );
    let table = kp
        .run(&[
            "audit-logs",
            "list",
            "--effective-at-gte",
            "1d",
            "--limit",
            "2",
        ])
        .ok();
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{table:#?}");
    for column in ["WHEN", "TYPE", "ACTOR", "PROJECT", "RESOURCE"] {
        assert!(lines[0].contains(column));
    }
    assert!(lines[1].contains("owner@localhost"));
    let csv = kp.run(&["audit-logs", "list", "--output", "csv"]).ok();
    assert!(csv
        .stdout
        .starts_with("id,when,type,actor,project,resource\n"));
}

#[test]
fn api_keys_audit_reports_key_hygiene() {
    let kp = Keyplane::start();
    let project = kp.create_project("hygiene");
    let other = kp.create_project("other");
    let used = kp.json(&[
        "api-keys",
        "create",
        "--project",
        &project,
        "--name",
        "used",
    ]);
    let idle = kp.json(&[
        "api-keys",
        "create",
        "--project",
        &project,
        "--name",
        "idle",
        "--expires-in",
        "2d",
    ]);
    kp.run(&[
        "api-keys",
        "create",
        "--project",
        &other,
        "--name",
        "elsewhere",
        "-q",
    ])
    .ok();
    kp.use_key(used["value"].as_str().unwrap());
    let used_id = used["id"].as_str().unwrap();
    assert!(
        eventually(Duration::from_secs(10), || {
            kp.json(&["api-keys", "get", "--project", &project, used_id])["last_used_at"].is_i64()
        }),
        "the key's use was recorded"
    );

    let report = kp.json(&["api-keys", "audit", "--project", &project]);
    let rows = report.as_array().unwrap();
    assert_eq!(rows.len(), 1, "only the idle key has findings: {report:#}");
    assert_eq!(rows[0]["key"]["id"], idle["id"]);
    assert_eq!(rows[0]["project"]["id"], project.as_str());
    assert_eq!(
        rows[0]["findings"],
        serde_json::json!(["never_used", "expiring"])
    );

    // All projects; every key is at least 0 days old and the used one unused for 0 days.
    let all = kp.json(&[
        "api-keys",
        "audit",
        "--older-than-days",
        "0",
        "--unused-days",
        "0",
        "--expiring-days",
        "1",
    ]);
    let rows = all.as_array().unwrap();
    assert_eq!(rows.len(), 3, "{all:#}");
    let used_row = rows.iter().find(|r| r["key"]["id"] == used_id).unwrap();
    assert_eq!(
        used_row["findings"],
        serde_json::json!(["unused", "due_for_rotation"])
    );
    let idle_row = rows.iter().find(|r| r["key"]["id"] == idle["id"]).unwrap();
    assert_eq!(
        idle_row["findings"],
        serde_json::json!(["never_used", "due_for_rotation"])
    );

    let table = kp.run(&["api-keys", "audit"]).ok();
    assert!(table.stdout.lines().next().unwrap().contains("FINDINGS"));
    assert!(table.stdout.contains("never used"), "{table:#?}");
    assert!(table.stdout.contains("expires in 1 day"), "{table:#?}");
    assert!(table.stderr.contains("need attention"));

    let unknown = kp
        .run(&["api-keys", "audit", "--project", "proj_missing"])
        .code(4);
    assert!(unknown.stderr.contains("projects list"));
}

#[test]
fn rate_limits_list_and_set() {
    let kp = Keyplane::start();
    let project = kp.create_project("limits");
    let limits = kp.json(&["rate-limits", "list", "--project", &project, "--all"]);
    let first = &limits.as_array().unwrap()[0];
    let (id, model) = (
        first["id"].as_str().unwrap(),
        first["model"].as_str().unwrap(),
    );
    let table = kp.run(&["rate-limits", "list", "--project", &project]).ok();
    assert!(table.stdout.lines().next().unwrap().contains("REQ/MIN"));
    assert!(table.stdout.contains(id));

    let set = kp.json(&[
        "rate-limits",
        "set",
        "--project",
        &project,
        "--model",
        model,
        "--max-requests-per-1-minute",
        "42",
    ]);
    assert_eq!(set["id"], id);
    assert_eq!(set["max_requests_per_1_minute"], 42);
    let set = kp.json(&[
        "rate-limits",
        "set",
        "--project",
        &project,
        id,
        "--max-tokens-per-1-minute",
        "1234",
    ]);
    assert_eq!(set["max_tokens_per_1_minute"], 1234);
    assert_eq!(set["max_requests_per_1_minute"], 42);
    kp.run(&["rate-limits", "list", "--project", "proj_missing"])
        .code(4);
}

#[test]
fn usage_and_costs_come_in_buckets() {
    let kp = Keyplane::start();
    let usage = kp.json(&[
        "usage",
        "completions",
        "--start",
        "3d",
        "--end",
        "now",
        "--bucket",
        "1d",
    ]);
    // Buckets sit on whole UTC days, so three days from mid-day span four of them.
    let buckets = usage.as_array().unwrap();
    assert!((3..=4).contains(&buckets.len()), "{usage:#}");
    assert!(buckets.iter().all(|b| b["object"] == "bucket"));
    assert!(buckets
        .iter()
        .all(|b| b["start_time"].as_i64().unwrap() % 86_400 == 0));
    let hours = kp.json(&[
        "usage",
        "embeddings",
        "--start",
        "30h",
        "--end",
        "now",
        "--bucket",
        "1h",
        "--all",
    ]);
    // 30 hours from mid-hour touch 31 whole hours; --all follows next_page past 24 buckets.
    assert!(
        (30..=31).contains(&hours.as_array().unwrap().len()),
        "--all follows next_page past 24 buckets"
    );
    let table = kp
        .run(&["usage", "moderations", "--start", "2d", "--end", "now"])
        .ok();
    assert!(table.stdout.starts_with("START"), "{table:#?}");
    // A header and two or three whole days.
    assert!(
        (3..=4).contains(&table.stdout.lines().count()),
        "{table:#?}"
    );
    let costs = kp
        .run(&[
            "costs",
            "--start",
            "2d",
            "--end",
            "now",
            "--group-by",
            "project_id",
            "--output",
            "csv",
        ])
        .ok();
    assert!(costs.stdout.starts_with("start,end\n"), "{costs:#?}");
    assert!(
        (3..=4).contains(&costs.stdout.lines().count()),
        "{costs:#?}"
    );
}
