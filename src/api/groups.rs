//! Groups (admin): the role groups and what each means.

use actix_web::{web, HttpResponse};
use serde::Serialize;

use crate::auth::{Access, Role};
use crate::error::ApiError;
use crate::models::groups;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/groups").route(
            web::get()
                .to(list_groups)
                .wrap(Access::roles(&[Role::Admin])),
        ),
    );
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GroupResponse {
    pub name: String,
    pub description: String,
}

#[utoipa::path(
    get,
    path = "/api/v1/groups",
    tag = "users",
    operation_id = "list_groups",
    summary = "The role groups (admin)",
    responses(
        (status = 200, description = "Groups", body = Vec<GroupResponse>)
    )
)]
async fn list_groups(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let rows = state.db.query(groups::list_groups).await?;
    let body: Vec<GroupResponse> = rows
        .into_iter()
        .map(|g| GroupResponse {
            name: g.name,
            description: g.description,
        })
        .collect();
    Ok(HttpResponse::Ok().json(body))
}
