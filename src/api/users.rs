//! Users (admin): list, create, read, update (profile, roles, activation, password).

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use validator::{Validate, ValidationError};

use super::pagination::{Page, PageRequest};
use super::{nullable, parse_id, present, JsonBody};
use crate::auth::{password, Access, CurrentUser, Role, RoleSet};
use crate::error::{ApiError, FieldErrors};
use crate::models::users::{self, NewUser, User, UserChanges};
use crate::models::{api_tokens, sessions};
use crate::state::AppState;
use crate::views::rfc3339;
pub use crate::views::UserRef;

pub fn configure(cfg: &mut web::ServiceConfig) {
    let admin = Access::roles(&[Role::Admin]);
    cfg.service(
        web::resource("/users")
            .route(web::get().to(list_users).wrap(admin))
            .route(web::post().to(create_user).wrap(admin)),
    )
    .service(
        web::resource("/users/{id}")
            .route(web::get().to(get_user).wrap(admin))
            .route(web::patch().to(update_user).wrap(admin)),
    );
}

/// `User` on the wire.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"id": "01936f0e-6d2a-7c3b-9a10-2f5e8d1c4b77", "username": "dr.house", "full_name": "Gregory House", "email": "house@example.org", "roles": ["doctor"], "is_active": true, "created_at": "2026-11-21T09:30:00.123Z"}))]
pub struct UserResponse {
    pub id: String,
    pub username: String,
    pub full_name: Option<String>,
    pub email: Option<String>,
    pub roles: Vec<&'static str>,
    pub is_active: bool,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-21T09:30:00.123Z")]
    pub created_at: NaiveDateTime,
}

impl UserResponse {
    pub fn new(user: User, roles: RoleSet) -> Self {
        UserResponse {
            id: user.uuid,
            username: user.username,
            full_name: user.full_name,
            email: user.email,
            roles: roles.names(),
            is_active: user.is_active,
            created_at: user.created_at,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListUsersQuery {
    /// Page size (default 50)

    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
    /// Opaque cursor from the previous page's next_cursor
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, Validate, utoipa::ToSchema)]
#[schema(example = json!({"username": "dr.house", "password": "vicodin and puzzles", "full_name": "Gregory House", "email": "house@example.org", "roles": ["doctor"]}))]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    #[validate(custom(function = "valid_username"))]
    #[schema(min_length = 1, max_length = 150, pattern = "^[\\w.@+-]+$")]
    pub username: String,
    #[schema(min_length = 12, max_length = 256)]
    pub password: String,
    #[validate(length(max = 200, message = "must be at most 200 characters"))]
    #[schema(max_length = 200)]
    pub full_name: Option<String>,
    #[validate(email(message = "must be an email address"))]
    #[schema(format = Email)]
    pub email: Option<String>,
    #[schema(value_type = Vec<crate::auth::Role>)]
    pub roles: Vec<String>,
}

#[derive(Debug, Deserialize, Validate, utoipa::ToSchema)]
#[schema(example = json!({"roles": ["doctor", "researcher"], "is_active": true}))]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    #[serde(default, deserialize_with = "nullable")]
    #[validate(length(max = 200, message = "must be at most 200 characters"))]
    #[schema(value_type = Option<String>, nullable, max_length = 200)]
    pub full_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[validate(email(message = "must be an email address"))]
    #[schema(value_type = Option<String>, nullable, format = Email)]
    pub email: Option<Option<String>>,
    #[schema(value_type = Vec<crate::auth::Role>)]
    #[serde(default, deserialize_with = "present")]
    pub roles: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable = false)]
    pub is_active: Option<bool>,
    #[schema(min_length = 12, max_length = 256, nullable = false)]
    #[serde(default, deserialize_with = "present")]
    pub password: Option<String>,
}

/// The username rule ([`crate::text::username_problem`]) as a validator.
pub fn valid_username(username: &str) -> Result<(), ValidationError> {
    match crate::text::username_problem(username) {
        None => Ok(()),
        Some(problem) => Err(ValidationError::new("username").with_message(problem.into())),
    }
}

/// Parses role names; unknown ones are a field error on `roles`.
pub fn parse_roles(names: &[String]) -> Result<Vec<Role>, ApiError> {
    let mut roles = Vec::new();
    for name in names {
        match Role::from_name(name) {
            Some(role) if !roles.contains(&role) => roles.push(role),
            Some(_) => {}
            None => {
                return Err(ApiError::field(
                    "roles",
                    format!("unknown role {name:?}; roles are doctor, researcher, admin"),
                ))
            }
        }
    }
    Ok(roles)
}

/// Hashes on the password hashing pool (argon2 takes tens of milliseconds by design).
pub async fn hash_password(password: String) -> Result<String, ApiError> {
    password::hash_async(password)
        .await
        .map_err(ApiError::internal)
}

#[utoipa::path(
    get,
    path = "/api/v1/users",
    tag = "users",
    operation_id = "list_users",
    summary = "Users (admin)",
    params(
        ListUsersQuery
    ),
    responses(
        (status = 200, description = "A page of users", body = Page<UserResponse>)
    )
)]
async fn list_users(
    state: web::Data<AppState>,
    query: web::Query<ListUsersQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = PageRequest::parse(query.limit.as_deref(), query.cursor.as_deref())?;
    let (rows, roles) = state
        .db
        .run({
            let page = page.clone();
            move |conn| {
                let rows = users::list_users(conn, page.after.as_deref(), page.fetch())?;
                let ids: Vec<i64> = rows.iter().map(|u| u.id).collect();
                let roles = users::roles_of(conn, &ids)?;
                Ok::<_, ApiError>((rows, roles))
            }
        })
        .await?;
    let body: Page<UserResponse> = page.finish(
        rows,
        |u| &u.uuid,
        |u| {
            let r = roles.get(&u.id).copied().unwrap_or_default();
            UserResponse::new(u, r)
        },
    );
    Ok(HttpResponse::Ok().json(body))
}

#[utoipa::path(
    post,
    path = "/api/v1/users",
    tag = "users",
    operation_id = "create_user",
    summary = "Create a user (admin)",
    request_body(content = CreateUserRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = UserResponse, headers(("Location" = String, description = "the new entity"))),
        (status = 409, description = "Username taken", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
async fn create_user(
    state: web::Data<AppState>,
    body: JsonBody<CreateUserRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let mut errors = body.validate().err().map(|e| match ApiError::from(e) {
        ApiError::Validation(errors) => errors,
        _ => FieldErrors::new(),
    });
    if let Err(message) = password::check_policy(&body.password, &body.username) {
        errors
            .get_or_insert_with(FieldErrors::new)
            .entry("password".into())
            .or_default()
            .push(message);
    }
    if let Some(errors) = errors {
        return Err(ApiError::Validation(errors));
    }
    let roles = parse_roles(&body.roles)?;
    let password_hash = hash_password(body.password).await?;
    let (user, role_set) = state
        .db
        .run(move |conn| {
            if users::username_taken(conn, &body.username)? {
                return Err(ApiError::Conflict(format!(
                    "username {:?} is taken",
                    body.username
                )));
            }
            let user = users::insert_user(
                conn,
                NewUser {
                    username: &body.username,
                    password_hash: &password_hash,
                    full_name: body.full_name.as_deref(),
                    email: body.email.as_deref(),
                    roles: &roles,
                },
            )?;
            let role_set = users::roles_of_user(conn, user.id)?;
            Ok((user, role_set))
        })
        .await?;
    let location = format!("/api/v1/users/{}", user.uuid);
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, location))
        .json(UserResponse::new(user, role_set)))
}

#[utoipa::path(
    get,
    path = "/api/v1/users/{id}",
    tag = "users",
    operation_id = "get_user",
    summary = "A user (admin)",
    params(
        ("id" = String, Path, description = "The entity's UUID")
    ),
    responses(
        (status = 200, description = "The user", body = UserResponse)
    )
)]
async fn get_user(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    let (user, roles) = state
        .db
        .run(move |conn| {
            let user = users::find_by_uuid(conn, &id)?;
            let roles = users::roles_of_user(conn, user.id)?;
            Ok::<_, ApiError>((user, roles))
        })
        .await?;
    Ok(HttpResponse::Ok().json(UserResponse::new(user, roles)))
}

#[utoipa::path(
    patch,
    path = "/api/v1/users/{id}",
    tag = "users",
    operation_id = "update_user",
    summary = "Change a user (admin); deactivating ends its sessions and tokens",
    request_body(content = UpdateUserRequest, content_type = "application/json"),
    params(
        ("id" = String, Path, description = "The entity's UUID")
    ),
    responses(
        (status = 200, description = "The updated user", body = UserResponse)
    )
)]
async fn update_user(
    state: web::Data<AppState>,
    caller: CurrentUser,
    id: web::Path<String>,
    body: JsonBody<UpdateUserRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    let body = body.into_inner();
    body.validate()?;
    let roles = body.roles.as_deref().map(parse_roles).transpose()?;
    let is_self = id == caller.uuid;
    if is_self && body.is_active == Some(false) {
        return Err(ApiError::field(
            "is_active",
            "you cannot deactivate yourself",
        ));
    }
    if is_self && roles.as_ref().is_some_and(|r| !r.contains(&Role::Admin)) {
        return Err(ApiError::field(
            "roles",
            "you cannot remove your own admin role",
        ));
    }
    // The username is needed for the password policy, so read it before hashing.
    let target = {
        let id = id.clone();
        state
            .db
            .query(move |conn| users::find_by_uuid(conn, &id))
            .await?
    };
    let password_hash = match body.password {
        Some(new_password) => {
            password::check_policy(&new_password, &target.username)
                .map_err(|m| ApiError::field("password", m))?;
            Some(hash_password(new_password).await?)
        }
        None => None,
    };
    let (user, role_set) = state
        .db
        .run(move |conn| {
            crate::db::write_transaction(conn, |conn| {
                let ends_sessions = body.is_active == Some(false) || password_hash.is_some();
                let user = users::update_user(
                    conn,
                    target.id,
                    UserChanges {
                        full_name: body.full_name,
                        email: body.email,
                        is_active: body.is_active,
                        password_hash,
                        updated_at: None,
                    },
                )?;
                if let Some(roles) = roles {
                    users::set_roles(conn, user.id, &roles)?;
                }
                if ends_sessions {
                    sessions::delete_user_sessions(conn, user.id)?;
                }
                if body.is_active == Some(false) {
                    api_tokens::delete_all_user_tokens(conn, user.id)?;
                }
                let role_set = users::roles_of_user(conn, user.id)?;
                Ok::<_, ApiError>((user, role_set))
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(UserResponse::new(user, role_set)))
}
