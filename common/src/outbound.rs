//! The HTTP client for requests to other servers (federation, push gateways).
//! Addresses on loopback, private and other non-public ranges are refused
//! unless the config allows them, so a remote party cannot make us probe our
//! own network. HTTPS is rustls on the ring provider, trusting the system's
//! CA certificates plus those of `global.outbound_trusted_ca_files`.

use std::{
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::{Context, bail};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use rustls::{
    RootCertStore,
    pki_types::{CertificateDer, pem::PemObject},
};

use crate::config::Global;

/// Whether an address is outside the public internet.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
                || (a == 198 && (18..20).contains(&b)) // benchmarking
                || a >= 240
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_private(IpAddr::V4(v4)),
            None => {
                v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || v6.is_unique_local()
                    || v6.is_unicast_link_local()
            }
        },
    }
}

/// Resolves names, dropping the addresses we may not connect to.
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.filter(|addr| !is_private(addr.ip())).collect();
            if addrs.is_empty() {
                return Err(format!("{host} has no public address").into());
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Reads the CA certificates of one PEM file, checking that each can be a
/// trust anchor; a file without any certificate is an error.
pub fn load_ca_file(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let pem = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{} is not valid PEM", path.display()))?;
    if certs.is_empty() {
        bail!("{} holds no PEM CERTIFICATE", path.display());
    }
    for (i, cert) in certs.iter().enumerate() {
        RootCertStore::empty()
            .add(cert.clone())
            .with_context(|| format!("certificate {} of {} cannot be a trust anchor", i + 1, path.display()))?;
    }
    Ok(certs)
}

/// The system's CA certificates plus those of `ca_files`.
fn trusted_roots(ca_files: &[PathBuf]) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::warn!(%error, "cannot load some of the system's CA certificates");
    }
    let (_, unusable) = roots.add_parsable_certificates(native.certs);
    if unusable > 0 {
        tracing::warn!(unusable, "some of the system's CA certificates cannot be trust anchors; ignored");
    }
    for path in ca_files {
        for cert in load_ca_file(path)? {
            roots.add(cert)?;
        }
    }
    if roots.is_empty() {
        tracing::warn!("no trusted CA certificate: every outbound HTTPS request will fail");
    }
    Ok(roots)
}

/// The client every outbound request goes through: build it once per
/// component with [`OutboundClient::new`] and clone it (clones share the
/// connection pool).
#[derive(Clone)]
pub struct OutboundClient {
    client: reqwest::Client,
    allow_private: bool,
}

impl OutboundClient {
    /// The client the config asks for: `allow_private_outbound` and
    /// `outbound_trusted_ca_files` of `global`.
    pub fn new(global: &Global) -> anyhow::Result<Self> {
        Self::build(global.allow_private_outbound, &global.outbound_trusted_ca_files, None)
    }

    /// The same client, resolving names with `resolver`: for a caller that
    /// decides itself where a name leads (federation's server discovery).
    /// The resolver must drop private addresses itself unless
    /// `allow_private_outbound`; literal addresses are still checked here.
    pub fn with_resolver(global: &Global, resolver: Arc<dyn Resolve>) -> anyhow::Result<Self> {
        Self::build(global.allow_private_outbound, &global.outbound_trusted_ca_files, Some(resolver))
    }

    fn build(allow_private: bool, ca_files: &[PathBuf], resolver: Option<Arc<dyn Resolve>>) -> anyhow::Result<Self> {
        // The provider is given here rather than installed as the process
        // default: nothing global to race on or to find already taken when
        // several components build clients in one process.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(trusted_roots(ca_files)?)
            .with_no_client_auth();
        // reqwest speaks HTTP/1.1 only here (no http2 feature).
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let mut builder = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            // A redirect could lead to an address we would refuse.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("homeserver/", env!("CARGO_PKG_VERSION")));
        if let Some(resolver) = resolver {
            builder = builder.dns_resolver(resolver);
        } else if !allow_private {
            builder = builder.dns_resolver(Arc::new(PublicOnly));
        }
        Ok(Self { client: builder.build()?, allow_private })
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends a request built with [`OutboundClient::client`].
    pub async fn execute(&self, request: reqwest::Request) -> anyhow::Result<reqwest::Response> {
        // Literal addresses never reach the resolver, so they are checked here.
        if !self.allow_private
            && let Some(host) = request.url().host_str()
            && let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>()
            && is_private(ip)
        {
            bail!("refusing to connect to the private address {ip}");
        }
        Ok(self.client.execute(request).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_ranges() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888", "100.128.0.1"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }

    /// A one-shot HTTP server on loopback that answers 200.
    async fn local_server() -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = socket.read(&mut buf).await;
                let _ = socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn private_destinations_are_refused_unless_allowed() {
        let addr = local_server().await;
        let refusing = OutboundClient::build(false, &[], None).unwrap();
        for scheme in ["http", "https"] {
            for url in [format!("{scheme}://{addr}/"), format!("{scheme}://localhost:{}/", addr.port())] {
                let request = refusing.client().get(&url).build().unwrap();
                let err = refusing.execute(request).await.expect_err(&format!("{url} must be refused"));
                let err = format!("{err:#}");
                assert!(err.contains("private address") || err.contains("no public address"), "{url}: {err}");
            }
        }
        let allowing = OutboundClient::build(true, &[], None).unwrap();
        let request = allowing.client().get(format!("http://localhost:{}/", addr.port())).build().unwrap();
        assert_eq!(allowing.execute(request).await.unwrap().status(), 200);
    }

    #[test]
    fn ca_files_must_hold_usable_certificates() {
        let dir = std::env::temp_dir().join(format!("outbound-ca-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        let not_pem = dir.join("not.pem");
        std::fs::write(&not_pem, "just text\n").unwrap();
        let bad_der = dir.join("bad.pem");
        std::fs::write(&bad_der, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").unwrap();
        for (path, expected) in
            [(&missing, "cannot read"), (&not_pem, "no PEM CERTIFICATE"), (&bad_der, "cannot be a trust anchor")]
        {
            let err = format!("{:#}", load_ca_file(path).unwrap_err());
            assert!(err.contains(expected) && err.contains(&path.display().to_string()), "{err}");
            assert!(OutboundClient::build(true, std::slice::from_ref(path), None).is_err());
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
