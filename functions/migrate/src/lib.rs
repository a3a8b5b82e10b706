//! The `migrate` function's work: apply the pending migrations exactly once,
//! however often and from however many places it is invoked, then make sure
//! each function's database user exists, with its secret's password, as a
//! member of that function's role (migrations/V4__roles.sql).

use deadpool_postgres::Pool;
use order_pipeline::config::DatabaseSettings;
use order_pipeline::postgres::migrations::{self, MigrationError, MIGRATION_LOCK};
use order_pipeline::postgres::roles::{self, DatabaseRole, RoleError};
use order_pipeline::postgres::secret::{self, Login, SecretError};
use order_pipeline::postgres::DbError;
use serde_json::{json, Value};

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(transparent)]
    Migration(#[from] MigrationError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Role(#[from] RoleError),
}

/// A function's database user and the role it belongs to.
#[derive(Debug)]
pub struct FunctionUser {
    pub role: DatabaseRole,
    pub login: Login,
}

/// The pool for migrating: one connection holds the advisory lock, another
/// applies the migrations, whatever DATABASE_POOL_SIZE says.
pub fn pool(settings: &DatabaseSettings) -> Result<Pool, DbError> {
    order_pipeline::postgres::pool::connect_pool(&DatabaseSettings {
        pool_size: settings.pool_size.max(2),
        ..settings.clone()
    })
}

/// The variable naming `role`'s secret, e.g. `INGEST_DATABASE_SECRET_ARN`
/// (the template sets all three).
pub fn secret_variable(role: DatabaseRole) -> String {
    format!(
        "{}_DATABASE_SECRET_ARN",
        role.function().to_ascii_uppercase()
    )
}

/// The functions' users from the secrets the environment names; a role
/// without a variable is left to whoever manages its users.
pub async fn function_users_from_env() -> Result<Vec<FunctionUser>, SecretError> {
    let mut users = Vec::new();
    for role in DatabaseRole::ALL {
        let Some(arn) = std::env::var(secret_variable(role))
            .ok()
            .filter(|arn| !arn.trim().is_empty())
        else {
            continue;
        };
        users.push(FunctionUser {
            role,
            login: secret::login_from_secret(&arn).await?,
        });
    }
    Ok(users)
}

/// Applies what is pending, then creates or updates `users`. Answers
/// `{"applied": n, "users": [names]}` (0 when the schema was current).
pub async fn handle(pool: &Pool, users: &[FunctionUser]) -> Result<Value, MigrateError> {
    let applied = migrations::migrate_exclusively(pool).await?;
    provision(pool, users).await?;
    let names: Vec<&str> = users.iter().map(|u| u.login.username.as_str()).collect();
    tracing::info!(applied, users = ?names, "migrations applied; function users current");
    Ok(json!({ "applied": applied, "users": names }))
}

/// Under the migration lock, so two runs never alter one user at once.
async fn provision(pool: &Pool, users: &[FunctionUser]) -> Result<(), MigrateError> {
    if users.is_empty() {
        return Ok(());
    }
    let mut client = pool.get().await.map_err(DbError::from)?;
    let transaction = client.transaction().await.map_err(DbError::from)?;
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(DbError::from)?;
    for user in users {
        roles::provision_login(
            &*transaction,
            &user.login.username,
            user.role,
            &user.login.password,
        )
        .await?;
    }
    transaction.commit().await.map_err(DbError::from)?;
    Ok(())
}
