//! Every route of the foundation x every role: 401 for anonymous callers, 403 where the role
//! does not allow it, and through the guard otherwise.

use actix_web::http::{Method, StatusCode};
use medlabel::auth::Role;
use serde_json::{json, Value};

use crate::helpers::{TestApp, TestClient};

#[derive(Clone, Copy, PartialEq, Debug)]
enum Who {
    Anonymous,
    NoRole,
    Doctor,
    Researcher,
    Admin,
}

#[derive(Clone, Copy)]
enum Allowed {
    Everyone,
    AnyUser,
    AdminOnly,
}

#[actix_web::test]
async fn every_route_answers_each_role_as_the_contract_says() {
    let app = TestApp::spawn().await;
    let some_user = uuid::Uuid::now_v7().to_string();
    let routes: Vec<(Method, String, Option<Value>, Allowed)> = vec![
        (
            Method::POST,
            "/api/v1/auth/login".into(),
            Some(json!({"username": "x", "password": "y"})),
            Allowed::Everyone,
        ),
        (
            Method::GET,
            "/api/v1/auth/me".into(),
            None,
            Allowed::AnyUser,
        ),
        (
            Method::POST,
            "/api/v1/auth/password".into(),
            Some(json!({"current_password": "a", "new_password": "b"})),
            Allowed::AnyUser,
        ),
        (
            Method::GET,
            "/api/v1/auth/tokens".into(),
            None,
            Allowed::AnyUser,
        ),
        (
            Method::POST,
            "/api/v1/auth/tokens".into(),
            Some(json!({"name": "t"})),
            Allowed::AnyUser,
        ),
        (
            Method::DELETE,
            format!("/api/v1/auth/tokens/{some_user}"),
            None,
            Allowed::AnyUser,
        ),
        (
            Method::GET,
            "/api/v1/users".into(),
            None,
            Allowed::AdminOnly,
        ),
        (
            Method::POST,
            "/api/v1/users".into(),
            Some(json!({"username": "new", "password": "p", "roles": []})),
            Allowed::AdminOnly,
        ),
        (
            Method::GET,
            format!("/api/v1/users/{some_user}"),
            None,
            Allowed::AdminOnly,
        ),
        (
            Method::PATCH,
            format!("/api/v1/users/{some_user}"),
            Some(json!({"full_name": "x"})),
            Allowed::AdminOnly,
        ),
        (
            Method::GET,
            "/api/v1/groups".into(),
            None,
            Allowed::AdminOnly,
        ),
        (
            Method::POST,
            "/api/v1/auth/logout".into(),
            Some(json!({})),
            Allowed::AnyUser,
        ),
    ];
    let clients: Vec<(Who, TestClient)> = vec![
        (Who::Anonymous, app.anonymous()),
        (Who::NoRole, app.token_client(&[]).await),
        (Who::Doctor, app.token_client(&[Role::Doctor]).await),
        (Who::Researcher, app.token_client(&[Role::Researcher]).await),
        (Who::Admin, app.token_client(&[Role::Admin]).await),
    ];
    for (method, path, body, allowed) in &routes {
        for (who, client) in &clients {
            let res = client.send(method.clone(), path, body.as_ref(), &[]).await;
            let expected = match (allowed, who) {
                (Allowed::Everyone, _) => None,
                (_, Who::Anonymous) => Some(StatusCode::UNAUTHORIZED),
                (Allowed::AnyUser, _) => None,
                (Allowed::AdminOnly, Who::Admin) => None,
                (Allowed::AdminOnly, _) => Some(StatusCode::FORBIDDEN),
            };
            match expected {
                Some(status) => {
                    assert_eq!(res.status, status, "{who:?} {method} {path}: {}", res.text)
                }
                None => assert!(
                    res.status != StatusCode::UNAUTHORIZED && res.status != StatusCode::FORBIDDEN
                        || path.ends_with("/login"),
                    "{who:?} {method} {path} was refused: {}",
                    res.text
                ),
            }
            if res.status.is_client_error() {
                res.problem(res.status.as_u16());
            }
        }
    }
}

#[actix_web::test]
async fn a_user_without_a_role_may_use_auth_only() {
    let app = TestApp::spawn().await;
    let client = app.login_as(&[]).await;
    let me = client.get("/api/v1/auth/me").await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["roles"], json!([]));
    client.get("/api/v1/users").await.problem(403);
    client.get("/api/v1/groups").await.problem(403);
}
