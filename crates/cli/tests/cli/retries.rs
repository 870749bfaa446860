//! The retry loop: 429 with retry-after, 5xx forever, bounded and reported on stderr.

use crate::helpers::{error_body, list, FaultServer};
use std::time::{Duration, Instant};

#[test]
fn rate_limited_twice_then_ok() {
    let fault = FaultServer::start(|_, n| {
        if n < 2 {
            (
                429,
                vec![("retry-after", "1".to_owned())],
                error_body("Rate limit reached", Some("rate_limit_exceeded")),
            )
        } else {
            (
                200,
                vec![],
                list(
                    vec![
                        serde_json::json!({"id": "proj_1", "object": "organization.project", "name": "p", "created_at": 0, "status": "active"}),
                    ],
                    false,
                ),
            )
        }
    });
    let start = Instant::now();
    let run = fault.run(&["projects", "list", "--output", "json"]).ok();
    let elapsed = start.elapsed();
    assert_eq!(run.json()[0]["id"], "proj_1");
    assert_eq!(fault.requests().len(), 3);
    let retries: Vec<&str> = run.stderr.lines().filter(|l| l.contains("retry")).collect();
    assert_eq!(retries.len(), 2, "{run:#?}");
    assert!(
        retries[0].contains("429") && retries[0].contains("retry 1 of 4"),
        "{retries:?}"
    );
    assert!(retries[1].contains("retry 2 of 4") && retries[1].contains("as the server asked"));
    assert!(
        elapsed >= Duration::from_secs(2),
        "retry-after was honoured: {elapsed:?}"
    );
}

#[test]
fn retry_after_ms_takes_precedence() {
    let fault = FaultServer::start(|_, n| {
        if n == 0 {
            (
                503,
                vec![
                    ("retry-after-ms", "50".to_owned()),
                    ("retry-after", "30".to_owned()),
                ],
                String::new(),
            )
        } else {
            (200, vec![], list(vec![], false))
        }
    });
    let start = Instant::now();
    fault.run(&["admin-keys", "list"]).ok();
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(fault.requests().len(), 2);
}

#[test]
fn unavailable_forever_gives_up_after_bounded_retries() {
    let fault = FaultServer::start(|_, _| (503, vec![], error_body("overloaded", None)));
    let run = fault.run(&["projects", "list"]).code(5);
    assert_eq!(fault.requests().len(), 5, "one attempt and 4 retries");
    assert_eq!(
        run.stderr
            .lines()
            .filter(|l| l.contains("; retry "))
            .count(),
        4,
        "{run:#?}"
    );
    assert!(
        run.stderr.contains("503") && run.stderr.contains("after 4 retries"),
        "{run:#?}"
    );

    let fault = FaultServer::start(|_, _| (500, vec![], error_body("boom", None)));
    fault
        .run(&["projects", "list", "--max-retries", "0"])
        .code(5);
    assert_eq!(fault.requests().len(), 1);
}

#[test]
fn client_errors_are_not_retried() {
    let fault = FaultServer::start(|_, _| (400, vec![], error_body("Invalid 'name'.", None)));
    let run = fault.run(&["projects", "create", "--name", "x"]).code(1);
    assert!(run.stderr.contains("Invalid 'name'."), "{run:#?}");
    assert_eq!(fault.requests().len(), 1);
}

#[test]
fn timeouts_are_reported_and_a_create_is_never_repeated() {
    let slow = || {
        FaultServer::start(|_, _| {
            std::thread::sleep(Duration::from_millis(2500));
            (200, vec![], list(vec![], false))
        })
    };
    let fault = slow();
    let run = fault
        .run(&["projects", "list", "--timeout", "1", "--max-retries", "0"])
        .code(5);
    assert!(
        run.stderr.contains("no answer from") && run.stderr.contains("within 1s"),
        "{run:#?}"
    );
    assert!(run.stderr.contains("--timeout"));
    drop(fault);

    // A POST that timed out may have been processed: retrying could create twice.
    let fault = slow();
    fault
        .run(&["projects", "create", "--name", "once", "--timeout", "1"])
        .code(5);
    assert_eq!(fault.requests().len(), 1);
}
