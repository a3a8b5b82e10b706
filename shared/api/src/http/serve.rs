//! Serving a router: as a Lambda function behind API Gateway REST (v1),
//! HTTP API (v2), a function URL or ALB, or as a plain local HTTP server.
//!
//! The stage-prefix trap (aws-lambda-rust-runtime issues 668, 782, 919):
//! `lambda_http` puts the API Gateway stage in front of the path
//! (`/prod/orders`) so that routers written for it see the URL the client
//! used, unless `AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH` is set. Our routes
//! are stage-free, so [`normalize_path`] takes the path API Gateway reports
//! for the resource (`RawHttpPath`) and drops a leading `/{stage}` that an
//! HTTP API with a named stage leaves there. The environment variable is not
//! needed (and would make behaviour depend on deployment settings).

use axum::http::uri::{PathAndQuery, Uri};
use axum::Router;
use lambda_http::request::RequestContext;
use lambda_http::RequestExt;
use tower::ServiceExt;

/// Rewrites the path of a request converted by `lambda_http` to the path
/// of the resource, without any stage prefix.
pub fn normalize_path(mut request: lambda_http::Request) -> lambda_http::Request {
    let raw = request.raw_http_path().to_owned();
    if raw.is_empty() {
        return request;
    }
    let path = match request.request_context_ref() {
        // REST APIs report `path` without the stage.
        Some(RequestContext::ApiGatewayV1(_)) => raw,
        // HTTP APIs report `rawPath` with the stage unless it is `$default`.
        Some(RequestContext::ApiGatewayV2(context)) => match context.stage.as_deref() {
            Some(stage) if stage != "$default" => strip_stage(&raw, stage),
            _ => raw,
        },
        _ => return request,
    };
    let path_and_query = match request.uri().query() {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    if let Ok(path_and_query) = path_and_query.parse::<PathAndQuery>() {
        let mut parts = request.uri().clone().into_parts();
        parts.path_and_query = Some(path_and_query);
        if let Ok(uri) = Uri::from_parts(parts) {
            *request.uri_mut() = uri;
        }
    }
    request
}

fn strip_stage(path: &str, stage: &str) -> String {
    let prefix = format!("/{stage}");
    match path.strip_prefix(&prefix) {
        Some("") => "/".to_owned(),
        Some(rest) if rest.starts_with('/') => rest.to_owned(),
        _ => path.to_owned(),
    }
}

/// Runs `router` as the entry point of `function`: a plain HTTP server on
/// `LOCAL_HTTP_ADDR` when that is set (local use, benchmarks), otherwise the
/// Lambda runtime loop, which writes the EMF metrics after each invocation
/// (a local server writes them every few seconds).
pub async fn run(function: &str, router: Router) -> Result<(), lambda_http::Error> {
    let metrics = order_pipeline::metrics::init(function)
        .ok_or("a metrics collector is installed already")?;
    if let Ok(addr) = std::env::var("LOCAL_HTTP_ADDR") {
        return serve_local(router, &addr).await;
    }
    order_pipeline::metrics::lambda::service::run_http(
        metrics,
        tower::service_fn(move |request: lambda_http::Request| {
            router.clone().oneshot(normalize_path(request))
        }),
    )
    .await
}

/// Serves `router` over HTTP/1.1 on `addr` until Ctrl-C.
pub async fn serve_local(router: Router, addr: &str) -> Result<(), lambda_http::Error> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    tracing::info!(%addr, "serving HTTP locally");
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn strips_only_a_whole_stage_segment() {
        assert_eq!(super::strip_stage("/prod/orders", "prod"), "/orders");
        assert_eq!(super::strip_stage("/prod", "prod"), "/");
        assert_eq!(super::strip_stage("/production/x", "prod"), "/production/x");
        assert_eq!(super::strip_stage("/orders", "prod"), "/orders");
    }
}
