//! One base URL for both HTTP functions, as `cargo lambda watch` serves them
//! locally: each path goes to the function that owns it according to the
//! `[workspace.metadata.lambda.watch.router]` map of the workspace's
//! Cargo.toml, read from that file so the two never disagree.

use axum::extract::Request;
use axum::Router;
use tower::ServiceExt;

/// The workspace manifest holding the router map, compiled in.
const WORKSPACE_MANIFEST: &str = include_str!("../../../Cargo.toml");

/// A route of the map: an exact path, or a prefix whose `/{*rest}` tail
/// matches one or more further segments.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Exact(String),
    Prefix(String),
}

impl Route {
    fn parse(pattern: &str) -> Self {
        match pattern.strip_suffix("/{*rest}") {
            Some(prefix) => Route::Prefix(prefix.to_owned()),
            None => Route::Exact(pattern.to_owned()),
        }
    }

    fn matches(&self, path: &str) -> bool {
        match self {
            Route::Exact(exact) => path == exact,
            Route::Prefix(prefix) => path
                .strip_prefix(prefix.as_str())
                .and_then(|rest| rest.strip_prefix('/'))
                .is_some_and(|rest| !rest.is_empty()),
        }
    }
}

/// Which function serves which path.
#[derive(Debug, Clone)]
pub struct RouterMap {
    routes: Vec<(Route, String)>,
}

impl RouterMap {
    /// The map of the workspace's Cargo.toml.
    pub fn of_workspace() -> Self {
        Self::parse(WORKSPACE_MANIFEST)
            .expect("the workspace Cargo.toml has a [workspace.metadata.lambda.watch.router] map")
    }

    /// Reads `[workspace.metadata.lambda.watch.router]` from a manifest.
    pub fn parse(manifest: &str) -> Result<Self, String> {
        let manifest: toml::Table =
            toml::from_str(manifest).map_err(|e| format!("Cargo.toml is not TOML: {e}"))?;
        let table = ["metadata", "lambda", "watch", "router"]
            .iter()
            .fold(manifest.get("workspace"), |v, key| {
                v.and_then(|v| v.get(key))
            })
            .and_then(toml::Value::as_table)
            .ok_or("Cargo.toml has no [workspace.metadata.lambda.watch.router] table")?;
        let routes = table
            .iter()
            .map(|(pattern, function)| {
                let function = function.as_str().ok_or_else(|| {
                    format!("router entry {pattern:?}: the function must be a string")
                })?;
                Ok((Route::parse(pattern), function.to_owned()))
            })
            .collect::<Result<_, String>>()?;
        Ok(Self { routes })
    }

    /// The function serving `path`, if the map names one.
    pub fn function_for(&self, path: &str) -> Option<&str> {
        self.routes
            .iter()
            .find(|(route, _)| route.matches(path))
            .map(|(_, function)| function.as_str())
    }
}

/// A router sending each request to the orders or analytics router as the
/// map says. Paths the map does not name go to orders, whose fallback
/// answers them with a problem+json 404 pointing at /openapi.json.
pub fn gateway(map: RouterMap, orders: Router, analytics: Router) -> Router {
    let dispatch = tower::service_fn(move |request: Request| {
        let router = match map.function_for(request.uri().path()) {
            Some("analytics") => analytics.clone(),
            _ => orders.clone(),
        };
        router.oneshot(request)
    });
    Router::new().fallback_service(dispatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_each_path_to_the_function_of_the_workspace_map() {
        let map = RouterMap::of_workspace();
        for (path, function) in [
            ("/health", Some("analytics")),
            ("/analytics/top-customers", Some("analytics")),
            ("/ingestions", Some("analytics")),
            ("/ingestions/7", Some("analytics")),
            ("/exports/processed-orders.csv", Some("analytics")),
            ("/orders", Some("orders")),
            ("/orders/7", Some("orders")),
            ("/customers/7/orders", Some("orders")),
            ("/openapi.json", Some("orders")),
            ("/docs", Some("orders")),
            ("/dashboard", Some("orders")),
            ("/dashboard/app.js", Some("orders")),
            ("/analytics", None),
            ("/customers", None),
            ("/ordersx", None),
        ] {
            assert_eq!(map.function_for(path), function, "{path}");
        }
    }
}
