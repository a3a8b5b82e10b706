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

/// Finishes a generated document: title, version, the bearer scheme, and
/// the error answers (see [`SHARED_PROBLEMS`]).
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
                    "A JWT with a space-separated `scope` claim: orders:read, orders:write, analytics:read, files:write",
                ))
                .build(),
        ),
    );
    // The shared answers' body; no route names it itself.
    components.schemas.insert(
        "Problem".to_owned(),
        <super::problem::Problem as utoipa::PartialSchema>::schema(),
    );
    for shared in &SHARED_PROBLEMS {
        components
            .responses
            .insert(shared.name.to_owned(), RefOr::T(shared.response()));
    }
    for item in openapi.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ];
        for op in operations.into_iter().flatten() {
            add_problem_answers(op);
        }
    }
    openapi
}

/// An error answer that many operations give, declared once under
/// `components/responses` and referenced by each operation that can give it.
struct SharedProblem {
    status: u16,
    name: &'static str,
    description: &'static str,
    /// A header that comes with it, and what it says.
    header: Option<(&'static str, &'static str)>,
    /// Whether an operation can give it.
    given_by: fn(&Operation) -> bool,
}

fn any_operation(_: &Operation) -> bool {
    true
}
/// 405 is for methods the document does not list, 409 means something
/// particular to each route that gives it: only where the route names it.
fn named_by_the_route(_: &Operation) -> bool {
    false
}
fn protected(op: &Operation) -> bool {
    op.security.as_ref().is_some_and(|s| !s.is_empty())
}
fn takes_input(op: &Operation) -> bool {
    op.parameters.as_ref().is_some_and(|p| !p.is_empty()) || op.request_body.is_some()
}
fn has_path_parameters(op: &Operation) -> bool {
    op.parameters
        .iter()
        .flatten()
        .any(|p| matches!(p.parameter_in, ParameterIn::Path))
}
fn has_body(op: &Operation) -> bool {
    op.request_body.is_some()
}

/// The problem+json answers of the API. Operations get the ones their shape
/// implies (a token, parameters, a path id, a body), so a route cannot
/// forget one; a route names the others it gives (409) by status alone,
/// with what they mean there, and is pointed at the shared declaration.
const SHARED_PROBLEMS: [SharedProblem; 10] = [
    SharedProblem {
        status: 400,
        name: "BadRequest",
        description: "A parameter or body field is invalid, or a query parameter is not one the operation takes; `detail` names it and says what is allowed",
        header: None,
        given_by: takes_input,
    },
    SharedProblem {
        status: 401,
        name: "Unauthorized",
        description: "No bearer token, or one that is malformed, expired, not yet valid or wrongly signed",
        header: Some(("WWW-Authenticate", "`Bearer realm=...` with the error (RFC 6750)")),
        given_by: protected,
    },
    SharedProblem {
        status: 403,
        name: "Forbidden",
        description: "The token lacks the scope the operation needs; `detail` names it",
        header: Some(("WWW-Authenticate", "`Bearer error=\"insufficient_scope\"` with the scope")),
        given_by: protected,
    },
    SharedProblem {
        status: 404,
        name: "NotFound",
        description: "Nothing has the id in the path",
        header: None,
        given_by: has_path_parameters,
    },
    SharedProblem {
        status: 405,
        name: "MethodNotAllowed",
        description: "The path does not serve that method (answered for methods the document does not list)",
        header: Some(("Allow", "The methods the path serves")),
        given_by: named_by_the_route,
    },
    SharedProblem {
        status: 409,
        name: "Conflict",
        description: "The request conflicts with the current data; nothing was changed",
        header: None,
        given_by: named_by_the_route,
    },
    SharedProblem {
        status: 413,
        name: "ContentTooLarge",
        description: "The body is larger than the limit (`detail` says it)",
        header: None,
        given_by: has_body,
    },
    SharedProblem {
        status: 415,
        name: "UnsupportedMediaType",
        description: "The body is not sent as `Content-Type: application/json`",
        header: None,
        given_by: has_body,
    },
    SharedProblem {
        status: 422,
        name: "UnprocessableContent",
        description: "The body is JSON of the wrong shape (`detail` names the field), or an Idempotency-Key reused for another request",
        header: None,
        given_by: has_body,
    },
    SharedProblem {
        status: 503,
        name: "Unavailable",
        description: "The data is being loaded (problem type `urn:order-pipeline:problem:database-busy`, with Retry-After), or the database is unavailable: retry",
        header: Some(("Retry-After", "Seconds to wait before retrying (with the database-busy type)")),
        // Every operation reads the database, so it may give up waiting on a file load.
        given_by: any_operation,
    },
];

impl SharedProblem {
    fn response(&self) -> utoipa::openapi::Response {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        use utoipa::openapi::{ContentBuilder, HeaderBuilder, Ref, ResponseBuilder};
        let mut response = ResponseBuilder::new()
            .description(self.description)
            .content(
                super::problem::PROBLEM_JSON,
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Problem")))
                    .build(),
            );
        if let Some((name, description)) = self.header {
            let schema_type = if name == "Retry-After" {
                Type::Integer
            } else {
                Type::String
            };
            response = response.header(
                name,
                HeaderBuilder::new()
                    .schema(ObjectBuilder::new().schema_type(schema_type))
                    .description(Some(description))
                    .build(),
            );
        }
        response.build()
    }

    fn reference(&self, description: String) -> RefOr<utoipa::openapi::Response> {
        let mut reference = utoipa::openapi::Ref::from_response_name(self.name);
        reference.description = description;
        RefOr::Ref(reference)
    }
}

/// Adds the shared problem answers `op` can give, and points the error
/// statuses its route named (with their meaning there) at them.
fn add_problem_answers(op: &mut Operation) {
    for shared in &SHARED_PROBLEMS {
        let status = shared.status.to_string();
        let named = op.responses.responses.get(&status).map(|r| match r {
            RefOr::T(response) => response.description.clone(),
            RefOr::Ref(reference) => reference.description.clone(),
        });
        if named.is_some() || (shared.given_by)(op) {
            // A route's own wording (409: what conflicts) beats the generic one.
            let description = named.filter(|d| !d.is_empty()).unwrap_or_default();
            op.responses
                .responses
                .insert(status, shared.reference(description));
        }
    }
}

/// The document as JSON. utoipa 5 writes a link's fields in snake_case
/// (`operation_id`), which OpenAPI tools do not read: they are renamed to
/// the specification's camelCase here.
pub fn to_json(openapi: &OpenApi) -> String {
    let mut doc = serde_json::to_value(openapi).expect("an OpenAPI document serialises");
    let links = doc["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(|item| item.as_object_mut())
        .flat_map(|item| item.values_mut())
        .filter_map(|op| op.get_mut("responses")?.as_object_mut())
        .flat_map(|responses| responses.values_mut())
        .filter_map(|response| response.get_mut("links")?.as_object_mut())
        .flat_map(|links| links.values_mut())
        .filter_map(|link| link.as_object_mut());
    for link in links {
        for (snake, camel) in [
            ("operation_id", "operationId"),
            ("operation_ref", "operationRef"),
            ("request_body", "requestBody"),
        ] {
            if let Some(value) = link.remove(snake) {
                link.insert(camel.to_owned(), value);
            }
        }
    }
    serde_json::to_string_pretty(&doc).expect("JSON serialises")
}

/// Routes serving `GET /openapi.json` and `GET /docs` (both public).
pub fn routes<S: Clone + Send + Sync + 'static>(openapi: OpenApi) -> Router<S> {
    let json: Arc<str> = to_json(&openapi).into();
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

/// The description of the shared answer a `$ref` points at.
fn shared_description(openapi: &OpenApi, reference: &str) -> String {
    let name = reference.rsplit('/').next().unwrap_or(reference);
    match openapi
        .components
        .as_ref()
        .and_then(|c| c.responses.get(name))
    {
        Some(RefOr::T(response)) => response.description.clone(),
        _ => reference.to_owned(),
    }
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
                    RefOr::Ref(r) if !r.description.is_empty() => r.description.clone(),
                    RefOr::Ref(r) => shared_description(openapi, &r.ref_location),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shared_503_names_the_busy_problem_type() {
        let unavailable = SHARED_PROBLEMS.iter().find(|p| p.status == 503).unwrap();
        assert!(unavailable
            .description
            .contains(super::super::problem::BUSY_PROBLEM_TYPE));
    }
}
