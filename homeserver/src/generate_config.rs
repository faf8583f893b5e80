//! `homeserver generate-config`.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::ExitCode,
};

use common::{config, keys::SigningKey};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    server_name: String,
    #[arg(long)]
    data_dir: PathBuf,
    /// ADDR:PORT, or HOST:PORT resolved now (SyTest passes `localhost:8448`).
    #[arg(long, default_value = "127.0.0.1:8008")]
    client_listen: String,
    /// ADDR:PORT, or HOST:PORT resolved now.
    #[arg(long, default_value = "127.0.0.1:8448")]
    federation_listen: String,
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
    /// PEM certificate chain the federation listener serves HTTPS with (needs --tls-key).
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// PEM CA certificates outbound federation trusts besides the system's (repeatable).
    #[arg(long, value_name = "FILE")]
    federation_ca: Vec<PathBuf>,
}

/// A listen flag's address: an IP and port as they are, or a host name and
/// port resolved once, here, so the config names the address it binds
/// (an IPv4 one when the name has both, as `localhost` does: clients that
/// resolve the name try it first).
fn listen_address(flag: &str, value: &str) -> Result<SocketAddr, BadFlag> {
    use std::net::ToSocketAddrs;
    if let Ok(address) = value.parse::<SocketAddr>() {
        return Ok(address);
    }
    let addresses: Vec<SocketAddr> = value
        .to_socket_addrs()
        .map_err(|e| BadFlag(format!("{flag}: {value:?} is not ADDR:PORT or a host name and port that resolves: {e}")))?
        .collect();
    addresses
        .iter()
        .find(|address| address.is_ipv4())
        .or(addresses.first())
        .copied()
        .ok_or_else(|| BadFlag(format!("{flag}: {value:?} resolves to no address")))
}

/// A flag that cannot be used: exit status 2 with one line naming it.
struct BadFlag(String);

pub fn run(args: Args) -> ExitCode {
    match generate(args) {
        Ok(code) => code,
        Err(BadFlag(line)) => {
            eprintln!("{line}");
            ExitCode::from(2)
        }
    }
}

fn generate(args: Args) -> Result<ExitCode, BadFlag> {
    if ruma::ServerName::parse(&args.server_name).is_err() {
        return Err(BadFlag(format!("--server-name: {:?} is not a valid server name", args.server_name)));
    }
    let client_listen = listen_address("--client-listen", &args.client_listen)?;
    let federation_listen = listen_address("--federation-listen", &args.federation_listen)?;
    let tls = tls_files(&args)?;
    let trusted_ca_files =
        args.federation_ca.iter().map(|path| absolute("--federation-ca", path)).collect::<Result<Vec<_>, _>>()?;
    for path in &trusted_ca_files {
        common::outbound::load_ca_file(path).map_err(|e| {
            BadFlag(format!("--federation-ca: invalid config: global.outbound_trusted_ca_files: {e:#}"))
        })?;
    }
    std::fs::create_dir_all(&args.data_dir)
        .map_err(|e| BadFlag(format!("--data-dir: cannot create {}: {e}", args.data_dir.display())))?;
    let data_dir = std::fs::canonicalize(&args.data_dir).map_err(|e| BadFlag(format!("--data-dir: {e}")))?;
    let key_path = data_dir.join("signing.key");
    if key_path.exists() {
        eprintln!("keeping the existing signing key {}", key_path.display());
    } else if let Err(e) = SigningKey::generate().write_new(&key_path) {
        eprintln!("{e:#}");
        return Ok(ExitCode::FAILURE);
    }
    let options = config::GenerateOptions {
        stream_prefix: stream_prefix(&args.server_name),
        server_name: args.server_name,
        data_dir,
        client_listen,
        federation_listen,
        database: args.database,
        nats: args.nats,
        open_registration: args.open_registration,
        shared_secret: common::auth::new_secret("ss"),
        rate_limits: !args.no_rate_limits,
        allow_private_outbound: args.allow_private_outbound,
        tls,
        trusted_ca_files,
        component_base_port: 7701,
    };
    let text = config::render(&options);
    // What we print must load; say so now rather than at first start.
    if let Err(e) = config::Config::parse(&text) {
        eprintln!("generated config does not load: {e}");
        return Ok(ExitCode::FAILURE);
    }
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// --tls-cert and --tls-key, both or neither, as absolute paths of files
/// that load; checked before anything is written.
fn tls_files(args: &Args) -> Result<Option<(PathBuf, PathBuf)>, BadFlag> {
    let (cert, key) = match (&args.tls_cert, &args.tls_key) {
        (None, None) => return Ok(None),
        (Some(_), None) => return Err(BadFlag("--tls-key: required with --tls-cert".into())),
        (None, Some(_)) => return Err(BadFlag("--tls-cert: required with --tls-key".into())),
        (Some(cert), Some(key)) => (absolute("--tls-cert", cert)?, absolute("--tls-key", key)?),
    };
    config::load_tls(Some(&cert), Some(&key)).map_err(|e| {
        let flag = if e.field == "global.tls_certificate_path" { "--tls-cert" } else { "--tls-key" };
        BadFlag(format!("{flag}: {e}"))
    })?;
    Ok(Some((cert, key)))
}

/// The config is read from anywhere, so it names files by absolute path.
/// Symlinks are kept: certificate renewal tools swap what they point to.
fn absolute(flag: &str, path: &Path) -> Result<PathBuf, BadFlag> {
    std::path::absolute(path).map_err(|e| BadFlag(format!("{flag}: {}: {e}", path.display())))
}

/// A prefix unique to this deployment, so that two sharing a NATS server never meet.
fn stream_prefix(server_name: &str) -> String {
    let base: String = server_name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).take(40).collect();
    format!("{base}_{:08x}", rand::random::<u32>())
}
