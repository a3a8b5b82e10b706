//! A private PostgreSQL cluster for the chaos cases, which stop it under
//! load: its own data directory under /tmp and its own port, so the shared
//! test server (54329) is never touched. Started as scripts/local.sh starts
//! its own (runuser -u postgres when root, fsync off); stopped on drop.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

pub struct PostgresCluster {
    bin: PathBuf,
    data_dir: PathBuf,
    port: u16,
}

impl PostgresCluster {
    /// Creates (once) and starts the cluster in `data_dir` on 127.0.0.1:`port`.
    pub fn start_new(bin: &Path, data_dir: &Path, port: u16) -> Result<Self> {
        let cluster = Self {
            bin: bin.to_owned(),
            data_dir: data_dir.to_owned(),
            port,
        };
        if !data_dir.join("PG_VERSION").exists() {
            std::fs::create_dir_all(data_dir)
                .with_context(|| format!("creating {}", data_dir.display()))?;
            if running_as_root() {
                run(Command::new("chown").arg("postgres:postgres").arg(data_dir))?;
            }
            run(cluster
                .as_postgres("initdb")
                .arg("-D")
                .arg(data_dir)
                .args(["-U", "postgres", "--auth=trust", "-E", "UTF8"])
                .arg("--locale=C.UTF-8"))?;
        }
        // A run interrupted before it could stop the cluster left it running.
        if !cluster.is_running() {
            cluster.start()?;
        }
        Ok(cluster)
    }

    fn is_running(&self) -> bool {
        self.as_postgres("pg_ctl")
            .arg("-D")
            .arg(&self.data_dir)
            .arg("status")
            .output()
            .is_ok_and(|output| output.status.success())
    }

    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The schema owner's URL for `database` (trust authentication).
    pub fn owner_url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    pub fn url_of(&self, database: &str, user: &str, password: &str) -> String {
        format!(
            "postgres://{user}:{password}@127.0.0.1:{}/{database}",
            self.port
        )
    }

    pub fn start(&self) -> Result<()> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.data_dir.display()
        );
        let log = self.data_dir.join("server.log");
        run(self
            .as_postgres("pg_ctl")
            .arg("-D")
            .arg(&self.data_dir)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "-o", &options, "start"]))
    }

    /// Stops the server the way an outage does: `immediate` mode, every
    /// connection cut, no shutdown checkpoint.
    pub fn stop_abruptly(&self) -> Result<()> {
        self.stop("immediate")
    }

    fn stop(&self, mode: &str) -> Result<()> {
        run(self
            .as_postgres("pg_ctl")
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-m", mode, "-w", "stop"]))
    }

    fn as_postgres(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        if running_as_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }
}

impl Drop for PostgresCluster {
    fn drop(&mut self) {
        if let Err(error) = self.stop("fast") {
            eprintln!(
                "chaos: stopping PostgreSQL on port {}: {error:#}",
                self.port
            );
        }
    }
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn run(command: &mut Command) -> Result<()> {
    let output = command
        .output()
        .with_context(|| format!("running {command:?}"))?;
    anyhow::ensure!(
        output.status.success(),
        "{command:?} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}
