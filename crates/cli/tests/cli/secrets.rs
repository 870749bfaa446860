//! A created key's value: once on stdout, alone with --quiet, in a 0600 file with --save-to.

use crate::helpers::{is_project_key, Keyplane};

#[test]
fn create_prints_the_value_exactly_once_in_every_format() {
    let kp = Keyplane::start();
    let project = kp.create_project("secrets");

    let json = kp
        .run(&[
            "api-keys",
            "create",
            "--project",
            &project,
            "--name",
            "j",
            "--output",
            "json",
        ])
        .ok();
    let doc = json.json();
    let value = doc["value"].as_str().unwrap();
    assert!(is_project_key(value));
    assert_eq!(json.stdout.matches(value).count(), 1);
    assert!(!json.stderr.contains(value), "never on stderr");

    let table = kp
        .run(&["api-keys", "create", "--project", &project, "--name", "t"])
        .ok();
    let values: Vec<&str> = table
        .stdout
        .split_whitespace()
        .filter(|w| w.starts_with("sk-proj-") && w.len() > 20)
        .collect();
    assert_eq!(values.len(), 1, "{table:#?}");
    assert!(is_project_key(values[0]));
    assert!(table.stdout.contains("shown only this once"));

    let csv = kp
        .run(&[
            "api-keys",
            "create",
            "--project",
            &project,
            "--name",
            "c",
            "--output",
            "csv",
        ])
        .ok();
    let lines: Vec<&str> = csv.stdout.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[0].ends_with(",value"));
    let value = lines[1].rsplit(',').next().unwrap();
    assert!(is_project_key(value));
    assert_eq!(csv.stdout.matches(value).count(), 1);
}

#[test]
fn quiet_prints_only_the_value() {
    let kp = Keyplane::start();
    let project = kp.create_project("quiet");
    let run = kp
        .run(&[
            "api-keys",
            "create",
            "--project",
            &project,
            "--name",
            "ci",
            "--quiet",
        ])
        .ok();
    let value = run.stdout.strip_suffix('\n').unwrap();
    assert!(is_project_key(value), "{run:#?}");
    assert!(!value.contains('\n'));
    // The captured value is a working key: the server knows it.
    let keys = kp.json(&["api-keys", "list", "--project", &project]);
    let redacted = keys[0]["redacted_value"].as_str().unwrap();
    assert!(redacted.ends_with(&value[value.len() - 4..]));
    let admin = kp
        .run(&["admin-keys", "create", "--name", "a", "--quiet"])
        .ok();
    assert!(admin.stdout.trim().starts_with("sk-admin-"));
    assert_eq!(admin.stdout.lines().count(), 1);
}

#[cfg(unix)]
#[test]
fn save_to_writes_a_0600_file_and_never_overwrites() {
    use std::os::unix::fs::PermissionsExt;
    let kp = Keyplane::start();
    let project = kp.create_project("files");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ci.key");
    let path_str = path.to_str().unwrap();

    let run = kp
        .run(&[
            "api-keys",
            "create",
            "--project",
            &project,
            "--name",
            "ci",
            "--save-to",
            path_str,
            "--output",
            "json",
        ])
        .ok();
    let saved = std::fs::read_to_string(&path).unwrap();
    let value = saved.trim_end();
    assert!(is_project_key(value));
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        !run.stdout.contains(value),
        "the value went to the file only"
    );
    assert!(run.json().get("value").is_none());
    assert!(run.stderr.contains("0600"));

    let again = kp
        .run(&[
            "api-keys",
            "create",
            "--project",
            &project,
            "--name",
            "ci2",
            "--save-to",
            path_str,
        ])
        .code(2);
    assert!(again.stderr.contains("refusing to overwrite"), "{again:#?}");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        saved,
        "file untouched"
    );
    let keys = kp.json(&["api-keys", "list", "--project", &project]);
    assert_eq!(
        keys.as_array().unwrap().len(),
        1,
        "no key was created for the refused file"
    );

    // A failed create leaves no file behind.
    let missing = dir.path().join("never.key");
    kp.run(&[
        "api-keys",
        "create",
        "--project",
        "proj_missing",
        "--name",
        "x",
        "--save-to",
        missing.to_str().unwrap(),
    ])
    .code(4);
    assert!(!missing.exists());
}
