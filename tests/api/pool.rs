//! The connection pool never hands out a connection left inside a transaction.

use actix_web::http::StatusCode;
use diesel::prelude::*;
use medlabel::auth::Role;
use medlabel::db::schema::labels;
use serde_json::json;

use crate::helpers::TestApp;

/// Label names as another connection (another process) sees them: only what was committed.
fn committed_label_names(database_url: &str) -> Vec<String> {
    let db = medlabel::db::Db::connect(database_url, 1).expect("second pool");
    let mut conn = db.get().expect("a fresh connection");
    let mut names: Vec<String> = labels::table
        .select(labels::name)
        .load(&mut conn)
        .expect("read labels");
    names.sort();
    names
}

#[actix_web::test]
async fn a_write_that_panics_leaves_no_open_transaction_for_the_next_request() {
    // One pooled connection: a connection put back after the panic would serve every request
    // that follows.
    let app = TestApp::spawn_with(&[("MEDLABEL_DB_POOL_SIZE", "1")]).await;
    let researcher = app.token_client(&[Role::Researcher]).await;

    let res = researcher
        .post("/api/v1/test/panic-in-write", &json!({}))
        .await;
    assert_eq!(
        res.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{}",
        res.text
    );

    for name in ["Nodule", "Effusion"] {
        let res = researcher
            .post("/api/v1/labels", &json!({ "name": name }))
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    }
    let history = researcher.get("/api/v1/history?entity_type=label").await;
    assert_eq!(history.status, StatusCode::OK, "{}", history.text);

    // The later writes are durable: a separate connection sees them committed, and the
    // panicked write's row is gone with its transaction.
    let database_url = app.state.settings.database_url.0.clone();
    let names = actix_web::web::block(move || committed_label_names(&database_url))
        .await
        .unwrap();
    assert_eq!(names, ["Effusion", "Nodule"]);
}
