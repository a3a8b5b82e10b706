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
        let pool_size = match std::env::var("DATABASE_POOL_SIZE") {
            Ok(value) => {
                value
                    .parse()
                    .map_err(|e: std::num::ParseIntError| ConfigError::Invalid {
                        name: "DATABASE_POOL_SIZE",
                        value,
                        reason: e.to_string(),
                    })?
            }
            Err(_) => 2,
        };
        Ok(Self {
            url,
            pool_size,
            connect_timeout: Duration::from_secs(10),
        })
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
