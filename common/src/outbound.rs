//! The HTTP client for requests to other servers (federation, push gateways).
//! Addresses on loopback, private and other non-public ranges are refused
//! unless the config allows them, so a remote party cannot make us probe our
//! own network.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use anyhow::bail;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

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

#[derive(Clone)]
pub struct OutboundClient {
    client: reqwest::Client,
    allow_private: bool,
}

impl OutboundClient {
    pub fn new(allow_private: bool) -> anyhow::Result<Self> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            // A redirect could lead to an address we would refuse.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("homeserver/", env!("CARGO_PKG_VERSION")));
        if !allow_private {
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
        let refusing = OutboundClient::new(false).unwrap();
        for url in [format!("http://{addr}/"), format!("http://localhost:{}/", addr.port())] {
            let request = refusing.client().get(&url).build().unwrap();
            assert!(refusing.execute(request).await.is_err(), "{url} must be refused");
        }
        let allowing = OutboundClient::new(true).unwrap();
        let request = allowing.client().get(format!("http://localhost:{}/", addr.port())).build().unwrap();
        assert_eq!(allowing.execute(request).await.unwrap().status(), 200);
    }
}
