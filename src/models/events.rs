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
/// cached prepared insert per row inside the same transaction. An event whose id is stored
/// already (written inside its request's change, see [`insert_event_in_change`]) is skipped.
pub fn insert_events(conn: &mut DbConnection, batch: &[NewEvent]) -> QueryResult<()> {
    match conn {
        DbConnection::Postgres(c) => c.transaction(|c| {
            for chunk in batch.chunks(1000) {
                diesel::insert_into(events::table)
                    .values(chunk)
                    .on_conflict(events::uuid)
                    .do_nothing()
                    .execute(c)?;
            }
            Ok(())
        }),
        DbConnection::Sqlite(c) => {
            let _writer = crate::db::sqlite_writer();
            c.immediate_transaction(|c| {
                for event in batch {
                    diesel::insert_or_ignore_into(events::table)
                        .values(event)
                        .execute(c)?;
                }
                Ok(())
            })
        }
    }
}

/// Writes one event inside the caller's transaction (a change and the event of the request
/// that made it commit together), skipping it when its id is stored already.
pub fn insert_event_in_change(conn: &mut DbConnection, event: &NewEvent) -> QueryResult<()> {
    match conn {
        DbConnection::Postgres(c) => diesel::insert_into(events::table)
            .values(event)
            .on_conflict(events::uuid)
            .do_nothing()
            .execute(c)
            .map(drop),
        DbConnection::Sqlite(c) => diesel::insert_or_ignore_into(events::table)
            .values(event)
            .execute(c)
            .map(drop),
    }
}

/// An event and its user's `(uuid, username)`, if it had one.
pub type EventWithUser = (Event, Option<(String, String)>);

diesel::define_sql_function!(
    /// SQL `substr(text, start, length)` (characters, 1-based), on both backends.
    fn substr(x: diesel::sql_types::Text, start: diesel::sql_types::Integer, length: diesel::sql_types::Integer) -> diesel::sql_types::Text
);

/// The smallest UUID v7 (as text) made at or after `at`: every v7 made before `at` sorts below.
pub fn v7_floor(at: NaiveDateTime) -> String {
    let ms = at.and_utc().timestamp_millis().max(0) as u64;
    format!(
        "{:08x}-{:04x}-0000-0000-000000000000",
        ms >> 16,
        ms & 0xffff
    )
}

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
        // Tested row by row while walking the uuid index newest first: the first page of a
        // busy prefix comes at once (a range on the path index would sort every match: 3 s at
        // 10M events). A prefix nobody called walks back to the time bounds, if any.
        let length = prefix.chars().count() as i32;
        query = query.filter(substr(events::path, 1, length).eq(prefix.clone()));
    }
    if let Some(status) = filter.status {
        query = query.filter(events::status.eq(status));
    }
    // An event's id is a UUID v7 made no later than the event's time, so time bounds are also
    // bounds on the id: the uuid index serves both the range and the order (0.1 ms instead of
    // 350 ms for an hour's window in 10M events). Requests last less than a day. A v7 id has
    // millisecond precision, so `until` bounds it rounded up to the millisecond (an event in
    // the millisecond `until` falls inside may still lie before it).
    if let Some(since) = filter.since {
        query = query
            .filter(events::occurred_at.ge(since))
            .filter(events::uuid.ge(v7_floor(since - chrono::TimeDelta::days(1))));
    }
    if let Some(until) = filter.until {
        query = query
            .filter(events::occurred_at.lt(until))
            .filter(events::uuid.lt(v7_floor(crate::db::ceil_to(
                until,
                chrono::TimeDelta::milliseconds(1),
            ))));
    }
    if let Some(before) = before {
        query = query.filter(events::uuid.lt(before.to_owned()));
    }
    query.load(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v7_floors_order_like_the_uuids_they_bound() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-21T09:30:00.123Z")
            .unwrap()
            .naive_utc();
        let made_then = uuid::Uuid::new_v7(uuid::Timestamp::from_unix(
            uuid::NoContext,
            at.and_utc().timestamp() as u64,
            123_000_000,
        ))
        .to_string();
        let made_before = uuid::Uuid::new_v7(uuid::Timestamp::from_unix(
            uuid::NoContext,
            at.and_utc().timestamp() as u64,
            122_000_000,
        ))
        .to_string();
        assert!(made_before < v7_floor(at));
        assert!(made_then >= v7_floor(at));
    }
}
