//! Images and their label assignments as the API shows them. A caller who sees an image
//! de-identified ([`ImageView::Deidentified`]) gets `original_filename: null`.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::QueryResult;
use serde::Serialize;

use super::{rfc3339, NamedRef, UserRef};
use crate::auth::policy::{self, ImageView, Uploader};
use crate::auth::CurrentUser;
use crate::db::DbConnection;
use crate::models::images::{self, Assignment, Image};
use crate::models::users::user_refs;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LabelAssignmentResponse {
    pub label: NamedRef,
    pub note: Option<String>,
    pub assigned_by: UserRef,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-21T09:30:00.123Z")]
    pub assigned_at: NaiveDateTime,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ImageResponse {
    pub id: String,
    pub uploaded_by: UserRef,
    pub description: Option<String>,
    pub content_type: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub original_filename: Option<String>,
    pub labels: Vec<LabelAssignmentResponse>,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-21T09:30:00.123Z")]
    pub created_at: NaiveDateTime,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-21T09:30:00.123Z")]
    pub updated_at: NaiveDateTime,
}

/// The live image `uuid` and how the caller sees it; diesel's `NotFound` when it does not
/// exist, is deleted, or is not visible to the caller (existence is never revealed).
pub fn find_visible(
    conn: &mut DbConnection,
    caller: &CurrentUser,
    uuid: &str,
) -> QueryResult<(Image, ImageView)> {
    let image = images::find_live_image(conn, uuid)?;
    let view = policy::image_view(caller, Uploader::Id(image.uploaded_by))
        .ok_or(diesel::result::Error::NotFound)?;
    Ok((image, view))
}

/// The responses for some assignments, with their authors' names in one query.
pub fn assignment_responses(
    conn: &mut DbConnection,
    rows: &[Assignment],
) -> QueryResult<Vec<LabelAssignmentResponse>> {
    let ids: Vec<i64> = rows.iter().map(|a| a.assigned_by).collect();
    let users = user_refs(conn, &ids)?;
    Ok(rows
        .iter()
        .map(|a| assignment_response(a, &users))
        .collect())
}

fn assignment_response(
    a: &Assignment,
    users: &HashMap<i64, (String, String)>,
) -> LabelAssignmentResponse {
    LabelAssignmentResponse {
        label: NamedRef {
            id: a.label_uuid.clone(),
            name: a.label_name.clone(),
        },
        note: a.note.clone(),
        assigned_by: UserRef::of(users, a.assigned_by),
        assigned_at: a.assigned_at,
    }
}

/// The caller's responses for a page of images: labels and user names in a constant number
/// of queries.
pub fn image_responses(
    conn: &mut DbConnection,
    caller: &CurrentUser,
    rows: Vec<Image>,
) -> QueryResult<Vec<ImageResponse>> {
    let ids: Vec<i64> = rows.iter().map(|i| i.id).collect();
    let mut assignments = images::assignments_of(conn, &ids)?;
    let mut people: Vec<i64> = rows.iter().map(|i| i.uploaded_by).collect();
    people.extend(assignments.values().flatten().map(|a| a.assigned_by));
    people.sort_unstable();
    people.dedup();
    let users = user_refs(conn, &people)?;
    Ok(rows
        .into_iter()
        .map(|image| {
            let view = policy::image_view(caller, Uploader::Id(image.uploaded_by));
            let labels = assignments.remove(&image.id).unwrap_or_default();
            ImageResponse {
                id: image.uuid,
                uploaded_by: UserRef::of(&users, image.uploaded_by),
                description: image.description,
                content_type: image.content_type,
                size_bytes: image.size_bytes,
                sha256: image.sha256,
                width: image.width,
                height: image.height,
                original_filename: if view == Some(ImageView::Full) {
                    image.original_filename
                } else {
                    None
                },
                labels: labels
                    .iter()
                    .map(|a| assignment_response(a, &users))
                    .collect(),
                created_at: image.created_at,
                updated_at: image.updated_at,
            }
        })
        .collect())
}

/// The caller's response for one image, and its version (for the ETag).
pub fn image_response(
    conn: &mut DbConnection,
    caller: &CurrentUser,
    image: Image,
) -> QueryResult<(ImageResponse, i32)> {
    let version = image.version;
    let response = image_responses(conn, caller, vec![image])?
        .pop()
        .ok_or(diesel::result::Error::NotFound)?;
    Ok((response, version))
}
