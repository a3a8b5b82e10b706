//! Where a function's database settings come from. In AWS the credentials
//! live in a Secrets Manager secret named by `DATABASE_SECRET_ARN`, in the
//! RDS format (`{"username","password","host","port","dbname"}`), read once
//! per cold start; the template adds `DATABASE_HOST` (e.g. the RDS Proxy
//! endpoint) and `DATABASE_SSLMODE`. Without `DATABASE_SECRET_ARN`,
//! `DATABASE_URL` is used, as locally.

use aws_sdk_secretsmanager::error::SdkError;
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;

use crate::config::{ConfigError, DatabaseSettings};
use crate::error_chain::ErrorChain;

#[derive(thiserror::Error)]
pub enum SecretError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(
        "reading the database secret {arn} failed; check that the function's role may call \
         secretsmanager:GetSecretValue on it and that its subnets reach Secrets Manager \
         (a VPC endpoint or a NAT gateway)"
    )]
    Fetch {
        arn: String,
        #[source]
        source: Box<SdkError<GetSecretValueError>>,
    },
    #[error("the database secret {arn} is binary; store it as RDS-format JSON text")]
    NotText { arn: String },
    #[error("the database secret {arn} is unusable: {reason}")]
    Unusable { arn: String, reason: String },
}

/// A cold start that fails prints its error with `Debug` (a `main` returning
/// `Result`): show the message, which says what to do, and its causes, not
/// the structure.
impl std::fmt::Debug for SecretError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&ErrorChain(self), f)
    }
}

/// The settings for this function: from the secret when
/// `DATABASE_SECRET_ARN` is set, else from `DATABASE_URL`.
pub async fn database_settings() -> Result<DatabaseSettings, SecretError> {
    let Some(arn) = non_empty_env("DATABASE_SECRET_ARN") else {
        return Ok(DatabaseSettings::from_env()?);
    };
    let overrides = SecretOverrides::from_env()?;
    let text = secret_text(&arn).await?;
    let url = url_from_secret(&text, &overrides)
        .map_err(|reason| SecretError::Unusable { arn, reason })?;
    Ok(DatabaseSettings::with_url(url)?)
}

/// A database user's name and password, from an RDS-format secret (the
/// migrate function creates the functions' users from theirs).
pub struct Login {
    pub username: String,
    pub password: String,
}

/// Never shows the password.
impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The user and password of the RDS-format secret `arn`.
pub async fn login_from_secret(arn: &str) -> Result<Login, SecretError> {
    let text = secret_text(arn).await?;
    let secret: RdsSecret = serde_json::from_str(&text).map_err(|e| SecretError::Unusable {
        arn: arn.to_owned(),
        reason: format!("not RDS-format JSON ({})", json_problem(&e)),
    })?;
    Ok(Login {
        username: secret.username,
        password: secret.password,
    })
}

/// The text of the secret `arn`, read with the function's own role.
async fn secret_text(arn: &str) -> Result<String, SecretError> {
    let sdk_config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let secret = aws_sdk_secretsmanager::Client::new(&sdk_config)
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|source| SecretError::Fetch {
            arn: arn.to_owned(),
            source: Box::new(source),
        })?;
    secret
        .secret_string()
        .map(str::to_owned)
        .ok_or_else(|| SecretError::NotText {
            arn: arn.to_owned(),
        })
}

/// TLS to PostgreSQL, as in libpq's `sslmode`. With a secret the default is
/// `require` (verified; see `postgres::tls`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
}

impl SslMode {
    fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
        }
    }
}

/// What the environment adds to (or changes in) the secret.
#[derive(Debug, Clone)]
pub struct SecretOverrides {
    /// `DATABASE_HOST`: wins over the secret's host (RDS Proxy's endpoint).
    pub host: Option<String>,
    /// `DATABASE_NAME`: used when the secret has no `dbname`.
    pub dbname: Option<String>,
    /// `DATABASE_SSLMODE`: `disable`, `prefer` or `require` (the default).
    pub ssl_mode: SslMode,
}

impl SecretOverrides {
    pub fn from_env() -> Result<Self, ConfigError> {
        let ssl_mode = match non_empty_env("DATABASE_SSLMODE").as_deref() {
            None | Some("require") => SslMode::Require,
            Some("prefer") => SslMode::Prefer,
            Some("disable") => SslMode::Disable,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "DATABASE_SSLMODE",
                    value: other.to_owned(),
                    reason: "use disable, prefer or require".to_owned(),
                })
            }
        };
        Ok(Self {
            host: non_empty_env("DATABASE_HOST"),
            dbname: non_empty_env("DATABASE_NAME"),
            ssl_mode,
        })
    }
}

/// The RDS secret format. RDS-managed master secrets hold only the user and
/// password; the rest then comes from the environment.
#[derive(Deserialize)]
struct RdsSecret {
    username: String,
    password: String,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    port: Option<Port>,
    #[serde(default)]
    dbname: Option<String>,
}

/// Secrets written by hand often quote the port.
#[derive(Deserialize)]
#[serde(untagged)]
enum Port {
    Number(u16),
    Text(String),
}

/// Everything but letters, digits and `-._~` is escaped in URL parts.
const URL_PART: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The `postgres://` URL for an RDS-format secret. The error says what is
/// missing or wrong, never the secret's content.
pub fn url_from_secret(secret_json: &str, overrides: &SecretOverrides) -> Result<String, String> {
    let secret: RdsSecret = serde_json::from_str(secret_json).map_err(|e| {
        format!(
            "not RDS-format JSON ({}); expected {{\"username\",\"password\",\"host\",\"port\",\"dbname\"}}",
            json_problem(&e)
        )
    })?;
    let host = overrides
        .host
        .clone()
        .or(secret.host.filter(|h| !h.is_empty()))
        .ok_or("it has no host and DATABASE_HOST is not set")?;
    let port = match secret.port {
        None => 5432,
        Some(Port::Number(port)) => port,
        Some(Port::Text(text)) => text
            .trim()
            .parse()
            .map_err(|_| format!("its port {text:?} is not a number"))?,
    };
    let dbname = secret
        .dbname
        .filter(|d| !d.is_empty())
        .or(overrides.dbname.clone())
        .unwrap_or_else(|| "postgres".to_owned());
    Ok(format!(
        "postgres://{user}:{password}@{host}:{port}/{dbname}?sslmode={sslmode}",
        user = utf8_percent_encode(&secret.username, URL_PART),
        password = utf8_percent_encode(&secret.password, URL_PART),
        dbname = utf8_percent_encode(&dbname, URL_PART),
        sslmode = overrides.ssl_mode.as_str(),
    ))
}

/// Serde's messages can quote the input: say only what kind of problem it is.
fn json_problem(error: &serde_json::Error) -> &'static str {
    match error.classify() {
        serde_json::error::Category::Io => "unreadable",
        serde_json::error::Category::Syntax => "invalid JSON",
        serde_json::error::Category::Data => "a field is missing or has the wrong type",
        serde_json::error::Category::Eof => "truncated JSON",
    }
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}
