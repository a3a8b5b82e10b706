//! TLS to PostgreSQL, chosen by the connection's `sslmode`.
//!
//! In AWS the functions reach PostgreSQL (or RDS Proxy) over TLS with
//! `sslmode=require`: rustls verifies the server's certificate and host name
//! against the system's roots (RDS Proxy presents a public Amazon Trust
//! Services certificate). Set `SSL_CERT_FILE` to a PEM bundle to trust other
//! roots, such as the RDS CA bundle for a direct connection to an instance.
//! Locally there is no TLS: `sslmode=disable` or the default `prefer`, which
//! without a TLS connector connects in plain text as before.

use std::sync::Arc;

use deadpool_postgres::{Manager, ManagerConfig};
use tokio_postgres::config::SslMode;
use tokio_postgres::NoTls;
use tokio_postgres_rustls::MakeRustlsConnect;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(
        "sslmode=require but no trusted root certificate was found on this system ({details}); \
         install ca-certificates or set SSL_CERT_FILE to a PEM bundle"
    )]
    NoRoots { details: String },
    #[error("building the TLS configuration for PostgreSQL: {0}")]
    Config(#[from] rustls::Error),
}

/// The pool's connection manager: over verified TLS when the configuration
/// says `sslmode=require`, in plain text otherwise.
pub fn manager(
    config: tokio_postgres::Config,
    manager_config: ManagerConfig,
) -> Result<Manager, TlsError> {
    Ok(match config.get_ssl_mode() {
        SslMode::Require => Manager::from_config(config, verified_tls()?, manager_config),
        _ => Manager::from_config(config, NoTls, manager_config),
    })
}

/// A rustls connector trusting the system's roots (or `SSL_CERT_FILE`).
pub fn verified_tls() -> Result<MakeRustlsConnect, TlsError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let details = if found.errors.is_empty() {
            "no certificate files".to_owned()
        } else {
            found
                .errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        };
        return Err(TlsError::NoRoots { details });
    }
    // The provider is named rather than taken from the process default, which
    // is ambiguous when more than one is compiled in.
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}
