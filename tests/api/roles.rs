//! Every route of the contract registered so far x every persona: anonymous, no role, the
//! doctor who owns the image (and its patient), another doctor, a researcher and an admin. 401 for anonymous
//! callers, 403 where the role does not allow it, 404 where the caller may not see the image,
//! and success otherwise. Destructive calls get a fresh target each, so no call depends on
//! another.

use actix_web::http::{Method, StatusCode};
use medlabel::auth::Role;
use serde_json::{json, Value};

use crate::fixtures;
use crate::helpers::{TestApp, TestClient};

#[derive(Clone, Copy, PartialEq, Debug)]
enum Who {
    Anonymous,
    NoRole,
    Owner,
    OtherDoctor,
    Researcher,
    Admin,
}

/// Who may call a route.
#[derive(Clone, Copy, Debug)]
enum Rule {
    Public,
    AnyUser,
    AdminOnly,
    VocabularyRead,
    VocabularyWrite,
    ImageCreate,
    ImageRead,
    ImageWrite,
    /// `/patients/{id}`: the doctor of the patient's images and admins; another doctor 404.
    PatientRead,
    /// `/patients`: doctors (their own patients) and admins.
    PatientList,
    /// `/subjects`: researchers and admins.
    SubjectRead,
    /// `/datasets`: researchers and admins.
    DatasetAccess,
    /// Any logged-in user reaches the handler, which answers this (the request is refused on
    /// its merits: an empty body, an unknown id).
    AnyUserAnswers(StatusCode),
}

fn expected(rule: Rule, who: Who) -> Option<StatusCode> {
    use Who::*;
    let (unauthorized, forbidden, not_found) = (
        Some(StatusCode::UNAUTHORIZED),
        Some(StatusCode::FORBIDDEN),
        Some(StatusCode::NOT_FOUND),
    );
    match (rule, who) {
        (Rule::Public, _) => None,
        (_, Anonymous) => unauthorized,
        (Rule::AnyUser, _) => None,
        (Rule::AnyUserAnswers(status), _) => Some(status),
        (Rule::AdminOnly, Admin) => None,
        (Rule::AdminOnly, _) => forbidden,
        (_, NoRole) => forbidden,
        (Rule::VocabularyRead, _) => None,
        (Rule::VocabularyWrite, Researcher | Admin) => None,
        (Rule::VocabularyWrite, _) => forbidden,
        (Rule::ImageCreate, Researcher) => forbidden,
        (Rule::ImageCreate, _) => None,
        (Rule::ImageRead | Rule::ImageWrite, OtherDoctor) => not_found,
        (Rule::ImageWrite, Researcher) => forbidden,
        (Rule::ImageRead | Rule::ImageWrite, _) => None,
        (Rule::PatientRead | Rule::PatientList, Researcher) => forbidden,
        (Rule::PatientRead, OtherDoctor) => not_found,
        (Rule::PatientRead | Rule::PatientList, _) => None,
        (Rule::SubjectRead | Rule::DatasetAccess, Researcher | Admin) => None,
        (Rule::SubjectRead | Rule::DatasetAccess, _) => forbidden,
    }
}

/// Placeholders in paths and bodies: `{image}`, `{label}`, `{disease}`, `{code}` name shared
/// fixtures; `{fresh-image}`, `{fresh-label}`, `{fresh-disease}`, `{fresh-code}` a new one per
/// call; `{n}` a unique number.
struct Fixtures<'a> {
    owner: &'a TestClient,
    admin: &'a TestClient,
    image: String,
    /// The owner's patient (`id`) and its subject id.
    patient: String,
    subject: String,
    label: String,
    disease: String,
    /// The owner doctor's user id.
    user: String,
    /// The first history entries of the shared label, image and annotation.
    label_entry: String,
    image_entry: String,
    annotation_entry: String,
    /// An annotation on the shared image, and a dataset.
    annotation: String,
    dataset: String,
    codes_made: std::cell::Cell<u32>,
}

impl Fixtures<'_> {
    /// An ICD-10-CM-shaped code no fixture uses yet.
    fn next_code(&self) -> String {
        let k = self.codes_made.get() + 1;
        self.codes_made.set(k);
        format!("Z{:02}.{:03}", 10 + k / 1000, k % 1000)
    }

    async fn fresh_image(&self) -> String {
        let res = self.owner.upload(&fixtures::png(4, 4), "f.png", None).await;
        res.body["id"].as_str().unwrap().to_owned()
    }

    async fn fresh(&self, path: &str, body: Value) -> String {
        let res = self.admin.post(path, &body).await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
        res.body["id"].as_str().unwrap().to_owned()
    }

    async fn fill(&self, template: &str) -> String {
        let n = uuid::Uuid::now_v7().simple().to_string();
        let mut out = template
            .replace("{image}", &self.image)
            .replace("{label}", &self.label)
            .replace("{patient}", &self.patient)
            .replace("{subject}", &self.subject);
        out = out.replace("{disease}", &self.disease).replace("{n}", &n);
        out = out
            .replace("{user}", &self.user)
            .replace("{label-entry}", &self.label_entry)
            .replace("{image-entry}", &self.image_entry)
            .replace("{annotation-entry}", &self.annotation_entry)
            .replace("{annotation}", &self.annotation)
            .replace("{dataset}", &self.dataset)
            .replace("{uuid}", &uuid::Uuid::now_v7().to_string());
        if out.contains("{labelled-image}") {
            let image = self.fresh_image().await;
            let res = self
                .owner
                .post(
                    &format!("/api/v1/images/{image}/labels"),
                    &json!({"label_id": self.label}),
                )
                .await;
            assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
            out = out.replace("{labelled-image}", &image);
        }
        if out.contains("{fresh-annotation}") {
            let res = self
                .owner
                .post(
                    &format!("/api/v1/images/{}/annotations", self.image),
                    &json!({"label_id": self.label, "shape": "point", "geometry": {"x": 1, "y": 2}}),
                )
                .await;
            assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
            out = out.replace("{fresh-annotation}", res.body["id"].as_str().unwrap());
        }
        if out.contains("{fresh-image}") {
            out = out.replace("{fresh-image}", &self.fresh_image().await);
        }
        if out.contains("{fresh-label}") {
            out = out.replace(
                "{fresh-label}",
                &self
                    .fresh("/api/v1/labels", json!({"name": format!("L{n}")}))
                    .await,
            );
        }
        if out.contains("{fresh-disease}") {
            out = out.replace(
                "{fresh-disease}",
                &self
                    .fresh("/api/v1/diseases", json!({"name": format!("D{n}")}))
                    .await,
            );
        }
        if out.contains("{new-code}") {
            out = out.replace("{new-code}", &self.next_code());
        }
        if out.contains("{fresh-code}") {
            let code = self.next_code();
            let res = self
                .admin
                .post(
                    "/api/v1/codes",
                    &json!({"system": "icd-10", "code": code, "description": "fresh"}),
                )
                .await;
            assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
            out = out.replace("{fresh-code}", &code);
        }
        out
    }
}

/// One row of the matrix: method, path (with placeholders, see [`Fixtures::fill`]), body, and
/// who may call it.
type Route = (Method, &'static str, Option<&'static str>, Rule);

/// Every route of the contract. `GET`/`POST /api/v1/images` are checked on their own below
/// ([`LISTED_ELSEWHERE`]).
fn matrix() -> Vec<Route> {
    vec![
        (
            Method::POST,
            "/api/v1/auth/login",
            Some(r#"{"username": "x", "password": "y"}"#),
            Rule::Public,
        ),
        (Method::GET, "/api/v1/auth/me", None, Rule::AnyUser),
        (Method::GET, "/api/v1/auth/tokens", None, Rule::AnyUser),
        (
            Method::POST,
            "/api/v1/auth/tokens",
            Some(r#"{"name": "t"}"#),
            Rule::AnyUser,
        ),
        (Method::GET, "/api/v1/users", None, Rule::AdminOnly),
        (
            Method::POST,
            "/api/v1/users",
            Some(r#"{"username": "u{n}", "password": "long enough secret", "roles": []}"#),
            Rule::AdminOnly,
        ),
        (Method::GET, "/api/v1/groups", None, Rule::AdminOnly),
        (
            Method::GET,
            "/api/v1/code-systems",
            None,
            Rule::VocabularyRead,
        ),
        (
            Method::GET,
            "/api/v1/codes?q=pneumonia",
            None,
            Rule::VocabularyRead,
        ),
        (
            Method::GET,
            "/api/v1/codes/icd-10/J18.9",
            None,
            Rule::VocabularyRead,
        ),
        (
            Method::POST,
            "/api/v1/codes",
            Some(r#"{"system": "icd-10", "code": "{new-code}", "description": "x"}"#),
            Rule::VocabularyWrite,
        ),
        (
            Method::PATCH,
            "/api/v1/codes/icd-10/E11.9",
            Some(r#"{"description": "Type 2 diabetes"}"#),
            Rule::VocabularyWrite,
        ),
        (
            Method::DELETE,
            "/api/v1/codes/icd-10/{fresh-code}",
            None,
            Rule::VocabularyWrite,
        ),
        (Method::GET, "/api/v1/labels", None, Rule::VocabularyRead),
        (
            Method::GET,
            "/api/v1/labels/{label}",
            None,
            Rule::VocabularyRead,
        ),
        (
            Method::POST,
            "/api/v1/labels",
            Some(r#"{"name": "L{n}"}"#),
            Rule::VocabularyWrite,
        ),
        (
            Method::PATCH,
            "/api/v1/labels/{label}",
            Some(r#"{"description": "d{n}"}"#),
            Rule::VocabularyWrite,
        ),
        (
            Method::DELETE,
            "/api/v1/labels/{fresh-label}",
            None,
            Rule::VocabularyWrite,
        ),
        (Method::GET, "/api/v1/diseases", None, Rule::VocabularyRead),
        (
            Method::GET,
            "/api/v1/diseases/{disease}",
            None,
            Rule::VocabularyRead,
        ),
        (
            Method::POST,
            "/api/v1/diseases",
            Some(r#"{"name": "D{n}"}"#),
            Rule::VocabularyWrite,
        ),
        (
            Method::PATCH,
            "/api/v1/diseases/{disease}",
            Some(r#"{"description": "d{n}"}"#),
            Rule::VocabularyWrite,
        ),
        (
            Method::DELETE,
            "/api/v1/diseases/{fresh-disease}",
            None,
            Rule::VocabularyWrite,
        ),
        (Method::GET, "/api/v1/images/{image}", None, Rule::ImageRead),
        (
            Method::GET,
            "/api/v1/images/{image}/file",
            None,
            Rule::ImageRead,
        ),
        (
            Method::GET,
            "/api/v1/images/{image}/labels",
            None,
            Rule::ImageRead,
        ),
        (
            Method::PATCH,
            "/api/v1/images/{image}",
            Some(r#"{"description": "d{n}"}"#),
            Rule::ImageWrite,
        ),
        (
            Method::DELETE,
            "/api/v1/images/{fresh-image}",
            None,
            Rule::ImageWrite,
        ),
        (
            Method::POST,
            "/api/v1/images/{fresh-image}/labels",
            Some(r#"{"label_id": "{label}"}"#),
            Rule::ImageWrite,
        ),
        (Method::GET, "/api/v1/patients", None, Rule::PatientList),
        (
            Method::GET,
            "/api/v1/patients/{patient}",
            None,
            Rule::PatientRead,
        ),
        (Method::GET, "/api/v1/subjects", None, Rule::SubjectRead),
        (
            Method::GET,
            "/api/v1/subjects/{subject}",
            None,
            Rule::SubjectRead,
        ),
        (Method::GET, "/health", None, Rule::Public),
        (
            Method::POST,
            "/api/v1/auth/password",
            Some("{}"),
            Rule::AnyUserAnswers(StatusCode::UNPROCESSABLE_ENTITY),
        ),
        (
            Method::DELETE,
            "/api/v1/auth/tokens/{uuid}",
            None,
            Rule::AnyUserAnswers(StatusCode::NOT_FOUND),
        ),
        (Method::GET, "/api/v1/users/{user}", None, Rule::AdminOnly),
        (
            Method::PATCH,
            "/api/v1/users/{user}",
            Some(r#"{"full_name": "F{n}"}"#),
            Rule::AdminOnly,
        ),
        (Method::GET, "/api/v1/events", None, Rule::AdminOnly),
        (Method::GET, "/api/v1/history", None, Rule::VocabularyRead),
        (
            Method::GET,
            "/api/v1/labels/{label}/history",
            None,
            Rule::VocabularyRead,
        ),
        (
            Method::GET,
            "/api/v1/diseases/{disease}/history",
            None,
            Rule::VocabularyRead,
        ),
        (
            Method::GET,
            "/api/v1/codes/icd-10/J18.9/history",
            None,
            Rule::VocabularyRead,
        ),
        (
            Method::GET,
            "/api/v1/images/{image}/history",
            None,
            Rule::ImageRead,
        ),
        (
            Method::POST,
            "/api/v1/history/{label-entry}/revert",
            Some("{}"),
            Rule::VocabularyWrite,
        ),
        (
            Method::POST,
            "/api/v1/history/{image-entry}/revert",
            Some("{}"),
            Rule::ImageWrite,
        ),
        (
            Method::DELETE,
            "/api/v1/images/{labelled-image}/labels/{label}",
            None,
            Rule::ImageWrite,
        ),
        (
            Method::GET,
            "/api/v1/images/{image}/annotations",
            None,
            Rule::ImageRead,
        ),
        (
            Method::POST,
            "/api/v1/images/{fresh-image}/annotations",
            Some(
                r#"{"label_id": "{label}", "shape": "box", "geometry": {"x": 0, "y": 0, "width": 4, "height": 4}}"#,
            ),
            Rule::ImageWrite,
        ),
        (
            Method::GET,
            "/api/v1/annotations/{annotation}",
            None,
            Rule::ImageRead,
        ),
        (
            Method::PATCH,
            "/api/v1/annotations/{annotation}",
            Some(r#"{"note": "n{n}"}"#),
            Rule::ImageWrite,
        ),
        (
            Method::DELETE,
            "/api/v1/annotations/{fresh-annotation}",
            None,
            Rule::ImageWrite,
        ),
        (
            Method::GET,
            "/api/v1/annotations/{annotation}/history",
            None,
            Rule::ImageRead,
        ),
        (
            Method::POST,
            "/api/v1/history/{annotation-entry}/revert",
            Some("{}"),
            Rule::ImageWrite,
        ),
        (Method::GET, "/api/v1/datasets", None, Rule::DatasetAccess),
        (
            Method::POST,
            "/api/v1/datasets",
            Some(r#"{"name": "D{n}", "filter": {}}"#),
            Rule::DatasetAccess,
        ),
        (
            Method::GET,
            "/api/v1/datasets/{dataset}",
            None,
            Rule::DatasetAccess,
        ),
        (
            Method::GET,
            "/api/v1/datasets/{dataset}/export?format=csv",
            None,
            Rule::DatasetAccess,
        ),
        (
            Method::POST,
            "/api/v1/auth/logout",
            Some("{}"),
            Rule::AnyUser,
        ),
    ]
}

/// Operations checked outside [`matrix`], in the same test.
const LISTED_ELSEWHERE: [(&str, &str); 2] = [("GET", "/api/v1/images"), ("POST", "/api/v1/images")];

/// Whether a concrete matrix path (`/api/v1/codes/icd-10/J18.9?q=x`) is an instance of an
/// OpenAPI path template (`/api/v1/codes/{system}/{code}`).
fn instance_of(path: &str, template: &str) -> bool {
    let path = path.split('?').next().unwrap_or_default();
    let (concrete, pattern): (Vec<&str>, Vec<&str>) =
        (path.split('/').collect(), template.split('/').collect());
    concrete.len() == pattern.len()
        && concrete
            .iter()
            .zip(&pattern)
            .all(|(c, p)| (p.starts_with('{') && p.ends_with('}')) || c == p)
}

/// A new route cannot escape the matrix: every operation of the OpenAPI document is in it.
#[test]
fn every_documented_operation_is_in_the_roles_matrix() {
    let document: Value = serde_json::from_str(&medlabel::openapi::openapi_json()).unwrap();
    let routes = matrix();
    let mut missing = Vec::new();
    let mut operations = 0;
    for (template, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let method = method.to_uppercase();
            if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method.as_str()) {
                continue;
            }
            operations += 1;
            let covered = routes
                .iter()
                .any(|(m, path, _, _)| m.as_str() == method && instance_of(path, template))
                || LISTED_ELSEWHERE.contains(&(method.as_str(), template.as_str()));
            if !covered {
                missing.push(format!("{method} {template}"));
            }
        }
    }
    assert!(
        operations > 40,
        "the document lists {operations} operations"
    );
    assert!(
        missing.is_empty(),
        "operations without a row in the roles matrix:\n{}",
        missing.join("\n")
    );
}

#[actix_web::test]
async fn every_route_answers_every_persona_as_the_contract_says() {
    let app = TestApp::spawn().await;
    app.load_codes().await;
    let owner = app.token_client(&[Role::Doctor]).await;
    let admin = app.token_client(&[Role::Admin]).await;
    let image = owner
        .upload(&fixtures::png(4, 4), "shared.png", None)
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (content_type, body) = fixtures::multipart(&[
        ("file", Some("patient.png"), &fixtures::png(4, 4)),
        ("patient_id", None, b"ROLES-0001"),
    ]);
    let filed = owner
        .send_raw(Method::POST, "/api/v1/images", &content_type, body)
        .await;
    assert_eq!(filed.status, StatusCode::CREATED, "{}", filed.text);
    let patient = filed.body["patient"]["id"].as_str().unwrap().to_owned();
    let subject = filed.body["subject_id"].as_str().unwrap().to_owned();
    let label = admin
        .post("/api/v1/labels", &json!({"name": "Shared"}))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let disease = admin
        .post("/api/v1/diseases", &json!({"name": "Shared"}))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let user = owner.get("/api/v1/auth/me").await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let first_entry = |path: String| {
        let admin = &admin;
        async move {
            let res = admin.get(&path).await;
            res.body["items"][0]["id"].as_str().unwrap().to_owned()
        }
    };
    let label_entry = first_entry(format!("/api/v1/labels/{label}/history")).await;
    let image_entry = first_entry(format!("/api/v1/images/{image}/history")).await;
    let annotation = owner
        .post(
            &format!("/api/v1/images/{image}/annotations"),
            &json!({"label_id": label, "shape": "box", "geometry": {"x": 1, "y": 1, "width": 2, "height": 2}}),
        )
        .await;
    assert_eq!(
        annotation.status,
        StatusCode::CREATED,
        "{}",
        annotation.text
    );
    let annotation = annotation.body["id"].as_str().unwrap().to_owned();
    let annotation_entry = first_entry(format!("/api/v1/annotations/{annotation}/history")).await;
    let dataset = admin
        .post("/api/v1/datasets", &json!({"name": "Shared", "filter": {}}))
        .await;
    assert_eq!(dataset.status, StatusCode::CREATED, "{}", dataset.text);
    let dataset = dataset.body["id"].as_str().unwrap().to_owned();
    let fx = Fixtures {
        owner: &owner,
        admin: &admin,
        image,
        patient,
        subject,
        label,
        disease,
        user,
        label_entry,
        image_entry,
        annotation_entry,
        annotation,
        dataset,
        codes_made: Default::default(),
    };

    let routes = matrix();
    let personas: Vec<(Who, TestClient)> = vec![
        (Who::Anonymous, app.anonymous()),
        (Who::NoRole, app.token_client(&[]).await),
        (Who::Owner, owner.clone_client()),
        (Who::OtherDoctor, app.token_client(&[Role::Doctor]).await),
        (Who::Researcher, app.token_client(&[Role::Researcher]).await),
        (Who::Admin, admin.clone_client()),
    ];
    for (method, template, body, rule) in &routes {
        for (who, client) in &personas {
            let path = fx.fill(template).await;
            let body: Option<Value> = match body {
                Some(b) => Some(serde_json::from_str(&fx.fill(b).await).unwrap()),
                None => None,
            };
            let res = client.send(method.clone(), &path, body.as_ref(), &[]).await;
            match expected(*rule, *who) {
                Some(status) => {
                    assert_eq!(res.status, status, "{who:?} {method} {path}: {}", res.text);
                    res.problem(status.as_u16());
                }
                None if matches!(rule, Rule::Public) => {}
                None => assert!(
                    res.status.is_success(),
                    "{who:?} {method} {path} -> {}: {}",
                    res.status,
                    res.text
                ),
            }
        }
    }

    // The image list and upload: everyone allowed gets 2xx, and another doctor sees nothing.
    for (who, client) in &personas {
        let list = client.get("/api/v1/images").await;
        let upload = client.upload(&fixtures::png(4, 4), "p.png", None).await;
        match expected(Rule::ImageRead, *who) {
            Some(StatusCode::NOT_FOUND) | None => {
                assert_eq!(list.status, StatusCode::OK, "{who:?}")
            }
            Some(status) => assert_eq!(list.status, status, "{who:?}"),
        }
        match expected(Rule::ImageCreate, *who) {
            None => assert_eq!(
                upload.status,
                StatusCode::CREATED,
                "{who:?}: {}",
                upload.text
            ),
            Some(status) => assert_eq!(upload.status, status, "{who:?}"),
        }
        if *who == Who::OtherDoctor {
            let items = list.body["items"].as_array().unwrap();
            assert!(
                items.iter().all(|i| i["id"] != fx.image.as_str()),
                "another doctor's image never listed"
            );
        }
    }
}

#[actix_web::test]
async fn a_user_without_a_role_may_use_auth_only() {
    let app = TestApp::spawn().await;
    let client = app.login_as(&[]).await;
    let me = client.get("/api/v1/auth/me").await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["roles"], json!([]));
    for path in [
        "/api/v1/users",
        "/api/v1/groups",
        "/api/v1/images",
        "/api/v1/labels",
        "/api/v1/codes",
    ] {
        client.get(path).await.problem(403);
    }
}
