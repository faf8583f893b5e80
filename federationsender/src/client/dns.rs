//! DNS for discovery (hickory, with its TTL-bound cache), and the two
//! resolvers reqwest connects through: one for routes on a host's own
//! A/AAAA addresses, one for routes through its SRV records. Two clients
//! rather than one, because the same host can be reached both ways (as
//! `host:port`, and as a server name with SRV records) and reqwest's
//! resolver is given the name alone.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use futures::future::BoxFuture;
use hickory_resolver::{
    TokioResolver,
    config::ResolverConfig,
    net::{NetError, runtime::TokioRuntimeProvider},
    proto::rr::{RData, RecordType},
};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::discovery::{Dns, SrvRecord, host_ips, srv_addrs};

/// The system's resolver configuration (`/etc/resolv.conf`, hosts file).
pub struct SystemDns {
    resolver: TokioResolver,
}

impl SystemDns {
    pub fn new() -> anyhow::Result<Self> {
        let builder = match TokioResolver::builder_tokio() {
            Ok(builder) => builder,
            Err(error) => {
                // Rather than some public resolver of hickory's choosing:
                // IP literals and the hosts file still work.
                tracing::warn!(%error, "no system DNS configuration: only IP literals and the hosts file resolve");
                TokioResolver::builder_with_config(
                    ResolverConfig::from_parts(None, Vec::new(), Vec::new()),
                    TokioRuntimeProvider::default(),
                )
            }
        };
        Ok(Self { resolver: builder.build()? })
    }
}

fn is_absent(e: &NetError) -> bool {
    e.is_no_records_found() || e.is_nx_domain()
}

impl Dns for SystemDns {
    fn ips<'a>(&'a self, host: &'a str) -> BoxFuture<'a, Result<Vec<IpAddr>, String>> {
        Box::pin(async move {
            match self.resolver.lookup_ip(host).await {
                Ok(found) => Ok(found.iter().collect()),
                Err(e) if is_absent(&e) => Ok(Vec::new()),
                Err(e) => Err(format!("cannot resolve {host}: {e}")),
            }
        })
    }

    fn srv<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Vec<SrvRecord>, String>> {
        Box::pin(async move {
            let found = match self.resolver.lookup(name, RecordType::SRV).await {
                Ok(found) => found,
                Err(e) if is_absent(&e) => return Ok(Vec::new()),
                Err(e) => return Err(format!("cannot look up {name}: {e}")),
            };
            Ok(found
                .answers()
                .iter()
                .filter_map(|record| match &record.data {
                    RData::SRV(srv) => Some(SrvRecord {
                        priority: srv.priority,
                        weight: srv.weight,
                        port: srv.port,
                        target: srv.target.to_ascii().trim_end_matches('.').to_owned(),
                    }),
                    _ => None,
                })
                .collect())
        })
    }
}

fn addrs(found: Vec<SocketAddr>) -> Addrs {
    Box::new(found.into_iter())
}

/// For URLs `https://host:port`: the host's own addresses (the port is the URL's).
pub struct HostResolver {
    pub dns: Arc<dyn Dns>,
    pub allow_private: bool,
}

impl Resolve for HostResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let (dns, allow_private) = (self.dns.clone(), self.allow_private);
        Box::pin(async move {
            let ips = host_ips(dns.as_ref(), name.as_str(), allow_private).await?;
            Ok(addrs(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)).collect()))
        })
    }
}

/// For URLs `https://host` of SRV routes: the targets, with their ports.
pub struct SrvResolver {
    pub dns: Arc<dyn Dns>,
    pub allow_private: bool,
}

impl Resolve for SrvResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let (dns, allow_private) = (self.dns.clone(), self.allow_private);
        Box::pin(async move {
            let host = name.as_str();
            match srv_addrs(dns.as_ref(), host, allow_private).await? {
                Some(found) => Ok(addrs(found)),
                None => Err(format!("{host} no longer has SRV records").into()),
            }
        })
    }
}
