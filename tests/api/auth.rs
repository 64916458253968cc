//! Login: cookie flags, uniform failures, timing, and `/auth/me`.

use actix_web::http::StatusCode;
use medlabel::auth::Role;
use serde_json::json;

use crate::helpers::{TestApp, PASSWORD};

#[actix_web::test]
async fn login_sets_a_host_prefixed_secure_strict_httponly_cookie() {
    let app = TestApp::spawn().await;
    let username = app.create_user(&[Role::Doctor]).await;
    let client = app.anonymous();
    let res = client.login(&username, PASSWORD).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.body["user"]["username"], username.as_str());
    assert_eq!(res.body["user"]["roles"], json!(["doctor"]));
    let cookie = res.header("set-cookie").expect("a session cookie");
    assert!(cookie.starts_with("__Host-medlabel="), "{cookie}");
    for flag in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(flag), "{flag} missing in {cookie}");
    }
    assert!(
        !cookie.contains("Domain="),
        "__Host- cookies carry no Domain"
    );
    let me = client.get("/api/v1/auth/me").await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["username"], username.as_str());
    for field in [
        "id",
        "username",
        "full_name",
        "email",
        "roles",
        "is_active",
        "created_at",
    ] {
        assert!(me.body.get(field).is_some(), "User lacks {field}");
    }
    assert!(!me.text.contains("argon2"), "no hash in responses");
}

#[actix_web::test]
async fn insecure_cookie_mode_uses_plain_name_without_secure() {
    let app = TestApp::spawn_with(&[("MEDLABEL_INSECURE_COOKIES", "1")]).await;
    let username = app.create_user(&[Role::Doctor]).await;
    let res = app.anonymous().login(&username, PASSWORD).await;
    let cookie = res.header("set-cookie").expect("a session cookie");
    assert!(cookie.starts_with("medlabel="), "{cookie}");
    assert!(!cookie.contains("Secure"), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
}

#[actix_web::test]
async fn wrong_password_unknown_user_and_deactivated_user_get_the_same_401() {
    let app = TestApp::spawn().await;
    let known = app.create_user(&[Role::Doctor]).await;
    let inactive = app.create_user(&[Role::Doctor]).await;
    app.sql(&format!(
        "UPDATE users SET is_active = false WHERE username = '{inactive}'"
    ))
    .await;
    let client = app.anonymous();

    let wrong = client.login(&known, "not the password at all").await;
    let unknown = client.login("nobody-here", PASSWORD).await;
    let deactivated = client.login(&inactive, PASSWORD).await;
    for res in [&wrong, &unknown, &deactivated] {
        let body = res.problem(401);
        assert_eq!(res.header("www-authenticate"), Some("Bearer"));
        assert_eq!(body["detail"], wrong.body["detail"]);
        assert_eq!(body["title"], wrong.body["title"]);
        assert!(
            res.header("set-cookie").is_none(),
            "no session for a failed login"
        );
    }
}

#[actix_web::test]
async fn login_body_must_be_well_formed() {
    let app = TestApp::spawn().await;
    let client = app.anonymous();
    client
        .post("/api/v1/auth/login", &json!({"username": "a"}))
        .await
        .problem(422);
    client
        .post(
            "/api/v1/auth/login",
            &json!({"username": "a", "password": "b", "remember": true}),
        )
        .await
        .problem(422);
    let raw = client
        .send_raw(
            actix_web::http::Method::POST,
            "/api/v1/auth/login",
            "application/json",
            b"{not json".to_vec(),
        )
        .await;
    raw.problem(400);
    let form = client
        .send_raw(
            actix_web::http::Method::POST,
            "/api/v1/auth/login",
            "text/plain",
            b"username=a".to_vec(),
        )
        .await;
    form.problem(415);
}
