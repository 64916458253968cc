//! Login throttling per username and per client address, with Retry-After and self-lifting.

use actix_web::http::{Method, StatusCode};
use medlabel::auth::Role;
use serde_json::json;

use crate::helpers::{TestApp, PASSWORD};

#[actix_web::test]
async fn ten_failures_lock_the_username_even_for_the_right_password() {
    let app = TestApp::spawn().await;
    let username = app.create_user(&[Role::Doctor]).await;
    let other = app.create_user(&[Role::Doctor]).await;
    let client = app.anonymous();
    for _ in 0..10 {
        client
            .login(&username, "wrong wrong wrong wrong")
            .await
            .problem(401);
    }
    let locked = client.login(&username, PASSWORD).await;
    locked.problem(429);
    let retry: u64 = locked
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry), "Retry-After {retry}");
    // Case does not dodge the lock; other usernames are unaffected.
    client
        .login(&username.to_uppercase(), PASSWORD)
        .await
        .problem(429);
    assert_eq!(client.login(&other, PASSWORD).await.status, StatusCode::OK);
}

#[actix_web::test]
async fn a_success_resets_the_usernames_count() {
    let app = TestApp::spawn().await;
    let username = app.create_user(&[Role::Doctor]).await;
    let client = app.anonymous();
    for _ in 0..9 {
        client
            .login(&username, "wrong wrong wrong wrong")
            .await
            .problem(401);
    }
    assert_eq!(
        client.login(&username, PASSWORD).await.status,
        StatusCode::OK
    );
    for _ in 0..9 {
        client
            .login(&username, "wrong wrong wrong wrong")
            .await
            .problem(401);
    }
    assert_eq!(
        client.login(&username, PASSWORD).await.status,
        StatusCode::OK
    );
}

#[actix_web::test]
async fn the_lock_lifts_by_itself_once_failures_leave_the_window() {
    let app = TestApp::spawn().await;
    let username = app.create_user(&[Role::Doctor]).await;
    let client = app.anonymous();
    for _ in 0..10 {
        client
            .login(&username, "wrong wrong wrong wrong")
            .await
            .problem(401);
    }
    client.login(&username, PASSWORD).await.problem(429);
    // Age the failures past the 15-minute window, as time would.
    let old = (chrono::Utc::now() - chrono::TimeDelta::minutes(16))
        .naive_utc()
        .format("%Y-%m-%d %H:%M:%S%.3f");
    app.sql(&format!("UPDATE login_failures SET failed_at = '{old}'"))
        .await;
    assert_eq!(
        client.login(&username, PASSWORD).await.status,
        StatusCode::OK
    );
}

#[actix_web::test]
async fn a_hundred_failures_from_one_address_lock_it_and_forwarded_for_cannot_dodge() {
    let app = TestApp::spawn().await;
    let username = app.create_user(&[Role::Doctor]).await;
    let client = app.anonymous();
    for i in 0..100 {
        // Different usernames (so the username lock never trips) and a spoofed
        // X-Forwarded-For, which an untrusted peer cannot use to look like someone else.
        let body = json!({"username": format!("nobody{i}"), "password": "wrong wrong wrong wrong"});
        let spoof = format!("203.0.113.{}", i % 250);
        let res = client
            .send(
                Method::POST,
                "/api/v1/auth/login",
                Some(&body),
                &[("x-forwarded-for", spoof.as_str())],
            )
            .await;
        res.problem(401);
    }
    let locked = client.login(&username, PASSWORD).await;
    locked.problem(429);
    assert!(locked.header("retry-after").is_some());
}

#[actix_web::test]
async fn a_concurrent_burst_gets_no_more_verifications_than_the_limit() {
    let app = TestApp::spawn().await;
    let username = app.create_user(&[Role::Doctor]).await;
    let clients: Vec<_> = (0..40).map(|_| app.anonymous()).collect();
    let burst = clients
        .iter()
        .map(|c| c.login(&username, "wrong wrong wrong wrong"));
    let answers = futures_util::future::join_all(burst).await;
    let verified = answers
        .iter()
        .filter(|r| r.status == StatusCode::UNAUTHORIZED)
        .count();
    let throttled = answers
        .iter()
        .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(verified + throttled, 40, "only 401 and 429");
    assert!(verified <= 10, "{verified} wrong passwords were verified");
    assert!(throttled >= 30);
    app.anonymous()
        .login(&username, PASSWORD)
        .await
        .problem(429);

    // A burst whose last attempt holds the right password: it never gets in behind the
    // limit's worth of failures.
    let victim = app.create_user(&[Role::Doctor]).await;
    let passwords: Vec<&str> = (0..29)
        .map(|_| "wrong wrong wrong wrong")
        .chain([PASSWORD])
        .collect();
    let clients: Vec<_> = (0..30).map(|_| app.anonymous()).collect();
    let answers = futures_util::future::join_all(
        clients
            .iter()
            .zip(&passwords)
            .map(|(c, p)| c.login(&victim, p)),
    )
    .await;
    let failures_before_success = answers[..29]
        .iter()
        .filter(|r| r.status == StatusCode::UNAUTHORIZED)
        .count();
    assert!(failures_before_success <= 10);
    if answers[29].status == StatusCode::OK {
        assert!(
            failures_before_success < 10,
            "the right password got in after the limit's failures"
        );
    } else {
        answers[29].problem(429);
    }
}

#[actix_web::test]
async fn wrong_current_passwords_are_throttled_like_logins() {
    let app = TestApp::spawn().await;
    let session = app.login_as(&[Role::Doctor]).await;
    let wrong = json!({"current_password": "not it at all, no", "new_password": "a new and long passphrase"});
    for _ in 0..10 {
        session
            .post("/api/v1/auth/password", &wrong)
            .await
            .problem(422);
    }
    let right = json!({"current_password": PASSWORD, "new_password": "a new and long passphrase"});
    let locked = session.post("/api/v1/auth/password", &right).await;
    locked.problem(429);
    assert!(locked.header("retry-after").is_some());
    // The oracle is closed for logins of that user too.
    app.anonymous()
        .login(&session.username(), PASSWORD)
        .await
        .problem(429);

    // A right current password resets the count, as a successful login does.
    let app = TestApp::spawn().await;
    let session = app.login_as(&[Role::Doctor]).await;
    for _ in 0..9 {
        session
            .post("/api/v1/auth/password", &wrong)
            .await
            .problem(422);
    }
    let res = session.post("/api/v1/auth/password", &right).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text);
    let again = json!({"current_password": "a new and long passphrase", "new_password": "yet another long passphrase"});
    for _ in 0..9 {
        session
            .post("/api/v1/auth/password", &wrong)
            .await
            .problem(422);
    }
    let res = session.post("/api/v1/auth/password", &again).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text);
}
