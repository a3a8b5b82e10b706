//! What both routers' handlers share: the database store and the token
//! verifier, built once per cold start.

use std::sync::Arc;

use crate::http::auth::Authenticator;
use axum::extract::FromRef;
use order_pipeline::postgres::PgStore;

/// The database store and the authenticator; the orders router's whole
/// state, and the shared part of the analytics router's.
#[derive(Clone)]
pub struct ApiState {
    pub db: PgStore,
    pub auth: Arc<Authenticator>,
}

impl ApiState {
    pub fn new(db: PgStore, auth: Authenticator) -> Self {
        Self {
            auth: Arc::new(auth),
            db,
        }
    }

    /// The state a cold start builds from the environment: the database
    /// store and the token verifier.
    pub async fn from_env() -> Result<Self, lambda_http::Error> {
        let store = crate::http::store_from_env().await?;
        Ok(Self::new(store, Authenticator::from_env()?))
    }
}

impl FromRef<ApiState> for Arc<Authenticator> {
    fn from_ref(state: &ApiState) -> Self {
        state.auth.clone()
    }
}
