//! Server discovery: where a server name leads and which name its TLS
//! certificate must be valid for, by the spec's algorithm — IP literal,
//! explicit port, `/.well-known/matrix/server` delegation, SRV
//! (`_matrix-fed._tcp`, then the deprecated `_matrix._tcp`), A/AAAA on 8448.
//! DNS and the well-known fetch sit behind traits, so every decision is
//! tested here without a network.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use common::outbound::is_private;
use futures::future::BoxFuture;
use ruma::{OwnedServerName, ServerName};

/// The port of a server name that names none and has no SRV record.
pub const DEFAULT_PORT: u16 = 8448;

/// Most well-known answers kept in memory; past it, expired ones go first.
const MAX_CACHED_DELEGATIONS: usize = 10_000;

/// One SRV record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SrvRecord {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    /// The target host, without the root's trailing dot; "." when the
    /// service is decidedly not offered (RFC 2782).
    pub target: String,
}

/// The DNS questions discovery asks.
pub trait Dns: Send + Sync {
    /// The A and AAAA addresses of `host`; empty when it has none.
    fn ips<'a>(&'a self, host: &'a str) -> BoxFuture<'a, Result<Vec<IpAddr>, String>>;
    /// The SRV records of `name`; empty when it has none.
    fn srv<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Vec<SrvRecord>, String>>;
}

/// What `https://<host>/.well-known/matrix/server` said.
#[derive(Clone, Debug)]
pub struct WellKnown {
    /// Its `m.server`, when it answered with a usable one.
    pub server: Option<OwnedServerName>,
    /// How long the answer (or its absence) may be kept.
    pub keep: Duration,
}

pub trait WellKnownSource: Send + Sync {
    /// Never fails: an error is an answer without a server, kept for a while.
    fn fetch<'a>(&'a self, host: &'a str) -> BoxFuture<'a, WellKnown>;
}

/// How to reach a server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The URL's host: the name (or IP literal, IPv6 in brackets) the
    /// certificate must be valid for.
    pub tls_name: String,
    /// The Host header the spec asks for at this step.
    pub host_header: String,
    pub via: Via,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Via {
    /// An IP literal: nothing to resolve.
    Address(SocketAddr),
    /// The A/AAAA addresses of `tls_name`, on `port`.
    Host { port: u16, ips: Vec<IpAddr> },
    /// The targets of `tls_name`'s SRV records, in the order to try them.
    Srv(Vec<SocketAddr>),
}

impl Route {
    /// `https://host[:port]`. SRV routes name no port: their addresses carry
    /// the ports, which reqwest keeps only when the URL has none.
    pub fn base_url(&self) -> String {
        match &self.via {
            Via::Address(addr) => format!("https://{}:{}", self.tls_name, addr.port()),
            Via::Host { port, .. } => format!("https://{}:{port}", self.tls_name),
            Via::Srv(_) => format!("https://{}", self.tls_name),
        }
    }
}

/// Splits a server name into host and port, without ruma's `port()`, which
/// panics where the port does not parse (ruma checks it today; this does not
/// rely on that).
fn split(name: &ServerName) -> Result<(&str, Option<u16>), String> {
    let text = name.as_str();
    let end_of_host = match text.find(']') {
        Some(i) => i + 1,
        None => text.find(':').unwrap_or(text.len()),
    };
    let (host, rest) = text.split_at(end_of_host);
    let port = match rest.strip_prefix(':') {
        Some(port) => Some(port.parse().map_err(|_| format!("{text} has an invalid port"))?),
        None => None,
    };
    Ok((host, port))
}

/// The address of an IP literal host (`1.2.3.4`, `[::1]`).
fn ip_literal(host: &str) -> Option<IpAddr> {
    match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse().ok(),
        None => host.parse().ok(),
    }
}

fn refuse_private(ip: IpAddr, allow_private: bool) -> Result<IpAddr, String> {
    if is_private(ip) && !allow_private {
        return Err(format!("refusing to connect to the private address {ip}"));
    }
    Ok(ip)
}

/// The addresses of `host` we may connect to.
pub async fn host_ips(dns: &dyn Dns, host: &str, allow_private: bool) -> Result<Vec<IpAddr>, String> {
    let all = dns.ips(host).await?;
    if all.is_empty() {
        return Err(format!("{host} has no address"));
    }
    let allowed: Vec<IpAddr> = all.iter().copied().filter(|ip| allow_private || !is_private(*ip)).collect();
    if allowed.is_empty() {
        return Err(format!("{host} has only private addresses ({all:?}), refused"));
    }
    Ok(allowed)
}

/// The addresses behind `host`'s SRV records, best first; `None` when it
/// has no record. Priority decides, then the larger weight (a fixed order
/// rather than RFC 2782's weighted draw, so a connection retried goes to the
/// same place).
pub async fn srv_addrs(dns: &dyn Dns, host: &str, allow_private: bool) -> Result<Option<Vec<SocketAddr>>, String> {
    let mut records = dns.srv(&format!("_matrix-fed._tcp.{host}")).await?;
    if records.is_empty() {
        records = dns.srv(&format!("_matrix._tcp.{host}")).await?;
    }
    if records.is_empty() {
        return Ok(None);
    }
    records.sort_by_key(|r| (r.priority, std::cmp::Reverse(r.weight)));
    let mut addrs = Vec::new();
    let mut problems = Vec::new();
    for record in records.iter().filter(|r| r.target != "." && !r.target.is_empty()) {
        match host_ips(dns, &record.target, allow_private).await {
            Ok(ips) => addrs.extend(ips.into_iter().map(|ip| SocketAddr::new(ip, record.port))),
            Err(e) => problems.push(e),
        }
    }
    if addrs.is_empty() {
        let why = if problems.is_empty() { "the service is not offered".to_owned() } else { problems.join("; ") };
        return Err(format!("the SRV records of {host} lead nowhere: {why}"));
    }
    Ok(Some(addrs))
}

/// Finds servers; clones share the well-known cache.
#[derive(Clone)]
pub struct Discovery {
    dns: Arc<dyn Dns>,
    well_known: Arc<dyn WellKnownSource>,
    allow_private: bool,
    /// Host → its delegation and until when it holds. DNS answers are
    /// cached by the resolver itself, under their TTLs.
    delegations: Arc<Mutex<HashMap<String, Delegation>>>,
}

/// A host's well-known delegation (None: it has none) and until when it holds.
type Delegation = (Option<OwnedServerName>, Instant);

impl Discovery {
    pub fn new(dns: Arc<dyn Dns>, well_known: Arc<dyn WellKnownSource>, allow_private: bool) -> Self {
        Self { dns, well_known, allow_private, delegations: Default::default() }
    }

    /// Where `server` is reached, or why it cannot be.
    pub async fn route(&self, server: &ServerName) -> Result<Route, String> {
        let (host, port) = split(server)?;
        if let Some(ip) = ip_literal(host) {
            return self.literal(host, ip, port, server.as_str());
        }
        if let Some(port) = port {
            return self.host(host, port, server.as_str()).await;
        }
        if let Some(delegated) = self.delegation(host).await {
            let (delegated_host, delegated_port) = split(&delegated)?;
            if let Some(ip) = ip_literal(delegated_host) {
                return self.literal(delegated_host, ip, delegated_port, delegated.as_str());
            }
            if let Some(port) = delegated_port {
                return self.host(delegated_host, port, delegated.as_str()).await;
            }
            return self.srv_or_default(delegated_host).await;
        }
        self.srv_or_default(host).await
    }

    fn literal(&self, host: &str, ip: IpAddr, port: Option<u16>, host_header: &str) -> Result<Route, String> {
        let ip = refuse_private(ip, self.allow_private)?;
        Ok(Route {
            tls_name: host.to_owned(),
            host_header: host_header.to_owned(),
            via: Via::Address(SocketAddr::new(ip, port.unwrap_or(DEFAULT_PORT))),
        })
    }

    async fn host(&self, host: &str, port: u16, host_header: &str) -> Result<Route, String> {
        let ips = host_ips(self.dns.as_ref(), host, self.allow_private).await?;
        Ok(Route { tls_name: host.to_owned(), host_header: host_header.to_owned(), via: Via::Host { port, ips } })
    }

    /// SRV, else A/AAAA on the default port; either way the certificate and
    /// the Host header are `host`'s, never the SRV target's.
    async fn srv_or_default(&self, host: &str) -> Result<Route, String> {
        match srv_addrs(self.dns.as_ref(), host, self.allow_private).await? {
            Some(addrs) => Ok(Route { tls_name: host.to_owned(), host_header: host.to_owned(), via: Via::Srv(addrs) }),
            None => self.host(host, DEFAULT_PORT, host).await,
        }
    }

    /// `m.server` of `host`'s well-known, from the cache while it holds.
    async fn delegation(&self, host: &str) -> Option<OwnedServerName> {
        let now = Instant::now();
        if let Some((server, until)) = self.delegations.lock().expect("not poisoned").get(host)
            && *until > now
        {
            return server.clone();
        }
        let answer = self.well_known.fetch(host).await;
        let mut delegations = self.delegations.lock().expect("not poisoned");
        if delegations.len() >= MAX_CACHED_DELEGATIONS {
            delegations.retain(|_, (_, until)| *until > now);
            if delegations.len() >= MAX_CACHED_DELEGATIONS
                && let Some(first) = delegations.keys().next().cloned()
            {
                delegations.remove(&first);
            }
        }
        delegations.insert(host.to_owned(), (answer.server.clone(), now + answer.keep));
        answer.server
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// DNS and well-known answers given by the test; anything else has none.
    #[derive(Default)]
    struct Fake {
        ips: HashMap<String, Vec<IpAddr>>,
        srv: HashMap<String, Vec<SrvRecord>>,
        well_known: HashMap<String, String>,
        well_known_fetches: AtomicUsize,
    }

    impl Fake {
        fn ip(mut self, host: &str, ips: &[&str]) -> Self {
            self.ips.insert(host.into(), ips.iter().map(|ip| ip.parse().unwrap()).collect());
            self
        }
        fn srv(mut self, name: &str, records: &[(u16, u16, u16, &str)]) -> Self {
            let records = records
                .iter()
                .map(|&(priority, weight, port, target)| SrvRecord { priority, weight, port, target: target.into() })
                .collect();
            self.srv.insert(name.into(), records);
            self
        }
        fn delegate(mut self, host: &str, to: &str) -> Self {
            self.well_known.insert(host.into(), to.into());
            self
        }
    }

    impl Dns for Fake {
        fn ips<'a>(&'a self, host: &'a str) -> BoxFuture<'a, Result<Vec<IpAddr>, String>> {
            Box::pin(async move { Ok(self.ips.get(host).cloned().unwrap_or_default()) })
        }
        fn srv<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Vec<SrvRecord>, String>> {
            Box::pin(async move { Ok(self.srv.get(name).cloned().unwrap_or_default()) })
        }
    }

    impl WellKnownSource for Fake {
        fn fetch<'a>(&'a self, host: &'a str) -> BoxFuture<'a, WellKnown> {
            self.well_known_fetches.fetch_add(1, Ordering::SeqCst);
            let server = self.well_known.get(host).and_then(|s| OwnedServerName::try_from(s.as_str()).ok());
            Box::pin(async move { WellKnown { server, keep: Duration::from_secs(3600) } })
        }
    }

    fn discovery(fake: Fake, allow_private: bool) -> (Discovery, Arc<Fake>) {
        let fake = Arc::new(fake);
        (Discovery::new(fake.clone(), fake.clone(), allow_private), fake)
    }

    async fn route(d: &Discovery, name: &str) -> Result<Route, String> {
        d.route(<&ServerName>::try_from(name).unwrap()).await
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    fn host(port: u16, ips: &[&str]) -> Via {
        Via::Host { port, ips: ips.iter().map(|ip| ip.parse().unwrap()).collect() }
    }

    #[tokio::test]
    async fn ip_literals_are_used_as_they_are() {
        let (d, fake) = discovery(Fake::default(), true);
        let r = route(&d, "1.2.3.4").await.unwrap();
        assert_eq!(
            r,
            Route {
                tls_name: "1.2.3.4".into(),
                host_header: "1.2.3.4".into(),
                via: Via::Address(addr("1.2.3.4:8448"))
            }
        );
        assert_eq!(r.base_url(), "https://1.2.3.4:8448");
        let r = route(&d, "[::1]:9000").await.unwrap();
        assert_eq!(
            r,
            Route { tls_name: "[::1]".into(), host_header: "[::1]:9000".into(), via: Via::Address(addr("[::1]:9000")) }
        );
        assert_eq!(r.base_url(), "https://[::1]:9000");
        assert_eq!(fake.well_known_fetches.load(Ordering::SeqCst), 0, "no well-known for a literal");
    }

    #[tokio::test]
    async fn an_explicit_port_goes_straight_to_the_host() {
        let fake = Fake::default().ip("localhost", &["127.0.0.1", "::1"]).delegate("localhost", "elsewhere:1");
        let (d, fake) = discovery(fake, true);
        let r = route(&d, "localhost:8448").await.unwrap();
        assert_eq!(
            r,
            Route {
                tls_name: "localhost".into(),
                host_header: "localhost:8448".into(),
                via: host(8448, &["127.0.0.1", "::1"])
            }
        );
        assert_eq!(r.base_url(), "https://localhost:8448");
        assert_eq!(fake.well_known_fetches.load(Ordering::SeqCst), 0, "an explicit port skips the well-known");
    }

    #[tokio::test]
    async fn delegation_to_a_host_and_port() {
        let fake = Fake::default()
            .delegate("example.org", "matrix.example.org:443")
            .ip("matrix.example.org", &["5.6.7.8"])
            .srv("_matrix-fed._tcp.example.org", &[(0, 0, 9999, "wrong.example.org")]);
        let (d, fake) = discovery(fake, false);
        let r = route(&d, "example.org").await.unwrap();
        assert_eq!(
            r,
            Route {
                tls_name: "matrix.example.org".into(),
                host_header: "matrix.example.org:443".into(),
                via: host(443, &["5.6.7.8"])
            }
        );
        route(&d, "example.org").await.unwrap();
        assert_eq!(fake.well_known_fetches.load(Ordering::SeqCst), 1, "the delegation is cached");
    }

    #[tokio::test]
    async fn delegation_to_a_host_without_port_looks_up_its_srv() {
        let fake = Fake::default()
            .delegate("example.org", "matrix.example.org")
            .srv("_matrix-fed._tcp.matrix.example.org", &[(10, 0, 8443, "backend.example.net")])
            .ip("backend.example.net", &["9.9.9.9"]);
        let (d, _) = discovery(fake, false);
        let r = route(&d, "example.org").await.unwrap();
        // The certificate and Host are the delegated name's, not the SRV target's.
        assert_eq!(
            r,
            Route {
                tls_name: "matrix.example.org".into(),
                host_header: "matrix.example.org".into(),
                via: Via::Srv(vec![addr("9.9.9.9:8443")])
            }
        );
        assert_eq!(r.base_url(), "https://matrix.example.org");
    }

    #[tokio::test]
    async fn delegation_to_an_ip_literal() {
        let fake = Fake::default().delegate("example.org", "[2001:db8::1]");
        let (d, _) = discovery(fake, true);
        let r = route(&d, "example.org").await.unwrap();
        assert_eq!(r.tls_name, "[2001:db8::1]");
        assert_eq!(r.host_header, "[2001:db8::1]");
        assert_eq!(r.via, Via::Address(addr("[2001:db8::1]:8448")));
    }

    #[tokio::test]
    async fn delegation_without_srv_falls_back_to_port_8448() {
        let fake = Fake::default().delegate("example.org", "matrix.example.org").ip("matrix.example.org", &["5.6.7.8"]);
        let (d, _) = discovery(fake, false);
        let r = route(&d, "example.org").await.unwrap();
        assert_eq!(
            r,
            Route {
                tls_name: "matrix.example.org".into(),
                host_header: "matrix.example.org".into(),
                via: host(8448, &["5.6.7.8"])
            }
        );
    }

    #[tokio::test]
    async fn srv_records_are_tried_by_priority_then_weight() {
        let fake = Fake::default()
            .srv(
                "_matrix-fed._tcp.example.org",
                &[(20, 0, 1, "c.example.org"), (10, 1, 2, "b.example.org"), (10, 5, 3, "a.example.org")],
            )
            .srv("_matrix._tcp.example.org", &[(0, 0, 4, "old.example.org")])
            .ip("a.example.org", &["1.1.1.1"])
            .ip("b.example.org", &["2.2.2.2"])
            .ip("c.example.org", &["3.3.3.3"])
            .ip("old.example.org", &["4.4.4.4"]);
        let (d, _) = discovery(fake, false);
        let r = route(&d, "example.org").await.unwrap();
        assert_eq!(r.via, Via::Srv(vec![addr("1.1.1.1:3"), addr("2.2.2.2:2"), addr("3.3.3.3:1")]));
        assert_eq!((r.tls_name.as_str(), r.host_header.as_str()), ("example.org", "example.org"));
    }

    #[tokio::test]
    async fn the_deprecated_srv_name_is_the_last_resort_before_8448() {
        let fake = Fake::default()
            .srv("_matrix._tcp.example.org", &[(0, 0, 4, "old.example.org")])
            .ip("old.example.org", &["4.4.4.4"])
            .ip("example.org", &["8.8.8.8"]);
        let (d, _) = discovery(fake, false);
        assert_eq!(route(&d, "example.org").await.unwrap().via, Via::Srv(vec![addr("4.4.4.4:4")]));
        let (d, _) = discovery(Fake::default().ip("example.org", &["8.8.8.8"]), false);
        assert_eq!(route(&d, "example.org").await.unwrap().via, host(8448, &["8.8.8.8"]));
    }

    #[tokio::test]
    async fn private_addresses_are_refused_unless_allowed() {
        let fake = || {
            Fake::default()
                .ip("inside.example.org", &["10.0.0.1"])
                .ip("mixed.example.org", &["192.168.1.1", "7.7.7.7"])
                .delegate("delegating.example.org", "127.0.0.1:8448")
                .srv("_matrix-fed._tcp.srv.example.org", &[(0, 0, 8448, "inside.example.org")])
        };
        let (d, _) = discovery(fake(), false);
        for name in ["127.0.0.1:8448", "[::1]", "inside.example.org:8448", "delegating.example.org", "srv.example.org"]
        {
            let err = route(&d, name).await.expect_err(name);
            assert!(err.contains("private"), "{name}: {err}");
        }
        assert_eq!(route(&d, "mixed.example.org:1").await.unwrap().via, host(1, &["7.7.7.7"]));
        let (d, _) = discovery(fake(), true);
        for name in ["127.0.0.1:8448", "[::1]", "inside.example.org:8448", "delegating.example.org", "srv.example.org"]
        {
            route(&d, name).await.unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[tokio::test]
    async fn names_that_lead_nowhere_are_errors() {
        let fake = Fake::default().srv("_matrix-fed._tcp.closed.example.org", &[(0, 0, 0, ".")]);
        let (d, _) = discovery(fake, true);
        assert!(route(&d, "nowhere.example.org").await.unwrap_err().contains("no address"));
        assert!(route(&d, "closed.example.org").await.unwrap_err().contains("not offered"));
    }
}
