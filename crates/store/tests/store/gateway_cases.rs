use crate::harness::on_both;
use keyplane_core::ids::{OrgId, ProjectId, UserId};
use keyplane_core::keys::{KeyHasher, KeyKind};
use keyplane_core::model::{KeyOwnerId, NewApiKey, OrgRole, Organization, Project, User};
use keyplane_core::pagination::{Limit, PageRequest};
use keyplane_core::policy::{ModelPermissions, RateLimitOverride, SpendAlert, SpendLimit};
use keyplane_core::ports::{AlertStore, OrgStore, PolicyStore, ProjectStore, UsageStore};
use keyplane_core::scopes::Permissions;
use keyplane_core::usage::{Folded, UsageFilter, UsageRow};
use keyplane_store::Store;

async fn project(store: &Store) -> ProjectId {
    let owner = User {
        id: UserId::generate(),
        email: "o@example.com".into(),
        name: "o".into(),
        role: OrgRole::Owner,
        added_at: 1,
    };
    let (_, m) = KeyHasher::new(None).generate(KeyKind::Admin);
    let key = NewApiKey {
        id: m.id,
        kind: KeyKind::Admin,
        project_id: None,
        name: "a".into(),
        redacted_value: m.redacted_value,
        hash: m.hash,
        permissions: Permissions::All,
        owner: KeyOwnerId::User(owner.id.clone()),
        created_at: 1,
        expires_at: None,
    };
    let org = Organization {
        id: OrgId::generate().to_string(),
        name: "o".into(),
        created_at: 1,
    };
    store.initialize(&org, &owner, &key, &[]).await.unwrap();
    let p = Project {
        id: ProjectId::generate(),
        name: "p".into(),
        created_at: 1,
        archived_at: None,
        external_key_id: None,
        residency: None,
    };
    store.create_project(&p, &owner.id, &[]).await.unwrap();
    p.id
}

fn row(
    minute: i64,
    project: &ProjectId,
    key: &str,
    model: &str,
    requests: i64,
    input: i64,
) -> UsageRow {
    UsageRow {
        minute,
        family: "completions".into(),
        project_id: project.to_string(),
        api_key_id: key.into(),
        user_id: Some("user-1".into()),
        service_account_id: None,
        model: model.into(),
        requests,
        input_tokens: input,
        output_tokens: 2 * input,
        cached_tokens: 0,
        images: 0,
        cost_nano_usd: 10 * requests,
    }
}

#[tokio::test]
async fn usage_upserts_add_up_and_bucket() {
    on_both(|store| async move {
        let p = project(&store).await;
        // Two flushes of the same minute add up (two instances, or two flush cycles).
        store
            .add_usage(&[row(60, &p, "key_a", "gpt-4o", 1, 10)])
            .await
            .unwrap();
        store
            // The same conflict key twice in one batch is merged, not refused.
            .add_usage(&[
                row(60, &p, "key_a", "gpt-4o", 1, 2),
                row(60, &p, "key_a", "gpt-4o", 1, 3),
                row(120, &p, "key_b", "gpt-4o", 1, 1),
            ])
            .await
            .unwrap();
        store
            .add_usage(&[row(3_660, &p, "key_a", "gpt-4o-mini", 4, 4)])
            .await
            .unwrap();

        let filter = UsageFilter {
            start: 0,
            end: 7_200,
            family: Some("completions".into()),
            ..Default::default()
        };
        let minute = store.usage(&filter, 60).await.unwrap();
        let a60 = minute
            .iter()
            .find(|r| r.minute == 60 && r.api_key_id == "key_a")
            .unwrap();
        assert_eq!(
            (
                a60.requests,
                a60.input_tokens,
                a60.output_tokens,
                a60.cost_nano_usd
            ),
            (3, 15, 30, 30)
        );
        assert_eq!(a60.user_id.as_deref(), Some("user-1"));

        let hourly = store.usage(&filter, 3_600).await.unwrap();
        let first_hour: i64 = hourly
            .iter()
            .filter(|r| r.minute == 0)
            .map(|r| r.requests)
            .sum();
        let second_hour: i64 = hourly
            .iter()
            .filter(|r| r.minute == 3_600)
            .map(|r| r.requests)
            .sum();
        assert_eq!((first_hour, second_hour), (4, 4));

        let only_b = UsageFilter {
            api_key_ids: vec!["key_b".into()],
            ..filter.clone()
        };
        assert_eq!(store.usage(&only_b, 60).await.unwrap().len(), 1);
        let mini = UsageFilter {
            models: vec!["gpt-4o-mini".into(), "nope".into()],
            ..filter.clone()
        };
        assert_eq!(store.usage(&mini, 60).await.unwrap()[0].requests, 4);
        let other_family = UsageFilter {
            family: Some("embeddings".into()),
            ..filter.clone()
        };
        assert!(store.usage(&other_family, 60).await.unwrap().is_empty());

        assert_eq!(store.cost_since(Some(&p), 0).await.unwrap(), 80);
        assert_eq!(store.cost_since(Some(&p), 100).await.unwrap(), 50);
        assert_eq!(store.cost_since(None, 0).await.unwrap(), 80);
    })
    .await;
}

#[tokio::test]
async fn policies_round_trip() {
    on_both(|store| async move {
        let p = project(&store).await;
        assert!(store.rate_limit_overrides(&p).await.unwrap().is_empty());
        let mut o = RateLimitOverride {
            model: "gpt-4o".into(),
            max_requests_per_1_minute: Some(10),
            ..Default::default()
        };
        store.set_rate_limit(&p, &o, &[]).await.unwrap();
        o.max_tokens_per_1_minute = Some(99);
        store.set_rate_limit(&p, &o, &[]).await.unwrap();
        assert_eq!(store.rate_limit_overrides(&p).await.unwrap(), vec![o]);

        let perms = ModelPermissions::parse("allow_list", &["gpt-4o".into()]).unwrap();
        store
            .set_model_permissions(&p, Some(&perms), &[])
            .await
            .unwrap();
        assert_eq!(store.model_permissions(&p).await.unwrap(), Some(perms));
        store.set_model_permissions(&p, None, &[]).await.unwrap();
        assert_eq!(store.model_permissions(&p).await.unwrap(), None);

        let limit = SpendLimit {
            threshold_amount: 500,
            currency: "USD".into(),
            interval: "month".into(),
        };
        store.set_spend_limit(&p, Some(&limit), &[]).await.unwrap();
        assert_eq!(store.spend_limit(&p).await.unwrap(), Some(limit));
        store.set_spend_limit(&p, None, &[]).await.unwrap();
        assert_eq!(store.spend_limit(&p).await.unwrap(), None);
    })
    .await;
}

#[tokio::test]
async fn alerts_fire_once_per_period() {
    on_both(|store| async move {
        let p = project(&store).await;
        let mut a = SpendAlert {
            id: "alert_1".into(),
            project_id: Some(p.to_string()),
            threshold_amount: 100,
            currency: "USD".into(),
            interval: "month".into(),
            recipients: vec!["ops@example.com".into()],
            subject_prefix: None,
            created_at: 1,
        };
        store.create_alert(&a, &[]).await.unwrap();
        let org_alert = SpendAlert {
            id: "alert_2".into(),
            project_id: None,
            ..a.clone()
        };
        store.create_alert(&org_alert, &[]).await.unwrap();
        let page = PageRequest {
            limit: Limit::parse(None).unwrap(),
            after: None,
        };
        assert_eq!(
            store.list_alerts(Some(&p), &page).await.unwrap().items,
            vec![a.clone()]
        );
        assert_eq!(
            store.list_alerts(None, &page).await.unwrap().items,
            vec![org_alert.clone()]
        );
        a.threshold_amount = 200;
        store.update_alert(&a, &[]).await.unwrap();
        assert_eq!(store.alert("alert_1").await.unwrap(), Some(a.clone()));
        assert_eq!(store.all_alerts().await.unwrap().len(), 2);

        assert!(store.record_firing("alert_1", 1000, 5).await.unwrap());
        assert!(!store.record_firing("alert_1", 1000, 6).await.unwrap());
        assert!(store.record_firing("alert_1", 2000, 7).await.unwrap());

        assert!(store.delete_alert("alert_1", 9, &[]).await.unwrap());
        assert!(!store.delete_alert("alert_1", 9, &[]).await.unwrap());
        assert_eq!(store.alert("alert_1").await.unwrap(), None);
    })
    .await;
}

#[tokio::test]
async fn a_batch_of_every_chunk_size_writes_every_row() {
    // 341 = 256 + 64 + 16 + 4 + 1 rows: one statement of each fixed size. 300 = 256 + 16 +
    // 16 + 4 + 4 + 4: repeated sizes. The second batch adds to the first one's rows.
    on_both(|store| async move {
        let p = project(&store).await;
        let rows = |n: usize| -> Vec<UsageRow> {
            (0..n)
                .map(|i| row(60, &p, &format!("key_{i:03}"), "gpt-4o", i as i64 + 1, 1))
                .collect()
        };
        // Recorded rows reach the minute rows when their minute is folded, in chunks.
        store.add_usage(&rows(341)).await.unwrap();
        assert_eq!(store.fold_usage(120, 10).await.unwrap().groups, 1);
        store.add_usage(&rows(300)).await.unwrap();
        assert_eq!(store.fold_usage(120, 10).await.unwrap().groups, 1);
        assert_eq!(store.fold_usage(120, 10).await.unwrap().groups, 0);
        let filter = UsageFilter {
            start: 0,
            end: 120,
            ..Default::default()
        };
        let mut got = store.usage(&filter, 60).await.unwrap();
        got.sort_by(|a, b| a.api_key_id.cmp(&b.api_key_id));
        assert_eq!(got.len(), 341);
        for (i, r) in got.iter().enumerate() {
            assert_eq!(r.api_key_id, format!("key_{i:03}"));
            let times = if i < 300 { 2 } else { 1 };
            assert_eq!(
                (r.requests, r.input_tokens),
                (times * (i as i64 + 1), times),
                "{}",
                r.api_key_id
            );
        }
    })
    .await;
}

/// Every query the usage and cost endpoints make, with their answers in a comparable order.
async fn usage_answers(store: &Store) -> Vec<String> {
    let base = UsageFilter {
        start: 0,
        end: 7_200,
        ..Default::default()
    };
    let filters = [
        base.clone(),
        UsageFilter {
            family: Some("completions".into()),
            ..base.clone()
        },
        UsageFilter {
            project_ids: vec!["proj_b".into()],
            ..base.clone()
        },
        UsageFilter {
            api_key_ids: vec!["key_a".into(), "key_c".into()],
            ..base.clone()
        },
        UsageFilter {
            user_ids: vec!["user-1".into()],
            ..base.clone()
        },
        UsageFilter {
            models: vec!["gpt-4o".into()],
            family: Some("completions".into()),
            ..base.clone()
        },
        UsageFilter {
            start: 120,
            end: 3_660,
            ..base.clone()
        },
    ];
    let mut answers = Vec::new();
    for f in &filters {
        for bucket in [60, 3_600, 86_400] {
            let mut rows = store.usage(f, bucket).await.unwrap();
            let mut minutes: Vec<i64> = rows.iter().map(|r| r.minute).collect();
            assert!(minutes.is_sorted(), "rows in bucket order: {minutes:?}");
            minutes.dedup();
            rows.sort_by(|a, b| {
                (a.minute, &a.family, &a.project_id, &a.api_key_id, &a.model).cmp(&(
                    b.minute,
                    &b.family,
                    &b.project_id,
                    &b.api_key_id,
                    &b.model,
                ))
            });
            answers.push(format!("{f:?} {bucket} {rows:?}"));
        }
    }
    for (project, since) in [
        (None, 0),
        (None, 120),
        (Some("proj_a"), 0),
        (Some("proj_b"), 3_600),
    ] {
        let project = project.map(|p: &str| ProjectId::from_trusted(p.to_owned()));
        let cost = store.cost_since(project.as_ref(), since).await.unwrap();
        answers.push(format!("{project:?} {since} {cost}"));
    }
    answers
}

fn recorded(minute: i64, project: &str, key: &str, family: &str, model: &str, n: i64) -> UsageRow {
    UsageRow {
        minute,
        family: family.into(),
        project_id: project.into(),
        api_key_id: key.into(),
        user_id: (key != "key_c").then(|| format!("user-{}", key.len() % 2)),
        service_account_id: (key == "key_c").then(|| "svc_1".to_owned()),
        model: model.into(),
        requests: n,
        input_tokens: 10 * n,
        output_tokens: 3 * n,
        cached_tokens: n / 2,
        images: 0,
        cost_nano_usd: 1_000 * n + 7,
    }
}

/// Three flushes' worth of rows over three minutes, two projects, keys, models and families,
/// identities repeating across flushes.
async fn record_three_flushes(store: &Store) {
    for flush in 0..3 {
        let mut rows = Vec::new();
        for (minute, project, key) in [
            (60, "proj_a", "key_a"),
            (60, "proj_b", "key_b"),
            (120, "proj_a", "key_a"),
            (120, "proj_b", "key_c"),
            (3_660, "proj_b", "key_b"),
        ] {
            rows.push(recorded(
                minute,
                project,
                key,
                "completions",
                "gpt-4o",
                flush + 1,
            ));
            if flush != 1 {
                rows.push(recorded(
                    minute,
                    project,
                    key,
                    "embeddings",
                    "text-embedding-3-small",
                    2,
                ));
                rows.push(recorded(
                    minute,
                    project,
                    key,
                    "completions",
                    "gpt-4o-mini",
                    1,
                ));
            }
        }
        store.add_usage(&rows).await.unwrap();
    }
}

#[tokio::test]
async fn usage_reads_the_same_before_during_and_after_folding() {
    on_both(|store| async move {
        record_three_flushes(&store).await;
        let recorded_only = usage_answers(&store).await;
        // Counted as recorded, before any fold: key_a's gpt-4o row at minute 60 had 1 + 2 + 3
        // requests in three flushes.
        let f = UsageFilter {
            start: 60,
            end: 120,
            api_key_ids: vec!["key_a".into()],
            models: vec!["gpt-4o".into()],
            ..Default::default()
        };
        let rows = store.usage(&f, 60).await.unwrap();
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!((rows[0].requests, rows[0].input_tokens), (6, 60));
        assert_eq!(rows[0].user_id.as_deref(), Some("user-1"));
        let all = store.cost_since(None, 0).await.unwrap();
        assert_eq!(all, 5 * (6_000 + 21 + 2 * (2_007 + 1_007)));

        // One group at a time, oldest first; minutes from `before` on stay recorded.
        assert_eq!(
            store.fold_usage(3_600, 1).await.unwrap(),
            Folded {
                groups: 1,
                oldest_minute: Some(60)
            }
        );
        assert_eq!(usage_answers(&store).await, recorded_only);
        let folded = store.fold_usage(3_600, 10).await.unwrap();
        assert_eq!(folded.groups, 3);
        assert_eq!(folded.oldest_minute, Some(60));
        assert_eq!(store.fold_usage(3_600, 10).await.unwrap().groups, 0);
        assert_eq!(usage_answers(&store).await, recorded_only);

        // Rows recorded after their minute was folded add to it.
        store
            .add_usage(&[recorded(60, "proj_a", "key_a", "completions", "gpt-4o", 4)])
            .await
            .unwrap();
        let rows = store.usage(&f, 60).await.unwrap();
        assert_eq!((rows[0].requests, rows[0].input_tokens), (10, 100));
        assert_eq!(store.fold_usage(i64::MAX, 10).await.unwrap().groups, 2);
        assert_eq!(store.usage(&f, 60).await.unwrap(), rows);
        assert_eq!(store.fold_usage(i64::MAX, 10).await.unwrap().groups, 0);
    })
    .await;
}

#[tokio::test]
async fn instances_folding_at_once_fold_each_row_once() {
    on_both(|store| async move {
        record_three_flushes(&store).await;
        let before = usage_answers(&store).await;
        let fold_all = |store: Store| async move {
            loop {
                if store.fold_usage(i64::MAX, 1).await.unwrap().groups == 0 {
                    break;
                }
            }
        };
        tokio::join!(
            fold_all(store.clone()),
            fold_all(store.clone()),
            fold_all(store.clone())
        );
        assert_eq!(usage_answers(&store).await, before);
    })
    .await;
}
