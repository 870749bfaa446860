//! Users, project users, invites and rate limits against a real `keyplane serve`, in table and
//! JSON output. More users join the way people do: an invite created with the CLI, accepted with
//! the token of its `accept_url` through the public `POST /v1/invites/accept`.

use crate::helpers::{Keyplane, Run};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;

const PASSWORD: &str = "correct horse battery staple";

/// Ids the server accepts as ids but has never issued.
const NO_USER: &str = "user-000000000000000000000000";
const NO_INVITE: &str = "invite-000000000000000000000000";

/// Sends `body` to the public `POST /v1/invites/accept` (no key) and returns (status, JSON body).
fn post_accept(kp: &Keyplane, body: &Value) -> (u16, Value) {
    let addr = kp
        .base_url
        .trim_start_matches("http://")
        .trim_end_matches("/v1");
    let body = body.to_string();
    let mut stream = TcpStream::connect(addr).expect("connect");
    write!(
        stream,
        "POST /v1/invites/accept HTTP/1.1\r\nHost: localhost\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read the answer");
    let (head, payload) = answer
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "expected a sized body: {answer:?}"
    );
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {answer:?}"));
    let json = serde_json::from_str(payload)
        .unwrap_or_else(|e| panic!("the body is not JSON ({e}): {answer:?}"));
    (status, json)
}

/// The token at the end of an invite's `accept_url` (`…/invite/{token}`).
fn token_of(invite: &Value) -> String {
    let url = invite["accept_url"]
        .as_str()
        .unwrap_or_else(|| panic!("no accept_url: {invite:#}"));
    url.rsplit_once("/invite/")
        .unwrap_or_else(|| panic!("not an invite link: {url}"))
        .1
        .to_owned()
}

/// Invites `email` with the CLI and accepts the invite as `name`: the new user's object.
fn join(kp: &Keyplane, email: &str, name: &str, role: &str, projects: &[&str]) -> Value {
    let mut args = vec!["invites", "create", "--email", email, "--role", role];
    for p in projects {
        args.extend(["--project", p]);
    }
    let invite = kp.json(&args);
    let (status, user) = post_accept(
        kp,
        &json!({"token": token_of(&invite), "name": name, "password": PASSWORD}),
    );
    assert_eq!(status, 200, "accepting the invite: {user:#}");
    assert_eq!(user["email"], email);
    user
}

fn id(v: &Value) -> String {
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id: {v:#}"))
        .to_owned()
}

/// The value of `field` in a one-object table (`FIELD  value` lines).
#[track_caller]
fn field<'a>(run: &'a Run, field: &str) -> &'a str {
    run.stdout
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)
                .filter(|rest| rest.starts_with(' '))
                .map(str::trim)
        })
        .unwrap_or_else(|| panic!("no {field} line: {run:#?}"))
}

/// A listing's header and the row that mentions `needle`.
#[track_caller]
fn header_and_row<'a>(run: &'a Run, needle: &str) -> (&'a str, &'a str) {
    let header = run.stdout.lines().next().unwrap_or_default();
    let row = run
        .stdout
        .lines()
        .skip(1)
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no row with {needle}: {run:#?}"));
    (header, row)
}

#[track_caller]
fn not_found(run: Run, hint: &str) {
    let run = run.code(4);
    assert!(run.stderr.contains("error: not found: "), "{run:#?}");
    assert!(run.stderr.contains(hint), "{run:#?}");
    assert!(run.stdout.is_empty(), "{run:#?}");
}

#[test]
fn users_list_get_update_delete() {
    let kp = Keyplane::start();
    let users = kp.json(&["users", "list"]);
    let users = users.as_array().unwrap();
    assert_eq!(users.len(), 1, "init made one owner: {users:#?}");
    let owner = &users[0];
    assert_eq!(owner["object"], "organization.user");
    assert!(owner["id"].as_str().unwrap().starts_with("user-"));
    assert_eq!(owner["email"], "owner@localhost");
    assert_eq!(owner["role"], "owner");
    assert!(owner["added_at"].is_i64());

    let bo = join(&kp, "bo@example.com", "Bo Reader", "reader", &[]);
    let cy = join(&kp, "cy@example.com", "Cy Reader", "reader", &[]);
    let (bo_id, cy_id) = (id(&bo), id(&cy));
    assert_eq!(bo["object"], "organization.user");
    assert_eq!(bo["name"], "Bo Reader");
    assert_eq!(bo["role"], "reader");

    let table = kp.run(&["users", "list"]).ok();
    assert_eq!(table.stdout.lines().count(), 4, "{table:#?}");
    let (header, row) = header_and_row(&table, &bo_id);
    for column in ["ID", "NAME", "EMAIL", "ROLE", "ADDED"] {
        assert!(header.contains(column), "{header}");
    }
    for cell in ["Bo Reader", "bo@example.com", "reader", "just now"] {
        assert!(row.contains(cell), "{cell} in {row}");
    }

    // The listing holds the same raw objects the accept answered with.
    let only_bo = kp.json(&["users", "list", "--email", "bo@example.com"]);
    assert_eq!(only_bo, json!([bo]));
    let two = kp.json(&["users", "list", "--email", "bo@example.com,cy@example.com"]);
    assert_eq!(two.as_array().unwrap().len(), 2, "{two:#}");
    let page = kp.json(&["users", "list", "--limit", "1", "--after", &id(owner)]);
    assert_eq!(page.as_array().unwrap().len(), 1, "{page:#}");
    assert_ne!(page[0]["id"], owner["id"]);
    let all = kp.json(&["users", "list", "--limit", "1", "--all"]);
    assert_eq!(all.as_array().unwrap().len(), 3, "{all:#}");

    assert_eq!(kp.json(&["users", "get", &bo_id]), bo);
    let got = kp.run(&["users", "get", &bo_id]).ok();
    assert_eq!(field(&got, "ID"), bo_id);
    assert_eq!(field(&got, "NAME"), "Bo Reader");
    assert_eq!(field(&got, "EMAIL"), "bo@example.com");
    assert_eq!(field(&got, "ROLE"), "reader");

    let promoted = kp.json(&["users", "update", &bo_id, "--role", "owner"]);
    let mut expected = bo.clone();
    expected["role"] = json!("owner");
    assert_eq!(promoted, expected, "only the role changed");
    let demoted = kp
        .run(&["users", "update", &bo_id, "--role", "reader"])
        .ok();
    assert_eq!(field(&demoted, "ROLE"), "reader");
    assert_eq!(kp.json(&["users", "get", &bo_id])["role"], "reader");

    let deleted = kp.run(&["users", "delete", &bo_id]).ok();
    assert_eq!(deleted.stdout.trim(), format!("Deleted user {bo_id}."));
    let deleted = kp.json(&["users", "delete", &cy_id]);
    assert_eq!(
        deleted,
        json!({"object": "organization.user.deleted", "id": cy_id, "deleted": true})
    );
    assert_eq!(kp.json(&["users", "list"]), json!([owner]));

    for args in [
        vec!["users", "get", &bo_id],
        vec!["users", "get", NO_USER],
        vec!["users", "update", &cy_id, "--role", "owner"],
        vec!["users", "update", NO_USER, "--role", "reader"],
        vec!["users", "delete", &bo_id],
        vec!["users", "delete", NO_USER],
    ] {
        not_found(kp.run(&args), "`keyplane users list`");
    }
}

#[test]
fn the_last_owner_cannot_be_demoted_or_deleted() {
    let kp = Keyplane::start();
    let owner = kp.json(&["users", "list"])[0].clone();
    let owner_id = id(&owner);

    let refused = kp
        .run(&["users", "update", &owner_id, "--role", "reader"])
        .code(1);
    assert!(
        refused
            .stderr
            .starts_with("keyplane: error: the server refused the request (400 Bad Request): "),
        "{refused:#?}"
    );
    assert!(
        refused.stderr.contains(
            "The organization must keep at least one owner, and this user is the last one"
        ),
        "{refused:#?}"
    );
    assert!(refused.stdout.is_empty());
    let refused = kp.run(&["users", "delete", &owner_id]).code(1);
    assert!(
        refused.stderr.contains("must keep at least one owner"),
        "{refused:#?}"
    );
    assert_eq!(kp.json(&["users", "get", &owner_id]), owner);

    // With a second owner the first may step down; its key then only reads.
    let second = join(&kp, "second@example.com", "Second", "owner", &[]);
    assert_eq!(second["role"], "owner");
    let stepped_down = kp.json(&["users", "update", &owner_id, "--role", "reader"]);
    assert_eq!(stepped_down["role"], "reader");
    let denied = kp
        .run(&["users", "update", &id(&second), "--role", "reader"])
        .code(3);
    assert!(denied.stderr.contains("Missing scopes"), "{denied:#?}");
    assert_eq!(kp.json(&["users", "get", &id(&second)])["role"], "owner");
}

#[test]
fn project_users_list_add_get_update_remove() {
    let kp = Keyplane::start();
    let project = kp.create_project("people");
    let owner = kp.json(&["users", "list"])[0].clone();
    let bo = join(&kp, "bo@example.com", "Bo", "reader", &[]);
    // An invite's project grant makes the member on acceptance.
    let cy = join(
        &kp,
        "cy@example.com",
        "Cy",
        "reader",
        &[&format!("{project}:member")],
    );
    let (bo_id, cy_id) = (id(&bo), id(&cy));

    let members = kp.json(&["project-users", "list", "--project", &project]);
    let members = members.as_array().unwrap();
    assert_eq!(
        members.len(),
        2,
        "the creator and the invited: {members:#?}"
    );
    let creator = members.iter().find(|m| m["id"] == owner["id"]).unwrap();
    assert_eq!(creator["object"], "organization.project.user");
    assert_eq!(creator["role"], "owner");
    assert_eq!(creator["email"], "owner@localhost");
    let invited = members.iter().find(|m| m["id"] == cy["id"]).unwrap();
    assert_eq!(invited["role"], "member");
    assert_eq!(invited["name"], "Cy");
    assert!(invited["added_at"].is_i64());

    let added = kp.json(&[
        "project-users",
        "add",
        "--project",
        &project,
        "--user-id",
        &bo_id,
        "--role",
        "member",
    ]);
    assert_eq!(added["object"], "organization.project.user");
    assert_eq!(added["id"], bo_id.as_str());
    assert_eq!(added["email"], "bo@example.com");
    assert_eq!(added["name"], "Bo");
    assert_eq!(added["role"], "member");
    assert!(added["added_at"].is_i64());

    let table = kp
        .run(&["project-users", "list", "--project", &project])
        .ok();
    assert_eq!(table.stdout.lines().count(), 4, "{table:#?}");
    let (header, row) = header_and_row(&table, &bo_id);
    for column in ["ID", "NAME", "EMAIL", "ROLE", "ADDED"] {
        assert!(header.contains(column), "{header}");
    }
    for cell in ["Bo", "bo@example.com", "member", "just now"] {
        assert!(row.contains(cell), "{cell} in {row}");
    }

    assert_eq!(
        kp.json(&["project-users", "get", "--project", &project, &bo_id]),
        added
    );
    let got = kp
        .run(&["project-users", "get", "--project", &project, &bo_id])
        .ok();
    assert_eq!(field(&got, "ID"), bo_id);
    assert_eq!(field(&got, "ROLE"), "member");

    let updated = kp.json(&[
        "project-users",
        "update",
        "--project",
        &project,
        &bo_id,
        "--role",
        "owner",
    ]);
    assert_eq!(updated["role"], "owner");
    assert_eq!(updated["id"], bo_id.as_str());
    let updated = kp
        .run(&[
            "project-users",
            "update",
            "--project",
            &project,
            &cy_id,
            "--role",
            "owner",
        ])
        .ok();
    assert_eq!(field(&updated, "ROLE"), "owner");

    let removed = kp
        .run(&["project-users", "remove", "--project", &project, &bo_id])
        .ok();
    assert_eq!(
        removed.stdout.trim(),
        format!("Deleted project member {bo_id}.")
    );
    let removed = kp.json(&["project-users", "remove", "--project", &project, &cy_id]);
    assert_eq!(
        removed,
        json!({"object": "organization.project.user.deleted", "id": cy_id, "deleted": true})
    );
    // Back in by email this time.
    let back = kp.json(&[
        "project-users",
        "add",
        "--project",
        &project,
        "--email",
        "cy@example.com",
        "--role",
        "owner",
    ]);
    assert_eq!((&back["id"], &back["role"]), (&cy["id"], &json!("owner")));
    let ids: Vec<Value> = kp
        .json(&["project-users", "list", "--project", &project])
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].clone())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(!ids.contains(&json!(bo_id)), "{ids:?}");

    let hint = "`keyplane project-users list --project P`";
    for args in [
        vec!["project-users", "get", "--project", &project, &bo_id],
        vec!["project-users", "get", "--project", &project, NO_USER],
        vec![
            "project-users",
            "update",
            "--project",
            &project,
            &bo_id,
            "--role",
            "member",
        ],
        vec!["project-users", "remove", "--project", &project, &bo_id],
    ] {
        not_found(kp.run(&args), hint);
    }
    not_found(
        kp.run(&["project-users", "list", "--project", "proj_missing"]),
        "`keyplane projects list",
    );
    // Only members of the organization can be added.
    let stranger = kp
        .run(&[
            "project-users",
            "add",
            "--project",
            &project,
            "--email",
            "nobody@example.com",
            "--role",
            "member",
        ])
        .code(1);
    assert!(
        stranger.stderr.contains("Invite them first"),
        "{stranger:#?}"
    );
}

#[test]
fn invites_list_create_get_delete() {
    let kp = Keyplane::start();
    let project = kp.create_project("invited");
    let grant = format!("{project}:owner");

    let created = kp
        .run(&[
            "invites",
            "create",
            "--email",
            "ana@example.com",
            "--role",
            "reader",
            "--project",
            &grant,
        ])
        .ok();
    let ana_id = field(&created, "ID").to_owned();
    assert!(ana_id.starts_with("invite-"), "{created:#?}");
    assert_eq!(field(&created, "EMAIL"), "ana@example.com");
    assert_eq!(field(&created, "ROLE"), "reader");
    assert_eq!(field(&created, "STATUS"), "pending");
    assert_eq!(field(&created, "PROJECTS"), grant);
    assert_eq!(field(&created, "CREATED"), "just now");
    // The accept link (the token's only copy) is shown under the table, once.
    let link_lines: Vec<&str> = created
        .stdout
        .lines()
        .filter(|l| l.starts_with("Accept link"))
        .collect();
    assert_eq!(link_lines.len(), 1, "{created:#?}");
    assert!(link_lines[0].contains("/invite/kpinv_"), "{created:#?}");

    let bo = kp.json(&[
        "invites",
        "create",
        "--email",
        "bo@example.com",
        "--role",
        "owner",
        "--no-projects",
    ]);
    let bo_id = id(&bo);
    assert_eq!(bo["object"], "organization.invite");
    assert_eq!(bo["email"], "bo@example.com");
    assert_eq!(bo["role"], "owner");
    assert_eq!(bo["status"], "pending");
    assert_eq!(bo["projects"], json!([]));
    assert_eq!(bo["accepted_at"], Value::Null);
    assert_eq!(
        bo["expires_at"].as_i64().unwrap() - bo["created_at"].as_i64().unwrap(),
        7 * 86_400
    );
    // `…/invite/{token}` under the public URL (which defaults to the configured listen address).
    assert!(
        bo["accept_url"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:"),
        "{bo:#}"
    );
    assert!(token_of(&bo).len() >= 32, "{bo:#}");

    // The link appears in the create answer only.
    let mut stored = bo.clone();
    stored.as_object_mut().unwrap().remove("accept_url");
    assert_eq!(kp.json(&["invites", "get", &bo_id]), stored);
    let listed = kp.json(&["invites", "list"]);
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2, "{listed:#?}");
    assert!(listed.iter().all(|i| i.get("accept_url").is_none()));
    assert!(listed.contains(&stored));
    let ana = listed.iter().find(|i| i["id"] == ana_id.as_str()).unwrap();
    assert_eq!(ana["projects"], json!([{"id": project, "role": "owner"}]));

    let table = kp.run(&["invites", "list"]).ok();
    assert_eq!(table.stdout.lines().count(), 3, "{table:#?}");
    let (header, row) = header_and_row(&table, &ana_id);
    for column in [
        "ID", "EMAIL", "ROLE", "STATUS", "PROJECTS", "CREATED", "EXPIRES", "ACCEPTED",
    ] {
        assert!(header.contains(column), "{header}");
    }
    for cell in ["ana@example.com", "reader", "pending", &grant] {
        assert!(row.contains(cell), "{cell} in {row}");
    }
    assert!(
        row.contains("in 7 days") || row.contains("in 6 days"),
        "{row}"
    );
    let all = kp.json(&["invites", "list", "--limit", "1", "--all"]);
    assert_eq!(all.as_array().unwrap().len(), 2, "{all:#}");

    let got = kp.run(&["invites", "get", &ana_id]).ok();
    assert_eq!(field(&got, "ID"), ana_id);
    assert_eq!(field(&got, "STATUS"), "pending");

    // Accepting makes the user; the invite is then accepted for good.
    let (status, user) = post_accept(
        &kp,
        &json!({"token": token_of(&bo), "name": "Bo", "password": PASSWORD}),
    );
    assert_eq!(status, 200, "{user:#}");
    assert_eq!(user["role"], "owner");
    let accepted = kp.json(&["invites", "get", &bo_id]);
    assert_eq!(accepted["status"], "accepted");
    assert!(accepted["accepted_at"].is_i64());
    let again = post_accept(
        &kp,
        &json!({"token": token_of(&bo), "name": "Bo", "password": PASSWORD}),
    );
    assert_eq!(again.0, 400, "{again:?}");
    let refused = kp.run(&["invites", "delete", &bo_id]).code(1);
    assert!(
        refused
            .stderr
            .contains("has been accepted and cannot be deleted"),
        "{refused:#?}"
    );
    let member = kp
        .run(&[
            "invites",
            "create",
            "--email",
            "bo@example.com",
            "--role",
            "reader",
        ])
        .code(1);
    assert!(member.stderr.contains("already a member"), "{member:#?}");

    let deleted = kp.run(&["invites", "delete", &ana_id]).ok();
    assert_eq!(deleted.stdout.trim(), format!("Deleted invite {ana_id}."));
    let cy = kp.json(&[
        "invites",
        "create",
        "--email",
        "cy@example.com",
        "--role",
        "reader",
    ]);
    assert_eq!(cy["projects"], json!([]), "no --project, no project");
    let cy_id = id(&cy);
    assert_eq!(
        kp.json(&["invites", "delete", &cy_id]),
        json!({"object": "organization.invite.deleted", "id": cy_id, "deleted": true})
    );
    // A withdrawn invite's link no longer works.
    let (status, body) = post_accept(
        &kp,
        &json!({"token": token_of(&cy), "name": "Cy", "password": PASSWORD}),
    );
    assert_eq!(status, 404, "{body:#}");

    for args in [
        vec!["invites", "get", &ana_id],
        vec!["invites", "get", NO_INVITE],
        vec!["invites", "delete", &ana_id],
        vec!["invites", "delete", NO_INVITE],
    ] {
        not_found(kp.run(&args), "`keyplane invites list`");
    }
    let unknown_project = kp
        .run(&[
            "invites",
            "create",
            "--email",
            "dee@example.com",
            "--role",
            "reader",
            "--project",
            "proj_missing",
        ])
        .code(1);
    assert!(
        unknown_project.stderr.contains("no active project"),
        "{unknown_project:#?}"
    );
}

#[test]
fn rate_limits_list_and_set_in_table_and_json() {
    let kp = Keyplane::start();
    let project = kp.create_project("limits");
    let limits = kp.json(&["rate-limits", "list", "--project", &project, "--all"]);
    let limits = limits.as_array().unwrap();
    assert!(!limits.is_empty());
    for l in limits {
        assert_eq!(l["object"], "project.rate_limit");
        let model = l["model"].as_str().unwrap();
        assert_eq!(l["id"], format!("rl-{model}"), "{l:#}");
        assert!(l["max_requests_per_1_minute"].is_u64(), "{l:#}");
        assert!(l["max_tokens_per_1_minute"].is_u64(), "{l:#}");
    }
    let first = limits[0].clone();
    let (rl_id, model) = (id(&first), first["model"].as_str().unwrap().to_owned());

    let table = kp
        .run(&["rate-limits", "list", "--project", &project, "--all"])
        .ok();
    assert_eq!(table.stdout.lines().count(), limits.len() + 1, "{table:#?}");
    let (header, row) = header_and_row(&table, &format!("{rl_id} "));
    for column in ["ID", "MODEL", "REQ/MIN", "TOKENS/MIN"] {
        assert!(header.contains(column), "{header}");
    }
    assert!(
        row.contains(&first["max_requests_per_1_minute"].to_string()),
        "{row}"
    );

    let set = kp.json(&[
        "rate-limits",
        "set",
        "--project",
        &project,
        &rl_id,
        "--max-requests-per-1-minute",
        "7",
        "--max-requests-per-1-day",
        "70",
    ]);
    let mut expected = first.clone();
    expected["max_requests_per_1_minute"] = json!(7);
    expected["max_requests_per_1_day"] = json!(70);
    assert_eq!(set, expected);
    let set = kp
        .run(&[
            "rate-limits",
            "set",
            "--project",
            &project,
            "--model",
            &model,
            "--max-tokens-per-1-minute",
            "777",
        ])
        .ok();
    assert_eq!(field(&set, "ID"), rl_id);
    assert_eq!(field(&set, "MODEL"), model);
    assert_eq!(field(&set, "REQ/MIN"), "7");
    assert_eq!(field(&set, "TOKENS/MIN"), "777");
    assert_eq!(field(&set, "REQ/DAY"), "70");
    let listed = kp.json(&["rate-limits", "list", "--project", &project, "--all"]);
    let listed = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["id"] == rl_id.as_str());
    assert_eq!(listed.unwrap()["max_tokens_per_1_minute"], 777);

    not_found(
        kp.run(&[
            "rate-limits",
            "set",
            "--project",
            &project,
            "rl-no-such-model",
            "--max-requests-per-1-minute",
            "1",
        ]),
        "`keyplane rate-limits list --project P`",
    );
    let unknown_model = kp
        .run(&[
            "rate-limits",
            "set",
            "--project",
            &project,
            "--model",
            "no-such-model",
            "--max-requests-per-1-minute",
            "1",
        ])
        .code(4);
    assert!(
        unknown_model.stderr.contains("rate-limits list"),
        "{unknown_model:#?}"
    );
    not_found(
        kp.run(&["rate-limits", "list", "--project", "proj_missing"]),
        "`keyplane projects list",
    );
}
