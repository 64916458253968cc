//! Writes without `If-Match` go through whatever other writes came first, however many run
//! at once (PostgreSQL runs them side by side; SQLite queues them), and each leaves its own
//! history entry. With a stale `If-Match` they answer 412.

use actix_web::http::{Method, StatusCode};
use medlabel::auth::Role;
use serde_json::json;

use crate::helpers::{TestApp, TestClient};

const WRITERS: usize = 12;

/// Sends `WRITERS` PATCHes of `path` at once, each with its own description; all must be 200,
/// and the entity must end at version 1 + `WRITERS` with that many more history entries.
async fn concurrent_patches(client: &TestClient, path: &str, history: &str) {
    let entries = |client: &TestClient| {
        let client = client.clone_client();
        let history = format!("{history}?limit=200");
        async move {
            let res = client.get(&history).await;
            res.body["items"].as_array().unwrap().len()
        }
    };
    let before = entries(client).await;
    let clients: Vec<TestClient> = (0..WRITERS).map(|_| client.clone_client()).collect();
    let bodies: Vec<serde_json::Value> = (0..WRITERS)
        .map(|i| json!({"description": format!("writer {i}")}))
        .collect();
    let answers = futures_util::future::join_all(
        clients
            .iter()
            .zip(&bodies)
            .map(|(c, body)| c.send(Method::PATCH, path, Some(body), &[])),
    )
    .await;
    for answer in &answers {
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.text);
    }
    let now = client.get(path).await;
    assert_eq!(
        now.header("etag"),
        Some(format!("\"v{}\"", 1 + WRITERS).as_str()),
        "{path}: every write applied once"
    );
    assert_eq!(
        entries(client).await,
        before + WRITERS,
        "{path}: one history entry per write"
    );
    // A write naming a version that is gone is still refused.
    let stale = client
        .send(
            Method::PATCH,
            path,
            Some(&json!({"description": "late"})),
            &[("if-match", "\"v1\"")],
        )
        .await;
    stale.problem(412);
}

#[actix_web::test]
async fn concurrent_writes_without_if_match_all_go_through() {
    let app = TestApp::spawn().await;
    app.load_codes().await;
    let researcher = app.token_client(&[Role::Researcher]).await;
    let doctor = app.token_client(&[Role::Doctor]).await;

    let label = app.label("Nodule").await["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/labels/{label}");
    concurrent_patches(&researcher, &path, &format!("{path}/history")).await;

    let disease = app.disease("Pneumonia", &["icd-10:J18.9"]).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/v1/diseases/{disease}");
    concurrent_patches(&researcher, &path, &format!("{path}/history")).await;

    let path = "/api/v1/codes/icd-10/J18.9";
    concurrent_patches(&researcher, path, &format!("{path}/history")).await;

    let image = doctor.upload_png().await["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/images/{image}");
    concurrent_patches(&doctor, &path, &format!("{path}/history")).await;
}
