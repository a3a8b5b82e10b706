//! The order pipeline's HTTP API, shared by the `orders` and `analytics`
//! functions: each function serves one of the two routers, and the OpenAPI
//! document covers both, as API Gateway serves them under one base URL.

pub mod analytics;
pub mod http;
pub mod orders;
pub mod store;
