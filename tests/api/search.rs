//! Code search (issue 15): relevance on clinical queries over the full bundled lists, the
//! index following changes on this instance and another, and a flood of searches that
//! leaves everything else answering.

use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use medlabel::auth::Role;
use serde_json::json;

use crate::helpers::{TestApp, TestClient};

/// Loads both bundled code lists (112k codes) and builds the index over them.
async fn load_bundled(app: &TestApp) {
    // A command's work, not a request's: outside `Db::run` and its time limit.
    let db = app.state.db.clone();
    actix_web::web::block(move || {
        let mut conn = db.get()?;
        medlabel::codesets::import_bundled_if_absent(&mut conn)
    })
    .await
    .unwrap()
    .expect("import the bundled lists");
    app.refresh_code_index().await;
}

async fn codes_of(client: &TestClient, path: &str) -> Vec<String> {
    let res = client.get(path).await;
    assert_eq!(res.status, StatusCode::OK, "{path}: {}", res.text);
    res.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap().to_owned())
        .collect()
}

fn search_path(query: &str, system: &str, limit: usize) -> String {
    let q = percent_encoding::utf8_percent_encode(query, percent_encoding::NON_ALPHANUMERIC);
    let system = if system.is_empty() {
        String::new()
    } else {
        format!("&system={system}")
    };
    format!("/api/v1/codes?q={q}{system}&limit={limit}")
}

/// `tests/relevance/queries.tsv`: what clinicians type, and the codes they want in the top 5.
/// At least 90 % of the queries, and of each kind at least 75 %, must find one.
#[actix_web::test]
async fn clinical_queries_find_an_expected_code_in_the_top_five() {
    let app = TestApp::spawn().await;
    load_bundled(&app).await;
    let doctor = app.token_client(&[Role::Doctor]).await;
    let table = include_str!("../relevance/queries.tsv");
    let mut kinds: std::collections::BTreeMap<&str, (usize, usize, usize)> = Default::default();
    let mut misses = Vec::new();
    for line in table.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split('\t').collect();
        let [kind, system, query, expected] = fields[..] else {
            panic!("a row has kind, system, query, expected: {line:?}");
        };
        let expected: Vec<&str> = expected.split(',').collect();
        let found = codes_of(&doctor, &search_path(query, system, 5)).await;
        let counts = kinds.entry(kind).or_default();
        counts.0 += 1;
        if found
            .first()
            .is_some_and(|c| expected.contains(&c.as_str()))
        {
            counts.1 += 1;
        }
        if found.iter().any(|c| expected.contains(&c.as_str())) {
            counts.2 += 1;
        } else {
            misses.push(format!(
                "{kind} {system:?} {query:?}: want {expected:?}, got {found:?}"
            ));
        }
    }
    let (total, top5): (usize, usize) = kinds.values().fold((0, 0), |a, k| (a.0 + k.0, a.1 + k.2));
    for (kind, (n, top1, top5)) in &kinds {
        println!("{kind:14} top1 {top1}/{n}  top5 {top5}/{n}");
    }
    println!("misses:\n{}", misses.join("\n"));
    assert!(total >= 40, "at least 40 pairs");
    assert!(
        top5 * 10 >= total * 9,
        "{top5}/{total} in the top 5; misses:\n{}",
        misses.join("\n")
    );
    for (kind, (n, _, hits)) in &kinds {
        assert!(hits * 4 >= n * 3, "{kind}: {hits}/{n} in the top 5");
    }
}

/// A code created, renamed or deactivated through the API is found (or no longer found) by
/// the very next search here, and by another instance on the same database within 5 s.
#[actix_web::test]
async fn the_index_follows_changes_here_at_once_and_on_another_instance_within_seconds() {
    let app = TestApp::spawn_with(&[("MEDLABEL_CODE_INDEX_POLL_MS", "200")]).await;
    app.load_codes().await;
    let other =
        TestApp::spawn_on((*app.state.settings).clone(), tempfile::tempdir().unwrap()).await;
    let researcher = app.token_client(&[Role::Researcher]).await;
    let elsewhere = researcher.clone_to(&other.address);

    let created = researcher
        .post(
            "/api/v1/codes",
            &json!({"system": "icd-10", "code": "Q99.8", "description": "Quetzalcoatl syndrome"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let here = |q: &str| search_path(q, "icd-10", 10);
    assert_eq!(
        codes_of(&researcher, &here("quetzalcoatl")).await,
        ["Q99.8"]
    );
    assert_eq!(
        codes_of(&researcher, &here("quetzalcotl")).await,
        ["Q99.8"],
        "misspelt"
    );
    assert_eq!(
        codes_of(&researcher, &here("Q99")).await,
        ["Q99.8"],
        "code prefix"
    );
    eventually(&elsewhere, &here("quetzalcoatl"), &["Q99.8"]).await;

    let renamed = researcher
        .patch(
            "/api/v1/codes/icd-10/Q99.8",
            &json!({"description": "Platypus marker"}),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.text);
    assert_eq!(codes_of(&researcher, &here("platypus")).await, ["Q99.8"]);
    assert!(codes_of(&researcher, &here("quetzalcoatl"))
        .await
        .is_empty());
    eventually(&elsewhere, &here("platypus"), &["Q99.8"]).await;
    eventually(&elsewhere, &here("quetzalcoatl"), &[]).await;

    let deleted = researcher.delete("/api/v1/codes/icd-10/Q99.8").await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    assert!(codes_of(&researcher, &here("platypus")).await.is_empty());
    assert!(codes_of(&researcher, &here("Q99.8")).await.is_empty());
    eventually(&elsewhere, &here("platypus"), &[]).await;

    // A code written behind the API's back (an import on another process) is found once
    // the generation it moved is polled.
    app.sql("INSERT INTO codes (uuid, system_id, code, description, billable, is_active, version, created_at, updated_at) \
             VALUES ('00000000-0000-7000-8000-000000000001', 'icd-10', 'Q99.9', 'Axolotl imported', TRUE, TRUE, 1, '2026-01-01 00:00:00', '2026-01-01 00:00:00'); \
             UPDATE index_generations SET generation = generation + 1 WHERE name = 'codes'")
        .await;
    eventually(&researcher, &here("axolotl"), &["Q99.9"]).await;
    eventually(&elsewhere, &here("axolotl"), &["Q99.9"]).await;
    // The other instance took every change into its overlay: it built its index once.
    let status = other.state.code_index.status();
    assert!(status.ready);
    assert_eq!(status.builds, 1, "{status:?}");
}

/// Polls `path` until it answers exactly `want`, for at most 5 s.
async fn eventually(client: &TestClient, path: &str, want: &[&str]) {
    let start = Instant::now();
    loop {
        let found = codes_of(client, path).await;
        if found == want {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{path}: still {found:?} after 5 s, want {want:?}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

/// With the index off (every search on the database's full-text search, as while the index
/// builds), 48 concurrent broad searches hold at most their share of the pool: other reads
/// and the audit keep answering, and every search answers (200, or 503 when it waited too
/// long for its turn) instead of starving the service.
#[actix_web::test]
async fn a_flood_of_searches_leaves_other_reads_and_the_audit_answering() {
    let app = TestApp::spawn_with(&[("MEDLABEL_CODE_INDEX", "off")]).await;
    load_bundled(&app).await;
    let doctor = app.token_client(&[Role::Doctor]).await;
    let flood: Vec<_> = (0..48)
        .map(|n| {
            let client = doctor.clone_client();
            let query = ["unspecified", "encounter", "fracture", "a"][n % 4];
            actix_web::rt::spawn(
                async move { client.get(&search_path(query, "", 20)).await.status },
            )
        })
        .collect();
    let mut slowest = Duration::ZERO;
    for _ in 0..10 {
        let started = Instant::now();
        let me = doctor.get("/api/v1/auth/me").await;
        assert_eq!(me.status, StatusCode::OK, "{}", me.text);
        let labels = doctor.get("/api/v1/labels").await;
        assert_eq!(labels.status, StatusCode::OK, "{}", labels.text);
        slowest = slowest.max(started.elapsed());
    }
    let mut answered = std::collections::BTreeMap::new();
    for search in flood {
        *answered.entry(search.await.unwrap().as_u16()).or_insert(0) += 1;
    }
    println!("other reads: slowest pair {slowest:?}; searches answered {answered:?}");
    assert!(
        slowest < Duration::from_secs(2),
        "other reads waited {slowest:?} behind the searches"
    );
    assert!(
        answered.keys().all(|s| *s == 200 || *s == 503),
        "{answered:?}"
    );
    // Every answered request, searches and reads, has its event (a token creation, 20
    // reads and 48 searches at least).
    let events = app
        .state
        .db
        .run(|conn| {
            use diesel::prelude::*;
            medlabel::db::schema::events::table
                .count()
                .get_result::<i64>(conn)
                .map_err(medlabel::db::DbError::from)
        })
        .await
        .unwrap();
    assert!(events >= 68, "{events} events");
}

/// A request's database work stops at its time limit (PostgreSQL `statement_timeout`, SQLite
/// progress handler) and reports it as a timeout, which the API answers 503.
#[actix_web::test]
async fn request_queries_stop_at_their_time_limit() {
    let app = TestApp::spawn_with(&[("MEDLABEL_DB_STATEMENT_TIMEOUT_MS", "200")]).await;
    let started = Instant::now();
    let result = app
        .state
        .db
        .run(|conn| {
            use diesel::connection::SimpleConnection;
            conn.batch_execute(
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000) \
                 SELECT count(*) FROM c",
            )
            .map_err(medlabel::db::DbError::from)
        })
        .await;
    let err = result.expect_err("a billion-row query cannot finish in 200 ms");
    let medlabel::db::DbError::Query(query) = &err else {
        panic!("not a query error: {err}");
    };
    assert!(medlabel::db::is_statement_timeout(query), "{query}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let api: medlabel::error::ApiError = err.into();
    assert_eq!(
        actix_web::ResponseError::status_code(&api),
        StatusCode::SERVICE_UNAVAILABLE
    );
    // The connection is fine afterwards, and work without a limit (the audit) is unaffected.
    let me = app
        .token_client(&[Role::Doctor])
        .await
        .get("/api/v1/auth/me")
        .await;
    assert_eq!(me.status, StatusCode::OK);
}
