//! Who connects to PostgreSQL as what. Migrations run as the schema owner;
//! each function connects as a login user that is a member of its own group
//! role (`migrations/V4__roles.sql` creates the roles and grants each one
//! exactly what its function's SQL does). The group roles cannot log in;
//! login users are made here: by the migrate function in AWS (from each
//! function's secret, see `functions/migrate`) and by the tests. Locally
//! `scripts/local.sh` makes them with psql.

use tokio_postgres::GenericClient;

/// A function's group role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DatabaseRole {
    Ingest,
    Orders,
    Analytics,
}

impl DatabaseRole {
    pub const ALL: [DatabaseRole; 3] = [
        DatabaseRole::Ingest,
        DatabaseRole::Orders,
        DatabaseRole::Analytics,
    ];

    /// The NOLOGIN group role the migrations create and grant to.
    pub fn group(self) -> &'static str {
        match self {
            DatabaseRole::Ingest => "order_pipeline_ingest",
            DatabaseRole::Orders => "order_pipeline_orders",
            DatabaseRole::Analytics => "order_pipeline_analytics",
        }
    }

    /// The function that connects with this role.
    pub fn function(self) -> &'static str {
        match self {
            DatabaseRole::Ingest => "ingest",
            DatabaseRole::Orders => "orders",
            DatabaseRole::Analytics => "analytics",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    #[error(
        "login user {0:?} is not a plain PostgreSQL name: use 1 to 63 lowercase letters, \
         digits and underscores, starting with a letter or underscore"
    )]
    BadLoginName(String),
    #[error("creating or updating login user {login} (member of {group}): {source}")]
    Provision {
        login: String,
        group: &'static str,
        source: tokio_postgres::Error,
    },
}

/// Makes `login` a user that can log in with `password` as a
/// member of `role`'s group, and nothing more: it inherits the group's
/// privileges. Idempotent: an existing user gets the password (a rotated
/// secret) and the membership. The password goes to the server as a
/// SCRAM-SHA-256 verifier, never in clear text, so no statement log shows it.
/// Needs CREATEROLE (the schema owner that runs the migrations).
pub async fn provision_login<C: GenericClient>(
    client: &C,
    login: &str,
    role: DatabaseRole,
    password: &str,
) -> Result<(), RoleError> {
    if !is_plain_name(login) {
        return Err(RoleError::BadLoginName(login.to_owned()));
    }
    let group = role.group();
    // The verifier holds only base64, digits, `$`, `:` and `-`: it needs no
    // escaping inside a literal (postgres-protocol promises as much).
    let verifier = postgres_protocol::password::scram_sha_256(password.as_bytes());
    // A user made by an earlier run (or another database of the cluster) is
    // updated instead. Callers serialise runs (catalog rows of roles are
    // cluster-wide, and two ALTERs of one role at once fail).
    let statement = format!(
        "DO $provision$ BEGIN
             BEGIN
                 CREATE ROLE {login} LOGIN PASSWORD '{verifier}';
             EXCEPTION WHEN duplicate_object OR unique_violation THEN
                 ALTER ROLE {login} LOGIN PASSWORD '{verifier}';
             END;
         END $provision$;
         GRANT {group} TO {login};"
    );
    client
        .batch_execute(&statement)
        .await
        .map_err(|source| RoleError::Provision {
            login: login.to_owned(),
            group,
            source,
        })
}

/// A name that needs no quoting: what the secrets and local users use.
fn is_plain_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 63
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::is_plain_name;

    #[test]
    fn only_plain_login_names_are_accepted() {
        for good in ["ingest", "order_pipeline_ingest_login", "_x1"] {
            assert!(is_plain_name(good), "{good}");
        }
        for bad in [
            "",
            "1abc",
            "Ingest",
            "a-b",
            "a\"; DROP TABLE orders; --",
            &"a".repeat(64),
        ] {
            assert!(!is_plain_name(bad), "{bad}");
        }
    }
}
