//! Writes of annotations: create, update, delete, revert. Who may write is who may change the
//! image (the uploading doctor and admins, [`super::images::find_editable`]): an invisible
//! image is 404, a visible one the caller may not change 403. Every change records the
//! annotation as its editor sees it (`entity_type` `annotation`); annotations do not change
//! the image's version or ETag.
//!
//! The rules (API.md "Annotations: regions on images"), the same for a direct write and a
//! revert: the label is active (422 `label_id`), the geometry is the shape's and lies inside
//! the image (422 naming the field, [`crate::geometry`]), the frame is one the image has (422
//! `frame`), and an image of unknown size takes no annotations (422 `geometry`).

use serde_json::Value;

use super::snapshots::AnnotationV1;
use super::{until_written, Change, Precondition};
use crate::auth::policy::ImageView;
use crate::auth::CurrentUser;
use crate::db::DbConnection;
use crate::error::ApiError;
use crate::geometry::{Bounds, Geometry, Shape};
use crate::history::{Action, EntityType};
use crate::models::annotations::{
    self, Annotation, AnnotationChanges, NewAnnotation, RestoredAnnotation,
};
use crate::models::images::{self, Image};
use crate::models::labels::{self, Label};
use crate::views::annotations::{annotation_responses, AnnotationResponse};

/// A new annotation, as the request gave it (checked here).
pub struct AnnotationRequest<'a> {
    pub label_id: &'a str,
    pub shape: &'a str,
    pub geometry: &'a Value,
    pub frame: Option<i32>,
    pub note: Option<&'a str>,
}

/// What a `PATCH` changes: the label, the geometry (of the same shape), the note
/// (`Some(None)` clears it).
pub struct AnnotationPatch<'a> {
    pub label_id: Option<&'a str>,
    pub geometry: Option<&'a Value>,
    pub note: Option<Option<&'a str>>,
}

/// The size `image` gives its annotations' coordinates; 422 when it is not known.
fn bounds(image: &Image) -> Result<Bounds, ApiError> {
    match (image.width, image.height) {
        (Some(width), Some(height)) if width > 0 && height > 0 => Ok(Bounds {
            width: f64::from(width),
            height: f64::from(height),
        }),
        _ => Err(ApiError::field(
            "geometry",
            "this image's width and height are unknown, so it takes no annotations",
        )),
    }
}

/// `geometry` as a `shape` region of `image`, in its stored JSON form.
fn checked_geometry(image: &Image, shape: Shape, geometry: &Value) -> Result<String, ApiError> {
    let parsed = Geometry::parse(shape, geometry, bounds(image)?)
        .map_err(|e| ApiError::field(&e.field, e.message))?;
    serde_json::to_string(&parsed).map_err(ApiError::internal)
}

/// 422 on `frame` unless `image` has frame `frame`.
fn check_frame(image: &Image, frame: i32) -> Result<(), ApiError> {
    if (0..image.frame_count).contains(&frame) {
        Ok(())
    } else {
        Err(ApiError::field(
            "frame",
            format!(
                "this image has {} frame(s): frame is 0 to {}",
                image.frame_count,
                image.frame_count - 1
            ),
        ))
    }
}

/// The active label `uuid`, or 422 on `label_id`.
fn active_label(conn: &mut DbConnection, uuid: &str) -> Result<Label, ApiError> {
    let Ok(parsed) = uuid::Uuid::parse_str(uuid) else {
        return Err(ApiError::field("label_id", "must be a label's id (a UUID)"));
    };
    match labels::find(conn, &parsed.to_string()) {
        Ok(label) if label.is_active => Ok(label),
        Ok(label) => Err(ApiError::field(
            "label_id",
            format!(
                "the label {:?} ({}) is no longer active",
                label.name, label.uuid
            ),
        )),
        Err(diesel::result::Error::NotFound) => {
            Err(ApiError::field("label_id", "no active label has this id"))
        }
        Err(e) => Err(e.into()),
    }
}

/// The response for annotation `id` as its editor sees it, with its version.
fn response(
    conn: &mut DbConnection,
    image: &Image,
    id: i64,
) -> Result<(AnnotationResponse, i32), ApiError> {
    let rows = annotations::with_refs(conn, &[id])?;
    annotation_responses(conn, image, ImageView::Full, rows)?
        .pop()
        .ok_or(ApiError::NotFound)
}

/// Records `annotation` as it is now after `action`; returns the response and version.
fn recorded(
    conn: &mut DbConnection,
    change: &Change,
    image: &Image,
    annotation: &Annotation,
    action: Action,
) -> Result<(AnnotationResponse, i32), ApiError> {
    let (response, version) = response(conn, image, annotation.id)?;
    change.record(
        conn,
        EntityType::Annotation,
        &response.id,
        action,
        &response,
    )?;
    Ok((response, version))
}

/// Marks a new region on image `image_uuid`.
pub fn create(
    conn: &mut DbConnection,
    caller: &CurrentUser,
    change: &Change,
    image_uuid: &str,
    request: &AnnotationRequest<'_>,
) -> Result<(AnnotationResponse, i32), ApiError> {
    let image = super::images::find_editable(conn, caller, image_uuid)?;
    let shape = Shape::from_name(request.shape)
        .ok_or_else(|| ApiError::field("shape", "must be box, polygon or point"))?;
    let label = active_label(conn, request.label_id)?;
    let geometry = checked_geometry(&image, shape, request.geometry)?;
    let frame = request.frame.unwrap_or(0);
    check_frame(&image, frame)?;
    let annotation = annotations::insert_annotation(
        conn,
        NewAnnotation {
            image_id: image.id,
            label_id: label.id,
            shape: shape.name(),
            geometry: &geometry,
            frame,
            note: request.note,
            created_by: caller.id,
        },
    )?;
    recorded(conn, change, &image, &annotation, Action::Create)
}

/// The live annotation `uuid` and its live image, if the caller may change them (404 when
/// either is gone or the image is invisible, 403 when it is visible but not theirs). Locks
/// the image row, then the annotation's.
fn find_editable(
    conn: &mut DbConnection,
    caller: &CurrentUser,
    uuid: &str,
) -> Result<(Annotation, Image), ApiError> {
    let annotation = annotations::find_any(conn, uuid)?;
    if annotation.deleted_at.is_some() {
        return Err(ApiError::NotFound);
    }
    let image = images::find_by_id(conn, annotation.image_id)?;
    let image = super::images::find_editable(conn, caller, &image.uuid)?;
    annotations::lock(conn, uuid)?;
    Ok((annotations::find_any(conn, uuid)?, image))
}

/// Changes annotation `uuid` as the client read it.
pub fn update(
    conn: &mut DbConnection,
    caller: &CurrentUser,
    change: &Change,
    uuid: &str,
    precondition: &Precondition,
    patch: &AnnotationPatch<'_>,
) -> Result<(AnnotationResponse, i32), ApiError> {
    let (updated, image) = until_written(conn, |conn| {
        let (annotation, image) = find_editable(conn, caller, uuid)?;
        precondition.check(annotation.version)?;
        // The label it has keeps it, as a diagnosis keeps a deactivated label.
        let label_id = match patch.label_id {
            Some(label) => match labels::find(conn, label) {
                Ok(held) if held.id == annotation.label_id => Some(held.id),
                Ok(_) | Err(diesel::result::Error::NotFound) => Some(active_label(conn, label)?.id),
                Err(e) => return Err(e.into()),
            },
            None => None,
        };
        let shape = Shape::from_name(&annotation.shape)
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("unknown stored shape")))?;
        let geometry = patch
            .geometry
            .map(|g| checked_geometry(&image, shape, g))
            .transpose()?;
        let changes = AnnotationChanges {
            label_id,
            geometry: geometry.as_deref(),
            note: patch.note,
            delete: false,
        };
        Ok(
            annotations::update(conn, annotation.id, annotation.version, &changes)?
                .map(|a| (a, image)),
        )
    })?;
    recorded(conn, change, &image, &updated, Action::Update)
}

/// Deletes annotation `uuid` (it stays in history; a revert brings it back).
pub fn delete(
    conn: &mut DbConnection,
    caller: &CurrentUser,
    change: &Change,
    uuid: &str,
    precondition: &Precondition,
) -> Result<(), ApiError> {
    let (deleted, image) = until_written(conn, |conn| {
        let (annotation, image) = find_editable(conn, caller, uuid)?;
        precondition.check(annotation.version)?;
        let changes = AnnotationChanges {
            delete: true,
            ..Default::default()
        };
        Ok(
            annotations::update(conn, annotation.id, annotation.version, &changes)?
                .map(|a| (a, image)),
        )
    })?;
    recorded(conn, change, &image, &deleted, Action::Delete)?;
    Ok(())
}

/// Restores annotation `uuid` (deleted or not) to a snapshot, under the rules of a direct
/// write: its image must be live and the caller's to change, the snapshot's label active (422
/// `label_id` naming it), its geometry and frame valid on the image.
pub fn revert(
    conn: &mut DbConnection,
    caller: &CurrentUser,
    change: &Change,
    uuid: &str,
    snapshot: &AnnotationV1,
) -> Result<(AnnotationResponse, i32), ApiError> {
    let annotation = annotations::find_any(conn, uuid)?;
    let image = images::find_by_id(conn, annotation.image_id)?;
    if image.deleted_at.is_some() {
        super::images::authorise_edit(caller, &image)?;
        return Err(ApiError::field(
            "id",
            "the annotation's image was deleted: restore the image first",
        ));
    }
    let image = super::images::find_editable(conn, caller, &image.uuid)?;
    annotations::lock(conn, uuid)?;
    let label = active_label(conn, &snapshot.label.id)?;
    let shape = Shape::from_name(&snapshot.shape)
        .ok_or_else(|| ApiError::field("id", "the snapshot's shape is not known"))?;
    let geometry = checked_geometry(&image, shape, &snapshot.geometry)?;
    check_frame(&image, snapshot.frame)?;
    annotations::restore(
        conn,
        annotation.id,
        &RestoredAnnotation {
            label_id: label.id,
            geometry: &geometry,
            frame: snapshot.frame,
            note: snapshot.note.as_deref(),
        },
    )?;
    recorded(conn, change, &image, &annotation, Action::Revert)
}
