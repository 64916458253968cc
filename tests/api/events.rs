//! The audit log: one event per request, with every field, no secrets, committed before the
//! response; the admin's events API (filters, pages, CSV); and 503 when events cannot be written.

use actix_web::http::{Method, StatusCode};
use diesel::prelude::*;
use medlabel::auth::Role;
use medlabel::db::schema::events;
use medlabel::models::events::Event;
use serde_json::json;

use crate::helpers::{TestApp, PASSWORD};

async fn all_events(app: &TestApp) -> Vec<Event> {
    app.state
        .db
        .run(|conn| {
            Ok::<_, medlabel::error::ApiError>(
                events::table
                    .order(events::id)
                    .select(Event::as_select())
                    .load(conn)?,
            )
        })
        .await
        .unwrap()
}

#[actix_web::test]
async fn every_request_has_exactly_one_event_with_every_field() {
    let app = TestApp::spawn().await;
    let doctor = app.token_client(&[Role::Doctor]).await;
    let before = all_events(&app).await.len();
    let responses = vec![
        doctor
            .send(
                Method::GET,
                "/api/v1/auth/me",
                None,
                &[("user-agent", "medlabel-test/1.0")],
            )
            .await,
        doctor.get("/api/v1/labels?limit=5&q=x").await,
        doctor.get("/api/v1/nowhere").await,
        doctor.post("/api/v1/labels", &json!({"name": "x"})).await,
        app.anonymous().get("/api/v1/auth/me").await,
        app.anonymous().get("/health").await,
    ];
    let events = all_events(&app).await;
    assert_eq!(
        events.len() - before,
        5,
        "five audited requests (health is not audited)"
    );
    let new = &events[before..];
    for (event, res) in new.iter().zip(&responses) {
        let id = res.header("x-request-id").unwrap();
        assert_eq!(event.request_id, id);
        assert_eq!(event.uuid, id, "X-Request-Id is the event's id");
        assert_eq!(event.status, i32::from(res.status.as_u16()));
        assert_eq!(event.client_ip, "127.0.0.1");
        assert!(event.duration_ms >= 0.0);
        let headers: serde_json::Value = serde_json::from_str(&event.headers).unwrap();
        assert!(headers
            .as_object()
            .unwrap()
            .keys()
            .all(|k| k == &k.to_lowercase()));
    }
    assert_eq!(
        (
            new[0].method.as_str(),
            new[0].path.as_str(),
            new[0].auth.as_str()
        ),
        ("GET", "/api/v1/auth/me", "token")
    );
    assert_eq!(new[0].user_agent.as_deref(), Some("medlabel-test/1.0"));
    assert!(new[0].user_id.is_some());
    assert_eq!(new[1].query, "limit=5&q=x");
    assert_eq!(new[2].status, 404);
    assert_eq!(new[3].status, 403);
    assert_eq!(new[4].status, 401);
    assert!(new[4].user_id.is_none(), "a 401 is recorded with no user");
    assert_eq!(new[4].auth, "none");
}

#[actix_web::test]
async fn secrets_never_reach_the_events_table() {
    let app = TestApp::spawn().await;
    let username = app.create_user(&[Role::Doctor]).await;
    let client = app.anonymous();
    let canary = "c4nary-s3cret";
    client
        .send(
            Method::GET,
            "/api/v1/auth/me",
            None,
            &[("authorization", &format!("Bearer {canary}"))],
        )
        .await;
    client
        .send(
            Method::GET,
            "/api/v1/auth/me",
            None,
            &[("cookie", &format!("__Host-medlabel={canary}"))],
        )
        .await;
    client
        .send(
            Method::GET,
            "/api/v1/auth/me",
            None,
            &[("x-api-key", canary), ("proxy-authorization", canary)],
        )
        .await;
    client
        .get(&format!(
            "/api/v1/labels?token={canary}&api_key={canary}&password={canary}"
        ))
        .await;
    client.login(&username, canary).await;
    let ok = client.login(&username, PASSWORD).await;
    assert_eq!(ok.status, StatusCode::OK);
    client.get("/api/v1/auth/me").await; // with the real session cookie
    let cookie = client.cookie.borrow().clone().unwrap();
    let cookie_value = cookie.split_once('=').unwrap().1.to_owned();

    let dump = format!("{:?}", all_events(&app).await);
    assert!(!dump.contains(canary), "a secret reached the events table");
    assert!(
        !dump.contains(PASSWORD),
        "a password reached the events table"
    );
    assert!(
        !dump.contains(&cookie_value),
        "a session cookie reached the events table"
    );
    assert!(dump.contains("[redacted]"));
}

#[actix_web::test]
async fn logins_are_audited_with_the_username_tried() {
    let app = TestApp::spawn().await;
    let username = app.create_user(&[Role::Doctor]).await;
    let client = app.anonymous();
    let failed = client.login(&username, "not the password at all").await;
    let ok = client.login(&username, PASSWORD).await;
    let events = all_events(&app).await;
    let find = |id: &str| events.iter().find(|e| e.request_id == id).unwrap().clone();
    let failed = find(failed.header("x-request-id").unwrap());
    let ok = find(ok.header("x-request-id").unwrap());
    assert_eq!(
        (failed.status, failed.auth.as_str(), failed.user_id),
        (401, "none", None)
    );
    assert_eq!((ok.status, ok.auth.as_str()), (200, "none"));
    assert!(ok.user_id.is_some(), "a successful login names the user");
    for event in [&failed, &ok] {
        let detail: serde_json::Value =
            serde_json::from_str(event.detail.as_deref().unwrap()).unwrap();
        assert_eq!(detail["username"], username.as_str());
    }
}

#[actix_web::test]
async fn admins_list_filter_and_export_events() {
    let app = TestApp::spawn().await;
    let admin = app.token_client(&[Role::Admin]).await;
    let doctor = app.token_client(&[Role::Doctor]).await;
    doctor.get("/api/v1/labels").await;
    doctor.get("/api/v1/nowhere").await;
    app.anonymous().get("/api/v1/auth/me").await;
    doctor.get("/api/v1/events").await.problem(403);

    let page = admin.get("/api/v1/events?limit=2").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let items = page.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(
        items[0]["occurred_at"].as_str() >= items[1]["occurred_at"].as_str(),
        "newest first"
    );
    for field in [
        "id",
        "request_id",
        "occurred_at",
        "user",
        "auth",
        "method",
        "path",
        "query",
        "status",
        "duration_ms",
        "client_ip",
        "user_agent",
        "headers",
    ] {
        assert!(items[0].get(field).is_some(), "Event lacks {field}");
    }
    let next = admin
        .get(&format!(
            "/api/v1/events?limit=2&cursor={}",
            page.body["next_cursor"].as_str().unwrap()
        ))
        .await;
    assert_ne!(next.body["items"][0]["id"], items[0]["id"]);

    let doctor_id = doctor.get("/api/v1/auth/me").await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mine = admin
        .get(&format!("/api/v1/events?user_id={doctor_id}&status=404"))
        .await;
    let mine = mine.body["items"].as_array().unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["path"], "/api/v1/nowhere");
    assert_eq!(mine[0]["user"]["username"], doctor.username().as_str());
    let anon = admin
        .get("/api/v1/events?status=401&method=get&path_prefix=/api/v1/auth")
        .await;
    assert!(anon.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["user"].is_null() && e["status"] == 401));
    assert!(!anon.body["items"].as_array().unwrap().is_empty());
    let (since, until) = (
        chrono::Utc::now() - chrono::TimeDelta::minutes(5),
        chrono::Utc::now() + chrono::TimeDelta::minutes(5),
    );
    let fmt = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    let window = admin
        .get(&format!(
            "/api/v1/events?since={}&until={}&status=404",
            fmt(since),
            fmt(until)
        ))
        .await;
    assert_eq!(
        window.body["items"].as_array().unwrap().len(),
        1,
        "{}",
        window.text
    );
    let before_it = admin
        .get(&format!("/api/v1/events?until={}", fmt(since)))
        .await;
    assert_eq!(before_it.body["items"], json!([]));
    let future = admin.get("/api/v1/events?since=2999-01-01T00:00:00Z").await;
    assert_eq!(future.body["items"], json!([]));
    let past = admin.get("/api/v1/events?until=2000-01-01T00:00:00Z").await;
    assert_eq!(past.body["items"], json!([]));
    admin
        .get("/api/v1/events?since=yesterday")
        .await
        .problem(400);
    admin.get("/api/v1/events?status=abc").await.problem(400);
    admin.get("/api/v1/events?status=999").await.problem(422);
    admin.get("/api/v1/events?method=").await.problem(422);
    admin
        .get("/api/v1/events?method=GET%20X")
        .await
        .problem(422);

    let csv = admin
        .send(
            Method::GET,
            "/api/v1/events?status=404",
            None,
            &[("accept", "text/csv")],
        )
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
    let lines: Vec<&str> = csv.text.lines().collect();
    assert_eq!(
        lines[0],
        "id,request_id,occurred_at,user_id,username,auth,method,path,query,status,duration_ms,client_ip,user_agent,headers"
    );
    assert!(
        lines.len() >= 2 && lines[1..].iter().all(|l| l.contains(",404,")),
        "{}",
        csv.text
    );
}

#[actix_web::test]
async fn requests_answer_503_rather_than_unaudited() {
    let app = TestApp::spawn().await;
    let doctor = app.token_client(&[Role::Doctor]).await;
    assert_eq!(doctor.get("/api/v1/labels").await.status, StatusCode::OK);
    // The audit table becomes unwritable (as when its database is gone).
    app.sql("ALTER TABLE events RENAME TO events_away").await;
    // Every kind of request: a read, a write, a refused path, a refused query, an unknown
    // route, an unauthenticated call. None is answered unaudited, and each says why.
    let anonymous = app.anonymous();
    for (client, method, path) in [
        (&doctor, Method::GET, "/api/v1/labels"),
        (
            &doctor,
            Method::POST,
            "/api/v1/images/00000000-0000-7000-8000-000000000000/labels",
        ),
        (&doctor, Method::GET, "/api/v1/%FF"),
        (&doctor, Method::GET, "/api/v1/labels?q=%00"),
        (&doctor, Method::GET, "/api/v1/nothing-here"),
        (&anonymous, Method::GET, "/api/v1/labels"),
    ] {
        let res = client.send(method.clone(), path, None, &[]).await;
        let problem = res.problem(503);
        assert_eq!(
            problem["type"], "urn:medlabel:problem/audit-unavailable",
            "{method} {path}"
        );
        assert_eq!(res.header("retry-after"), Some("1"), "{method} {path}");
    }
    assert_eq!(
        app.anonymous().get("/health").await.status,
        StatusCode::OK,
        "health is not audited"
    );
    app.sql("ALTER TABLE events_away RENAME TO events").await;
    assert_eq!(
        doctor.get("/api/v1/labels").await.status,
        StatusCode::OK,
        "recovers when the table is back"
    );
}
