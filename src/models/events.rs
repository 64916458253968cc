//! `events`: one row per HTTP request under `/api/` and `/docs` (the audit log).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::{events, users};
use crate::db::DbConnection;

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = events)]
pub struct NewEvent {
    pub uuid: String,
    pub request_id: String,
    pub occurred_at: NaiveDateTime,
    pub user_id: Option<i64>,
    pub auth: String,
    pub method: String,
    pub path: String,
    pub query: String,
    pub status: i32,
    pub duration_ms: f64,
    pub client_ip: String,
    pub user_agent: Option<String>,
    pub headers: String,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = events)]
pub struct Event {
    pub id: i64,
    pub uuid: String,
    pub request_id: String,
    pub occurred_at: NaiveDateTime,
    pub user_id: Option<i64>,
    pub auth: String,
    pub method: String,
    pub path: String,
    pub query: String,
    pub status: i32,
    pub duration_ms: f64,
    pub client_ip: String,
    pub user_agent: Option<String>,
    pub headers: String,
    pub detail: Option<String>,
}

/// Writes a batch of events in one transaction (the audit writer's group commit). Batch
/// inserts need the concrete connection type: PostgreSQL gets multi-row inserts, SQLite one
/// cached prepared insert per row inside the same transaction.
pub fn insert_events(conn: &mut DbConnection, batch: &[NewEvent]) -> QueryResult<()> {
    match conn {
        DbConnection::Postgres(c) => c.transaction(|c| {
            for chunk in batch.chunks(1000) {
                diesel::insert_into(events::table)
                    .values(chunk)
                    .execute(c)?;
            }
            Ok(())
        }),
        DbConnection::Sqlite(c) => c.immediate_transaction(|c| {
            for event in batch {
                diesel::insert_into(events::table)
                    .values(event)
                    .execute(c)?;
            }
            Ok(())
        }),
    }
}

/// An event and its user's `(uuid, username)`, if it had one.
pub type EventWithUser = (Event, Option<(String, String)>);

/// What `GET /events` may be narrowed to.
#[derive(Debug, Default, Clone)]
pub struct EventFilter {
    pub user_id: Option<i64>,
    pub method: Option<String>,
    pub path_prefix: Option<String>,
    pub status: Option<i32>,
    pub since: Option<NaiveDateTime>,
    pub until: Option<NaiveDateTime>,
}

/// A page of events, newest first, with the username of each event's user.
pub fn list_events(
    conn: &mut DbConnection,
    filter: &EventFilter,
    before: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<EventWithUser>> {
    let mut query = events::table
        .left_join(users::table)
        .select((
            Event::as_select(),
            (users::uuid, users::username).nullable(),
        ))
        .order(events::uuid.desc())
        .limit(limit)
        .into_boxed();
    if let Some(user) = filter.user_id {
        query = query.filter(events::user_id.eq(user));
    }
    if let Some(method) = &filter.method {
        query = query.filter(events::method.eq(method.clone()));
    }
    if let Some(prefix) = &filter.path_prefix {
        // A range on the (path, uuid) index rather than LIKE.
        query = query
            .filter(events::path.ge(prefix.clone()))
            .filter(events::path.lt(format!("{prefix}\u{10FFFF}")));
    }
    if let Some(status) = filter.status {
        query = query.filter(events::status.eq(status));
    }
    if let Some(since) = filter.since {
        query = query.filter(events::occurred_at.ge(since));
    }
    if let Some(until) = filter.until {
        query = query.filter(events::occurred_at.lt(until));
    }
    if let Some(before) = before {
        query = query.filter(events::uuid.lt(before.to_owned()));
    }
    query.load(conn)
}
