//! The OpenAPI 3.1 document (generated from the routes by utoipa) and a
//! self-contained HTML page describing it: no CDN, no scripts, so it works
//! offline and behind any firewall.

use std::fmt::Write;
use std::sync::Arc;

use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi, RefOr};

/// The name of the bearer security scheme in the document.
pub const BEARER: &str = "bearer";

/// Finishes a generated document: title, version, the bearer scheme.
pub fn complete(mut openapi: OpenApi, title: &str, description: &str) -> OpenApi {
    openapi.info.title = title.to_owned();
    openapi.info.version = env!("CARGO_PKG_VERSION").to_owned();
    openapi.info.description = Some(description.to_owned());
    openapi.info.license = None;
    openapi.info.contact = None;
    let components = openapi.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .description(Some(
                    "A JWT with a space-separated `scope` claim: orders:read, orders:write, analytics:read",
                ))
                .build(),
        ),
    );
    for item in openapi.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ];
        for op in operations.into_iter().flatten() {
            // Every operation behind a token reads the database, so it may
            // give up waiting on a file load.
            let protected = op.security.as_ref().is_some_and(|s| !s.is_empty());
            if protected && !op.responses.responses.contains_key("503") {
                op.responses
                    .responses
                    .insert("503".to_owned(), RefOr::T(busy_response()));
            }
        }
    }
    openapi
}

/// The 503 of a request that gave up waiting on a file load (or found the
/// database down), as the document describes it.
fn busy_response() -> utoipa::openapi::Response {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    use utoipa::openapi::{ContentBuilder, HeaderBuilder, Ref, ResponseBuilder};
    ResponseBuilder::new()
        .description(format!(
            "The data is being loaded (problem type `{}`, with Retry-After), or the database is unavailable",
            super::problem::BUSY_PROBLEM_TYPE
        ))
        .content(
            super::problem::PROBLEM_JSON,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(Type::Integer))
                .description(Some("Seconds to wait before retrying"))
                .build(),
        )
        .build()
}

/// Routes serving `GET /openapi.json` and `GET /docs` (both public).
pub fn routes<S: Clone + Send + Sync + 'static>(openapi: OpenApi) -> Router<S> {
    let json: Arc<str> = openapi
        .to_pretty_json()
        .expect("an OpenAPI document serialises")
        .into();
    let page: Arc<str> = render(&openapi).into();
    Router::new()
        .route(
            "/openapi.json",
            get(move || {
                let json = json.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, "application/json")],
                        json.to_string(),
                    )
                        .into_response()
                }
            }),
        )
        .route(
            "/docs",
            get(move || {
                let page = page.clone();
                async move { Html(page.to_string()).into_response() as Response }
            }),
        )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Renders the document as one HTML page: every operation with its
/// parameters, body, answers and required scopes.
pub fn render(openapi: &OpenApi) -> String {
    let mut html = String::new();
    let title = escape(&openapi.info.title);
    let _ = write!(
        html,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
         <style>body{{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}}\
         code,pre{{background:#f4f4f4;padding:.1rem .3rem}}section{{border-top:1px solid #ddd;padding:.5rem 0}}\
         .m{{font-weight:bold;text-transform:uppercase;display:inline-block;width:4rem}}\
         table{{border-collapse:collapse}}td,th{{border:1px solid #ddd;padding:.2rem .5rem;text-align:left}}</style>\
         </head><body><h1>{title} <small>{}</small></h1><p>{}</p>\
         <p>Machine-readable: <a href=\"openapi.json\">openapi.json</a> (OpenAPI 3.1).</p>",
        escape(&openapi.info.version),
        escape(openapi.info.description.as_deref().unwrap_or("")),
    );
    for (path, item) in openapi.paths.paths.iter() {
        let operations: [(&str, &Option<Operation>); 5] = [
            ("get", &item.get),
            ("post", &item.post),
            ("put", &item.put),
            ("patch", &item.patch),
            ("delete", &item.delete),
        ];
        for (method, operation) in operations {
            let Some(op) = operation else { continue };
            let _ = write!(
                html,
                "<section id=\"{}\"><h2><span class=\"m\">{method}</span> <code>{}</code></h2>",
                escape(op.operation_id.as_deref().unwrap_or("")),
                escape(path)
            );
            if let Some(summary) = &op.summary {
                let _ = write!(html, "<p><strong>{}</strong></p>", escape(summary));
            }
            if let Some(description) = &op.description {
                let _ = write!(html, "<p>{}</p>", escape(description));
            }
            let scopes: Vec<String> = op
                .security
                .iter()
                .flatten()
                .filter_map(|req| serde_json::to_value(req).ok())
                .filter_map(|v| v.get(BEARER).cloned())
                .filter_map(|v| serde_json::from_value::<Vec<String>>(v).ok())
                .flatten()
                .collect();
            if scopes.is_empty() {
                html.push_str("<p>Public: no token needed.</p>");
            } else {
                let _ = write!(
                    html,
                    "<p>Needs a bearer token with scope <code>{}</code>.</p>",
                    escape(&scopes.join(" "))
                );
            }
            if let Some(parameters) = &op.parameters {
                html.push_str("<table><tr><th>Parameter</th><th>In</th><th>Required</th><th>Description</th></tr>");
                for p in parameters {
                    let place = match p.parameter_in {
                        ParameterIn::Path => "path",
                        ParameterIn::Query => "query",
                        ParameterIn::Header => "header",
                        ParameterIn::Cookie => "cookie",
                    };
                    let required = matches!(p.required, utoipa::openapi::Required::True);
                    let _ = write!(
                        html,
                        "<tr><td><code>{}</code></td><td>{place}</td><td>{}</td><td>{}</td></tr>",
                        escape(&p.name),
                        if required { "yes" } else { "no" },
                        escape(p.description.as_deref().unwrap_or(""))
                    );
                }
                html.push_str("</table>");
            }
            if let Some(body) = &op.request_body {
                let types: Vec<&str> = body.content.keys().map(String::as_str).collect();
                let _ = write!(
                    html,
                    "<p>Body: <code>{}</code> {}</p>",
                    escape(&types.join(", ")),
                    escape(body.description.as_deref().unwrap_or(""))
                );
            }
            html.push_str("<ul>");
            for (status, response) in op.responses.responses.iter() {
                let description = match response {
                    RefOr::T(r) => r.description.clone(),
                    RefOr::Ref(r) => r.ref_location.clone(),
                };
                let _ = write!(
                    html,
                    "<li><code>{}</code> {}</li>",
                    escape(status),
                    escape(&description)
                );
            }
            html.push_str("</ul></section>");
        }
    }
    html.push_str("<section><h2>Errors</h2><p>Every error is <code>application/problem+json</code> (RFC 9457): <code>{type, title, status, detail}</code>, where <code>detail</code> says what was wrong and how to fix it.</p></section></body></html>");
    html
}
