//! The HTTP API, one module per resource. Each module has its handlers, its request/response
//! types and a `configure` that registers its routes with the access each one needs.

pub mod annotations;
pub mod auth;
pub mod codes;
pub mod conditional;
pub mod datasets;
pub mod diseases;
pub mod events;
pub mod extract;
pub mod groups;
pub mod health;
pub mod history;
pub mod images;
pub mod labels;
pub mod metrics;
pub mod pagination;
pub mod patients;
pub mod responses;
pub mod root;
pub mod serde_fields;
pub mod users;
pub mod vocabulary;

use actix_web::web;

pub use extract::{parse_id, parse_query_uuid, parse_timestamp, valid_name, JsonBody, NUL_MESSAGE};
pub use serde_fields::{nullable, object, present, whole_number};

/// Registers every `/api/v1` route (the scope and its middleware are set up in `startup`).
pub fn configure(cfg: &mut web::ServiceConfig) {
    auth::configure(cfg);
    users::configure(cfg);
    groups::configure(cfg);
    codes::configure(cfg);
    diseases::configure(cfg);
    labels::configure(cfg);
    images::configure(cfg);
    annotations::configure(cfg);
    datasets::configure(cfg);
    patients::configure(cfg);
    events::configure(cfg);
    history::configure(cfg);
}
