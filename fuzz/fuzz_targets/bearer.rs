//! The bearer-token extractor (http::auth::Authorized), fed two ways: the
//! input as the `Authorization` header, and the input as the claims of a
//! token signed with the right key (so that claim parsing is reached; a
//! mutated signature never verifies). Asserted whatever the bytes: no
//! panic; a refusal is a 401 or 403 with a challenge that fits in a header;
//! a token is accepted only when every rule the README states holds.
#![no_main]

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use axum::extract::FromRequestParts;
use axum::http::{header, HeaderValue, Request, StatusCode};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey};
use libfuzzer_sys::fuzz_target;
use pipeline_api::http::auth::{Authenticator, Authorized, OrdersRead, Scope, CLOCK_LEEWAY};
use serde_json::Value;

const SECRET: &[u8] = b"fuzz-secret-fuzz-secret-fuzz-secret-0123";
const ISSUER: &str = "https://issuer.example";
const AUDIENCE: &str = "order-api";

fuzz_target!(|data: &[u8]| {
    let open = Arc::new(Authenticator::hs256(SECRET, None, None));
    let strict = Arc::new(Authenticator::hs256(SECRET, Some(ISSUER), Some(AUDIENCE)));
    for (authenticator, configured) in [(&open, false), (&strict, true)] {
        if let Ok(value) = HeaderValue::from_bytes(data) {
            let verdict = extract(authenticator, Some(value));
            judge(verdict, None, configured);
        }
        let token = sign_claims(data);
        let value =
            HeaderValue::from_str(&format!("Bearer {token}")).expect("a JWT is header-safe");
        let verdict = extract(authenticator, Some(value));
        judge(verdict, Some(data), configured);
    }
});

/// A token carrying `claims` verbatim, signed with [`SECRET`].
fn sign_claims(claims: &[u8]) -> String {
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let signature = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(SECRET),
        Algorithm::HS256,
    )
    .expect("HS256 signing cannot fail");
    format!("{message}.{signature}")
}

/// Runs the extractor on a request carrying `authorization`. It awaits
/// nothing, so one poll finishes it.
fn extract(
    authenticator: &Arc<Authenticator>,
    authorization: Option<HeaderValue>,
) -> Result<Value, (StatusCode, Option<String>)> {
    let mut request = Request::builder();
    if let Some(value) = authorization {
        request = request.header(header::AUTHORIZATION, value);
    }
    let (mut parts, ()) = request.body(()).expect("a valid request").into_parts();
    let future = Authorized::<OrdersRead>::from_request_parts(&mut parts, authenticator);
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(Ok(authorized)) => Ok(serde_json::to_value(&authorized.claims).unwrap()),
        Poll::Ready(Err(error)) => Err((error.status, error.www_authenticate)),
        Poll::Pending => panic!("the extractor waited on something"),
    }
}

/// Checks a verdict; `claims` are the raw claims when the token was signed
/// here, so that an acceptance can be checked against them.
fn judge(
    verdict: Result<Value, (StatusCode, Option<String>)>,
    claims: Option<&[u8]>,
    configured: bool,
) {
    match verdict {
        Ok(accepted) => {
            let scope = accepted["scope"].as_str().unwrap_or_default();
            assert!(
                scope
                    .split_ascii_whitespace()
                    .any(|s| s == OrdersRead::NAME),
                "accepted without the scope: {accepted}"
            );
            if let Some(raw) = claims {
                let registered: Registered = serde_json::from_slice(raw)
                    .unwrap_or_else(|e| panic!("accepted claims that do not read ({e})"));
                registered.assert_accepted_rightly(configured);
            }
        }
        Err((status, challenge)) => {
            assert!(
                matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN),
                "refused with {status}"
            );
            let challenge = challenge.expect("a refusal carries WWW-Authenticate");
            assert!(
                HeaderValue::from_str(&challenge).is_ok(),
                "challenge not header-safe: {challenge:?}"
            );
        }
    }
}

/// The registered claims of a token, read as a JWT library reads them:
/// other fields are skipped unread (serde_json checks neither the UTF-8 of
/// their strings nor the range of their numbers, so a token carrying such
/// junk can be valid; fuzz/corpus/bearer/claims-unknown-field-*).
#[derive(Debug, serde::Deserialize)]
struct Registered {
    exp: u64,
    nbf: Option<u64>,
    iss: Option<String>,
    aud: Option<Value>,
}

impl Registered {
    /// The rules an accepted token's claims meet: not expired and already
    /// valid (within the leeway), and when configured the issuer ours and an
    /// audience ours.
    fn assert_accepted_rightly(&self, configured: bool) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let leeway = CLOCK_LEEWAY.as_secs();
        assert!(
            self.exp.saturating_add(leeway) >= now,
            "accepted an expired token: {self:?}"
        );
        if let Some(nbf) = self.nbf {
            assert!(
                nbf <= now.saturating_add(leeway),
                "accepted a token not valid yet: {self:?}"
            );
        }
        if configured {
            assert_eq!(
                self.iss.as_deref(),
                Some(ISSUER),
                "accepted a foreign issuer: {self:?}"
            );
            let ours = match &self.aud {
                Some(Value::String(one)) => one == AUDIENCE,
                Some(Value::Array(many)) => many.iter().any(|a| a.as_str() == Some(AUDIENCE)),
                _ => false,
            };
            assert!(ours, "accepted a foreign audience: {self:?}");
        }
    }
}
