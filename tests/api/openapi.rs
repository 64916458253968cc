//! The OpenAPI contract: the committed document is the generated one, the server serves it,
//! every operation documents its errors with the problem schema, and Swagger UI is served from
//! the binary.

use actix_web::http::StatusCode;
use serde_json::Value;

use crate::helpers::TestApp;

const COMMITTED: &str = include_str!("../../openapi/openapi.json");

#[test]
fn the_committed_document_is_not_stale() {
    let generated = medlabel::openapi::openapi_json();
    if generated != COMMITTED {
        let first_difference = generated
            .lines()
            .zip(COMMITTED.lines())
            .enumerate()
            .find(|(_, (a, b))| a != b)
            .map(|(i, (a, b))| format!("line {}: generated {a:?}, committed {b:?}", i + 1))
            .unwrap_or_else(|| "the documents differ in length".into());
        panic!(
            "openapi/openapi.json is stale ({first_difference}). Regenerate it: \
             cargo run -- openapi > openapi/openapi.json"
        );
    }
}

#[test]
fn every_operation_documents_success_and_problem_errors() {
    let doc: Value = serde_json::from_str(COMMITTED).unwrap();
    let mut operation_ids = std::collections::HashSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        assert!(
            path == "/health" || path.starts_with("/api/v1/"),
            "absolute paths: {path}"
        );
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap_or_default();
            assert!(
                operation_ids.insert(id.to_owned()),
                "operationId {id} repeats"
            );
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{method} {path} has no success response"
            );
            for (status, res) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    let problem = &res["content"]["application/problem+json"]["schema"]["$ref"];
                    if !(path == "/health" && status == "503") {
                        assert_eq!(
                            problem, "#/components/schemas/Problem",
                            "{method} {path} {status}"
                        );
                    }
                }
            }
            if path != "/health" && path != "/api/v1/auth/login" {
                assert!(
                    op["security"].is_array(),
                    "{method} {path} names its security"
                );
            }
        }
    }
    assert!(operation_ids.len() >= 45);
    let upload = &doc["components"]["schemas"]["UploadImageForm"]["properties"]["file"];
    assert_eq!(
        (upload["type"].as_str(), upload["format"].as_str()),
        (Some("string"), Some("binary"))
    );
    // The file download lists octet-stream first (read on the text: JSON maps here sort keys).
    let section = &COMMITTED[COMMITTED.find("\"/api/v1/images/{id}/file\"").unwrap()..];
    let at = |t: &str| section.find(&format!("\"{t}\"")).unwrap();
    let order = [
        "application/octet-stream",
        "image/png",
        "image/jpeg",
        "application/dicom",
    ]
    .map(at);
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    let file = &doc["paths"]["/api/v1/images/{id}/file"]["get"]["responses"]["200"]["content"];
    for t in [
        "application/octet-stream",
        "image/png",
        "image/jpeg",
        "application/dicom",
    ] {
        assert_eq!(file[t]["schema"]["format"], "binary", "{t}");
    }
}

#[actix_web::test]
async fn the_server_serves_the_document_and_swagger_ui() {
    let app = TestApp::spawn().await;
    let anon = app.anonymous();
    let served = anon.get("/api/v1/openapi.json").await;
    assert_eq!(served.status, StatusCode::OK);
    assert_eq!(
        served.text, COMMITTED,
        "GET /api/v1/openapi.json is the committed document, byte for byte"
    );
    assert!(served
        .header("content-type")
        .is_some_and(|v| v.starts_with("application/json")));

    let docs = anon.get("/docs").await;
    assert!(
        docs.status == StatusCode::FOUND || docs.status == StatusCode::OK,
        "{}",
        docs.status
    );
    let page = anon.get("/docs/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains("swagger"), "Swagger UI is served");
    assert!(
        !page.text.contains("cdn.") && !page.text.contains("unpkg"),
        "no CDN"
    );
    let script = anon.get("/docs/swagger-ui-bundle.js").await;
    assert_eq!(
        script.status,
        StatusCode::OK,
        "the UI's assets come from the binary"
    );
}

/// `(schema, property)` of every request-body property the committed document marks with
/// `type` including `kind`.
fn request_properties_of_type(kind: &str) -> std::collections::BTreeSet<(String, String)> {
    let doc: Value = serde_json::from_str(COMMITTED).unwrap();
    let mut found = std::collections::BTreeSet::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            for media in op["requestBody"]["content"]
                .as_object()
                .into_iter()
                .flatten()
            {
                let name = media.1["schema"]["$ref"]
                    .as_str()
                    .unwrap_or_default()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_owned();
                let schema = &doc["components"]["schemas"][&name];
                for (property, spec) in schema["properties"].as_object().into_iter().flatten() {
                    let types = match &spec["type"] {
                        Value::String(t) => vec![t.as_str()],
                        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                        _ => vec![],
                    };
                    if types.contains(&kind) {
                        found.insert((name.clone(), property.clone()));
                    }
                }
            }
        }
    }
    found
}

#[test]
fn every_request_body_refuses_unknown_members_in_the_document_too() {
    let doc: Value = serde_json::from_str(COMMITTED).unwrap();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for (media, content) in op["requestBody"]["content"]
                .as_object()
                .into_iter()
                .flatten()
            {
                let name = content["schema"]["$ref"]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap();
                assert_eq!(
                    doc["components"]["schemas"][name]["additionalProperties"],
                    Value::Bool(false),
                    "{method} {path} ({media}): the server refuses unknown members, so the schema says so"
                );
            }
        }
    }
}

#[actix_web::test]
async fn every_field_the_document_calls_nullable_accepts_null() {
    let app = TestApp::spawn().await;
    let admin = app.token_client(&[medlabel::auth::Role::Admin]).await;
    let png = crate::fixtures::png(4, 4);
    let image = admin.upload(&png, "x.png", None).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let label = admin
        .post("/api/v1/labels", &serde_json::json!({"name": "L"}))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let disease = admin
        .post("/api/v1/diseases", &serde_json::json!({"name": "D"}))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let user = admin
        .post(
            "/api/v1/users",
            &serde_json::json!({"username": "nullable", "password": "a perfectly fine passphrase", "roles": []}),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let annotation = admin
        .post(
            &format!("/api/v1/images/{image}/annotations"),
            &serde_json::json!({"label_id": label, "shape": "point", "geometry": {"x": 1, "y": 1}}),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let post = actix_web::http::Method::POST;
    let patch = actix_web::http::Method::PATCH;
    // (schema, property, method, path, the rest of a valid body)
    let cases = [
        (
            "AssignLabelRequest",
            "note",
            post.clone(),
            format!("/api/v1/images/{image}/labels"),
            serde_json::json!({"label_id": label}),
        ),
        (
            "CreateAnnotationRequest",
            "frame",
            post.clone(),
            format!("/api/v1/images/{image}/annotations"),
            serde_json::json!({"label_id": label, "shape": "point", "geometry": {"x": 1, "y": 1}}),
        ),
        (
            "CreateAnnotationRequest",
            "note",
            post.clone(),
            format!("/api/v1/images/{image}/annotations"),
            serde_json::json!({"label_id": label, "shape": "point", "geometry": {"x": 1, "y": 1}}),
        ),
        (
            "CreateDatasetRequest",
            "description",
            post.clone(),
            "/api/v1/datasets".to_owned(),
            serde_json::json!({"name": "Nullable", "filter": {}}),
        ),
        (
            "UpdateAnnotationRequest",
            "note",
            patch.clone(),
            format!("/api/v1/annotations/{annotation}"),
            serde_json::json!({}),
        ),
        (
            "CreateDiseaseRequest",
            "description",
            post.clone(),
            "/api/v1/diseases".to_owned(),
            serde_json::json!({"name": "D2"}),
        ),
        (
            "CreateLabelRequest",
            "description",
            post.clone(),
            "/api/v1/labels".to_owned(),
            serde_json::json!({"name": "L2"}),
        ),
        (
            "CreateTokenRequest",
            "expires_in_days",
            post.clone(),
            "/api/v1/auth/tokens".to_owned(),
            serde_json::json!({"name": "t"}),
        ),
        (
            "CreateUserRequest",
            "full_name",
            post.clone(),
            "/api/v1/users".to_owned(),
            serde_json::json!({"username": "n1", "password": "a perfectly fine passphrase", "roles": []}),
        ),
        (
            "CreateUserRequest",
            "email",
            post.clone(),
            "/api/v1/users".to_owned(),
            serde_json::json!({"username": "n2", "password": "a perfectly fine passphrase", "roles": []}),
        ),
        (
            "UpdateDiseaseRequest",
            "description",
            patch.clone(),
            format!("/api/v1/diseases/{disease}"),
            serde_json::json!({}),
        ),
        (
            "UpdateImageRequest",
            "description",
            patch.clone(),
            format!("/api/v1/images/{image}"),
            serde_json::json!({}),
        ),
        (
            "UpdateLabelRequest",
            "description",
            patch.clone(),
            format!("/api/v1/labels/{label}"),
            serde_json::json!({}),
        ),
        (
            "UpdateUserRequest",
            "full_name",
            patch.clone(),
            format!("/api/v1/users/{user}"),
            serde_json::json!({}),
        ),
        (
            "UpdateUserRequest",
            "email",
            patch.clone(),
            format!("/api/v1/users/{user}"),
            serde_json::json!({}),
        ),
    ];
    let covered: std::collections::BTreeSet<(String, String)> = cases
        .iter()
        .map(|(s, p, ..)| ((*s).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(
        request_properties_of_type("null"),
        covered,
        "every nullable request field has a case here (and nothing else is nullable)"
    );
    for (schema, property, method, path, mut body) in cases {
        body[property] = Value::Null;
        let res = admin.send(method, &path, Some(&body), &[]).await;
        assert!(
            res.status.is_success(),
            "{schema}.{property} = null: {} {}",
            res.status,
            res.text
        );
    }
}

#[actix_web::test]
async fn integers_are_taken_as_json_schema_counts_them() {
    assert_eq!(
        request_properties_of_type("integer"),
        [
            ("CreateAnnotationRequest".to_owned(), "frame".to_owned()),
            (
                "CreateTokenRequest".to_owned(),
                "expires_in_days".to_owned()
            )
        ]
        .into(),
        "every integer request field has a case here"
    );
    let app = TestApp::spawn().await;
    let client = app.token_client(&[medlabel::auth::Role::Doctor]).await;
    let res = client
        .post(
            "/api/v1/auth/tokens",
            &serde_json::json!({"name": "t", "expires_in_days": 177.0}),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    for bad in [
        serde_json::json!(177.5),
        serde_json::json!(1e300),
        serde_json::json!("30"),
    ] {
        let res = client
            .post(
                "/api/v1/auth/tokens",
                &serde_json::json!({"name": "t", "expires_in_days": bad}),
            )
            .await;
        assert_eq!(
            res.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {}",
            res.text
        );
    }
}

#[test]
fn schemas_carry_the_contract_names_and_pages_reference_their_items() {
    let doc: Value = serde_json::from_str(&medlabel::openapi::openapi_json()).unwrap();
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for entity in [
        "Image",
        "User",
        "Label",
        "Disease",
        "Code",
        "Dataset",
        "Event",
        "Patient",
        "Annotation",
    ] {
        assert!(schemas.contains_key(entity), "no schema {entity}");
    }
    // No Rust names: no `...Response` entity, no generic instance, no std type.
    for name in schemas.keys() {
        assert!(
            name == "LoginResponse" || !name.ends_with("Response"),
            "Rust name {name}"
        );
        assert!(
            !name.contains('_') && !name.contains("Map"),
            "Rust name {name}"
        );
    }
    let pages: Vec<&String> = schemas.keys().filter(|n| n.ends_with("Page")).collect();
    assert!(pages.len() >= 8, "{pages:?}");
    for page in pages {
        let item = page.strip_suffix("Page").unwrap();
        assert_eq!(
            schemas[page]["properties"]["items"]["items"],
            serde_json::json!({"$ref": format!("#/components/schemas/{item}")}),
            "{page}"
        );
    }
    // Every `$ref` resolves; integer formats are standard ones.
    let text = doc.to_string();
    for target in text.split("\"#/components/schemas/").skip(1) {
        let name = target.split('"').next().unwrap();
        assert!(schemas.contains_key(name), "dangling $ref {name}");
    }
    assert!(!text.contains("u-int"), "non-standard integer format");

    // Each problem response shows an example of its own status.
    let mut seen = std::collections::BTreeSet::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for operation in item.as_object().unwrap().values() {
            for (status, response) in operation["responses"].as_object().unwrap() {
                let Some(content) = response["content"].get("application/problem+json") else {
                    continue;
                };
                let example = &content["example"];
                assert_eq!(
                    example["status"].to_string(),
                    *status,
                    "{status}: {example}"
                );
                assert!(example["type"]
                    .as_str()
                    .unwrap()
                    .starts_with("urn:medlabel:problem/"));
                seen.insert(status.clone());
            }
        }
    }
    assert!(seen.len() >= 10, "{seen:?}");
}
