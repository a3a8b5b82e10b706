//! HTTP plumbing shared by the API functions: problem+json errors, bearer
//! auth, pagination cursors, ETags, request ids and logs, the OpenAPI
//! document and docs page, the dashboard's files, and serving (Lambda or
//! local).

pub mod auth;
pub mod cursor;
pub mod dashboard;
pub mod docs;
pub mod etag;
pub mod extract;
pub mod problem;
pub mod query_keys;
pub mod serve;

use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use tracing::Instrument;

use order_pipeline::postgres::PgStore;
pub use problem::ApiError;

/// The database store an API function opens at its cold start: the
/// database settings (or secret) and the API session limits, under which
/// requests give up waiting on a load after the lock timeout (503).
pub async fn store_from_env() -> Result<PgStore, lambda_http::Error> {
    let settings = order_pipeline::postgres::secret::database_settings().await?;
    let limits = order_pipeline::config::SessionLimits::api_from_env()?;
    Ok(PgStore::new(
        order_pipeline::postgres::pool::connect_api_pool(&settings, &limits)?,
    ))
}

/// Adds what every API router needs around its routes: problem+json for
/// unknown routes, wrong methods and axum's own rejections, the body limit
/// (413), the refusal of query keys `openapi` does not declare for the
/// route, and a request id on the logs and the response.
pub fn finish(router: Router, openapi: &utoipa::openapi::OpenApi) -> Router {
    let keys = query_keys::DeclaredQueryKeys::of(openapi);
    router
        .layer(middleware::from_fn(move |request, next| {
            query_keys::refuse_undeclared(keys.clone(), request, next)
        }))
        .fallback(unknown_route)
        .layer(middleware::map_response(problem::problem_for_bare_error))
        .layer(DefaultBodyLimit::max(problem::MAX_BODY_BYTES))
        .layer(middleware::from_fn(request_log))
}

async fn unknown_route(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!(
        "no route for {method} {}; see /openapi.json for the API",
        uri.path()
    ))
}

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The Lambda request id when there is one, else API Gateway's, else the
/// caller's `x-request-id`, else a fresh one.
fn request_id(request: &Request) -> String {
    use lambda_http::request::RequestContext;
    use lambda_http::RequestExt;
    if let Some(context) = request.extensions().get::<lambda_http::Context>() {
        return context.request_id.clone();
    }
    let gateway_id = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(c)) => c.request_id.clone(),
        Some(RequestContext::ApiGatewayV2(c)) => c.request_id.clone(),
        _ => None,
    };
    if let Some(id) = gateway_id {
        return id;
    }
    request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// One structured log line per request, in a span carrying the request id.
/// Only the method, route, status and timing are logged: never headers
/// (tokens) or bodies.
async fn request_log(request: Request, next: Next) -> Response {
    let id = request_id(&request);
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let path = request.uri().path().to_owned();
    let span = tracing::info_span!("request", request_id = %id);
    async move {
        let started = Instant::now();
        let mut response = next.run(request).await;
        let status = response.status();
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        // The metric's route is the pattern: a path would make one per id.
        order_pipeline::metrics::record_request(
            route.as_deref().unwrap_or("unmatched"),
            status.as_u16(),
            elapsed_ms,
        );
        let route = route.as_deref().unwrap_or(&path);
        if status.is_server_error() {
            tracing::error!(%method, route, status = status.as_u16(), elapsed_ms, "request failed");
        } else {
            tracing::info!(%method, route, status = status.as_u16(), elapsed_ms, "request");
        }
        if let Ok(value) = HeaderValue::from_str(&id) {
            response.headers_mut().insert(REQUEST_ID_HEADER, value);
        }
        response
    }
    .instrument(span)
    .await
}
