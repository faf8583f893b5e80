//! `homeserver run`: every component in one process, the client-server API
//! (clientapi and syncapi routes) on one listener and the server-server API
//! on the other, or both on one when the config gives them the same address.
//! The server-server listener serves HTTPS when the config has a certificate.

use std::{path::Path, process::ExitCode, sync::Arc};

use axum::Router;
use common::{
    Runtime, Service,
    http::{HttpContext, Listen, finish},
    runtime::{init_logging, load_config_or_exit, serve_until_stopped},
};

use crate::embedded_nats::EmbeddedNats;

pub fn run(config_path: &Path) -> ExitCode {
    let config = load_config_or_exit(config_path);
    init_logging(&config);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    match runtime.block_on(run_all(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "homeserver failed");
            eprintln!("homeserver: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run_all(mut config: Arc<common::config::Config>) -> anyhow::Result<()> {
    let nats = match &config.global.nats.url {
        Some(_) => None,
        None => {
            let nats = EmbeddedNats::start(&config.global.data_dir).await?;
            Arc::make_mut(&mut config).global.nats.url = Some(nats.url.clone());
            Some(nats)
        }
    };
    let result = serve(config).await;
    if let Some(nats) = nats {
        nats.stop().await;
    }
    result
}

async fn serve(config: Arc<common::config::Config>) -> anyhow::Result<()> {
    // Built once for the listener's life: renewed files take a restart.
    let tls = config.global.tls_server_config()?;
    let rt = Runtime::new(config.clone(), "homeserver").await?;
    let services: Vec<Service> = vec![
        userapi::run(rt.clone()).await?,
        roomserver::run(rt.clone()).await?,
        syncapi::run(rt.clone()).await?,
        federationsender::run(rt.clone()).await?,
        federationreceiver::run(rt.clone()).await?,
        clientapi::run(rt.clone()).await?,
    ];
    let (mut client, mut federation, mut dbs) = (Router::new(), Router::new(), Vec::new());
    for service in services {
        tracing::debug!(component = service.name, "started");
        client = client.merge(service.client_routes);
        federation = federation.merge(service.federation_routes);
        dbs.push(service.db);
    }
    let ctx = HttpContext::new(&config, rt.tokens.clone());
    let health = rt.health(dbs);
    let (client_listen, federation_listen) = (config.global.client_listen, config.global.federation_listen);
    let listeners = if client_listen == federation_listen {
        // Small deployments and SyTest give both APIs one address.
        vec![Listen { addr: federation_listen, router: finish(client.merge(federation), ctx, health), tls }]
    } else {
        vec![
            Listen::plain(client_listen, finish(client, ctx.clone(), health.clone())),
            Listen { addr: federation_listen, router: finish(federation, ctx, health), tls },
        ]
    };
    serve_until_stopped(&rt, listeners).await
}
