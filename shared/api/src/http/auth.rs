//! Bearer-token authorization: a JWT whose signature, expiry, not-before
//! (within [`CLOCK_LEEWAY`]) and, when configured, issuer and audience (then
//! required; `aud` a string or an array) are verified, carrying OAuth-style
//! space-separated scopes. Handlers ask for a scope with the [`Authorized`]
//! extractor, so a route cannot forget its check.
//!
//! Verification is the function's own, so it holds behind any front door
//! (function URL, REST API, HTTP API). Behind an HTTP API JWT authorizer the
//! same token is checked twice, which costs microseconds.

use std::marker::PhantomData;
use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

use super::problem::ApiError;
use order_pipeline::config::ConfigError;

const REALM: &str = "order-pipeline";

/// How far apart the identity provider's clock and ours may be: `exp` and
/// `nbf` are judged this much in the token's favour.
pub const CLOCK_LEEWAY: std::time::Duration = std::time::Duration::from_secs(30);

/// A scope a route requires.
pub trait Scope: Send + Sync + 'static {
    const NAME: &'static str;
}

/// Read orders and customers.
pub struct OrdersRead;
/// Sell tickets (POST /orders).
pub struct OrdersWrite;
/// Read analytics, the ingestion ledger and exports.
pub struct AnalyticsRead;
/// Upload files to be ingested (POST /uploads: a presigned PUT).
pub struct FilesWrite;

impl Scope for OrdersRead {
    const NAME: &'static str = "orders:read";
}
impl Scope for OrdersWrite {
    const NAME: &'static str = "orders:write";
}
impl Scope for AnalyticsRead {
    const NAME: &'static str = "analytics:read";
}
impl Scope for FilesWrite {
    const NAME: &'static str = "files:write";
}

/// Every scope, for development tokens.
pub const ALL_SCOPES: [&str; 4] = [
    OrdersRead::NAME,
    OrdersWrite::NAME,
    AnalyticsRead::NAME,
    FilesWrite::NAME,
];

/// The claims this API reads.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Claims {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    pub exp: u64,
    #[serde(default)]
    pub scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
    /// Not before: the token is refused until then (less the leeway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// The OAuth client the token was issued to: Amazon Cognito's access
    /// tokens name their app client here and carry no `aud`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

/// The `aud` claim: one audience or several (RFC 7519 §4.1.3 allows both).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

/// Verifies tokens. Built once per cold start.
pub struct Authenticator {
    key: DecodingKey,
    validation: Validation,
    /// The accepted audience, checked here (see [`Authenticator::authorize`]).
    audience: Option<String>,
    /// What the provider puts before the scope names (`JWT_SCOPE_PREFIX`).
    scope_prefix: String,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("Authenticator")
            .field("algorithms", &self.validation.algorithms)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// HS256 with a shared secret (local development, or a secret kept in
    /// Secrets Manager).
    pub fn hs256(secret: &[u8], issuer: Option<&str>, audience: Option<&str>) -> Self {
        Self::with_key(
            DecodingKey::from_secret(secret),
            Algorithm::HS256,
            issuer,
            audience,
        )
    }

    /// RS256 with an identity provider's public key (PEM).
    pub fn rs256_pem(
        pem: &[u8],
        issuer: Option<&str>,
        audience: Option<&str>,
    ) -> Result<Self, jsonwebtoken::errors::Error> {
        Ok(Self::with_key(
            DecodingKey::from_rsa_pem(pem)?,
            Algorithm::RS256,
            issuer,
            audience,
        ))
    }

    fn with_key(
        key: DecodingKey,
        algorithm: Algorithm,
        issuer: Option<&str>,
        audience: Option<&str>,
    ) -> Self {
        let mut validation = Validation::new(algorithm);
        validation.leeway = CLOCK_LEEWAY.as_secs();
        validation.validate_nbf = true;
        // A configured issuer or audience is required, not merely checked
        // when present: jsonwebtoken only judges the claims a token carries.
        let mut required = vec!["exp"];
        if let Some(issuer) = issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        // The audience is checked after decoding: a token names it in `aud`,
        // or (Cognito's access tokens) in `client_id`, as API Gateway's JWT
        // authorizer accepts it.
        validation.validate_aud = false;
        validation.set_required_spec_claims(&required);
        Self {
            key,
            validation,
            audience: audience.map(str::to_owned),
            scope_prefix: String::new(),
        }
    }

    /// Scopes as the provider writes them: `prefix` before each name
    /// (Cognito's custom scopes are `<resource server>/<scope>`).
    pub fn with_scope_prefix(mut self, prefix: &str) -> Self {
        self.scope_prefix = prefix.to_owned();
        self
    }

    /// From the environment: `JWT_SECRET` (HS256) or `JWT_PUBLIC_KEY_PEM`
    /// (RS256), optionally `JWT_ISSUER`, `JWT_AUDIENCE` and
    /// `JWT_SCOPE_PREFIX`.
    pub fn from_env() -> Result<Self, ConfigError> {
        let prefix = non_empty_env("JWT_SCOPE_PREFIX").unwrap_or_default();
        Ok(Self::from_env_unprefixed()?.with_scope_prefix(&prefix))
    }

    fn from_env_unprefixed() -> Result<Self, ConfigError> {
        let issuer = non_empty_env("JWT_ISSUER");
        let audience = non_empty_env("JWT_AUDIENCE");
        if let Some(pem) = non_empty_env("JWT_PUBLIC_KEY_PEM") {
            return Self::rs256_pem(pem.as_bytes(), issuer.as_deref(), audience.as_deref())
                .map_err(|e| ConfigError::Invalid {
                    name: "JWT_PUBLIC_KEY_PEM",
                    value: "(the PEM)".into(),
                    reason: format!("not an RSA public key in PEM form: {e}"),
                });
        }
        let secret = non_empty_env("JWT_SECRET").ok_or(ConfigError::Missing {
            name: "JWT_SECRET",
            hint: "set JWT_SECRET (HS256) or JWT_PUBLIC_KEY_PEM (RS256); `make up` writes a local secret to .local/functions.env",
        })?;
        if secret.len() < 32 {
            return Err(ConfigError::Invalid {
                name: "JWT_SECRET",
                value: "(hidden)".into(),
                reason: format!("{} bytes; use at least 32 random bytes", secret.len()),
            });
        }
        Ok(Self::hs256(
            secret.as_bytes(),
            issuer.as_deref(),
            audience.as_deref(),
        ))
    }

    /// Checks the token and that it grants `scope`: 401 when the token is
    /// missing, malformed, badly signed or expired; 403 when it is valid but
    /// lacks the scope.
    pub fn authorize(&self, authorization: Option<&str>, scope: &str) -> Result<Claims, ApiError> {
        let Some(value) = authorization else {
            return Err(unauthorized(
                None,
                "send `Authorization: Bearer <token>` (a JWT)",
            ));
        };
        let Some(token) = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
        else {
            return Err(unauthorized(
                Some("invalid_request"),
                "the Authorization header must use the Bearer scheme",
            ));
        };
        let claims = jsonwebtoken::decode::<Claims>(token.trim(), &self.key, &self.validation)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                let why = match e.kind() {
                    ErrorKind::ExpiredSignature => {
                        "the token has expired; get a new one".to_owned()
                    }
                    ErrorKind::InvalidSignature => {
                        "the token's signature does not verify".to_owned()
                    }
                    ErrorKind::InvalidIssuer => "the token's issuer is not accepted".to_owned(),
                    ErrorKind::InvalidAudience => "the token's audience is not accepted".to_owned(),
                    ErrorKind::ImmatureSignature => {
                        "the token is not valid yet (its nbf is in the future)".to_owned()
                    }
                    ErrorKind::InvalidAlgorithm => {
                        "the token's algorithm is not accepted".to_owned()
                    }
                    ErrorKind::MissingRequiredClaim(claim) => {
                        format!("the token lacks the {claim} claim")
                    }
                    _ => "the token is not a valid JWT".to_owned(),
                };
                tracing::info!(reason = %why, "rejected bearer token");
                unauthorized(Some("invalid_token"), &why)
            })?
            .claims;
        if let Some(audience) = &self.audience {
            let why = match (&claims.aud, &claims.client_id) {
                (Some(Audience::One(aud)), _) if aud == audience => None,
                (Some(Audience::Many(auds)), _) if auds.contains(audience) => None,
                (Some(_), _) => Some("the token's audience is not accepted"),
                (None, Some(client)) if client == audience => None,
                (None, Some(_)) => Some("the token's client is not accepted"),
                (None, None) => Some("the token lacks the aud claim"),
            };
            if let Some(why) = why {
                tracing::info!(reason = %why, "rejected bearer token");
                return Err(unauthorized(Some("invalid_token"), why));
            }
        }
        let scope = format!("{}{scope}", self.scope_prefix);
        if !claims.scope.split_ascii_whitespace().any(|s| s == scope) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "Forbidden",
                format!("the token does not grant the {scope} scope this request needs"),
            )
            .with_www_authenticate(format!(
                "Bearer realm=\"{REALM}\", error=\"insufficient_scope\", scope=\"{scope}\""
            )));
        }
        Ok(claims)
    }
}

fn unauthorized(error: Option<&str>, detail: &str) -> ApiError {
    let challenge = match error {
        Some(error) => format!(
            "Bearer realm=\"{REALM}\", error=\"{error}\", error_description=\"{}\"",
            detail.replace('"', "'")
        ),
        None => format!("Bearer realm=\"{REALM}\""),
    };
    ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized", detail).with_www_authenticate(challenge)
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Proof that the request carries a valid token granting scope `S`.
/// Put it first among a handler's arguments: it runs before the others, so
/// an unauthenticated request gets 401 before any parameter is judged.
pub struct Authorized<S: Scope> {
    pub claims: Claims,
    _scope: PhantomData<S>,
}

impl<St, S> FromRequestParts<St> for Authorized<S>
where
    St: Send + Sync,
    S: Scope,
    Arc<Authenticator>: FromRef<St>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, Self::Rejection> {
        let authenticator = Arc::<Authenticator>::from_ref(state);
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().unwrap_or(""));
        let claims = authenticator.authorize(header, S::NAME)?;
        Ok(Self {
            claims,
            _scope: PhantomData,
        })
    }
}

/// Signs an HS256 token, for `make token` and tests.
pub fn issue_hs256(
    secret: &[u8],
    subject: &str,
    scopes: &[&str],
    valid_for: std::time::Duration,
    issuer: Option<&str>,
    audience: Option<&str>,
) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let claims = Claims {
        sub: Some(subject.to_owned()),
        exp: now + valid_for.as_secs(),
        scope: scopes.join(" "),
        iss: issuer.map(str::to_owned),
        aud: audience.map(|a| Audience::One(a.to_owned())),
        nbf: None,
        client_id: None,
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("HS256 signing cannot fail")
}

/// Signs a token with explicit claims (tests: expired tokens and the like).
pub fn issue_hs256_claims(secret: &[u8], claims: &Claims) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("HS256 signing cannot fail")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const SECRET: &[u8] = b"unit-test-secret-unit-test-secret-0123";
    const ISSUER: &str = "https://issuer.example";
    const AUDIENCE: &str = "order-api";

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    /// A token carrying exactly `claims`, as an identity provider could
    /// write them.
    fn sign(claims: serde_json::Value) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap()
    }

    fn check(auth: &Authenticator, token: &str) -> Result<Claims, ApiError> {
        auth.authorize(Some(&format!("Bearer {token}")), "orders:read")
    }

    fn rejection(auth: &Authenticator, token: &str) -> String {
        let err = check(auth, token).expect_err("the token is refused");
        assert_eq!(err.status, StatusCode::UNAUTHORIZED);
        err.detail
    }

    fn with_audience() -> Authenticator {
        Authenticator::hs256(SECRET, Some(ISSUER), Some(AUDIENCE))
    }

    #[test]
    fn a_configured_audience_is_required() {
        let auth = with_audience();
        let token = sign(json!({"exp": now() + 60, "iss": ISSUER, "scope": "orders:read"}));
        assert_eq!(rejection(&auth, &token), "the token lacks the aud claim");
    }

    #[test]
    fn an_audience_array_is_accepted_when_it_names_ours() {
        let auth = with_audience();
        let ours = sign(json!({
            "exp": now() + 60, "iss": ISSUER, "scope": "orders:read",
            "aud": ["another-api", AUDIENCE],
        }));
        check(&auth, &ours).expect("an array naming our audience is accepted");
        let theirs = sign(json!({
            "exp": now() + 60, "iss": ISSUER, "scope": "orders:read",
            "aud": ["another-api", "a-third-api"],
        }));
        assert_eq!(
            rejection(&auth, &theirs),
            "the token's audience is not accepted"
        );
        let single = sign(json!({
            "exp": now() + 60, "iss": ISSUER, "scope": "orders:read", "aud": AUDIENCE,
        }));
        check(&auth, &single).expect("a single audience string is accepted");
    }

    #[test]
    fn scopes_are_read_with_the_providers_prefix() {
        let auth = with_audience().with_scope_prefix("order-pipeline/");
        let prefixed = sign(json!({
            "exp": now() + 60, "iss": ISSUER, "aud": AUDIENCE,
            "scope": "openid order-pipeline/orders:read",
        }));
        check(&auth, &prefixed).expect("the prefixed scope grants orders:read");
        let plain = sign(json!({
            "exp": now() + 60, "iss": ISSUER, "aud": AUDIENCE, "scope": "orders:read",
        }));
        let refused = auth
            .authorize(Some(&format!("Bearer {plain}")), "orders:read")
            .unwrap_err();
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        assert!(
            refused.detail.contains("order-pipeline/orders:read"),
            "{}",
            refused.detail
        );
    }

    #[test]
    fn a_cognito_access_token_names_the_audience_as_its_client() {
        // Cognito's access tokens carry `client_id`, not `aud`; API
        // Gateway's JWT authorizer takes either, and so do the functions.
        let auth = with_audience();
        let ours = sign(json!({
            "exp": now() + 60, "iss": ISSUER, "scope": "orders:read", "client_id": AUDIENCE,
        }));
        check(&auth, &ours).expect("our app client is accepted");
        let theirs = sign(json!({
            "exp": now() + 60, "iss": ISSUER, "scope": "orders:read", "client_id": "another-client",
        }));
        assert_eq!(
            rejection(&auth, &theirs),
            "the token's client is not accepted"
        );
        // An `aud` that is not ours is not saved by a matching client_id.
        let mixed = sign(json!({
            "exp": now() + 60, "iss": ISSUER, "scope": "orders:read",
            "aud": "another-api", "client_id": AUDIENCE,
        }));
        assert_eq!(
            rejection(&auth, &mixed),
            "the token's audience is not accepted"
        );
    }

    #[test]
    fn a_token_is_refused_before_its_not_before_time_beyond_the_leeway() {
        let auth = with_audience();
        let claims = |nbf: u64| {
            sign(json!({
                "exp": now() + 600, "nbf": nbf, "iss": ISSUER, "aud": AUDIENCE,
                "scope": "orders:read",
            }))
        };
        let later = claims(now() + CLOCK_LEEWAY.as_secs() + 60);
        assert_eq!(
            rejection(&auth, &later),
            "the token is not valid yet (its nbf is in the future)"
        );
        // A clock a few seconds ahead of ours is tolerated.
        let skewed = claims(now() + CLOCK_LEEWAY.as_secs() / 2);
        check(&auth, &skewed).expect("nbf within the leeway is accepted");
    }

    #[test]
    fn expiry_tolerates_the_leeway_and_no_more() {
        let auth = Authenticator::hs256(SECRET, None, None);
        let expired_at = |exp: u64| sign(json!({"exp": exp, "scope": "orders:read"}));
        let just = expired_at(now() - CLOCK_LEEWAY.as_secs() / 2);
        check(&auth, &just).expect("expiry within the leeway is tolerated");
        let long_ago = expired_at(now() - CLOCK_LEEWAY.as_secs() - 60);
        assert_eq!(
            rejection(&auth, &long_ago),
            "the token has expired; get a new one"
        );
    }

    #[test]
    fn without_a_configured_audience_the_aud_claim_is_not_judged() {
        let auth = Authenticator::hs256(SECRET, None, None);
        for aud in [json!("anything"), json!(["a", "b"])] {
            let token = sign(json!({"exp": now() + 60, "scope": "orders:read", "aud": aud}));
            check(&auth, &token).expect("aud is ignored when none is configured");
        }
    }
}
