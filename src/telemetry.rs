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
