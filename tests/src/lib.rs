//! The harness of the integration suite: it starts a real deployment (all
//! components in one process, or the polylith behind nginx) on free loopback
//! ports against the real NATS and database, with a fresh database and
//! stream prefix, and tears it down when dropped, also when a test fails.
//!
//! Environment: `TEST_DATABASE` = `sqlite` (default) or `postgres`;
//! `TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432`);
//! `TEST_NATS_URL` (default `nats://127.0.0.1:4222`); `HS_BIN_DIR` (default:
//! the target directory these tests were built into).
//!
//! reqwest has no TLS provider of its own here, so a plain
//! `reqwest::Client::new()` needs rustls' process default: [`Deployment::start_with`]
//! and [`client::Client::new`] install it ([`tls::install_default_provider`]),
//! and a scenario that builds a reqwest client before either calls that first.
//!
//! Federation scenarios start deployments with [`Options::federating`]: each
//! is named `localhost:<port>` and serves the server-server API over HTTPS
//! with a certificate from a [`tls::TestCa`] that every deployment of the
//! scenario trusts:
//!
//! ```no_run
//! # async fn scenario() {
//! use tests::{Deployment, Mode, Options, tls::TestCa};
//! let ca = TestCa::new("federation test CA");
//! let hs1 = Deployment::start_with(Options::new(Mode::Monolith).federating(&ca)).await;
//! let hs2 = Deployment::start_with(Options::new(Mode::Polylith).federating(&ca)).await;
//! // hs1.server_name is "localhost:<port>", hs1.federation_url "https://localhost:<port>".
//! let keys = hs1.federation_client().get(format!("{}/_matrix/key/v2/server", hs1.federation_url));
//! # }
//! ```

pub mod client;
pub mod events;
pub mod remote;
pub mod streams;
pub mod synapse;
pub mod tls;

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::{Context, bail};
use common::{bus::Bus, config::Config, keys::SigningKey};

use crate::tls::TestCa;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `homeserver run`: every component in one process.
    Monolith,
    /// `deploy/local/up.sh`: every component its own process, nginx in front.
    Polylith,
}

#[derive(Clone)]
pub struct Options {
    pub mode: Mode,
    /// For the polylith: `HS_INSTANCES`, e.g. "roomserver=2 clientapi=1".
    pub instances: Option<String>,
    /// No NATS URL in the config: `homeserver run` starts its own nats-server.
    pub embedded_nats: bool,
    /// Changes to the generated config, as `dotted.path` → YAML value, e.g.
    /// `("clientapi.registration.guests", "true")`.
    pub config: Vec<(String, String)>,
    /// Set by [`Options::federating`].
    pub federation_ca: Option<TestCa>,
    /// Set by [`Options::shared_listener`].
    pub shared_listener: bool,
}

impl Options {
    pub fn new(mode: Mode) -> Self {
        Self {
            mode,
            instances: None,
            embedded_nats: false,
            config: Vec::new(),
            federation_ca: None,
            shared_listener: false,
        }
    }

    /// Sets a config value (YAML syntax) before the deployment starts.
    pub fn set(mut self, path: &str, yaml: &str) -> Self {
        self.config.push((path.to_owned(), yaml.to_owned()));
        self
    }

    /// Makes a deployment other servers can reach as the spec says: named
    /// `localhost:<federation port>` (an explicit port, so no discovery),
    /// serving the server-server API over HTTPS with a certificate `ca`
    /// issues for `localhost` and `127.0.0.1` (`--tls-cert`, `--tls-key`),
    /// and trusting `ca` for its own outbound requests (`--federation-ca`).
    /// Its `federation_url` is then `https://localhost:<port>`, which
    /// [`Deployment::federation_client`] reaches. The deployment keeps a
    /// clone of `ca`, so the CA's file lives as long as the deployment.
    pub fn federating(mut self, ca: &TestCa) -> Self {
        self.federation_ca = Some(ca.clone());
        self
    }

    /// Serves the client-server and the server-server API on one address,
    /// as small deployments and SyTest do: `base_url` and `federation_url`
    /// name the same port, HTTPS when [`Options::federating`]. `base_url`
    /// stays `127.0.0.1` (the certificate names it too), so reach it with
    /// [`Deployment::federation_client`]: [`client::Client`] does not trust
    /// the test CA.
    pub fn shared_listener(mut self) -> Self {
        self.shared_listener = true;
        self
    }
}

/// Password hashing as cheap as Argon2 allows: tests log in a lot.
const CHEAP_HASHING: [(&str, &str); 2] =
    [("userapi.password_hashing.memory_kib", "8"), ("userapi.password_hashing.iterations", "1")];

fn patch_config(text: &str, changes: &[(String, String)]) -> anyhow::Result<String> {
    let mut doc: serde_yaml::Value = serde_yaml::from_str(text)?;
    let all = CHEAP_HASHING.iter().map(|(p, v)| (p.to_string(), v.to_string())).chain(changes.iter().cloned());
    for (path, yaml) in all {
        let mut node = &mut doc;
        for key in path.split('.') {
            let map = node.as_mapping_mut().with_context(|| format!("{path}: not a mapping at {key}"))?;
            node = map.entry(key.into()).or_insert(serde_yaml::Value::Mapping(Default::default()));
        }
        *node = serde_yaml::from_str(&yaml).with_context(|| format!("{path}: bad YAML {yaml}"))?;
    }
    Ok(serde_yaml::to_string(&doc)?)
}

pub struct Deployment {
    pub mode: Mode,
    /// Where clients connect (nginx in the polylith).
    pub base_url: String,
    /// Where other servers connect.
    pub federation_url: String,
    pub server_name: String,
    pub config_path: PathBuf,
    pub config: Config,
    pub data_dir: PathBuf,
    bin_dir: PathBuf,
    /// The CA of [`Options::federating`], kept so its file outlives us.
    ca: Option<TestCa>,
    monolith: Option<Child>,
    /// Instances started by [`Deployment::start_instance`], by name.
    extra: Vec<(String, Child)>,
    postgres_db: Option<String>,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is in the workspace").to_owned()
}

/// The directory holding the workspace's binaries.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("HS_BIN_DIR") {
        return dir.into();
    }
    // target/<profile>/deps/<test binary>, or target/<profile>/<benchmark binary>
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().expect("a cargo target directory");
    if dir.ends_with("deps") { dir.parent().expect("a cargo target directory").to_owned() } else { dir.to_owned() }
}

fn postgres_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

pub fn nats_url() -> String {
    std::env::var("TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

fn use_postgres() -> bool {
    std::env::var("TEST_DATABASE").is_ok_and(|v| v == "postgres")
}

/// A free loopback port below the kernel's ephemeral range (where outgoing
/// connections could take it before our server binds it), and below the
/// range deploy/local/up.sh picks from.
pub fn free_port() -> u16 {
    // Ports handed out by this process: one that is free now is still free
    // for the next call until its deployment binds it, so never give it twice.
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    for _ in 0..1000 {
        let port = rand::random_range(20000..26000);
        let mut given = GIVEN.lock().expect("port list");
        if !given.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return port;
        }
    }
    panic!("no free port between 20000 and 26000");
}

/// Whether a failed start failed because a port was taken meanwhile.
fn port_taken(e: &anyhow::Error) -> bool {
    let text = format!("{e:#}");
    text.contains("Address already in use")
        || text.contains("duplicate listen")
        || text.contains("address already in use")
}

fn note_port_retry(e: &anyhow::Error) {
    eprintln!("a port was taken while the deployment started; trying other ports ({e:#})");
}

fn random_suffix() -> String {
    format!("{:016x}", rand::random::<u64>())
}

impl Deployment {
    pub async fn start(mode: Mode) -> Deployment {
        Self::start_with(Options::new(mode)).await
    }

    pub async fn start_with(options: Options) -> Deployment {
        tls::install_default_provider();
        // Tests run in parallel processes that pick free ports independently:
        // one may take a port another picked before it binds. Such a start is
        // tried again on other ports.
        let mut attempts = 0;
        loop {
            match Self::try_start(options.clone()).await {
                Ok(deployment) => return deployment,
                Err(e) if attempts < 3 && port_taken(&e) => {
                    attempts += 1;
                    note_port_retry(&e);
                }
                Err(e) => panic!("cannot start the deployment: {e:#}"),
            }
        }
    }

    async fn try_start(options: Options) -> anyhow::Result<Deployment> {
        let suffix = random_suffix();
        let data_dir = std::env::temp_dir().join(format!("hs-test-{suffix}"));
        std::fs::create_dir_all(&data_dir)?;
        let bin_dir = bin_dir();
        let postgres_db = use_postgres().then(|| format!("hs_test_{suffix}"));
        let client_port = free_port();
        let federation_port = if options.shared_listener { client_port } else { free_port() };
        let (server_name, base_url, federation_url) = match &options.federation_ca {
            Some(_) => (
                format!("localhost:{federation_port}"),
                match options.shared_listener {
                    true => format!("https://127.0.0.1:{client_port}"),
                    false => format!("http://127.0.0.1:{client_port}"),
                },
                format!("https://localhost:{federation_port}"),
            ),
            None => (
                format!("hs{}.test", &suffix[..8]),
                format!("http://127.0.0.1:{client_port}"),
                format!("http://127.0.0.1:{federation_port}"),
            ),
        };

        let mut generate = Command::new(bin_dir.join("homeserver"));
        generate
            .args(["generate-config", "--server-name", &server_name, "--data-dir"])
            .arg(&data_dir)
            .args(["--client-listen", &format!("127.0.0.1:{client_port}")])
            .args(["--federation-listen", &format!("127.0.0.1:{federation_port}")])
            .args(["--no-rate-limits", "--allow-private-outbound", "--open-registration"]);
        if !options.embedded_nats {
            generate.args(["--nats", &nats_url()]);
        }
        if let Some(ca) = &options.federation_ca {
            let pem = ca.issue_pem(&["localhost", "127.0.0.1"]);
            let (cert, key) = (data_dir.join("tls-cert.pem"), data_dir.join("tls-key.pem"));
            std::fs::write(&cert, pem.chain)?;
            std::fs::write(&key, pem.key)?;
            generate.arg("--tls-cert").arg(&cert).arg("--tls-key").arg(&key);
            generate.arg("--federation-ca").arg(ca.pem_path());
        }
        if let Some(db) = &postgres_db {
            generate.args(["--database", &format!("{}/{db}", postgres_admin_url())]);
        }
        let output = generate.output().context("cannot run homeserver generate-config")?;
        if !output.status.success() {
            bail!("generate-config failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        let config_path = data_dir.join("homeserver.yaml");
        std::fs::write(&config_path, patch_config(&String::from_utf8_lossy(&output.stdout), &options.config)?)?;
        let config = Config::load(&config_path)?;
        // Created last, just before the deployment whose drop removes it, so
        // that no failed start leaves a database behind.
        if let Some(db) = &postgres_db {
            create_database(db).await?;
        }

        let mut deployment = Deployment {
            mode: options.mode,
            base_url,
            federation_url,
            server_name,
            config_path,
            config,
            data_dir,
            bin_dir,
            ca: options.federation_ca,
            monolith: None,
            extra: Vec::new(),
            postgres_db,
        };
        match options.mode {
            Mode::Monolith => deployment.run_monolith().await?,
            Mode::Polylith => {
                let mut up = Command::new(repo_root().join("deploy/local/up.sh"));
                up.arg(&deployment.config_path).env("HS_BIN_DIR", &deployment.bin_dir);
                if let Some(instances) = &options.instances {
                    up.env("HS_INSTANCES", instances);
                }
                let output = up.output().context("cannot run deploy/local/up.sh")?;
                if !output.status.success() {
                    bail!("up.sh failed: {}", String::from_utf8_lossy(&output.stderr));
                }
                let stdout = String::from_utf8_lossy(&output.stdout);
                let last = stdout.lines().last().unwrap_or_default().trim();
                if last != deployment.base_url {
                    bail!("up.sh's last line is {last:?}, not the base URL {}", deployment.base_url);
                }
            }
        }
        Ok(deployment)
    }

    async fn wait_healthy(&mut self, base_url: &str) -> anyhow::Result<()> {
        let client = self.federation_client();
        for _ in 0..300 {
            if let Ok(response) = client.get(format!("{base_url}/health")).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            if let Some(child) = &mut self.monolith
                && let Some(status) = child.try_wait()?
            {
                bail!("homeserver exited at start ({status}):\n{}", self.log_tail("homeserver.log"));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        bail!("{base_url} did not become healthy:\n{}", self.log_tail("homeserver.log"))
    }

    pub fn log_tail(&self, name: &str) -> String {
        let path = match self.mode {
            Mode::Monolith => self.data_dir.join(name),
            Mode::Polylith => self.run_dir().join(name),
        };
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn run_dir(&self) -> PathBuf {
        self.data_dir.join("polylith")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// A client for `federation_url` (and for `base_url` on a shared
    /// listener): it trusts the test CA of [`Options::federating`], and is
    /// a plain client for a deployment that does not federate.
    pub fn federation_client(&self) -> reqwest::Client {
        match &self.ca {
            Some(ca) => ca.client(),
            None => reqwest::Client::new(),
        }
    }

    /// The server's signing key, as a component would load it.
    pub fn signing_key(&self) -> SigningKey {
        SigningKey::load(&self.config.global.signing_key_path).expect("the deployment's signing key")
    }

    /// A bus connection under the deployment's prefix, to act as a component would.
    pub async fn bus(&self) -> Bus {
        let mut nats = self.config.global.nats.clone();
        nats.url.get_or_insert_with(nats_url);
        Bus::connect(&nats, "tests").await.expect("the test connects to NATS")
    }

    /// Where a polylith instance (`clientapi-1`, `syncapi-extra1`) serves HTTP directly, bypassing nginx.
    pub fn instance_url(&self, instance: &str) -> String {
        let addr = std::fs::read_to_string(self.run_dir().join(format!("{instance}.addr")))
            .unwrap_or_else(|e| panic!("no address file for {instance}: {e}"));
        format!("http://{}", addr.trim())
    }

    /// The pid of a polylith instance (`roomserver-1`, or `roomserver-extra1`).
    pub fn pid_of(&self, instance: &str) -> u32 {
        if let Some((_, child)) = self.extra.iter().find(|(name, _)| name == instance) {
            return child.id();
        }
        let text = std::fs::read_to_string(self.run_dir().join(format!("{instance}.pid")))
            .unwrap_or_else(|e| panic!("no pid file for {instance}: {e}"));
        text.trim().parse().expect("a pid")
    }

    /// Sends a signal to a polylith instance and waits for it to be gone.
    pub async fn kill_instance(&mut self, instance: &str, signal: libc::c_int) {
        let pid = self.pid_of(instance) as libc::pid_t;
        // SAFETY: signalling a process this deployment started.
        unsafe { libc::kill(pid, signal) };
        if let Some((_, child)) = self.extra.iter_mut().find(|(name, _)| name == instance) {
            // Our own child: reap it, or it lingers as a zombie that still "exists".
            let _ = wait_or_kill(child, Duration::from_secs(30));
            return;
        }
        for _ in 0..600 {
            // SAFETY: signal 0 only checks the process exists.
            if unsafe { libc::kill(pid, 0) } != 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{instance} did not exit");
    }

    /// Starts one more instance of a component, stopped with the deployment.
    pub async fn start_instance(&mut self, component: &str) -> String {
        let port = free_port();
        let name = format!("{component}-extra{}", self.extra.len() + 1);
        let log = std::fs::File::create(self.data_dir.join(format!("{name}.log"))).expect("log file");
        let child = Command::new(self.bin_dir.join(component))
            .arg("--config")
            .arg(&self.config_path)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("the component starts");
        self.extra.push((name.clone(), child));
        std::fs::write(self.run_dir().join(format!("{name}.addr")), format!("127.0.0.1:{port}")).expect("address file");
        let url = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        for _ in 0..300 {
            if let Ok(response) = client.get(format!("{url}/health")).send().await
                && response.status().is_success()
            {
                return name;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "{name} did not become healthy:\n{}",
            std::fs::read_to_string(self.data_dir.join(format!("{name}.log"))).unwrap_or_default()
        );
    }

    /// Starts `homeserver run` and waits until both its listeners answer.
    async fn run_monolith(&mut self) -> anyhow::Result<()> {
        // Appended to: a restarted monolith's log follows the first one's.
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.data_dir.join("homeserver.log"))?;
        let child = Command::new(self.bin_dir.join("homeserver"))
            .arg("run")
            .arg("--config")
            .arg(&self.config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("cannot start homeserver run")?;
        self.monolith = Some(child);
        self.wait_healthy(&self.base_url.clone()).await?;
        // Its own listener, which a scenario may call first.
        self.wait_healthy(&self.federation_url.clone()).await
    }

    /// Starts `homeserver run` again after [`Deployment::terminate_monolith`],
    /// on the same config, data and ports.
    pub async fn restart_monolith(&mut self) {
        assert!(self.monolith.is_none(), "the monolith is still running");
        if let Err(e) = self.run_monolith().await {
            panic!("cannot restart the monolith: {e:#}");
        }
    }

    /// Stops `homeserver run` with SIGTERM and returns its exit status.
    pub async fn terminate_monolith(&mut self) -> std::process::ExitStatus {
        let mut child = self.monolith.take().expect("a monolith deployment");
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        for _ in 0..600 {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        panic!("homeserver did not exit within 30s of SIGTERM");
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        for child in self.extra.iter().map(|(_, child)| child).chain(self.monolith.as_ref()) {
            // SAFETY: signalling our own children.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        }
        for child in self.extra.iter_mut().map(|(_, child)| child).chain(self.monolith.as_mut()) {
            let _ = wait_or_kill(child, Duration::from_secs(20));
        }
        if self.mode == Mode::Polylith {
            let _ = Command::new(repo_root().join("deploy/local/down.sh"))
                .arg(&self.config_path)
                .env("HS_BIN_DIR", &self.bin_dir)
                .status();
        }
        let prefix = self.config.global.nats.stream_prefix.clone();
        let nats = self.config.global.nats.url.clone();
        let db = self.postgres_db.take();
        // Drop may run inside the test's runtime, which cannot block; clean up on a thread.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async move {
                if let Some(url) = nats {
                    let _ = delete_streams(&url, &prefix).await;
                }
                if let Some(db) = db {
                    let _ = drop_database(&db).await;
                }
            });
            Some(())
        })
        .join();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.data_dir);
        } else {
            eprintln!("deployment files kept for inspection: {}", self.data_dir.display());
        }
    }
}

fn wait_or_kill(child: &mut Child, grace: Duration) -> std::io::Result<()> {
    let deadline = std::time::Instant::now() + grace;
    while std::time::Instant::now() < deadline {
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill()?;
    child.wait().map(|_| ())
}

async fn admin_connection() -> anyhow::Result<sqlx::AnyConnection> {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    Ok(sqlx::AnyConnection::connect(&format!("{}/postgres", postgres_admin_url())).await?)
}

async fn create_database(name: &str) -> anyhow::Result<()> {
    use sqlx::Executor;
    let mut conn = admin_connection().await.context("cannot reach Postgres (TEST_POSTGRES_URL)")?;
    conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await?;
    Ok(())
}

async fn drop_database(name: &str) -> anyhow::Result<()> {
    use sqlx::Executor;
    let mut conn = admin_connection().await?;
    conn.execute(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))).await?;
    Ok(())
}

async fn delete_streams(url: &str, prefix: &str) -> anyhow::Result<()> {
    let client = async_nats::connect(url).await?;
    let jetstream = async_nats::jetstream::new(client);
    for stream in common::bus::Stream::ALL {
        let _ = jetstream.delete_stream(format!("{prefix}_{}", stream.name())).await;
    }
    let _ = jetstream.delete_key_value(common::bus::lease_bucket(prefix)).await;
    Ok(())
}
