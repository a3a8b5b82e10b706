//! The connection pools: the pipeline's, and the API's, whose sessions
//! start with the lock and statement timeouts in force.

use deadpool_postgres::{ManagerConfig, Pool, RecyclingMethod, Runtime};

use super::{tls, DbError};
use crate::config::{DatabaseSettings, SessionLimits};

/// Builds the pool. Connections open lazily, so a cold start does not wait on
/// the database until the first query.
pub fn connect_pool(settings: &DatabaseSettings) -> Result<Pool, DbError> {
    build_pool(settings, None)
}

/// The API functions' pool: every connection starts with `limits` in
/// force, so a request never waits on a load longer than the lock timeout.
pub fn connect_api_pool(
    settings: &DatabaseSettings,
    limits: &SessionLimits,
) -> Result<Pool, DbError> {
    build_pool(settings, Some(limits))
}

fn build_pool(
    settings: &DatabaseSettings,
    limits: Option<&SessionLimits>,
) -> Result<Pool, DbError> {
    let mut config: tokio_postgres::Config = settings.url.parse().map_err(DbError::BadUrl)?;
    config.connect_timeout(settings.connect_timeout);
    if config.get_application_name().is_none() {
        config.application_name("order-pipeline");
    }
    if let Some(limits) = limits {
        let options = match config.get_options() {
            Some(given) => format!("{given} {}", limits.startup_options()),
            None => limits.startup_options(),
        };
        config.options(&options);
    }
    let manager = tls::manager(
        config,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    )?;
    Ok(Pool::builder(manager)
        .max_size(settings.pool_size.max(1))
        .runtime(Runtime::Tokio1)
        .build()?)
}
