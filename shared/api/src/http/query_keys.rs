//! Query keys an operation does not declare are refused (400 naming them),
//! not ignored: a misspelt `limt=5` would otherwise silently give the
//! default page, and the OpenAPI document, which lists each operation's
//! parameters, would not describe what the server takes. The keys allowed
//! are read from that document, so the two cannot drift apart.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use percent_encoding::percent_decode_str;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::OpenApi;

use super::problem::ApiError;

/// The query keys of each documented operation, by method and route.
#[derive(Debug, Clone, Default)]
pub struct DeclaredQueryKeys(Arc<HashMap<(Method, String), Vec<String>>>);

impl DeclaredQueryKeys {
    pub fn of(openapi: &OpenApi) -> Self {
        let mut keys = HashMap::new();
        for (path, item) in openapi.paths.paths.iter() {
            let operations: [(Method, &Option<Operation>); 5] = [
                (Method::GET, &item.get),
                (Method::POST, &item.post),
                (Method::PUT, &item.put),
                (Method::PATCH, &item.patch),
                (Method::DELETE, &item.delete),
            ];
            for (method, operation) in operations {
                let Some(operation) = operation else { continue };
                let names = operation
                    .parameters
                    .iter()
                    .flatten()
                    .filter(|p| matches!(p.parameter_in, ParameterIn::Query))
                    .map(|p| p.name.clone())
                    .collect();
                keys.insert((method, path.clone()), names);
            }
        }
        Self(Arc::new(keys))
    }

    /// The 400 for a query string with keys `route` does not declare.
    fn check(&self, method: &Method, route: &str, query: &str) -> Result<(), ApiError> {
        // Routes outside the document (/openapi.json, /docs) take no parameters worth checking.
        let Some(declared) = self.0.get(&(method.clone(), route.to_owned())) else {
            return Ok(());
        };
        let mut unknown: Vec<String> = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let raw = pair.split('=').next().unwrap_or(pair).replace('+', " ");
            let key = percent_decode_str(&raw).decode_utf8_lossy().into_owned();
            if !declared.contains(&key) && !unknown.contains(&key) {
                unknown.push(key);
            }
        }
        if unknown.is_empty() {
            return Ok(());
        }
        let named: Vec<String> = unknown.iter().map(|k| format!("`{k}`")).collect();
        let takes = if declared.is_empty() {
            "no query parameters".to_owned()
        } else {
            format!("only {}", declared.join(", "))
        };
        Err(ApiError::bad_parameter(
            "query",
            format!(
                "unknown parameter {}; {method} {route} takes {takes} (see /openapi.json)",
                named.join(", ")
            ),
        ))
    }
}

/// Middleware: refuses a request whose query string has undeclared keys.
pub async fn refuse_undeclared(keys: DeclaredQueryKeys, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    if let (Some(route), Some(query)) = (route, request.uri().query()) {
        if let Err(problem) = keys.check(request.method(), &route, query) {
            return problem.into_response();
        }
    }
    next.run(request).await
}
