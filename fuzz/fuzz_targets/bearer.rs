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
use order_pipeline::http::auth::{Authenticator, Authorized, OrdersRead, Scope, CLOCK_LEEWAY};
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
                // serde_json skips an unknown field's string without checking
                // its UTF-8 (fuzz/corpus/bearer/claims-unknown-field-not-utf8):
                // the claims read are valid, so judge those.
                let raw: Value = serde_json::from_str(&String::from_utf8_lossy(raw))
                    .expect("accepted claims are JSON");
                assert_accepted_rightly(&raw, configured);
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

/// The rules an accepted token's claims meet: not expired and already
/// valid (within the leeway), the scope granted, and when configured the
/// issuer and an audience ours.
fn assert_accepted_rightly(claims: &Value, configured: bool) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let leeway = CLOCK_LEEWAY.as_secs();
    let exp = claims["exp"]
        .as_u64()
        .expect("accepted without an integer exp");
    assert!(
        exp.saturating_add(leeway) >= now,
        "accepted an expired token: {claims}"
    );
    if let Some(nbf) = claims.get("nbf").filter(|v| !v.is_null()) {
        let nbf = nbf.as_u64().expect("accepted a non-integer nbf");
        assert!(
            nbf <= now.saturating_add(leeway),
            "accepted a token not valid yet: {claims}"
        );
    }
    if configured {
        assert_eq!(
            claims["iss"].as_str(),
            Some(ISSUER),
            "accepted a foreign issuer: {claims}"
        );
        let ours = match &claims["aud"] {
            Value::String(one) => one == AUDIENCE,
            Value::Array(many) => many.iter().any(|a| a.as_str() == Some(AUDIENCE)),
            _ => false,
        };
        assert!(ours, "accepted a foreign audience: {claims}");
    }
}
