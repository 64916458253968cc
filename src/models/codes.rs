//! `code_systems` and `codes`: ICD-9-CM, ICD-10-CM and SNOMED CT codes, their bulk import and
//! their full-text search (FTS5 on SQLite, tsvector on PostgreSQL, behind one function).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use super::new_uuid;
use crate::db::schema::{code_systems, codes, index_generations};
use crate::db::{now, DbConnection};

#[derive(Debug, Clone, Queryable, Selectable, QueryableByName)]
#[diesel(table_name = codes)]
pub struct Code {
    pub id: i64,
    pub uuid: String,
    pub system_id: String,
    pub code: String,
    pub description: String,
    pub billable: bool,
    pub is_active: bool,
    pub version: i32,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = codes)]
pub struct NewCode {
    pub uuid: String,
    pub system_id: String,
    pub code: String,
    pub description: String,
    pub billable: bool,
    pub is_active: bool,
    pub version: i32,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl NewCode {
    pub fn new(system: &str, code: &str, description: &str, billable: bool) -> Self {
        let at = now();
        NewCode {
            uuid: new_uuid(),
            system_id: system.to_owned(),
            code: code.to_owned(),
            description: description.to_owned(),
            billable,
            is_active: true,
            version: 1,
            created_at: at,
            updated_at: at,
        }
    }
}

/// The code systems medlabel knows: (id, name, version).
pub const SYSTEMS: [(&str, &str, &str); 3] = [
    ("icd-9", "ICD-9-CM", "v32 (FY2015, final)"),
    ("icd-10", "ICD-10-CM", "FY2025"),
    ("snomed-ct", "SNOMED CT", "codes added by users"),
];

/// Registers the code systems that are missing (idempotent; data, so never in a migration).
pub fn ensure_code_systems(conn: &mut DbConnection) -> QueryResult<()> {
    let existing: Vec<String> = code_systems::table.select(code_systems::id).load(conn)?;
    for (id, name, version) in SYSTEMS {
        if !existing.iter().any(|e| e == id) {
            diesel::insert_into(code_systems::table)
                .values((
                    code_systems::id.eq(id),
                    code_systems::name.eq(name),
                    code_systems::version.eq(version),
                ))
                .execute(conn)?;
        }
    }
    Ok(())
}

/// Each system with its number of active codes.
pub fn list_systems(conn: &mut DbConnection) -> QueryResult<Vec<(String, String, String, i64)>> {
    let systems: Vec<(String, String, String)> = code_systems::table
        .order(code_systems::id)
        .select((code_systems::id, code_systems::name, code_systems::version))
        .load(conn)?;
    let counts: Vec<(String, i64)> = codes::table
        .filter(codes::is_active)
        .group_by(codes::system_id)
        .select((codes::system_id, diesel::dsl::count_star()))
        .load(conn)?;
    Ok(systems
        .into_iter()
        .map(|(id, name, version)| {
            let n = counts
                .iter()
                .find(|(s, _)| *s == id)
                .map(|(_, n)| *n)
                .unwrap_or(0);
            (id, name, version, n)
        })
        .collect())
}

pub fn count_codes(conn: &mut DbConnection, system: &str) -> QueryResult<i64> {
    codes::table
        .filter(codes::system_id.eq(system))
        .count()
        .get_result(conn)
}

pub fn find_code(conn: &mut DbConnection, system: &str, code: &str) -> QueryResult<Code> {
    codes::table
        .filter(codes::system_id.eq(system))
        .filter(codes::code.eq(code))
        .select(Code::as_select())
        .first(conn)
}

pub fn find_codes_by_ids(conn: &mut DbConnection, ids: &[i64]) -> QueryResult<Vec<Code>> {
    codes::table
        .filter(codes::id.eq_any(ids))
        .select(Code::as_select())
        .load(conn)
}

/// The generation of the code search index: how many changes to the codes were committed.
/// Every instance polls it ([`crate::search`] is rebuilt when it moved).
pub fn generation(conn: &mut DbConnection) -> QueryResult<i64> {
    index_generations::table
        .find("codes")
        .select(index_generations::generation)
        .first(conn)
}

/// Counts a change to the codes; call it in the change's own transaction.
fn bump_generation(conn: &mut DbConnection) -> QueryResult<()> {
    diesel::update(index_generations::table.find("codes"))
        .set(index_generations::generation.eq(index_generations::generation + 1))
        .execute(conn)?;
    Ok(())
}

/// (id, version) of every code, active or not: what the search index compares with its own.
pub fn all_versions(conn: &mut DbConnection) -> QueryResult<Vec<(i64, i32)>> {
    codes::table.select((codes::id, codes::version)).load(conn)
}

/// Every code, active or not, for building the search index.
pub fn all_codes(conn: &mut DbConnection) -> QueryResult<Vec<Code>> {
    codes::table.select(Code::as_select()).load(conn)
}

pub fn insert_code(conn: &mut DbConnection, new: &NewCode) -> QueryResult<Code> {
    diesel::insert_into(codes::table)
        .values(new.clone())
        .execute(conn)?;
    bump_generation(conn)?;
    codes::table
        .filter(codes::uuid.eq(&new.uuid))
        .select(Code::as_select())
        .first(conn)
}

/// What an update of a code changes (`None`: unchanged).
#[derive(Debug, Clone, Copy, Default)]
pub struct CodeChanges<'a> {
    pub description: Option<&'a str>,
    pub is_active: Option<bool>,
}

/// Applies `changes` when the row is still at `version` (optimistic concurrency); returns the
/// new row, or `None` when another change came first.
pub fn update_code(
    conn: &mut DbConnection,
    id: i64,
    version: i32,
    changes: &CodeChanges<'_>,
) -> QueryResult<Option<Code>> {
    let CodeChanges {
        description,
        is_active,
    } = *changes;
    let target = codes::table
        .filter(codes::id.eq(id))
        .filter(codes::version.eq(version));
    let updated = diesel::update(target)
        .set((
            description.map(|d| codes::description.eq(d.to_owned())),
            is_active.map(|a| codes::is_active.eq(a)),
            codes::version.eq(version + 1),
            codes::updated_at.eq(now()),
        ))
        .execute(conn)?;
    if updated == 0 {
        return Ok(None);
    }
    bump_generation(conn)?;
    codes::table
        .find(id)
        .select(Code::as_select())
        .first(conn)
        .map(Some)
}

/// A page of codes in keyset order, optionally one system's and with a code prefix.
pub fn list_codes(
    conn: &mut DbConnection,
    system: Option<&str>,
    prefix: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<Code>> {
    let mut query = codes::table
        .filter(codes::is_active)
        .select(Code::as_select())
        .order(codes::uuid.asc())
        .limit(limit)
        .into_boxed();
    if let Some(system) = system {
        query = query.filter(codes::system_id.eq(system.to_owned()));
    }
    if let Some(prefix) = prefix {
        // A range on the (system, code) index rather than LIKE (which SQLite cannot index).
        query = query
            .filter(codes::code.ge(prefix.to_owned()))
            .filter(codes::code.lt(prefix_end(prefix)));
    }
    if let Some(after) = after {
        query = query.filter(codes::uuid.gt(after.to_owned()));
    }
    query.load(conn)
}

/// The smallest string greater than every string starting with `prefix`.
fn prefix_end(prefix: &str) -> String {
    format!("{prefix}\u{10FFFF}")
}

/// Full-text search over code and description, best matches first: an exact code first, then
/// codes starting with the query, then by text rank.
pub fn search_codes(
    conn: &mut DbConnection,
    system: Option<&str>,
    q: &str,
    offset: i64,
    limit: i64,
) -> QueryResult<Vec<Code>> {
    let terms: Vec<String> = q
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .take(16)
        .map(str::to_lowercase)
        .collect();
    if terms.is_empty() {
        return Ok(Vec::new());
    }
    let exact = q.trim().to_uppercase();
    let system = system.unwrap_or("").to_owned();
    match conn {
        DbConnection::Sqlite(c) => {
            // Every term as a quoted prefix query; FTS5 syntax characters never reach MATCH.
            let fts: Vec<String> = terms.iter().map(|t| format!("\"{t}\"*")).collect();
            diesel::sql_query(
                "SELECT c.* FROM codes_fts f JOIN codes c ON c.id = f.rowid \
                 WHERE codes_fts MATCH ? AND c.is_active AND (? = '' OR c.system_id = ?) \
                 ORDER BY (c.code = ?) DESC, (substr(c.code, 1, length(?)) = ?) DESC, bm25(codes_fts), c.code \
                 LIMIT ? OFFSET ?",
            )
            .bind::<Text, _>(fts.join(" "))
            .bind::<Text, _>(&system)
            .bind::<Text, _>(&system)
            .bind::<Text, _>(&exact)
            .bind::<Text, _>(&exact)
            .bind::<Text, _>(&exact)
            .bind::<BigInt, _>(limit)
            .bind::<BigInt, _>(offset)
            .load::<Code>(c)
        }
        DbConnection::Postgres(c) => {
            let tsquery: Vec<String> = terms.iter().map(|t| format!("{t}:*")).collect();
            diesel::sql_query(
                "SELECT c.* FROM codes c \
                 WHERE (to_tsvector('english', c.code || ' ' || c.description) @@ to_tsquery('english', $1) \
                        OR c.code LIKE $3 || '%') \
                   AND c.is_active AND ($2 = '' OR c.system_id = $2) \
                 ORDER BY (c.code = $3) DESC, (c.code LIKE $3 || '%') DESC, \
                   ts_rank(to_tsvector('english', c.code || ' ' || c.description), to_tsquery('english', $1), 2) DESC, c.code \
                 LIMIT $4 OFFSET $5",
            )
            .bind::<Text, _>(tsquery.join(" & "))
            .bind::<Text, _>(&system)
            .bind::<Text, _>(&exact)
            .bind::<BigInt, _>(limit)
            .bind::<BigInt, _>(offset)
            .load::<Code>(c)
        }
    }
}

/// Inserts the codes that are not there yet, in large batches inside one transaction; returns
/// how many were added. Batch inserts and `ON CONFLICT` need the concrete connection type, so
/// this is the one place that branches on the backend for writes.
pub fn import_codes(
    conn: &mut DbConnection,
    rows: &[NewCode],
    mut progress: impl FnMut(usize),
) -> QueryResult<usize> {
    let mut added = 0;
    match conn {
        // SQLite: one cached prepared statement per row inside one transaction is as fast as
        // a multi-row insert (diesel has no batch insert with ON CONFLICT for SQLite).
        DbConnection::Sqlite(c) => c.transaction(|c| {
            for chunk in rows.chunks(2000) {
                for row in chunk {
                    added += diesel::insert_into(codes::table)
                        .values(row)
                        .on_conflict_do_nothing()
                        .execute(c)?;
                }
                progress(chunk.len());
            }
            Ok::<_, diesel::result::Error>(())
        })?,
        DbConnection::Postgres(c) => c.transaction(|c| {
            for chunk in rows.chunks(5000) {
                added += diesel::insert_into(codes::table)
                    .values(chunk)
                    .on_conflict_do_nothing()
                    .execute(c)?;
                progress(chunk.len());
            }
            Ok::<_, diesel::result::Error>(())
        })?,
    }
    // After the import's commit: a poll in between sees the old generation once more.
    if added > 0 {
        bump_generation(conn)?;
    }
    Ok(added)
}
