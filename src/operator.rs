//! Operator commands: `backup`, `restore`, `reset-password`, `deactivate-user`.
//!
//! - A backup of SQLite is an online, consistent copy (`VACUUM INTO`, a read transaction, so
//!   the server keeps serving and writing), checked with `PRAGMA integrity_check` before it
//!   takes the output's name. PostgreSQL is backed up with its own tools (`pg_dump`).
//! - A restore replaces the SQLite file only while no server uses it: every `serve` holds a
//!   shared `flock(2)` on the database file itself for its lifetime (released by the kernel,
//!   kill -9 included; independent of SQLite's own `fcntl` locks), and restore needs the
//!   exclusive one. A backup never writes over the database or its side files.
//! - User commands change what the HTTP API would (ending sessions and tokens the same way)
//!   and write an audit event of method `CLI` (path `medlabel <command>`, the target user in
//!   `detail`), so the event table shows every account change whoever made it.
//!
//! Image objects live in `STORAGE_URL`, not in the database: back them up after the database
//! (objects are written before their rows and never change, so a copy made later holds every
//! object the database backup references).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context as _};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use crate::auth::password;
use crate::config::Settings;
use crate::db::{DatabaseUrl, Db};
use crate::models::events::{self, NewEvent};
use crate::models::{api_tokens, sessions, users};

/// What a backup or restore did: the file, its size, how long it took, and the rows of every
/// table it holds (`integrity_check` passed).
#[derive(Debug, serde::Serialize)]
pub struct CopyReport {
    pub path: PathBuf,
    pub bytes: u64,
    pub seconds: f64,
    pub tables: Vec<(String, i64)>,
}

impl CopyReport {
    pub fn rows(&self) -> i64 {
        self.tables.iter().map(|(_, n)| n).sum()
    }
}

/// The SQLite file of `settings`, or the error an operator needs for PostgreSQL.
fn sqlite_path(settings: &Settings, postgres_hint: &str) -> anyhow::Result<PathBuf> {
    match DatabaseUrl::parse(&settings.database_url.0).map_err(|e| anyhow::anyhow!(e))? {
        DatabaseUrl::Sqlite(path) => Ok(PathBuf::from(path)),
        DatabaseUrl::Postgres(_) => bail!("{postgres_hint}"),
    }
}

/// A `flock(2)` held until dropped.
pub struct ServeLock(#[allow(dead_code)] Option<File>);

/// `flock(2)` on the database file (without blocking); `Some(lock)` when taken, `None` when
/// another process holds a conflicting one. A database that does not exist yet is used by no
/// one: `Some` with nothing locked.
fn flock(database: &Path, exclusive: bool) -> anyhow::Result<Option<ServeLock>> {
    use std::os::fd::AsRawFd as _;
    let file = match File::open(database) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Some(ServeLock(None))),
        Err(e) => return Err(e).with_context(|| format!("opening {}", database.display())),
    };
    let mode = if exclusive {
        libc::LOCK_EX
    } else {
        libc::LOCK_SH
    };
    // SAFETY: `file` is an open descriptor for the whole call.
    let taken = unsafe { libc::flock(file.as_raw_fd(), mode | libc::LOCK_NB) } == 0;
    Ok(taken.then_some(ServeLock(Some(file))))
}

/// Taken by `serve` on SQLite once the database file exists: shared with other instances,
/// refused while a restore runs. `None` on PostgreSQL.
pub fn hold_serve_lock(settings: &Settings) -> anyhow::Result<Option<ServeLock>> {
    let Ok(DatabaseUrl::Sqlite(path)) = DatabaseUrl::parse(&settings.database_url.0) else {
        return Ok(None);
    };
    match flock(Path::new(&path), false)? {
        Some(lock) => Ok(Some(lock)),
        None => bail!("a restore of {path} is running; start the server when it is done"),
    }
}

fn sqlite(path: &Path) -> anyhow::Result<SqliteConnection> {
    let mut conn = SqliteConnection::establish(&path.to_string_lossy())
        .with_context(|| format!("opening {}", path.display()))?;
    diesel::sql_query("PRAGMA busy_timeout = 10000").execute(&mut conn)?;
    Ok(conn)
}

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Opens a database file read-only (an SQLite URI, RFC 3986 percent-encoded path): checking a
/// backup neither creates a missing file nor changes the backup.
fn sqlite_read_only(path: &Path) -> anyhow::Result<SqliteConnection> {
    const PATH: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
        .add(b'?')
        .add(b'#')
        .add(b'%')
        .add(b' ');
    if !path.is_file() {
        bail!("there is no file {}", path.display());
    }
    let absolute = std::fs::canonicalize(path)?;
    let absolute = absolute.to_string_lossy();
    let encoded = percent_encoding::utf8_percent_encode(&absolute, PATH);
    SqliteConnection::establish(&format!("file:{encoded}?mode=ro"))
        .with_context(|| format!("opening {}", path.display()))
}

/// `PRAGMA integrity_check` must answer `ok`; then the row count of every table.
fn check_copy(path: &Path) -> anyhow::Result<Vec<(String, i64)>> {
    let mut conn = sqlite_read_only(path)?;
    let verdict: Vec<Name> =
        diesel::sql_query("SELECT integrity_check AS name FROM pragma_integrity_check")
            .load(&mut conn)?;
    if verdict.len() != 1 || verdict[0].name != "ok" {
        let problems: Vec<String> = verdict.into_iter().take(5).map(|v| v.name).collect();
        bail!(
            "{} failed PRAGMA integrity_check: {}",
            path.display(),
            problems.join("; ")
        );
    }
    let tables: Vec<Name> = diesel::sql_query(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         ORDER BY name",
    )
    .load(&mut conn)?;
    if !tables
        .iter()
        .any(|t| t.name == "__diesel_schema_migrations")
    {
        bail!("{} is not a medlabel database", path.display());
    }
    let mut counts = Vec::with_capacity(tables.len());
    for table in tables {
        let quoted = table.name.replace('"', "\"\"");
        let count: Count = diesel::sql_query(format!("SELECT count(*) AS n FROM \"{quoted}\""))
            .get_result(&mut conn)?;
        counts.push((table.name, count.n));
    }
    Ok(counts)
}

/// Flushes a directory entry (a rename) to disk.
fn sync_dir(path: &Path) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// Refuses an output that is the database or one of its side files (`-wal`, `-shm`,
/// `-journal`): writing a backup there would destroy the database.
fn refuse_live_files(database: &Path, output: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt as _;
    let identity = |p: &Path| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    let resolved = |p: &Path| -> Option<PathBuf> {
        let parent = p
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Some(std::fs::canonicalize(parent).ok()?.join(p.file_name()?))
    };
    let out = resolved(output);
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = database.as_os_str().to_owned();
        name.push(suffix);
        let live = PathBuf::from(name);
        let same_file = identity(output).is_some() && identity(output) == identity(&live);
        if same_file || (out.is_some() && out == resolved(&live)) {
            bail!(
                "the output {} is the live database{}; choose another file",
                output.display(),
                if suffix.is_empty() {
                    ""
                } else {
                    "'s side file"
                }
            );
        }
    }
    Ok(())
}

/// Removes partial files of earlier backups to `target` that were cut off (killed) over an
/// hour ago.
fn remove_stale_partials(target: &Path) {
    let (Some(dir), Some(name)) = (target.parent(), target.file_name()) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!(".{}.partial-", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > std::time::Duration::from_secs(3600));
        if old && entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// A path beside `target` for a file being written.
fn partial_beside(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!(".{name}.partial-{}", uuid::Uuid::now_v7().simple()))
}

/// `medlabel backup --output FILE`: an online copy of the SQLite database (servers keep
/// running), checked, then given the name `output` (replacing it). PostgreSQL: an error
/// naming `pg_dump`.
pub fn backup(settings: &Settings, output: &Path) -> anyhow::Result<CopyReport> {
    let started = Instant::now();
    let database = sqlite_path(
        settings,
        "backup copies SQLite databases; back up PostgreSQL with its own tools: \
         pg_dump --format=custom --file=FILE \"$DATABASE_URL\" (restore with pg_restore)",
    )?;
    if !database.exists() {
        bail!("there is no database at {}", database.display());
    }
    refuse_live_files(&database, output)?;
    let directory = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !directory.is_dir() {
        bail!("there is no directory {}", directory.display());
    }
    remove_stale_partials(output);
    let partial = partial_beside(output);
    let copied = (|| {
        let mut conn = sqlite(&database)?;
        diesel::sql_query("VACUUM INTO ?")
            .bind::<Text, _>(partial.to_string_lossy().into_owned())
            .execute(&mut conn)
            .context("copying the database (VACUUM INTO)")?;
        // A copy of patient data: readable by its owner only, whatever the umask.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o600))?;
        }
        let tables = check_copy(&partial)?;
        File::open(&partial)?.sync_all()?;
        std::fs::rename(&partial, output)
            .with_context(|| format!("writing {}", output.display()))?;
        sync_dir(output)?;
        anyhow::Ok(tables)
    })();
    let tables = copied.inspect_err(|_| {
        let _ = std::fs::remove_file(&partial);
    })?;
    Ok(CopyReport {
        path: output.to_owned(),
        bytes: std::fs::metadata(output)?.len(),
        seconds: started.elapsed().as_secs_f64(),
        tables,
    })
}

/// `medlabel restore --input FILE`: replaces the SQLite database with a backup, after
/// checking it, and refuses while any server uses the database. The restored database is
/// migrated to this version. PostgreSQL: an error naming `pg_restore`.
pub fn restore(settings: &Settings, input: &Path) -> anyhow::Result<CopyReport> {
    let started = Instant::now();
    let database = sqlite_path(
        settings,
        "restore replaces SQLite databases; restore PostgreSQL with pg_restore \
         --clean --dbname=\"$DATABASE_URL\" FILE while no server runs",
    )?;
    check_copy(input).with_context(|| format!("{} is not a usable backup", input.display()))?;
    let Some(_lock) = flock(&database, true)? else {
        bail!(
            "a medlabel server is using {}; stop every instance before restoring",
            database.display()
        );
    };
    let partial = partial_beside(&database);
    let replaced = (|| {
        std::fs::copy(input, &partial).with_context(|| format!("copying {}", input.display()))?;
        File::open(&partial)?.sync_all()?;
        // The old database's write-ahead log must not be replayed into the restored file.
        for suffix in ["-wal", "-shm"] {
            let mut side = database.as_os_str().to_owned();
            side.push(suffix);
            match std::fs::remove_file(PathBuf::from(side)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
        }
        std::fs::rename(&partial, &database)?;
        sync_dir(&database)?;
        anyhow::Ok(())
    })();
    if let Err(err) = replaced {
        let _ = std::fs::remove_file(&partial);
        return Err(err);
    }
    let db = Db::connect_with(
        &settings.database_url.0,
        1,
        std::time::Duration::from_secs(10),
    )?;
    db.migrate()?;
    drop(db);
    Ok(CopyReport {
        path: database.clone(),
        bytes: std::fs::metadata(&database)?.len(),
        seconds: started.elapsed().as_secs_f64(),
        tables: check_copy(&database)?,
    })
}

/// An audit event for a command run by an operator: method `CLI`, path `medlabel <command>`,
/// no caller (`auth` `none`), the target user's id and name in `detail`.
pub fn command_event(command: &str, user: &users::User, started: Instant) -> NewEvent {
    let id = uuid::Uuid::now_v7().to_string();
    NewEvent {
        uuid: id.clone(),
        request_id: id,
        occurred_at: chrono::Utc::now().naive_utc(),
        user_id: None,
        auth: "none".into(),
        method: "CLI".into(),
        path: format!("medlabel {command}"),
        query: String::new(),
        status: 200,
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
        client_ip: "127.0.0.1".into(),
        user_agent: Some(format!("medlabel-cli/{}", env!("CARGO_PKG_VERSION"))),
        headers: "{}".into(),
        detail: Some(
            serde_json::json!({"target_user": {"id": user.uuid, "username": user.username}})
                .to_string(),
        ),
    }
}

fn open_db(settings: &Settings) -> anyhow::Result<Db> {
    let db = Db::connect_with(
        &settings.database_url.0,
        1,
        std::time::Duration::from_millis(settings.db_busy_timeout_ms),
    )?;
    db.migrate()?;
    Ok(db)
}

fn find_user(conn: &mut crate::db::DbConnection, username: &str) -> anyhow::Result<users::User> {
    users::find_by_username(conn, username)?
        .with_context(|| format!("there is no user {username:?}"))
}

/// `medlabel reset-password USER`: sets a new password (`new`, or a generated one, returned)
/// and ends the user's sessions, as `PATCH /users/{id} {"password"}` does; API tokens stay.
pub fn reset_password(
    settings: &Settings,
    username: &str,
    new: Option<String>,
) -> anyhow::Result<(users::User, String)> {
    let started = Instant::now();
    let secret = new.unwrap_or_else(password::generate_password);
    password::check_policy(&secret, username).map_err(|m| anyhow::anyhow!("password {m}"))?;
    let hash = password::hash_password(&secret)?;
    let db = open_db(settings)?;
    let mut conn = db.get()?;
    let user = find_user(&mut conn, username)?;
    let user = crate::db::write_transaction(&mut conn, |conn| {
        let user = users::update_user(
            conn,
            user.id,
            users::UserChanges {
                password_hash: Some(hash),
                ..Default::default()
            },
        )?;
        sessions::delete_user_sessions(conn, user.id)?;
        // A helpdesk reset is for a user who could not log in: failed logins no longer count.
        crate::auth::throttle::record_success(conn, &user.username)?;
        events::insert_event_in_change(conn, &command_event("reset-password", &user, started))?;
        diesel::QueryResult::Ok(user)
    })?;
    Ok((user, secret))
}

/// `medlabel deactivate-user USER`: deactivates the user and ends every session and API token
/// at once, as `PATCH /users/{id} {"is_active": false}` does.
pub fn deactivate_user(settings: &Settings, username: &str) -> anyhow::Result<users::User> {
    let started = Instant::now();
    let db = open_db(settings)?;
    let mut conn = db.get()?;
    let user = find_user(&mut conn, username)?;
    if !user.is_active {
        bail!("{username} is deactivated already");
    }
    let user = crate::db::write_transaction(&mut conn, |conn| {
        let user = users::update_user(
            conn,
            user.id,
            users::UserChanges {
                is_active: Some(false),
                ..Default::default()
            },
        )?;
        sessions::delete_user_sessions(conn, user.id)?;
        api_tokens::delete_all_user_tokens(conn, user.id)?;
        events::insert_event_in_change(conn, &command_event("deactivate-user", &user, started))?;
        diesel::QueryResult::Ok(user)
    })?;
    Ok(user)
}
