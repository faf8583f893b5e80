//! Synapse, the reference homeserver, as a real federation peer: started
//! from PyPI's `matrix-synapse` (installed by deploy/test.sh) on loopback,
//! named `localhost:<port>`, serving federation over HTTPS with a
//! certificate from the scenario's [`TestCa`] and trusting that CA for its
//! own requests. Its client API has a plain HTTP listener of its own, so
//! scenarios drive it with [`crate::client::Client`] as they do ours.
//!
//! `HS_SYNAPSE_PYTHON` names the Python with Synapse (default: the venv
//! deploy/test.sh makes, `~/.cache/synapse-venv`).

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::{Context, bail};

use crate::{free_port, tls::TestCa};

pub struct Synapse {
    /// `localhost:<federation port>`.
    pub server_name: String,
    /// Plain HTTP, for clients.
    pub base_url: String,
    /// HTTPS, for servers.
    pub federation_url: String,
    dir: PathBuf,
    child: Child,
    /// Keeps the CA's file for as long as Synapse trusts it.
    _ca: TestCa,
}

/// The Python that runs Synapse.
pub fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("HS_SYNAPSE_PYTHON") {
        return python.into();
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache/synapse-venv/bin/python")
}

/// Every rate limit out of the way: scenarios act much faster than people.
const UNLIMITED: &str = "{per_second: 10000, burst_count: 100000}";

impl Synapse {
    pub async fn start(ca: &TestCa) -> Synapse {
        match Self::try_start(ca).await {
            Ok(synapse) => synapse,
            Err(e) => panic!("cannot start Synapse: {e:#}"),
        }
    }

    async fn try_start(ca: &TestCa) -> anyhow::Result<Synapse> {
        let (federation_port, client_port) = (free_port(), free_port());
        let server_name = format!("localhost:{federation_port}");
        let dir = std::env::temp_dir().join(format!("hs-test-synapse-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir)?;
        let config_path = dir.join("homeserver.yaml");
        let generated = Command::new(python())
            .args(["-m", "synapse.app.homeserver", "--server-name", &server_name, "--config-path"])
            .arg(&config_path)
            .args(["--generate-config", "--report-stats=no", "--data-directory"])
            .arg(&dir)
            .current_dir(&dir)
            .output()
            .context("cannot run Synapse (is matrix-synapse installed? see HS_SYNAPSE_PYTHON)")?;
        if !generated.status.success() {
            bail!("Synapse's generate-config failed: {}", String::from_utf8_lossy(&generated.stderr));
        }
        let pem = ca.issue_pem(&["localhost", "127.0.0.1"]);
        let (cert, key) = (dir.join("tls-cert.pem"), dir.join("tls-key.pem"));
        std::fs::write(&cert, pem.chain)?;
        std::fs::write(&key, pem.key)?;
        let mut config: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(&config_path)?)?;
        let settings = format!(
            r#"
listeners:
  - {{port: {federation_port}, bind_addresses: ['127.0.0.1'], type: http, tls: true, x_forwarded: false,
      resources: [{{names: [federation, keys], compress: false}}]}}
  - {{port: {client_port}, bind_addresses: ['127.0.0.1'], type: http, tls: false, x_forwarded: false,
      resources: [{{names: [client], compress: false}}]}}
tls_certificate_path: {cert}
tls_private_key_path: {key}
federation_custom_ca_list: [{ca}]
ip_range_whitelist: ['127.0.0.1', '::1']
trusted_key_servers: []
suppress_key_server_warning: true
enable_registration: true
enable_registration_without_verification: true
database: {{name: sqlite3, args: {{database: {db}}}}}
presence: {{enabled: false}}
caches: {{sync_response_cache_duration: 0}}
rc_message: {UNLIMITED}
rc_registration: {UNLIMITED}
rc_login: {{address: {UNLIMITED}, account: {UNLIMITED}, failed_attempts: {UNLIMITED}}}
rc_room_creation: {UNLIMITED}
rc_joins: {{local: {UNLIMITED}, remote: {UNLIMITED}}}
rc_joins_per_room: {UNLIMITED}
rc_invites: {{per_room: {UNLIMITED}, per_user: {UNLIMITED}, per_issuer: {UNLIMITED}}}
rc_federation: {{window_size: 1000, sleep_limit: 10000, sleep_delay: 0, reject_limit: 100000, concurrent: 1000}}
"#,
            cert = cert.display(),
            key = key.display(),
            ca = ca.pem_path().display(),
            db = dir.join("homeserver.db").display(),
        );
        let overrides: serde_yaml::Mapping = serde_yaml::from_str(&settings)?;
        let map = config.as_mapping_mut().context("Synapse's config is not a mapping")?;
        for (field, value) in overrides {
            map.insert(field, value);
        }
        std::fs::write(&config_path, serde_yaml::to_string(&config)?)?;

        let log = std::fs::File::create(dir.join("synapse.log"))?;
        let child = Command::new(python())
            .args(["-m", "synapse.app.homeserver", "-c"])
            .arg(&config_path)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("cannot start Synapse")?;
        let mut synapse = Synapse {
            server_name,
            base_url: format!("http://127.0.0.1:{client_port}"),
            federation_url: format!("https://localhost:{federation_port}"),
            dir,
            child,
            _ca: ca.clone(),
        };
        synapse.wait_ready().await?;
        Ok(synapse)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        crate::tls::install_default_provider();
        let client = reqwest::Client::new();
        for _ in 0..600 {
            if let Ok(response) = client.get(format!("{}/_matrix/client/versions", self.base_url)).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("Synapse exited at start ({status}):\n{}", self.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("Synapse did not start in a minute:\n{}", self.log_tail())
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("synapse.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }
}

impl Drop for Synapse {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("Synapse's files kept for inspection: {}", self.dir.display());
        }
    }
}
