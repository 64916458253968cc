//! medlabel: role-based medical imaging and labelling.

pub mod api;
pub mod audit;
pub mod auth;
pub mod changes;
pub mod cli;
pub mod codesets;
pub mod config;
pub mod db;
pub mod dummy_data;
pub mod error;
pub mod export;
pub mod geometry;
pub mod history;
pub mod imaging;
pub mod middleware;
pub mod models;
pub mod openapi;
pub mod orphans;
pub mod probe;
pub mod pseudonym;
pub mod startup;
pub mod state;
pub mod storage;
pub mod telemetry;
pub mod text;
pub mod views;
