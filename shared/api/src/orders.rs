//! The orders function's router: orders, customers, ticket sales, and the
//! whole API's OpenAPI document, docs page and dashboard.

use crate::http::{dashboard, docs};
use crate::routes::{customers, health, orders, sales};
use crate::state::ApiState;
use axum::Router;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes with their OpenAPI descriptions (one source for both).
pub fn api() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(health::health))
        .routes(routes!(orders::list_orders, sales::create_order))
        .routes(routes!(orders::get_order))
        .routes(routes!(customers::get_customer))
        .routes(routes!(customers::customer_orders))
}

/// The function's router, including `/openapi.json`, `/docs` and
/// `/dashboard`.
pub fn router(state: ApiState) -> Router {
    let (routes, _) = api().split_for_parts();
    let openapi = crate::openapi::document();
    let routes = routes
        .merge(docs::routes(openapi.clone()))
        .merge(dashboard::routes(dashboard::DashboardConfig::from_env()))
        .with_state(state);
    crate::http::finish(routes, &openapi)
}
