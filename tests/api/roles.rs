//! Every route of the contract registered so far x every persona: anonymous, no role, the
//! doctor who owns the image, another doctor, a researcher and an admin. 401 for anonymous
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
    }
}

/// Placeholders in paths and bodies: `{image}`, `{label}`, `{disease}`, `{code}` name shared
/// fixtures; `{fresh-image}`, `{fresh-label}`, `{fresh-disease}`, `{fresh-code}` a new one per
/// call; `{n}` a unique number.
struct Fixtures<'a> {
    owner: &'a TestClient,
    admin: &'a TestClient,
    image: String,
    label: String,
    disease: String,
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
            .replace("{label}", &self.label);
        out = out.replace("{disease}", &self.disease).replace("{n}", &n);
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
    let fx = Fixtures {
        owner: &owner,
        admin: &admin,
        image,
        label,
        disease,
        codes_made: Default::default(),
    };

    let routes: Vec<(Method, &str, Option<&str>, Rule)> = vec![
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
        (
            Method::POST,
            "/api/v1/auth/logout",
            Some("{}"),
            Rule::AnyUser,
        ),
    ];
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
