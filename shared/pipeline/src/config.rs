//! Configuration read once per cold start from the environment.

use std::time::Duration;

/// Where inputs arrive and outputs go inside the bucket. Outputs live outside
/// the input prefix so the function never triggers itself.
pub const INCOMING_PREFIX: &str = "incoming/";
/// The bucket notification's suffix filter (S3 matches it case-sensitively).
pub const INCOMING_SUFFIX: &str = ".csv";
pub const PROCESSED_ORDERS_KEY: &str = "processed/processed_orders.csv";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name} is not set; {hint}")]
    Missing {
        name: &'static str,
        hint: &'static str,
    },
    #[error("{name}={value:?} is invalid: {reason}")]
    Invalid {
        name: &'static str,
        value: String,
        reason: String,
    },
}

/// Database settings shared by every function.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// A `postgres://user[:password]@host:port/db` URL.
    pub url: String,
    /// Connections per function instance. A Lambda instance serves one event
    /// at a time, so a couple of connections is plenty.
    pub pool_size: usize,
    pub connect_timeout: Duration,
}

impl DatabaseSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        let url = std::env::var("DATABASE_URL").map_err(|_| ConfigError::Missing {
            name: "DATABASE_URL",
            hint: "set it to postgres://user@host:port/db (`make up` writes it to .local/functions.env)",
        })?;
        Self::with_url(url)
    }

    /// The settings for `url`, with the pool size from `DATABASE_POOL_SIZE`.
    pub fn with_url(url: String) -> Result<Self, ConfigError> {
        let pool_size = positive_from_env("DATABASE_POOL_SIZE", "connections", 2)? as usize;
        Ok(Self {
            url,
            pool_size,
            connect_timeout: Duration::from_secs(10),
        })
    }
}

/// How long an API request's statements may wait and run. Loads hold the
/// merge lock (which sales take) for as long as they take, and a first or
/// bulk load locks its table for the moment it swaps its shadow in (reads
/// wait milliseconds for that, never for the load); with these limits a
/// request gives up after `lock_timeout` and answers 503 with Retry-After
/// instead of hanging until the function's own timeout, holding its
/// connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// PostgreSQL's `lock_timeout`: the longest wait for any lock (a
    /// table, a row, the merge lock).
    pub lock_timeout: Duration,
    /// PostgreSQL's `statement_timeout`: the longest any statement runs,
    /// below the API functions' 15 s timeout so the server stops the work
    /// before Lambda abandons it.
    pub statement_timeout: Duration,
}

impl SessionLimits {
    /// The API functions' defaults.
    pub const API_DEFAULT: Self = Self {
        lock_timeout: Duration::from_secs(2),
        statement_timeout: Duration::from_secs(10),
    };

    /// [`SessionLimits::API_DEFAULT`], changed by `DATABASE_LOCK_TIMEOUT_MS`
    /// and `DATABASE_STATEMENT_TIMEOUT_MS` (positive milliseconds).
    pub fn api_from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            lock_timeout: millis_from_env(
                "DATABASE_LOCK_TIMEOUT_MS",
                Self::API_DEFAULT.lock_timeout,
            )?,
            statement_timeout: millis_from_env(
                "DATABASE_STATEMENT_TIMEOUT_MS",
                Self::API_DEFAULT.statement_timeout,
            )?,
        })
    }

    /// The limits as libpq's `options` startup parameter: set when the
    /// connection opens, with no `SET` statement (which would pin the
    /// session to one server connection behind RDS Proxy).
    pub fn startup_options(&self) -> String {
        format!(
            "-c lock_timeout={} -c statement_timeout={}",
            self.lock_timeout.as_millis(),
            self.statement_timeout.as_millis()
        )
    }
}

fn millis_from_env(name: &'static str, default: Duration) -> Result<Duration, ConfigError> {
    positive_from_env(name, "milliseconds", default.as_millis() as u64).map(Duration::from_millis)
}

/// A positive whole number of `unit` from the environment variable `name`,
/// or `default` when it is not set. Zero is refused: every setting read
/// this way is a limit, and zero would mean none.
pub fn positive_from_env(name: &'static str, unit: &str, default: u64) -> Result<u64, ConfigError> {
    positive_setting(name, unit, std::env::var(name).ok(), default)
}

/// [`positive_from_env`] for a value already read (`None`: not set).
pub fn positive_setting(
    name: &'static str,
    unit: &str,
    value: Option<String>,
    default: u64,
) -> Result<u64, ConfigError> {
    let Some(value) = value else {
        return Ok(default);
    };
    match value.trim().parse::<u64>() {
        Ok(number) if number > 0 => Ok(number),
        Ok(_) => Err(ConfigError::Invalid {
            name,
            value,
            reason: format!("must be at least 1 ({unit}); 0 would mean no limit"),
        }),
        Err(e) => Err(ConfigError::Invalid {
            name,
            value,
            reason: format!("not a whole number of {unit}: {e}"),
        }),
    }
}

/// The bucket the API reads files from and publishes the export to.
pub fn bucket_from_env() -> Result<String, ConfigError> {
    std::env::var("BUCKET")
        .ok()
        .filter(|b| !b.is_empty())
        .ok_or(ConfigError::Missing {
            name: "BUCKET",
            hint:
                "set it to the pipeline's bucket (`make up` writes BUCKET to .local/functions.env)",
        })
}

/// The origin the dashboard's page uploads to, for its
/// Content-Security-Policy: `UPLOAD_ORIGIN` (the template sets the
/// bucket's), else the origin of `AWS_ENDPOINT_URL` (LocalStack), else none.
pub fn upload_origin_from_env() -> Option<String> {
    let set = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    set("UPLOAD_ORIGIN").or_else(|| set("AWS_ENDPOINT_URL").and_then(|url| origin_of(&url)))
}

/// `scheme://host[:port]` of a URL, without its path.
pub fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    (!authority.is_empty()).then(|| format!("{scheme}://{authority}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_origin_is_scheme_and_authority() {
        assert_eq!(
            super::origin_of("http://127.0.0.1:4566/").as_deref(),
            Some("http://127.0.0.1:4566")
        );
        assert_eq!(
            super::origin_of("https://s3.example.com").as_deref(),
            Some("https://s3.example.com")
        );
        assert_eq!(super::origin_of("not a url"), None);
    }

    use super::*;

    #[test]
    fn session_limits_are_positive_milliseconds_sent_in_the_startup_packet() {
        let default = Duration::from_secs(2);
        let parse = |value: Option<&str>| {
            positive_setting("X_MS", "milliseconds", value.map(str::to_owned), 2000)
                .map(Duration::from_millis)
        };
        assert_eq!(parse(None).unwrap(), default);
        assert_eq!(parse(Some(" 750 ")).unwrap(), Duration::from_millis(750));
        for bad in ["0", "-1", "2s", ""] {
            let err = parse(Some(bad)).unwrap_err().to_string();
            assert!(err.starts_with("X_MS="), "{bad}: {err}");
        }
        assert_eq!(
            SessionLimits::API_DEFAULT.startup_options(),
            "-c lock_timeout=2000 -c statement_timeout=10000"
        );
    }
}
