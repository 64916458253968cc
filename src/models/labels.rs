//! `labels` and the diseases they stand for (`label_diseases`).

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::diseases::Disease;
use super::{like_pattern, new_uuid};
use crate::db::schema::{diseases, label_diseases, labels};
use crate::db::{now, DbConnection};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = labels)]
pub struct Label {
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

pub fn insert_label(
    conn: &mut DbConnection,
    name: &str,
    description: Option<&str>,
    created_by: i64,
) -> QueryResult<Label> {
    let (uuid, at) = (new_uuid(), now());
    diesel::insert_into(labels::table)
        .values((
            labels::uuid.eq(&uuid),
            labels::name.eq(crate::text::nfc(name)),
            labels::name_key.eq(crate::text::fold_key(name)),
            labels::description.eq(description.map(crate::text::nfc)),
            labels::created_by.eq(created_by),
            labels::is_active.eq(true),
            labels::version.eq(1),
            labels::created_at.eq(at),
            labels::updated_at.eq(at),
        ))
        .execute(conn)?;
    find_label(conn, &uuid)
}

pub fn find_label(conn: &mut DbConnection, uuid: &str) -> QueryResult<Label> {
    labels::table
        .filter(labels::uuid.eq(uuid))
        .select(Label::as_select())
        .first(conn)
}

pub fn find_labels_by_ids(conn: &mut DbConnection, ids: &[i64]) -> QueryResult<Vec<Label>> {
    labels::table
        .filter(labels::id.eq_any(ids))
        .select(Label::as_select())
        .load(conn)
}

/// Whether an active label other than `except` has this name, ignoring case.
pub fn name_taken(conn: &mut DbConnection, name: &str, except: Option<i64>) -> QueryResult<bool> {
    let mut query = labels::table
        .filter(labels::name_key.eq(crate::text::fold_key(name)))
        .filter(labels::is_active)
        .select(labels::id)
        .into_boxed();
    if let Some(id) = except {
        query = query.filter(labels::id.ne(id));
    }
    Ok(query.first::<i64>(conn).optional()?.is_some())
}

/// Applies a change when the row is still at `version`; `None` when another change came first.
pub fn update_label(
    conn: &mut DbConnection,
    id: i64,
    version: i32,
    name: Option<&str>,
    description: Option<Option<&str>>,
    is_active: Option<bool>,
) -> QueryResult<Option<Label>> {
    let target = labels::table
        .filter(labels::id.eq(id))
        .filter(labels::version.eq(version));
    let updated = diesel::update(target)
        .set((
            name.map(|n| labels::name.eq(crate::text::nfc(n))),
            name.map(|n| labels::name_key.eq(crate::text::fold_key(n))),
            description.map(|d| labels::description.eq(d.map(crate::text::nfc))),
            is_active.map(|a| labels::is_active.eq(a)),
            labels::version.eq(version + 1),
            labels::updated_at.eq(now()),
        ))
        .execute(conn)?;
    if updated == 0 {
        return Ok(None);
    }
    labels::table
        .find(id)
        .select(Label::as_select())
        .first(conn)
        .map(Some)
}

pub fn set_label_diseases(
    conn: &mut DbConnection,
    label_id: i64,
    disease_ids: &[i64],
) -> QueryResult<()> {
    diesel::delete(label_diseases::table.filter(label_diseases::label_id.eq(label_id)))
        .execute(conn)?;
    for disease_id in disease_ids {
        diesel::insert_into(label_diseases::table)
            .values((
                label_diseases::label_id.eq(label_id),
                label_diseases::disease_id.eq(disease_id),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// The diseases of each label in `ids`, in one query.
pub fn diseases_of(
    conn: &mut DbConnection,
    ids: &[i64],
) -> QueryResult<HashMap<i64, Vec<Disease>>> {
    let rows: Vec<(i64, Disease)> = label_diseases::table
        .inner_join(diseases::table)
        .filter(label_diseases::label_id.eq_any(ids))
        .order(diseases::name)
        .select((label_diseases::label_id, Disease::as_select()))
        .load(conn)?;
    let mut map: HashMap<i64, Vec<Disease>> = HashMap::new();
    for (id, disease) in rows {
        map.entry(id).or_default().push(disease);
    }
    Ok(map)
}

/// A page of active labels whose name contains `q` (ignoring case).
pub fn list_labels(
    conn: &mut DbConnection,
    q: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<Label>> {
    let mut query = labels::table
        .filter(labels::is_active)
        .select(Label::as_select())
        .order(labels::uuid.asc())
        .limit(limit)
        .into_boxed();
    if let Some(q) = q {
        query = query.filter(labels::name_key.like(like_pattern(q)).escape('\\'));
    }
    if let Some(after) = after {
        query = query.filter(labels::uuid.gt(after.to_owned()));
    }
    query.load(conn)
}
