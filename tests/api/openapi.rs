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
    let committed: Value = serde_json::from_str(COMMITTED).unwrap();
    assert_eq!(
        served.body, committed,
        "GET /api/v1/openapi.json is the committed document"
    );

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
