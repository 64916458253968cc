//! History entries as the API shows them: the snapshot as recorded, except that an image
//! snapshot is de-identified (`original_filename: null`) for a caller who sees the image
//! de-identified ([`crate::auth::policy::image_view`]).

use chrono::NaiveDateTime;
use serde::Serialize;
use serde_json::Value;

use super::{rfc3339, UserRef};
use crate::auth::policy::{self, ImageView, Uploader};
use crate::auth::CurrentUser;
use crate::models::history::HistoryWithUser;

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

/// The entry as `caller` sees it.
pub fn entry_response(
    caller: &CurrentUser,
    (row, (user_id, username)): HistoryWithUser,
) -> HistoryEntryResponse {
    let mut snapshot: Value = serde_json::from_str(&row.snapshot).unwrap_or(Value::Null);
    if row.entity_type == "image" {
        let uploader = snapshot["uploaded_by"]["id"].as_str().unwrap_or_default();
        if policy::image_view(caller, Uploader::Uuid(uploader)) != Some(ImageView::Full) {
            if let Some(object) = snapshot.as_object_mut() {
                object.insert("original_filename".into(), Value::Null);
            }
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
