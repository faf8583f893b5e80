//! `homeserver generate-config`.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use common::{config, keys::SigningKey};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    server_name: String,
    #[arg(long)]
    data_dir: PathBuf,
    #[arg(long, default_value = "127.0.0.1:8008")]
    client_listen: SocketAddr,
    #[arg(long, default_value = "127.0.0.1:8448")]
    federation_listen: SocketAddr,
    /// postgres://… ; without it every component keeps a SQLite file under DIR.
    #[arg(long)]
    database: Option<String>,
    /// nats://… ; without it `homeserver run` starts its own nats-server.
    #[arg(long)]
    nats: Option<String>,
    #[arg(long)]
    open_registration: bool,
    #[arg(long)]
    no_rate_limits: bool,
    #[arg(long)]
    allow_private_outbound: bool,
}

pub fn run(args: Args) -> ExitCode {
    if ruma::ServerName::parse(&args.server_name).is_err() {
        eprintln!("--server-name: {:?} is not a valid server name", args.server_name);
        return ExitCode::from(2);
    }
    if let Err(e) = std::fs::create_dir_all(&args.data_dir) {
        eprintln!("--data-dir: cannot create {}: {e}", args.data_dir.display());
        return ExitCode::from(2);
    }
    let data_dir = match std::fs::canonicalize(&args.data_dir) {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("--data-dir: {e}");
            return ExitCode::from(2);
        }
    };
    let key_path = data_dir.join("signing.key");
    if key_path.exists() {
        eprintln!("keeping the existing signing key {}", key_path.display());
    } else if let Err(e) = SigningKey::generate().write_new(&key_path) {
        eprintln!("{e:#}");
        return ExitCode::FAILURE;
    }
    let options = config::GenerateOptions {
        stream_prefix: stream_prefix(&args.server_name),
        server_name: args.server_name,
        data_dir,
        client_listen: args.client_listen,
        federation_listen: args.federation_listen,
        database: args.database,
        nats: args.nats,
        open_registration: args.open_registration,
        shared_secret: common::auth::new_secret("ss"),
        rate_limits: !args.no_rate_limits,
        allow_private_outbound: args.allow_private_outbound,
        component_base_port: 7701,
    };
    let text = config::render(&options);
    // What we print must load; say so now rather than at first start.
    if let Err(e) = config::Config::parse(&text) {
        eprintln!("generated config does not load: {e}");
        return ExitCode::FAILURE;
    }
    print!("{text}");
    ExitCode::SUCCESS
}

/// A prefix unique to this deployment, so that two sharing a NATS server never meet.
fn stream_prefix(server_name: &str) -> String {
    let base: String = server_name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).take(40).collect();
    format!("{base}_{:08x}", rand::random::<u32>())
}
