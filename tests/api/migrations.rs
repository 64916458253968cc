//! Migrations run up, down and up again on the backend under test.

use medlabel::db::{revert_all_migrations, run_migrations, Db};

use crate::helpers::fresh_database_url;

/// A fresh database with every migration applied (the folder keeps a SQLite file alive).
fn migrated_db() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&fresh_database_url(dir.path()), 1).unwrap();
    db.migrate().unwrap();
    (dir, db)
}

fn table_exists(db: &Db, table: &str) -> bool {
    use diesel::prelude::*;
    use diesel::sql_types::BigInt;
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let mut conn = db.get().unwrap();
    let sql = match db.backend() {
        medlabel::db::Backend::Sqlite => format!("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = '{table}'"),
        medlabel::db::Backend::Postgres => format!("SELECT count(*) AS n FROM information_schema.tables WHERE table_name = '{table}' AND table_schema = current_schema()"),
    };
    diesel::sql_query(sql)
        .get_result::<Count>(&mut *conn)
        .unwrap()
        .n
        > 0
}

#[test]
fn migrations_go_up_down_and_up_again() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&fresh_database_url(dir.path()), 1).unwrap();
    let mut conn = db.get().unwrap();
    let applied = run_migrations(&mut conn).unwrap();
    assert!(!applied.is_empty());
    drop(conn);
    for table in [
        "users",
        "groups",
        "sessions",
        "api_tokens",
        "images",
        "labels",
        "diseases",
        "codes",
        "history",
        "events",
    ] {
        assert!(table_exists(&db, table), "{table} after up");
    }
    let mut conn = db.get().unwrap();
    assert!(
        run_migrations(&mut conn).unwrap().is_empty(),
        "a second run applies nothing"
    );
    let reverted = revert_all_migrations(&mut conn).unwrap();
    assert_eq!(reverted.len(), applied.len());
    drop(conn);
    assert!(!table_exists(&db, "users"), "down removes the schema");
    let mut conn = db.get().unwrap();
    assert_eq!(run_migrations(&mut conn).unwrap(), applied);
    drop(conn);
    assert!(table_exists(&db, "events"));
}

#[test]
fn migrations_insert_no_data() {
    let (_dir, db) = migrated_db();
    use diesel::prelude::*;
    use medlabel::db::schema::{code_systems, groups, users};
    let mut conn = db.get().unwrap();
    let counts: (i64, i64, i64) = (
        groups::table.count().get_result(&mut *conn).unwrap(),
        users::table.count().get_result(&mut *conn).unwrap(),
        code_systems::table.count().get_result(&mut *conn).unwrap(),
    );
    assert_eq!(counts, (0, 0, 0));
}

#[test]
fn history_is_append_only_in_the_database_itself() {
    let (_dir, db) = migrated_db();
    use diesel::connection::SimpleConnection;
    let mut conn = db.get().unwrap();
    conn.batch_execute(
        "INSERT INTO users (uuid, username, password_hash, is_active, created_at, updated_at) \
         VALUES ('u1', 'u1', 'x', true, '2026-01-01 00:00:00', '2026-01-01 00:00:00');
         INSERT INTO history (uuid, entity_type, entity_id, action, schema_version, snapshot, changed_by, changed_at, request_id) \
         SELECT 'h1', 'label', 'l1', 'create', 1, '{}', id, '2026-01-01 00:00:00', 'r1' FROM users;",
    )
    .unwrap();
    assert!(
        conn.batch_execute("UPDATE history SET action = 'update'")
            .is_err(),
        "UPDATE refused"
    );
    assert!(
        conn.batch_execute("DELETE FROM history").is_err(),
        "DELETE refused"
    );
    if matches!(*conn, medlabel::db::DbConnection::Sqlite(_)) {
        assert!(
            conn.batch_execute(
                "INSERT OR REPLACE INTO history (id, uuid, entity_type, entity_id, action, schema_version, snapshot, changed_by, changed_at, request_id) \
                 SELECT id, uuid, entity_type, entity_id, action, schema_version, '{\"forged\":true}', changed_by, changed_at, request_id FROM history"
            )
            .is_err(),
            "REPLACE refused"
        );
        assert!(conn
            .batch_execute(
                "REPLACE INTO history (uuid, entity_type, entity_id, action, schema_version, snapshot, changed_by, changed_at, request_id) \
                 SELECT 'h1', 'label', 'l1', 'create', 1, '{\"forged\":true}', id, '2026-01-01 00:00:00', 'r1' FROM users"
            )
            .is_err());
    }
}

#[test]
fn events_are_append_only_in_the_database_itself() {
    use diesel::RunQueryDsl as _;
    let (_dir, db) = migrated_db();
    use diesel::connection::SimpleConnection;
    let mut conn = db.get().unwrap();
    conn.batch_execute(
        "INSERT INTO events (uuid, request_id, occurred_at, auth, method, path, query, status, \
         duration_ms, client_ip, headers) VALUES ('e1', 'r1', '2026-01-01 00:00:00', 'none', \
         'GET', '/api/v1/labels', '', 200, 1.5, '127.0.0.1', '{}')",
    )
    .unwrap();
    for statement in [
        "UPDATE events SET status = 500",
        "UPDATE events SET path = '/elsewhere' WHERE uuid = 'e1'",
        "DELETE FROM events",
        "DELETE FROM events WHERE uuid = 'e1'",
    ] {
        assert!(
            conn.batch_execute(statement).is_err(),
            "{statement} refused"
        );
    }
    match *conn {
        medlabel::db::DbConnection::Postgres(_) => {
            assert!(conn.batch_execute("TRUNCATE events").is_err());
            assert!(conn
                .batch_execute(
                    "INSERT INTO events (uuid, request_id, occurred_at, auth, method, path, query, \
                     status, duration_ms, client_ip, headers) VALUES ('e1', 'r9', \
                     '2026-01-01 00:00:00', 'none', 'FORGED', '/x', '', 299, 1, '::1', '{}') \
                     ON CONFLICT (uuid) DO UPDATE SET status = 299"
                )
                .is_err());
        }
        medlabel::db::DbConnection::Sqlite(_) => {
            // REPLACE deletes without DELETE triggers: the row must stay as written anyway.
            for statement in [
                "INSERT OR REPLACE INTO events (id, uuid, request_id, occurred_at, auth, method, \
                 path, query, status, duration_ms, client_ip, headers) SELECT id, 'e1', 'r9', \
                 '2026-01-01 00:00:00', 'none', 'FORGED', '/x', '', 299, 1, '::1', '{}' FROM events",
                "REPLACE INTO events (uuid, request_id, occurred_at, auth, method, path, query, \
                 status, duration_ms, client_ip, headers) VALUES ('e1', 'r9', \
                 '2026-01-01 00:00:00', 'none', 'FORGED', '/x', '', 299, 1, '::1', '{}')",
            ] {
                let _ = conn.batch_execute(statement);
            }
        }
    }
    let (status, path): (i32, String) = diesel::sql_query("SELECT status, path FROM events")
        .get_result::<StatusPath>(&mut *conn)
        .map(|r| (r.status, r.path))
        .unwrap();
    assert_eq!((status, path.as_str()), (200, "/api/v1/labels"));
}

#[derive(diesel::QueryableByName)]
struct StatusPath {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    status: i32,
    #[diesel(sql_type = diesel::sql_types::Text)]
    path: String,
}

#[test]
fn rows_from_before_the_name_keys_get_them_at_start() {
    use diesel::connection::SimpleConnection;
    use diesel::prelude::*;
    use medlabel::db::schema::users;
    let (_dir, db) = migrated_db();
    let mut conn = db.get().unwrap();
    // Rows as an older release wrote them: no key.
    conn.batch_execute(
        "INSERT INTO users (uuid, username, password_hash, is_active, created_at, updated_at) \
         VALUES ('u1', 'Ärztin', 'x', true, '2026-01-01 00:00:00', '2026-01-01 00:00:00'), \
                ('u2', 'ÄRZTIN', 'x', true, '2026-01-01 00:00:00', '2026-01-01 00:00:00');",
    )
    .unwrap();
    medlabel::db::fill_name_keys(&mut conn).unwrap();
    let keys: Vec<(String, Option<String>)> = users::table
        .order(users::uuid)
        .select((users::uuid, users::username_key))
        .load(&mut *conn)
        .unwrap();
    assert_eq!(
        keys,
        vec![
            ("u1".to_owned(), Some("ärztin".to_owned())),
            ("u2".to_owned(), None),
        ],
        "the first keeps the key; its twin is left for an admin to rename"
    );
}
