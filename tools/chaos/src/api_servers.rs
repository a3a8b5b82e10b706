//! The real `orders` and `analytics` binaries served as plain local HTTP
//! servers (`LOCAL_HTTP_ADDR`, as `make bench-api` serves them), each logged
//! in as its own database user, and a token from the real `pipeline-local token`.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use order_pipeline::postgres::roles::DatabaseRole;

use crate::world::{Settings, World};

/// The HS256 secret the servers verify and `pipeline-local token` signs with.
const JWT_SECRET: &str = "chaos-jwt-secret-chaos-jwt-secret-0123";
/// Connections per server, as the bench gives them.
const POOL_SIZE: &str = "8";

pub struct ApiServers {
    pub orders: String,
    pub analytics: String,
    pub token: String,
    processes: Vec<tokio::process::Child>,
}

impl ApiServers {
    pub async fn start(settings: &Settings, world: &World) -> Result<Self> {
        let mut processes = Vec::new();
        let mut urls = Vec::new();
        for role in [DatabaseRole::Orders, DatabaseRole::Analytics] {
            let function = role.function();
            let port = free_port()?;
            let log_path = settings
                .log_dir
                .join(format!("{}.{function}.log", world.name));
            let log = std::fs::File::create(&log_path)
                .with_context(|| format!("creating {}", log_path.display()))?;
            let process = tokio::process::Command::new(settings.bin_dir.join(function))
                .env_clear()
                .env("PATH", "/usr/bin:/bin")
                .env("DATABASE_URL", world.login_url(role))
                .env("DATABASE_POOL_SIZE", POOL_SIZE)
                .env("JWT_SECRET", JWT_SECRET)
                .env("BUCKET", &world.name)
                .env("AWS_ENDPOINT_URL", &settings.localstack)
                .env("AWS_ACCESS_KEY_ID", "test")
                .env("AWS_SECRET_ACCESS_KEY", "test")
                .env("AWS_REGION", "us-east-1")
                .env("LOCAL_HTTP_ADDR", format!("127.0.0.1:{port}"))
                .env("RUST_LOG", "warn")
                .stdout(log.try_clone()?)
                .stderr(log)
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("starting {function}"))?;
            processes.push(process);
            urls.push(format!("http://127.0.0.1:{port}"));
        }
        let servers = Self {
            analytics: urls.pop().unwrap_or_default(),
            orders: urls.pop().unwrap_or_default(),
            token: token(settings, &world.name).await?,
            processes,
        };
        for url in [&servers.orders, &servers.analytics] {
            wait_healthy(url).await?;
        }
        Ok(servers)
    }

    pub async fn stop(mut self) {
        for process in &mut self.processes {
            let _ = process.start_kill();
            let _ = process.wait().await;
        }
    }
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// A token with every scope, from `pipeline-local token` over an env file
/// holding the servers' secret.
async fn token(settings: &Settings, name: &str) -> Result<String> {
    let env_file = settings.log_dir.join(format!("{name}.token.env"));
    std::fs::write(&env_file, format!("JWT_SECRET={JWT_SECRET}\n"))?;
    let output = tokio::process::Command::new(settings.bin_dir.join("pipeline-local"))
        .args(["token", "--hours", "1", "--env-file"])
        .arg(&env_file)
        .output()
        .await
        .context("running pipeline-local token")?;
    let _ = std::fs::remove_file(&env_file);
    anyhow::ensure!(
        output.status.success(),
        "pipeline-local token failed: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(String::from_utf8(output.stdout)?.trim().to_owned())
}

async fn wait_healthy(url: &str) -> Result<()> {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answered = client.get(format!("{url}/health")).send().await;
        if answered.is_ok_and(|r| r.status().is_success()) {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{url}/health did not answer 200 within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
