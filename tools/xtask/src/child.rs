//! The programs a task starts: a measured one-shot run (wall time and peak
//! resident memory, as `/usr/bin/time -v` reported them) and servers stopped
//! with SIGTERM.

use std::fs::File;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// How a measured run ended.
pub struct Measured {
    pub status: ExitStatus,
    pub seconds: f64,
    /// Peak resident set size, MiB.
    pub peak_rss_mb: f64,
}

/// Runs `command` with stdout to `stdout` and stderr to `stderr`, and
/// measures it. `what` names it in errors.
pub async fn measure(
    mut command: Command,
    stdout: &Path,
    stderr: &Path,
    what: &str,
) -> Result<Measured> {
    let create =
        |path: &Path| File::create(path).with_context(|| format!("creating {}", path.display()));
    command.stdout(create(stdout)?).stderr(create(stderr)?);
    let started = Instant::now();
    let child = command
        .spawn()
        .with_context(|| format!("starting {what}"))?;
    let mut running = Running(child.id() as libc::pid_t);
    let pid = running.0;
    let (status, usage) = tokio::task::spawn_blocking(move || wait_with_usage(pid))
        .await?
        .with_context(|| format!("waiting for {what}"))?;
    let seconds = started.elapsed().as_secs_f64();
    // Reaped above: nothing to kill, and dropping the handle only closes our side.
    running.0 = 0;
    drop(child);
    Ok(Measured {
        status,
        seconds,
        // ru_maxrss is in KiB on Linux.
        peak_rss_mb: usage.ru_maxrss as f64 / 1024.0,
    })
}

/// A measured child until it is reaped: killed if the run is interrupted
/// first (the blocked wait4 then reaps it). 0 once reaped.
struct Running(libc::pid_t);

impl Drop for Running {
    fn drop(&mut self) {
        if self.0 > 0 {
            // SAFETY: kill(2) with our own unreaped child's pid.
            unsafe { libc::kill(self.0, libc::SIGKILL) };
        }
    }
}

/// wait4(2): the child's exit status with its resource usage, which std's
/// `Child::wait` does not return.
fn wait_with_usage(pid: libc::pid_t) -> std::io::Result<(ExitStatus, libc::rusage)> {
    let mut status = 0;
    // SAFETY: wait4 writes only into the two locals passed by pointer; an
    // all-zero rusage is a valid value of that plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: see above; pid is our own unreaped child.
        let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if reaped == pid {
            return Ok((ExitStatus::from_raw(status), usage));
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// A server started by a task, logging to a file; stopped with SIGTERM
/// when dropped, also when the run is interrupted while it starts.
pub struct Server {
    name: String,
    child: Child,
}

impl Server {
    /// Starts `command` with its output to `log`, without waiting for it
    /// (a process that serves nothing to ask, like the forwarder).
    pub fn spawn(mut command: Command, name: &str, log: &Path) -> Result<Self> {
        let file = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let child = command
            .stdout(file.try_clone()?)
            .stderr(file)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Self {
            name: name.to_owned(),
            child,
        })
    }

    /// Starts `command` with its output to `log` and waits until
    /// `health_url` answers 2xx (10 seconds at most).
    pub async fn start(command: Command, name: &str, log: &Path, health_url: &str) -> Result<Self> {
        let mut server = Self::spawn(command, name, log)?;
        // Dropped on any way out but success: that stops it.
        let client = reqwest::Client::new();
        for _ in 0..40 {
            if let Ok(answer) = client.get(health_url).send().await {
                if answer.status().is_success() {
                    return Ok(server);
                }
            }
            if server.child.try_wait()?.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        drop(server);
        bail!("{name} did not start; see {}", log.display())
    }
}

impl Drop for Server {
    /// SIGTERM (the servers shut down gracefully on it), then reaps it.
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return; // exited and reaped already
        }
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) with our own running child's pid and a valid signal.
        if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
            let _ = self.child.kill();
        }
        if let Err(error) = self.child.wait() {
            eprintln!("teardown: waiting for {}: {error}", self.name);
        }
    }
}
