//! History: the snapshots of every change, per entity (oldest first) and across entities
//! (newest first, only what the caller may see), and reverting to one of them.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::conditional::etag;
use super::pagination::{Page, PageRequest};
use super::users::UserRef;
use super::{parse_id, rfc3339};
use crate::auth::{Access, CurrentUser, Role};
use crate::codesets::{known_system, normalise_code};
use crate::db::{write_transaction, DbConnection};
use crate::error::ApiError;
use crate::history::{Action, Change, EntityType, SCHEMA_VERSION};
use crate::models::history::{self, HistoryFilter, HistoryRow, HistoryWithUser};
use crate::models::{codes, diseases, images, labels, users};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    let read = Access::roles(&[Role::Doctor, Role::Researcher]);
    cfg.service(web::resource("/history").route(web::get().to(list_history).wrap(read)))
        .service(web::resource("/history/{id}/revert").route(web::post().to(revert).wrap(read)))
        .service(
            web::resource("/images/{id}/history").route(web::get().to(image_history).wrap(read)),
        )
        .service(
            web::resource("/labels/{id}/history").route(web::get().to(label_history).wrap(read)),
        )
        .service(
            web::resource("/diseases/{id}/history")
                .route(web::get().to(disease_history).wrap(read)),
        )
        .service(
            web::resource("/codes/{system}/{code}/history")
                .route(web::get().to(code_history).wrap(read)),
        );
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HistoryEntryResponse {
    pub id: String,
    pub entity_type: String,
    pub entity_id: String,
    pub action: String,
    pub schema_version: i32,
    #[schema(value_type = Object)]
    pub snapshot: Value,
    pub changed_by: UserRef,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-21T09:30:00.123Z")]
    pub changed_at: NaiveDateTime,
    pub request_id: String,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size (default 50)

    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
    /// Opaque cursor from the previous page's next_cursor
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListHistoryQuery {
    #[param(value_type = Option<String>, pattern = "^(image|label|disease|code)$")]
    pub entity_type: Option<String>,
    #[param(value_type = Option<String>, format = Uuid)]
    pub entity_id: Option<String>,
    #[param(value_type = Option<String>, format = Uuid)]
    pub changed_by: Option<String>,
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

/// Whether the caller sees an image snapshot whole (owner or admin) or de-identified.
fn sees_whole_image(caller: &CurrentUser, snapshot: &Value) -> bool {
    caller.is_admin()
        || (caller.has(Role::Doctor) && snapshot["uploaded_by"]["id"] == caller.uuid.as_str())
}

fn present(
    caller: &CurrentUser,
    (row, (user_id, username)): HistoryWithUser,
) -> HistoryEntryResponse {
    let mut snapshot: Value = serde_json::from_str(&row.snapshot).unwrap_or(Value::Null);
    if row.entity_type == "image" && !sees_whole_image(caller, &snapshot) {
        if let Some(object) = snapshot.as_object_mut() {
            object.insert("original_filename".into(), Value::Null);
        }
    }
    HistoryEntryResponse {
        id: row.uuid,
        entity_type: row.entity_type,
        entity_id: row.entity_id,
        action: row.action,
        schema_version: row.schema_version,
        snapshot,
        changed_by: UserRef {
            id: user_id,
            username,
        },
        changed_at: row.changed_at,
        request_id: row.request_id,
    }
}

/// Whether the caller may see an image (deleted or not): the owner doctor, researchers, admins.
fn may_see_image(
    conn: &mut DbConnection,
    caller: &CurrentUser,
    uuid: &str,
) -> Result<bool, ApiError> {
    let image = match images::find_any_image(conn, uuid) {
        Ok(image) => image,
        Err(diesel::result::Error::NotFound) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    Ok(caller.is_admin()
        || caller.has(Role::Researcher)
        || (caller.has(Role::Doctor) && image.uploaded_by == caller.id))
}

async fn entity_page(
    state: &AppState,
    caller: CurrentUser,
    entity: EntityType,
    entity_id: String,
    query: PageQuery,
) -> Result<HttpResponse, ApiError> {
    let page = PageRequest::parse(query.limit.as_deref(), query.cursor.as_deref())?;
    let (after, fetch) = (page.after.clone(), page.fetch());
    let who = caller.clone();
    let rows = state
        .db
        .run(move |conn| {
            let exists = match entity {
                EntityType::Image => may_see_image(conn, &who, &entity_id)?,
                EntityType::Label => labels::find_label(conn, &entity_id).is_ok(),
                EntityType::Disease => diseases::find_disease(conn, &entity_id).is_ok(),
                EntityType::Code => true,
            };
            if !exists {
                return Err(ApiError::NotFound);
            }
            Ok(history::entity_history(
                conn,
                entity.name(),
                &entity_id,
                after.as_deref(),
                fetch,
            )?)
        })
        .await?;
    let body: Page<HistoryEntryResponse> =
        page.finish(rows, |(r, _)| &r.uuid, |r| present(&caller, r));
    Ok(HttpResponse::Ok().json(body))
}

#[utoipa::path(get, path = "/api/v1/images/{id}/history", tag = "history", operation_id = "list_image_history", summary = "An image's history, oldest first", params(("id" = String, Path, description = "The entity's UUID"), PageQuery), responses((status = 200, description = "A page of entries", body = Page<HistoryEntryResponse>)))]
async fn image_history(
    state: web::Data<AppState>,
    caller: CurrentUser,
    id: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    entity_page(
        &state,
        caller,
        EntityType::Image,
        parse_id(&id)?,
        query.into_inner(),
    )
    .await
}

#[utoipa::path(get, path = "/api/v1/labels/{id}/history", tag = "history", operation_id = "list_label_history", summary = "A label's history, oldest first", params(("id" = String, Path, description = "The entity's UUID"), PageQuery), responses((status = 200, description = "A page of entries", body = Page<HistoryEntryResponse>)))]
async fn label_history(
    state: web::Data<AppState>,
    caller: CurrentUser,
    id: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    entity_page(
        &state,
        caller,
        EntityType::Label,
        parse_id(&id)?,
        query.into_inner(),
    )
    .await
}

#[utoipa::path(get, path = "/api/v1/diseases/{id}/history", tag = "history", operation_id = "list_disease_history", summary = "A disease's history, oldest first", params(("id" = String, Path, description = "The entity's UUID"), PageQuery), responses((status = 200, description = "A page of entries", body = Page<HistoryEntryResponse>)))]
async fn disease_history(
    state: web::Data<AppState>,
    caller: CurrentUser,
    id: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    entity_page(
        &state,
        caller,
        EntityType::Disease,
        parse_id(&id)?,
        query.into_inner(),
    )
    .await
}

#[utoipa::path(get, path = "/api/v1/codes/{system}/{code}/history", tag = "history", operation_id = "list_code_history", summary = "A code's history, oldest first", params(("system" = String, Path, description = "icd-9, icd-10 or snomed-ct"), ("code" = String, Path, description = "e.g. J18.9"), PageQuery), responses((status = 200, description = "A page of entries", body = Page<HistoryEntryResponse>)))]
async fn code_history(
    state: web::Data<AppState>,
    caller: CurrentUser,
    path: web::Path<(String, String)>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (system, code) = path.into_inner();
    if !known_system(&system) {
        return Err(ApiError::NotFound);
    }
    let code = normalise_code(&system, &code).map_err(|_| ApiError::NotFound)?;
    let uuid = state
        .db
        .query(move |conn| Ok(codes::find_code(conn, &system, &code)?.uuid))
        .await?;
    entity_page(&state, caller, EntityType::Code, uuid, query.into_inner()).await
}

#[utoipa::path(get, path = "/api/v1/history", tag = "history", operation_id = "list_history", summary = "History entries the caller may see, newest first", params(ListHistoryQuery), responses((status = 200, description = "A page of entries", body = Page<HistoryEntryResponse>)))]
async fn list_history(
    state: web::Data<AppState>,
    caller: CurrentUser,
    query: web::Query<ListHistoryQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let page = PageRequest::parse(query.limit.as_deref(), query.cursor.as_deref())?;
    if let Some(t) = &query.entity_type {
        if EntityType::from_name(t).is_none() {
            return Err(ApiError::field(
                "entity_type",
                "must be image, label, disease or code",
            ));
        }
    }
    let entity_id = query
        .entity_id
        .as_deref()
        .map(|v| super::parse_query_uuid(v, "entity_id"))
        .transpose()?;
    let changed_by = query
        .changed_by
        .as_deref()
        .map(|v| super::parse_query_uuid(v, "changed_by"))
        .transpose()?;
    let mut filter = HistoryFilter {
        entity_type: query.entity_type.clone(),
        entity_id,
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
        // A doctor who is neither researcher nor admin sees images of their own only.
        own_images_of: (!caller.is_admin() && !caller.has(Role::Researcher)).then_some(caller.id),
        ..Default::default()
    };
    let (after, fetch) = (page.after.clone(), page.fetch());
    let rows = state
        .db
        .run(move |conn| {
            if let Some(uuid) = changed_by {
                match users::find_by_uuid(conn, &uuid) {
                    Ok(user) => filter.changed_by = Some(user.id),
                    Err(diesel::result::Error::NotFound) => return Ok(Vec::new()),
                    Err(e) => return Err(ApiError::from(e)),
                }
            }
            Ok(history::list_history(
                conn,
                &filter,
                after.as_deref(),
                fetch,
            )?)
        })
        .await?;
    let body: Page<HistoryEntryResponse> =
        page.finish(rows, |(r, _)| &r.uuid, |r| present(&caller, r));
    Ok(HttpResponse::Ok().json(body))
}

/// What a revert answers: the restored entity, as its `GET` would.
struct Restored {
    body: Value,
    version: i32,
}

#[utoipa::path(post, path = "/api/v1/history/{id}/revert", tag = "history", operation_id = "revert_history_entry", summary = "Restore the entity to this entry's snapshot", params(("id" = String, Path, description = "The entity's UUID")), responses((status = 200, description = "The restored entity, as its GET answers", body = Object), (status = 409, description = "The name is taken now", body = crate::error::Problem, content_type = "application/problem+json")))]
async fn revert(
    state: web::Data<AppState>,
    caller: CurrentUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    let change = Change::by(&caller);
    let restored = state
        .db
        .run(move |conn| {
            write_transaction(conn, |conn| {
                let entry = history::find_entry(conn, &id)?;
                let entity = EntityType::from_name(&entry.entity_type).ok_or(ApiError::NotFound)?;
                authorise_revert(conn, &caller, entity, &entry)?;
                if entry.action == Action::Delete.name() {
                    return Err(ApiError::field("id", "this entry records a deletion; revert to an earlier entry to restore the entity"));
                }
                if entry.schema_version != SCHEMA_VERSION {
                    return Err(ApiError::field("id", format!("snapshots of schema version {} cannot be restored by this release", entry.schema_version)));
                }
                let snapshot: Value = serde_json::from_str(&entry.snapshot).map_err(ApiError::internal)?;
                match entity {
                    EntityType::Label => revert_label(conn, &change, &entry, &snapshot),
                    EntityType::Disease => revert_disease(conn, &change, &entry, &snapshot),
                    EntityType::Code => revert_code(conn, &change, &entry, &snapshot),
                    EntityType::Image => revert_image(conn, &caller, &change, &entry, &snapshot),
                }
            })
        })
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::ETAG, etag(restored.version)))
        .json(restored.body))
}

/// Reverting needs the right to edit the entity: researchers and admins for the vocabulary,
/// the owner doctor and admins for images. An image the caller cannot see is 404.
fn authorise_revert(
    conn: &mut DbConnection,
    caller: &CurrentUser,
    entity: EntityType,
    entry: &HistoryRow,
) -> Result<(), ApiError> {
    match entity {
        EntityType::Image => {
            if !may_see_image(conn, caller, &entry.entity_id)? {
                return Err(ApiError::NotFound);
            }
            let image = images::find_any_image(conn, &entry.entity_id)?;
            if caller.is_admin() || (caller.has(Role::Doctor) && image.uploaded_by == caller.id) {
                Ok(())
            } else {
                Err(ApiError::Forbidden(
                    "only the uploading doctor or an admin may change this image".into(),
                ))
            }
        }
        _ if caller.is_admin() || caller.has(Role::Researcher) => Ok(()),
        _ => Err(ApiError::forbidden()),
    }
}

fn text(snapshot: &Value, field: &str) -> Option<String> {
    snapshot[field].as_str().map(str::to_owned)
}

fn revert_label(
    conn: &mut DbConnection,
    change: &Change,
    entry: &HistoryRow,
    snapshot: &Value,
) -> Result<Restored, ApiError> {
    let current = labels::find_label(conn, &entry.entity_id)?;
    let name = text(snapshot, "name")
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("label snapshot without name")))?;
    let active = snapshot["is_active"].as_bool().unwrap_or(true);
    if active && labels::name_taken(conn, &name, Some(current.id))? {
        return Err(ApiError::Conflict(format!(
            "an active label is named {name:?} now"
        )));
    }
    let disease_uuids: Vec<String> = snapshot["diseases"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| text(d, "id"))
        .collect();
    // The same rule as a direct write: every linked disease must be active now.
    let disease_ids = super::labels::resolve_diseases(conn, &disease_uuids)?;
    let description = text(snapshot, "description");
    let updated = labels::update_label(
        conn,
        current.id,
        current.version,
        Some(&name),
        Some(description.as_deref()),
        Some(active),
    )?
    .ok_or(ApiError::PreconditionFailed)?;
    labels::set_label_diseases(conn, updated.id, &disease_ids)?;
    let version = updated.version;
    let view = super::labels::label_views(conn, vec![updated])?
        .pop()
        .ok_or(ApiError::NotFound)?;
    change.record(conn, EntityType::Label, &view.id, Action::Revert, &view)?;
    Ok(Restored {
        body: serde_json::to_value(view).map_err(ApiError::internal)?,
        version,
    })
}

fn revert_disease(
    conn: &mut DbConnection,
    change: &Change,
    entry: &HistoryRow,
    snapshot: &Value,
) -> Result<Restored, ApiError> {
    let current = diseases::find_disease(conn, &entry.entity_id)?;
    let name = text(snapshot, "name")
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("disease snapshot without name")))?;
    let active = snapshot["is_active"].as_bool().unwrap_or(true);
    if active && diseases::name_taken(conn, &name, Some(current.id))? {
        return Err(ApiError::Conflict(format!(
            "an active disease is named {name:?} now"
        )));
    }
    // The same rule as a direct write: every linked code must exist and be active now.
    let refs: Vec<super::diseases::CodeRef> = snapshot["codes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|code| super::diseases::CodeRef {
            system: text(code, "system").unwrap_or_default(),
            code: text(code, "code").unwrap_or_default(),
        })
        .collect();
    let code_ids = super::diseases::resolve_codes(conn, &refs)?;
    let description = text(snapshot, "description");
    let updated = diseases::update_disease(
        conn,
        current.id,
        current.version,
        Some(&name),
        Some(description.as_deref()),
        Some(active),
    )?
    .ok_or(ApiError::PreconditionFailed)?;
    diseases::set_disease_codes(conn, updated.id, &code_ids)?;
    let version = updated.version;
    let view = super::diseases::disease_views(conn, vec![updated])?
        .pop()
        .ok_or(ApiError::NotFound)?;
    change.record(conn, EntityType::Disease, &view.id, Action::Revert, &view)?;
    Ok(Restored {
        body: serde_json::to_value(view).map_err(ApiError::internal)?,
        version,
    })
}

fn revert_code(
    conn: &mut DbConnection,
    change: &Change,
    entry: &HistoryRow,
    snapshot: &Value,
) -> Result<Restored, ApiError> {
    let system = text(snapshot, "system").unwrap_or_default();
    let code = text(snapshot, "code").unwrap_or_default();
    let current = codes::find_code(conn, &system, &code)?;
    if current.uuid != entry.entity_id {
        return Err(ApiError::NotFound);
    }
    let description = text(snapshot, "description").unwrap_or(current.description.clone());
    let active = snapshot["is_active"].as_bool().unwrap_or(true);
    let updated = codes::update_code(
        conn,
        current.id,
        current.version,
        Some(&description),
        Some(active),
    )?
    .ok_or(ApiError::PreconditionFailed)?;
    let version = updated.version;
    let view = super::codes::CodeResponse::from(updated);
    change.record(conn, EntityType::Code, &view.id, Action::Revert, &view)?;
    Ok(Restored {
        body: serde_json::to_value(view).map_err(ApiError::internal)?,
        version,
    })
}

fn revert_image(
    conn: &mut DbConnection,
    caller: &CurrentUser,
    change: &Change,
    entry: &HistoryRow,
    snapshot: &Value,
) -> Result<Restored, ApiError> {
    let image = images::find_any_image(conn, &entry.entity_id)?;
    // The same rule as assigning directly: a label the image does not hold now must exist and
    // be active (one it still holds keeps its assignment, as past assignments do).
    let held: Vec<i64> = images::assignments_of(conn, &[image.id])?
        .remove(&image.id)
        .unwrap_or_default()
        .into_iter()
        .map(|a| a.label_id)
        .collect();
    let mut rows = Vec::new();
    let mut refused = Vec::new();
    for assignment in snapshot["labels"].as_array().into_iter().flatten() {
        let label_uuid = text(&assignment["label"], "id").unwrap_or_default();
        let label = match labels::find_label(conn, &label_uuid) {
            Ok(label) if label.is_active || held.contains(&label.id) => label,
            Ok(label) => {
                refused.push(format!(
                    "label {} ({:?}) is no longer active",
                    label.uuid, label.name
                ));
                continue;
            }
            Err(diesel::result::Error::NotFound) => {
                refused.push(format!("label {label_uuid} does not exist"));
                continue;
            }
            Err(err) => return Err(err.into()),
        };
        let by = text(&assignment["assigned_by"], "id").unwrap_or_default();
        let by = users::find_by_uuid(conn, &by)
            .map(|u| u.id)
            .unwrap_or(caller.id);
        let at = text(assignment, "assigned_at")
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.naive_utc())
            .unwrap_or_else(crate::db::now);
        rows.push((label.id, text(assignment, "note"), by, at));
    }
    if !refused.is_empty() {
        return Err(ApiError::Validation(
            [("labels".to_owned(), refused)].into_iter().collect(),
        ));
    }
    images::restore_image(conn, image.id, text(snapshot, "description").as_deref())?;
    images::replace_assignments(conn, image.id, &rows)?;
    let restored = images::find_live_image(conn, &entry.entity_id)?;
    let version = restored.version;
    let view = super::images::image_view_of(conn, caller, restored)?;
    change.record(
        conn,
        EntityType::Image,
        &entry.entity_id,
        Action::Revert,
        &view,
    )?;
    Ok(Restored {
        body: serde_json::to_value(view).map_err(ApiError::internal)?,
        version,
    })
}
