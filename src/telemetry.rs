//! Tracing setup: text logs for people, JSON logs for machines, filtered by `MEDLABEL_LOG`.

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, Settings};

/// Installs the global subscriber, writing to standard error. Text logs are coloured (ANSI
/// escapes) only when standard error is a terminal and `NO_COLOR` is unset
/// (<https://no-color.org>), so a log file or a journal gets plain text.
pub fn init(settings: &Settings) {
    use std::io::IsTerminal as _;
    let filter = EnvFilter::try_new(&settings.log).unwrap_or_else(|_| EnvFilter::new("info"));
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    let _ = match settings.log_format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Metric names (Prometheus conventions: base units, `_total` for counters).
pub const HTTP_REQUESTS: &str = "http_requests_total";
pub const HTTP_DURATION: &str = "http_request_duration_seconds";
pub const AUDIT_EVENTS_PER_COMMIT: &str = "medlabel_audit_events_per_commit";
pub const CHANGES_PER_COMMIT: &str = "medlabel_changes_per_commit";
pub const UPLOAD_BYTES: &str = "medlabel_upload_bytes_total";
pub const DOWNLOAD_BYTES: &str = "medlabel_download_bytes_total";
pub const DEIDENTIFIED_COPIES: &str = "medlabel_deidentified_copies_total";

/// The process-wide Prometheus recorder (`metrics` facade), installed on first use; its
/// handle renders the exposition format. Histogram buckets: request durations from 0.5 ms to
/// 10 s, events per commit from 1 to 512, changes per commit from 1 to 256.
pub fn metrics() -> &'static metrics_exporter_prometheus::PrometheusHandle {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
        std::sync::OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full(HTTP_DURATION.into()),
                &[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0,
                ],
            )
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full(AUDIT_EVENTS_PER_COMMIT.into()),
                    &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0],
                )
            })
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full(CHANGES_PER_COMMIT.into()),
                    &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0],
                )
            })
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was installed already; /metrics stays empty");
        }
        // Histogram samples wait in a buffer until upkeep folds them into the buckets; without
        // a scrape (or with none configured) nothing else would, and the buffer would grow
        // with every request.
        let upkeep = handle.clone();
        let spawned = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || loop {
                std::thread::sleep(std::time::Duration::from_secs(5));
                upkeep.run_upkeep();
            });
        if let Err(err) = spawned {
            tracing::warn!(error = %err, "could not start the metrics upkeep thread");
        }
        handle
    })
}

tokio::task_local! {
    static REQUEST_ID: uuid::Uuid;
}

/// The id of the request being served on this task, if any: what problem bodies, history
/// entries and log lines quote. Set by [`crate::middleware::request_id`] for the rest of the
/// request (handlers included) through [`with_request_id`].
pub fn current_request_id() -> Option<uuid::Uuid> {
    REQUEST_ID.try_with(|id| *id).ok()
}

/// Runs `work` with `id` as the task's [`current_request_id`].
pub async fn with_request_id<F: std::future::Future>(id: uuid::Uuid, work: F) -> F::Output {
    REQUEST_ID.scope(id, work).await
}
