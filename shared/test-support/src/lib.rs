//! Test support for the workspace's tests (a dev-dependency only): a fresh
//! database and bucket per test, the real ingestor over them, tokens and
//! in-process requests for the API, stores that fail on cue, SQS events, and
//! log capture. `make test` starts PostgreSQL and LocalStack; run tests through
//! it, or export the URLs in [`database`] and [`bucket`] yourself.

pub mod bucket;
pub mod database;
pub mod faults;
pub mod http;
pub mod logs;
pub mod pipeline;
pub mod sqs;

pub use bucket::{localstack_config, TestBucket, DEFAULT_AWS_ENDPOINT};
pub use database::{block_on_cleanup, unique_name, TestDatabase, DEFAULT_ADMIN_URL};
pub use faults::{FaultyStore, WriteGate};
pub use http::{
    get, post_json, send, test_authenticator, test_token, test_token_all, TestResponse,
    TEST_JWT_SECRET,
};
pub use logs::LogCapture;
pub use pipeline::{MemoryBucket, PipelineBucket, TestPipeline};
pub use sqs::{sqs_event, sqs_event_of};
