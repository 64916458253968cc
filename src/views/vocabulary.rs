//! Labels, diseases and codes as the API shows them, and as their history snapshots record
//! them (schema version 1, [`crate::changes::snapshots`]).

use chrono::NaiveDateTime;
use diesel::QueryResult;
use serde::Serialize;

use super::{rfc3339, NamedRef, UserRef};
use crate::db::DbConnection;
use crate::models::codes::Code;
use crate::models::diseases::{self, Disease};
use crate::models::labels::{self, Label};
use crate::models::users::user_refs;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LabelResponse {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub diseases: Vec<NamedRef>,
    pub created_by: UserRef,
    pub is_active: bool,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-21T09:30:00.123Z")]
    pub created_at: NaiveDateTime,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-21T09:30:00.123Z")]
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DiseaseResponse {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub codes: Vec<CodeResponse>,
    pub created_by: UserRef,
    pub is_active: bool,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-21T09:30:00.123Z")]
    pub created_at: NaiveDateTime,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-21T09:30:00.123Z")]
    pub updated_at: NaiveDateTime,
}

/// `Code` on the wire.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"id": "01936f0e-6d2a-7c3b-9a10-2f5e8d1c4b77", "system": "icd-10", "code": "J18.9", "description": "Pneumonia, unspecified organism", "billable": true, "is_active": true}))]
pub struct CodeResponse {
    pub id: String,
    pub system: String,
    pub code: String,
    pub description: String,
    pub billable: bool,
    pub is_active: bool,
}

impl From<Code> for CodeResponse {
    fn from(c: Code) -> Self {
        CodeResponse {
            id: c.uuid,
            system: c.system_id,
            code: c.code,
            description: c.description,
            billable: c.billable,
            is_active: c.is_active,
        }
    }
}

/// The responses for some labels: their diseases and creators, in two queries.
pub fn label_responses(
    conn: &mut DbConnection,
    rows: Vec<Label>,
) -> QueryResult<Vec<LabelResponse>> {
    let ids: Vec<i64> = rows.iter().map(|l| l.id).collect();
    let creators: Vec<i64> = rows.iter().map(|l| l.created_by).collect();
    let mut linked = labels::links_of(conn, &ids)?;
    let users = user_refs(conn, &creators)?;
    Ok(rows
        .into_iter()
        .map(|l| LabelResponse {
            diseases: linked
                .remove(&l.id)
                .unwrap_or_default()
                .into_iter()
                .map(|d| NamedRef {
                    id: d.uuid,
                    name: d.name,
                })
                .collect(),
            created_by: UserRef::of(&users, l.created_by),
            id: l.uuid,
            name: l.name,
            description: l.description,
            is_active: l.is_active,
            created_at: l.created_at,
            updated_at: l.updated_at,
        })
        .collect())
}

/// The responses for some diseases: their codes and creators, in two queries.
pub fn disease_responses(
    conn: &mut DbConnection,
    rows: Vec<Disease>,
) -> QueryResult<Vec<DiseaseResponse>> {
    let ids: Vec<i64> = rows.iter().map(|d| d.id).collect();
    let creators: Vec<i64> = rows.iter().map(|d| d.created_by).collect();
    let mut linked = diseases::links_of(conn, &ids)?;
    let users = user_refs(conn, &creators)?;
    Ok(rows
        .into_iter()
        .map(|d| DiseaseResponse {
            codes: linked
                .remove(&d.id)
                .unwrap_or_default()
                .into_iter()
                .map(CodeResponse::from)
                .collect(),
            created_by: UserRef::of(&users, d.created_by),
            id: d.uuid,
            name: d.name,
            description: d.description,
            is_active: d.is_active,
            created_at: d.created_at,
            updated_at: d.updated_at,
        })
        .collect())
}
