//! The OpenAPI document is the truth: every bound, format and enum it
//! declares for a parameter or body field is the one the server enforces (a
//! request at the bound is served, one past it gets a 400 problem+json
//! naming the parameter), query keys it does not declare are refused, its
//! error answers are declared once and referenced, and its links lead to
//! real operations. Checked through the one base URL (the gateway) a user
//! reaches, over data loaded by the real ingest path.

use apiserve::{gateway, RouterMap};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use pipeline_api::analytics::AnalyticsState;
use pipeline_api::state::ApiState;
use pipeline_test_support::{
    get, post_json, send, test_authenticator, test_token_all, TestPipeline, TestResponse,
};
use serde_json::{json, Value};

fn api(pipeline: &TestPipeline) -> Router {
    gateway(
        RouterMap::of_workspace(),
        pipeline_api::orders::router(ApiState::new(pipeline.db.store(), test_authenticator())),
        pipeline_api::analytics::router(AnalyticsState::new(
            pipeline.db.store(),
            test_authenticator(),
            pipeline.bucket.client.clone(),
            pipeline.bucket.name.clone(),
        )),
    )
}

/// The sample data plus `extra_unused` unused barcodes and two of every
/// problem, the API over it, and the document it serves. Keep the
/// pipeline: it owns the database.
async fn serve(extra_unused: usize) -> (TestPipeline, Router, Value) {
    let pipeline = TestPipeline::with_every_problem(extra_unused).await;
    let api = api(&pipeline);
    let response = send(&api, get("/openapi.json", None)).await;
    assert_eq!(response.status, StatusCode::OK);
    (pipeline, api, response.json())
}

/// `value` with a local `$ref` followed (once is enough for this document).
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value["$ref"].as_str() {
        Some(reference) => doc
            .pointer(reference.strip_prefix('#').expect("local ref"))
            .unwrap_or_else(|| panic!("dangling {reference}")),
        None => value,
    }
}

/// Every (method, path, operation) of the document.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut all = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            all.push((method.to_uppercase(), path.clone(), operation.clone()));
        }
    }
    all
}

/// The path with every `{param}` set to an id the sample data has.
fn concrete(path: &str, overrides: &[(&str, String)]) -> String {
    let mut out = path.to_owned();
    for (name, value) in overrides {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    out.replace("{order_id}", "1")
        .replace("{customer_id}", "10")
        .replace("{id}", "1")
}

/// The parameter's schema, `Option`'s `null` alternative set aside.
fn parameter_schema<'a>(doc: &'a Value, parameter: &'a Value) -> &'a Value {
    let schema = resolve(doc, &parameter["schema"]);
    match schema["oneOf"].as_array() {
        Some(choices) => choices
            .iter()
            .map(|c| resolve(doc, c))
            .find(|c| c["type"] != "null")
            .unwrap_or(schema),
        None => schema,
    }
}

async fn call(api: &Router, method: &str, uri: &str) -> TestResponse {
    let token = test_token_all();
    let request = if method == "POST" {
        post_json(uri, &token, &json!({"customer_id": 10, "tickets": 1}), None)
    } else {
        get(uri, Some(&token))
    };
    send(api, request).await
}

fn assert_rejected_naming(response: &TestResponse, name: &str, what: &str) {
    assert_eq!(response.status, StatusCode::BAD_REQUEST, "{what}");
    assert_eq!(
        response.content_type(),
        "application/problem+json",
        "{what}"
    );
    let detail = response.json()["detail"].as_str().unwrap().to_owned();
    assert!(
        detail.starts_with(&format!("{name}:")),
        "{what}: the detail names {name}: {detail}"
    );
}

fn assert_served(response: &TestResponse, what: &str) {
    assert!(
        response.status.is_success() || response.status == StatusCode::NOT_FOUND,
        "{what}: {} {}",
        response.status,
        String::from_utf8_lossy(&response.body)
    );
}

#[tokio::test]
async fn every_integer_parameter_declares_the_bounds_the_server_enforces() {
    let (_pipeline, api, doc) = serve(5).await;
    let mut bounded = Vec::new();
    for (method, path, operation) in operations(&doc) {
        for parameter in operation["parameters"].as_array().into_iter().flatten() {
            let schema = parameter_schema(&doc, parameter);
            if schema["type"] != "integer" {
                continue;
            }
            let name = parameter["name"].as_str().unwrap();
            let place = parameter["in"].as_str().unwrap();
            let (Some(min), Some(max)) = (schema["minimum"].as_i64(), schema["maximum"].as_i64())
            else {
                panic!("{method} {path}: integer {name} without minimum and maximum: {schema}");
            };
            bounded.push(format!("{method} {path} {name}"));
            let uri = |value: i128| match place {
                "path" => concrete(&path, &[(name, value.to_string())]),
                "query" => format!("{}?{name}={value}", concrete(&path, &[])),
                other => panic!("{name} in {other}"),
            };
            for value in [min as i128, max as i128] {
                let what = format!("{method} {} ({name} at its bound)", uri(value));
                assert_served(&call(&api, &method, &uri(value)).await, &what);
            }
            for value in [min as i128 - 1, max as i128 + 1] {
                let what = format!("{method} {} ({name} past its bound)", uri(value));
                assert_rejected_naming(&call(&api, &method, &uri(value)).await, name, &what);
            }
            if place == "query" {
                let what = format!("{method} {path} with {name} empty");
                let empty = format!("{}?{name}=", concrete(&path, &[]));
                assert_rejected_naming(&call(&api, &method, &empty).await, name, &what);
            }
        }
    }
    bounded.sort();
    assert_eq!(
        bounded,
        [
            "GET /analytics/top-customers limit",
            "GET /analytics/unused-barcodes limit",
            "GET /customers/{customer_id} customer_id",
            "GET /customers/{customer_id}/orders customer_id",
            "GET /customers/{customer_id}/orders limit",
            "GET /ingestions limit",
            "GET /ingestions/{id} id",
            "GET /ingestions/{id}/report id",
            "GET /orders customer_id",
            "GET /orders limit",
            "GET /orders/{order_id} order_id",
            "GET /problems/order-conflicts limit",
            "GET /problems/orders-without-barcodes limit",
            "GET /problems/rejected-barcodes limit",
            "GET /problems/waiting-barcodes limit",
        ]
    );
}

#[tokio::test]
async fn cursors_have_a_declared_format_that_the_server_accepts_and_emits() {
    let (_pipeline, api, doc) = serve(5).await;
    let mut listings = Vec::new();
    for (method, path, operation) in operations(&doc) {
        let Some(parameter) = operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == "cursor")
        else {
            continue;
        };
        let schema = parameter_schema(&doc, parameter);
        let pattern = schema["pattern"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path}: cursor without a pattern: {schema}"));
        listings.push(path.clone());
        let regex = Pattern::new(pattern);
        // What the server emits matches the format.
        let first = call(&api, &method, &format!("{}?limit=1", concrete(&path, &[]))).await;
        assert_eq!(first.status, StatusCode::OK, "{path}");
        let next = first.json()["next_cursor"]
            .as_str()
            .unwrap_or_else(|| panic!("{path}: one item per page has a next page"))
            .to_owned();
        assert!(
            regex.matches(&next),
            "{path}: {next:?} does not match {pattern}"
        );
        // Any value of the format is served, however far it points.
        let prefix = next.split(':').next().unwrap();
        let far = if prefix == "unused" {
            "unused:zzzzzzzz".to_owned()
        } else {
            format!("{prefix}:9999999999999999999")
        };
        assert!(regex.matches(&far), "{far:?} matches {pattern}");
        for cursor in [next.as_str(), far.as_str(), &format!("{prefix}:0")] {
            let uri = format!("{}?cursor={cursor}", concrete(&path, &[]));
            assert_eq!(
                call(&api, &method, &uri).await.status,
                StatusCode::OK,
                "{uri}"
            );
        }
        // Anything else is refused, naming the cursor.
        for bad in [
            "",
            "garbage",
            "orders",
            &format!("{prefix}:"),
            &format!("{prefix}:a b"),
        ] {
            assert!(!regex.matches(bad), "{bad:?} must not match {pattern}");
            let uri = format!(
                "{}?cursor={}",
                concrete(&path, &[]),
                bad.replace(' ', "%20")
            );
            assert_rejected_naming(&call(&api, &method, &uri).await, "cursor", &uri);
        }
    }
    listings.sort();
    assert_eq!(
        listings,
        [
            "/analytics/unused-barcodes",
            "/customers/{customer_id}/orders",
            "/ingestions",
            "/orders",
            "/problems/order-conflicts",
            "/problems/orders-without-barcodes",
            "/problems/rejected-barcodes",
            "/problems/waiting-barcodes",
        ]
    );
}

/// The JSON Schema patterns of this document: `^`, `$`, literal text,
/// classes like `[0-9]` and `[A-Za-z0-9._-]`, each with a `{m,n}` count.
/// Enough to check cursors without a regex engine.
struct Pattern(Vec<(Vec<char>, usize, usize)>);

impl Pattern {
    fn new(pattern: &str) -> Self {
        let body = pattern
            .strip_prefix('^')
            .and_then(|p| p.strip_suffix('$'))
            .unwrap_or_else(|| panic!("{pattern} is anchored"));
        let mut chars = body.chars().peekable();
        let mut parts = Vec::new();
        while let Some(c) = chars.next() {
            let class: Vec<char> = if c == '[' {
                let mut members = Vec::new();
                let raw: Vec<char> = chars.by_ref().take_while(|&c| c != ']').collect();
                let mut i = 0;
                while i < raw.len() {
                    if i + 2 < raw.len() && raw[i + 1] == '-' {
                        members.extend(raw[i]..=raw[i + 2]);
                        i += 3;
                    } else {
                        members.push(raw[i]);
                        i += 1;
                    }
                }
                members
            } else {
                vec![c]
            };
            let (min, max) = if chars.peek() == Some(&'{') {
                let count: String = chars.by_ref().skip(1).take_while(|&c| c != '}').collect();
                let (min, max) = count.split_once(',').unwrap_or((&count, &count));
                (min.parse().unwrap(), max.parse().unwrap())
            } else {
                (1, 1)
            };
            parts.push((class, min, max));
        }
        Self(parts)
    }

    fn matches(&self, text: &str) -> bool {
        fn rest(parts: &[(Vec<char>, usize, usize)], text: &[char]) -> bool {
            let Some(((class, min, max), tail)) = parts.split_first() else {
                return text.is_empty();
            };
            let run = text.iter().take_while(|c| class.contains(c)).count();
            (*min..=(*max).min(run)).any(|n| rest(tail, &text[n..]))
        }
        rest(&self.0, &text.chars().collect::<Vec<_>>())
    }
}

#[tokio::test]
async fn the_ingestion_status_filter_is_an_enum_of_what_the_server_accepts() {
    let (_pipeline, api, doc) = serve(0).await;
    let parameter = doc["paths"]["/ingestions"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "status")
        .unwrap();
    let values: Vec<String> = parameter_schema(&doc, parameter)["enum"]
        .as_array()
        .unwrap_or_else(|| panic!("status has an enum: {parameter}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(values, order_pipeline::domain::outcome::LedgerStatus::NAMES);
    for value in &values {
        let response = call(&api, "GET", &format!("/ingestions?status={value}")).await;
        assert_eq!(response.status, StatusCode::OK, "{value}");
    }
    for bad in ["", "Loaded", "done"] {
        let uri = format!("/ingestions?status={bad}");
        assert_rejected_naming(&call(&api, "GET", &uri).await, "status", &uri);
    }
}

/// Unknown query keys are refused, not ignored: a misspelt `limt=5` would
/// otherwise silently give the default page, and the document (which lists
/// each operation's parameters) would not describe what the server takes.
#[tokio::test]
async fn query_keys_the_document_does_not_declare_are_refused_by_name() {
    let (_pipeline, api, doc) = serve(0).await;
    for (method, path, operation) in operations(&doc) {
        let declared: Vec<&str> = operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "query")
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        let base = concrete(&path, &[]);
        let response = call(&api, &method, &format!("{base}?limt=5&x%C2%AE=1")).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{method} {path}");
        assert_eq!(response.content_type(), "application/problem+json");
        let detail = response.json()["detail"].as_str().unwrap().to_owned();
        for named in ["limt", "x®"] {
            assert!(
                detail.contains(&format!("`{named}`")),
                "{method} {path}: {detail}"
            );
        }
        for name in &declared {
            assert!(
                detail.contains(name),
                "{method} {path}: lists {name}: {detail}"
            );
        }
        // Declared keys alone are served.
        if declared.contains(&"limit") {
            let response = call(&api, &method, &format!("{base}?limit=1")).await;
            assert_served(&response, &format!("{method} {path}?limit=1"));
        }
    }
}

#[tokio::test]
async fn error_answers_are_declared_once_and_referenced_where_they_can_happen() {
    let (_pipeline, api, doc) = serve(0).await;
    let shared = doc["components"]["responses"]
        .as_object()
        .expect("components/responses");
    let mut names: Vec<&str> = shared.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "BadRequest",
            "Conflict",
            "ContentTooLarge",
            "Forbidden",
            "MethodNotAllowed",
            "NotFound",
            "Unauthorized",
            "Unavailable",
            "UnprocessableContent",
            "UnsupportedMediaType",
        ]
    );
    for (name, response) in shared {
        let problem = &response["content"]["application/problem+json"]["schema"];
        assert_eq!(problem["$ref"], "#/components/schemas/Problem", "{name}");
    }
    // Which shared answer each status refers to: one per status.
    let mut by_status = std::collections::BTreeMap::new();
    for (method, path, operation) in operations(&doc) {
        let responses = operation["responses"].as_object().unwrap();
        let mut expected = vec!["503"];
        let protected = operation["security"]
            .as_array()
            .is_some_and(|s| !s.is_empty());
        if protected {
            expected.extend(["401", "403"]);
        }
        if operation["parameters"]
            .as_array()
            .is_some_and(|p| !p.is_empty())
        {
            expected.push("400");
        }
        if path.contains('{') {
            expected.push("404");
        }
        if operation.get("requestBody").is_some() {
            expected.extend(["400", "413", "415", "422"]);
        }
        for status in expected {
            assert!(
                responses.contains_key(status),
                "{method} {path} declares {status}"
            );
        }
        for (status, response) in responses {
            if status.starts_with('4') || status.starts_with('5') {
                let reference = response["$ref"].as_str().unwrap_or_else(|| {
                    panic!("{method} {path} {status}: an inline error answer: {response}")
                });
                resolve(&doc, response);
                let first = by_status
                    .entry(status.clone())
                    .or_insert(reference.to_owned());
                assert_eq!(first, reference, "{method} {path} {status}");
            }
        }
    }
    let statuses: Vec<&str> = by_status.keys().map(String::as_str).collect();
    assert_eq!(
        statuses,
        ["400", "401", "403", "404", "409", "413", "415", "422", "503"]
    );
    // Each answer the server gives for them is the declared problem+json.
    let token = test_token_all();
    let answers = [
        (get("/orders", None), 401),
        (get("/orders/0", Some(&token)), 400),
        (get("/orders/999999", Some(&token)), 404),
        (
            Request::put("/orders/1")
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap(),
            405,
        ),
        (
            Request::post("/orders")
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "text/plain")
                .body(Body::from("{}"))
                .unwrap(),
            415,
        ),
    ];
    for (request, status) in answers {
        let response = send(&api, request).await;
        assert_eq!(response.status.as_u16(), status);
        assert_eq!(response.content_type(), "application/problem+json");
    }
}

#[tokio::test]
async fn links_lead_from_a_sale_and_an_order_to_real_operations_with_real_parameters() {
    let (_pipeline, api, doc) = serve(5).await;
    let by_id: std::collections::BTreeMap<String, Value> = operations(&doc)
        .into_iter()
        .map(|(_, _, op)| (op["operationId"].as_str().unwrap().to_owned(), op))
        .collect();
    let mut links = Vec::new();
    for (method, path, operation) in operations(&doc) {
        for (status, response) in operation["responses"].as_object().unwrap() {
            let response = resolve(&doc, response);
            for (name, link) in response["links"].as_object().into_iter().flatten() {
                let target = link["operationId"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{method} {path} {status} {name}: {link}"));
                let target_op = by_id
                    .get(target)
                    .unwrap_or_else(|| panic!("{method} {path} {status} {name}: no {target}"));
                for (parameter, value) in link["parameters"].as_object().unwrap() {
                    let declared = target_op["parameters"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|p| p["name"] == *parameter);
                    assert!(declared, "{name}: {target} has no parameter {parameter}");
                    let pointer = value.as_str().unwrap();
                    assert!(pointer.starts_with("$response.body#/"), "{name}: {pointer}");
                }
                links.push(format!("{method} {path} {status} -> {target}"));
            }
        }
    }
    links.sort();
    assert_eq!(
        links,
        [
            "GET /analytics/top-customers 200 -> get_customer",
            "GET /orders/{order_id} 200 -> get_customer",
            "POST /orders 200 -> get_order",
            "POST /orders 201 -> customer_orders",
            "POST /orders 201 -> get_customer",
            "POST /orders 201 -> get_order",
        ]
    );
    // Following POST /orders's link gets the order it sold.
    let token = test_token_all();
    let sale = call(&api, "POST", "/orders").await;
    assert_eq!(sale.status, StatusCode::CREATED);
    let link = &doc["paths"]["/orders"]["post"]["responses"]["201"]["links"]["GetOrder"];
    let pointer = link["parameters"]["order_id"].as_str().unwrap();
    let order_id = sale
        .json()
        .pointer(pointer.strip_prefix("$response.body#").unwrap())
        .cloned()
        .unwrap();
    let order = send(&api, get(&format!("/orders/{order_id}"), Some(&token))).await;
    assert_eq!(order.status, StatusCode::OK);
    assert_eq!(order.json()["order_id"], order_id);
}

#[tokio::test]
async fn the_sale_body_and_idempotency_key_declare_the_limits_the_server_enforces() {
    let (_pipeline, api, doc) = serve(200).await;
    let operation = &doc["paths"]["/orders"]["post"];
    let body = resolve(&doc, &operation["requestBody"]);
    assert!(
        body["description"]
            .as_str()
            .is_some_and(|d| d.contains(&pipeline_api::http::problem::MAX_BODY_BYTES.to_string())),
        "the body limit is declared: {body}"
    );
    let schema = resolve(&doc, &body["content"]["application/json"]["schema"]);
    assert_eq!(schema["additionalProperties"], false, "{schema}");
    let token = test_token_all();
    for field in ["customer_id", "tickets"] {
        let property = &schema["properties"][field];
        let (min, max) = (property["minimum"].as_i64(), property["maximum"].as_i64());
        let (Some(min), Some(max)) = (min, max) else {
            panic!("{field} without minimum and maximum: {property}");
        };
        let sale = |value: i128| {
            let mut body = json!({"customer_id": 10, "tickets": 1});
            body[field] = json!(value);
            post_json("/orders", &token, &body, None)
        };
        for value in [min as i128, max as i128] {
            let response = send(&api, sale(value)).await;
            assert!(
                [StatusCode::CREATED, StatusCode::CONFLICT].contains(&response.status),
                "{field}={value}: {}",
                response.status
            );
        }
        for value in [min as i128 - 1, max as i128 + 1] {
            let response = send(&api, sale(value)).await;
            assert!(
                response.status.is_client_error(),
                "{field}={value}: {}",
                response.status
            );
            let detail = response.json()["detail"].as_str().unwrap().to_owned();
            assert!(detail.starts_with(field), "{field}={value}: {detail}");
        }
    }
    let key = operation["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "Idempotency-Key")
        .unwrap();
    let key_schema = parameter_schema(&doc, key);
    let max = key_schema["maxLength"].as_u64().expect("maxLength") as usize;
    assert!(key_schema["pattern"].is_string(), "{key_schema}");
    let body = json!({"customer_id": 11, "tickets": 1});
    for good in ["a".repeat(max), "retry 1".to_owned(), "~!".to_owned()] {
        let response = send(&api, post_json("/orders", &token, &body, Some(&good))).await;
        assert!(
            response.status.is_success(),
            "{good:?}: {}",
            response.status
        );
    }
    for bad in ["a".repeat(max + 1), "tab\tinside".to_owned()] {
        let response = send(&api, post_json("/orders", &token, &body, Some(&bad))).await;
        assert_rejected_naming(&response, "Idempotency-Key", &format!("{bad:?}"));
    }
}
