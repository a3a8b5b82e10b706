//! `make chaos`: faults injected into the real pipeline (the real ingest
//! binary, `pipeline-local forward` and `redrive`, PostgreSQL, LocalStack), each
//! run's end state compared with a clean run of the same files.

pub mod api_servers;
pub mod cases;
pub mod lambda_service;
pub mod load_cases;
pub mod postgres_cluster;
pub mod s3_proxy;
pub mod state;
pub mod world;
