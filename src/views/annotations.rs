//! Annotations as the API shows them. A caller who sees the image de-identified (researchers)
//! gets the note with the patient's identifiers `[redacted]`, as free text on the image is.

use chrono::NaiveDateTime;
use diesel::QueryResult;
use serde::Serialize;
use serde_json::Value;

use super::images::Filings;
use super::{rfc3339, NamedRef, UserRef};
use crate::auth::policy::{self, ImageView, Uploader};
use crate::auth::CurrentUser;
use crate::db::DbConnection;
use crate::geometry::{Geometry, Shape};
use crate::models::annotations::{self, Annotation, AnnotationWithRefs};
use crate::models::images::{self, Image};
use crate::models::users::user_refs;

/// `Annotation`: one region with one label on one frame of an image.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AnnotationResponse {
    pub id: String,
    /// The image's `id`.
    pub image_id: String,
    pub label: NamedRef,
    pub shape: Shape,
    /// In the stored image's pixels (origin top-left, x right, y down); its form is the
    /// shape's.
    #[schema(value_type = Geometry)]
    pub geometry: Value,
    /// 0-based frame of a multi-frame DICOM; 0 otherwise.
    pub frame: i32,
    pub note: Option<String>,
    pub created_by: UserRef,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-21T09:30:00.123Z")]
    pub created_at: NaiveDateTime,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-21T09:30:00.123Z")]
    pub updated_at: NaiveDateTime,
}

/// The responses for annotations of `image`, as a caller with `view` of the image sees them;
/// their authors' names in one query. Returns each with its version (the ETag).
pub fn annotation_responses(
    conn: &mut DbConnection,
    image: &Image,
    view: ImageView,
    rows: Vec<AnnotationWithRefs>,
) -> QueryResult<Vec<(AnnotationResponse, i32)>> {
    let redactor = match view {
        ImageView::Full => None,
        ImageView::Deidentified if rows.iter().any(|(a, _, _)| a.note.is_some()) => {
            Filings::load(conn, std::slice::from_ref(image))?.redactor(image)
        }
        ImageView::Deidentified => None,
    };
    let ids: Vec<i64> = rows.iter().map(|(a, _, _)| a.created_by).collect();
    let users = user_refs(conn, &ids)?;
    Ok(rows
        .into_iter()
        .map(|(a, image_uuid, (label_uuid, label_name))| {
            let version = a.version;
            let note = match (a.note, &redactor) {
                (Some(note), Some(r)) => Some(r.redact(&note)),
                (note, _) => note,
            };
            let response = AnnotationResponse {
                id: a.uuid,
                image_id: image_uuid,
                label: NamedRef {
                    id: label_uuid,
                    name: label_name,
                },
                shape: Shape::from_name(&a.shape).unwrap_or(Shape::Box),
                geometry: serde_json::from_str(&a.geometry).unwrap_or(Value::Null),
                frame: a.frame,
                note,
                created_by: UserRef::of(&users, a.created_by),
                created_at: a.created_at,
                updated_at: a.updated_at,
            };
            (response, version)
        })
        .collect())
}

/// The live annotation `uuid`, its image, and how the caller sees the image; diesel's
/// `NotFound` when the annotation or its image is deleted or the image is not visible to the
/// caller (existence is never revealed).
pub fn find_visible(
    conn: &mut DbConnection,
    caller: &CurrentUser,
    uuid: &str,
) -> QueryResult<(Annotation, Image, ImageView)> {
    let annotation = annotations::find_any(conn, uuid)?;
    let image = images::find_by_id(conn, annotation.image_id)?;
    if annotation.deleted_at.is_some() || image.deleted_at.is_some() {
        return Err(diesel::result::Error::NotFound);
    }
    let view = policy::image_view(caller, Uploader::Id(image.uploaded_by))
        .ok_or(diesel::result::Error::NotFound)?;
    Ok((annotation, image, view))
}

/// The live annotation `uuid` as the caller sees it, with its version (see [`find_visible`]).
pub fn visible_response(
    conn: &mut DbConnection,
    caller: &CurrentUser,
    uuid: &str,
) -> QueryResult<(AnnotationResponse, i32)> {
    let (annotation, image, view) = find_visible(conn, caller, uuid)?;
    let rows = annotations::with_refs(conn, &[annotation.id])?;
    annotation_responses(conn, &image, view, rows)?
        .pop()
        .ok_or(diesel::result::Error::NotFound)
}
