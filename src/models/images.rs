//! `images` (file metadata; the bytes live in object storage) and their diagnoses
//! (`image_labels`). Deleted images keep their row (`deleted_at`) for history.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::new_uuid;
use super::patients::Patient;
use crate::db::schema::{disease_codes, image_labels, images, label_diseases, labels, patients};
use crate::db::{now, DbConnection};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = images)]
pub struct Image {
    pub id: i64,
    pub uuid: String,
    pub uploaded_by: i64,
    pub description: Option<String>,
    pub content_type: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub original_filename: Option<String>,
    pub object_key: String,
    pub version: i32,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub deleted_at: Option<NaiveDateTime>,
    pub patient_id: Option<i64>,
    pub study_id: Option<i64>,
    pub series_id: Option<i64>,
    pub sop_instance_uid: Option<String>,
    pub modality: Option<String>,
    /// Burned In Annotation (0028,0301) is `YES`: withheld from researchers.
    pub burned_in_annotation: bool,
    /// The identifiers its own file gave, one per line (see `text::identifier_terms`).
    pub redaction_terms: Option<String>,
    /// Number of Frames (0028,0008); 1 for single-frame images.
    pub frame_count: i32,
}

impl Image {
    /// The identifiers its own file gave.
    pub fn own_terms(&self) -> impl Iterator<Item = &str> {
        self.redaction_terms.as_deref().unwrap_or_default().lines()
    }
}

/// Where an image is filed, and what its DICOM header says about it (all empty for PNG and
/// JPEG, except a patient named by the upload form).
#[derive(Debug, Clone, Default)]
pub struct Filing<'a> {
    pub patient_id: Option<i64>,
    pub study_id: Option<i64>,
    pub series_id: Option<i64>,
    pub sop_instance_uid: Option<&'a str>,
    pub modality: Option<&'a str>,
    pub burned_in_annotation: bool,
    /// One per line.
    pub redaction_terms: Option<String>,
    /// Number of Frames (0028,0008) of a multi-frame DICOM; `None` (stored as 1) otherwise.
    pub number_of_frames: Option<i32>,
}

pub struct NewImage<'a> {
    pub uploaded_by: i64,
    pub description: Option<&'a str>,
    pub content_type: &'a str,
    pub size_bytes: i64,
    pub sha256: &'a str,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub original_filename: Option<&'a str>,
    pub object_key: &'a str,
    pub filing: Filing<'a>,
}

pub fn insert_image(conn: &mut DbConnection, new: NewImage<'_>) -> QueryResult<Image> {
    let (uuid, at) = (new_uuid(), now());
    diesel::insert_into(images::table)
        .values((
            images::uuid.eq(&uuid),
            images::uploaded_by.eq(new.uploaded_by),
            images::description.eq(new.description),
            images::content_type.eq(new.content_type),
            images::size_bytes.eq(new.size_bytes),
            images::sha256.eq(new.sha256),
            images::width.eq(new.width),
            images::height.eq(new.height),
            images::original_filename.eq(new.original_filename),
            images::object_key.eq(new.object_key),
            images::patient_id.eq(new.filing.patient_id),
            images::study_id.eq(new.filing.study_id),
            images::series_id.eq(new.filing.series_id),
            images::sop_instance_uid.eq(new.filing.sop_instance_uid),
            images::modality.eq(new.filing.modality),
            images::burned_in_annotation.eq(new.filing.burned_in_annotation),
            images::redaction_terms.eq(&new.filing.redaction_terms),
            images::frame_count.eq(new.filing.number_of_frames.unwrap_or(1).max(1)),
            images::version.eq(1),
            images::created_at.eq(at),
            images::updated_at.eq(at),
        ))
        .execute(conn)?;
    find_live_image(conn, &uuid)
}

/// An image that has not been deleted.
pub fn find_live_image(conn: &mut DbConnection, uuid: &str) -> QueryResult<Image> {
    images::table
        .filter(images::uuid.eq(uuid))
        .filter(images::deleted_at.is_null())
        .select(Image::as_select())
        .first(conn)
}

/// The live image with SOP Instance UID `sop_instance_uid`, if any.
pub fn find_live_by_sop(
    conn: &mut DbConnection,
    sop_instance_uid: &str,
) -> QueryResult<Option<Image>> {
    images::table
        .filter(images::sop_instance_uid.eq(sop_instance_uid))
        .filter(images::deleted_at.is_null())
        .select(Image::as_select())
        .first(conn)
        .optional()
}

/// What an update of an image changes. `description: Some(None)` clears it; `delete` marks
/// the image deleted (it stays in history, and a revert brings it back).
#[derive(Debug, Clone, Copy, Default)]
pub struct ImageChanges<'a> {
    pub description: Option<Option<&'a str>>,
    pub delete: bool,
}

/// Applies `changes` when the live row is still at `version`; `None` when another change
/// came first.
pub fn update_image(
    conn: &mut DbConnection,
    id: i64,
    version: i32,
    changes: &ImageChanges<'_>,
) -> QueryResult<Option<Image>> {
    let ImageChanges {
        description,
        delete,
    } = *changes;
    let at = now();
    let target = images::table
        .filter(images::id.eq(id))
        .filter(images::version.eq(version))
        .filter(images::deleted_at.is_null());
    let updated = diesel::update(target)
        .set((
            description.map(|d| images::description.eq(d.map(str::to_owned))),
            delete.then_some(images::deleted_at.eq(Some(at))),
            images::version.eq(version + 1),
            images::updated_at.eq(at),
        ))
        .execute(conn)?;
    if updated == 0 {
        return Ok(None);
    }
    images::table
        .find(id)
        .select(Image::as_select())
        .first(conn)
        .map(Some)
}

/// What a list may be narrowed to (internal ids, resolved from the request's UUIDs).
#[derive(Debug, Default, Clone)]
pub struct ImageFilter {
    pub uploaded_by: Option<i64>,
    pub label_id: Option<i64>,
    pub disease_id: Option<i64>,
    pub code_id: Option<i64>,
    pub content_type: Option<String>,
    pub patient_id: Option<i64>,
    pub study_id: Option<i64>,
    pub modality: Option<String>,
    pub created_after: Option<NaiveDateTime>,
    pub created_before: Option<NaiveDateTime>,
    /// Leave out images withheld from researchers (Burned In Annotation YES).
    pub not_withheld: bool,
}

/// An image with its patient, if it has one (one query: a left join).
pub type ImageWithPatient = (Image, Option<Patient>);

/// The live image `uuid` with its patient.
pub fn find_live_with_patient(
    conn: &mut DbConnection,
    uuid: &str,
) -> QueryResult<ImageWithPatient> {
    images::table
        .left_join(patients::table)
        .filter(images::uuid.eq(uuid))
        .filter(images::deleted_at.is_null())
        .select((Image::as_select(), Option::<Patient>::as_select()))
        .first(conn)
}

/// A page of live images in keyset order (`uuid`, time-ordered), with their patients.
pub fn list_images(
    conn: &mut DbConnection,
    filter: &ImageFilter,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<ImageWithPatient>> {
    let mut query = images::table
        .left_join(patients::table)
        .filter(images::deleted_at.is_null())
        .select((Image::as_select(), Option::<Patient>::as_select()))
        .order(images::uuid.asc())
        .limit(limit)
        .into_boxed();
    if let Some(user) = filter.uploaded_by {
        query = query.filter(images::uploaded_by.eq(user));
    }
    if let Some(label) = filter.label_id {
        query = query.filter(
            images::id.eq_any(
                image_labels::table
                    .filter(image_labels::label_id.eq(label))
                    .select(image_labels::image_id),
            ),
        );
    }
    if let Some(disease) = filter.disease_id {
        let with_disease = image_labels::table
            .inner_join(
                label_diseases::table.on(label_diseases::label_id.eq(image_labels::label_id)),
            )
            .filter(label_diseases::disease_id.eq(disease))
            .select(image_labels::image_id);
        query = query.filter(images::id.eq_any(with_disease));
    }
    if let Some(code) = filter.code_id {
        let with_code = image_labels::table
            .inner_join(
                label_diseases::table.on(label_diseases::label_id.eq(image_labels::label_id)),
            )
            .inner_join(
                disease_codes::table.on(disease_codes::disease_id.eq(label_diseases::disease_id)),
            )
            .filter(disease_codes::code_id.eq(code))
            .select(image_labels::image_id);
        query = query.filter(images::id.eq_any(with_code));
    }
    if let Some(content_type) = &filter.content_type {
        query = query.filter(images::content_type.eq(content_type.clone()));
    }
    if let Some(patient) = filter.patient_id {
        query = query.filter(images::patient_id.eq(patient));
    }
    if let Some(study) = filter.study_id {
        query = query.filter(images::study_id.eq(study));
    }
    if let Some(modality) = &filter.modality {
        query = query.filter(images::modality.eq(modality.clone()));
    }
    if let Some(at) = filter.created_after {
        query = query.filter(images::created_at.ge(at));
    }
    if let Some(at) = filter.created_before {
        query = query.filter(images::created_at.lt(at));
    }
    if filter.not_withheld {
        query = query.filter(images::burned_in_annotation.eq(false));
    }
    if let Some(after) = after {
        query = query.filter(images::uuid.gt(after.to_owned()));
    }
    query.load(conn)
}

/// One label on one image, with the label's public id and name.
#[derive(Debug, Clone, Queryable)]
pub struct Assignment {
    pub image_id: i64,
    pub label_id: i64,
    pub note: Option<String>,
    pub assigned_by: i64,
    pub assigned_at: NaiveDateTime,
    pub label_uuid: String,
    pub label_name: String,
}

/// The labels on each image in `image_ids`, in one query (no N+1 on list pages).
pub fn assignments_of(
    conn: &mut DbConnection,
    image_ids: &[i64],
) -> QueryResult<HashMap<i64, Vec<Assignment>>> {
    let query = image_labels::table
        .inner_join(labels::table)
        .order((image_labels::assigned_at, labels::name))
        .select((
            image_labels::image_id,
            image_labels::label_id,
            image_labels::note,
            image_labels::assigned_by,
            image_labels::assigned_at,
            labels::uuid,
            labels::name,
        ));
    // One image (a read, every diagnosis change): `=` keeps the prepared statement cached;
    // diesel prepares an `IN (...)` list anew each time.
    let rows: Vec<Assignment> = match image_ids {
        [one] => query.filter(image_labels::image_id.eq(*one)).load(conn)?,
        _ => query
            .filter(image_labels::image_id.eq_any(image_ids))
            .load(conn)?,
    };
    let mut map: HashMap<i64, Vec<Assignment>> = HashMap::new();
    for row in rows {
        map.entry(row.image_id).or_default().push(row);
    }
    Ok(map)
}

pub fn assign_label(
    conn: &mut DbConnection,
    image_id: i64,
    label_id: i64,
    note: Option<&str>,
    by: i64,
) -> QueryResult<()> {
    diesel::insert_into(image_labels::table)
        .values((
            image_labels::image_id.eq(image_id),
            image_labels::label_id.eq(label_id),
            image_labels::note.eq(note),
            image_labels::assigned_by.eq(by),
            image_labels::assigned_at.eq(now()),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn unassign_label(conn: &mut DbConnection, image_id: i64, label_id: i64) -> QueryResult<bool> {
    let removed = diesel::delete(
        image_labels::table
            .filter(image_labels::image_id.eq(image_id))
            .filter(image_labels::label_id.eq(label_id)),
    )
    .execute(conn)?;
    Ok(removed > 0)
}

/// A diagnosis change is a change of the image: its version (and so its ETag) moves on.
pub fn touch_image(conn: &mut DbConnection, id: i64) -> QueryResult<()> {
    diesel::update(images::table.find(id))
        .set((
            images::version.eq(images::version + 1),
            images::updated_at.eq(now()),
        ))
        .execute(conn)?;
    Ok(())
}

/// Which of `keys` some image row (deleted or not) stores its bytes under.
pub fn referenced_keys(conn: &mut DbConnection, keys: &[String]) -> QueryResult<Vec<String>> {
    images::table
        .filter(images::object_key.eq_any(keys))
        .select(images::object_key)
        .load(conn)
}

/// Takes the write lock on image `uuid`'s row for the rest of the transaction, changing
/// nothing (on SQLite the write transaction holds the database lock already). Every write of
/// an image and its labels takes it first, so on PostgreSQL two writes of one image always lock
/// in the same order (the image row, then its label rows) and cannot deadlock.
pub fn lock_image(conn: &mut DbConnection, uuid: &str) -> QueryResult<()> {
    diesel::update(images::table.filter(images::uuid.eq(uuid)))
        .set(images::version.eq(images::version))
        .execute(conn)?;
    Ok(())
}

/// An image whether or not it was deleted (history still answers for deleted images).
pub fn find_any_image(conn: &mut DbConnection, uuid: &str) -> QueryResult<Image> {
    images::table
        .filter(images::uuid.eq(uuid))
        .select(Image::as_select())
        .first(conn)
}

/// An image by internal id, whether or not it was deleted.
pub fn find_by_id(conn: &mut DbConnection, id: i64) -> QueryResult<Image> {
    images::table
        .find(id)
        .select(Image::as_select())
        .first(conn)
}

/// Images (deleted or not) by public id, in one query.
pub fn images_by_uuids(conn: &mut DbConnection, uuids: &[String]) -> QueryResult<Vec<Image>> {
    if uuids.is_empty() {
        return Ok(Vec::new());
    }
    images::table
        .filter(images::uuid.eq_any(uuids))
        .select(Image::as_select())
        .load(conn)
}

/// Restores an image's metadata from a snapshot: live again, with this description.
pub fn restore_image(
    conn: &mut DbConnection,
    id: i64,
    description: Option<&str>,
) -> QueryResult<()> {
    diesel::update(images::table.find(id))
        .set((
            images::description.eq(description),
            images::deleted_at.eq(None::<NaiveDateTime>),
            images::version.eq(images::version + 1),
            images::updated_at.eq(now()),
        ))
        .execute(conn)?;
    Ok(())
}

/// Replaces an image's label set (a diagnosis restored from history).
pub fn replace_assignments(
    conn: &mut DbConnection,
    image_id: i64,
    rows: &[(i64, Option<String>, i64, NaiveDateTime)],
) -> QueryResult<()> {
    diesel::delete(image_labels::table.filter(image_labels::image_id.eq(image_id)))
        .execute(conn)?;
    for (label_id, note, by, at) in rows {
        diesel::insert_into(image_labels::table)
            .values((
                image_labels::image_id.eq(image_id),
                image_labels::label_id.eq(label_id),
                image_labels::note.eq(note),
                image_labels::assigned_by.eq(by),
                image_labels::assigned_at.eq(at),
            ))
            .execute(conn)?;
    }
    Ok(())
}
