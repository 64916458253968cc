//! The security rules every endpoint follows: headers, problem+json for every error, request
//! ids, CSRF, body limits, methods, and panics.

use actix_web::http::{Method, StatusCode};
use medlabel::auth::Role;
use serde_json::json;

use crate::helpers::{TestApp, TestResponse};

fn assert_security_headers(res: &TestResponse) {
    assert_eq!(res.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(res.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(res.header("cache-control"), Some("no-store"));
    assert!(res.header("server").is_none(), "no Server banner");
    let id = res.header("x-request-id").expect("X-Request-Id");
    assert!(uuid::Uuid::parse_str(id).is_ok());
    if res
        .header("content-type")
        .is_some_and(|c| c.contains("json"))
    {
        assert_eq!(
            res.header("content-security-policy"),
            Some("default-src 'none'; frame-ancestors 'none'")
        );
    }
}

#[actix_web::test]
async fn every_response_carries_the_security_headers() {
    let app = TestApp::spawn().await;
    let admin = app.token_client(&[Role::Admin]).await;
    let anon = app.anonymous();
    for res in [
        admin.get("/api/v1/auth/me").await,
        admin.get("/api/v1/users").await,
        anon.get("/api/v1/auth/me").await,
        anon.get("/api/v1/nowhere").await,
        anon.get("/health").await,
        anon.send(Method::PUT, "/api/v1/auth/me", None, &[]).await,
    ] {
        assert_security_headers(&res);
    }
}

#[actix_web::test]
async fn errors_from_actix_itself_are_problem_json_too() {
    let app = TestApp::spawn_with(&[("MEDLABEL_MAX_JSON_BYTES", "2048")]).await;
    let admin = app.token_client(&[Role::Admin]).await;
    admin.get("/api/v1/no-such-route").await.problem(404);
    admin.get("/nowhere-at-all").await.problem(404);

    let put = admin.send(Method::PUT, "/api/v1/users", None, &[]).await;
    put.problem(405);
    let allow = put.header("allow").expect("Allow on 405");
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    admin
        .send(Method::TRACE, "/api/v1/auth/me", None, &[])
        .await
        .problem(405);
    admin
        .send(Method::DELETE, "/health", None, &[])
        .await
        .problem(405);

    admin
        .send_raw(
            Method::POST,
            "/api/v1/users",
            "application/json",
            b"{\"username\":".to_vec(),
        )
        .await
        .problem(400);
    admin
        .send_raw(
            Method::POST,
            "/api/v1/users",
            "application/xml",
            b"<user/>".to_vec(),
        )
        .await
        .problem(415);
    let big = json!({"username": "x".repeat(4096), "password": "p", "roles": []})
        .to_string()
        .into_bytes();
    admin
        .send_raw(Method::POST, "/api/v1/users", "application/json", big)
        .await
        .problem(413);
    admin
        .post("/api/v1/users", &json!(["not", "an", "object"]))
        .await
        .problem(422);
    // An array fills a struct positionally in serde; bodies must be objects.
    let me = admin.get("/api/v1/auth/me").await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    admin
        .patch(&format!("/api/v1/users/{me}"), &json!([null, null]))
        .await
        .problem(422);
    admin
        .post("/api/v1/labels", &json!(["Effusion"]))
        .await
        .problem(422);
}

#[actix_web::test]
async fn a_valid_client_request_id_is_kept_and_anything_else_replaced() {
    let app = TestApp::spawn().await;
    let anon = app.anonymous();
    let mine = uuid::Uuid::now_v7().to_string();
    let res = anon
        .send(
            Method::GET,
            "/api/v1/auth/me",
            None,
            &[("x-request-id", mine.as_str())],
        )
        .await;
    assert_eq!(res.header("x-request-id"), Some(mine.as_str()));
    assert_eq!(res.problem(401)["request_id"], mine.as_str());
    let res = anon
        .send(
            Method::GET,
            "/api/v1/auth/me",
            None,
            &[("x-request-id", "<script>")],
        )
        .await;
    let replaced = res.header("x-request-id").unwrap();
    assert_ne!(replaced, "<script>");
    assert!(uuid::Uuid::parse_str(replaced).is_ok());
}

#[actix_web::test]
async fn cookie_authenticated_writes_from_another_site_are_refused() {
    let app = TestApp::spawn().await;
    let session = app.login_as(&[Role::Admin]).await;
    let body = json!({"name": "csrf"});
    let evil = session
        .send(
            Method::POST,
            "/api/v1/auth/tokens",
            Some(&body),
            &[("origin", "https://evil.example")],
        )
        .await;
    evil.problem(403);
    let evil_referer = session
        .send(
            Method::POST,
            "/api/v1/auth/tokens",
            Some(&body),
            &[("referer", "https://evil.example/page")],
        )
        .await;
    evil_referer.problem(403);
    let null_origin = session
        .send(
            Method::POST,
            "/api/v1/auth/tokens",
            Some(&body),
            &[("origin", "null")],
        )
        .await;
    null_origin.problem(403);
    let listed = session.get("/api/v1/auth/tokens").await;
    assert_eq!(
        listed.body.as_array().unwrap().len(),
        0,
        "refused writes changed nothing"
    );

    let own = app.address.clone();
    let same = session
        .send(
            Method::POST,
            "/api/v1/auth/tokens",
            Some(&body),
            &[("origin", own.as_str())],
        )
        .await;
    assert_eq!(same.status, StatusCode::CREATED);

    // Bearer-token requests are not affected: no ambient credential to abuse.
    let token = app.token_client(&[Role::Admin]).await;
    let res = token
        .send(
            Method::POST,
            "/api/v1/auth/tokens",
            Some(&body),
            &[("origin", "https://evil.example")],
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED);
}

#[actix_web::test]
async fn a_panicking_handler_answers_500_with_the_request_id_and_the_server_goes_on() {
    let app = TestApp::spawn().await;
    let client = app.token_client(&[Role::Admin]).await;
    for _ in 0..3 {
        let res = client.get("/api/v1/test/panic").await;
        let problem = res.problem(500);
        assert!(!res.text.contains("deliberate"), "no internals in a 500");
        assert!(problem["detail"].as_str().unwrap().contains("request id"));
        assert_security_headers(&res);
    }
    assert_eq!(client.get("/api/v1/auth/me").await.status, StatusCode::OK);
}

#[actix_web::test]
async fn cors_is_off_by_default_and_follows_the_allow_list() {
    let app = TestApp::spawn().await;
    let anon = app.anonymous();
    let res = anon
        .send(
            Method::GET,
            "/health",
            None,
            &[("origin", "https://app.example.org")],
        )
        .await;
    assert!(res.header("access-control-allow-origin").is_none());

    let app = TestApp::spawn_with(&[("MEDLABEL_CORS_ORIGINS", "https://app.example.org")]).await;
    let anon = app.anonymous();
    let ok = anon
        .send(
            Method::GET,
            "/health",
            None,
            &[("origin", "https://app.example.org")],
        )
        .await;
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("https://app.example.org")
    );
    assert_eq!(ok.header("access-control-allow-credentials"), Some("true"));
    let other = anon
        .send(
            Method::GET,
            "/health",
            None,
            &[("origin", "https://evil.example")],
        )
        .await;
    assert_ne!(other.header("access-control-allow-origin"), Some("*"));
    assert_ne!(
        other.header("access-control-allow-origin"),
        Some("https://evil.example")
    );
    // A preflight from an origin that is not allowed is refused with a problem that says so
    // generically (not another refusal's text).
    let preflight = anon
        .send(
            Method::OPTIONS,
            "/api/v1/labels",
            None,
            &[
                ("origin", "https://evil.example"),
                ("access-control-request-method", "POST"),
            ],
        )
        .await;
    let problem = preflight.problem(400);
    assert!(
        !problem["detail"].as_str().unwrap().contains("NUL"),
        "{problem}"
    );
}
