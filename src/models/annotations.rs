//! `annotations`: regions on images, one label each. A deleted annotation keeps its row
//! (`deleted_at`) for history and revert; `version` moves with every change (the ETag).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::new_uuid;
use crate::db::schema::{annotations, images, labels};
use crate::db::{now, DbConnection};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = annotations)]
pub struct Annotation {
    pub id: i64,
    pub uuid: String,
    pub image_id: i64,
    pub label_id: i64,
    /// `box`, `polygon` or `point` (`geometry::Shape`).
    pub shape: String,
    /// The geometry's JSON (`geometry::Geometry`).
    pub geometry: String,
    pub frame: i32,
    pub note: Option<String>,
    pub created_by: i64,
    pub version: i32,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub deleted_at: Option<NaiveDateTime>,
}

/// An annotation with what its response names: the image's and the label's public ids and
/// the label's name.
pub type AnnotationWithRefs = (Annotation, String, (String, String));

pub struct NewAnnotation<'a> {
    pub image_id: i64,
    pub label_id: i64,
    pub shape: &'a str,
    pub geometry: &'a str,
    pub frame: i32,
    pub note: Option<&'a str>,
    pub created_by: i64,
}

pub fn insert_annotation(
    conn: &mut DbConnection,
    new: NewAnnotation<'_>,
) -> QueryResult<Annotation> {
    let (uuid, at) = (new_uuid(), now());
    diesel::insert_into(annotations::table)
        .values((
            annotations::uuid.eq(&uuid),
            annotations::image_id.eq(new.image_id),
            annotations::label_id.eq(new.label_id),
            annotations::shape.eq(new.shape),
            annotations::geometry.eq(new.geometry),
            annotations::frame.eq(new.frame),
            annotations::note.eq(new.note),
            annotations::created_by.eq(new.created_by),
            annotations::version.eq(1),
            annotations::created_at.eq(at),
            annotations::updated_at.eq(at),
        ))
        .execute(conn)?;
    find_any(conn, &uuid)
}

/// An annotation whether or not it was deleted.
pub fn find_any(conn: &mut DbConnection, uuid: &str) -> QueryResult<Annotation> {
    annotations::table
        .filter(annotations::uuid.eq(uuid))
        .select(Annotation::as_select())
        .first(conn)
}

/// Annotations with their image's and label's public ids and the label's name, in one query.
pub fn with_refs(conn: &mut DbConnection, ids: &[i64]) -> QueryResult<Vec<AnnotationWithRefs>> {
    let query = annotations::table
        .inner_join(images::table)
        .inner_join(labels::table)
        .select((
            Annotation::as_select(),
            images::uuid,
            (labels::uuid, labels::name),
        ))
        .order(annotations::id);
    match ids {
        [one] => query.filter(annotations::id.eq(*one)).load(conn),
        _ => query.filter(annotations::id.eq_any(ids)).load(conn),
    }
}

/// The live annotations of an image, in the order they were made.
pub fn of_image(conn: &mut DbConnection, image_id: i64) -> QueryResult<Vec<AnnotationWithRefs>> {
    annotations::table
        .inner_join(images::table)
        .inner_join(labels::table)
        .filter(annotations::image_id.eq(image_id))
        .filter(annotations::deleted_at.is_null())
        .select((
            Annotation::as_select(),
            images::uuid,
            (labels::uuid, labels::name),
        ))
        .order(annotations::id)
        .load(conn)
}

/// Takes the write lock on annotation `uuid`'s row for the rest of the transaction, changing
/// nothing (see `images::lock_image`: the image row is locked first, then this one).
pub fn lock(conn: &mut DbConnection, uuid: &str) -> QueryResult<()> {
    diesel::update(annotations::table.filter(annotations::uuid.eq(uuid)))
        .set(annotations::version.eq(annotations::version))
        .execute(conn)?;
    Ok(())
}

/// What an update changes; `note: Some(None)` clears the note, `delete` marks it deleted.
#[derive(Debug, Clone, Copy, Default)]
pub struct AnnotationChanges<'a> {
    pub label_id: Option<i64>,
    pub geometry: Option<&'a str>,
    pub note: Option<Option<&'a str>>,
    pub delete: bool,
}

/// Applies `changes` when the live row is still at `version`; `None` when another change
/// came first.
pub fn update(
    conn: &mut DbConnection,
    id: i64,
    version: i32,
    changes: &AnnotationChanges<'_>,
) -> QueryResult<Option<Annotation>> {
    let at = now();
    let target = annotations::table
        .filter(annotations::id.eq(id))
        .filter(annotations::version.eq(version))
        .filter(annotations::deleted_at.is_null());
    let updated = diesel::update(target)
        .set((
            changes.label_id.map(|l| annotations::label_id.eq(l)),
            changes.geometry.map(|g| annotations::geometry.eq(g)),
            changes
                .note
                .map(|n| annotations::note.eq(n.map(str::to_owned))),
            changes
                .delete
                .then_some(annotations::deleted_at.eq(Some(at))),
            annotations::version.eq(version + 1),
            annotations::updated_at.eq(at),
        ))
        .execute(conn)?;
    if updated == 0 {
        return Ok(None);
    }
    annotations::table
        .find(id)
        .select(Annotation::as_select())
        .first(conn)
        .map(Some)
}

/// The state a revert restores.
pub struct RestoredAnnotation<'a> {
    pub label_id: i64,
    pub geometry: &'a str,
    pub frame: i32,
    pub note: Option<&'a str>,
}

/// Restores an annotation from a snapshot: live again, with this label, geometry, frame and
/// note.
pub fn restore(
    conn: &mut DbConnection,
    id: i64,
    state: &RestoredAnnotation<'_>,
) -> QueryResult<()> {
    diesel::update(annotations::table.find(id))
        .set((
            annotations::label_id.eq(state.label_id),
            annotations::geometry.eq(state.geometry),
            annotations::frame.eq(state.frame),
            annotations::note.eq(state.note),
            annotations::deleted_at.eq(None::<NaiveDateTime>),
            annotations::version.eq(annotations::version + 1),
            annotations::updated_at.eq(now()),
        ))
        .execute(conn)?;
    Ok(())
}
