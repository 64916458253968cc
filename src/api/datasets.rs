//! Datasets: frozen, reproducible exports for machine learning (API.md "Datasets"). Researchers
//! and admins create, read and export them; every one of them sees every dataset; doctors 403.
//! Freezing is in [`crate::changes::datasets`], the archive in [`crate::export`].

use std::sync::atomic::Ordering;
use std::sync::Arc;

use actix_web::http::header;
use actix_web::{web, HttpMessage as _, HttpResponse};
use serde::Deserialize;
use validator::Validate;

use super::diseases::parse_code_filter;
use super::pagination::{Page, PageRequest};
use super::{parse_id, parse_timestamp, JsonBody};
use crate::auth::{Access, CurrentUser, Role};
use crate::changes::datasets::NewDataset;
use crate::error::ApiError;
use crate::export::{Exporter, Format};
use crate::models::images::ImageFilter;
use crate::models::{codes, datasets, diseases, labels, patients};
use crate::state::AppState;
use crate::storage::bridge::ChannelWriter;
use crate::views::datasets::{dataset_response, dataset_responses, DatasetFilter, DatasetResponse};

pub fn configure(cfg: &mut web::ServiceConfig) {
    let researchers = Access::roles(&[Role::Researcher]);
    cfg.service(
        web::resource("/datasets")
            .route(web::get().to(list_datasets).wrap(researchers))
            .route(web::post().to(create_dataset).wrap(researchers)),
    )
    .service(web::resource("/datasets/{id}").route(web::get().to(get_dataset).wrap(researchers)))
    .service(
        web::resource("/datasets/{id}/export")
            .route(web::get().to(export_dataset).wrap(researchers)),
    );
}

#[derive(Debug, Deserialize, Validate, utoipa::ToSchema)]
#[schema(example = json!({"name": "Pneumonia CT, 2026", "description": "every CT with a pneumonia label",
    "filter": {"code": "icd-10:J18.9", "modality": "CT"}}))]
#[serde(deny_unknown_fields)]
pub struct CreateDatasetRequest {
    #[validate(
        length(min = 1, max = 200, message = "must be 1 to 200 characters"),
        custom(function = "super::valid_name")
    )]
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    #[validate(length(max = 2000, message = "must be at most 2000 characters"))]
    #[schema(max_length = 2000)]
    pub description: Option<String>,
    #[validate(nested)]
    #[serde(deserialize_with = "super::object")]
    pub filter: DatasetFilter,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListDatasetsQuery {
    /// Page size (default 50)
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
    /// Opaque cursor from the previous page's next_cursor
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// The archive's format
    #[param(value_type = String, pattern = "^(coco|yolo|csv)$")]
    pub format: Option<String>,
}

/// A filter field's id, in canonical form; 422 naming `filter.<field>` when it is not a UUID.
fn filter_uuid(raw: &Option<String>, field: &str) -> Result<Option<String>, ApiError> {
    raw.as_deref()
        .map(|v| {
            uuid::Uuid::parse_str(v.trim())
                .map(|u| u.to_string())
                .map_err(|_| ApiError::field(&format!("filter.{field}"), "must be a UUID"))
        })
        .transpose()
}

/// What a filter names, resolved to internal ids (in the caller's transaction): 422 naming
/// the field for an id that names nothing.
fn resolve(
    conn: &mut crate::db::DbConnection,
    filter: &DatasetFilter,
) -> Result<ImageFilter, ApiError> {
    // An id that names nothing is the client's mistake (422); a failing database is not.
    let named = |found: diesel::QueryResult<i64>, field: &str, what: &str| match found {
        Ok(id) => Ok(Some(id)),
        Err(diesel::result::Error::NotFound) => Err(ApiError::field(
            &format!("filter.{field}"),
            format!("no {what} has this id"),
        )),
        Err(e) => Err(ApiError::from(e)),
    };
    let mut selection = ImageFilter {
        modality: filter.modality.as_deref().map(str::to_uppercase),
        ..Default::default()
    };
    for (field, value, target) in [
        (
            "created_after",
            &filter.created_after,
            &mut selection.created_after,
        ),
        (
            "created_before",
            &filter.created_before,
            &mut selection.created_before,
        ),
    ] {
        if let Some(raw) = value {
            *target = Some(parse_timestamp(raw, field).map_err(|_| {
                ApiError::field(
                    &format!("filter.{field}"),
                    "must be an RFC 3339 timestamp like 2026-11-21T09:30:00Z",
                )
            })?);
        }
    }
    if let Some(label) = filter_uuid(&filter.label_id, "label_id")? {
        let found = labels::find(conn, &label).map(|l| l.id);
        selection.label_id = named(found, "label_id", "label")?;
    }
    if let Some(disease) = filter_uuid(&filter.disease_id, "disease_id")? {
        let found = diseases::find(conn, &disease).map(|d| d.id);
        selection.disease_id = named(found, "disease_id", "disease")?;
    }
    if let Some(code) = &filter.code {
        let (system, code) = parse_code_filter(code).map_err(|e| match e {
            ApiError::Validation(_) | ApiError::BadRequest(_) => ApiError::field(
                "filter.code",
                "must be system:code with a known system, e.g. icd-10:J18.9",
            ),
            other => other,
        })?;
        let found = codes::find_code(conn, &system, &code).map(|c| c.id);
        selection.code_id = named(found, "code", "code")?;
    }
    if let Some(subject) = &filter.subject_id {
        if !crate::pseudonym::is_subject_id(subject) {
            return Err(ApiError::field(
                "filter.subject_id",
                "must be a pseudonym (S- and 16 base32 characters)",
            ));
        }
        let found = patients::find_by_subject(conn, subject).map(|p| p.id);
        selection.patient_id = named(found, "subject_id", "subject")?;
    }
    Ok(selection)
}

#[utoipa::path(
    post,
    path = "/api/v1/datasets",
    tag = "datasets",
    operation_id = "create_dataset",
    summary = "Freeze the images a filter selects, with their diagnoses and annotations",
    request_body(content = CreateDatasetRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = DatasetResponse, headers(("Location" = String, description = "the new entity")))
    )
)]
pub async fn create_dataset(
    state: web::Data<AppState>,
    caller: CurrentUser,
    body: JsonBody<CreateDatasetRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    body.validate()?;
    let filter_json = serde_json::to_string(&body.filter).map_err(ApiError::internal)?;
    let response: DatasetResponse = state
        .db
        .run(move |conn| {
            crate::db::write_transaction(conn, |conn| {
                datasets::read_one_snapshot(conn)?;
                let selection = resolve(conn, &body.filter)?;
                crate::changes::datasets::create(
                    conn,
                    &caller,
                    NewDataset {
                        name: &body.name,
                        description: body.description.as_deref(),
                        filter_json: &filter_json,
                        selection,
                    },
                )
            })
        })
        .await?;
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("/api/v1/datasets/{}", response.id),
        ))
        .json(response))
}

#[utoipa::path(
    get,
    path = "/api/v1/datasets",
    tag = "datasets",
    operation_id = "list_datasets",
    summary = "Every dataset, oldest first",
    params(
        ListDatasetsQuery
    ),
    responses(
        (status = 200, description = "A page of datasets", body = Page<DatasetResponse>)
    )
)]
pub async fn list_datasets(
    state: web::Data<AppState>,
    query: web::Query<ListDatasetsQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = PageRequest::parse(query.limit.as_deref(), query.cursor.as_deref())?;
    let (after, fetch) = (page.after.clone(), page.fetch());
    let rows = state
        .db
        .query(move |conn| {
            let rows = datasets::list(conn, after.as_deref(), fetch)?;
            dataset_responses(conn, rows)
        })
        .await?;
    let body: Page<DatasetResponse> = page.finish(rows, |d| &d.id, |d| d);
    Ok(HttpResponse::Ok().json(body))
}

#[utoipa::path(
    get,
    path = "/api/v1/datasets/{id}",
    tag = "datasets",
    operation_id = "get_dataset",
    summary = "A dataset",
    params(
        ("id" = String, Path, description = "The entity's UUID")
    ),
    responses(
        (status = 200, description = "The dataset", body = DatasetResponse)
    )
)]
pub async fn get_dataset(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    let response = state
        .db
        .query(move |conn| {
            let row = datasets::find(conn, &id)?;
            dataset_response(conn, row)
        })
        .await?;
    Ok(HttpResponse::Ok().json(response))
}

/// Where an export's response body is: not started (the export starts on the first read),
/// streaming its chunks, or done.
enum Stream {
    NotStarted(Box<dyn FnOnce() -> (Receiver, Arc<std::sync::atomic::AtomicBool>)>),
    Streaming(Receiver, Arc<std::sync::atomic::AtomicBool>),
    Done,
}

type Receiver = tokio::sync::mpsc::Receiver<actix_web::web::Bytes>;

/// Chunks of the archive sent to the response at once, and chunks in flight.
const CHUNK_BYTES: usize = 256 << 10;
const CHUNKS_IN_FLIGHT: usize = 4;

#[utoipa::path(
    get,
    path = "/api/v1/datasets/{id}/export",
    tag = "datasets",
    operation_id = "export_dataset",
    summary = "The dataset as a ZIP archive (COCO, YOLO or CSV), streamed; the same bytes every time",
    params(
        ("id" = String, Path, description = "The entity's UUID"),
        ExportQuery
    ),
    responses(
        (status = 200, description = "The archive (served as application/zip)", content((crate::api::images::BinaryFile = "application/octet-stream"), (crate::api::images::BinaryFile = "application/zip")), headers(("Content-Disposition" = String, description = "attachment; filename=\"<id>-<format>.zip\"")))
    )
)]
pub async fn export_dataset(
    state: web::Data<AppState>,
    req: actix_web::HttpRequest,
    id: web::Path<String>,
    query: web::Query<ExportQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    let format = match query.format.as_deref() {
        Some(name) => Format::from_name(name)
            .ok_or_else(|| ApiError::field("format", "must be coco, yolo or csv"))?,
        None => return Err(ApiError::field("format", "is required: coco, yolo or csv")),
    };
    let (dataset, response) = state
        .db
        .query(move |conn| {
            let row = datasets::find(conn, &id)?;
            let response = dataset_response(conn, row.clone())?;
            Ok((row, response))
        })
        .await?;
    let filename = format!("{}-{}.zip", dataset.uuid, format.name());
    let disposition = (
        header::CONTENT_DISPOSITION,
        format!("attachment; filename=\"{filename}\""),
    );
    if req
        .extensions()
        .get::<crate::middleware::canonical_path::HeadRequest>()
        .is_some()
    {
        // HEAD: the headers of the archive, without making it.
        return Ok(HttpResponse::Ok()
            .content_type("application/zip")
            .insert_header(disposition)
            .finish());
    }
    let exporter = Exporter::new(&state, tokio::runtime::Handle::current());
    let running = state.exports_running.clone();
    // The export starts when the body is first read: a client gone before the first byte
    // starts nothing.
    let start = move || {
        let (chunks, receiver) = tokio::sync::mpsc::channel(CHUNKS_IN_FLIGHT);
        let complete = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let finished = complete.clone();
        running.fetch_add(1, Ordering::SeqCst);
        tokio::task::spawn_blocking(move || {
            let out = ChannelWriter::new(chunks, CHUNK_BYTES);
            match exporter.write(&dataset, &response, format, out, &mut || {}) {
                Ok(out) => {
                    finished.store(true, Ordering::SeqCst);
                    drop(out);
                }
                Err(crate::export::ExportError::Io(e))
                    if e.kind() == std::io::ErrorKind::BrokenPipe =>
                {
                    tracing::info!(dataset = %dataset.uuid, "export stopped: the client went away");
                }
                Err(e) => tracing::error!(dataset = %dataset.uuid, error = %e, "export failed"),
            }
            running.fetch_sub(1, Ordering::SeqCst);
        });
        (receiver, complete)
    };
    // The archive's chunks; a failed export ends the body with an error, so the connection is
    // cut instead of ending like a complete archive.
    let body =
        futures_util::stream::unfold(Stream::NotStarted(Box::new(start)), |state| async move {
            let (mut receiver, complete) = match state {
                Stream::NotStarted(start) => start(),
                Stream::Streaming(receiver, complete) => (receiver, complete),
                Stream::Done => return None,
            };
            match receiver.recv().await {
                Some(chunk) => Some((Ok(chunk), Stream::Streaming(receiver, complete))),
                None if complete.load(Ordering::SeqCst) => None,
                None => Some((
                    Err(std::io::Error::other("the export failed")),
                    Stream::Done,
                )),
            }
        });
    Ok(HttpResponse::Ok()
        .content_type("application/zip")
        .insert_header(disposition)
        .streaming(body))
}
