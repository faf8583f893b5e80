//! What a component is given to run with, and what it hands back to its host
//! (its own binary, or `homeserver run` with all the others).

use std::{future::Future, path::PathBuf, sync::Arc, time::Duration};

use axum::Router;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    auth::TokenCache,
    bus::Bus,
    config::{Config, ConfigError},
    http::HealthCheck,
    keys::SigningKey,
    storage::{Db, Migration},
};

#[derive(Clone)]
pub struct Runtime {
    pub config: Arc<Config>,
    pub bus: Bus,
    pub key: Arc<SigningKey>,
    /// Cancelled when background work (consumers, RPC servers) must finish.
    pub shutdown: CancellationToken,
    /// Cancelled when something failed so badly the process must exit.
    pub fatal: CancellationToken,
    pub tasks: TaskTracker,
    /// Access token owners, shared by every client listener of the process.
    pub tokens: Arc<TokenCache>,
}

/// A running component's HTTP side.
pub struct Service {
    pub name: &'static str,
    /// Routes under /_matrix/client, /.well-known, /_synapse …
    pub client_routes: Router,
    /// Routes under /_matrix/federation and /_matrix/key.
    pub federation_routes: Router,
    pub db: Db,
}

impl Runtime {
    pub async fn new(config: Arc<Config>, process_name: &str) -> anyhow::Result<Runtime> {
        let key = Arc::new(SigningKey::load(&config.global.signing_key_path)?);
        let bus = Bus::connect(&config.global.nats, process_name).await?;
        let shutdown = CancellationToken::new();
        Ok(Runtime {
            config,
            tokens: TokenCache::start(bus.clone(), shutdown.clone()).await?,
            bus,
            key,
            shutdown,
            fatal: CancellationToken::new(),
            tasks: TaskTracker::new(),
        })
    }

    /// Opens the component's database and brings its tables up to date.
    pub async fn database(&self, component: &str, migrations: &[Migration]) -> anyhow::Result<Db> {
        let url =
            self.config.component_database(component).ok_or_else(|| anyhow::anyhow!("{component} has no database"))?;
        let db = Db::connect(url).await?;
        db.migrate(component, migrations).await?;
        Ok(db)
    }

    /// Runs background work until shutdown; if it fails, the process exits
    /// so that whatever supervises it starts a fresh one.
    pub fn spawn(&self, what: &'static str, work: impl Future<Output = anyhow::Result<()>> + Send + 'static) {
        let fatal = self.fatal.clone();
        self.tasks.spawn(async move {
            if let Err(e) = work.await {
                tracing::error!(task = what, error = format!("{e:#}"), "background task failed");
                fatal.cancel();
            }
        });
    }

    /// Stops background work and waits for it, at most `grace`.
    pub async fn stop(&self, grace: Duration) {
        self.shutdown.cancel();
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait()).await.is_err() {
            tracing::warn!("background work did not finish in time");
        }
    }

    /// /health of a component: NATS connected and its database answering.
    pub fn health(&self, dbs: Vec<Db>) -> HealthCheck {
        let bus = self.bus.clone();
        Arc::new(move || {
            let (bus, dbs) = (bus.clone(), dbs.clone());
            Box::pin(async move {
                if !bus.is_connected() {
                    return false;
                }
                for db in &dbs {
                    if !db.is_reachable().await {
                        return false;
                    }
                }
                true
            })
        })
    }
}

/// The command line of every component binary.
#[derive(clap::Parser)]
pub struct ComponentArgs {
    /// The homeserver's YAML configuration file.
    #[arg(long)]
    pub config: PathBuf,
    /// Listen here instead of the component's configured address (for a second instance).
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
}

/// Loads the config or exits with status 2 and one line naming the bad field.
pub fn load_config_or_exit(path: &std::path::Path) -> Arc<Config> {
    match Config::load(path) {
        Ok(config) => Arc::new(config),
        Err(ConfigError { field, message }) => {
            eprintln!("invalid config: {field}: {message}");
            std::process::exit(2);
        }
    }
}

pub fn init_logging(config: &Config) {
    let text = std::env::var("RUST_LOG").unwrap_or_else(|_| config.global.log_level.clone());
    let mut filter = tracing_subscriber::EnvFilter::new(&text);
    if !text.contains("ruma_state_res") {
        // Its authorisation checks log several INFO lines for every event.
        filter = filter.add_directive("ruma_state_res=warn".parse().expect("a valid directive"));
    }
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    crate::metrics::install();
}

/// Resolves on SIGTERM or SIGINT.
pub async fn termination_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("can install a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("can install a SIGINT handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: finishing work in hand"),
        _ = int.recv() => tracing::info!("SIGINT: finishing work in hand"),
    }
}

/// How long in-flight work may take to finish after a termination signal.
pub const GRACE: Duration = Duration::from_secs(25);

/// `main` of a component binary: one component, its own listener.
pub fn component_main<F, Fut>(name: &'static str, run: F) -> std::process::ExitCode
where
    F: FnOnce(Runtime) -> Fut,
    Fut: Future<Output = anyhow::Result<Service>>,
{
    use clap::Parser;
    let args = ComponentArgs::parse();
    let config = load_config_or_exit(&args.config);
    init_logging(&config);
    let listen = args.listen.or_else(|| config.component_listen(name)).expect("a known component");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let result = runtime.block_on(async move {
        let rt = Runtime::new(config.clone(), name).await?;
        let service = run(rt.clone()).await?;
        let router = crate::http::finish(
            service.client_routes.merge(service.federation_routes),
            crate::http::HttpContext::new(&config, rt.tokens.clone()),
            rt.health(vec![service.db.clone()]),
        );
        // Plain HTTP even for federationreceiver: TLS ends at the proxy in front.
        serve_until_stopped(&rt, vec![crate::http::Listen::plain(listen, router)]).await
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "{name} failed");
            eprintln!("{name}: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Serves the listeners until a termination signal (or a fatal failure), then
/// lets in-flight requests finish before stopping background work.
pub async fn serve_until_stopped(rt: &Runtime, listeners: Vec<crate::http::Listen>) -> anyhow::Result<()> {
    let http_stop = CancellationToken::new();
    let mut servers = tokio::task::JoinSet::new();
    for listen in listeners {
        servers.spawn(crate::http::serve(listen, http_stop.clone()));
    }
    let failed = tokio::select! {
        _ = termination_signal() => false,
        _ = rt.fatal.cancelled() => true,
        Some(result) = servers.join_next() => {
            result??;
            true
        }
    };
    http_stop.cancel();
    let _ = tokio::time::timeout(GRACE, async { while servers.join_next().await.is_some() {} }).await;
    rt.stop(GRACE).await;
    if failed {
        anyhow::bail!("stopped after a failure");
    }
    Ok(())
}
