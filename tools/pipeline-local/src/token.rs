//! `pipeline-local token`: a development token for the local HTTP API.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use pipeline_api::http::auth::{issue_hs256, ALL_SCOPES};

/// Reads the JWT settings from `env_file` (KEY=VALUE lines) and signs an
/// HS256 token with `scopes` (default: all) valid for `hours`.
pub fn issue(env_file: &Path, scopes: Option<&str>, hours: u64) -> Result<String> {
    let text = std::fs::read_to_string(env_file).with_context(|| {
        format!(
            "reading {} (run `make up` or `make token`, which write it)",
            env_file.display()
        )
    })?;
    let setting = |name: &str| {
        text.lines()
            .filter_map(|line| line.split_once('='))
            .find(|(key, _)| key.trim() == name)
            .map(|(_, value)| value.trim().to_owned())
            .filter(|value| !value.is_empty())
    };
    let Some(secret) = setting("JWT_SECRET") else {
        bail!(
            "{} has no JWT_SECRET; `make token` adds one (the functions must be restarted to read it)",
            env_file.display()
        );
    };
    let scopes: Vec<&str> = match scopes {
        Some(scopes) => scopes.split_whitespace().collect(),
        None => ALL_SCOPES.to_vec(),
    };
    Ok(issue_hs256(
        secret.as_bytes(),
        "local-developer",
        &scopes,
        Duration::from_secs(hours * 3600),
        setting("JWT_ISSUER").as_deref(),
        setting("JWT_AUDIENCE").as_deref(),
    ))
}

#[cfg(test)]
mod tests {
    use pipeline_api::http::auth::Authenticator;

    #[test]
    fn the_token_verifies_with_the_functions_secret_and_has_every_scope() {
        let dir = tempfile::tempdir().unwrap();
        let env = dir.path().join("functions.env");
        let secret = "0123456789abcdef0123456789abcdef";
        std::fs::write(
            &env,
            format!("DATABASE_URL=postgres://x\nJWT_SECRET={secret}\n"),
        )
        .unwrap();
        let token = super::issue(&env, None, 1).unwrap();
        let auth = Authenticator::hs256(secret.as_bytes(), None, None);
        for scope in ["orders:read", "orders:write", "analytics:read"] {
            auth.authorize(Some(&format!("Bearer {token}")), scope)
                .unwrap();
        }
        let other = Authenticator::hs256(b"another-secret-another-secret-00", None, None);
        assert!(other
            .authorize(Some(&format!("Bearer {token}")), "orders:read")
            .is_err());

        std::fs::write(&env, "DATABASE_URL=postgres://x\n").unwrap();
        assert!(super::issue(&env, None, 1)
            .unwrap_err()
            .to_string()
            .contains("JWT_SECRET"));
    }
}
