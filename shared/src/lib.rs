//! The order pipeline's shared library: domain types and rules, the ports
//! and adapters (S3, PostgreSQL), configuration and telemetry. Each Lambda
//! function's `main` only wires these together.

pub mod api_store;
pub mod carried_text;
pub mod config;
pub mod csv_input;
pub mod csv_records;
pub mod database_secret;
pub mod db;
pub mod domain;
pub mod http;
pub mod ingest;
pub mod migrations;
pub mod postgres_tls;
pub mod presign;
pub mod processed;
pub mod roles;
pub mod s3_events;
pub mod seen;
pub mod storage;
pub mod telemetry;

#[cfg(feature = "testing")]
pub mod testing;
