//! The order pipeline without HTTP: domain types and rules, CSV input, the
//! ports and adapters (S3, PostgreSQL), the ingest and publish use cases,
//! configuration and telemetry. The ingest and migrate functions need only
//! this crate; the HTTP API is `pipeline-api`.

pub mod carried_text;
pub mod config;
pub mod csv_input;
pub mod csv_records;
pub mod domain;
pub mod error_chain;
pub mod ingest;
pub mod metrics;
pub mod postgres;
pub mod presign;
pub mod processed;
pub mod s3_events;
pub mod seen;
pub mod storage;
pub mod telemetry;
pub mod uploads;
