//! Building the application: the same code path for `medlabel serve` and for tests (which bind
//! port 0). `prepare` readies the database; `Application::build` binds and assembles the server.

use std::net::TcpListener;

use actix_cors::Cors;
use actix_identity::IdentityMiddleware;
use actix_session::config::{BrowserSession, CookieContentSecurity};
use actix_session::SessionMiddleware;
use actix_web::cookie::{time::Duration as CookieDuration, Key, SameSite};
use actix_web::dev::Server;
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::middleware::{from_fn, Condition};
use actix_web::{web, App, HttpRequest, HttpServer};

use crate::api;
use crate::audit;
use crate::auth::session_store::DbSessionStore;
use crate::error::ApiError;
use crate::middleware::{canonical_path, client_ip, problem, request_id, security_headers};
use crate::models::groups;
use crate::state::AppState;

/// Applies pending migrations and registers the role groups and code systems (idempotent).
/// Loading the bundled code lists is `serve`'s job (tests load what they need).
pub fn prepare(state: &AppState) -> anyhow::Result<()> {
    state.db.migrate()?;
    let mut conn = state.db.get()?;
    check_pseudonym_key(&mut conn, &state.pseudonym_key)?;
    groups::ensure_groups(&mut conn)?;
    crate::models::codes::ensure_code_systems(&mut conn)?;
    Ok(())
}

/// Records the pseudonym key's fingerprint in a new database, and refuses a key other than the
/// one recorded: every subject id would change silently otherwise.
pub fn check_pseudonym_key(
    conn: &mut crate::db::DbConnection,
    key: &crate::pseudonym::PseudonymKey,
) -> anyhow::Result<()> {
    let ours = key.fingerprint();
    let recorded = crate::models::patients::record_key_fingerprint(conn, "pseudonym", &ours)?;
    if recorded != ours {
        anyhow::bail!(
            "MEDLABEL_PSEUDONYM_KEY is not the key this database was used with (its fingerprint \
             is {recorded}, this key's is {ours}): every subject pseudonym would change. Set \
             MEDLABEL_PSEUDONYM_KEY (or MEDLABEL_PSEUDONYM_KEY_FILE) to the original key, or \
             restore pseudonym.key in the data directory."
        );
    }
    Ok(())
}

pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    /// Binds `settings.bind` and builds the server over an already prepared state.
    pub fn build(state: AppState) -> anyhow::Result<Self> {
        Self::build_with(state, |_| {})
    }

    /// Like [`Application::build`], with extra `/api/v1` routes (tests add failure probes).
    pub fn build_with(
        state: AppState,
        extra_routes: fn(&mut web::ServiceConfig),
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(&state.settings.bind)
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", state.settings.bind))?;
        let port = listener.local_addr()?.port();
        let server = build_server(listener, state, extra_routes)?;
        Ok(Application { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }

    pub fn into_server(self) -> Server {
        self.server
    }
}

pub fn build_server(
    listener: TcpListener,
    state: AppState,
    extra_routes: fn(&mut web::ServiceConfig),
) -> anyhow::Result<Server> {
    let key = Key::try_from(state.settings.resolve_session_key()?.as_slice())
        .map_err(|e| anyhow::anyhow!("session key: {e}"))?;
    let settings = state.settings.clone();
    let workers = settings.workers;
    let audit_log = web::Data::new(state.audit.clone());
    let trusted_proxies = web::Data::new(client_ip::TrustedProxies(
        state.settings.trusted_proxies.clone(),
    ));
    let data = web::Data::new(state);
    let mut server = HttpServer::new(move || {
        let session = SessionMiddleware::builder(DbSessionStore::new(data.db.clone()), key.clone())
            .cookie_name(settings.cookie_name().to_owned())
            .cookie_secure(!settings.insecure_cookies)
            .cookie_http_only(true)
            .cookie_same_site(SameSite::Strict)
            .cookie_path("/".to_owned())
            .cookie_content_security(CookieContentSecurity::Private)
            .session_lifecycle(
                BrowserSession::default()
                    .state_ttl(CookieDuration::seconds(settings.session_idle_secs as i64)),
            )
            .build();
        let identity = IdentityMiddleware::builder()
            .login_deadline(Some(std::time::Duration::from_secs(
                settings.session_max_secs,
            )))
            .visit_deadline(Some(std::time::Duration::from_secs(
                settings.session_idle_secs,
            )))
            .build();
        let cors_on = !settings.cors_origins.is_empty();
        let cors = settings
            .cors_origins
            .iter()
            .fold(Cors::default(), |cors, origin| cors.allowed_origin(origin))
            .allowed_methods(["GET", "POST", "PATCH", "DELETE"])
            .allowed_headers([
                "authorization",
                "content-type",
                "if-match",
                "if-none-match",
                "x-request-id",
                "range",
            ])
            .expose_headers(["x-request-id", "etag", "location", "retry-after"])
            .supports_credentials()
            .max_age(600);

        App::new()
            .app_data(data.clone())
            .app_data(audit_log.clone())
            .app_data(trusted_proxies.clone())
            .app_data(
                web::JsonConfig::default()
                    .limit(settings.max_json_bytes)
                    .error_handler(|err, _| json_error(err).into()),
            )
            .app_data(web::QueryConfig::default().error_handler(|err, _| query_error(err).into()))
            .app_data(
                web::PathConfig::default().error_handler(|err, req| path_error(err, req).into()),
            )
            .service(web::resource("/health").route(web::get().to(api::health::health)))
            // The document, byte for byte what `medlabel openapi` prints and
            // `openapi/openapi.json` holds; and Swagger UI from the binary (no CDN) reading it.
            .service(
                web::resource("/api/v1/openapi.json")
                    .route(web::get().to(crate::openapi::serve_document)),
            )
            .service(
                utoipa_swagger_ui::SwaggerUi::new("/docs/{_:.*}")
                    .config(utoipa_swagger_ui::Config::from("/api/v1/openapi.json")),
            )
            .service(web::resource("/docs").route(web::get().to(|| async {
                actix_web::HttpResponse::Found()
                    .insert_header(("location", "/docs/"))
                    .finish()
            })))
            .service(
                web::scope("/api/v1")
                    .configure(api::configure)
                    .configure(extra_routes)
                    .wrap(from_fn(crate::auth::authenticate))
                    .wrap(identity)
                    .wrap(session),
            )
            // Outermost last; `middleware` says what each layer does and why in this order.
            .wrap(Condition::new(cors_on, cors))
            .wrap(from_fn(canonical_path::head_as_get))
            .wrap(from_fn(problem::problem_bodies))
            .wrap(from_fn(audit::middleware::audit))
            .wrap(from_fn(client_ip::resolve_client_ip))
            .wrap(from_fn(request_id::assign_request_id))
            .wrap(from_fn(canonical_path::canonicalise))
            .wrap(from_fn(security_headers::security_headers))
    })
    .listen(listener)?;
    if let Some(workers) = workers {
        server = server.workers(workers);
    }
    Ok(server.run())
}

fn json_error(err: JsonPayloadError) -> ApiError {
    match err {
        JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => {
            ApiError::PayloadTooLarge("the JSON body is larger than the configured limit".into())
        }
        JsonPayloadError::ContentType => ApiError::UnsupportedMediaType(
            "the body must be JSON (Content-Type: application/json)".into(),
        ),
        JsonPayloadError::Deserialize(e) if e.is_data() => ApiError::Validation(
            [("body".to_owned(), vec![e.to_string()])]
                .into_iter()
                .collect(),
        ),
        JsonPayloadError::Deserialize(e) => {
            ApiError::BadRequest(format!("the body is not valid JSON: {e}"))
        }
        other => ApiError::BadRequest(format!("the body could not be read: {other}")),
    }
}

fn query_error(err: QueryPayloadError) -> ApiError {
    ApiError::BadRequest(format!("the query string could not be parsed: {err}"))
}

fn path_error(_err: PathError, _req: &HttpRequest) -> ApiError {
    ApiError::NotFound
}
