//! Paging with `--all`, CSV, and tables that fit the terminal width.

use crate::helpers::Keyplane;
use std::collections::HashSet;

#[test]
fn all_follows_the_cursor_through_every_page() {
    let kp = Keyplane::start();
    let mut ids = HashSet::new();
    for i in 0..25 {
        ids.insert(kp.create_project(&format!("project {i:02}")));
    }
    let one_page = kp.json(&["projects", "list", "--limit", "7"]);
    assert_eq!(one_page.as_array().unwrap().len(), 7);

    let all = kp.json(&["projects", "list", "--all", "--limit", "7"]);
    let got: HashSet<String> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        all.as_array().unwrap().len(),
        25,
        "no duplicates across pages"
    );
    assert_eq!(got, ids);

    // --after continues where a page ended.
    let last = one_page[6]["id"].as_str().unwrap();
    let next = kp.json(&["projects", "list", "--limit", "7", "--after", last]);
    assert_eq!(next[0]["id"], all[7]["id"]);

    let table = kp.run(&["projects", "list", "--all", "--limit", "7"]).ok();
    assert_eq!(table.stdout.lines().count(), 26, "header and 25 rows");
    assert!(
        !table.stderr.contains("fetched"),
        "no progress indicator when stdout is not a terminal: {}",
        table.stderr
    );
    let csv = kp
        .run(&[
            "projects", "list", "--all", "--limit", "7", "--output", "csv",
        ])
        .ok();
    let lines: Vec<&str> = csv.stdout.lines().collect();
    assert_eq!(lines[0], "id,name,status,created,archived");
    assert_eq!(lines.len(), 26);
    assert!(
        lines[1..].iter().all(|l| l.contains(",active,20")),
        "RFC 3339 times: {}",
        lines[1]
    );
}

#[test]
fn tables_fit_the_terminal_width_without_cutting_ids() {
    let kp = Keyplane::start();
    let project = kp.create_project("a project with a fairly long name to squeeze");
    for name in ["first key with a long descriptive name", "second"] {
        kp.run(&[
            "api-keys",
            "create",
            "--project",
            &project,
            "--name",
            name,
            "-q",
        ])
        .ok();
    }
    let keys = kp.json(&["api-keys", "list", "--project", &project]);
    for width in [60usize, 80, 120] {
        let run = kp
            .run_env(
                &["api-keys", "list", "--project", &project],
                &[("COLUMNS", &width.to_string())],
            )
            .ok();
        for line in run.stdout.lines() {
            assert!(line.chars().count() <= width, "{width}: {line:?}");
        }
        for key in keys.as_array().unwrap() {
            let id = key["id"].as_str().unwrap();
            assert!(
                run.stdout.contains(id),
                "ids are never truncated at {width}"
            );
        }
    }
    let wide = kp.run(&["api-keys", "list", "--project", &project]).ok();
    assert!(wide
        .stdout
        .contains("first key with a long descriptive name"));
    let narrow = kp.run_env(&["projects", "list"], &[("COLUMNS", "40")]).ok();
    assert!(narrow.stdout.contains('…'), "{narrow:#?}");
}
