//! `GET /health`: ok when the database and storage answer, 503 naming the failing part.

use actix_web::http::StatusCode;
use medlabel::startup::Application;
use medlabel::state::AppState;
use serde_json::json;

use crate::helpers::{test_settings, TestApp};

#[actix_web::test]
async fn health_is_ok_without_auth() {
    let app = TestApp::spawn().await;
    let res = app.anonymous().get("/health").await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(
        res.body,
        json!({"status": "ok", "database": "ok", "storage": "ok"})
    );
}

#[actix_web::test]
async fn health_is_503_naming_the_database_when_it_is_down() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 1: every connection attempt fails at once.
    let settings = test_settings(dir.path(), "postgres://medlabel@127.0.0.1:1/medlabel", &[]);
    let state = AppState::open(settings).unwrap();
    let app = Application::build(state).unwrap();
    let address = format!("http://127.0.0.1:{}", app.port());
    actix_web::rt::spawn(app.run_until_stopped());
    let res = crate::helpers::TestClient::new(&address)
        .get("/health")
        .await;
    assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        res.body,
        json!({"status": "unavailable", "database": "unavailable", "storage": "ok"})
    );

    // An API request meanwhile is a clean 503 problem, not a hang or a leak of internals.
    let res = crate::helpers::TestClient::new(&address)
        .send(
            actix_web::http::Method::GET,
            "/api/v1/auth/me",
            None,
            &[("authorization", "Bearer mlt_x")],
        )
        .await;
    let problem = res.problem(503);
    assert!(!res.text.contains("127.0.0.1:1"), "{problem}");
}
