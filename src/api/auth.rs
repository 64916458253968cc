//! `/auth/*`: login and logout (server-side sessions), the caller's own profile and password,
//! and the caller's API tokens.
//!
//! Longer than ~400 lines: seven operations, each with its multi-line OpenAPI annotation.

use actix_identity::Identity;
use actix_web::http::header;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use validator::Validate;

use super::users::{hash_password, UserResponse};
use super::{parse_id, JsonBody};
use crate::audit::record::{safe_username, LoginAttempt};
use crate::auth::{password, throttle, Access, AuthKind, CurrentUser};
use crate::db::now;
use crate::error::ApiError;
use crate::middleware::client_ip::ClientAddress;
use crate::models::api_tokens::{self, ApiToken};
use crate::models::{sessions, users};
use crate::state::AppState;
use crate::views::{rfc3339, rfc3339_opt};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/auth/login").route(web::post().to(login).wrap(Access::Public)))
        .service(web::resource("/auth/logout").route(web::post().to(logout).wrap(Access::AnyUser)))
        .service(web::resource("/auth/me").route(web::get().to(me).wrap(Access::AnyUser)))
        .service(
            web::resource("/auth/password")
                .route(web::post().to(change_password).wrap(Access::AnyUser)),
        )
        .service(
            web::resource("/auth/tokens")
                .route(web::get().to(list_tokens).wrap(Access::AnyUser))
                .route(web::post().to(create_token).wrap(Access::AnyUser)),
        )
        .service(
            web::resource("/auth/tokens/{id}")
                .route(web::delete().to(delete_token).wrap(Access::AnyUser)),
        );
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"username": "dr.house", "password": "vicodin and puzzles"}))]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LoginResponse {
    pub user: UserResponse,
}

#[derive(Debug, Deserialize, Validate, utoipa::ToSchema)]
#[schema(example = json!({"current_password": "vicodin and puzzles", "new_password": "a brand new passphrase"}))]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    #[schema(min_length = 12, max_length = 256)]
    pub new_password: String,
}

#[derive(Debug, Deserialize, Validate, utoipa::ToSchema)]
#[schema(example = json!({"name": "nightly export", "expires_in_days": 30}))]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    #[validate(length(min = 1, max = 100, message = "must be 1 to 100 characters"))]
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    #[validate(range(min = 1, max = 365, message = "must be between 1 and 365"))]
    #[schema(minimum = 1, maximum = 365)]
    #[serde(default, deserialize_with = "super::whole_number")]
    pub expires_in_days: Option<i64>,
}

/// A token as listed: never its secret.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    pub id: String,
    pub name: String,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-21T09:30:00.123Z")]
    pub created_at: NaiveDateTime,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-21T09:30:00.123Z")]
    pub expires_at: NaiveDateTime,
    #[serde(serialize_with = "rfc3339_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<NaiveDateTime>,
}

impl From<ApiToken> for TokenResponse {
    fn from(t: ApiToken) -> Self {
        TokenResponse {
            id: t.uuid,
            name: t.name,
            created_at: t.created_at,
            expires_at: t.expires_at,
            last_used_at: t.last_used_at,
        }
    }
}

/// A token as created: the secret is shown only here.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"id": "01936f0e-6d2a-7c3b-9a10-2f5e8d1c4b77", "name": "nightly export", "token": "mlt_3q2+7w...", "created_at": "2026-11-21T09:30:00.123Z", "expires_at": "2026-12-21T09:30:00.123Z"}))]
pub struct CreatedTokenResponse {
    pub id: String,
    pub name: String,
    pub token: String,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-21T09:30:00.123Z")]
    pub created_at: NaiveDateTime,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-21T09:30:00.123Z")]
    pub expires_at: NaiveDateTime,
}

fn bad_credentials() -> ApiError {
    ApiError::Unauthorized("wrong username or password".into())
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/login",
    tag = "auth",
    operation_id = "login",
    summary = "Log in: a new session cookie",
    request_body(content = LoginRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Logged in; sets the session cookie", body = LoginResponse)
    )
)]
async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: JsonBody<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let LoginRequest {
        username,
        password: given,
    } = body.into_inner();
    // The audit event names the username tried (safely), and the user once logged in.
    req.extensions_mut().insert(LoginAttempt {
        username: safe_username(&username),
        user_id: None,
    });
    let key = throttle::username_key(&username);
    let client_ip = req
        .extensions()
        .get::<ClientAddress>()
        .map(|c| throttle::client_key(c.ip))
        .unwrap_or_default();

    // The attempt is counted before the password is checked (taken back on success), so a
    // burst of concurrent attempts gets no more verifications than the limit allows.
    let (locked, user) = {
        let (key, client_ip) = (key.clone(), client_ip.clone());
        state
            .db
            .run(move |conn| {
                let locked = throttle::reserve_attempt(conn, &key, &client_ip, now())?;
                let user = match locked {
                    Some(_) => None,
                    None => users::find_by_username(conn, &username)?,
                };
                Ok::<_, ApiError>((locked, user))
            })
            .await?
    };
    if let Some(retry_after) = locked {
        return Err(ApiError::TooManyRequests { retry_after });
    }

    // The hash is checked for unknown users too, so timing does not reveal who exists.
    let ok = password::verify_async(user.as_ref().map(|u| u.password_hash.clone()), given)
        .await
        .map_err(ApiError::internal)?;
    let verified = user.filter(|u| ok && u.is_active);

    let Some(user) = verified else {
        return Err(bad_credentials());
    };
    let (user, roles) = state
        .db
        .run(move |conn| {
            throttle::record_success(conn, &key)?;
            let roles = users::roles_of_user(conn, user.id)?;
            Ok::<_, ApiError>((user, roles))
        })
        .await?;
    req.extensions_mut().insert(LoginAttempt {
        username: safe_username(&user.username),
        user_id: Some(user.id),
    });
    // A fresh session id on every login (actix-identity renews the session).
    Identity::login(&req.extensions(), user.id.to_string()).map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().json(LoginResponse {
        user: UserResponse::new(user, roles),
    }))
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/logout",
    tag = "auth",
    operation_id = "logout",
    summary = "End the session server-side",
    responses(
        (status = 204, description = "Logged out")
    )
)]
async fn logout(identity: Option<Identity>) -> HttpResponse {
    // Purges the session: the store deletes its row, so a replayed cookie finds nothing.
    if let Some(identity) = identity {
        identity.logout();
    }
    HttpResponse::NoContent().finish()
}

#[utoipa::path(
    get,
    path = "/api/v1/auth/me",
    tag = "auth",
    operation_id = "get_me",
    summary = "The caller",
    responses(
        (status = 200, description = "The caller", body = UserResponse)
    )
)]
async fn me(caller: CurrentUser) -> HttpResponse {
    HttpResponse::Ok().json(UserResponse::new((*caller.user).clone(), caller.roles))
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/password",
    tag = "auth",
    operation_id = "change_password",
    summary = "Change one's own password (ends other sessions)",
    request_body(content = ChangePasswordRequest, content_type = "application/json"),
    responses(
        (status = 204, description = "Changed")
    )
)]
async fn change_password(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: CurrentUser,
    body: JsonBody<ChangePasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    let ChangePasswordRequest {
        current_password,
        new_password,
    } = body.into_inner();
    // Wrong current passwords are throttled like failed logins (a stolen session must not be
    // a password oracle): the attempt is counted under the caller's username before the check.
    let client_ip = req
        .extensions()
        .get::<ClientAddress>()
        .map(|c| throttle::client_key(c.ip))
        .unwrap_or_default();
    let key = throttle::username_key(&caller.username);
    let (locked, user) = {
        let key = key.clone();
        state
            .db
            .run(move |conn| {
                let locked = throttle::reserve_attempt(conn, &key, &client_ip, now())?;
                Ok::<_, ApiError>((locked, users::find_by_id(conn, caller.id)?))
            })
            .await?
    };
    if let Some(retry_after) = locked {
        return Err(ApiError::TooManyRequests { retry_after });
    }
    let current_ok = password::verify_async(Some(user.password_hash.clone()), current_password)
        .await
        .map_err(ApiError::internal)?;
    if !current_ok {
        return Err(ApiError::field(
            "current_password",
            "is not your current password",
        ));
    }
    state
        .db
        .query(move |conn| throttle::record_success(conn, &key))
        .await?;
    password::check_policy(&new_password, &user.username)
        .map_err(|m| ApiError::field("new_password", m))?;
    let new_hash = hash_password(new_password).await?;
    state
        .db
        .run(move |conn| {
            crate::db::write_transaction(conn, |conn| {
                users::update_user(
                    conn,
                    user.id,
                    users::UserChanges {
                        password_hash: Some(new_hash),
                        ..Default::default()
                    },
                )?;
                // Ends every session of the user; the caller's own continues under a new id.
                sessions::delete_user_sessions(conn, user.id)?;
                Ok::<_, ApiError>(())
            })
        })
        .await?;
    if caller.auth == AuthKind::Session {
        Identity::login(&req.extensions(), caller.id.to_string()).map_err(ApiError::internal)?;
    }
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/tokens",
    tag = "auth",
    operation_id = "create_token",
    summary = "Create an API token (the secret is shown only here)",
    request_body(content = CreateTokenRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = CreatedTokenResponse, headers(("Location" = String, description = "the new entity")))
    )
)]
async fn create_token(
    state: web::Data<AppState>,
    caller: CurrentUser,
    body: JsonBody<CreateTokenRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    body.validate()?;
    let secret = crate::auth::tokens::generate_token();
    let token_hash = crate::auth::tokens::digest(&secret);
    let valid_days = body.expires_in_days.unwrap_or(90);
    let token = state
        .db
        .run(move |conn| {
            Ok::<_, ApiError>(api_tokens::insert_token(
                conn,
                caller.id,
                &body.name,
                &token_hash,
                valid_days,
            )?)
        })
        .await?;
    let location = format!("/api/v1/auth/tokens/{}", token.uuid);
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, location))
        .json(CreatedTokenResponse {
            id: token.uuid,
            name: token.name,
            token: secret,
            created_at: token.created_at,
            expires_at: token.expires_at,
        }))
}

#[utoipa::path(
    get,
    path = "/api/v1/auth/tokens",
    tag = "auth",
    operation_id = "list_tokens",
    summary = "The caller's API tokens, without secrets",
    responses(
        (status = 200, description = "Tokens", body = Vec<TokenResponse>)
    )
)]
async fn list_tokens(
    state: web::Data<AppState>,
    caller: CurrentUser,
) -> Result<HttpResponse, ApiError> {
    let tokens = state
        .db
        .query(move |conn| api_tokens::list_user_tokens(conn, caller.id))
        .await?;
    Ok(HttpResponse::Ok().json(
        tokens
            .into_iter()
            .map(TokenResponse::from)
            .collect::<Vec<_>>(),
    ))
}

#[utoipa::path(
    delete,
    path = "/api/v1/auth/tokens/{id}",
    tag = "auth",
    operation_id = "delete_token",
    summary = "Revoke an API token at once",
    params(
        ("id" = String, Path, description = "The entity's UUID")
    ),
    responses(
        (status = 204, description = "Revoked")
    )
)]
async fn delete_token(
    state: web::Data<AppState>,
    caller: CurrentUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    let deleted = state
        .db
        .query(move |conn| api_tokens::delete_user_token(conn, caller.id, &id))
        .await?;
    if deleted {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::NotFound)
    }
}
