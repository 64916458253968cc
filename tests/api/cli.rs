//! The command line, driven as an operator would: the real binary, a fresh database.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use serde_json::json;

use crate::helpers::{fresh_database_url, TestClient};

fn medlabel(dir: &std::path::Path, database_url: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_medlabel"));
    cmd.env_clear()
        .current_dir(dir)
        .env("DATABASE_URL", database_url)
        .env("STORAGE_URL", "memory://")
        .env("MEDLABEL_LOG_FORMAT", "json")
        .env("MEDLABEL_INSECURE_COOKIES", "1");
    cmd
}

fn run(cmd: &mut Command, stdin: Option<&str>) -> (bool, String, String) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[actix_web::test]
async fn serve_creates_a_first_admin_who_creates_a_doctor_who_logs_in() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(dir.path());
    let mut child = medlabel(dir.path(), &url)
        .arg("serve")
        .env("MEDLABEL_BIND", "127.0.0.1:0")
        .env("MEDLABEL_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let _server = Server(child);

    let mut username = String::new();
    let mut password = String::new();
    for line in stdout.lines().take(3) {
        let line = line.unwrap();
        if let Some(v) = line.trim().strip_prefix("username: ") {
            username = v.to_owned();
        }
        if let Some(v) = line.trim().strip_prefix("password: ") {
            password = v.to_owned();
        }
    }
    assert_eq!(username, "admin");
    assert!(password.len() >= 12);

    // Drain the log on a thread (a closed pipe must not stall the server), passing on the
    // listening address and checking that the admin's password never appears in it.
    let (tx, rx) = std::sync::mpsc::channel();
    let logs = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in stderr.lines().map_while(Result::ok) {
            if let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) {
                if let Some(a) = entry["address"].as_str() {
                    let _ = tx.send(a.to_owned());
                }
            }
            lines.push(line);
        }
        lines
    });
    let started = Instant::now();
    let address = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("listening address logged");
    assert!(started.elapsed() < Duration::from_secs(60));

    let admin = TestClient::new(&address);
    assert_eq!(
        admin.login(&username, &password).await.status,
        StatusCode::OK
    );
    let created = admin
        .post(
            "/api/v1/users",
            &json!({"username": "dr.grey", "password": "seattle grace 2005", "roles": ["doctor"]}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let doctor = TestClient::new(&address);
    let login = doctor.login("dr.grey", "seattle grace 2005").await;
    assert_eq!(login.status, StatusCode::OK);
    assert_eq!(login.body["user"]["roles"], json!(["doctor"]));

    // Secrets sent every way a client might send them never reach the logs (at debug level).
    let canary = "c4nary-l0g-s3cret";
    let anon = TestClient::new(&address);
    anon.login("dr.grey", canary).await;
    for header in [
        "authorization",
        "cookie",
        "x-api-key",
        "proxy-authorization",
    ] {
        let value = format!("Bearer {canary}");
        anon.send(
            actix_web::http::Method::GET,
            "/api/v1/auth/me",
            None,
            &[(header, value.as_str())],
        )
        .await;
    }
    anon.get(&format!("/api/v1/labels?token={canary}&password={canary}"))
        .await;
    let session = doctor.cookie.borrow().clone().unwrap();
    let session_value = session.split_once('=').unwrap().1.to_owned();
    std::thread::sleep(Duration::from_millis(300));
    drop(_server);
    let lines = logs.join().unwrap();
    assert!(lines.len() > 5, "the server logged");
    for secret in [
        password.as_str(),
        canary,
        "seattle grace 2005",
        session_value.as_str(),
    ] {
        assert!(
            !lines.iter().any(|l| l.contains(secret)),
            "a secret reached the logs"
        );
    }
}

#[test]
fn create_user_groups_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(dir.path());
    let (ok, out, err) = run(medlabel(dir.path(), &url).arg("create-user-groups"), None);
    assert!(ok, "{err}");
    for name in ["doctor", "researcher", "admin"] {
        assert!(out.contains(&format!("created group {name}")), "{out}");
    }
    let (ok, out, _) = run(medlabel(dir.path(), &url).arg("create-user-groups"), None);
    assert!(ok);
    assert!(out.trim().is_empty(), "second run creates nothing: {out}");
}

#[test]
fn migrate_applies_then_reports_up_to_date() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(dir.path());
    let (ok, out, err) = run(medlabel(dir.path(), &url).arg("migrate"), None);
    assert!(ok, "{err}");
    assert!(out.contains("applied migration"), "{out}");
    let (ok, out, _) = run(medlabel(dir.path(), &url).arg("migrate"), None);
    assert!(ok);
    assert!(out.contains("up to date"), "{out}");
}

#[test]
fn create_user_reads_the_password_from_stdin_or_generates_one() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(dir.path());
    let (ok, out, err) = run(
        medlabel(dir.path(), &url).args([
            "create-user",
            "--username",
            "nurse.joy",
            "--role",
            "doctor",
            "--role",
            "researcher",
            "--password-stdin",
        ]),
        Some("pokemon center 24h\n"),
    );
    assert!(ok, "{err}");
    assert!(out.contains("roles: doctor, researcher"), "{out}");
    assert!(!out.contains("pokemon"), "a given password is not echoed");

    let (ok, out, err) = run(
        medlabel(dir.path(), &url).args(["create-user", "--username", "visitor"]),
        None,
    );
    assert!(ok, "{err}");
    assert!(out.contains("roles: none"), "{out}");
    let generated = out
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .expect("generated password printed");
    assert!(generated.len() >= 12);

    let (ok, _, err) = run(
        medlabel(dir.path(), &url).args(["create-user", "--username", "NURSE.JOY"]),
        None,
    );
    assert!(!ok && err.contains("taken"), "{err}");
    let (ok, _, err) = run(
        medlabel(dir.path(), &url).args(["create-user", "--username", "weak", "--password-stdin"]),
        Some("short\n"),
    );
    assert!(!ok && err.contains("password"), "{err}");

    let db = medlabel::db::Db::connect(&url, 1).unwrap();
    let mut conn = db.get().unwrap();
    let user = medlabel::models::users::find_by_username(&mut conn, "nurse.joy")
        .unwrap()
        .unwrap();
    assert!(medlabel::auth::password::verify_password(
        &user.password_hash,
        "pokemon center 24h"
    ));
    let roles = medlabel::models::users::roles_of_user(&mut conn, user.id).unwrap();
    assert_eq!(roles.names(), vec!["doctor", "researcher"]);
}

#[test]
fn bad_configuration_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, err) = run(medlabel(dir.path(), "mysql://nope").arg("migrate"), None);
    assert!(!ok);
    assert!(err.contains("DATABASE_URL"), "{err}");
    let (ok, _, err) = run(
        medlabel(dir.path(), "sqlite://x.db")
            .arg("migrate")
            .env("MEDLABEL_SESSION_IDLE_SECS", "soon"),
        None,
    );
    assert!(!ok);
    assert!(err.contains("MEDLABEL_SESSION_IDLE_SECS"), "{err}");
}

#[test]
fn import_codes_is_idempotent_and_reports_rejected_lines() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(dir.path());
    let file = dir.path().join("codes.tsv");
    std::fs::write(
        &file,
        "code\tlong_description\tshort_description\tbillable\n\
         J18.9\tPneumonia, unspecified organism\tPneumonia NOS\t1\n\
         J18\tPneumonia, unspecified organism\tPneumonia\t0\n\
         nonsense\tNot a code\tx\t1\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let (ok, out, err) = run(
        medlabel(dir.path(), &url).args(["import-codes", "--system", "icd-10", path]),
        None,
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("2 codes added") && out.contains("1 lines rejected"),
        "{out}"
    );
    let (ok, out, _) = run(
        medlabel(dir.path(), &url).args(["import-codes", "--system", "icd-10", path]),
        None,
    );
    assert!(ok);
    assert!(out.contains("0 codes added, 2 already present"), "{out}");
    let (ok, _, err) = run(
        medlabel(dir.path(), &url).args(["import-codes", "--system", "loinc", path]),
        None,
    );
    assert!(!ok && err.contains("unknown code system"), "{err}");
}

#[test]
fn create_dummy_data_is_realistic_deterministic_and_repeatable() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(dir.path());
    let args = [
        "create-dummy-data",
        "--doctors",
        "2",
        "--researchers",
        "1",
        "--images-per-doctor",
        "3",
        "--seed",
        "42",
    ];
    let storage = format!("file://{}", dir.path().join("objects").display());
    let (ok, first, err) = run(
        medlabel(dir.path(), &url)
            .args(args)
            .env("STORAGE_URL", &storage),
        None,
    );
    assert!(ok, "{err}");
    assert!(first.contains("created 3 users, 6 images"), "{first}");
    assert!(first.contains("12 labels and 12 diseases"), "{first}");
    let users: Vec<Vec<String>> = first
        .lines()
        .filter(|l| l.contains("mlt_"))
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect();
    assert_eq!(users.len(), 3);

    // Same seed on another database: the same people.
    let other = tempfile::tempdir().unwrap();
    let other_url = fresh_database_url(other.path());
    let (ok, again, _) = run(medlabel(other.path(), &other_url).args(args), None);
    assert!(ok);
    let names = |out: &str| -> Vec<String> {
        out.lines()
            .filter(|l| l.contains("mlt_"))
            .map(|l| l.split_whitespace().next().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(&first), names(&again), "deterministic with --seed");

    // A second run on the same database adds more, without errors.
    let (ok, second, err) = run(
        medlabel(dir.path(), &url)
            .args(args)
            .env("STORAGE_URL", &storage),
        None,
    );
    assert!(ok, "{err}");
    assert!(second.contains("created 3 users, 6 images"), "{second}");
    assert!(
        second.contains("0 labels and 0 diseases"),
        "the vocabulary is reused: {second}"
    );

    let db = medlabel::db::Db::connect(&url, 1).unwrap();
    let mut conn = db.get().unwrap();
    use diesel::prelude::*;
    use medlabel::db::schema::{disease_codes, history, images};
    let image_count: i64 = images::table.count().get_result(&mut *conn).unwrap();
    assert_eq!(image_count, 12);
    let linked_codes: i64 = disease_codes::table.count().get_result(&mut *conn).unwrap();
    assert!(
        linked_codes >= 20,
        "diseases carry real ICD-10 and ICD-9 codes"
    );
    let entries: i64 = history::table.count().get_result(&mut *conn).unwrap();
    assert!(
        entries >= 12 + 24,
        "every image and vocabulary entry has history"
    );
    // The printed tokens and passwords work.
    let (username, password, token) = (&users[0][0], &users[0][2], &users[0][3]);
    let found = medlabel::models::api_tokens::authenticate_token(
        &mut conn,
        &medlabel::auth::tokens::digest(token),
    )
    .unwrap();
    assert_eq!(&found.unwrap().1.username, username);
    let user = medlabel::models::users::find_by_username(&mut conn, username)
        .unwrap()
        .unwrap();
    assert!(medlabel::auth::password::verify_password(
        &user.password_hash,
        password
    ));
    assert!(user.email.is_some_and(|e| e.contains('@')) && user.full_name.is_some());
    let stored = std::fs::read_dir(dir.path().join("objects/images"))
        .unwrap()
        .count();
    assert_eq!(stored, 12, "every image row has its object");
}

/// Waits up to `secs` for `child` to exit; `None` if it is still running (then killed).
fn exit_within(child: &mut std::process::Child, secs: u64) -> Option<std::process::ExitStatus> {
    for _ in 0..secs * 10 {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[test]
fn demo_patients_have_several_images_and_serve_refuses_another_pseudonym_key() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(dir.path());
    let key = |byte: u8| base64::engine::general_purpose::STANDARD.encode([byte; 32]);
    let (ok, out, err) = run(
        medlabel(dir.path(), &url)
            .args([
                "create-dummy-data",
                "--doctors",
                "1",
                "--researchers",
                "0",
                "--images-per-doctor",
                "24",
                "--seed",
                "7",
            ])
            .env("MEDLABEL_PSEUDONYM_KEY", key(1)),
        None,
    );
    assert!(ok, "{err}");
    for text in [&out, &err] {
        assert!(
            !text.contains("MRN") && !text.contains('^'),
            "nothing identifying is printed: {text}"
        );
    }
    // Several patients, at least one with images in more than one study.
    let db = medlabel::db::Db::connect_with(&url, 1, std::time::Duration::from_secs(5)).unwrap();
    let mut conn = db.get().unwrap();
    let subjects = medlabel::models::patients::list_subjects(&mut conn, None, 100).unwrap();
    assert!(subjects.len() >= 2, "{} patients", subjects.len());
    let ids: Vec<i64> = subjects.iter().map(|p| p.id).collect();
    let counts = medlabel::models::patients::image_counts(&mut conn, &ids, None).unwrap();
    let studies_of = |patient: i64| {
        counts
            .iter()
            .filter(|(p, study, _, _)| *p == patient && study.is_some())
            .count()
    };
    assert!(
        ids.iter().any(|p| studies_of(*p) > 1),
        "a subject with several studies: {counts:?}"
    );
    drop(conn);

    // Another key (given, or generated because none is given) is refused, naming the variable.
    for other in [Some(key(2)), None] {
        let mut cmd = medlabel(dir.path(), &url);
        cmd.arg("serve")
            .env("MEDLABEL_BIND", "127.0.0.1:0")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(other) = &other {
            cmd.env("MEDLABEL_PSEUDONYM_KEY", other);
        }
        let mut child = cmd.spawn().unwrap();
        let status = exit_within(&mut child, 60).expect("serve refuses to start");
        assert!(!status.success());
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert!(stderr.contains("MEDLABEL_PSEUDONYM_KEY"), "{stderr}");
        assert!(
            !dir.path().join("data/pseudonym.key").exists(),
            "a key generated by a refused start is not left behind"
        );
    }
}

#[test]
fn serve_on_a_taken_port_fails_before_touching_anything() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let bind = taken.local_addr().unwrap().to_string();
    let db = dir.path().join("never.db");
    let (ok, out, err) = run(
        medlabel(dir.path(), &format!("sqlite://{}", db.display()))
            .arg("serve")
            .env("MEDLABEL_BIND", &bind)
            .env("MEDLABEL_DATA_DIR", dir.path().join("data"))
            .env("MEDLABEL_LOG_FORMAT", "text"),
        None,
    );
    assert!(!ok);
    assert!(err.contains(&format!("cannot listen on {bind}")), "{err}");
    assert!(!out.contains("password"), "a password was printed: {out}");
    assert!(!db.exists(), "the database was created");
    assert!(!dir.path().join("data").exists(), "keys were written");
    // Logs that go to a file (not a terminal) carry no ANSI colour escapes.
    assert!(!err.contains('\u{1b}'), "{err:?}");
}

#[test]
fn help_names_every_setting_and_describes_every_option() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, top, _) = run(medlabel(dir.path(), "sqlite://x.db").arg("--help"), None);
    assert!(ok);
    for variable in medlabel::config::VARIABLES {
        assert!(
            top.contains(variable.name),
            "--help misses {}",
            variable.name
        );
    }
    let commands: Vec<String> = top
        .split("Commands:")
        .nth(1)
        .unwrap()
        .split("Options:")
        .next()
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .filter(|c| c != "help")
        .collect();
    assert!(commands.len() >= 9, "{commands:?}");
    for command in commands {
        let (ok, help, _) = run(
            medlabel(dir.path(), "sqlite://x.db").args([command.as_str(), "--help"]),
            None,
        );
        assert!(ok, "{command} --help");
        // Every argument and option carries a description: after its name, or on the next,
        // further indented line (clap's long help).
        let lines: Vec<&str> = help.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let name = line.trim();
            let indent = line.len() - line.trim_start().len();
            if !(line.starts_with("  ") && (name.starts_with('-') || name.starts_with('<'))) {
                continue;
            }
            let inline = name.split("  ").filter(|p| !p.trim().is_empty()).count() >= 2;
            let below = lines.get(i + 1).is_some_and(|next| {
                let t = next.trim();
                next.len() - next.trim_start().len() > indent
                    && !t.is_empty()
                    && !t.starts_with('-')
            });
            assert!(inline || below, "{command}: {name:?} has no description");
        }
    }
}

/// `medlabel create-user` with one role and a password on standard input; must succeed.
fn create_user(dir: &std::path::Path, url: &str, username: &str, role: &str, password: &str) {
    let (ok, _, err) = run(
        medlabel(dir, url).args([
            "create-user",
            "--username",
            username,
            "--role",
            role,
            "--password-stdin",
        ]),
        Some(&format!("{password}\n")),
    );
    assert!(ok, "create-user {username}: {err}");
}

/// Starts `serve` on a free port; returns the server, its address and the first admin's
/// credentials (when it created one).
fn start_serve(dir: &std::path::Path, url: &str) -> (Server, String, Option<(String, String)>) {
    start_serve_with(dir, url, &[])
}

/// [`start_serve`] with more environment variables.
fn start_serve_with(
    dir: &std::path::Path,
    url: &str,
    env: &[(&str, &str)],
) -> (Server, String, Option<(String, String)>) {
    let mut child = medlabel(dir, url)
        .arg("serve")
        .envs(env.iter().copied())
        .env("MEDLABEL_BIND", "127.0.0.1:0")
        .env("MEDLABEL_DATA_DIR", dir.join("data"))
        .env("MEDLABEL_CODE_INDEX", "off")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) {
                if let Some(a) = entry["address"].as_str() {
                    let _ = tx.send(a.to_owned());
                }
            }
        }
    });
    let (admin_tx, admin_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut username = None;
        for line in stdout.lines().map_while(Result::ok) {
            let line = line.trim().to_owned();
            if let Some(v) = line.strip_prefix("username: ") {
                username = Some(v.to_owned());
            }
            if let Some(v) = line.strip_prefix("password: ") {
                let _ = admin_tx.send(username.clone().zip(Some(v.to_owned())));
            }
        }
    });
    let address = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("listening address logged");
    let server = Server(child);
    // The credentials are printed before the address is logged.
    let admin = admin_rx
        .recv_timeout(Duration::from_millis(200))
        .ok()
        .flatten();
    (server, address, admin)
}

fn table_rows(path: &std::path::Path) -> std::collections::BTreeMap<String, i64> {
    use diesel::prelude::*;
    #[derive(diesel::QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
    }
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = diesel::SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    let tables: Vec<Name> = diesel::sql_query(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    )
    .load(&mut conn)
    .unwrap();
    tables
        .into_iter()
        .map(|t| {
            let c: Count = diesel::sql_query(format!("SELECT count(*) AS n FROM \"{}\"", t.name))
                .get_result(&mut conn)
                .unwrap();
            (t.name, c.n)
        })
        .collect()
}

/// Labels of a database file that have no `create` history entry (a torn copy would show some).
fn labels_without_history(path: &std::path::Path) -> i64 {
    use diesel::prelude::*;
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = diesel::SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    let c: Count = diesel::sql_query(
        "SELECT count(*) AS n FROM labels l WHERE NOT EXISTS (SELECT 1 FROM history h \
         WHERE h.entity_type = 'label' AND h.entity_id = l.uuid AND h.action = 'create')",
    )
    .get_result(&mut conn)
    .unwrap();
    c.n
}

#[actix_web::test]
async fn backup_under_write_load_restores_every_row_and_refuses_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(dir.path());
    if url.starts_with("postgres") {
        // PostgreSQL is backed up with pg_dump: the command says so and writes nothing.
        let out = dir.path().join("pg.backup");
        let (ok, _, err) = run(
            medlabel(dir.path(), &url).args(["backup", "--output", out.to_str().unwrap()]),
            None,
        );
        assert!(!ok);
        assert!(err.contains("pg_dump"), "{err}");
        assert!(!out.exists());
        return;
    }
    let database = dir.path().join("medlabel.db");
    create_user(
        dir.path(),
        &url,
        "curator",
        "researcher",
        "curating all day 42",
    );
    let (server, address, _) = start_serve(dir.path(), &url);
    let researcher = TestClient::new(&address);
    assert_eq!(
        researcher
            .login("curator", "curating all day 42")
            .await
            .status,
        StatusCode::OK
    );

    // Writers create labels (a change, its history entry and its event per request) while
    // three backups are taken.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (address, stop) = (address.clone(), stop.clone());
            std::thread::spawn(move || {
                actix_web::rt::System::new().block_on(async move {
                    let client = TestClient::new(&address);
                    client.login("curator", "curating all day 42").await;
                    let mut created = 0;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let res = client
                            .post(
                                "/api/v1/labels",
                                &json!({"name": format!("Finding {w}-{created}")}),
                            )
                            .await;
                        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
                        created += 1;
                    }
                    created
                })
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut copies = Vec::new();
    for n in 0..3 {
        let out = dir.path().join(format!("backup-{n}.db"));
        let (ok, stdout, err) = run(
            medlabel(dir.path(), &url).args([
                "backup",
                "--json",
                "--output",
                out.to_str().unwrap(),
            ]),
            None,
        );
        assert!(ok, "{err}");
        let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(report["bytes"], std::fs::metadata(&out).unwrap().len());
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&out).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o077,
            0,
            "a backup of patient data is readable by others"
        );
        copies.push(out);
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let created: i32 = writers.into_iter().map(|w| w.join().unwrap()).sum();
    assert!(
        created > 10,
        "only {created} labels were written during the backups"
    );
    let mut previous = 0;
    for copy in &copies {
        let rows = table_rows(copy);
        assert_eq!(labels_without_history(copy), 0, "a torn copy: {copy:?}");
        assert!(rows["labels"] >= previous, "backups go back in time");
        previous = rows["labels"];
    }
    assert!(
        previous < i64::from(created),
        "the backups were all taken after the load"
    );

    // Restoring is refused while a server uses the database, and nothing changes.
    let (ok, _, err) = run(
        medlabel(dir.path(), &url).args(["restore", "--input", copies[0].to_str().unwrap()]),
        None,
    );
    assert!(!ok);
    assert!(err.contains("stop every instance"), "{err}");
    assert_eq!(table_rows(&database)["labels"], i64::from(created));

    // A final backup of the idle server; then the server stops, the database changes, and
    // the restore brings back every row of every table, history and events included.
    let last = dir.path().join("backup-last.db");
    let (ok, _, err) = run(
        medlabel(dir.path(), &url).args(["backup", "--output", last.to_str().unwrap()]),
        None,
    );
    assert!(ok, "{err}");
    drop(server);
    let expected = table_rows(&database);
    assert_eq!(table_rows(&last), expected);
    let (ok, _, err) = run(
        medlabel(dir.path(), &url).args(["deactivate-user", "curator"]),
        None,
    );
    assert!(ok, "{err}");
    assert_ne!(table_rows(&database), expected);
    let (ok, stdout, err) = run(
        medlabel(dir.path(), &url).args(["restore", "--input", last.to_str().unwrap()]),
        None,
    );
    assert!(ok, "{err}");
    assert!(stdout.contains("integrity ok"), "{stdout}");
    assert_eq!(table_rows(&database), expected);
    assert!(!dir.path().join("medlabel.db-wal").exists() || table_rows(&database) == expected);

    // The restored database serves: the researcher still logs in.
    let (_server, address, _) = start_serve(dir.path(), &url);
    let again = TestClient::new(&address);
    assert_eq!(
        again.login("curator", "curating all day 42").await.status,
        StatusCode::OK
    );

    // A backup never writes over the live database or its side files.
    let before = std::fs::read(&database).unwrap();
    for live in ["medlabel.db", "medlabel.db-wal", "./medlabel.db-shm"] {
        let (ok, _, err) = run(
            medlabel(dir.path(), &url).args(["backup", "--output", live]),
            None,
        );
        assert!(!ok, "backup onto {live} was accepted");
        assert!(err.contains("live database"), "{err}");
    }
    assert_eq!(std::fs::read(&database).unwrap(), before);
    // A mistyped backup path is named, and no file appears there.
    let missing = dir.path().join("nope.db");
    let (ok, _, err) = run(
        medlabel(dir.path(), &url).args(["restore", "--input", missing.to_str().unwrap()]),
        None,
    );
    assert!(!ok);
    assert!(err.contains("there is no file"), "{err}");
    assert!(!missing.exists());

    // A file that is not a backup is refused before anything is touched.
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, b"not a database").unwrap();
    let (ok, _, err) = run(
        medlabel(dir.path(), &url).args(["restore", "--input", junk.to_str().unwrap()]),
        None,
    );
    assert!(!ok);
    assert!(err.contains("not a usable backup"), "{err}");
}

#[actix_web::test]
async fn reset_password_and_deactivate_user_end_access_and_are_audited() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(dir.path());
    create_user(
        dir.path(),
        &url,
        "dr.house",
        "doctor",
        "vicodin and puzzles 1",
    );
    let (_server, address, admin) = start_serve(dir.path(), &url);
    let (admin_name, admin_password) = admin.expect("a first admin");
    let doctor = TestClient::new(&address);
    assert_eq!(
        doctor
            .login("dr.house", "vicodin and puzzles 1")
            .await
            .status,
        StatusCode::OK
    );
    let token = doctor
        .post("/api/v1/auth/tokens", &json!({"name": "script"}))
        .await
        .body["token"]
        .as_str()
        .unwrap()
        .to_owned();

    // A user locked out by failed logins is let in again by a reset.
    let locked = TestClient::new(&address);
    for _ in 0..10 {
        locked.login("dr.house", "not the password at all").await;
    }
    assert_eq!(
        locked
            .login("dr.house", "vicodin and puzzles 1")
            .await
            .status,
        StatusCode::TOO_MANY_REQUESTS
    );

    // reset-password --json prints the generated password; the old one and the session end,
    // the token stays (as a password change through the API).
    let (ok, stdout, err) = run(
        medlabel(dir.path(), &url).args(["reset-password", "dr.house", "--json"]),
        None,
    );
    assert!(ok, "{err}");
    let out: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let new_password = out["password"].as_str().unwrap().to_owned();
    assert_eq!(out["username"], "dr.house");
    assert_eq!(
        doctor.get("/api/v1/auth/me").await.status,
        StatusCode::UNAUTHORIZED
    );
    let fresh = TestClient::new(&address);
    assert_eq!(
        fresh
            .login("dr.house", "vicodin and puzzles 1")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        fresh.login("dr.house", &new_password).await.status,
        StatusCode::OK
    );
    let scripted = TestClient::new(&address);
    *scripted.bearer.borrow_mut() = Some(token);
    assert_eq!(scripted.get("/api/v1/auth/me").await.status, StatusCode::OK);

    // deactivate-user ends the session and the token at once.
    let (ok, stdout, err) = run(
        medlabel(dir.path(), &url).args(["deactivate-user", "dr.house"]),
        None,
    );
    assert!(ok, "{err}");
    assert!(stdout.contains("deactivated dr.house"), "{stdout}");
    assert_eq!(
        fresh.get("/api/v1/auth/me").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        scripted.get("/api/v1/auth/me").await.status,
        StatusCode::UNAUTHORIZED
    );

    // Both are CLI events naming the target user.
    let admin = TestClient::new(&address);
    assert_eq!(
        admin.login(&admin_name, &admin_password).await.status,
        StatusCode::OK
    );
    let events = admin.get("/api/v1/events?method=CLI").await;
    assert_eq!(events.status, StatusCode::OK, "{}", events.text);
    let paths: Vec<&str> = events.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "medlabel deactivate-user",
            "medlabel reset-password",
            "medlabel serve (first admin)",
            "medlabel create-user",
        ]
    );
    // Deactivating twice says so and writes nothing more.
    let (ok, _, err) = run(
        medlabel(dir.path(), &url).args(["deactivate-user", "dr.house"]),
        None,
    );
    assert!(!ok);
    assert!(err.contains("deactivated already"), "{err}");
    assert!(!events.text.contains(&new_password));

    // Unknown users are named.
    let (ok, _, err) = run(
        medlabel(dir.path(), &url).args(["deactivate-user", "nobody"]),
        None,
    );
    assert!(!ok);
    assert!(err.contains("no user \"nobody\""), "{err}");
}

#[actix_web::test]
async fn instances_starting_together_on_a_fresh_database_both_serve_with_one_admin() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(dir.path());
    let starts: Vec<_> = (0..2)
        .map(|n| {
            // Separate working directories (data dirs), one database and the shared keys a
            // deployment gives every instance.
            let (work, url) = (dir.path().join(format!("i{n}")), url.clone());
            std::fs::create_dir_all(&work).unwrap();
            std::thread::spawn(move || {
                let keys = [
                    ("MEDLABEL_PSEUDONYM_KEY", "c2hhcmVkIHBzZXVkb255bSBrZXkgb2YgdGhlIHRlc3QhIQ=="),
                    ("MEDLABEL_SESSION_KEY", "c2hhcmVkIHNlc3Npb24ga2V5IG9mIHRoZSB0ZXN0LCBzaXh0eS1mb3VyIGJ5dGVzIGxvbmcsIGF0IGxlYXN0ISEhIQ=="),
                ];
                start_serve_with(&work, &url, &keys)
            })
        })
        .collect();
    let servers: Vec<_> = starts
        .into_iter()
        .map(|s| s.join().expect("both instances start"))
        .collect();
    let admins: Vec<_> = servers
        .iter()
        .filter_map(|(_, _, admin)| admin.clone())
        .collect();
    assert_eq!(admins.len(), 1, "{admins:?}");
    for (_, address, _) in &servers {
        let client = TestClient::new(address);
        assert_eq!(client.get("/health").await.status, StatusCode::OK);
    }
}
