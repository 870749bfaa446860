//! The exact requests the client sends, checked against a recording loopback server, with the
//! rendering of canned answers: the request bodies of users, project users and invites (people.rs
//! runs them against the real server) and the query strings a real server would not reveal
//! (usage and costs filters, every audit log filter, percent-encoded ids).

use crate::helpers::{list, FaultServer, Recorded};
use serde_json::{json, Value};

/// `a%5B%5D=x&b=y` → `[("a[]", "x"), ("b", "y")]`.
fn decode(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (unescape(k), unescape(v))
        })
        .collect()
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(if b[i] == b'+' { b' ' } else { b[i] });
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn only(fault: &FaultServer) -> Recorded {
    let reqs = fault.requests();
    assert_eq!(reqs.len(), 1, "{reqs:#?}");
    reqs[0].clone()
}

fn user(object: &str) -> Value {
    json!({"object": object, "id": "user-1", "name": "Ana", "email": "ana@example.com",
           "role": "owner", "added_at": 1_700_000_000})
}

/// Answers lists with one `item`, deletes with a confirmation, everything else with `item`.
fn echo_server(item: Value) -> FaultServer {
    FaultServer::start(move |r, _| {
        let id = item["id"].clone();
        let body = match r.method.as_str() {
            "GET" if r.path.ends_with('s') => list(vec![item.clone()], false),
            "DELETE" => json!({"object": "deleted", "id": id, "deleted": true}).to_string(),
            _ => item.to_string(),
        };
        (200, vec![], body)
    })
}

#[test]
fn users_list_get_update_delete() {
    let fault = echo_server(user("organization.user"));
    let run = fault
        .run(&[
            "users",
            "list",
            "--email",
            "ana@example.com,bo@example.com",
            "--limit",
            "5",
        ])
        .ok();
    let r = only(&fault);
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("GET", "/v1/organization/users")
    );
    assert!(
        r.query.contains("emails%5B%5D=ana%40example.com"),
        "brackets as the SDK sends them: {}",
        r.query
    );
    assert_eq!(
        decode(&r.query),
        pairs(&[
            ("emails[]", "ana@example.com"),
            ("emails[]", "bo@example.com"),
            ("limit", "5")
        ])
    );
    assert_eq!(r.authorization, "Bearer sk-admin-test");
    let header = run.stdout.lines().next().unwrap();
    assert!(header.contains("EMAIL") && header.contains("ROLE") && header.contains("ADDED"));
    assert!(run.stdout.contains("ana@example.com"));

    let fault = echo_server(user("organization.user"));
    let got = fault.run(&["users", "get", "user-1", "-o", "json"]).ok();
    assert_eq!(got.json()["id"], "user-1");
    assert_eq!(only(&fault).path, "/v1/organization/users/user-1");

    let fault = echo_server(user("organization.user"));
    fault
        .run(&["users", "update", "user-1", "--role", "reader"])
        .ok();
    let r = only(&fault);
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/v1/organization/users/user-1")
    );
    assert_eq!(r.json_body(), json!({"role": "reader"}));
    fault.run(&["users", "update", "user-1"]).code(2);

    let fault = echo_server(user("organization.user"));
    let run = fault.run(&["users", "delete", "user-1"]).ok();
    assert_eq!(only(&fault).method, "DELETE");
    assert_eq!(run.stdout.trim(), "Deleted user user-1.");
}

#[test]
fn project_users_list_add_get_update_remove() {
    let fault = echo_server(user("organization.project.user"));
    fault
        .run(&["project-users", "list", "--project", "proj_a"])
        .ok();
    assert_eq!(only(&fault).path, "/v1/organization/projects/proj_a/users");

    let fault = echo_server(user("organization.project.user"));
    fault
        .run(&[
            "project-users",
            "add",
            "--project",
            "proj_a",
            "--user-id",
            "user-1",
            "--role",
            "member",
        ])
        .ok();
    let r = only(&fault);
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/v1/organization/projects/proj_a/users")
    );
    assert_eq!(
        r.json_body(),
        json!({"role": "member", "user_id": "user-1"})
    );

    let fault = echo_server(user("organization.project.user"));
    fault
        .run(&[
            "project-users",
            "add",
            "--project",
            "proj_a",
            "--email",
            "ana@example.com",
            "--role",
            "owner",
        ])
        .ok();
    assert_eq!(
        only(&fault).json_body(),
        json!({"role": "owner", "email": "ana@example.com"})
    );
    // Either a user id or an email is needed.
    fault
        .run(&[
            "project-users",
            "add",
            "--project",
            "proj_a",
            "--role",
            "owner",
        ])
        .code(2);

    let fault = echo_server(user("organization.project.user"));
    fault
        .run(&["project-users", "get", "--project", "proj_a", "user-1"])
        .ok();
    assert_eq!(
        only(&fault).path,
        "/v1/organization/projects/proj_a/users/user-1"
    );

    let fault = echo_server(user("organization.project.user"));
    fault
        .run(&[
            "project-users",
            "update",
            "--project",
            "proj_a",
            "user-1",
            "--role",
            "owner",
        ])
        .ok();
    let r = only(&fault);
    assert_eq!(r.method, "POST");
    assert_eq!(r.json_body(), json!({"role": "owner"}));

    let fault = echo_server(user("organization.project.user"));
    let run = fault
        .run(&["project-users", "remove", "--project", "proj_a", "user-1"])
        .ok();
    assert_eq!(only(&fault).method, "DELETE");
    assert!(run.stdout.contains("Deleted project member user-1"));
}

#[test]
fn invites_list_create_get_delete() {
    let invite = json!({"object": "organization.invite", "id": "invite-1", "email": "bo@example.com",
        "role": "reader", "status": "pending", "created_at": 1_700_000_000, "expires_at": null,
        "accepted_at": null, "projects": [{"id": "proj_a", "role": "owner"}]});
    let fault = echo_server(invite.clone());
    let run = fault.run(&["invites", "list", "--all"]).ok();
    assert_eq!(only(&fault).path, "/v1/organization/invites");
    assert!(run.stdout.contains("proj_a:owner") && run.stdout.contains("pending"));

    let fault = echo_server(invite.clone());
    fault
        .run(&[
            "invites",
            "create",
            "--email",
            "bo@example.com",
            "--role",
            "reader",
            "--project",
            "proj_a:owner",
            "--project",
            "proj_b",
        ])
        .ok();
    assert_eq!(
        only(&fault).json_body(),
        json!({"email": "bo@example.com", "role": "reader",
               "projects": [{"id": "proj_a", "role": "owner"}, {"id": "proj_b", "role": "member"}]})
    );
    let fault = echo_server(invite.clone());
    fault
        .run(&[
            "invites",
            "create",
            "--email",
            "bo@example.com",
            "--role",
            "owner",
            "--no-projects",
        ])
        .ok();
    assert_eq!(only(&fault).json_body()["projects"], json!([]));
    fault
        .run(&[
            "invites",
            "create",
            "--email",
            "x@y",
            "--role",
            "reader",
            "--project",
            "proj_a:boss",
        ])
        .code(2);

    let fault = echo_server(invite.clone());
    fault.run(&["invites", "get", "invite-1"]).ok();
    assert_eq!(only(&fault).path, "/v1/organization/invites/invite-1");
    let fault = echo_server(invite);
    fault.run(&["invites", "delete", "invite-1"]).ok();
    assert_eq!(only(&fault).method, "DELETE");
}

#[test]
fn rate_limits_list_and_set_by_id_or_model() {
    let limit = |id: &str, model: &str| {
        json!({"object": "project.rate_limit", "id": id, "model": model,
               "max_requests_per_1_minute": 500, "max_tokens_per_1_minute": 30000})
    };
    let (a, b) = (
        limit("rl-gpt-4o", "gpt-4o"),
        limit("rl-gpt-4o-mini", "gpt-4o-mini"),
    );
    let fault = FaultServer::start(move |r, _| {
        let body = if r.method == "GET" {
            list(vec![a.clone(), b.clone()], false)
        } else {
            b.to_string()
        };
        (200, vec![], body)
    });
    let run = fault
        .run(&["rate-limits", "list", "--project", "proj_a"])
        .ok();
    assert_eq!(
        only(&fault).path,
        "/v1/organization/projects/proj_a/rate_limits"
    );
    let header = run.stdout.lines().next().unwrap();
    assert!(
        header.contains("MODEL") && header.contains("REQ/MIN") && header.contains("TOKENS/MIN")
    );
    assert!(run.stdout.contains("gpt-4o-mini"));

    fault
        .run(&[
            "rate-limits",
            "set",
            "--project",
            "proj_a",
            "--model",
            "gpt-4o-mini",
            "--max-requests-per-1-minute",
            "100",
            "--max-tokens-per-1-minute",
            "2000",
        ])
        .ok();
    let reqs = fault.requests();
    let set = reqs.last().unwrap();
    assert_eq!(set.method, "POST");
    assert_eq!(
        set.path,
        "/v1/organization/projects/proj_a/rate_limits/rl-gpt-4o-mini"
    );
    assert_eq!(
        set.json_body(),
        json!({"max_requests_per_1_minute": 100, "max_tokens_per_1_minute": 2000})
    );

    fault
        .run(&[
            "rate-limits",
            "set",
            "--project",
            "proj_a",
            "rl-gpt-4o",
            "--max-requests-per-1-day",
            "9",
        ])
        .ok();
    let reqs = fault.requests();
    assert_eq!(
        reqs.last().unwrap().path,
        "/v1/organization/projects/proj_a/rate_limits/rl-gpt-4o"
    );
    let run = fault
        .run(&[
            "rate-limits",
            "set",
            "--project",
            "proj_a",
            "--model",
            "dall-e-9",
            "--max-requests-per-1-day",
            "9",
        ])
        .code(4);
    assert!(run.stderr.contains("rate-limits list"), "{run:#?}");
    fault
        .run(&["rate-limits", "set", "--project", "proj_a", "rl-gpt-4o"])
        .code(2);
}

fn usage_page(next_page: Option<&str>, start: i64) -> String {
    json!({"object": "page", "has_more": next_page.is_some(), "next_page": next_page, "data": [
        {"object": "bucket", "start_time": start, "end_time": start + 86_400, "results": [
            {"object": "organization.usage.completions.result", "input_tokens": 1200,
             "output_tokens": 300, "num_model_requests": 7, "model": "gpt-4o",
             "project_id": null, "api_key_id": null}
        ]}
    ]})
    .to_string()
}

#[test]
fn usage_query_time_range_bucket_group_by_and_filters() {
    let fault = FaultServer::start(|r, _| {
        let next = if r.query.contains("page=") {
            None
        } else {
            Some("page_2")
        };
        (200, vec![], usage_page(next, 1_714_521_600))
    });
    let run = fault
        .run(&[
            "usage",
            "completions",
            "--start",
            "2024-05-01T00:00:00Z",
            "--end",
            "1714694400",
            "--bucket",
            "1h",
            "--group-by",
            "model,project_id",
            "--project-id",
            "proj_a",
            "--api-key-id",
            "key_a",
            "--user-id",
            "user-1",
            "--model",
            "gpt-4o",
            "--batch",
            "false",
            "--limit",
            "24",
        ])
        .ok();
    let r = only(&fault);
    assert_eq!(r.path, "/v1/organization/usage/completions");
    assert_eq!(
        decode(&r.query),
        pairs(&[
            ("start_time", "1714521600"),
            ("end_time", "1714694400"),
            ("bucket_width", "1h"),
            ("group_by[]", "model"),
            ("group_by[]", "project_id"),
            ("limit", "24"),
            ("project_ids[]", "proj_a"),
            ("user_ids[]", "user-1"),
            ("api_key_ids[]", "key_a"),
            ("models[]", "gpt-4o"),
            ("batch", "false"),
        ])
    );
    // One row per result; grouping fields the server left null are not shown.
    let header = run.stdout.lines().next().unwrap();
    assert!(
        header.starts_with("START") && header.contains("INPUT TOKENS") && header.contains("MODEL"),
        "{header}"
    );
    assert!(!header.contains("PROJECT ID"));
    assert!(run.stdout.contains("2024-05-01 00:00"));

    // --all follows next_page; JSON is the array of buckets.
    let fault = FaultServer::start(|r, _| {
        let next = if r.query.contains("page=") {
            None
        } else {
            Some("page_2")
        };
        (200, vec![], usage_page(next, 0))
    });
    let all = fault
        .run(&[
            "usage",
            "embeddings",
            "--start",
            "7d",
            "--all",
            "-o",
            "json",
        ])
        .ok();
    assert_eq!(all.json().as_array().unwrap().len(), 2);
    let reqs = fault.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].path, "/v1/organization/usage/embeddings");
    assert!(decode(&reqs[1].query).contains(&("page".to_owned(), "page_2".to_owned())));
    let start: i64 = decode(&reqs[0].query)[0].1.parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (now - 7 * 86_400 - start).abs() < 60,
        "7d means seven days ago"
    );

    for (kind, path) in [
        ("moderations", "moderations"),
        ("images", "images"),
        ("audio-speeches", "audio_speeches"),
        ("audio-transcriptions", "audio_transcriptions"),
    ] {
        let fault = FaultServer::start(|_, _| (200, vec![], usage_page(None, 0)));
        fault
            .run(&["usage", kind, "--start", "1d", "--output", "csv"])
            .ok();
        assert_eq!(only(&fault).path, format!("/v1/organization/usage/{path}"));
    }
    let fault = FaultServer::start(|_, _| (200, vec![], usage_page(None, 0)));
    fault
        .run(&[
            "usage",
            "images",
            "--size",
            "1024x1024",
            "--source",
            "image.edit",
            "--group-by",
            "size",
        ])
        .ok();
    let q = decode(&only(&fault).query);
    assert!(q.contains(&("sizes[]".to_owned(), "1024x1024".to_owned())));
    assert!(q.contains(&("sources[]".to_owned(), "image.edit".to_owned())));
}

#[test]
fn costs_query_and_amounts() {
    let fault = FaultServer::start(|_, _| {
        let body = json!({"object": "page", "has_more": false, "next_page": null, "data": [
            {"object": "bucket", "start_time": 1_714_521_600, "end_time": 1_714_608_000, "results": [
                {"object": "organization.costs.result", "amount": {"value": 12.3456, "currency": "usd"},
                 "line_item": "gpt-4o, input", "project_id": "proj_a"}
            ]}
        ]});
        (200, vec![], body.to_string())
    });
    let run = fault
        .run(&[
            "costs",
            "--start",
            "2024-05-01",
            "--end",
            "2024-05-02",
            "--group-by",
            "project_id",
            "--group-by",
            "line_item",
            "--project-id",
            "proj_a",
            "--line-item",
            "gpt-4o, input",
        ])
        .ok();
    let r = only(&fault);
    assert_eq!(r.path, "/v1/organization/costs");
    assert_eq!(
        decode(&r.query),
        pairs(&[
            ("start_time", "1714521600"),
            ("end_time", "1714608000"),
            ("group_by[]", "project_id"),
            ("group_by[]", "line_item"),
            ("project_ids[]", "proj_a"),
            ("line_items[]", "gpt-4o, input"),
        ])
    );
    assert!(run.stdout.contains("12.35 usd"), "{run:#?}");
    let csv = fault.run(&["costs", "--output", "csv"]).ok();
    assert!(
        csv.stdout
            .starts_with("start,end,amount,line_item,project_id\n"),
        "{csv:#?}"
    );
    assert!(csv
        .stdout
        .contains("2024-05-01T00:00:00Z,2024-05-02T00:00:00Z,12.35 usd,\"gpt-4o, input\",proj_a"));
}

#[test]
fn audit_log_filters_as_the_sdk_sends_them() {
    let fault = FaultServer::start(|_, _| (200, vec![], list(vec![], false)));
    fault
        .run(&[
            "audit-logs",
            "list",
            "--effective-at-gt",
            "1700000000",
            "--effective-at-gte",
            "2024-05-01T00:00:00Z",
            "--effective-at-lt",
            "1714600000",
            "--effective-at-lte",
            "1714650000",
            "--project-id",
            "proj_a",
            "--project-id",
            "proj_b",
            "--event-type",
            "api_key.created,api_key.deleted",
            "--actor-id",
            "user-1",
            "--actor-email",
            "ops@example.com",
            "--resource-id",
            "key_a",
            "--tenant-only",
            "--limit",
            "50",
            "--after",
            "audit_log-1",
            "--before",
            "audit_log-9",
        ])
        .ok();
    let r = only(&fault);
    assert_eq!(r.path, "/v1/organization/audit_logs");
    assert!(
        r.query.contains("effective_at%5Bgte%5D=1714521600"),
        "{}",
        r.query
    );
    assert!(
        r.query.contains("actor_emails%5B%5D=ops%40example.com"),
        "{}",
        r.query
    );
    assert_eq!(
        decode(&r.query),
        pairs(&[
            ("effective_at[gt]", "1700000000"),
            ("effective_at[gte]", "1714521600"),
            ("effective_at[lt]", "1714600000"),
            ("effective_at[lte]", "1714650000"),
            ("project_ids[]", "proj_a"),
            ("project_ids[]", "proj_b"),
            ("event_types[]", "api_key.created"),
            ("event_types[]", "api_key.deleted"),
            ("actor_ids[]", "user-1"),
            ("actor_emails[]", "ops@example.com"),
            ("resource_ids[]", "key_a"),
            ("tenant_only", "true"),
            ("before", "audit_log-9"),
            ("limit", "50"),
            ("after", "audit_log-1"),
        ])
    );
    fault
        .run(&["audit-logs", "list", "--effective-at-gt", "last week"])
        .code(2);
}

#[test]
fn ids_are_percent_encoded_in_paths() {
    let fault = echo_server(user("organization.user"));
    fault.run(&["users", "get", "a b/c"]).ok();
    assert_eq!(only(&fault).path, "/v1/organization/users/a%20b%2Fc");
    let run = fault.run(&["users", "get", ""]).code(2);
    assert!(run.stderr.contains("non-empty"), "{run:#?}");
}

#[test]
fn completions_for_each_shell() {
    for (shell, marker) in [
        ("bash", "complete"),
        ("zsh", "#compdef keyplane"),
        ("fish", "complete -c keyplane"),
    ] {
        let run = crate::helpers::keyplane(&["completions", shell], &[]).ok();
        assert!(run.stdout.contains(marker), "{shell}");
        assert!(run.stdout.contains("api-keys"), "{shell}");
    }
}
