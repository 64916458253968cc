//! Embedded migrations per backend (`migrations/sqlite`, `migrations/postgres`, the same
//! version names), run by `medlabel migrate` and at start, and the data fix-ups that need Rust.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use super::{schema, DbConnection};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Applies pending migrations of the connection's backend. On PostgreSQL an advisory lock keeps
/// instances that start together from migrating at the same time.
pub fn run_migrations(conn: &mut DbConnection) -> anyhow::Result<Vec<String>> {
    let applied = match conn {
        DbConnection::Postgres(c) => {
            c.batch_execute("SELECT pg_advisory_lock(7277016)")?;
            let result = c.run_pending_migrations(POSTGRES_MIGRATIONS).map(versions);
            c.batch_execute("SELECT pg_advisory_unlock(7277016)")?;
            result
        }
        DbConnection::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(versions),
    };
    let applied = applied.map_err(|e| anyhow::anyhow!("migration failed: {e}"))?;
    fill_name_keys(conn)?;
    Ok(applied)
}

/// Gives rows written before the folded name keys existed their keys (computed in Rust, so
/// no migration can). A row whose key another row already holds (two names that differed only
/// in case or normalisation) keeps none and is logged: it stays readable, an admin renames it.
pub fn fill_name_keys(conn: &mut DbConnection) -> anyhow::Result<()> {
    use schema::{diseases, labels, users};
    fn fill<F>(conn: &mut DbConnection, table: &str, rows: Vec<(i64, String)>, mut set: F)
    where
        F: FnMut(&mut DbConnection, i64, String) -> QueryResult<usize>,
    {
        for (id, name) in rows {
            if let Err(err) = set(conn, id, crate::text::fold_key(&name)) {
                tracing::warn!(table, id, error = %err, "name key not set (a name equal ignoring case exists); rename this row");
            }
        }
    }
    let rows = users::table
        .filter(users::username_key.is_null())
        .select((users::id, users::username))
        .load(conn)?;
    fill(conn, "users", rows, |conn, id, key| {
        diesel::update(users::table.find(id))
            .set(users::username_key.eq(key))
            .execute(conn)
    });
    let rows = labels::table
        .filter(labels::name_key.is_null())
        .select((labels::id, labels::name))
        .load(conn)?;
    fill(conn, "labels", rows, |conn, id, key| {
        diesel::update(labels::table.find(id))
            .set(labels::name_key.eq(key))
            .execute(conn)
    });
    let rows = diseases::table
        .filter(diseases::name_key.is_null())
        .select((diseases::id, diseases::name))
        .load(conn)?;
    fill(conn, "diseases", rows, |conn, id, key| {
        diesel::update(diseases::table.find(id))
            .set(diseases::name_key.eq(key))
            .execute(conn)
    });
    Ok(())
}

/// Reverts every applied migration (used by the migration round-trip test).
pub fn revert_all_migrations(conn: &mut DbConnection) -> anyhow::Result<Vec<String>> {
    let reverted = match conn {
        DbConnection::Postgres(c) => c.revert_all_migrations(POSTGRES_MIGRATIONS).map(versions),
        DbConnection::Sqlite(c) => c.revert_all_migrations(SQLITE_MIGRATIONS).map(versions),
    };
    reverted.map_err(|e| anyhow::anyhow!("reverting migrations failed: {e}"))
}

fn versions(v: Vec<diesel::migration::MigrationVersion<'_>>) -> Vec<String> {
    v.into_iter().map(|v| v.to_string()).collect()
}
