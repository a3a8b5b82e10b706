//! The order pipeline's HTTP API, shared by the `orders` and `analytics`
//! functions: each function serves one of the two routers (`orders`,
//! `analytics`) over the shared `state`, with the routes one file per
//! resource under `routes`, and the OpenAPI document (`openapi`) covers
//! both, as API Gateway serves them under one base URL.

pub mod analytics;
pub mod http;
pub mod openapi;
pub mod orders;
pub mod page;
pub mod routes;
pub mod state;
