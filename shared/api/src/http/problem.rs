//! Errors as RFC 9457 `application/problem+json`, and the mapping of every
//! axum rejection onto one, so that nothing a client sends ends in a 500.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

pub const PROBLEM_JSON: &str = "application/problem+json";

/// The problem type of a 503 that a retry soon will likely cure: the
/// request gave up waiting on a file load (lock or statement timeout).
pub const BUSY_PROBLEM_TYPE: &str = "urn:order-pipeline:problem:database-busy";
/// When to retry after a [`BUSY_PROBLEM_TYPE`] answer (`Retry-After`).
pub const BUSY_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(2);

/// An error answer. Every handler returns this.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub title: &'static str,
    pub detail: String,
    /// For 401 and 403 (RFC 6750 §3).
    pub www_authenticate: Option<String>,
    /// The problem `type` URI, when the status alone does not say it.
    pub problem_type: Option<&'static str>,
    /// `Retry-After`, for a 503 that a retry will likely cure.
    pub retry_after: Option<std::time::Duration>,
}

impl ApiError {
    pub fn new(status: StatusCode, title: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            title,
            detail: detail.into(),
            www_authenticate: None,
            problem_type: None,
            retry_after: None,
        }
    }

    /// 400 naming the parameter (query, path or body field) at fault.
    pub fn bad_parameter(name: &str, detail: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "Invalid parameter",
            format!("{name}: {detail}"),
        )
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "Not Found", detail)
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "Conflict", detail)
    }

    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Unprocessable Content",
            detail,
        )
    }

    pub fn unavailable(detail: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service unavailable",
            detail.to_string(),
        )
    }

    /// 503 [`BUSY_PROBLEM_TYPE`] with Retry-After: the request gave up
    /// waiting on a file load (a lock), or its statement ran out of time.
    fn busy(gave_up: GaveUp) -> Self {
        let why = match gave_up {
            GaveUp::Lock => "the data is being loaded right now",
            GaveUp::Time => "the database took too long to answer (it may be busy with a load)",
        };
        Self {
            problem_type: Some(BUSY_PROBLEM_TYPE),
            retry_after: Some(BUSY_RETRY_AFTER),
            ..Self::unavailable(format!("{why}; retry in {} s", BUSY_RETRY_AFTER.as_secs()))
        }
    }

    /// [`ApiError::busy`] when `err` is (or was caused by) a statement that
    /// gave up waiting on a lock or ran out of time, else `otherwise()`.
    pub fn busy_or(
        err: &(dyn std::error::Error + 'static),
        otherwise: impl FnOnce() -> Self,
    ) -> Self {
        match gave_up_waiting(err) {
            Some(gave_up) => {
                tracing::warn!(error = %causes(err), "gave up waiting on the database");
                Self::busy(gave_up)
            }
            None => otherwise(),
        }
    }

    pub fn with_www_authenticate(mut self, value: String) -> Self {
        self.www_authenticate = Some(value);
        self
    }
}

/// An error and every cause under it, for the log: a pool error alone
/// says "db error", the server's message (e.g. which role it refused) is
/// its cause's cause.
pub fn causes(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // thiserror's `{0}` already shows the next cause: do not repeat it.
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Why a statement gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GaveUp {
    /// `lock_not_available` (55P03, `lock_timeout`): a load holds the lock.
    Lock,
    /// `query_canceled` (57014, `statement_timeout`): the statement ran long.
    Time,
}

/// Whether a PostgreSQL error under `err` gave up waiting, and on what.
fn gave_up_waiting(err: &(dyn std::error::Error + 'static)) -> Option<GaveUp> {
    use tokio_postgres::error::SqlState;
    std::iter::successors(Some(err), |e| e.source()).find_map(|e| {
        let code = e
            .downcast_ref::<tokio_postgres::Error>()
            .and_then(tokio_postgres::Error::code)?;
        match *code {
            SqlState::LOCK_NOT_AVAILABLE => Some(GaveUp::Lock),
            SqlState::QUERY_CANCELED => Some(GaveUp::Time),
            _ => None,
        }
    })
}

impl From<order_pipeline::postgres::DbError> for ApiError {
    fn from(err: order_pipeline::postgres::DbError) -> Self {
        Self::busy_or(&err, || {
            tracing::error!(error = %causes(&err), "database error");
            Self::unavailable("the database could not answer; try again shortly")
        })
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(err: tokio_postgres::Error) -> Self {
        order_pipeline::postgres::DbError::from(err).into()
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        order_pipeline::postgres::DbError::from(err).into()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Unsupported Media Type",
                "the body must be JSON: send `Content-Type: application/json`",
            ),
            JsonRejection::JsonSyntaxError(e) => Self::new(
                StatusCode::BAD_REQUEST,
                "Malformed JSON",
                format!("the body is not valid JSON: {}", e.body_text()),
            ),
            JsonRejection::JsonDataError(e) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid body",
                // serde_path_to_error names the field: "tickets: invalid type..."
                e.body_text()
                    .trim_start_matches(
                        "Failed to deserialize the JSON body into the target type: ",
                    )
                    .to_owned(),
            ),
            JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Self::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "Content Too Large",
                    format!("the body exceeds the limit of {MAX_BODY_BYTES} bytes"),
                )
            }
            other => Self::new(other.status(), "Bad Request", other.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "Invalid query string",
            rejection.body_text(),
        )
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "Invalid path parameter",
            rejection.body_text(),
        )
    }
}

/// Request bodies are small JSON documents; anything bigger is refused (413).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "type": self.problem_type.unwrap_or("about:blank"),
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, PROBLEM_JSON)],
            body.to_string(),
        )
            .into_response();
        if let Some(value) = self
            .www_authenticate
            .and_then(|v| HeaderValue::from_str(&v).ok())
        {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        if let Some(after) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(after.as_secs()));
        }
        response
    }
}

/// The problem body for an error answer that axum produced itself (405, or
/// a plain-text rejection): keeps status and headers (e.g. `Allow`).
pub(crate) async fn problem_for_bare_error(response: Response) -> Response {
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if is_problem || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    let detail = match status {
        StatusCode::METHOD_NOT_ALLOWED => format!(
            "this path does not accept that method; allowed: {}",
            parts
                .headers
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("see /openapi.json")
        ),
        StatusCode::PAYLOAD_TOO_LARGE => {
            format!("the body exceeds the limit of {MAX_BODY_BYTES} bytes")
        }
        _ => status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_owned(),
    };
    let problem =
        ApiError::new(status, status.canonical_reason().unwrap_or("Error"), detail).into_response();
    let (problem_parts, body) = problem.into_parts();
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    parts.headers.remove(header::CONTENT_LENGTH);
    drop(problem_parts);
    Response::from_parts(parts, body)
}

/// The problem+json body (RFC 9457), for the OpenAPI document.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Problem {
    /// `about:blank` (the status says what kind of problem it is), or
    /// `urn:order-pipeline:problem:database-busy` for a 503 that comes with
    /// `Retry-After`: the request gave up waiting on a file load.
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    /// What was wrong and what to do about it.
    pub detail: String,
}
