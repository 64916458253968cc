//! Datasets as the API shows them (and as every export's `dataset.json` names them): the
//! same body for every researcher and admin, built only from what was frozen, so it never
//! changes.

use chrono::NaiveDateTime;
use diesel::QueryResult;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use validator::Validate;

use super::{rfc3339, NamedRef, UserRef};
use crate::db::DbConnection;
use crate::models::datasets::{self, Dataset};
use crate::models::users::user_refs;

/// Which images a dataset holds: as `GET /images` selects them for a researcher (`label_id`
/// by diagnosis). Every field is optional; an id that names nothing is 422.
#[derive(Debug, Clone, Default, Deserialize, Serialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DatasetFilter {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = Uuid)]
    pub label_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = Uuid)]
    pub disease_id: Option<String>,
    /// system:code, e.g. icd-10:J18.9
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^(icd-9|icd-10|snomed-ct):[0-9A-Za-z.]+$")]
    pub code: Option<String>,
    /// Modality (0008,0060), e.g. CT
    #[serde(skip_serializing_if = "Option::is_none")]
    #[validate(length(min = 1, max = 16, message = "must be 1 to 16 characters"))]
    #[schema(min_length = 1, max_length = 16)]
    pub modality: Option<String>,
    /// A subject pseudonym (`S-` + 16 base32 characters)
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^S-[A-Z2-7]{16}$")]
    pub subject_id: Option<String>,
    /// Inclusive lower bound on the image's created_at
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub created_after: Option<String>,
    /// Exclusive upper bound on the image's created_at
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub created_before: Option<String>,
}

/// `Dataset`: a frozen selection of images with their diagnoses and annotations.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DatasetResponse {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    /// The filter it was made with, as given.
    #[schema(value_type = DatasetFilter)]
    pub filter: Value,
    pub created_by: UserRef,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-21T09:30:00.123Z")]
    pub created_at: NaiveDateTime,
    pub image_count: i32,
    pub annotation_count: i32,
    /// Every label its diagnoses or annotations use, in name order, named as they were when
    /// it was frozen.
    pub labels: Vec<NamedRef>,
}

/// The responses for `rows`, in a constant number of queries.
pub fn dataset_responses(
    conn: &mut DbConnection,
    rows: Vec<Dataset>,
) -> QueryResult<Vec<DatasetResponse>> {
    let ids: Vec<i64> = rows.iter().map(|d| d.id).collect();
    let mut labels = datasets::labels_of(conn, &ids)?;
    let users: Vec<i64> = rows.iter().map(|d| d.created_by).collect();
    let users = user_refs(conn, &users)?;
    Ok(rows
        .into_iter()
        .map(|d| DatasetResponse {
            labels: labels
                .remove(&d.id)
                .unwrap_or_default()
                .into_iter()
                .map(|l| NamedRef {
                    id: l.uuid,
                    name: l.name,
                })
                .collect(),
            id: d.uuid,
            name: d.name,
            description: d.description,
            filter: serde_json::from_str(&d.filter).unwrap_or(Value::Null),
            created_by: UserRef::of(&users, d.created_by),
            created_at: d.created_at,
            image_count: d.image_count,
            annotation_count: d.annotation_count,
        })
        .collect())
}

/// The response for one dataset.
pub fn dataset_response(conn: &mut DbConnection, row: Dataset) -> QueryResult<DatasetResponse> {
    dataset_responses(conn, vec![row])?
        .pop()
        .ok_or(diesel::result::Error::NotFound)
}
