//! `datasets` and what each holds (`dataset_images`, `dataset_diagnoses`,
//! `dataset_annotations`, `dataset_labels`): copied when the dataset is frozen, in one
//! transaction, and never changed after. Archive order is the internal image id (upload
//! order), then the annotation id; both never change.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::BigInt;

use super::new_uuid;
use crate::db::schema::{
    annotations, dataset_annotations, dataset_diagnoses, dataset_images, dataset_labels, datasets,
    image_labels, images, labels, patients, studies,
};
use crate::db::{now, DbConnection};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = datasets)]
pub struct Dataset {
    pub id: i64,
    pub uuid: String,
    pub name: String,
    pub description: Option<String>,
    /// The filter as given, JSON.
    pub filter: String,
    pub created_by: i64,
    pub created_at: NaiveDateTime,
    pub image_count: i32,
    pub annotation_count: i32,
}

/// Makes every read of the current transaction see one snapshot of the database, so a freeze
/// copies images, diagnoses and annotations as they were at one instant: on PostgreSQL
/// `REPEATABLE READ` (it must be the transaction's first statement); SQLite's write
/// transaction is serializable already.
pub fn read_one_snapshot(conn: &mut DbConnection) -> QueryResult<()> {
    if let DbConnection::Postgres(c) = conn {
        diesel::sql_query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ").execute(c)?;
    }
    Ok(())
}

/// Creates the dataset row (counts 0 until [`freeze`] fills it).
pub fn insert_dataset(
    conn: &mut DbConnection,
    name: &str,
    description: Option<&str>,
    filter: &str,
    created_by: i64,
) -> QueryResult<Dataset> {
    let uuid = new_uuid();
    diesel::insert_into(datasets::table)
        .values((
            datasets::uuid.eq(&uuid),
            datasets::name.eq(name),
            datasets::description.eq(description),
            datasets::filter.eq(filter),
            datasets::created_by.eq(created_by),
            datasets::created_at.eq(now()),
            datasets::image_count.eq(0),
            datasets::annotation_count.eq(0),
        ))
        .execute(conn)?;
    find(conn, &uuid)
}

pub fn find(conn: &mut DbConnection, uuid: &str) -> QueryResult<Dataset> {
    datasets::table
        .filter(datasets::uuid.eq(uuid))
        .select(Dataset::as_select())
        .first(conn)
}

/// A page of datasets in keyset order (`uuid`, time-ordered).
pub fn list(conn: &mut DbConnection, after: Option<&str>, limit: i64) -> QueryResult<Vec<Dataset>> {
    let mut query = datasets::table
        .select(Dataset::as_select())
        .order(datasets::uuid.asc())
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(datasets::uuid.gt(after.to_owned()));
    }
    query.load(conn)
}

/// Adds images `(id, version)` to dataset `dataset` (one page of the selection).
pub fn add_images(conn: &mut DbConnection, dataset: i64, rows: &[(i64, i32)]) -> QueryResult<()> {
    let values: Vec<_> = rows
        .iter()
        .map(|(image, version)| {
            (
                dataset_images::dataset_id.eq(dataset),
                dataset_images::image_id.eq(*image),
                dataset_images::image_version.eq(*version),
            )
        })
        .collect();
    match conn {
        DbConnection::Postgres(c) => {
            diesel::insert_into(dataset_images::table)
                .values(&values)
                .execute(c)?;
        }
        // One cached prepared insert per row (see `codes::import_codes`).
        DbConnection::Sqlite(c) => {
            for row in &values {
                diesel::insert_into(dataset_images::table)
                    .values(row)
                    .execute(c)?;
            }
        }
    }
    Ok(())
}

/// Copies the diagnoses and the live annotations of the dataset's images, and the labels they
/// use with their names now; sets the counts. Returns `(image_count, annotation_count)`.
pub fn freeze(conn: &mut DbConnection, dataset: i64) -> QueryResult<(i32, i32)> {
    let held = dataset_images::table
        .filter(dataset_images::dataset_id.eq(dataset))
        .select(dataset_images::image_id);
    diesel::insert_into(dataset_diagnoses::table)
        .values(
            image_labels::table
                .filter(image_labels::image_id.eq_any(held))
                .select((
                    dataset.into_sql::<BigInt>(),
                    image_labels::image_id,
                    image_labels::label_id,
                )),
        )
        .into_columns((
            dataset_diagnoses::dataset_id,
            dataset_diagnoses::image_id,
            dataset_diagnoses::label_id,
        ))
        .execute(conn)?;
    let held = dataset_images::table
        .filter(dataset_images::dataset_id.eq(dataset))
        .select(dataset_images::image_id);
    let annotation_count = diesel::insert_into(dataset_annotations::table)
        .values(
            annotations::table
                .filter(annotations::image_id.eq_any(held))
                .filter(annotations::deleted_at.is_null())
                .select((
                    dataset.into_sql::<BigInt>(),
                    annotations::image_id,
                    annotations::id,
                    annotations::version,
                    annotations::label_id,
                    annotations::shape,
                    annotations::geometry,
                    annotations::frame,
                )),
        )
        .into_columns((
            dataset_annotations::dataset_id,
            dataset_annotations::image_id,
            dataset_annotations::annotation_id,
            dataset_annotations::annotation_version,
            dataset_annotations::label_id,
            dataset_annotations::shape,
            dataset_annotations::geometry,
            dataset_annotations::frame,
        ))
        .execute(conn)?;
    let mut used: Vec<i64> = dataset_diagnoses::table
        .filter(dataset_diagnoses::dataset_id.eq(dataset))
        .select(dataset_diagnoses::label_id)
        .distinct()
        .load(conn)?;
    used.extend(
        dataset_annotations::table
            .filter(dataset_annotations::dataset_id.eq(dataset))
            .select(dataset_annotations::label_id)
            .distinct()
            .load::<i64>(conn)?,
    );
    used.sort_unstable();
    used.dedup();
    let named: Vec<(i64, String)> = labels::table
        .filter(labels::id.eq_any(&used))
        .select((labels::id, labels::name))
        .load(conn)?;
    for (label, name) in named {
        diesel::insert_into(dataset_labels::table)
            .values((
                dataset_labels::dataset_id.eq(dataset),
                dataset_labels::label_id.eq(label),
                dataset_labels::name.eq(name),
            ))
            .execute(conn)?;
    }
    let image_count: i64 = dataset_images::table
        .filter(dataset_images::dataset_id.eq(dataset))
        .count()
        .get_result(conn)?;
    let counts = (
        i32::try_from(image_count).unwrap_or(i32::MAX),
        i32::try_from(annotation_count).unwrap_or(i32::MAX),
    );
    diesel::update(datasets::table.find(dataset))
        .set((
            datasets::image_count.eq(counts.0),
            datasets::annotation_count.eq(counts.1),
        ))
        .execute(conn)?;
    Ok(counts)
}

/// A dataset's label as frozen: internal id, public id, name then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrozenLabel {
    pub id: i64,
    pub uuid: String,
    pub name: String,
}

/// The labels of each dataset in `ids`, in name order (byte order of the frozen name, then
/// the label's id: the same on every backend, whatever its collation).
pub fn labels_of(
    conn: &mut DbConnection,
    ids: &[i64],
) -> QueryResult<HashMap<i64, Vec<FrozenLabel>>> {
    let rows: Vec<(i64, i64, String, String)> = dataset_labels::table
        .inner_join(labels::table)
        .filter(dataset_labels::dataset_id.eq_any(ids))
        .select((
            dataset_labels::dataset_id,
            dataset_labels::label_id,
            labels::uuid,
            dataset_labels::name,
        ))
        .load(conn)?;
    let mut map: HashMap<i64, Vec<FrozenLabel>> = HashMap::new();
    for (dataset, id, uuid, name) in rows {
        map.entry(dataset)
            .or_default()
            .push(FrozenLabel { id, uuid, name });
    }
    for labels in map.values_mut() {
        labels.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.uuid.cmp(&b.uuid)));
    }
    Ok(map)
}

/// One image of a dataset, with what an export names: its public id and file facts, its
/// subject and study, and the stored original a de-identified copy is made from. None of
/// these change after upload.
#[derive(Debug, Clone, Queryable)]
pub struct FrozenImage {
    pub id: i64,
    pub uuid: String,
    pub content_type: String,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub modality: Option<String>,
    pub object_key: String,
    pub sop_instance_uid: Option<String>,
    pub subject_id: Option<String>,
    pub study_uuid: Option<String>,
    pub study_instance_uid: Option<String>,
}

/// A page of a dataset's images in archive order, after internal image id `after`.
pub fn images_page(
    conn: &mut DbConnection,
    dataset: i64,
    after: i64,
    limit: i64,
) -> QueryResult<Vec<FrozenImage>> {
    dataset_images::table
        .inner_join(images::table)
        .left_join(patients::table.on(images::patient_id.eq(patients::id.nullable())))
        .left_join(studies::table.on(images::study_id.eq(studies::id.nullable())))
        .filter(dataset_images::dataset_id.eq(dataset))
        .filter(dataset_images::image_id.gt(after))
        .order(dataset_images::image_id)
        .limit(limit)
        .select((
            images::id,
            images::uuid,
            images::content_type,
            images::width,
            images::height,
            images::modality,
            images::object_key,
            images::sop_instance_uid,
            patients::subject_id.nullable(),
            studies::uuid.nullable(),
            studies::study_instance_uid.nullable(),
        ))
        .load(conn)
}

/// The frozen diagnoses of images `image_ids` of a dataset: image id -> label ids.
pub fn diagnoses_of(
    conn: &mut DbConnection,
    dataset: i64,
    image_ids: &[i64],
) -> QueryResult<HashMap<i64, Vec<i64>>> {
    let rows: Vec<(i64, i64)> = dataset_diagnoses::table
        .filter(dataset_diagnoses::dataset_id.eq(dataset))
        .filter(dataset_diagnoses::image_id.eq_any(image_ids))
        .select((dataset_diagnoses::image_id, dataset_diagnoses::label_id))
        .load(conn)?;
    let mut map: HashMap<i64, Vec<i64>> = HashMap::new();
    for (image, label) in rows {
        map.entry(image).or_default().push(label);
    }
    Ok(map)
}

/// One frozen annotation: as it was when the dataset was made.
#[derive(Debug, Clone, Queryable)]
pub struct FrozenAnnotation {
    pub image_id: i64,
    pub annotation_id: i64,
    pub uuid: String,
    pub label_id: i64,
    pub shape: String,
    pub geometry: String,
    pub frame: i32,
}

/// The frozen annotations of images `image_ids` of a dataset, in archive order.
pub fn annotations_of(
    conn: &mut DbConnection,
    dataset: i64,
    image_ids: &[i64],
) -> QueryResult<Vec<FrozenAnnotation>> {
    dataset_annotations::table
        .inner_join(annotations::table.on(annotations::id.eq(dataset_annotations::annotation_id)))
        .filter(dataset_annotations::dataset_id.eq(dataset))
        .filter(dataset_annotations::image_id.eq_any(image_ids))
        .order((
            dataset_annotations::image_id,
            dataset_annotations::annotation_id,
        ))
        .select((
            dataset_annotations::image_id,
            dataset_annotations::annotation_id,
            annotations::uuid,
            dataset_annotations::label_id,
            dataset_annotations::shape,
            dataset_annotations::geometry,
            dataset_annotations::frame,
        ))
        .load(conn)
}
