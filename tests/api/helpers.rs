//! The test harness: `TestApp::spawn()` starts the real application on port 0 against a fresh
//! database (a temp SQLite file, or a new PostgreSQL database when `TEST_DATABASE_URL` is set)
//! and in-memory storage; `TestClient` speaks HTTP to it like a browser or script would.
//!
//! Longer than ~400 lines: the whole harness (app, clients, probes) in one place.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

use actix_web::http::{header, Method, StatusCode};
use actix_web::web;
use base64::Engine as _;
use diesel::connection::SimpleConnection;
use diesel::Connection;
use medlabel::auth::{password, tokens, Role};
use medlabel::config::Settings;
use medlabel::models::{api_tokens, users};
use medlabel::startup::{self, Application};
use medlabel::state::AppState;
use serde_json::Value;

/// The password every fixture user gets.
pub const PASSWORD: &str = "a perfectly fine passphrase";

pub struct TestApp {
    pub address: String,
    pub state: AppState,
    _dir: tempfile::TempDir,
}

/// A fresh database URL: a SQLite file in `dir`, or a new database on `TEST_DATABASE_URL`.
pub fn fresh_database_url(dir: &std::path::Path) -> String {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(admin_url) if !admin_url.is_empty() => {
            let name = format!("medlabel_test_{}", uuid::Uuid::now_v7().simple());
            let mut conn = diesel::PgConnection::establish(&admin_url)
                .expect("TEST_DATABASE_URL must be reachable");
            conn.batch_execute(&format!("CREATE DATABASE {name}"))
                .expect("create test database");
            let (base, _) = admin_url
                .rsplit_once('/')
                .expect("TEST_DATABASE_URL ends with /dbname");
            format!("{base}/{name}")
        }
        _ => format!("sqlite://{}", dir.join("medlabel.db").display()),
    }
}

pub fn test_settings(
    dir: &std::path::Path,
    database_url: &str,
    overrides: &[(&str, &str)],
) -> Settings {
    let key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 64]>());
    let mut vars: HashMap<String, String> = [
        ("DATABASE_URL", database_url.to_owned()),
        ("STORAGE_URL", "memory://".to_owned()),
        ("MEDLABEL_BIND", "127.0.0.1:0".to_owned()),
        ("MEDLABEL_SESSION_KEY", key),
        ("MEDLABEL_DATA_DIR", dir.display().to_string()),
        ("MEDLABEL_WORKERS", "2".to_owned()),
        ("MEDLABEL_DB_POOL_SIZE", "4".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for (k, v) in overrides {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    Settings::from_lookup(|name| vars.get(name).cloned()).expect("test settings are valid")
}

/// Test-only routes mounted inside the real middleware stack.
fn probes(cfg: &mut web::ServiceConfig) {
    // Makes a change as a handler does, then, before answering, looks for the request's event
    // from the database: it must be committed with the change.
    cfg.route(
        "/test/change-then-look",
        web::post().to(
            |state: web::Data<AppState>, caller: medlabel::auth::CurrentUser| async move {
                use diesel::prelude::*;
                use medlabel::db::schema::events;
                use medlabel::history::{Action, Change, EntityType};
                let change = Change::by(&caller).answering(200);
                let request_id = change.request_id.clone();
                let status = state
                    .db
                    .run(move |conn| {
                        medlabel::db::write_transaction(conn, |conn| {
                            let label =
                                medlabel::models::labels::insert(conn, "probe", None, caller.id)?;
                            change.record(
                                conn,
                                EntityType::Label,
                                &label.uuid,
                                Action::Create,
                                &serde_json::json!({"id": label.uuid}),
                            )
                        })?;
                        Ok::<_, medlabel::error::ApiError>(
                            events::table
                                .filter(events::request_id.eq(&request_id))
                                .select(events::status)
                                .first::<i32>(conn)
                                .optional()?,
                        )
                    })
                    .await?;
                Ok::<_, medlabel::error::ApiError>(
                    actix_web::HttpResponse::Ok().json(serde_json::json!({"event_status": status})),
                )
            },
        ),
    );
    // Writes a label inside a write transaction, then panics before it commits.
    cfg.route(
        "/test/panic-in-write",
        web::post().to(
            |state: web::Data<AppState>, caller: medlabel::auth::CurrentUser| async move {
                state
                    .db
                    .run(move |conn| {
                        medlabel::db::write_transaction(conn, |conn| {
                            medlabel::models::labels::insert(
                                conn,
                                "half-written",
                                None,
                                caller.id,
                            )?;
                            if std::hint::black_box(true) {
                                panic!("deliberate panic inside a write");
                            }
                            Ok::<_, medlabel::error::ApiError>(())
                        })
                    })
                    .await?;
                Ok::<_, medlabel::error::ApiError>(actix_web::HttpResponse::NoContent().finish())
            },
        ),
    );
    cfg.route(
        "/test/panic",
        web::get().to(|| async {
            if std::hint::black_box(true) {
                panic!("deliberate test panic");
            }
            "unreachable"
        }),
    );
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(&[]).await
    }

    /// Starts the app with extra configuration variables (e.g. short session timeouts).
    pub async fn spawn_with(overrides: &[(&str, &str)]) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let database_url = fresh_database_url(dir.path());
        let settings = test_settings(dir.path(), &database_url, overrides);
        Self::spawn_on(settings, dir).await
    }

    /// Starts another instance with `settings` (a restart: the same database, data directory
    /// and keys as a running app's `state.settings`). `dir` is kept as long as the app.
    pub async fn spawn_on(settings: Settings, dir: tempfile::TempDir) -> TestApp {
        let state = AppState::open(settings).expect("open state");
        let prepared = state.clone();
        web::block(move || startup::prepare(&prepared))
            .await
            .unwrap()
            .expect("prepare database");
        let app = Application::build_with(state.clone(), probes).expect("build app");
        let address = format!("http://127.0.0.1:{}", app.port());
        actix_web::rt::spawn(app.run_until_stopped());
        TestApp {
            address,
            state,
            _dir: dir,
        }
    }

    /// A label named `name`, made by a new researcher; returns its body.
    pub async fn label(&self, name: &str) -> Value {
        let curator = self.token_client(&[Role::Researcher]).await;
        let res = curator
            .post("/api/v1/labels", &serde_json::json!({ "name": name }))
            .await;
        assert_eq!(
            res.status,
            StatusCode::CREATED,
            "label {name}: {}",
            res.text
        );
        res.body
    }

    /// A disease named `name` linked to `codes` (`"icd-10:J18.9"`, loaded first with
    /// [`TestApp::load_codes`]), made by a new researcher; returns its body.
    pub async fn disease(&self, name: &str, codes: &[&str]) -> Value {
        let curator = self.token_client(&[Role::Researcher]).await;
        let codes: Vec<Value> = codes
            .iter()
            .map(|c| {
                let (system, code) = c.split_once(':').expect("system:code");
                serde_json::json!({ "system": system, "code": code })
            })
            .collect();
        let res = curator
            .post(
                "/api/v1/diseases",
                &serde_json::json!({ "name": name, "codes": codes }),
            )
            .await;
        assert_eq!(
            res.status,
            StatusCode::CREATED,
            "disease {name}: {}",
            res.text
        );
        res.body
    }

    /// A client with no credentials.
    pub fn anonymous(&self) -> TestClient {
        TestClient::new(&self.address)
    }

    /// Creates a user with `roles` directly in the database; returns its username.
    pub async fn create_user(&self, roles: &[Role]) -> String {
        let username = format!("user{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
        let roles = roles.to_vec();
        let name = username.clone();
        self.state
            .db
            .run(move |conn| {
                let hash = password::hash_password(PASSWORD)
                    .map_err(medlabel::error::ApiError::internal)?;
                users::insert_user(
                    conn,
                    users::NewUser {
                        username: &name,
                        password_hash: &hash,
                        full_name: None,
                        email: None,
                        roles: &roles,
                    },
                )?;
                Ok::<_, medlabel::error::ApiError>(())
            })
            .await
            .expect("create user");
        username
    }

    /// A client logged in through `POST /auth/login` (session cookie) as a new user.
    pub async fn login_as(&self, roles: &[Role]) -> TestClient {
        let username = self.create_user(roles).await;
        let client = self.anonymous();
        let res = client.login(&username, PASSWORD).await;
        assert_eq!(res.status, StatusCode::OK, "login failed: {:?}", res.body);
        client.set_username(&username);
        client
    }

    /// A client holding a bearer token of a new user (made directly in the database).
    pub async fn token_client(&self, roles: &[Role]) -> TestClient {
        let username = self.create_user(roles).await;
        let secret = tokens::generate_token();
        let digest = tokens::digest(&secret);
        let name = username.clone();
        self.state
            .db
            .run(move |conn| {
                let user = users::find_by_username(conn, &name)?.expect("user exists");
                api_tokens::insert_token(conn, user.id, "test", &digest, 1)?;
                Ok::<_, medlabel::error::ApiError>(())
            })
            .await
            .expect("create token");
        let client = self.anonymous();
        *client.bearer.borrow_mut() = Some(secret);
        client.set_username(&username);
        client
    }

    /// Loads a few real codes (enough for diseases and filters) without the full lists.
    pub async fn load_codes(&self) {
        let tsv = "code\tdescription\tbillable\nJ18.9\tPneumonia, unspecified organism\t1\n\
                   J18\tPneumonia, unspecified organism (category)\t0\n\
                   E11.9\tType 2 diabetes mellitus without complications\t1\n\
                   S72.001A\tFracture of unspecified part of neck of right femur, initial encounter\t1\n";
        let icd9 = "code\tlong_description\n486\tPneumonia, organism unspecified\n250.00\tDiabetes mellitus without mention of complication\n";
        self.state
            .db
            .run(move |conn| {
                for (system, text) in [("icd-10", tsv), ("icd-9", icd9)] {
                    let parsed = medlabel::codesets::parse_code_list(system, text.as_bytes())
                        .map_err(medlabel::error::ApiError::internal)?;
                    medlabel::codesets::import(conn, &parsed, |_| {})
                        .map_err(medlabel::error::ApiError::internal)?;
                }
                Ok::<_, medlabel::error::ApiError>(())
            })
            .await
            .expect("load codes");
        self.refresh_code_index().await;
    }

    /// Rebuilds the code search index now (after codes were written behind the API's back).
    pub async fn refresh_code_index(&self) {
        let state = self.state.clone();
        web::block(move || state.code_index.refresh(&state.db))
            .await
            .unwrap()
            .expect("refresh the code index");
    }

    /// The keys of every object in storage.
    pub async fn stored_objects(&self) -> Vec<String> {
        use futures_util::StreamExt as _;
        self.state
            .storage
            .store()
            .list(None)
            .map(|m| m.expect("list").location.to_string())
            .collect()
            .await
    }

    /// Runs raw SQL against the app's database (for assertions and arranging edge cases).
    pub async fn sql(&self, statement: &str) {
        let statement = statement.to_owned();
        self.state
            .db
            .run(move |conn| {
                conn.batch_execute(&statement)
                    .map_err(medlabel::db::DbError::from)
            })
            .await
            .expect("sql");
    }
}

/// One HTTP response, with the body parsed as JSON when it is JSON.
#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: header::HeaderMap,
    pub body: Value,
    pub text: String,
    pub bytes: web::Bytes,
}

impl TestResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the RFC 9457 shape every error must have, and returns the body.
    pub fn problem(&self, status: u16) -> &Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.text
        );
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{}",
            self.text
        );
        assert_eq!(self.body["status"], status);
        assert!(
            self.body["title"].is_string()
                && self.body["type"].is_string()
                && self.body["detail"].is_string()
        );
        assert_eq!(
            self.body["request_id"].as_str(),
            self.header("x-request-id"),
            "problem names the request id"
        );
        &self.body
    }
}

/// A client that keeps its session cookie like a browser, or sends a bearer token.
pub struct TestClient {
    base: String,
    client: awc::Client,
    pub cookie: RefCell<Option<String>>,
    pub bearer: RefCell<Option<String>>,
    pub username: RefCell<String>,
}

impl TestClient {
    pub fn new(base: &str) -> Self {
        TestClient {
            base: base.to_owned(),
            client: awc::Client::builder()
                .timeout(Duration::from_secs(60))
                .finish(),
            cookie: RefCell::new(None),
            bearer: RefCell::new(None),
            username: RefCell::new(String::new()),
        }
    }

    /// Another client with the same credentials (cookie or token).
    pub fn clone_client(&self) -> TestClient {
        self.clone_to(&self.base)
    }

    /// A client of another instance at `base` with this client's credentials.
    pub fn clone_to(&self, base: &str) -> TestClient {
        let copy = TestClient::new(base);
        *copy.cookie.borrow_mut() = self.cookie.borrow().clone();
        *copy.bearer.borrow_mut() = self.bearer.borrow().clone();
        *copy.username.borrow_mut() = self.username.borrow().clone();
        copy
    }

    fn set_username(&self, username: &str) {
        *self.username.borrow_mut() = username.to_owned();
    }

    pub fn username(&self) -> String {
        self.username.borrow().clone()
    }

    pub async fn login(&self, username: &str, password: &str) -> TestResponse {
        self.post(
            "/api/v1/auth/login",
            &serde_json::json!({"username": username, "password": password}),
        )
        .await
    }

    /// Uploads a 4 x 4 PNG named `scan.png` as this client (a doctor); returns its body.
    pub async fn upload_png(&self) -> Value {
        let res = self
            .upload(&crate::fixtures::png(4, 4), "scan.png", None)
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "upload: {}", res.text);
        res.body
    }

    pub async fn get(&self, path: &str) -> TestResponse {
        self.send(Method::GET, path, None, &[]).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> TestResponse {
        self.send(Method::POST, path, Some(body), &[]).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> TestResponse {
        self.send(Method::PATCH, path, Some(body), &[]).await
    }

    pub async fn delete(&self, path: &str) -> TestResponse {
        self.send(Method::DELETE, path, None, &[]).await
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> TestResponse {
        let mut req = self
            .client
            .request(method, format!("{}{}", self.base, path));
        if let Some(cookie) = self.cookie.borrow().as_ref() {
            req = req.insert_header((header::COOKIE, cookie.clone()));
        }
        if let Some(token) = self.bearer.borrow().as_ref() {
            req = req.insert_header((header::AUTHORIZATION, format!("Bearer {token}")));
        }
        for (name, value) in headers {
            req = req.insert_header((*name, *value));
        }
        let res = match body {
            Some(body) => {
                req.insert_header((header::CONTENT_TYPE, "application/json"))
                    .send_body(body.to_string())
                    .await
            }
            None => req.send().await,
        };
        self.read(res.expect("request sent")).await
    }

    /// Uploads an image as a doctor's tool would: `file` (and an optional `description`).
    pub async fn upload(
        &self,
        bytes: &[u8],
        filename: &str,
        description: Option<&str>,
    ) -> TestResponse {
        let mut parts: Vec<(&str, Option<&str>, &[u8])> = vec![("file", Some(filename), bytes)];
        if let Some(d) = description {
            parts.push(("description", None, d.as_bytes()));
        }
        let (content_type, body) = crate::fixtures::multipart(&parts);
        self.send_raw(Method::POST, "/api/v1/images", &content_type, body)
            .await
    }

    /// Sends raw bytes with a given content type.
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> TestResponse {
        let mut req = self
            .client
            .request(method, format!("{}{}", self.base, path));
        if let Some(cookie) = self.cookie.borrow().as_ref() {
            req = req.insert_header((header::COOKIE, cookie.clone()));
        }
        if let Some(token) = self.bearer.borrow().as_ref() {
            req = req.insert_header((header::AUTHORIZATION, format!("Bearer {token}")));
        }
        let res = req
            .insert_header((header::CONTENT_TYPE, content_type))
            .send_body(body)
            .await;
        self.read(res.expect("request sent")).await
    }

    async fn read<S>(&self, mut res: awc::ClientResponse<S>) -> TestResponse
    where
        S: futures_util::Stream<Item = Result<web::Bytes, actix_web::error::PayloadError>> + Unpin,
    {
        if let Some(set_cookie) = res
            .headers()
            .get(header::SET_COOKIE)
            .and_then(|v| v.to_str().ok())
        {
            let pair = set_cookie.split(';').next().unwrap_or_default().to_owned();
            let removed = set_cookie.contains("Max-Age=0") || pair.ends_with('=');
            *self.cookie.borrow_mut() = if removed { None } else { Some(pair) };
        }
        let bytes = res.body().limit(64 << 20).await.expect("body read");
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        TestResponse {
            status: res.status(),
            headers: res.headers().clone(),
            body,
            text,
            bytes,
        }
    }
}
