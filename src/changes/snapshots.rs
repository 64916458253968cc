//! History snapshots read back, typed, for revert. A snapshot is the entity's response body
//! as it was after a change ([`crate::views`]); its shape is fixed per `schema_version`.
//!
//! Every field of a version is listed (the ones revert does not use as [`IgnoredAny`]) and
//! unknown fields are refused, so a response type whose fields change without a new schema
//! version fails loudly (the unit test below serialises today's responses and reads them back)
//! instead of reverting to defaults. A release that changes a shape adds a `V2` here, bumps
//! [`EntityType::schema_version`], and keeps reading every older version.
//!
//! | entity | versions |
//! |---|---|
//! | label, disease, code | 1 |
//! | annotation | 1 |
//! | image | 1; 2 adds `patient`, `subject_id`, `study`, `series_instance_uid`, `sop_instance_uid`, `modality`, `withheld` |

use serde::de::IgnoredAny;
use serde::Deserialize;

use crate::error::ApiError;
use crate::history::EntityType;

/// `{"id": ...}`, ignoring the rest of a reference (`name`, `username`).
#[derive(Debug, Deserialize)]
pub struct RefV1 {
    pub id: String,
    #[serde(alias = "name", alias = "username")]
    pub _label: IgnoredAny,
}

/// A label, schema version 1 (`LabelResponse`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelV1 {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub diseases: Vec<RefV1>,
    pub created_by: IgnoredAny,
    pub is_active: bool,
    pub created_at: IgnoredAny,
    pub updated_at: IgnoredAny,
}

/// A code, schema version 1 (`CodeResponse`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeV1 {
    pub id: String,
    pub system: String,
    pub code: String,
    pub description: String,
    pub billable: IgnoredAny,
    pub is_active: bool,
}

/// A disease, schema version 1 (`DiseaseResponse`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiseaseV1 {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub codes: Vec<CodeV1>,
    pub created_by: IgnoredAny,
    pub is_active: bool,
    pub created_at: IgnoredAny,
    pub updated_at: IgnoredAny,
}

/// A label on an image, schema version 1 (`LabelAssignmentResponse`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssignmentV1 {
    pub label: RefV1,
    pub note: Option<String>,
    pub assigned_by: RefV1,
    /// RFC 3339.
    pub assigned_at: String,
}

/// An image, schema version 1 (`ImageResponse`, as its editor sees it).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageV1 {
    pub id: String,
    pub uploaded_by: RefV1,
    pub description: Option<String>,
    pub content_type: IgnoredAny,
    pub size_bytes: IgnoredAny,
    pub sha256: IgnoredAny,
    pub width: IgnoredAny,
    pub height: IgnoredAny,
    pub original_filename: IgnoredAny,
    pub labels: Vec<AssignmentV1>,
    pub created_at: IgnoredAny,
    pub updated_at: IgnoredAny,
}

/// An image, schema version 2 (`ImageResponse` with its filing, as its editor sees it). The
/// filing comes from the file and never changes, so revert uses what version 1 has.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageV2 {
    pub id: String,
    pub uploaded_by: RefV1,
    pub description: Option<String>,
    pub content_type: IgnoredAny,
    pub size_bytes: IgnoredAny,
    pub sha256: IgnoredAny,
    pub width: IgnoredAny,
    pub height: IgnoredAny,
    pub original_filename: IgnoredAny,
    pub labels: Vec<AssignmentV1>,
    pub patient: IgnoredAny,
    pub subject_id: IgnoredAny,
    pub study: IgnoredAny,
    pub series_instance_uid: IgnoredAny,
    pub sop_instance_uid: IgnoredAny,
    pub modality: IgnoredAny,
    pub withheld: IgnoredAny,
    pub created_at: IgnoredAny,
    pub updated_at: IgnoredAny,
}

impl From<ImageV2> for ImageV1 {
    fn from(v2: ImageV2) -> Self {
        ImageV1 {
            id: v2.id,
            uploaded_by: v2.uploaded_by,
            description: v2.description,
            content_type: IgnoredAny,
            size_bytes: IgnoredAny,
            sha256: IgnoredAny,
            width: IgnoredAny,
            height: IgnoredAny,
            original_filename: IgnoredAny,
            labels: v2.labels,
            created_at: IgnoredAny,
            updated_at: IgnoredAny,
        }
    }
}

/// An annotation, schema version 1 (`AnnotationResponse`, as its editor sees it).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnnotationV1 {
    pub id: String,
    pub image_id: String,
    pub label: RefV1,
    pub shape: String,
    pub geometry: serde_json::Value,
    pub frame: i32,
    pub note: Option<String>,
    pub created_by: IgnoredAny,
    pub created_at: IgnoredAny,
    pub updated_at: IgnoredAny,
}

/// A snapshot read back: the state an entity is reverted to.
#[derive(Debug)]
pub enum Snapshot {
    Label(LabelV1),
    Disease(DiseaseV1),
    Code(CodeV1),
    Image(ImageV1),
    Annotation(AnnotationV1),
}

impl Snapshot {
    /// Reads the snapshot of an `entity` entry written with `schema_version`. A version this
    /// release does not know is a 422 on `id` (the entry's id); a snapshot that does not have
    /// its version's shape is a 500 (the history table was changed by hand, or a release broke
    /// its own rule).
    pub fn parse(entity: EntityType, schema_version: i32, json: &str) -> Result<Self, ApiError> {
        if !(1..=entity.schema_version()).contains(&schema_version) {
            return Err(ApiError::field(
                "id",
                format!(
                    "snapshots of schema version {schema_version} cannot be restored by this release"
                ),
            ));
        }
        let parsed = match (entity, schema_version) {
            (EntityType::Label, _) => serde_json::from_str(json).map(Snapshot::Label),
            (EntityType::Disease, _) => serde_json::from_str(json).map(Snapshot::Disease),
            (EntityType::Code, _) => serde_json::from_str(json).map(Snapshot::Code),
            (EntityType::Annotation, _) => serde_json::from_str(json).map(Snapshot::Annotation),
            (EntityType::Image, 1) => serde_json::from_str(json).map(Snapshot::Image),
            (EntityType::Image, _) => {
                serde_json::from_str::<ImageV2>(json).map(|v2| Snapshot::Image(v2.into()))
            }
        };
        parsed.map_err(|e| {
            ApiError::internal(anyhow::anyhow!(
                "a {} snapshot of schema version {schema_version} does not have its shape: {e}",
                entity.name()
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::annotations::AnnotationResponse;
    use crate::views::images::{ImageResponse, LabelAssignmentResponse};
    use crate::views::vocabulary::{CodeResponse, DiseaseResponse, LabelResponse};
    use crate::views::{NamedRef, UserRef};

    fn user() -> UserRef {
        UserRef {
            id: "u".into(),
            username: "doctor".into(),
        }
    }

    fn code() -> CodeResponse {
        CodeResponse {
            id: "c".into(),
            system: "icd-10".into(),
            code: "J18.9".into(),
            description: "Pneumonia".into(),
            billable: true,
            is_active: true,
        }
    }

    /// Today's response types are today's snapshot shapes: renaming, adding or removing a
    /// response field without a new schema version fails here.
    #[test]
    fn todays_responses_read_back_as_todays_snapshots() {
        let at = chrono::NaiveDateTime::default();
        let label = LabelResponse {
            id: "l".into(),
            name: "Nodule".into(),
            description: None,
            diseases: vec![NamedRef {
                id: "d".into(),
                name: "Pneumonia".into(),
            }],
            created_by: user(),
            is_active: true,
            created_at: at,
            updated_at: at,
        };
        let disease = DiseaseResponse {
            id: "d".into(),
            name: "Pneumonia".into(),
            description: Some("lung".into()),
            codes: vec![code()],
            created_by: user(),
            is_active: true,
            created_at: at,
            updated_at: at,
        };
        let image = ImageResponse {
            id: "i".into(),
            uploaded_by: user(),
            description: None,
            content_type: "image/png".into(),
            size_bytes: 1,
            sha256: "00".into(),
            width: Some(1),
            height: None,
            original_filename: None,
            patient: None,
            subject_id: Some("S-AAAAAAAAAAAAAAAA".into()),
            study: None,
            series_instance_uid: None,
            sop_instance_uid: None,
            modality: Some("CT".into()),
            withheld: false,
            labels: vec![LabelAssignmentResponse {
                label: NamedRef {
                    id: "l".into(),
                    name: "Nodule".into(),
                },
                note: None,
                assigned_by: user(),
                assigned_at: at,
            }],
            created_at: at,
            updated_at: at,
        };
        let annotation = AnnotationResponse {
            id: "a".into(),
            image_id: "i".into(),
            label: NamedRef {
                id: "l".into(),
                name: "Nodule".into(),
            },
            shape: crate::geometry::Shape::Point,
            geometry: serde_json::json!({"x": 1.0, "y": 2.0}),
            frame: 0,
            note: Some("here".into()),
            created_by: user(),
            created_at: at,
            updated_at: at,
        };
        for (entity, text) in [
            (EntityType::Annotation, json(&annotation)),
            (EntityType::Label, json(&label)),
            (EntityType::Disease, json(&disease)),
            (EntityType::Code, json(&code())),
            (EntityType::Image, json(&image)),
        ] {
            Snapshot::parse(entity, entity.schema_version(), &text)
                .unwrap_or_else(|e| panic!("{}: {e:?}", entity.name()));
        }
        let renamed = json(&label).replace("\"diseases\"", "\"disease_list\"");
        assert!(Snapshot::parse(EntityType::Label, 1, &renamed).is_err());
        assert!(matches!(
            Snapshot::parse(EntityType::Label, 2, &json(&label)),
            Err(ApiError::Validation(_))
        ));
        // Version 1 image snapshots (before patients) still read, and are not version 2.
        let v1 = r#"{"id":"i","uploaded_by":{"id":"u","username":"d"},"description":"x",
            "content_type":"image/png","size_bytes":1,"sha256":"00","width":1,"height":1,
            "original_filename":null,"labels":[],"created_at":"t","updated_at":"t"}"#;
        assert!(matches!(
            Snapshot::parse(EntityType::Image, 1, v1),
            Ok(Snapshot::Image(ImageV1 {
                description: Some(_),
                ..
            }))
        ));
        assert!(Snapshot::parse(EntityType::Image, 2, v1).is_err());
        assert!(Snapshot::parse(EntityType::Image, 1, &json(&image)).is_err());
    }

    fn json(value: &impl serde::Serialize) -> String {
        serde_json::to_string(value).unwrap()
    }
}
