//! Users and groups (admin): create, list, read, update, deactivate, passwords.
//!
//! Slightly over ~400 lines: user administration end to end.

use std::collections::HashSet;

use actix_web::http::StatusCode;
use medlabel::auth::Role;
use serde_json::json;

use crate::helpers::{TestApp, PASSWORD};

#[actix_web::test]
async fn admin_creates_a_doctor_who_can_log_in() {
    let app = TestApp::spawn().await;
    let admin = app.login_as(&[Role::Admin]).await;
    let res = admin
        .post(
            "/api/v1/users",
            &json!({"username": "dr.house", "password": "vicodin and puzzles", "full_name": "Gregory House",
                    "email": "house@example.org", "roles": ["doctor"]}),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    let id = res.body["id"].as_str().unwrap();
    assert_eq!(
        res.header("location"),
        Some(format!("/api/v1/users/{id}").as_str())
    );
    assert_eq!(res.body["roles"], json!(["doctor"]));
    assert_eq!(res.body["full_name"], "Gregory House");
    assert!(!res.text.contains("argon2") && !res.text.contains("password"));

    let doctor = app.anonymous();
    assert_eq!(
        doctor.login("dr.house", "vicodin and puzzles").await.status,
        StatusCode::OK
    );
    assert_eq!(
        doctor.get("/api/v1/auth/me").await.body["email"],
        "house@example.org"
    );

    let fetched = admin.get(&format!("/api/v1/users/{id}")).await;
    assert_eq!(fetched.status, StatusCode::OK);
    assert_eq!(fetched.body, res.body);
}

#[actix_web::test]
async fn usernames_are_unique_ignoring_case() {
    let app = TestApp::spawn().await;
    let admin = app.token_client(&[Role::Admin]).await;
    let body =
        |name: &str| json!({"username": name, "password": "a long enough secret", "roles": []});
    assert_eq!(
        admin.post("/api/v1/users", &body("Carol")).await.status,
        StatusCode::CREATED
    );
    admin
        .post("/api/v1/users", &body("carol"))
        .await
        .problem(409);
}

#[actix_web::test]
async fn bad_user_input_is_a_field_error_and_creates_nothing() {
    let app = TestApp::spawn().await;
    let admin = app.token_client(&[Role::Admin]).await;
    let cases = [
        (
            json!({"username": "eve", "password": "short", "roles": []}),
            "password",
        ),
        (
            json!({"username": "eve", "password": "x".repeat(257), "roles": []}),
            "password",
        ),
        (
            json!({"username": "evelyn-long-name", "password": "Evelyn-Long-Name", "roles": []}),
            "password",
        ),
        (
            json!({"username": "eve", "password": "123456789012", "roles": []}),
            "password",
        ),
        (
            json!({"username": "eve", "password": "a long enough secret", "roles": ["nurse"]}),
            "roles",
        ),
        (
            json!({"username": "e v e", "password": "a long enough secret", "roles": []}),
            "username",
        ),
        (
            json!({"username": "", "password": "a long enough secret", "roles": []}),
            "username",
        ),
        (
            json!({"username": "eve", "password": "a long enough secret", "email": "nope", "roles": []}),
            "email",
        ),
    ];
    for (body, field) in cases {
        let res = admin.post("/api/v1/users", &body).await;
        let problem = res.problem(422);
        assert!(problem["errors"][field].is_array(), "{field}: {}", res.text);
    }
    admin
        .post("/api/v1/users", &json!({"username": "eve", "password": "a long enough secret", "roles": [], "is_admin": true}))
        .await
        .problem(422);
    let listed = admin.get("/api/v1/users").await;
    assert!(
        !listed.text.contains("\"eve\"") && !listed.text.contains("evelyn"),
        "nothing was created"
    );
    // A 256-character password is accepted whole (never truncated).
    let long = "ab".repeat(128);
    let res = admin
        .post(
            "/api/v1/users",
            &json!({"username": "longpw", "password": long, "roles": []}),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED);
    assert_eq!(
        app.anonymous().login("longpw", &long).await.status,
        StatusCode::OK
    );
    app.anonymous()
        .login("longpw", &long[..255])
        .await
        .problem(401);
}

#[actix_web::test]
async fn the_user_list_pages_through_everyone_exactly_once() {
    let app = TestApp::spawn().await;
    let admin = app.token_client(&[Role::Admin]).await;
    for _ in 0..6 {
        app.create_user(&[Role::Doctor]).await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/users?limit=3&cursor={c}"),
            None => "/api/v1/users?limit=3".to_owned(),
        };
        let page = admin.get(&path).await;
        assert_eq!(page.status, StatusCode::OK);
        let items = page.body["items"].as_array().unwrap();
        assert!(items.len() <= 3);
        seen.extend(items.iter().map(|u| u["id"].as_str().unwrap().to_owned()));
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7, "six doctors and the admin");
    assert_eq!(
        seen.iter().collect::<HashSet<_>>().len(),
        7,
        "no duplicates"
    );
    admin.get("/api/v1/users?limit=abc").await.problem(400);
    admin.get("/api/v1/users?limit=0").await.problem(422);
    admin.get("/api/v1/users?limit=201").await.problem(422);
    admin.get("/api/v1/users?cursor=garbage").await.problem(400);
}

#[actix_web::test]
async fn admin_updates_profile_and_roles() {
    let app = TestApp::spawn().await;
    let admin = app.token_client(&[Role::Admin]).await;
    let doctor = app.login_as(&[Role::Doctor]).await;
    let id = doctor.get("/api/v1/auth/me").await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = admin
        .patch(
            &format!("/api/v1/users/{id}"),
            &json!({"full_name": "Dr. Who", "roles": ["doctor", "researcher"]}),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.body["full_name"], "Dr. Who");
    assert_eq!(res.body["roles"], json!(["doctor", "researcher"]));
    let cleared = admin
        .patch(&format!("/api/v1/users/{id}"), &json!({"full_name": null}))
        .await;
    assert!(cleared.body["full_name"].is_null());
    assert_eq!(
        doctor.get("/api/v1/auth/me").await.body["roles"],
        json!(["doctor", "researcher"])
    );
    admin
        .patch(
            &format!("/api/v1/users/{id}"),
            &json!({"roles": ["janitor"]}),
        )
        .await
        .problem(422);
    admin
        .patch(
            &format!("/api/v1/users/{id}"),
            &json!({"password": "short"}),
        )
        .await
        .problem(422);
    admin
        .patch(&format!("/api/v1/users/{id}"), &json!({"colour": "blue"}))
        .await
        .problem(422);
    for field in ["is_active", "roles", "password"] {
        admin
            .patch(&format!("/api/v1/users/{id}"), &json!({ field: null }))
            .await
            .problem(422);
    }
    admin
        .patch("/api/v1/users/not-a-uuid", &json!({"full_name": "x"}))
        .await
        .problem(404);
    admin
        .get(&format!("/api/v1/users/{}", uuid::Uuid::now_v7()))
        .await
        .problem(404);
}

#[actix_web::test]
async fn an_admin_cannot_lock_themselves_out() {
    let app = TestApp::spawn().await;
    let admin = app.token_client(&[Role::Admin]).await;
    let id = admin.get("/api/v1/auth/me").await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    admin
        .patch(&format!("/api/v1/users/{id}"), &json!({"is_active": false}))
        .await
        .problem(422);
    admin
        .patch(
            &format!("/api/v1/users/{id}"),
            &json!({"roles": ["doctor"]}),
        )
        .await
        .problem(422);
    assert_eq!(admin.get("/api/v1/users").await.status, StatusCode::OK);
}

#[actix_web::test]
async fn deactivation_ends_sessions_and_tokens_at_once() {
    let app = TestApp::spawn().await;
    let admin = app.token_client(&[Role::Admin]).await;
    let username = app.create_user(&[Role::Doctor]).await;
    let session = app.anonymous();
    session.login(&username, PASSWORD).await;
    let token = session
        .post("/api/v1/auth/tokens", &json!({"name": "t"}))
        .await
        .body["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let bearer = app.anonymous();
    *bearer.bearer.borrow_mut() = Some(token);
    assert_eq!(bearer.get("/api/v1/auth/me").await.status, StatusCode::OK);

    let id = session.get("/api/v1/auth/me").await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = admin
        .patch(&format!("/api/v1/users/{id}"), &json!({"is_active": false}))
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.body["is_active"], false);

    session.get("/api/v1/auth/me").await.problem(401);
    bearer.get("/api/v1/auth/me").await.problem(401);
    app.anonymous()
        .login(&username, PASSWORD)
        .await
        .problem(401);

    // Reactivated, the user logs in again; the revoked token stays revoked.
    admin
        .patch(&format!("/api/v1/users/{id}"), &json!({"is_active": true}))
        .await;
    assert_eq!(
        app.anonymous().login(&username, PASSWORD).await.status,
        StatusCode::OK
    );
    bearer.get("/api/v1/auth/me").await.problem(401);
}

#[actix_web::test]
async fn changing_ones_password_ends_other_sessions_but_keeps_tokens() {
    let app = TestApp::spawn().await;
    let username = app.create_user(&[Role::Doctor]).await;
    let here = app.anonymous();
    here.login(&username, PASSWORD).await;
    let elsewhere = app.anonymous();
    elsewhere.login(&username, PASSWORD).await;
    let token = here
        .post("/api/v1/auth/tokens", &json!({"name": "t"}))
        .await
        .body["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let saved = here.cookie.borrow().clone().unwrap();

    let wrong = here
        .post(
            "/api/v1/auth/password",
            &json!({"current_password": "not it at all", "new_password": "a brand new secret"}),
        )
        .await;
    assert!(wrong.problem(422)["errors"]["current_password"].is_array());
    let weak = here
        .post(
            "/api/v1/auth/password",
            &json!({"current_password": PASSWORD, "new_password": "weak"}),
        )
        .await;
    assert!(weak.problem(422)["errors"]["new_password"].is_array());

    let res = here
        .post(
            "/api/v1/auth/password",
            &json!({"current_password": PASSWORD, "new_password": "a brand new secret"}),
        )
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text);

    elsewhere.get("/api/v1/auth/me").await.problem(401);
    let replay = app.anonymous();
    *replay.cookie.borrow_mut() = Some(saved);
    replay.get("/api/v1/auth/me").await.problem(401);
    assert_eq!(
        here.get("/api/v1/auth/me").await.status,
        StatusCode::OK,
        "the caller's own session continues"
    );
    let bearer = app.anonymous();
    *bearer.bearer.borrow_mut() = Some(token);
    assert_eq!(
        bearer.get("/api/v1/auth/me").await.status,
        StatusCode::OK,
        "API tokens stay"
    );

    app.anonymous()
        .login(&username, PASSWORD)
        .await
        .problem(401);
    assert_eq!(
        app.anonymous()
            .login(&username, "a brand new secret")
            .await
            .status,
        StatusCode::OK
    );
}

#[actix_web::test]
async fn admin_password_reset_ends_the_users_sessions() {
    let app = TestApp::spawn().await;
    let admin = app.token_client(&[Role::Admin]).await;
    let doctor = app.login_as(&[Role::Doctor]).await;
    let id = doctor.get("/api/v1/auth/me").await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = admin
        .patch(
            &format!("/api/v1/users/{id}"),
            &json!({"password": "reset by the admin"}),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    doctor.get("/api/v1/auth/me").await.problem(401);
    assert_eq!(
        app.anonymous()
            .login(&doctor.username(), "reset by the admin")
            .await
            .status,
        StatusCode::OK
    );
}

#[actix_web::test]
async fn groups_list_the_three_roles() {
    let app = TestApp::spawn().await;
    let admin = app.token_client(&[Role::Admin]).await;
    let res = admin.get("/api/v1/groups").await;
    assert_eq!(res.status, StatusCode::OK);
    let names: Vec<&str> = res
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["admin", "doctor", "researcher"]);
    assert!(res.body[0]["description"]
        .as_str()
        .is_some_and(|d| !d.is_empty()));
}
