//! The group commit of changes (`audit::change_writer`): many requests' changes share one
//! transaction, each in its own savepoint, so they must behave exactly as if each had its own:
//! one `201` per name and `409` for the rest, one winner per `If-Match` version, a refused
//! change never taking its neighbours with it, and every answered request with exactly one
//! event of its status (and its history entry when it changed something).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;

use actix_web::http::{Method, StatusCode};
use diesel::prelude::*;
use medlabel::auth::Role;
use medlabel::db::schema::{events, history};
use medlabel::db::Backend;
use serde_json::json;

use crate::helpers::{TestApp, TestClient, TestResponse};

/// `(request_id, status)` of every event, and `(request_id, action)` of every history entry.
async fn events_and_history(app: &TestApp) -> (Vec<(String, i32)>, Vec<(String, String)>) {
    app.state
        .db
        .run(|conn| {
            let events = events::table
                .select((events::request_id, events::status))
                .load(conn)?;
            let entries = history::table
                .select((history::request_id, history::action))
                .load(conn)?;
            Ok::<_, medlabel::error::ApiError>((events, entries))
        })
        .await
        .unwrap()
}

/// A request to send: method, path, JSON body, headers.
type Request<'a> = (
    Method,
    String,
    Option<serde_json::Value>,
    Vec<(&'a str, String)>,
);

/// Sends every `(method, path, body, headers)` at once from clones of `client`.
async fn all_at_once(client: &TestClient, requests: &[Request<'_>]) -> Vec<TestResponse> {
    let clients: Vec<TestClient> = requests.iter().map(|_| client.clone_client()).collect();
    futures_util::future::join_all(clients.iter().zip(requests).map(
        |(c, (method, path, body, headers))| {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            async move { c.send(method.clone(), path, body.as_ref(), &headers).await }
        },
    ))
    .await
}

/// Every response has exactly one event, of its own status.
fn assert_one_event_each(responses: &[TestResponse], events: &[(String, i32)]) {
    let mut by_request: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (request_id, status) in events {
        by_request.entry(request_id).or_default().push(*status);
    }
    for res in responses {
        let id = res.header("x-request-id").expect("x-request-id");
        assert_eq!(
            by_request.get(id).map(Vec::as_slice),
            Some(&[i32::from(res.status.as_u16())][..]),
            "request {id} ({}): exactly one event, of its status",
            res.status
        );
    }
}

#[actix_web::test]
async fn two_hundred_creates_with_twenty_duplicate_names_split_201_and_409() {
    let app = TestApp::spawn().await;
    let researcher = app.token_client(&[Role::Researcher]).await;
    let commits_before = app.state.changes.stats().batches.load(Ordering::Relaxed);
    // 180 names; the first 20 are sent twice.
    let names: Vec<String> = (0..180)
        .map(|i| format!("Group commit disease {i:03}"))
        .chain((0..20).map(|i| format!("Group commit disease {i:03}")))
        .collect();
    let requests: Vec<_> = names
        .iter()
        .map(|name| {
            (
                Method::POST,
                "/api/v1/diseases".to_owned(),
                Some(json!({ "name": name })),
                vec![],
            )
        })
        .collect();
    let responses = all_at_once(&researcher, &requests).await;

    let mut created: BTreeMap<&str, usize> = BTreeMap::new();
    let mut conflicts: BTreeMap<&str, usize> = BTreeMap::new();
    for (name, res) in names.iter().zip(&responses) {
        match res.status {
            StatusCode::CREATED => *created.entry(name).or_default() += 1,
            StatusCode::CONFLICT => {
                res.problem(409);
                *conflicts.entry(name).or_default() += 1
            }
            other => panic!("{name}: unexpected {other}: {}", res.text),
        }
    }
    assert_eq!(created.len(), 180, "every name created");
    assert!(created.values().all(|n| *n == 1), "each name created once");
    assert_eq!(conflicts.len(), 20, "each duplicate refused");
    assert!(conflicts
        .keys()
        .all(|name| name[22..].parse::<u32>().unwrap() < 20));

    let (events, entries) = events_and_history(&app).await;
    assert_one_event_each(&responses, &events);
    let mut entries_by_request: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (request_id, action) in &entries {
        entries_by_request
            .entry(request_id)
            .or_default()
            .push(action);
    }
    for res in &responses {
        let id = res.header("x-request-id").unwrap();
        let expected: &[&str] = if res.status == StatusCode::CREATED {
            &["create"]
        } else {
            &[]
        };
        assert_eq!(
            entries_by_request.get(id).map(Vec::as_slice).unwrap_or(&[]),
            expected,
            "request {id}: history of a {}",
            res.status
        );
    }
    let listed = researcher.get("/api/v1/diseases?limit=200").await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 180);

    let commits = app.state.changes.stats().batches.load(Ordering::Relaxed) - commits_before;
    match app.state.db.backend() {
        // SQLite: changes that arrive together share a commit.
        Backend::Sqlite => assert!(
            commits < 200,
            "200 changes at once share commits ({commits} commits)"
        ),
        // PostgreSQL: each commits on its own (its WAL flushes are shared by the server).
        Backend::Postgres => assert_eq!(commits, 200),
    }
}

/// Rounds of concurrent `If-Match` PATCHes of `path`, all naming the current version: each
/// round has exactly one 200 and the rest 412, and the entity ends at the winner's state.
async fn one_winner_per_version(
    client: &TestClient,
    path: &str,
    body: impl Fn(usize) -> serde_json::Value,
) {
    const ROUNDS: usize = 5;
    const RACERS: usize = 8;
    let start: usize = client.get(path).await.header("etag").unwrap()[2..]
        .trim_end_matches('"')
        .parse()
        .unwrap();
    for round in 0..ROUNDS {
        let version = start + round;
        let requests: Vec<_> = (0..RACERS)
            .map(|racer| {
                (
                    Method::PATCH,
                    path.to_owned(),
                    Some(body(round * RACERS + racer)),
                    vec![("if-match", format!("\"v{version}\""))],
                )
            })
            .collect();
        let responses = all_at_once(client, &requests).await;
        let winners: Vec<usize> = (0..RACERS)
            .filter(|&i| responses[i].status == StatusCode::OK)
            .collect();
        assert_eq!(winners.len(), 1, "{path} v{version}: one winner");
        for (i, res) in responses.iter().enumerate() {
            if i != winners[0] {
                res.problem(412);
            }
        }
        let now = client.get(path).await;
        assert_eq!(
            now.header("etag"),
            Some(format!("\"v{}\"", version + 1).as_str())
        );
        assert_eq!(
            now.body, responses[winners[0]].body,
            "{path}: the winner's state"
        );
    }
}

#[actix_web::test]
async fn if_match_races_have_exactly_one_winner_per_version() {
    let app = TestApp::spawn().await;
    let researcher = app.token_client(&[Role::Researcher]).await;
    let doctor = app.token_client(&[Role::Doctor]).await;
    let label = app.label("Race").await["id"].as_str().unwrap().to_owned();
    one_winner_per_version(
        &researcher,
        &format!("/api/v1/labels/{label}"),
        |i| json!({"description": format!("racer {i}")}),
    )
    .await;

    let image = doctor.upload_png().await["id"].as_str().unwrap().to_owned();
    let annotation = doctor
        .post(
            &format!("/api/v1/images/{image}/annotations"),
            &json!({"label_id": label, "shape": "point", "geometry": {"x": 0, "y": 0}}),
        )
        .await;
    assert_eq!(
        annotation.status,
        StatusCode::CREATED,
        "{}",
        annotation.text
    );
    let path = format!(
        "/api/v1/annotations/{}",
        annotation.body["id"].as_str().unwrap()
    );
    one_winner_per_version(&doctor, &path, |i| json!({"note": format!("racer {i}")})).await;
}

#[actix_web::test]
async fn a_refused_change_keeps_its_neighbours() {
    let app = TestApp::spawn().await;
    let doctor = app.token_client(&[Role::Doctor]).await;
    let label = app.label("Finding").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let image = doctor.upload_png().await["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/images/{image}/annotations");
    // 60 boxes at once on a 4x4 image; every third lies outside it, which only the change
    // itself can tell (it reads the image's size in the batch's transaction).
    let requests: Vec<_> = (0..60)
        .map(|i| {
            let x = if i % 3 == 0 { 10 } else { 0 };
            let body = json!({"label_id": label, "shape": "box", "note": format!("box {i}"),
                              "geometry": {"x": x, "y": 0, "width": 2, "height": 2}});
            (Method::POST, path.clone(), Some(body), vec![])
        })
        .collect();
    let responses = all_at_once(&doctor, &requests).await;
    let mut kept = BTreeSet::new();
    for (i, res) in responses.iter().enumerate() {
        if i % 3 == 0 {
            let problem = res.problem(422);
            assert!(
                problem["errors"]["geometry.x"].is_array(),
                "box {i}: {}",
                res.text
            );
        } else {
            assert_eq!(res.status, StatusCode::CREATED, "box {i}: {}", res.text);
            kept.insert(format!("box {i}"));
        }
    }
    let listed = doctor.get(&path).await;
    let notes: BTreeSet<String> = listed
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["note"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(notes, kept, "every accepted box is stored, no refused one");

    let (events, entries) = events_and_history(&app).await;
    assert_one_event_each(&responses, &events);
    let changed: BTreeSet<&str> = entries.iter().map(|(r, _)| r.as_str()).collect();
    for (i, res) in responses.iter().enumerate() {
        let id = res.header("x-request-id").unwrap();
        assert_eq!(
            changed.contains(id),
            i % 3 != 0,
            "box {i}: history only when stored"
        );
    }
}

#[actix_web::test]
async fn label_assignments_at_once_are_each_answered_and_recorded() {
    let app = TestApp::spawn().await;
    let doctor = app.token_client(&[Role::Doctor]).await;
    let label = app.label("Assigned").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut images = Vec::new();
    for _ in 0..10 {
        images.push(doctor.upload_png().await["id"].as_str().unwrap().to_owned());
    }
    // Each image assigned twice at once (201 and 409), then unassigned twice (204 and 404).
    let assign: Vec<_> = images
        .iter()
        .chain(&images)
        .map(|image| {
            (
                Method::POST,
                format!("/api/v1/images/{image}/labels"),
                Some(json!({ "label_id": label })),
                vec![],
            )
        })
        .collect();
    let assigned = all_at_once(&doctor, &assign).await;
    let unassign: Vec<_> = images
        .iter()
        .chain(&images)
        .map(|image| {
            (
                Method::DELETE,
                format!("/api/v1/images/{image}/labels/{label}"),
                None,
                vec![],
            )
        })
        .collect();
    let unassigned = all_at_once(&doctor, &unassign).await;
    for (i, image) in images.iter().enumerate() {
        let pair = [&assigned[i], &assigned[i + images.len()]];
        let mut statuses: Vec<u16> = pair.iter().map(|r| r.status.as_u16()).collect();
        statuses.sort();
        assert_eq!(statuses, [201, 409], "{image}: assigned once");
        let pair = [&unassigned[i], &unassigned[i + images.len()]];
        let mut statuses: Vec<u16> = pair.iter().map(|r| r.status.as_u16()).collect();
        statuses.sort();
        assert_eq!(statuses, [204, 404], "{image}: unassigned once");
        let now = doctor.get(&format!("/api/v1/images/{image}")).await;
        assert_eq!(now.body["labels"], json!([]), "{image}");
    }
    let (events, _) = events_and_history(&app).await;
    assert_one_event_each(&assigned, &events);
    assert_one_event_each(&unassigned, &events);
}

#[actix_web::test]
async fn reads_do_not_wait_for_a_change_in_progress() {
    let app = TestApp::spawn().await;
    let researcher = app.token_client(&[Role::Researcher]).await;
    let label = app.label("Held").await["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/labels/{label}");
    // Stall every change: on SQLite by holding the write turn the change writer needs; on
    // PostgreSQL (changes commit per request) by holding the label's row lock.
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (held, is_held) = std::sync::mpsc::channel::<()>();
    let db = app.state.db.clone();
    let backend = db.backend();
    let label_id = label.clone();
    let holder = std::thread::spawn(move || match backend {
        Backend::Sqlite => {
            let _turn = medlabel::db::sqlite_writer();
            held.send(()).unwrap();
            let _ = released.recv();
        }
        Backend::Postgres => {
            use diesel::connection::SimpleConnection;
            let mut conn = db.get().unwrap();
            conn.batch_execute(&format!(
                "BEGIN; SELECT id FROM labels WHERE uuid = '{label_id}' FOR UPDATE;"
            ))
            .unwrap();
            held.send(()).unwrap();
            let _ = released.recv();
            conn.batch_execute("ROLLBACK").unwrap();
        }
    });
    is_held.recv().unwrap();
    let writer = researcher.clone_client();
    let change_path = path.clone();
    let change = actix_web::rt::spawn(async move {
        writer
            .patch(&change_path, &json!({"description": "after the wait"}))
            .await
            .status
    });
    actix_web::rt::time::sleep(std::time::Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    match backend {
        // Requests read on the request pool (SQLite's WAL lets them read beside the writer);
        // their audit event, a write, takes the next write turn, so here the read's own
        // database work is what is checked.
        Backend::Sqlite => {
            let uuid = label.clone();
            let name: String = app
                .state
                .db
                .run(move |conn| {
                    Ok::<_, medlabel::error::ApiError>(
                        medlabel::models::labels::find(conn, &uuid)?.name,
                    )
                })
                .await
                .unwrap();
            assert_eq!(name, "Held");
        }
        Backend::Postgres => {
            for read in [path.as_str(), "/api/v1/labels", "/api/v1/auth/me"] {
                let res = researcher.get(read).await;
                assert_eq!(res.status, StatusCode::OK, "{read}: {}", res.text);
            }
        }
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "reads answered while the change waits ({:?})",
        started.elapsed()
    );
    assert!(!change.is_finished(), "the change is still waiting");
    release.send(()).unwrap();
    holder.join().unwrap();
    assert_eq!(change.await.unwrap(), StatusCode::OK);
}
