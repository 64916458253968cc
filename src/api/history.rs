//! History across entities: entries the caller may see, newest first, and reverting an entity
//! to one of them. Each entity's own history (`/images/{id}/history`, ...) is routed by its
//! resource and answered by [`entity_page`].

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::conditional::etag;
use super::pagination::{Page, PageRequest};
use super::parse_id;
use crate::auth::policy::{self, Uploader};
use crate::auth::{Access, CurrentUser, Role};
use crate::changes::snapshots::Snapshot;
use crate::changes::vocabulary::TermState;
use crate::changes::{self, Change};
use crate::db::DbConnection;
use crate::error::ApiError;
use crate::history::{Action, EntityType};
use crate::models::codes::CodeChanges;
use crate::models::diseases::Disease;
use crate::models::history::{self, HistoryFilter};
use crate::models::labels::{self, Label};
use crate::models::{annotations, diseases, images, users};
use crate::state::AppState;
use crate::views::history::{entry_response, HistoryEntryResponse, ImageFacts};
use crate::views::vocabulary::CodeResponse;

pub fn configure(cfg: &mut web::ServiceConfig) {
    let read = Access::roles(&[Role::Doctor, Role::Researcher]);
    // A revert is a write: of an image (its doctor) or of the vocabulary (researchers). Which
    // one, and whether this caller may make it, is decided per entry by `auth::policy`.
    let write = Access::roles(&[Role::Doctor, Role::Researcher]);
    cfg.service(web::resource("/history").route(web::get().to(list_history).wrap(read)))
        .service(web::resource("/history/{id}/revert").route(web::post().to(revert).wrap(write)));
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
    #[param(value_type = Option<String>, pattern = "^(image|label|disease|code|annotation)$")]
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

/// Whether the caller may see an image's history (deleted or not): the owner doctor,
/// researchers, admins.
fn may_see_image(
    conn: &mut DbConnection,
    caller: &CurrentUser,
    uuid: &str,
) -> Result<bool, ApiError> {
    match images::find_any_image(conn, uuid) {
        Ok(image) => Ok(policy::image_view(caller, Uploader::Id(image.uploaded_by)).is_some()),
        Err(diesel::result::Error::NotFound) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Whether the caller may see an annotation's history (deleted or not, its image deleted or
/// not): whoever may see its image's.
fn may_see_annotation(
    conn: &mut DbConnection,
    caller: &CurrentUser,
    uuid: &str,
) -> Result<bool, ApiError> {
    match annotations::find_any(conn, uuid) {
        Ok(annotation) => {
            let image = images::find_by_id(conn, annotation.image_id)?;
            Ok(policy::image_view(caller, Uploader::Id(image.uploaded_by)).is_some())
        }
        Err(diesel::result::Error::NotFound) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// A page of one entity's history, oldest first; 404 when the entity does not exist or the
/// caller may not see it.
pub(crate) async fn entity_page(
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
                EntityType::Label => labels::find(conn, &entity_id).is_ok(),
                EntityType::Disease => diseases::find(conn, &entity_id).is_ok(),
                EntityType::Code => true,
                EntityType::Annotation => may_see_annotation(conn, &who, &entity_id)?,
            };
            if !exists {
                return Err(ApiError::NotFound);
            }
            let rows =
                history::entity_history(conn, entity.name(), &entity_id, after.as_deref(), fetch)?;
            let facts = ImageFacts::load(conn, &who, &rows)?;
            Ok((rows, facts))
        })
        .await?;
    let (rows, facts) = rows;
    let body: Page<HistoryEntryResponse> = page.finish(
        rows,
        |(r, _)| &r.uuid,
        |r| entry_response(&caller, &facts, r),
    );
    Ok(HttpResponse::Ok().json(body))
}

#[utoipa::path(
    get,
    path = "/api/v1/history",
    tag = "history",
    operation_id = "list_history",
    summary = "History entries the caller may see, newest first",
    params(
        ListHistoryQuery
    ),
    responses(
        (status = 200, description = "A page of entries", body = Page<HistoryEntryResponse>)
    )
)]
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
                "must be image, label, disease, code or annotation",
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
        own_images_of: policy::own_images_only(&caller),
        ..Default::default()
    };
    let (after, fetch) = (page.after.clone(), page.fetch());
    let who = caller.clone();
    let rows = state
        .db
        .run(move |conn| {
            if let Some(uuid) = changed_by {
                match users::find_by_uuid(conn, &uuid) {
                    Ok(user) => filter.changed_by = Some(user.id),
                    Err(diesel::result::Error::NotFound) => {
                        return Ok((Vec::new(), ImageFacts::default()))
                    }
                    Err(e) => return Err(ApiError::from(e)),
                }
            }
            let rows = history::list_history(conn, &filter, after.as_deref(), fetch)?;
            let facts = ImageFacts::load(conn, &who, &rows)?;
            Ok((rows, facts))
        })
        .await?;
    let (rows, facts) = rows;
    let body: Page<HistoryEntryResponse> = page.finish(
        rows,
        |(r, _)| &r.uuid,
        |r| entry_response(&caller, &facts, r),
    );
    Ok(HttpResponse::Ok().json(body))
}

/// What a revert answers: the restored entity, as its `GET` would, and its version.
struct Restored {
    body: serde_json::Value,
    version: i32,
}

impl Restored {
    fn of(response: impl serde::Serialize, version: i32) -> Result<Self, ApiError> {
        Ok(Restored {
            body: serde_json::to_value(response).map_err(ApiError::internal)?,
            version,
        })
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/history/{id}/revert",
    tag = "history",
    operation_id = "revert_history_entry",
    summary = "Restore the entity to this entry's snapshot",
    params(
        ("id" = String, Path, description = "The entity's UUID")
    ),
    responses(
        (status = 200, description = "The restored entity, as its GET answers", body = Object),
        (status = 409, description = "The name is taken now", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
async fn revert(
    state: web::Data<AppState>,
    caller: CurrentUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    let change = Change::by(&caller);
    let actor = caller.actor();
    let index = state.code_index.clone();
    let restored = state
        .changes
        .write(actor, move |conn| {
            let entry = history::find_entry(conn, &id)?;
            let entity = EntityType::from_name(&entry.entity_type).ok_or(ApiError::NotFound)?;
            authorise_revert(conn, &caller, entity, &entry.entity_id)?;
            if entry.action == Action::Delete.name() {
                return Err(ApiError::field("id", "this entry records a deletion; revert to an earlier entry to restore the entity"));
            }
            let uuid = entry.entity_id.as_str();
            match Snapshot::parse(entity, entry.schema_version, &entry.snapshot)? {
                Snapshot::Label(s) => {
                    let state = TermState {
                        name: s.name,
                        description: s.description,
                        is_active: s.is_active,
                        links: s.diseases.into_iter().map(|d| d.id).collect(),
                    };
                    let (response, version) =
                        changes::vocabulary::revert::<Label>(conn, &change, uuid, &state)?;
                    Restored::of(response, version)
                }
                Snapshot::Disease(s) => {
                    let state = TermState {
                        name: s.name,
                        description: s.description,
                        is_active: s.is_active,
                        links: s.codes.into_iter().map(|c| (c.system, c.code)).collect(),
                    };
                    let (response, version) =
                        changes::vocabulary::revert::<Disease>(conn, &change, uuid, &state)?;
                    Restored::of(response, version)
                }
                Snapshot::Code(s) => {
                    let changes = CodeChanges {
                        description: Some(&s.description),
                        is_active: Some(s.is_active),
                    };
                    let code = changes::codes::revert(
                        conn,
                        &change,
                        uuid,
                        (&s.system, &s.code),
                        &changes,
                    )?;
                    super::codes::index_on_commit(&index, &code);
                    let version = code.version;
                    Restored::of(CodeResponse::from(code), version)
                }
                Snapshot::Image(s) => {
                    let (response, version) =
                        changes::images::revert(conn, &caller, &change, uuid, &s)?;
                    Restored::of(response, version)
                }
                Snapshot::Annotation(s) => {
                    let (response, version) =
                        changes::annotations::revert(conn, &caller, &change, uuid, &s)?;
                    Restored::of(response, version)
                }
            }
        })
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::ETAG, etag(restored.version)))
        .json(restored.body))
}

/// Reverting needs the right to edit the entity ([`policy`]): researchers and admins for the
/// vocabulary, the owner doctor and admins for images and their annotations. An image the
/// caller cannot see is 404.
fn authorise_revert(
    conn: &mut DbConnection,
    caller: &CurrentUser,
    entity: EntityType,
    entity_id: &str,
) -> Result<(), ApiError> {
    match entity {
        EntityType::Image => {
            let image = images::find_any_image(conn, entity_id)?;
            if policy::image_view(caller, Uploader::Id(image.uploaded_by)).is_none() {
                return Err(ApiError::NotFound);
            }
            changes::images::authorise_edit(caller, &image)
        }
        EntityType::Annotation => {
            let annotation = annotations::find_any(conn, entity_id)?;
            let image = images::find_by_id(conn, annotation.image_id)?;
            if policy::image_view(caller, Uploader::Id(image.uploaded_by)).is_none() {
                return Err(ApiError::NotFound);
            }
            changes::images::authorise_edit(caller, &image)
        }
        _ if policy::may_curate(caller) => Ok(()),
        _ => Err(ApiError::forbidden()),
    }
}
