//! History entries as the API shows them: the snapshot as recorded, except that an image
//! snapshot shown to a caller who sees the image de-identified
//! ([`crate::auth::policy::image_view`]: researchers) follows the image's own rules: no
//! `original_filename`, no patient, the study as `{"id"}`, no series or SOP Instance UID,
//! `withheld` as for the image, and the description and notes with the patient's identifiers
//! `[redacted]`. An annotation snapshot shown to such a caller has its note redacted the same way.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::QueryResult;
use serde::Serialize;
use serde_json::Value;

use super::images::Filings;
use super::{rfc3339, UserRef};
use crate::auth::policy::{self, ImageView, Uploader};
use crate::auth::CurrentUser;
use crate::db::DbConnection;
use crate::models::history::HistoryWithUser;
use crate::models::images;
use crate::text::Redactor;

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

/// What de-identifying an image's snapshots needs: its redactor and whether it is withheld.
#[derive(Default)]
pub struct ImageFacts(HashMap<String, (Option<Redactor>, bool)>);

impl ImageFacts {
    /// The facts of the images among `rows` that `caller` sees de-identified, in a constant
    /// number of queries (none when the caller sees every image whole).
    pub fn load(
        conn: &mut DbConnection,
        caller: &CurrentUser,
        rows: &[HistoryWithUser],
    ) -> QueryResult<ImageFacts> {
        if caller.is_admin() {
            return Ok(ImageFacts::default());
        }
        let mut uuids: Vec<String> = rows
            .iter()
            .filter_map(|(r, _)| match r.entity_type.as_str() {
                "image" => Some(r.entity_id.clone()),
                "annotation" => annotation_image(&r.snapshot),
                _ => None,
            })
            .collect();
        uuids.sort_unstable();
        uuids.dedup();
        let rows: Vec<_> = images::images_by_uuids(conn, &uuids)?
            .into_iter()
            .filter(|i| {
                policy::image_view(caller, Uploader::Id(i.uploaded_by))
                    == Some(ImageView::Deidentified)
            })
            .collect();
        let filings = Filings::load(conn, &rows)?;
        Ok(ImageFacts(
            rows.into_iter()
                .map(|i| {
                    let redactor = filings.redactor(&i);
                    (i.uuid, (redactor, i.burned_in_annotation))
                })
                .collect(),
        ))
    }
}

/// The image id an annotation snapshot names.
fn annotation_image(snapshot: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct OnImage {
        image_id: String,
    }
    serde_json::from_str::<OnImage>(snapshot)
        .ok()
        .map(|s| s.image_id)
}

/// The entry as `caller` sees it.
pub fn entry_response(
    caller: &CurrentUser,
    facts: &ImageFacts,
    (row, (user_id, username)): HistoryWithUser,
) -> HistoryEntryResponse {
    let mut snapshot: Value = serde_json::from_str(&row.snapshot).unwrap_or(Value::Null);
    if row.entity_type == "image" {
        let uploader = snapshot["uploaded_by"]["id"].as_str().unwrap_or_default();
        if policy::image_view(caller, Uploader::Uuid(uploader)) != Some(ImageView::Full) {
            let (redactor, withheld) = facts
                .0
                .get(&row.entity_id)
                .map(|(r, w)| (r.as_ref(), *w))
                .unwrap_or((None, false));
            deidentify_image_snapshot(&mut snapshot, redactor, withheld);
        }
    }
    if row.entity_type == "annotation" {
        // Seen de-identified exactly when the image's facts were loaded for this caller.
        let image = snapshot["image_id"].as_str().unwrap_or_default();
        if let Some((Some(redactor), _)) = facts.0.get(image) {
            if let Some(Value::String(note)) = snapshot.get_mut("note") {
                *note = redactor.redact(note);
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

/// An image snapshot (any schema version) as a researcher sees the image.
fn deidentify_image_snapshot(snapshot: &mut Value, redactor: Option<&Redactor>, withheld: bool) {
    let Some(object) = snapshot.as_object_mut() else {
        return;
    };
    object.insert("original_filename".into(), Value::Null);
    if object.contains_key("patient") {
        object.insert("patient".into(), Value::Null);
        object.insert("series_instance_uid".into(), Value::Null);
        object.insert("sop_instance_uid".into(), Value::Null);
        object.insert("withheld".into(), Value::Bool(withheld));
        if let Some(study) = object.get_mut("study").and_then(Value::as_object_mut) {
            study.retain(|k, _| k == "id");
        }
    }
    let Some(redactor) = redactor else {
        return;
    };
    let redact = |value: &mut Value| {
        if let Value::String(text) = value {
            *text = redactor.redact(text);
        }
    };
    if let Some(description) = object.get_mut("description") {
        redact(description);
    }
    if let Some(Value::Array(labels)) = object.get_mut("labels") {
        for label in labels {
            if let Some(note) = label.get_mut("note") {
                redact(note);
            }
        }
    }
}
