//! `GET /metrics`: the Prometheus text exposition format (version 0.0.4) for operators'
//! scrapers. Not public: it answers only `Authorization: Bearer <MEDLABEL_METRICS_TOKEN>`
//! (401 otherwise), and 404 when no token is configured.
//!
//! Series: `http_requests_total` and `http_request_duration_seconds` (histogram) by method,
//! route template and status; `medlabel_audit_queue_depth`, `medlabel_audit_events_total`,
//! `medlabel_audit_commits_total`, `medlabel_audit_failures_total` and
//! `medlabel_audit_events_per_commit` (histogram); `medlabel_change_queue_depth`,
//! `medlabel_changes_total` (by `outcome`: `committed`, `refused`, `failed`),
//! `medlabel_change_commits_total` and `medlabel_changes_per_commit` (histogram);
//! `medlabel_db_connections_in_use`,
//! `medlabel_db_connections_idle`, `medlabel_db_requests_waiting`;
//! `medlabel_upload_bytes_total`, `medlabel_download_bytes_total`,
//! `medlabel_deidentified_copies_total`.

use std::sync::atomic::Ordering;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::state::AppState;

pub async fn metrics(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let Some(expected) = &state.settings.metrics_token else {
        return Err(ApiError::NotFound);
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .unwrap_or_default();
    // Digests compared, so the comparison's time says nothing about the token.
    if Sha256::digest(given.as_bytes()) != Sha256::digest(expected.0.as_bytes()) {
        return Err(ApiError::Unauthorized(
            "GET /metrics needs Authorization: Bearer <MEDLABEL_METRICS_TOKEN>".into(),
        ));
    }
    let handle = crate::telemetry::metrics();
    let audit = state.audit.stats();
    metrics::gauge!("medlabel_audit_queue_depth").set(state.audit.queue_depth() as f64);
    metrics::counter!("medlabel_audit_events_total").absolute(audit.events.load(Ordering::Relaxed));
    metrics::counter!("medlabel_audit_commits_total")
        .absolute(audit.batches.load(Ordering::Relaxed));
    metrics::counter!("medlabel_audit_failures_total")
        .absolute(audit.failures.load(Ordering::Relaxed));
    let changes = state.changes.stats();
    metrics::gauge!("medlabel_change_queue_depth").set(state.changes.queue_depth() as f64);
    for (outcome, count) in [
        ("committed", &changes.committed),
        ("refused", &changes.refused),
        ("failed", &changes.failures),
    ] {
        metrics::counter!("medlabel_changes_total", "outcome" => outcome)
            .absolute(count.load(Ordering::Relaxed));
    }
    metrics::counter!("medlabel_change_commits_total")
        .absolute(changes.batches.load(Ordering::Relaxed));
    let pool = state.db.pool_state();
    metrics::gauge!("medlabel_db_connections_in_use").set(f64::from(pool.in_use));
    metrics::gauge!("medlabel_db_connections_idle").set(f64::from(pool.idle));
    metrics::gauge!("medlabel_db_requests_waiting").set(pool.waiting as f64);
    handle.run_upkeep();
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(handle.render()))
}
