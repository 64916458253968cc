//! `diseases` and their codes (`disease_codes`).

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::codes::Code;
use super::{like_pattern, new_uuid};
use crate::db::schema::{codes, disease_codes, diseases};
use crate::db::{now, DbConnection};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = diseases)]
pub struct Disease {
    pub id: i64,
    pub uuid: String,
    pub name: String,
    pub description: Option<String>,
    pub created_by: i64,
    pub is_active: bool,
    pub version: i32,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

pub fn insert_disease(
    conn: &mut DbConnection,
    name: &str,
    description: Option<&str>,
    created_by: i64,
) -> QueryResult<Disease> {
    let (uuid, at) = (new_uuid(), now());
    diesel::insert_into(diseases::table)
        .values((
            diseases::uuid.eq(&uuid),
            diseases::name.eq(crate::text::nfc(name)),
            diseases::name_key.eq(crate::text::fold_key(name)),
            diseases::description.eq(description.map(crate::text::nfc)),
            diseases::created_by.eq(created_by),
            diseases::is_active.eq(true),
            diseases::version.eq(1),
            diseases::created_at.eq(at),
            diseases::updated_at.eq(at),
        ))
        .execute(conn)?;
    find_disease(conn, &uuid)
}

pub fn find_disease(conn: &mut DbConnection, uuid: &str) -> QueryResult<Disease> {
    diseases::table
        .filter(diseases::uuid.eq(uuid))
        .select(Disease::as_select())
        .first(conn)
}

pub fn find_diseases(conn: &mut DbConnection, uuids: &[String]) -> QueryResult<Vec<Disease>> {
    diseases::table
        .filter(diseases::uuid.eq_any(uuids))
        .select(Disease::as_select())
        .load(conn)
}

pub fn find_diseases_by_ids(conn: &mut DbConnection, ids: &[i64]) -> QueryResult<Vec<Disease>> {
    diseases::table
        .filter(diseases::id.eq_any(ids))
        .select(Disease::as_select())
        .load(conn)
}

/// Whether an active disease other than `except` has this name, ignoring case.
pub fn name_taken(conn: &mut DbConnection, name: &str, except: Option<i64>) -> QueryResult<bool> {
    let mut query = diseases::table
        .filter(diseases::name_key.eq(crate::text::fold_key(name)))
        .filter(diseases::is_active)
        .select(diseases::id)
        .into_boxed();
    if let Some(id) = except {
        query = query.filter(diseases::id.ne(id));
    }
    Ok(query.first::<i64>(conn).optional()?.is_some())
}

/// Applies a change when the row is still at `version`; `None` when another change came first.
pub fn update_disease(
    conn: &mut DbConnection,
    id: i64,
    version: i32,
    name: Option<&str>,
    description: Option<Option<&str>>,
    is_active: Option<bool>,
) -> QueryResult<Option<Disease>> {
    let target = diseases::table
        .filter(diseases::id.eq(id))
        .filter(diseases::version.eq(version));
    let updated = diesel::update(target)
        .set((
            name.map(|n| diseases::name.eq(crate::text::nfc(n))),
            name.map(|n| diseases::name_key.eq(crate::text::fold_key(n))),
            description.map(|d| diseases::description.eq(d.map(crate::text::nfc))),
            is_active.map(|a| diseases::is_active.eq(a)),
            diseases::version.eq(version + 1),
            diseases::updated_at.eq(now()),
        ))
        .execute(conn)?;
    if updated == 0 {
        return Ok(None);
    }
    diseases::table
        .find(id)
        .select(Disease::as_select())
        .first(conn)
        .map(Some)
}

pub fn set_disease_codes(
    conn: &mut DbConnection,
    disease_id: i64,
    code_ids: &[i64],
) -> QueryResult<()> {
    diesel::delete(disease_codes::table.filter(disease_codes::disease_id.eq(disease_id)))
        .execute(conn)?;
    for code_id in code_ids {
        diesel::insert_into(disease_codes::table)
            .values((
                disease_codes::disease_id.eq(disease_id),
                disease_codes::code_id.eq(code_id),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// The codes of each disease in `ids`, in one query.
pub fn codes_of(conn: &mut DbConnection, ids: &[i64]) -> QueryResult<HashMap<i64, Vec<Code>>> {
    let rows: Vec<(i64, Code)> = disease_codes::table
        .inner_join(codes::table)
        .filter(disease_codes::disease_id.eq_any(ids))
        .order((codes::system_id, codes::code))
        .select((disease_codes::disease_id, Code::as_select()))
        .load(conn)?;
    let mut map: HashMap<i64, Vec<Code>> = HashMap::new();
    for (id, code) in rows {
        map.entry(id).or_default().push(code);
    }
    Ok(map)
}

/// A page of active diseases: name containing `q` (ignoring case), linked to `code`.
pub fn list_diseases(
    conn: &mut DbConnection,
    q: Option<&str>,
    code_id: Option<i64>,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<Disease>> {
    let mut query = diseases::table
        .filter(diseases::is_active)
        .select(Disease::as_select())
        .order(diseases::uuid.asc())
        .limit(limit)
        .into_boxed();
    if let Some(q) = q {
        query = query.filter(diseases::name_key.like(like_pattern(q)).escape('\\'));
    }
    if let Some(code_id) = code_id {
        let linked = disease_codes::table
            .filter(disease_codes::code_id.eq(code_id))
            .select(disease_codes::disease_id);
        query = query.filter(diseases::id.eq_any(linked));
    }
    if let Some(after) = after {
        query = query.filter(diseases::uuid.gt(after.to_owned()));
    }
    query.load(conn)
}
