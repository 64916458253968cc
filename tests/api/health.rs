//! `GET /health`: ok when the database and storage answer, 503 naming the failing part.

use actix_web::http::StatusCode;
use medlabel::startup::Application;
use medlabel::state::AppState;
use serde_json::json;

use crate::helpers::{test_settings, TestApp};

#[actix_web::test]
async fn health_is_ok_without_auth() {
    let app = TestApp::spawn().await;
    let res = app.anonymous().get("/health").await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(
        res.body,
        json!({"status": "ok", "database": "ok", "storage": "ok"})
    );
}

#[actix_web::test]
async fn health_is_503_naming_the_database_when_it_is_down() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 1: every connection attempt fails at once.
    let settings = test_settings(dir.path(), "postgres://medlabel@127.0.0.1:1/medlabel", &[]);
    let state = AppState::open(settings).unwrap();
    let app = Application::build(state).unwrap();
    let address = format!("http://127.0.0.1:{}", app.port());
    actix_web::rt::spawn(app.run_until_stopped());
    let res = crate::helpers::TestClient::new(&address)
        .get("/health")
        .await;
    assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.header("retry-after"), Some("1"));
    assert_eq!(
        res.body,
        json!({"status": "unavailable", "database": "unavailable", "storage": "ok"})
    );

    // An API request meanwhile is a clean 503 problem, not a hang or a leak of internals.
    let res = crate::helpers::TestClient::new(&address)
        .send(
            actix_web::http::Method::GET,
            "/api/v1/auth/me",
            None,
            &[("authorization", "Bearer mlt_x")],
        )
        .await;
    let problem = res.problem(503);
    assert!(!res.text.contains("127.0.0.1:1"), "{problem}");
}

#[actix_web::test]
async fn health_is_503_naming_storage_when_it_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let objects = dir.path().join("objects");
    let storage_url = format!("file://{}", objects.display());
    let database_url = crate::helpers::fresh_database_url(dir.path());
    let settings = test_settings(dir.path(), &database_url, &[("STORAGE_URL", &storage_url)]);
    let state = AppState::open(settings).unwrap();
    let app = Application::build(state).unwrap();
    let address = format!("http://127.0.0.1:{}", app.port());
    actix_web::rt::spawn(app.run_until_stopped());
    let client = crate::helpers::TestClient::new(&address);
    assert_eq!(client.get("/health").await.status, StatusCode::OK);

    // Reads still work, but nothing can be written where uploads write (root ignores
    // permission bits, so a file stands where the `images` folder must be).
    std::thread::sleep(medlabel::probe::PROBE_INTERVAL);
    std::fs::remove_dir_all(objects.join("images")).ok();
    std::fs::write(objects.join("images"), b"not a folder").unwrap();
    let res = client.get("/health").await;
    assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.header("retry-after"), Some("1"));
    assert_eq!(
        res.body,
        json!({"status": "unavailable", "database": "ok", "storage": "unavailable"})
    );

    std::fs::remove_file(objects.join("images")).unwrap();
    std::thread::sleep(medlabel::probe::PROBE_INTERVAL);
    assert_eq!(client.get("/health").await.status, StatusCode::OK);
    let left: Vec<_> = std::fs::read_dir(&objects)
        .unwrap()
        .flat_map(|e| std::fs::read_dir(e.unwrap().path()).into_iter().flatten())
        .collect();
    assert!(left.is_empty(), "probe objects are deleted: {left:?}");
}

#[actix_web::test]
async fn a_database_locked_by_another_process_is_503_with_retry_after() {
    if std::env::var("TEST_DATABASE_URL").is_ok_and(|u| !u.is_empty()) {
        eprintln!("SQLite-only: file locks held by another process do not exist on PostgreSQL");
        return;
    }
    let app = TestApp::spawn_with(&[("MEDLABEL_DB_BUSY_TIMEOUT_MS", "300")]).await;
    let researcher = app.token_client(&[medlabel::auth::Role::Researcher]).await;
    let url = app.state.settings.database_url.0.clone();
    let path = url.trim_start_matches("sqlite://").to_owned();
    // Another process's exclusive transaction (a second connection behaves the same).
    let mut other = <diesel::SqliteConnection as diesel::Connection>::establish(&path).unwrap();
    diesel::connection::SimpleConnection::batch_execute(&mut other, "BEGIN EXCLUSIVE").unwrap();
    let mut statuses = Vec::new();
    for i in 0..6 {
        let res = researcher
            .post("/api/v1/labels", &json!({"name": format!("locked {i}")}))
            .await;
        statuses.push(res.status);
        if res.status == StatusCode::SERVICE_UNAVAILABLE {
            res.problem(503);
            let retry: u64 = res
                .header("retry-after")
                .expect("Retry-After")
                .parse()
                .unwrap();
            assert!(retry >= 1);
        }
    }
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::SERVICE_UNAVAILABLE),
        "{statuses:?}"
    );
    // /health says so too (its probe takes the write lock), and recovers.
    std::thread::sleep(medlabel::probe::PROBE_INTERVAL);
    let health = app.anonymous().get("/health").await;
    assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(health.body["database"], "unavailable");
    diesel::connection::SimpleConnection::batch_execute(&mut other, "ROLLBACK").unwrap();
    std::thread::sleep(medlabel::probe::PROBE_INTERVAL);
    assert_eq!(app.anonymous().get("/health").await.status, StatusCode::OK);
    let res = researcher
        .post("/api/v1/labels", &json!({"name": "after the lock"}))
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
}

#[actix_web::test]
async fn the_root_sends_browsers_to_the_docs_and_programs_to_links() {
    let app = TestApp::spawn().await;
    let client = app.anonymous();
    let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    // A browser's request, without following the redirect.
    let res = awc::Client::builder()
        .disable_redirects()
        .finish()
        .get(format!("{}/", app.address))
        .insert_header(("accept", browser))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers().get("location").unwrap(), "/docs/");

    for accept in [
        None,
        Some("application/json"),
        Some("*/*"),
        Some("text/html;q=0.1, application/json"),
    ] {
        let headers: Vec<(&str, &str)> = accept.map(|a| ("accept", a)).into_iter().collect();
        let res = client
            .send(actix_web::http::Method::GET, "/", None, &headers)
            .await;
        assert_eq!(res.status, StatusCode::OK, "{accept:?}");
        assert_eq!(res.body["links"]["docs"], "/docs/");
        assert_eq!(res.body["links"]["openapi"], "/api/v1/openapi.json");
        assert_eq!(res.body["version"], env!("CARGO_PKG_VERSION"));
        // Each link answers.
        for link in ["/api/v1/openapi.json", "/health"] {
            assert_eq!(client.get(link).await.status, StatusCode::OK, "{link}");
        }
    }
}

/// libpq is built into the binary with OpenSSL (pq-sys `bundled`): `sslmode=require` reaches
/// PostgreSQL over TLS. Runs with `TEST_DATABASE_URL` (CI's cluster has a self-signed
/// certificate, `.ci/start-postgres`); SQLite runs say so and pass.
#[test]
fn postgres_connections_use_tls_with_sslmode_require() {
    use diesel::prelude::*;
    let Ok(url) = std::env::var("TEST_DATABASE_URL") else {
        eprintln!(
            "postgres_connections_use_tls_with_sslmode_require: no TEST_DATABASE_URL, not run"
        );
        return;
    };
    #[derive(diesel::QueryableByName)]
    struct Ssl {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        ssl: bool,
        #[diesel(sql_type = diesel::sql_types::Text)]
        version: String,
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    let mut conn = diesel::PgConnection::establish(&format!("{url}{separator}sslmode=require"))
        .expect("sslmode=require connects (the server must have TLS on)");
    let row: Ssl = diesel::sql_query(
        "SELECT ssl, coalesce(version, '') AS version FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    )
    .get_result(&mut conn)
    .unwrap();
    assert!(row.ssl, "the connection is not encrypted");
    assert!(row.version.starts_with("TLS"), "{}", row.version);
    // And the service's own pool takes the same URL.
    let db = medlabel::db::Db::connect_with(
        &format!("{url}{separator}sslmode=require"),
        1,
        std::time::Duration::from_secs(5),
    )
    .unwrap();
    assert!(db.get().is_ok());
}
