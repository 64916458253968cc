//! Integration tests: the real application over HTTP, on SQLite, or on PostgreSQL when
//! `TEST_DATABASE_URL` is set. Each test starts its own app with its own database.

mod annotations;
mod datasets;
mod fixtures;
mod helpers;
mod history;

mod auth;
mod cli;
mod concurrency;
mod deidentification;
mod events;
mod group_commit;
mod hardening;
mod health;
mod images;
mod metrics;
mod migrations;
mod openapi;
mod patients;
mod pool;
mod roles;
mod s3;
mod search;
mod security;
mod sessions;
mod snapshots;
mod throttling;
mod tokens;
mod users;
mod vocabulary;
