//! The one YAML configuration file: a global section plus one section per component.
//!
//! `deploy/homeserver.example.yaml` documents every field; it is rendered from
//! [`TEMPLATE`] by [`render`], and a test keeps the two identical.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
};

use ruma::OwnedServerName;
use serde::{Deserialize, Serialize};

/// The whole configuration file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub global: Global,
    pub clientapi: ClientApi,
    pub roomserver: RoomServer,
    pub syncapi: Component,
    pub federationsender: Component,
    pub federationreceiver: Component,
    pub userapi: UserApi,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Global {
    pub server_name: OwnedServerName,
    pub data_dir: PathBuf,
    pub signing_key_path: PathBuf,
    #[serde(default = "default_key_validity_hours")]
    pub key_validity_hours: u64,
    #[serde(default)]
    pub database: Option<String>,
    pub nats: Nats,
    pub client_listen: SocketAddr,
    pub federation_listen: SocketAddr,
    #[serde(default)]
    pub public_base_url: Option<String>,
    #[serde(default)]
    pub well_known_server: Option<String>,
    #[serde(default)]
    pub allow_private_outbound: bool,
    /// PEM files of CA certificates that outbound HTTPS trusts besides the
    /// system's (federation and push gateways; `--federation-ca`).
    #[serde(default)]
    pub outbound_trusted_ca_files: Vec<PathBuf>,
    /// The PEM certificate chain and private key the federation listener
    /// serves HTTPS with. Unset: it serves plain HTTP, for a TLS-terminating
    /// proxy in front.
    #[serde(default)]
    pub tls_certificate_path: Option<PathBuf>,
    #[serde(default)]
    pub tls_private_key_path: Option<PathBuf>,
    /// Notaries asked for another server's keys when that server cannot
    /// give them itself (`/_matrix/key/v2/query`). Empty: none.
    #[serde(default)]
    pub trusted_key_servers: Vec<OwnedServerName>,
    #[serde(default)]
    pub rate_limits: RateLimits,
    #[serde(default = "default_max_request_bytes")]
    pub max_request_bytes: usize,
    #[serde(default = "default_log_level")]
    pub log_level: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nats {
    /// `None`: `homeserver run` starts its own nats-server under the data directory.
    #[serde(default)]
    pub url: Option<String>,
    pub stream_prefix: String,
    #[serde(default = "default_input_partitions")]
    pub input_partitions: u32,
    #[serde(default = "default_rpc_timeout_ms")]
    pub rpc_timeout_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimits {
    pub enabled: bool,
    pub per_second: f64,
    pub burst: u32,
    #[serde(default = "default_account_per_second")]
    pub account_per_second: f64,
    #[serde(default = "default_account_burst")]
    pub account_burst: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            enabled: true,
            per_second: 10.0,
            burst: 50,
            account_per_second: default_account_per_second(),
            account_burst: default_account_burst(),
        }
    }
}

fn default_account_per_second() -> f64 {
    0.2
}
fn default_account_burst() -> u32 {
    5
}

/// What every component section has: where it listens when run as its own
/// process, and the database it uses when not the global one.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Component {
    pub listen: SocketAddr,
    #[serde(default)]
    pub database: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientApi {
    pub listen: SocketAddr,
    #[serde(default)]
    pub database: Option<String>,
    #[serde(default)]
    pub registration: Registration,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    pub open: bool,
    /// When not empty, registering needs one of these tokens, open or not.
    #[serde(default)]
    pub tokens: Vec<String>,
    #[serde(default)]
    pub guests: bool,
    /// Enables `/_synapse/admin/v1/register` (HMAC-SHA1 with this secret).
    #[serde(default)]
    pub shared_secret: Option<String>,
}

impl Registration {
    /// Whether POST /register may create a (non-guest) account at all.
    pub fn enabled(&self) -> bool {
        self.open || !self.tokens.is_empty()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserApi {
    pub listen: SocketAddr,
    #[serde(default)]
    pub database: Option<String>,
    #[serde(default)]
    pub password_hashing: PasswordHashing,
    #[serde(default)]
    pub password_policy: PasswordPolicy,
    /// Lifetime of access tokens issued with a refresh token (ms).
    #[serde(default = "default_refreshable_token_lifetime_ms")]
    pub refreshable_token_lifetime_ms: u64,
    /// Lifetime of login tokens from POST /login/get_token (ms).
    #[serde(default = "default_login_token_lifetime_ms")]
    pub login_token_lifetime_ms: u64,
}

/// Argon2id parameters for new password hashes; existing hashes keep theirs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordHashing {
    pub memory_kib: u32,
    pub iterations: u32,
}

impl Default for PasswordHashing {
    fn default() -> Self {
        // OWASP's recommendation for Argon2id.
        Self { memory_kib: 19_456, iterations: 2 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordPolicy {
    pub min_length: usize,
    #[serde(default)]
    pub require_digit: bool,
    #[serde(default)]
    pub require_symbol: bool,
    #[serde(default)]
    pub require_lowercase: bool,
    #[serde(default)]
    pub require_uppercase: bool,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_length: 8,
            require_digit: false,
            require_symbol: false,
            require_lowercase: false,
            require_uppercase: false,
        }
    }
}

fn default_refreshable_token_lifetime_ms() -> u64 {
    5 * 60 * 1000
}
fn default_login_token_lifetime_ms() -> u64 {
    2 * 60 * 1000
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomServer {
    pub listen: SocketAddr,
    #[serde(default)]
    pub database: Option<String>,
    /// The version of rooms created without one.
    #[serde(default = "default_room_version")]
    pub default_room_version: ruma::RoomVersionId,
}

fn default_room_version() -> ruma::RoomVersionId {
    ruma::RoomVersionId::V10
}

fn default_key_validity_hours() -> u64 {
    24
}
fn default_max_request_bytes() -> usize {
    8 * 1024 * 1024
}
fn default_log_level() -> String {
    "info".into()
}
fn default_input_partitions() -> u32 {
    8
}
fn default_rpc_timeout_ms() -> u64 {
    10_000
}

/// The components, in the order they start in one process.
pub const COMPONENTS: [&str; 6] =
    ["userapi", "roomserver", "syncapi", "federationsender", "federationreceiver", "clientapi"];

/// A config that cannot be used: which field, and why.
#[derive(Debug, thiserror::Error)]
#[error("invalid config: {field}: {message}")]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

impl ConfigError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new("--config", format!("cannot read {}: {e}", path.display())))?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let de = serde_yaml::Deserializer::from_str(text);
        let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." { "(top level)".to_owned() } else { path };
            ConfigError::new(field, e.into_inner().to_string())
        })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let nats = &self.global.nats;
        if nats.stream_prefix.is_empty()
            || !nats.stream_prefix.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(ConfigError::new(
                "global.nats.stream_prefix",
                "must be non-empty and contain only letters, digits, '_' and '-'",
            ));
        }
        if !(1..=1024).contains(&nats.input_partitions) {
            return Err(ConfigError::new("global.nats.input_partitions", "must be between 1 and 1024"));
        }
        if nats.rpc_timeout_ms == 0 {
            return Err(ConfigError::new("global.nats.rpc_timeout_ms", "must be positive"));
        }
        if let Some(url) = &nats.url
            && !url.starts_with("nats://")
        {
            return Err(ConfigError::new("global.nats.url", "must start with nats://"));
        }
        if self.global.key_validity_hours == 0 {
            return Err(ConfigError::new("global.key_validity_hours", "must be positive"));
        }
        if self.global.max_request_bytes < 65_536 {
            return Err(ConfigError::new("global.max_request_bytes", "must be at least 65536"));
        }
        let limits = &self.global.rate_limits;
        if limits.enabled && (limits.per_second <= 0.0 || limits.burst == 0) {
            return Err(ConfigError::new("global.rate_limits", "per_second and burst must be positive when enabled"));
        }
        if limits.enabled && (limits.account_per_second <= 0.0 || limits.account_burst == 0) {
            return Err(ConfigError::new(
                "global.rate_limits",
                "account_per_second and account_burst must be positive when enabled",
            ));
        }
        let hashing = &self.userapi.password_hashing;
        if hashing.memory_kib < 8 {
            return Err(ConfigError::new("userapi.password_hashing.memory_kib", "must be at least 8"));
        }
        if hashing.iterations == 0 {
            return Err(ConfigError::new("userapi.password_hashing.iterations", "must be positive"));
        }
        if self.userapi.refreshable_token_lifetime_ms == 0 {
            return Err(ConfigError::new("userapi.refreshable_token_lifetime_ms", "must be positive"));
        }
        if self.userapi.login_token_lifetime_ms == 0 {
            return Err(ConfigError::new("userapi.login_token_lifetime_ms", "must be positive"));
        }
        if self.clientapi.registration.shared_secret.as_deref().is_some_and(str::is_empty) {
            return Err(ConfigError::new("clientapi.registration.shared_secret", "must not be empty"));
        }
        if !crate::api::roomserver::SUPPORTED_ROOM_VERSIONS.contains(&self.roomserver.default_room_version.as_str()) {
            return Err(ConfigError::new("roomserver.default_room_version", "is not a supported room version"));
        }
        if let Some(url) = &self.global.public_base_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(ConfigError::new("global.public_base_url", "must be an http:// or https:// URL"));
        }
        if let Some(server) = &self.global.well_known_server
            && ruma::ServerName::parse(server).is_err()
        {
            return Err(ConfigError::new("global.well_known_server", "must be host or host:port"));
        }
        self.global.tls_server_config()?;
        for path in &self.global.outbound_trusted_ca_files {
            crate::outbound::load_ca_file(path)
                .map_err(|e| ConfigError::new("global.outbound_trusted_ca_files", format!("{e:#}")))?;
        }
        if let Some(url) = &self.global.database {
            check_database_url("global.database", url)?;
        }
        for name in COMPONENTS {
            let field = format!("{name}.database");
            match self.component_database(name) {
                Some(url) => check_database_url(&field, url)?,
                None => {
                    return Err(ConfigError::new(field, "no database: set global.database or this component's own"));
                }
            }
        }
        tracing_subscriber::EnvFilter::try_new(&self.global.log_level)
            .map_err(|e| ConfigError::new("global.log_level", e.to_string()))?;
        crate::keys::SigningKey::load(&self.global.signing_key_path)
            .map_err(|e| ConfigError::new("global.signing_key_path", format!("{e:#}")))?;
        Ok(())
    }

    /// The database URL a component uses: its own, else the global one.
    pub fn component_database(&self, component: &str) -> Option<&str> {
        let own = match component {
            "clientapi" => &self.clientapi.database,
            "roomserver" => &self.roomserver.database,
            "syncapi" => &self.syncapi.database,
            "federationsender" => &self.federationsender.database,
            "federationreceiver" => &self.federationreceiver.database,
            "userapi" => &self.userapi.database,
            _ => return None,
        };
        own.as_deref().or(self.global.database.as_deref())
    }

    /// Where a component listens when it runs as its own process.
    pub fn component_listen(&self, component: &str) -> Option<SocketAddr> {
        Some(match component {
            "clientapi" => self.clientapi.listen,
            "roomserver" => self.roomserver.listen,
            "syncapi" => self.syncapi.listen,
            "federationsender" => self.federationsender.listen,
            "federationreceiver" => self.federationreceiver.listen,
            "userapi" => self.userapi.listen,
            _ => return None,
        })
    }

    /// Reads one value by its dotted path (`global.client_listen`), for scripts.
    pub fn value_at(&self, dotted: &str) -> Option<String> {
        let mut value = serde_json::to_value(self).ok()?;
        for part in dotted.split('.') {
            value = value.get(part)?.clone();
        }
        Some(match value {
            serde_json::Value::String(s) => s,
            serde_json::Value::Null => String::new(),
            other => other.to_string(),
        })
    }
}

impl Global {
    /// What the federation listener serves HTTPS with; `None` when it serves
    /// plain HTTP. Built from the files each time: call it once, at start.
    pub fn tls_server_config(&self) -> Result<Option<Arc<rustls::ServerConfig>>, ConfigError> {
        load_tls(self.tls_certificate_path.as_deref(), self.tls_private_key_path.as_deref())
    }
}

/// The TLS server config from a certificate chain and a key file, both or
/// neither; an error names the field of the file at fault.
pub fn load_tls(cert: Option<&Path>, key: Option<&Path>) -> Result<Option<Arc<rustls::ServerConfig>>, ConfigError> {
    use crate::http::tls::{TlsFile, server_config};
    const CERT: &str = "global.tls_certificate_path";
    const KEY: &str = "global.tls_private_key_path";
    match (cert, key) {
        (None, None) => Ok(None),
        (Some(_), None) => Err(ConfigError::new(KEY, format!("must be set when {CERT} is"))),
        (None, Some(_)) => Err(ConfigError::new(CERT, format!("must be set when {KEY} is"))),
        (Some(cert), Some(key)) => server_config(cert, key).map(Some).map_err(|e| {
            let field = match e.file {
                TlsFile::Certificate => CERT,
                TlsFile::PrivateKey => KEY,
            };
            ConfigError::new(field, e.message)
        }),
    }
}

fn check_database_url(field: &str, url: &str) -> Result<(), ConfigError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") || url.starts_with("sqlite:") {
        Ok(())
    } else {
        Err(ConfigError::new(field, "must be a postgres:// or sqlite:// URL"))
    }
}

/// What `homeserver generate-config` was asked for.
pub struct GenerateOptions {
    pub server_name: String,
    pub data_dir: PathBuf,
    pub client_listen: SocketAddr,
    pub federation_listen: SocketAddr,
    pub database: Option<String>,
    pub nats: Option<String>,
    pub stream_prefix: String,
    pub open_registration: bool,
    /// The secret of shared-secret registration.
    pub shared_secret: String,
    pub rate_limits: bool,
    pub allow_private_outbound: bool,
    /// The certificate chain and key the federation listener serves HTTPS
    /// with (absolute paths); `None`: plain HTTP.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// CA certificate files outbound HTTPS trusts besides the system's.
    pub trusted_ca_files: Vec<PathBuf>,
    /// First port of the range the per-component listeners use.
    pub component_base_port: u16,
}

/// The commented template of the config file; `{name}` marks a value.
pub const TEMPLATE: &str = include_str!("config_template.yaml");

/// Renders a complete, commented config.
pub fn render(o: &GenerateOptions) -> String {
    let dir = o.data_dir.display().to_string();
    let global_db = match &o.database {
        Some(url) => format!("database: \"{url}\""),
        None => "# database: postgres://user@host/dbname   (unset: each component has its own SQLite file)".to_owned(),
    };
    let nats = match &o.nats {
        Some(url) => format!("url: \"{url}\""),
        None => "# url: nats://127.0.0.1:4222   (unset: `homeserver run` starts its own nats-server)".to_owned(),
    };
    let (tls_certificate, tls_key) = match &o.tls {
        Some((cert, key)) => (
            format!("tls_certificate_path: {}", yaml_string(cert)),
            format!("tls_private_key_path: {}", yaml_string(key)),
        ),
        None => (
            "# tls_certificate_path: /etc/ssl/homeserver/fullchain.pem".to_owned(),
            "# tls_private_key_path: /etc/ssl/homeserver/privkey.pem".to_owned(),
        ),
    };
    let trusted_ca_files =
        format!("[{}]", o.trusted_ca_files.iter().map(|path| yaml_string(path)).collect::<Vec<_>>().join(", "));
    let mut out = TEMPLATE
        .replace("{server_name}", &o.server_name)
        .replace("{data_dir}", &dir)
        .replace("{global_database}", &global_db)
        .replace("{nats_url}", &nats)
        .replace("{stream_prefix}", &o.stream_prefix)
        .replace("{client_listen}", &o.client_listen.to_string())
        .replace("{federation_listen}", &o.federation_listen.to_string())
        .replace("{allow_private_outbound}", &o.allow_private_outbound.to_string())
        .replace("{tls_certificate_path}", &tls_certificate)
        .replace("{tls_private_key_path}", &tls_key)
        .replace("{outbound_trusted_ca_files}", &trusted_ca_files)
        .replace("{rate_limits}", &o.rate_limits.to_string())
        .replace("{open_registration}", &o.open_registration.to_string())
        .replace("{shared_secret}", &o.shared_secret);
    let host = o.client_listen.ip();
    for (i, c) in COMPONENTS.iter().enumerate() {
        let listen = SocketAddr::new(host, o.component_base_port + i as u16);
        out = out
            .replace(&format!("{{{c}_listen}}"), &listen.to_string())
            .replace(&format!("{{{c}_database}}"), &component_database(o, &dir, c));
    }
    out
}

/// A path as a YAML scalar that reads back as exactly that path: JSON's
/// double-quoted strings are YAML's too.
fn yaml_string(path: &Path) -> String {
    serde_json::to_string(&path.display().to_string()).expect("a string serializes")
}

fn component_database(o: &GenerateOptions, dir: &str, component: &str) -> String {
    match o.database {
        Some(_) => "# database: (unset: global.database)".to_owned(),
        None => format!("database: \"sqlite://{dir}/{component}.db\""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn example_options() -> GenerateOptions {
        GenerateOptions {
            server_name: "example.org".into(),
            data_dir: "/var/lib/homeserver".into(),
            client_listen: "127.0.0.1:8008".parse().unwrap(),
            federation_listen: "127.0.0.1:8448".parse().unwrap(),
            database: None,
            nats: None,
            stream_prefix: "example_org".into(),
            open_registration: false,
            shared_secret: "CHANGE-ME".into(),
            rate_limits: true,
            allow_private_outbound: false,
            tls: None,
            trusted_ca_files: Vec::new(),
            component_base_port: 7701,
        }
    }

    #[test]
    fn example_file_is_the_rendered_template() {
        let rendered = render(&example_options());
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/homeserver.example.yaml");
        if std::env::var_os("UPDATE_EXAMPLE").is_some() {
            std::fs::write(path, &rendered).unwrap();
        }
        let on_disk = std::fs::read_to_string(path).unwrap();
        assert_eq!(on_disk, rendered, "run with UPDATE_EXAMPLE=1 to refresh deploy/homeserver.example.yaml");
    }

    #[test]
    fn rendered_config_parses_except_for_the_missing_key() {
        let err = Config::parse(&render(&example_options())).unwrap_err();
        assert_eq!(err.field, "global.signing_key_path", "{err}");
    }

    #[test]
    fn errors_name_the_field() {
        let text = render(&example_options()).replace("input_partitions: 8", "input_partitions: many");
        let err = Config::parse(&text).unwrap_err();
        assert_eq!(err.field, "global.nats.input_partitions", "{err}");
        let text = render(&example_options()).replace("server_name: example.org", "server_name: \"bad name!\"");
        let err = Config::parse(&text).unwrap_err();
        assert_eq!(err.field, "global.server_name", "{err}");
        let text = render(&example_options())
            .replace("outbound_trusted_ca_files: []", "outbound_trusted_ca_files: [/nonexistent/ca.pem]");
        let err = Config::parse(&text).unwrap_err();
        assert_eq!(err.field, "global.outbound_trusted_ca_files", "{err}");
        assert!(err.message.contains("/nonexistent/ca.pem"), "{err}");
    }

    /// A self-signed certificate and its key as PEM files in a fresh
    /// directory, plus a second key that is not the certificate's.
    fn tls_files() -> (PathBuf, PathBuf, PathBuf) {
        let dir = std::env::temp_dir().join(format!("hs-config-tls-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["example.org".to_owned()]).unwrap().self_signed(&key).unwrap();
        let paths = (dir.join("cert.pem"), dir.join("key.pem"), dir.join("other.pem"));
        std::fs::write(&paths.0, cert.pem()).unwrap();
        std::fs::write(&paths.1, key.serialize_pem()).unwrap();
        std::fs::write(&paths.2, rcgen::KeyPair::generate().unwrap().serialize_pem()).unwrap();
        paths
    }

    #[test]
    fn tls_files_are_rendered_and_checked() {
        let (cert, key, other_key) = tls_files();
        let with = |cert: &Path, key: &Path| {
            let options = GenerateOptions {
                tls: Some((cert.to_owned(), key.to_owned())),
                trusted_ca_files: vec![cert.to_owned()],
                ..example_options()
            };
            Config::parse(&render(&options)).unwrap_err()
        };
        // The TLS files and the CA list load: what remains is the missing signing key.
        assert_eq!(with(&cert, &key).field, "global.signing_key_path");

        let err = with(&cert, &cert);
        assert_eq!(err.field, "global.tls_private_key_path", "{err}");
        assert!(err.message.contains("no PEM private key"), "{err}");
        let err = with(&cert, &other_key);
        assert_eq!(err.field, "global.tls_private_key_path", "{err}");
        assert!(err.message.contains("is not the key"), "{err}");
        let err = with(&key, &key);
        assert_eq!(err.field, "global.tls_certificate_path", "{err}");
        let err = with(&cert.with_file_name("missing.pem"), &key);
        assert_eq!(err.field, "global.tls_certificate_path", "{err}");
        assert!(err.message.contains("missing.pem"), "{err}");

        let only_cert = render(&example_options()).replace(
            "# tls_certificate_path: /etc/ssl/homeserver/fullchain.pem",
            &format!("tls_certificate_path: {}", cert.display()),
        );
        let err = Config::parse(&only_cert).unwrap_err();
        assert_eq!(err.field, "global.tls_private_key_path", "{err}");
        let _ = std::fs::remove_dir_all(cert.parent().unwrap());
    }
}
