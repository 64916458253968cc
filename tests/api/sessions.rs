//! Sessions end server-side: logout, fixation, idle and absolute timeouts.

use actix_web::http::StatusCode;
use medlabel::auth::Role;

use crate::helpers::{TestApp, TestClient, PASSWORD};

fn replay(app: &TestApp, cookie: &str) -> TestClient {
    let client = app.anonymous();
    *client.cookie.borrow_mut() = Some(cookie.to_owned());
    client
}

#[actix_web::test]
async fn logout_ends_the_session_and_a_saved_cookie_is_refused() {
    let app = TestApp::spawn().await;
    let client = app.login_as(&[Role::Doctor]).await;
    let saved = client.cookie.borrow().clone().expect("cookie");
    assert_eq!(client.get("/api/v1/auth/me").await.status, StatusCode::OK);
    let saved_after_use = client.cookie.borrow().clone().expect("cookie");

    let res = client
        .post("/api/v1/auth/logout", &serde_json::json!({}))
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    assert!(res.text.is_empty());

    for cookie in [saved, saved_after_use] {
        replay(&app, &cookie)
            .get("/api/v1/auth/me")
            .await
            .problem(401);
    }
    client.get("/api/v1/auth/me").await.problem(401);
}

#[actix_web::test]
async fn login_always_issues_a_new_session_id() {
    let app = TestApp::spawn().await;
    let username = app.create_user(&[Role::Doctor]).await;
    let client = app.anonymous();
    client.login(&username, PASSWORD).await;
    let first = client.cookie.borrow().clone().expect("cookie");
    // Logging in again while holding a session (fixation attempt) must rotate the session.
    client.login(&username, PASSWORD).await;
    let second = client.cookie.borrow().clone().expect("cookie");
    assert_ne!(first, second);
    replay(&app, &first)
        .get("/api/v1/auth/me")
        .await
        .problem(401);
    assert_eq!(
        replay(&app, &second).get("/api/v1/auth/me").await.status,
        StatusCode::OK
    );
}

#[actix_web::test]
async fn an_idle_session_times_out() {
    let app = TestApp::spawn_with(&[("MEDLABEL_SESSION_IDLE_SECS", "2")]).await;
    let client = app.login_as(&[Role::Doctor]).await;
    assert_eq!(client.get("/api/v1/auth/me").await.status, StatusCode::OK);
    actix_web::rt::time::sleep(std::time::Duration::from_millis(3200)).await;
    client.get("/api/v1/auth/me").await.problem(401);
}

#[actix_web::test]
async fn a_busy_session_still_ends_at_its_absolute_lifetime() {
    let app = TestApp::spawn_with(&[
        ("MEDLABEL_SESSION_IDLE_SECS", "3"),
        ("MEDLABEL_SESSION_MAX_SECS", "4"),
    ])
    .await;
    let client = app.login_as(&[Role::Doctor]).await;
    let started = std::time::Instant::now();
    // Keep the session busy (well inside the idle timeout) past its absolute lifetime.
    while started.elapsed().as_secs_f64() < 3.0 {
        assert_eq!(client.get("/api/v1/auth/me").await.status, StatusCode::OK);
        actix_web::rt::time::sleep(std::time::Duration::from_millis(700)).await;
    }
    while started.elapsed().as_secs_f64() < 5.5 {
        actix_web::rt::time::sleep(std::time::Duration::from_millis(700)).await;
        let _ = client.get("/api/v1/auth/me").await;
    }
    client.get("/api/v1/auth/me").await.problem(401);
}

#[actix_web::test]
async fn session_rows_hold_no_usable_key() {
    let app = TestApp::spawn().await;
    let client = app.login_as(&[Role::Doctor]).await;
    let cookie = client.cookie.borrow().clone().expect("cookie");
    let value = cookie
        .split_once('=')
        .map(|(_, v)| v.to_owned())
        .unwrap_or_default();
    let leaked = app
        .state
        .db
        .run(move |conn| {
            use diesel::prelude::*;
            use medlabel::db::schema::sessions;
            let rows: Vec<(String, String)> = sessions::table
                .select((sessions::key_hash, sessions::state))
                .load(conn)?;
            Ok::<_, medlabel::error::ApiError>(
                rows.iter()
                    .any(|(k, s)| k.contains(&value) || s.contains(&value)),
            )
        })
        .await
        .unwrap();
    assert!(!leaked);
}
