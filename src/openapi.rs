//! The OpenAPI document, generated from the handlers' annotations. `medlabel openapi` prints
//! it, `GET /api/v1/openapi.json` serves it, `openapi/openapi.json` is the committed copy (a
//! test fails when it is stale), and `/docs` shows it in Swagger UI served from the binary.
//!
//! Handlers document their success and their specific responses (409, 412, ...); the
//! [`ProblemResponses`] modifier adds the errors every operation can answer, all as
//! `application/problem+json`, and [`Security`] the two ways to authenticate.

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::api;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "medlabel",
        description = "Role-based medical imaging and labelling. Doctors upload, diagnose and annotate their own images; researchers read every image de-identified, curate labels, diseases and ICD codes, and freeze datasets they export for machine learning; admins manage users. Every request is audited; every change is kept in history and can be reverted."
    ),
    paths(
        api::health::health,
        api::auth::login,
        api::auth::logout,
        api::auth::me,
        api::auth::change_password,
        api::auth::create_token,
        api::auth::list_tokens,
        api::auth::delete_token,
        api::users::list_users,
        api::users::create_user,
        api::users::get_user,
        api::users::update_user,
        api::groups::list_groups,
        api::images::crud::list_images,
        api::images::upload::upload_image,
        api::images::crud::get_image,
        api::images::crud::update_image,
        api::images::crud::delete_image,
        api::images::download::download_image,
        api::images::diagnoses::list_image_labels,
        api::images::diagnoses::assign_label,
        api::images::diagnoses::unassign_label,
        api::annotations::list_annotations,
        api::annotations::create_annotation,
        api::annotations::get_annotation,
        api::annotations::update_annotation,
        api::annotations::delete_annotation,
        api::datasets::list_datasets,
        api::datasets::create_dataset,
        api::datasets::get_dataset,
        api::datasets::export_dataset,
        api::patients::list_patients,
        api::patients::get_patient,
        api::patients::list_subjects,
        api::patients::get_subject,
        api::labels::list_labels,
        api::labels::create_label,
        api::labels::get_label,
        api::labels::update_label,
        api::labels::delete_label,
        api::diseases::list_diseases,
        api::diseases::create_disease,
        api::diseases::get_disease,
        api::diseases::update_disease,
        api::diseases::delete_disease,
        api::codes::list_code_systems,
        api::codes::list_codes,
        api::codes::create_code,
        api::codes::get_code,
        api::codes::update_code,
        api::codes::delete_code,
        api::history::list_history,
        api::history::revert,
        api::images::crud::image_history,
        api::labels::label_history,
        api::diseases::disease_history,
        api::codes::code_history,
        api::annotations::annotation_history,
        api::events::list_events,
    ),
    components(schemas(crate::error::Problem)),
    modifiers(&Security, &ProblemResponses, &ProblemExamples, &InlineBinary, &ContractNames),
    tags(
        (name = "auth", description = "Sessions, the caller, API tokens"),
        (name = "users", description = "Users and groups (admin)"),
        (name = "images", description = "Images on object storage"),
        (name = "diagnoses", description = "Labels on images"),
        (name = "annotations", description = "Regions on images: boxes, polygons, points"),
        (name = "datasets", description = "Frozen, reproducible exports for machine learning (COCO, YOLO, CSV)"),
        (name = "patients", description = "Patients and studies (identified), and subjects (pseudonymous)"),
        (name = "labels", description = "The label vocabulary"),
        (name = "diseases", description = "Diseases and their codes"),
        (name = "codes", description = "ICD-9-CM, ICD-10-CM and SNOMED CT codes"),
        (name = "history", description = "Snapshots of every change, and revert"),
        (name = "events", description = "The audit log (admin)"),
        (name = "service", description = "Health"),
    )
)]
pub struct ApiDoc;

/// Operations anyone may call.
const PUBLIC: [&str; 2] = ["/health", "/api/v1/auth/login"];

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API token from POST /api/v1/auth/tokens"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "__Host-medlabel",
                "The session cookie set by POST /api/v1/auth/login",
            ))),
        );
        for (path, item) in doc.paths.paths.iter_mut() {
            if PUBLIC.contains(&path.as_str()) {
                continue;
            }
            for operation in operations(item) {
                operation.security = Some(vec![
                    SecurityRequirement::new("bearer", Vec::<String>::new()),
                    SecurityRequirement::new("session", Vec::<String>::new()),
                ]);
            }
        }
    }
}

fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.post,
        &mut item.put,
        &mut item.patch,
        &mut item.delete,
    ]
    .into_iter()
    .filter_map(|o| o.as_mut())
}

struct ProblemResponses;

impl Modify for ProblemResponses {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        for (path, item) in doc.paths.paths.iter_mut() {
            let public = PUBLIC.contains(&path.as_str());
            let has_params = path.contains('{');
            for operation in operations(item) {
                let writes = operation.request_body.is_some();
                let mut statuses: Vec<(&str, &str)> = vec![
                    ("400", "The request could not be parsed"),
                    ("405", "Method not allowed"),
                    ("422", "Validation failed (field errors in `errors`)"),
                    ("500", "Internal error (only the request id is shown)"),
                    ("503", "The database, storage or audit log is unavailable"),
                ];
                if !public {
                    statuses.push(("401", "Not authenticated"));
                    statuses.push((
                        "403",
                        "The role does not allow this, or a cross-site request",
                    ));
                }
                if has_params || !public {
                    statuses.push(("404", "Not found, or not visible to the caller"));
                }
                if writes {
                    statuses.push(("413", "The body is too large"));
                    statuses.push(("415", "Unsupported media type"));
                }
                if path == "/api/v1/auth/login" {
                    statuses.push(("401", "Wrong username or password"));
                    statuses.push(("429", "Too many failed logins; see Retry-After"));
                }
                if path == "/api/v1/auth/password" {
                    statuses.push((
                        "429",
                        "Too many wrong current passwords (counted with failed logins); see Retry-After",
                    ));
                }
                for (status, description) in statuses {
                    if path == "/health" && status == "503" {
                        continue;
                    }
                    operation
                        .responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| {
                            ResponseBuilder::new()
                                .description(description)
                                .content(
                                    "application/problem+json",
                                    ContentBuilder::new()
                                        .schema(Some(Ref::from_schema_name("Problem")))
                                        .build(),
                                )
                                .into()
                        });
                }
            }
        }
    }
}

/// File contents are `type: string, format: binary` right where they are used (what both
/// generated clients and schemathesis read best), not a reference to such a schema.
struct InlineBinary;

impl Modify for InlineBinary {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        use utoipa::openapi::RefOr;
        let binary = || -> RefOr<utoipa::openapi::schema::Schema> {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
                .into()
        };
        for item in doc.paths.paths.values_mut() {
            for operation in operations(item) {
                for response in operation.responses.responses.values_mut() {
                    let RefOr::T(response) = response else {
                        continue;
                    };
                    for content in response.content.values_mut() {
                        if matches!(&content.schema, Some(RefOr::Ref(r)) if r.ref_location.ends_with("/BinaryFile"))
                        {
                            content.schema = Some(binary());
                        }
                    }
                }
            }
        }
        if let Some(components) = doc.components.as_mut() {
            components.schemas.remove("BinaryFile");
        }
    }
}

/// The document as pretty JSON (what `openapi/openapi.json` holds).
/// `GET /api/v1/openapi.json`: [`openapi_json`], built once.
pub async fn serve_document() -> actix_web::HttpResponse {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    actix_web::HttpResponse::Ok()
        .content_type("application/json")
        .body(DOCUMENT.get_or_init(openapi_json).as_str())
}

/// The document as committed in `openapi/openapi.json`: pretty-printed, with a final newline.
/// [`ContractNames`] renamed the schemas; here every `$ref` follows.
pub fn openapi_json() -> String {
    let mut json = ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|_| "{}".to_owned());
    let targets: std::collections::BTreeSet<String> = json
        .split("\"#/components/schemas/")
        .skip(1)
        .filter_map(|rest| rest.split('"').next().map(str::to_owned))
        .collect();
    for old in targets {
        let new = contract_name(&old);
        if new == old {
            continue;
        }
        json = json.replace(
            &format!("\"#/components/schemas/{old}\""),
            &format!("\"#/components/schemas/{new}\""),
        );
    }
    json.push('\n');
    json
}

/// The contract's name of a schema named after a Rust type: `ImageResponse` is `Image` (every
/// `XResponse` but `LoginResponse`, which is no entity), `Page_ImageResponse` is `ImagePage`.
fn contract_name(rust: &str) -> String {
    let entity = |name: &str| match name.strip_suffix("Response") {
        Some(base) if name != "LoginResponse" => base.to_owned(),
        _ => name.to_owned(),
    };
    match rust.strip_prefix("Page_") {
        Some(item) => format!("{}Page", entity(item)),
        None => entity(rust),
    }
}

/// Schema names for generated clients, one class per entity: each schema gets its
/// [`contract_name`], and a page's `items` reference their schema (utoipa inlines a generic's
/// type parameter, juhaku/utoipa#1586, which gave clients a second class for list items).
/// `$ref`s are renamed on the finished text ([`openapi_json`]).
struct ContractNames;

impl Modify for ContractNames {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::{ArrayItems, Schema};
        use utoipa::openapi::RefOr;
        let Some(components) = doc.components.as_mut() else {
            return;
        };
        let schemas = std::mem::take(&mut components.schemas);
        for (name, mut schema) in schemas {
            if let Some(item) = name.strip_prefix("Page_") {
                if let RefOr::T(Schema::Object(page)) = &mut schema {
                    if let Some(RefOr::T(Schema::Array(items))) = page.properties.get_mut("items") {
                        items.items = ArrayItems::RefOrSchema(Box::new(RefOr::Ref(
                            Ref::from_schema_name(contract_name(item)),
                        )));
                    }
                }
            }
            components.schemas.insert(contract_name(&name), schema);
        }
    }
}

/// An RFC 9457 body for a problem response of `status`, as the example of its documentation.
fn problem_example(status: &str, detail: &str) -> Option<serde_json::Value> {
    let code = actix_web::http::StatusCode::from_u16(status.parse().ok()?).ok()?;
    let mut example = serde_json::json!({
        "type": format!("urn:medlabel:problem/{}", crate::error::slug_of_status(code)),
        "title": code.canonical_reason().unwrap_or("Error"),
        "status": code.as_u16(),
        "detail": detail,
        "request_id": "01936f0e-6d2a-7c3b-9a10-2f5e8d1c4b77",
    });
    if code.as_u16() == 422 {
        example["errors"] = serde_json::json!({"name": ["must be 1 to 200 characters"]});
    }
    Some(example)
}

/// Each problem response shows an example of its own status, instead of all showing the
/// `Problem` schema's 422. Runs after [`ProblemResponses`].
struct ProblemExamples;

impl Modify for ProblemExamples {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::RefOr;
        for item in doc.paths.paths.values_mut() {
            for operation in operations(item) {
                for (status, response) in operation.responses.responses.iter_mut() {
                    let RefOr::T(response) = response else {
                        continue;
                    };
                    let detail = response.description.to_lowercase();
                    if let Some(content) = response.content.get_mut("application/problem+json") {
                        if content.example.is_none() {
                            content.example = problem_example(status, &detail);
                        }
                    }
                }
            }
        }
    }
}
