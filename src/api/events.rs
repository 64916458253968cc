//! The audit log (admin): `GET /events`, newest first, as JSON pages or streamed as CSV.

use actix_web::http::header;
use actix_web::mime;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::NaiveDateTime;
use futures_util::stream;
use serde::{Deserialize, Serialize};

use super::pagination::{Page, PageRequest};
use crate::auth::{Access, Role};
use crate::error::ApiError;
use crate::models::events::{self, Event, EventFilter};
use crate::models::users;
use crate::state::AppState;
use crate::views::{rfc3339, UserRef};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/events").route(
            web::get()
                .to(list_events)
                .wrap(Access::roles(&[Role::Admin])),
        ),
    );
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventResponse {
    pub id: String,
    pub request_id: String,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-21T09:30:00.123Z")]
    pub occurred_at: NaiveDateTime,
    pub user: Option<UserRef>,
    pub auth: String,
    pub method: String,
    pub path: String,
    pub query: String,
    pub status: i32,
    pub duration_ms: f64,
    pub client_ip: String,
    pub user_agent: Option<String>,
    #[schema(value_type = Object)]
    pub headers: serde_json::Value,
    #[schema(value_type = Option<Object>)]
    pub detail: Option<serde_json::Value>,
}

impl EventResponse {
    fn new(event: Event, user: Option<(String, String)>) -> Self {
        EventResponse {
            id: event.uuid,
            request_id: event.request_id,
            occurred_at: event.occurred_at,
            user: user.map(|(id, username)| UserRef { id, username }),
            auth: event.auth,
            method: event.method,
            path: event.path,
            query: event.query,
            status: event.status,
            duration_ms: event.duration_ms,
            client_ip: event.client_ip,
            user_agent: event.user_agent,
            headers: serde_json::from_str(&event.headers).unwrap_or_default(),
            detail: event.detail.and_then(|d| serde_json::from_str(&d).ok()),
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListEventsQuery {
    #[param(value_type = Option<String>, format = Uuid)]
    pub user_id: Option<String>,
    #[param(value_type = Option<String>, pattern = "^[A-Za-z]+$")]
    pub method: Option<String>,
    pub path_prefix: Option<String>,
    #[param(value_type = Option<i32>, minimum = 100, maximum = 599)]
    pub status: Option<String>,
    /// Inclusive lower time bound

    #[param(value_type = Option<String>, format = DateTime)]
    pub since: Option<String>,
    /// Exclusive upper time bound

    #[param(value_type = Option<String>, format = DateTime)]
    pub until: Option<String>,
    /// Page size (default 50)

    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
    /// Opaque cursor from the previous page's next_cursor
    pub cursor: Option<String>,
}

/// The filter of a request, with its user resolved (`None` when the user does not exist).
async fn filter_of(
    state: &AppState,
    query: &ListEventsQuery,
) -> Result<Option<EventFilter>, ApiError> {
    let status = match &query.status {
        None => None,
        Some(raw) => {
            let n: i32 = raw
                .trim()
                .parse()
                .map_err(|_| ApiError::BadRequest("status must be a number".into()))?;
            if !(100..=599).contains(&n) {
                return Err(ApiError::field(
                    "status",
                    "must be an HTTP status (100 to 599)",
                ));
            }
            Some(n)
        }
    };
    let method = match query.method.as_deref().map(str::trim) {
        None => None,
        Some(m) if !m.is_empty() && m.chars().all(|c| c.is_ascii_alphabetic()) => {
            Some(m.to_ascii_uppercase())
        }
        Some(_) => {
            return Err(ApiError::field(
                "method",
                "must be an HTTP method such as GET",
            ))
        }
    };
    let mut filter = EventFilter {
        method,
        path_prefix: query.path_prefix.clone().filter(|p| !p.is_empty()),
        status,
        since: query
            .since
            .as_deref()
            .map(|v| super::parse_timestamp(v, "since"))
            .transpose()?,
        until: query
            .until
            .as_deref()
            .map(|v| super::parse_timestamp(v, "until"))
            .transpose()?,
        ..Default::default()
    };
    if let Some(user) = &query.user_id {
        let uuid = super::parse_query_uuid(user, "user_id")?;
        let found = state
            .db
            .run(move |conn| Ok::<_, ApiError>(users::find_by_uuid(conn, &uuid).ok().map(|u| u.id)))
            .await?;
        match found {
            Some(id) => filter.user_id = Some(id),
            None => return Ok(None),
        }
    }
    Ok(Some(filter))
}

/// True when the `Accept` header (RFC 9110 section 12.5.1, with q-values) prefers `text/csv`
/// (or `text/*`) to JSON: its weight is above zero and at least that of `application/json`,
/// `application/*` or `*/*`. `text/csv;q=0` means "not CSV".
fn wants_csv(req: &HttpRequest) -> bool {
    let Ok(accept) = <header::Accept as header::Header>::parse(req) else {
        return false;
    };
    let weight = |matches: &dyn Fn(&mime::Mime) -> bool| {
        accept
            .iter()
            .filter(|item| matches(&item.item))
            .map(|item| item.quality)
            .max()
    };
    let csv =
        weight(&|m| m.type_() == mime::TEXT && (m.subtype() == "csv" || m.subtype() == mime::STAR));
    let json = weight(&|m| {
        (m.type_() == mime::APPLICATION && (m.subtype() == mime::JSON || m.subtype() == mime::STAR))
            || m.type_() == mime::STAR
    });
    match csv {
        Some(q) if q > header::Quality::ZERO => json.is_none_or(|j| q >= j),
        _ => false,
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/events",
    tag = "events",
    operation_id = "list_events",
    summary = "The audit log (admin), newest first; CSV with Accept: text/csv",
    params(
        ListEventsQuery
    ),
    responses(
        (status = 200, description = "A page of events, or all as CSV", content((Page<EventResponse> = "application/json"), (String = "text/csv")))
    )
)]
async fn list_events(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<ListEventsQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let page = PageRequest::parse(query.limit.as_deref(), query.cursor.as_deref())?;
    let filter = filter_of(&state, &query).await?;
    if wants_csv(&req) {
        return Ok(csv_response(state.into_inner(), filter, page.after));
    }
    let rows = match filter {
        None => Vec::new(),
        Some(filter) => {
            let (after, fetch) = (page.after.clone(), page.fetch());
            state
                .db
                .query(move |conn| events::list_events(conn, &filter, after.as_deref(), fetch))
                .await?
        }
    };
    let body: Page<EventResponse> =
        page.finish(rows, |(e, _)| &e.uuid, |(e, u)| EventResponse::new(e, u));
    Ok(HttpResponse::Ok().json(body))
}

const CSV_HEADER: [&str; 14] = [
    "id",
    "request_id",
    "occurred_at",
    "user_id",
    "username",
    "auth",
    "method",
    "path",
    "query",
    "status",
    "duration_ms",
    "client_ip",
    "user_agent",
    "headers",
];

/// A cell as written: one that a spreadsheet would read as a formula (it starts with `=`, `+`,
/// `-`, `@`, tab or carriage return) is prefixed with `'` (OWASP "CSV Injection").
fn csv_cell(value: &str) -> std::borrow::Cow<'_, str> {
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}").into()
    } else {
        value.into()
    }
}

/// CSV records (RFC 4180, written by the `csv` crate) for `rows`, with the header row first
/// when `header` is set.
fn csv_records(rows: &[(Event, Option<(String, String)>)], header: bool) -> Vec<u8> {
    let mut writer = csv::Writer::from_writer(Vec::with_capacity(rows.len() * 512));
    if header {
        let _ = writer.write_record(CSV_HEADER);
    }
    for (event, user) in rows {
        let (user_id, username) = user.clone().unwrap_or_default();
        let fields = [
            event.uuid.clone(),
            event.request_id.clone(),
            crate::views::rfc3339_text(&event.occurred_at),
            user_id,
            username,
            event.auth.clone(),
            event.method.clone(),
            event.path.clone(),
            event.query.clone(),
            event.status.to_string(),
            format!("{:.3}", event.duration_ms),
            event.client_ip.clone(),
            event.user_agent.clone().unwrap_or_default(),
            event.headers.clone(),
        ];
        // Writing to memory cannot fail.
        let _ = writer.write_record(fields.iter().map(|f| csv_cell(f).into_owned()));
    }
    writer.into_inner().unwrap_or_default()
}

/// Streams every matching event as CSV, newest first, a keyset page at a time (memory stays
/// at one page whatever the table size).
fn csv_response(
    state: std::sync::Arc<AppState>,
    filter: Option<EventFilter>,
    after: Option<String>,
) -> HttpResponse {
    const BATCH: i64 = 1000;
    enum Step {
        Header(Option<String>),
        Next(Option<String>),
        Done,
    }
    let body = stream::unfold(Step::Header(after), move |step| {
        let (state, filter) = (state.clone(), filter.clone());
        async move {
            let cursor = match step {
                Step::Done => return None,
                Step::Header(cursor) => {
                    let next = if filter.is_some() {
                        Step::Next(cursor)
                    } else {
                        Step::Done
                    };
                    return Some((
                        Ok::<_, actix_web::Error>(web::Bytes::from(csv_records(&[], true))),
                        next,
                    ));
                }
                Step::Next(cursor) => cursor,
            };
            let filter = filter?;
            let rows = state
                .db
                .query(move |conn| events::list_events(conn, &filter, cursor.as_deref(), BATCH))
                .await;
            match rows {
                Err(err) => Some((
                    Err(actix_web::error::ErrorServiceUnavailable(err.to_string())),
                    Step::Done,
                )),
                Ok(rows) => {
                    let last = rows.last().map(|(e, _)| e.uuid.clone());
                    let text = csv_records(&rows, false);
                    let next = if rows.len() < BATCH as usize {
                        Step::Done
                    } else {
                        Step::Next(last)
                    };
                    Some((Ok(web::Bytes::from(text)), next))
                }
            }
        }
    });
    HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .streaming(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepts(value: &str) -> bool {
        let req = actix_web::test::TestRequest::default()
            .insert_header((header::ACCEPT, value))
            .to_http_request();
        wants_csv(&req)
    }

    #[test]
    fn csv_is_chosen_by_weight() {
        assert!(accepts("text/csv"));
        assert!(accepts("text/csv;q=0.9, application/json;q=0.5"));
        assert!(accepts("application/json;q=0.1, text/csv"));
        assert!(accepts("text/*"));
        assert!(!accepts("text/csv;q=0"));
        assert!(!accepts("text/csv;q=0, */*"));
        assert!(!accepts("application/json, text/csv;q=0.5"));
        assert!(!accepts("*/*"));
        assert!(!accepts("application/json"));
        assert!(!accepts("not a media type"));
    }

    #[test]
    fn formula_cells_are_neutralised() {
        for bad in ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"] {
            assert!(csv_cell(bad).starts_with('\''), "{bad}");
        }
        assert_eq!(csv_cell("curl/8"), "curl/8");
    }
}
