//! API tokens: created once with their secret, listed without it, revocable, expiring,
//! never accepted in the URL, stored only as a digest.

use actix_web::http::{Method, StatusCode};
use medlabel::auth::Role;
use serde_json::json;

use crate::helpers::{TestApp, TestClient};

#[actix_web::test]
async fn a_token_is_shown_once_works_as_bearer_and_stops_when_revoked() {
    let app = TestApp::spawn().await;
    let session = app.login_as(&[Role::Researcher]).await;

    let created = session
        .post(
            "/api/v1/auth/tokens",
            &json!({"name": "ci script", "expires_in_days": 7}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created.header("location"),
        Some(format!("/api/v1/auth/tokens/{id}").as_str())
    );
    let secret = created.body["token"].as_str().unwrap().to_owned();
    assert!(secret.len() >= 40, "at least 128 random bits");
    let created_at =
        chrono::DateTime::parse_from_rfc3339(created.body["created_at"].as_str().unwrap()).unwrap();
    let expires_at =
        chrono::DateTime::parse_from_rfc3339(created.body["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!((expires_at - created_at).num_days(), 7);

    let listed = session.get("/api/v1/auth/tokens").await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.body.as_array().unwrap().len(), 1);
    assert!(
        !listed.text.contains(&secret),
        "the secret is shown only at creation"
    );
    assert!(listed.body[0]["last_used_at"].is_null());
    for field in ["id", "name", "created_at", "expires_at", "last_used_at"] {
        assert!(listed.body[0].get(field).is_some(), "token lacks {field}");
    }

    let bearer = app.anonymous();
    *bearer.bearer.borrow_mut() = Some(secret.clone());
    let me = bearer.get("/api/v1/auth/me").await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["username"], session.username().as_str());
    let listed = session.get("/api/v1/auth/tokens").await;
    assert!(
        listed.body[0]["last_used_at"].is_string(),
        "last_used_at is set when the token is used"
    );

    let stored = app
        .state
        .db
        .run({
            let secret = secret.clone();
            move |conn| {
                use diesel::prelude::*;
                use medlabel::db::schema::api_tokens;
                let hashes: Vec<String> = api_tokens::table
                    .select(api_tokens::token_hash)
                    .load(conn)?;
                Ok::<_, medlabel::error::ApiError>(hashes.iter().any(|h| h.contains(&secret)))
            }
        })
        .await
        .unwrap();
    assert!(!stored, "only a digest is stored");

    assert_eq!(
        session
            .delete(&format!("/api/v1/auth/tokens/{id}"))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    bearer.get("/api/v1/auth/me").await.problem(401);
    session
        .delete(&format!("/api/v1/auth/tokens/{id}"))
        .await
        .problem(404);
}

#[actix_web::test]
async fn token_requests_are_validated() {
    let app = TestApp::spawn().await;
    let client = app.token_client(&[Role::Doctor]).await;
    for days in [0, 366] {
        let res = client
            .post(
                "/api/v1/auth/tokens",
                &json!({"name": "x", "expires_in_days": days}),
            )
            .await;
        assert!(res.problem(422)["errors"]["expires_in_days"].is_array());
    }
    client
        .post("/api/v1/auth/tokens", &json!({"name": ""}))
        .await
        .problem(422);
    client
        .post("/api/v1/auth/tokens", &json!({"name": "x", "scope": "all"}))
        .await
        .problem(422);
    let default = client
        .post("/api/v1/auth/tokens", &json!({"name": "default expiry"}))
        .await;
    assert_eq!(default.status, StatusCode::CREATED);
    let created_at =
        chrono::DateTime::parse_from_rfc3339(default.body["created_at"].as_str().unwrap()).unwrap();
    let expires_at =
        chrono::DateTime::parse_from_rfc3339(default.body["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!((expires_at - created_at).num_days(), 90);
    client
        .delete("/api/v1/auth/tokens/not-a-uuid")
        .await
        .problem(404);
}

#[actix_web::test]
async fn a_user_cannot_see_or_revoke_another_users_tokens() {
    let app = TestApp::spawn().await;
    let alice = app.token_client(&[Role::Doctor]).await;
    let bob = app.token_client(&[Role::Doctor]).await;
    let created = alice
        .post("/api/v1/auth/tokens", &json!({"name": "alice's"}))
        .await;
    let id = created.body["id"].as_str().unwrap();
    bob.delete(&format!("/api/v1/auth/tokens/{id}"))
        .await
        .problem(404);
    let listed = bob.get("/api/v1/auth/tokens").await;
    assert!(!listed.text.contains(id));
}

#[actix_web::test]
async fn expired_tokens_and_malformed_authorization_are_refused() {
    let app = TestApp::spawn().await;
    let client = app.token_client(&[Role::Doctor]).await;
    assert_eq!(client.get("/api/v1/auth/me").await.status, StatusCode::OK);
    app.sql("UPDATE api_tokens SET expires_at = '2000-01-01 00:00:00'")
        .await;
    client.get("/api/v1/auth/me").await.problem(401);

    let anon = app.anonymous();
    for value in [
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer mlt_doesnotexist",
        "token",
    ] {
        let res = anon
            .send(
                Method::GET,
                "/api/v1/auth/me",
                None,
                &[("authorization", value)],
            )
            .await;
        res.problem(401);
    }
}

#[actix_web::test]
async fn tokens_in_the_url_are_refused_even_when_valid() {
    let app = TestApp::spawn().await;
    let client = app.token_client(&[Role::Admin]).await;
    let secret = client.bearer.borrow().clone().unwrap();
    let anon = TestClient::new(&app.address);
    for param in ["token", "access_token"] {
        anon.get(&format!("/api/v1/auth/me?{param}={secret}"))
            .await
            .problem(401);
        // Even alongside a valid header, a URL token is a leak and is refused.
        client
            .get(&format!("/api/v1/users?{param}={secret}"))
            .await
            .problem(401);
    }
}
