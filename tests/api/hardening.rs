//! Holes found by attacking the service, each closed as a kind: every spelling of a path is
//! routed, audited and given the security headers as its canonical form; secrets are found in
//! query and header names however they are encoded; CSV cells never become formulas.
//!
//! Long on purpose: each test drives one kind of attack over every route, so the cases of a
//! kind stay together.

use std::collections::HashMap;

use actix_web::http::{Method, StatusCode};
use diesel::prelude::*;
use medlabel::auth::Role;
use medlabel::db::schema::{events, history};
use serde_json::json;

use crate::helpers::{TestApp, TestClient, TestResponse, PASSWORD};

/// `path` with its `i`-th character percent-encoded (`upper` chooses the hex case).
fn encode_at(path: &str, i: usize, upper: bool) -> String {
    path.char_indices()
        .map(|(j, c)| {
            if j == i {
                if upper {
                    format!("%{:02X}", c as u32)
                } else {
                    format!("%{:02x}", c as u32)
                }
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Every spelling of `path` we could think of that a server decoding and normalising paths
/// would route to it: each letter or digit encoded alone (both hex cases), every letter
/// encoded, doubled slashes, dot segments (plain and encoded), and climbs above the root.
fn variants(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, c) in path.char_indices() {
        if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
            out.push(encode_at(path, i, true));
            out.push(encode_at(path, i, false));
        }
    }
    out.push(
        path.chars()
            .map(|c| {
                if c.is_ascii_alphabetic() {
                    format!("%{:02X}", c as u32)
                } else {
                    c.to_string()
                }
            })
            .collect(),
    );
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    out.push(format!("/{}", segments.join("//")));
    out.push(format!("//{}", segments.join("/")));
    out.push(format!("/./{}", segments.join("/./")));
    out.push(format!("/%2e/{}", segments.join("/%2E/")));
    out.push(format!("/x/../{}", segments.join("/y/%2e%2e/")));
    out.push(format!("/../../{}", segments.join("/")));
    out
}

async fn events_by_request(app: &TestApp) -> HashMap<String, (String, i32)> {
    app.state
        .db
        .run(|conn| {
            Ok::<_, medlabel::error::ApiError>(
                events::table
                    .select((events::request_id, events::path, events::status))
                    .load::<(String, String, i32)>(conn)?,
            )
        })
        .await
        .unwrap()
        .into_iter()
        .map(|(id, path, status)| (id, (path, status)))
        .collect()
}

fn request_id(res: &TestResponse) -> String {
    res.header("x-request-id").unwrap().to_owned()
}

#[actix_web::test]
async fn every_encoded_spelling_of_every_route_is_routed_audited_and_private() {
    let app = TestApp::spawn().await;
    let admin = app.token_client(&[Role::Admin]).await;
    let png = crate::fixtures::png(4, 3);
    let image = admin.upload(&png, "x.png", None).await;
    assert_eq!(image.status, StatusCode::CREATED, "{}", image.text);
    let image_id = image.body["id"].as_str().unwrap().to_owned();
    let label = admin
        .post("/api/v1/labels", &json!({"name": "Effusion"}))
        .await;
    let label_id = label.body["id"].as_str().unwrap().to_owned();

    let routes = [
        "/api/v1/auth/me".to_owned(),
        "/api/v1/auth/tokens".to_owned(),
        "/api/v1/users".to_owned(),
        "/api/v1/groups".to_owned(),
        "/api/v1/images".to_owned(),
        format!("/api/v1/images/{image_id}"),
        format!("/api/v1/images/{image_id}/file"),
        format!("/api/v1/images/{image_id}/labels"),
        format!("/api/v1/images/{image_id}/history"),
        "/api/v1/labels".to_owned(),
        format!("/api/v1/labels/{label_id}"),
        "/api/v1/diseases".to_owned(),
        "/api/v1/codes".to_owned(),
        "/api/v1/code-systems".to_owned(),
        "/api/v1/history".to_owned(),
        "/api/v1/events".to_owned(),
        "/api/v1/openapi.json".to_owned(),
        "/docs/".to_owned(),
    ];
    let mut sent: Vec<(String, String, String, StatusCode)> = Vec::new();
    for route in &routes {
        let plain = admin.get(route).await;
        assert!(plain.status.is_success(), "{route}: {}", plain.status);
        for variant in variants(route) {
            let res = admin.get(&variant).await;
            assert_eq!(res.status, plain.status, "{variant} is routed as {route}");
            assert_eq!(res.bytes.is_empty(), plain.bytes.is_empty(), "{variant}");
            assert_eq!(
                res.header("cache-control"),
                Some("no-store"),
                "{variant} is private"
            );
            assert_eq!(res.header("x-content-type-options"), Some("nosniff"));
            sent.push((variant, route.clone(), request_id(&res), res.status));
        }
    }
    let events = events_by_request(&app).await;
    for (variant, route, id, status) in &sent {
        let (path, recorded) = events
            .get(id)
            .unwrap_or_else(|| panic!("{variant} left no event"));
        assert_eq!(
            path, route,
            "{variant} is recorded under its canonical path"
        );
        assert_eq!(*recorded, i32::from(status.as_u16()));
    }

    // The events of one image are found by its canonical path, whatever spelling was sent.
    let prefix = format!("/api/v1/images/{image_id}");
    let listed = admin
        .get(&format!("/api/v1/events?path_prefix={prefix}&limit=200"))
        .await;
    let count = listed.body["items"].as_array().unwrap().len();
    let expected = sent
        .iter()
        .filter(|(_, r, _, _)| r.starts_with(&prefix))
        .count();
    assert!(count >= expected.min(200), "{count} < {expected}");
}

#[actix_web::test]
async fn encoded_writes_and_logins_leave_events_that_match_their_history() {
    let app = TestApp::spawn().await;
    let researcher = app.token_client(&[Role::Researcher]).await;
    let created = researcher
        .post("/%61pi/v1/l%61bels", &json!({"name": "Atelectasis"}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.header("cache-control"), Some("no-store"));
    let id = created.body["id"].as_str().unwrap();
    let patched = researcher
        .patch(
            &format!("/api/v1/./labels//{id}"),
            &json!({"description": "collapse"}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);

    let username = app.create_user(&[Role::Doctor]).await;
    let anon = app.anonymous();
    let failed = anon
        .post(
            "/%61%70%69/v1/auth/login",
            &json!({"username": username, "password": "wrong wrong wrong"}),
        )
        .await;
    assert_eq!(failed.status, StatusCode::UNAUTHORIZED);
    let ok = anon
        .post(
            "/api/v1/auth/%6Cogin",
            &json!({"username": username, "password": PASSWORD}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK);

    let events = events_by_request(&app).await;
    for (res, path) in [
        (&created, "/api/v1/labels".to_owned()),
        (&patched, format!("/api/v1/labels/{id}")),
        (&failed, "/api/v1/auth/login".to_owned()),
        (&ok, "/api/v1/auth/login".to_owned()),
    ] {
        let (recorded, _) = events.get(&request_id(res)).expect("event");
        assert_eq!(recorded, &path);
    }
    let history_requests: Vec<String> = app
        .state
        .db
        .run(|conn| {
            Ok::<_, medlabel::error::ApiError>(
                history::table
                    .select(history::request_id)
                    .load::<String>(conn)?,
            )
        })
        .await
        .unwrap();
    assert_eq!(history_requests.len(), 2);
    for id in history_requests {
        assert!(events.contains_key(&id), "history row {id} has its event");
    }
}

#[actix_web::test]
async fn paths_that_are_not_utf8_name_nothing_and_are_audited() {
    let app = TestApp::spawn().await;
    let admin = app.token_client(&[Role::Admin]).await;
    let res = admin.get("/api/v1/labels/%FF%FE").await;
    res.problem(404);
    assert_eq!(res.header("cache-control"), Some("no-store"));
    let events = events_by_request(&app).await;
    assert!(events.contains_key(&request_id(&res)));
    // An encoded separator is data, never a separator: no route, but audited.
    let res = admin.get("/api%2Fv1/labels").await;
    res.problem(404);
    assert!(events_by_request(&app)
        .await
        .contains_key(&request_id(&res)));
}

async fn dump_events(app: &TestApp) -> String {
    let rows = app
        .state
        .db
        .run(|conn| {
            Ok::<_, medlabel::error::ApiError>(
                events::table
                    .select((
                        events::query,
                        events::headers,
                        events::path,
                        events::user_agent,
                    ))
                    .load::<(String, String, String, Option<String>)>(conn)?,
            )
        })
        .await
        .unwrap();
    format!("{rows:?}")
}

#[actix_web::test]
async fn secrets_are_redacted_however_their_names_are_spelled() {
    let app = TestApp::spawn().await;
    let researcher = app.token_client(&[Role::Researcher]).await;
    for name in [
        "%74oken",
        "pass%77ord",
        "API_KEY",
        "db_pwd",
        "Client%5FSecret",
        "x-signature",
        "sessionid",
        "aws_credential",
        "%C5%BFecret",
        "my+auth",
        "%2574oken",
    ] {
        let res = researcher
            .get(&format!(
                "/api/v1/labels?{name}=canary-q1&limit=5&{name}=canary-q2"
            ))
            .await;
        assert_ne!(res.status, StatusCode::INTERNAL_SERVER_ERROR);
    }
    for (header, value) in [
        ("x-auth-token", "canary-h1"),
        ("x-access-token", "canary-h2"),
        ("x-amz-security-token", "canary-h3"),
        ("x-csrf-token", "canary-h4"),
        ("authentication", "canary-h5"),
        ("x-session-id", "canary-h6"),
        ("x-original-url", "/api/v1/labels?token=canary-h9"),
        ("cookie2", "sid=canary-h10"),
        ("referer", "http://user:canary-h12@x.example/"),
        ("user-agent", "tool/1 token=canary-h13"),
        ("user-agent", "tool/1 https://u:canary-h14@h"),
        ("x-note", "token = canary-h15"),
        ("forwarded", "for=10.0.0.1;token=canary-h11"),
        (
            "referer",
            "https://app.example/list?page=2&access_token=canary-h7&pass%77ord=canary-h8",
        ),
    ] {
        researcher
            .send(Method::GET, "/api/v1/labels", None, &[(header, value)])
            .await;
    }
    let dump = dump_events(&app).await;
    assert!(
        !dump.contains("canary"),
        "a secret reached the events: {dump}"
    );
    assert!(
        dump.contains("limit=5") && dump.contains("page=2"),
        "{dump}"
    );
}

#[actix_web::test]
async fn tokens_in_the_url_are_refused_however_spelled() {
    let app = TestApp::spawn().await;
    let anon = app.anonymous();
    for query in ["%74oken=x", "ACCESS%5Ftoken=x", "TOKEN=x"] {
        anon.get(&format!("/api/v1/labels?{query}"))
            .await
            .problem(401);
    }
}

async fn csv_of(admin: &TestClient, accept: &str) -> TestResponse {
    admin
        .send(Method::GET, "/api/v1/events", None, &[("accept", accept)])
        .await
}

#[actix_web::test]
async fn events_csv_never_carries_a_live_formula() {
    let app = TestApp::spawn().await;
    let anon = app.anonymous();
    let formulas = [
        "=HYPERLINK(\"http://evil.example\",\"x\")",
        "+SUM(1,2)",
        "-2+3",
        "@SUM(A1)",
    ];
    for agent in formulas {
        anon.send(
            Method::GET,
            "/api/v1/auth/me",
            None,
            &[("user-agent", agent)],
        )
        .await;
    }
    // A header value cannot start with a tab (HTTP trims it); a query can start with anything.
    anon.get("/api/v1/auth/me?=1+2&x=%09cmd").await;
    anon.get("/api/v1/auth/me?-1").await;
    let admin = app.token_client(&[Role::Admin]).await;
    let res = csv_of(&admin, "text/csv").await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(res.header("content-type").unwrap().starts_with("text/csv"));
    let mut reader = csv::Reader::from_reader(res.bytes.as_ref());
    let headers = reader.headers().unwrap().clone();
    assert_eq!(headers.len(), 14);
    let mut seen = 0;
    for record in reader.records() {
        let record = record.unwrap();
        assert_eq!(record.len(), 14);
        for cell in record.iter() {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "live formula in the CSV: {cell:?}"
            );
        }
        if formulas.iter().any(|f| record[12] == format!("'{f}")) {
            seen += 1;
        }
    }
    assert_eq!(seen, formulas.len(), "each user agent kept, neutralised");

    // q=0 means "not CSV"; JSON preferred to CSV means JSON.
    for accept in ["text/csv;q=0", "application/json, text/csv;q=0.5", "*/*"] {
        let res = csv_of(&admin, accept).await;
        assert_eq!(res.status, StatusCode::OK);
        assert!(
            res.header("content-type")
                .unwrap()
                .starts_with("application/json"),
            "{accept}"
        );
    }
    let res = csv_of(&admin, "application/json;q=0.2, text/csv;q=0.8").await;
    assert!(res.header("content-type").unwrap().starts_with("text/csv"));
}

async fn client_ips(app: &TestApp) -> HashMap<String, String> {
    app.state
        .db
        .run(|conn| {
            Ok::<_, medlabel::error::ApiError>(
                events::table
                    .select((events::request_id, events::client_ip))
                    .load::<(String, String)>(conn)?,
            )
        })
        .await
        .unwrap()
        .into_iter()
        .collect()
}

#[actix_web::test]
async fn a_dual_stack_listener_sees_ipv4_clients_as_ipv4() {
    let app = TestApp::spawn_with(&[
        ("MEDLABEL_BIND", "[::]:0"),
        ("MEDLABEL_TRUSTED_PROXIES", "127.0.0.1/32"),
    ])
    .await;
    let anon = app.anonymous();
    let direct = anon.get("/api/v1/auth/me").await;
    let proxied = anon
        .send(
            Method::GET,
            "/api/v1/auth/me",
            None,
            &[("x-forwarded-for", "203.0.113.5")],
        )
        .await;
    let ips = client_ips(&app).await;
    assert_eq!(ips[&request_id(&direct)], "127.0.0.1", "unmapped");
    assert_eq!(
        ips[&request_id(&proxied)],
        "203.0.113.5",
        "the proxy is recognised through its mapped address"
    );

    // One client behind the proxy locking itself out does not lock out another.
    let username = app.create_user(&[Role::Doctor]).await;
    let other = app.create_user(&[Role::Doctor]).await;
    for _ in 0..10 {
        anon.send(
            Method::POST,
            "/api/v1/auth/login",
            Some(&json!({"username": username, "password": "wrong wrong wrong"})),
            &[("x-forwarded-for", "203.0.113.5")],
        )
        .await;
    }
    let locked = anon
        .send(
            Method::POST,
            "/api/v1/auth/login",
            Some(&json!({"username": username, "password": PASSWORD})),
            &[("x-forwarded-for", "203.0.113.5")],
        )
        .await;
    assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS);
    let fine = app
        .anonymous()
        .send(
            Method::POST,
            "/api/v1/auth/login",
            Some(&json!({"username": other, "password": PASSWORD})),
            &[("x-forwarded-for", "198.51.100.9")],
        )
        .await;
    assert_eq!(fine.status, StatusCode::OK, "{}", fine.text);
}

#[actix_web::test]
async fn forwarded_host_headers_count_only_from_trusted_proxies() {
    let app = TestApp::spawn().await;
    let session = app.login_as(&[Role::Admin]).await;
    let body = json!({"name": "csrf"});
    let own_port = app.address.rsplit(':').next().unwrap().to_owned();
    for headers in [
        vec![
            ("origin", "https://evil.example"),
            ("x-forwarded-host", "evil.example"),
            ("x-forwarded-proto", "https"),
        ],
        vec![
            ("origin", "https://evil.example"),
            ("forwarded", "host=evil.example;proto=https"),
        ],
    ] {
        session
            .send(Method::POST, "/api/v1/auth/tokens", Some(&body), &headers)
            .await
            .problem(403);
    }
    // The scheme counts: an https page is another origin than this plain-http server.
    let https_self = format!("https://127.0.0.1:{own_port}");
    session
        .send(
            Method::POST,
            "/api/v1/auth/tokens",
            Some(&body),
            &[("origin", https_self.as_str())],
        )
        .await
        .problem(403);
    let tokens = session.get("/api/v1/auth/tokens").await;
    assert_eq!(
        tokens.body.as_array().unwrap().len(),
        0,
        "nothing was written"
    );

    // Behind a configured proxy, its forwarding headers name the site.
    let app = TestApp::spawn_with(&[("MEDLABEL_TRUSTED_PROXIES", "127.0.0.1/32")]).await;
    let session = app.login_as(&[Role::Admin]).await;
    for headers in [
        vec![
            ("origin", "https://medlabel.example"),
            ("x-forwarded-host", "medlabel.example"),
            ("x-forwarded-proto", "https"),
        ],
        vec![
            ("origin", "https://medlabel.example"),
            (
                "forwarded",
                "for=198.51.100.1;host=medlabel.example;proto=https",
            ),
        ],
    ] {
        let res = session
            .send(Method::POST, "/api/v1/auth/tokens", Some(&body), &headers)
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    }
    session
        .send(
            Method::POST,
            "/api/v1/auth/tokens",
            Some(&body),
            &[
                ("origin", "http://medlabel.example"),
                ("x-forwarded-host", "medlabel.example"),
                ("x-forwarded-proto", "https"),
            ],
        )
        .await
        .problem(403);

    // Two lines of one header are one list: a client's line before the proxy's counts for
    // nothing.
    let port = app.address.rsplit(':').next().unwrap().to_owned();
    let cookie = session.cookie.borrow().clone().unwrap();
    for lines in [
        "X-Forwarded-Host: evil.example\r\nX-Forwarded-Host: medlabel.example\r\nX-Forwarded-Proto: https\r\n",
        "Forwarded: host=evil.example;proto=https\r\nForwarded: host=medlabel.example;proto=https\r\n",
        "X-Forwarded-Host: evil.example\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Proto: http\r\n",
    ] {
        use std::io::{Read, Write};
        let body = r#"{"name":"csrf"}"#;
        let mut stream = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
        write!(
            stream,
            "POST /api/v1/auth/tokens HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: {cookie}\r\n\
             Origin: https://evil.example\r\n{lines}Content-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 403"), "{lines}: {answer}");
    }
}

#[actix_web::test]
async fn nul_characters_are_refused_naming_the_field_on_every_route() {
    let app = TestApp::spawn().await;
    let anon = app.anonymous();
    let res = anon
        .post(
            "/api/v1/auth/login",
            &json!({"username": "dr\u{0}house", "password": "whatever it is"}),
        )
        .await;
    assert!(
        res.problem(422)["errors"]["username"].is_array(),
        "{}",
        res.text
    );

    let researcher = app.token_client(&[Role::Researcher]).await;
    let admin = app.token_client(&[Role::Admin]).await;
    for (path, body, field) in [
        ("/api/v1/labels", json!({"name": "a\u{0}b"}), "name"),
        (
            "/api/v1/labels",
            json!({"name": "ok", "description": "x\u{0}"}),
            "description",
        ),
        ("/api/v1/diseases", json!({"name": "\u{0}"}), "name"),
        (
            "/api/v1/diseases",
            json!({"name": "ok", "codes": [{"system": "icd-10", "code": "J18\u{0}9"}]}),
            "codes.0.code",
        ),
        (
            "/api/v1/codes",
            json!({"system": "icd-10", "code": "J18.9", "description": "\u{0}"}),
            "description",
        ),
    ] {
        let res = researcher.post(path, &body).await;
        assert!(
            res.problem(422)["errors"][field].is_array(),
            "{path} {field}: {}",
            res.text
        );
    }
    let res = admin
        .post(
            "/api/v1/users",
            &json!({"username": "nul\u{0}user", "password": PASSWORD, "roles": []}),
        )
        .await;
    assert!(res.problem(422)["errors"]["username"].is_array());

    let png = crate::fixtures::png(4, 3);
    let image = admin.upload(&png, "x.png", None).await;
    let image_id = image.body["id"].as_str().unwrap();
    let label = researcher
        .post("/api/v1/labels", &json!({"name": "Nodule"}))
        .await;
    let label_id = label.body["id"].as_str().unwrap();
    let res = admin
        .post(
            &format!("/api/v1/images/{image_id}/labels"),
            &json!({"label_id": label_id, "note": "n\u{0}"}),
        )
        .await;
    assert!(res.problem(422)["errors"]["note"].is_array());
    let res = admin
        .patch(
            &format!("/api/v1/images/{image_id}"),
            &json!({"description": "\u{0}"}),
        )
        .await;
    assert!(res.problem(422)["errors"]["description"].is_array());
    let res = admin.upload(&png, "y.png", Some("d\u{0}")).await;
    assert!(res.problem(422)["errors"]["description"].is_array());

    for path in [
        "/api/v1/labels?q=a%00b",
        "/api/v1/diseases?q=%00",
        "/api/v1/codes?q=x%00",
        "/api/v1/codes?prefix=J%00",
        "/api/v1/events?path_prefix=%00",
        "/api/v1/labels?%00=1",
    ] {
        admin.get(path).await.problem(400);
    }
    // A path holding NUL names nothing.
    for path in [
        "/api/v1/codes/icd-10/J18%009",
        "/api/v1/codes/icd-10/J18%009/history",
        "/api/v1/labels/%00",
    ] {
        admin.get(path).await.problem(404);
    }
    // Nothing was written, and every refusal was audited (on PostgreSQL too).
    let labels = researcher.get("/api/v1/labels").await;
    assert_eq!(labels.body["items"].as_array().unwrap().len(), 1);
    let events = events_by_request(&app).await;
    assert!(events.values().filter(|(_, s)| *s == 400).count() >= 6);
    assert!(events.values().filter(|(_, s)| *s == 404).count() >= 3);
}

/// `at` (RFC 3339) moved by `nanos` and written with nine fractional digits.
fn shifted(at: &str, nanos: i64) -> String {
    let t = chrono::DateTime::parse_from_rfc3339(at)
        .unwrap()
        .naive_utc()
        + chrono::TimeDelta::nanoseconds(nanos);
    format!("{}Z", t.format("%Y-%m-%dT%H:%M:%S%.9f"))
}

fn ids(res: &TestResponse) -> Vec<String> {
    res.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

#[actix_web::test]
async fn time_bounds_compare_at_full_precision() {
    let app = TestApp::spawn().await;
    let admin = app.token_client(&[Role::Admin]).await;
    admin.get("/api/v1/auth/me").await;
    let listed = admin.get("/api/v1/events?limit=1").await;
    let event = &listed.body["items"][0];
    let (id, at) = (
        event["id"].as_str().unwrap().to_owned(),
        event["occurred_at"].as_str().unwrap().to_owned(),
    );
    let query = |name: &str, bound: String| {
        format!(
            "/api/v1/events?limit=200&{name}={}",
            bound.replace('+', "%2B")
        )
    };
    // Digits beyond the nanosecond count too.
    let beyond = at.replace('Z', "00000000001Z");
    let page = admin.get(&query("until", beyond.clone())).await;
    assert!(ids(&page).contains(&id), "until={beyond}");
    let page = admin.get(&query("since", beyond.clone())).await;
    assert!(!ids(&page).contains(&id), "since={beyond}");
    for (name, nanos, included) in [
        ("until", 500_000, true),
        ("until", 1, true),
        ("until", 0, false),
        ("until", -500_000, false),
        ("since", 0, true),
        ("since", -500_000, true),
        ("since", 1, false),
        ("since", 500_000, false),
    ] {
        let bound = shifted(&at, nanos);
        let page = admin.get(&query(name, bound.clone())).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        assert_eq!(
            ids(&page).contains(&id),
            included,
            "{name}={bound} against an event at {at}"
        );
        let csv = admin
            .send(
                Method::GET,
                &query(name, bound.clone()),
                None,
                &[("accept", "text/csv")],
            )
            .await;
        assert_eq!(csv.text.contains(&id), included, "CSV {name}={bound}");
    }

    // The same rule for images and history.
    let png = crate::fixtures::png(4, 3);
    let image = admin.upload(&png, "x.png", None).await;
    let (image_id, created) = (
        image.body["id"].as_str().unwrap().to_owned(),
        image.body["created_at"].as_str().unwrap().to_owned(),
    );
    for (name, nanos, included) in [
        ("created_before", 500_000, true),
        ("created_before", 0, false),
        ("created_after", 0, true),
        ("created_after", 500_000, false),
    ] {
        let page = admin
            .get(&query(name, shifted(&created, nanos)).replace("/events", "/images"))
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        assert_eq!(ids(&page).contains(&image_id), included, "{name} {nanos}");
    }
    let history = admin.get("/api/v1/history").await;
    let entry = &history.body["items"][0];
    let (entry_id, changed) = (
        entry["id"].as_str().unwrap().to_owned(),
        entry["changed_at"].as_str().unwrap().to_owned(),
    );
    for (name, nanos, included) in [
        ("until", 500_000, true),
        ("until", 0, false),
        ("since", 0, true),
        ("since", 500_000, false),
    ] {
        let page = admin
            .get(&query(name, shifted(&changed, nanos)).replace("/events", "/history"))
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        assert_eq!(
            ids(&page).contains(&entry_id),
            included,
            "history {name} {nanos}"
        );
    }
}

#[actix_web::test]
async fn head_works_on_every_get_route() {
    let app = TestApp::spawn().await;
    let admin = app.token_client(&[Role::Admin]).await;
    let png = crate::fixtures::png(40, 30);
    let image = admin.upload(&png, "x.png", None).await;
    let id = image.body["id"].as_str().unwrap().to_owned();
    for path in [
        "/health".to_owned(),
        "/api/v1/auth/me".to_owned(),
        "/api/v1/labels".to_owned(),
        "/api/v1/images".to_owned(),
        format!("/api/v1/images/{id}"),
        format!("/api/v1/images/{id}/file"),
        "/api/v1/code-systems".to_owned(),
        "/api/v1/openapi.json".to_owned(),
    ] {
        let get = admin.get(&path).await;
        let head = admin.send(Method::HEAD, &path, None, &[]).await;
        assert_eq!(head.status, get.status, "HEAD {path}");
        assert!(head.bytes.is_empty(), "HEAD {path} has no body");
        assert_eq!(
            head.header("content-type"),
            get.header("content-type"),
            "{path}"
        );
        if path.ends_with("/file") {
            assert_eq!(
                head.header("content-length"),
                Some(png.len().to_string().as_str())
            );
            assert_eq!(head.header("etag"), get.header("etag"));
        }
    }
    let events = events_by_request(&app).await;
    assert!(events.len() > 8);
    // A route without GET answers HEAD with 405 and its Allow list.
    let res = admin
        .send(Method::HEAD, "/api/v1/auth/login", None, &[])
        .await;
    assert_eq!(res.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[actix_web::test]
async fn ranges_with_huge_or_invalid_numbers_follow_rfc_9110() {
    let app = TestApp::spawn().await;
    let admin = app.token_client(&[Role::Admin]).await;
    let png = crate::fixtures::png(40, 30);
    let image = admin.upload(&png, "x.png", None).await;
    let path = format!("/api/v1/images/{}/file", image.body["id"].as_str().unwrap());
    let get = |range: &'static str| {
        let (admin, path) = (&admin, path.clone());
        async move {
            admin
                .send(Method::GET, &path, None, &[("range", range)])
                .await
        }
    };
    let res = get("bytes=0-99999999999999999999999").await;
    assert_eq!(res.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(&res.bytes[..], &png[..]);
    let last = png.len() - 1;
    assert_eq!(
        res.header("content-range"),
        Some(format!("bytes 0-{last}/{}", png.len()).as_str())
    );
    let res = get("bytes=99999999999999999999999-").await;
    res.problem(416);
    assert_eq!(
        res.header("content-range"),
        Some(format!("bytes */{}", png.len()).as_str())
    );
    for ignored in [
        "bytes=9-3",
        "bytes=x-",
        "pages=1-2",
        "bytes=0-1,4-5",
        "bytes=0-5,3-8",
    ] {
        let res = get(ignored).await;
        assert_eq!(res.status, StatusCode::OK, "{ignored}");
        assert_eq!(&res.bytes[..], &png[..]);
    }
}

#[actix_web::test]
async fn names_compare_after_nfc_and_full_case_folding_on_both_backends() {
    let app = TestApp::spawn().await;
    let admin = app.token_client(&[Role::Admin]).await;
    let create = |username: &str| json!({"username": username, "password": "a perfectly fine passphrase", "roles": ["doctor"]});
    for username in ["Ärztin", "ÉLODIE", "Ölçer"] {
        let res = admin.post("/api/v1/users", &create(username)).await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
        for typed in [
            username.to_owned(),
            username.to_lowercase(),
            username.to_uppercase(),
        ] {
            let res = app.anonymous().login(&typed, PASSWORD).await;
            assert_eq!(
                res.status,
                StatusCode::OK,
                "{username} as {typed}: {}",
                res.text
            );
        }
    }
    let res = admin.post("/api/v1/users", &create("ZOË")).await;
    assert_eq!(res.status, StatusCode::CREATED);
    for twin in ["Zoë", "zoe\u{308}", "ZOE\u{308}", "ölçer", "ärztin"] {
        let res = admin.post("/api/v1/users", &create(twin)).await;
        res.problem(409);
    }
    let res = app.anonymous().login("zoe\u{308}", PASSWORD).await;
    assert_eq!(res.status, StatusCode::OK, "decomposed form logs in");
    assert_eq!(res.body["user"]["username"], "ZOË");

    let researcher = app.token_client(&[Role::Researcher]).await;
    for (path, first, twins) in [
        (
            "/api/v1/labels",
            "Ödem",
            vec!["ÖDEM", "ödem", "O\u{308}dem"],
        ),
        (
            "/api/v1/diseases",
            "Ménière disease",
            vec![
                "Me\u{301}nie\u{300}re disease",
                "MÉNIÈRE DISEASE",
                "ME\u{301}NIE\u{300}RE disease",
            ],
        ),
        ("/api/v1/labels", "Straße", vec!["STRASSE", "strasse"]),
    ] {
        let res = researcher.post(path, &json!({"name": first})).await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
        for twin in twins {
            researcher
                .post(path, &json!({"name": twin}))
                .await
                .problem(409);
        }
    }
    // Stored in NFC; found by any case or form.
    let res = researcher
        .post("/api/v1/labels", &json!({"name": "Ne\u{301}vus"}))
        .await;
    assert_eq!(res.body["name"], "N\u{e9}vus");
    for q in ["%C3%B6dem", "%C3%96DEM", "O%CC%88dem"] {
        let found = researcher.get(&format!("/api/v1/labels?q={q}")).await;
        let names: Vec<&str> = found.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, vec!["Ödem"], "q={q}");
    }
    let found = researcher.get("/api/v1/diseases?q=m%C3%A9ni%C3%88re").await;
    assert_eq!(found.body["items"].as_array().unwrap().len(), 1);

    // Renaming into a twin is a conflict too.
    let other = researcher
        .post("/api/v1/labels", &json!({"name": "Other"}))
        .await;
    let id = other.body["id"].as_str().unwrap();
    researcher
        .patch(&format!("/api/v1/labels/{id}"), &json!({"name": "öDEM"}))
        .await
        .problem(409);

    // Blank names and invisible characters are refused.
    for bad in [
        "   ",
        "\t",
        "a\u{200B}b",
        "x\u{202E}y",
        "\u{2066}z",
        "\u{FEFF}w",
    ] {
        for path in ["/api/v1/labels", "/api/v1/diseases"] {
            let res = researcher.post(path, &json!({"name": bad})).await;
            assert!(res.problem(422)["errors"]["name"].is_array(), "{bad:?}");
        }
        let res = admin.post("/api/v1/users", &create(bad)).await;
        assert!(res.problem(422)["errors"]["username"].is_array(), "{bad:?}");
    }
}

#[actix_web::test]
async fn a_change_and_its_event_commit_together() {
    let app = TestApp::spawn().await;
    let researcher = app.token_client(&[Role::Researcher]).await;
    let res = researcher
        .post("/api/v1/test/change-then-look", &json!({}))
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(
        res.body["event_status"], 200,
        "the event was committed with the change, before the answer"
    );
    // Exactly one event for the request (the middleware did not write a second).
    let events = events_by_request(&app).await;
    assert_eq!(events[&request_id(&res)].1, 200);
    let count = app
        .state
        .db
        .run(|conn| {
            Ok::<_, medlabel::error::ApiError>(events::table.count().get_result::<i64>(conn)?)
        })
        .await
        .unwrap();
    assert_eq!(count as usize, events.len());

    // A change that rolls back leaves no event behind from inside it: the middleware writes
    // the refusal's event.
    let created = researcher
        .post("/api/v1/labels", &json!({"name": "Twin"}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let refused = researcher
        .post("/api/v1/labels", &json!({"name": "twin"}))
        .await;
    refused.problem(409);
    let events = events_by_request(&app).await;
    assert_eq!(events[&request_id(&created)].1, 201);
    assert_eq!(events[&request_id(&refused)].1, 409);
}

#[actix_web::test]
async fn the_sweep_removes_only_old_unreferenced_storage() {
    use object_store::{path::Path, ObjectStoreExt as _};
    let dir = tempfile::tempdir().unwrap();
    let objects = dir.path().join("objects");
    let url = format!("file://{}", objects.display());
    let app = TestApp::spawn_with(&[("STORAGE_URL", url.as_str())]).await;
    let doctor = app.token_client(&[Role::Doctor]).await;
    let researcher = app.token_client(&[Role::Researcher]).await;
    let png = crate::fixtures::png(8, 8);
    let kept = doctor.upload(&png, "a.png", None).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deleted = doctor.upload(&png, "b.png", None).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    researcher.get(&format!("/api/v1/images/{kept}/file")).await; // a de-identified copy
    doctor.delete(&format!("/api/v1/images/{deleted}")).await;
    let referenced = app.stored_objects().await;
    assert_eq!(referenced.len(), 3, "{referenced:?}");

    let store = app.state.storage.store();
    let orphan = format!("images/{}", uuid::Uuid::now_v7());
    for key in [
        orphan.clone(),
        format!("deidentified/{}/0123abcd", uuid::Uuid::now_v7()),
        "health/probe-left-behind".to_owned(),
    ] {
        store
            .put(&Path::from(key), vec![7u8; 1000].into())
            .await
            .unwrap();
    }
    let staging = objects.join(format!("{orphan}#1"));
    std::fs::write(&staging, vec![1u8; 500]).unwrap();
    // A symbolic link inside the store pointing elsewhere: what it points at is not swept.
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(outside.join("sub")).unwrap();
    std::fs::write(outside.join("sub").join("keep.txt"), b"not storage").unwrap();
    let link = objects
        .join("images")
        .join(uuid::Uuid::now_v7().to_string());
    std::os::unix::fs::symlink(&outside, &link).unwrap();

    // Young objects are never touched (an upload may still be writing them).
    let grace = std::time::Duration::from_secs(3600);
    let swept = medlabel::orphans::sweep(&app.state.db, &app.state.storage, grace)
        .await
        .unwrap();
    assert_eq!(swept, medlabel::orphans::Swept::default());
    assert!(staging.exists());

    let swept =
        medlabel::orphans::sweep(&app.state.db, &app.state.storage, std::time::Duration::ZERO)
            .await
            .unwrap();
    assert_eq!((swept.objects, swept.staging_files), (3, 1));
    assert_eq!(swept.bytes, 3500);
    assert!(!staging.exists());
    assert!(
        outside.join("sub").join("keep.txt").exists(),
        "a link is not followed"
    );
    std::fs::remove_file(&link).unwrap();
    let mut left = app.stored_objects().await;
    left.sort();
    let mut expected = referenced.clone();
    expected.sort();
    assert_eq!(
        left, expected,
        "referenced objects (a deleted image's too) stay"
    );
    // The kept images still serve.
    assert_eq!(
        doctor
            .get(&format!("/api/v1/images/{kept}/file"))
            .await
            .status,
        StatusCode::OK
    );
}

#[actix_web::test]
async fn if_range_serves_the_range_only_for_the_current_strong_etag() {
    let app = TestApp::spawn().await;
    let admin = app.token_client(&[Role::Admin]).await;
    let png = crate::fixtures::png(40, 30);
    let image = admin.upload(&png, "x.png", None).await;
    let path = format!("/api/v1/images/{}/file", image.body["id"].as_str().unwrap());
    let etag = admin.get(&path).await.header("etag").unwrap().to_owned();
    let weak = format!("W/{etag}");
    let res = admin
        .send(
            Method::GET,
            &path,
            None,
            &[("range", "bytes=0-1"), ("if-range", etag.as_str())],
        )
        .await;
    assert_eq!(res.status, StatusCode::PARTIAL_CONTENT);
    for validator in [
        "\"nope\"",
        weak.as_str(),
        "Sat, 01 Jan 2000 00:00:00 GMT",
        "garbage",
    ] {
        let res = admin
            .send(
                Method::GET,
                &path,
                None,
                &[("range", "bytes=0-1"), ("if-range", validator)],
            )
            .await;
        assert_eq!(res.status, StatusCode::OK, "If-Range {validator}");
        assert_eq!(&res.bytes[..], &png[..]);
    }
}

#[actix_web::test]
async fn a_trusted_proxys_forwarded_header_names_the_client() {
    let app = TestApp::spawn_with(&[("MEDLABEL_TRUSTED_PROXIES", "127.0.0.1/32")]).await;
    let anon = app.anonymous();
    let mut sent = Vec::new();
    for (value, expected) in [
        ("for=10.0.0.6", "10.0.0.6"),
        ("for=\"10.0.0.6:123\"", "10.0.0.6"),
        ("For=\"[2001:db8::5]\";proto=https", "2001:db8::5"),
        ("for=6.6.6.6, for=198.51.100.7", "198.51.100.7"),
        ("for=unknown", "127.0.0.1"),
    ] {
        let res = anon
            .send(
                Method::GET,
                "/api/v1/auth/me",
                None,
                &[("forwarded", value)],
            )
            .await;
        sent.push((request_id(&res), expected));
    }
    let ips = client_ips(&app).await;
    for (id, expected) in sent {
        assert_eq!(ips[&id], expected);
    }
    // Several lines of one header are one list: the proxy's own (last) line counts.
    let raw = |extra: &str| {
        use std::io::{Read, Write};
        let port = app.address.rsplit(':').next().unwrap().to_owned();
        let mut stream = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
        write!(
            stream,
            "GET /api/v1/auth/me HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}Connection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
            .lines()
            .find_map(|l| l.strip_prefix("x-request-id: "))
            .unwrap()
            .trim()
            .to_owned()
    };
    let two_forwarded = raw("Forwarded: for=1.2.3.6\r\nForwarded: for=9.9.9.9\r\n");
    let two_xff = raw("X-Forwarded-For: 1.2.3.7\r\nX-Forwarded-For: 9.9.9.8\r\n");
    let ips = client_ips(&app).await;
    assert_eq!(ips[&two_forwarded], "9.9.9.9");
    assert_eq!(ips[&two_xff], "9.9.9.8");
    // Clients behind the proxy are throttled apart.
    let mut answers = Vec::new();
    for i in 0..100 {
        let res = anon
            .send(
                Method::POST,
                "/api/v1/auth/login",
                Some(&json!({"username": format!("nobody{i}"), "password": "wrong wrong wrong"})),
                &[("forwarded", "for=10.1.1.1")],
            )
            .await;
        answers.push(res.status);
    }
    assert!(answers.iter().all(|s| *s == StatusCode::UNAUTHORIZED));
    let username = app.create_user(&[Role::Doctor]).await;
    let res = anon
        .send(
            Method::POST,
            "/api/v1/auth/login",
            Some(&json!({"username": username, "password": PASSWORD})),
            &[("forwarded", "for=10.2.2.2")],
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let res = anon
        .send(
            Method::POST,
            "/api/v1/auth/login",
            Some(&json!({"username": username, "password": PASSWORD})),
            &[("forwarded", "for=10.1.1.1")],
        )
        .await;
    res.problem(429);
}
