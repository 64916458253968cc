//! `history`: append-only JSON snapshots of every change (the database refuses UPDATE and
//! DELETE on the table).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::new_uuid;
use crate::db::schema::{annotations, history, images, users};
use crate::db::{now, DbConnection};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = history)]
pub struct HistoryRow {
    pub id: i64,
    pub uuid: String,
    pub entity_type: String,
    pub entity_id: String,
    pub action: String,
    pub schema_version: i32,
    pub snapshot: String,
    pub changed_by: i64,
    pub changed_at: NaiveDateTime,
    pub request_id: String,
}

/// An entry and its author's `(uuid, username)`.
pub type HistoryWithUser = (HistoryRow, (String, String));

#[allow(clippy::too_many_arguments)]
pub fn insert_history(
    conn: &mut DbConnection,
    entity_type: &str,
    entity_id: &str,
    action: &str,
    schema_version: i32,
    snapshot: &str,
    changed_by: i64,
    request_id: &str,
) -> QueryResult<()> {
    diesel::insert_into(history::table)
        .values((
            history::uuid.eq(new_uuid()),
            history::entity_type.eq(entity_type),
            history::entity_id.eq(entity_id),
            history::action.eq(action),
            history::schema_version.eq(schema_version),
            history::snapshot.eq(snapshot),
            history::changed_by.eq(changed_by),
            history::changed_at.eq(now()),
            history::request_id.eq(request_id),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn find_entry(conn: &mut DbConnection, uuid: &str) -> QueryResult<HistoryRow> {
    history::table
        .filter(history::uuid.eq(uuid))
        .select(HistoryRow::as_select())
        .first(conn)
}

/// What `GET /history` may be narrowed to, and what the caller may see.
#[derive(Debug, Default, Clone)]
pub struct HistoryFilter {
    pub entity_type: Option<String>,
    pub entity_id: Option<String>,
    pub changed_by: Option<i64>,
    pub since: Option<NaiveDateTime>,
    pub until: Option<NaiveDateTime>,
    /// A doctor's view: images, and annotations, only on images this user uploaded.
    pub own_images_of: Option<i64>,
}

/// One entity's entries, oldest first.
pub fn entity_history(
    conn: &mut DbConnection,
    entity_type: &str,
    entity_id: &str,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<HistoryWithUser>> {
    let mut query = history::table
        .inner_join(users::table)
        .filter(history::entity_type.eq(entity_type.to_owned()))
        .filter(history::entity_id.eq(entity_id.to_owned()))
        .select((HistoryRow::as_select(), (users::uuid, users::username)))
        .order(history::uuid.asc())
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(history::uuid.gt(after.to_owned()));
    }
    query.load(conn)
}

/// Entries across entities, newest first.
pub fn list_history(
    conn: &mut DbConnection,
    filter: &HistoryFilter,
    before: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<HistoryWithUser>> {
    let mut query = history::table
        .inner_join(users::table)
        .select((HistoryRow::as_select(), (users::uuid, users::username)))
        .order(history::uuid.desc())
        .limit(limit)
        .into_boxed();
    if let Some(t) = &filter.entity_type {
        query = query.filter(history::entity_type.eq(t.clone()));
    }
    if let Some(id) = &filter.entity_id {
        query = query.filter(history::entity_id.eq(id.clone()));
    }
    if let Some(user) = filter.changed_by {
        query = query.filter(history::changed_by.eq(user));
    }
    if let Some(since) = filter.since {
        query = query.filter(history::changed_at.ge(since));
    }
    if let Some(until) = filter.until {
        query = query.filter(history::changed_at.lt(until));
    }
    if let Some(owner) = filter.own_images_of {
        let own = images::table
            .filter(images::uploaded_by.eq(owner))
            .select(images::uuid);
        let own_annotations = annotations::table
            .inner_join(images::table)
            .filter(images::uploaded_by.eq(owner))
            .select(annotations::uuid);
        query = query.filter(
            history::entity_type
                .ne("image")
                .and(history::entity_type.ne("annotation"))
                .or(history::entity_type
                    .eq("image")
                    .and(history::entity_id.eq_any(own)))
                .or(history::entity_type
                    .eq("annotation")
                    .and(history::entity_id.eq_any(own_annotations))),
        );
    }
    if let Some(before) = before {
        query = query.filter(history::uuid.lt(before.to_owned()));
    }
    query.load(conn)
}
