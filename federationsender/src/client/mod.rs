//! The one way federationsender talks to other servers: a request is
//! routed by server discovery, signed with X-Matrix for its destination,
//! and sent over TLS verified for the name the spec says (system roots plus
//! `outbound_trusted_ca_files`), through clients shared by every request so
//! connections are reused.

mod discovery;
mod dns;
mod well_known;

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use common::{
    Runtime,
    api::federationsender::{FederationRequest, FederationResponse},
    federation::DEFAULT_TIMEOUT,
    keys::SigningKey,
    outbound::OutboundClient,
};
use http::{HeaderValue, Method, header};
use ruma::{
    OwnedServerName,
    api::federation::authentication::{XMatrix, XMatrixSigningInput},
};

use discovery::{Discovery, Via};

/// The largest answer body accepted. An answer to `SendFederationRequest`
/// travels back over NATS, whose messages are at most 1 MiB by default:
/// a larger body is refused as `Unreachable` with a message saying so,
/// rather than failing to reach the asker at all.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The request itself cannot be sent (bad method or URI).
    #[error("{0}")]
    Invalid(String),
    /// The server could not be found or reached, was refused as private,
    /// did not answer in time, or answered too much.
    #[error("{0}")]
    Unreachable(String),
}

/// Sends signed requests to other servers; clones share everything.
#[derive(Clone)]
pub struct FederationClient {
    inner: Arc<Inner>,
}

struct Inner {
    origin: OwnedServerName,
    key: Arc<SigningKey>,
    discovery: Discovery,
    /// For routes to an IP literal or to a host's own addresses.
    host_client: OutboundClient,
    /// For routes through SRV records (see `dns.rs` for why apart).
    srv_client: OutboundClient,
}

impl FederationClient {
    pub fn new(rt: &Runtime) -> anyhow::Result<Self> {
        let global = &rt.config.global;
        let allow_private = global.allow_private_outbound;
        let dns: Arc<dyn discovery::Dns> = Arc::new(dns::SystemDns::new()?);
        let host_client =
            OutboundClient::with_resolver(global, Arc::new(dns::HostResolver { dns: dns.clone(), allow_private }))?;
        let srv_client =
            OutboundClient::with_resolver(global, Arc::new(dns::SrvResolver { dns: dns.clone(), allow_private }))?;
        let well_known = Arc::new(well_known::HttpWellKnown { client: host_client.clone() });
        Ok(Self {
            inner: Arc::new(Inner {
                origin: global.server_name.clone(),
                key: rt.key.clone(),
                discovery: Discovery::new(dns, well_known, allow_private),
                host_client,
                srv_client,
            }),
        })
    }

    /// Sends `request` and returns the answer whatever its status; the
    /// body is at most [`MAX_RESPONSE_BYTES`].
    pub async fn send(&self, request: &FederationRequest) -> Result<FederationResponse, SendError> {
        let destination = &request.destination;
        let method = Method::from_bytes(request.method.as_bytes())
            .map_err(|_| SendError::Invalid(format!("bad method {:?}", request.method)))?;
        if !request.uri.starts_with('/') {
            return Err(SendError::Invalid(format!("the URI {:?} must start with /", request.uri)));
        }
        let unreachable = |why: String| SendError::Unreachable(format!("{destination}: {why}"));
        let route = self.inner.discovery.route(destination).await.map_err(unreachable)?;
        let url = reqwest::Url::parse(&format!("{}{}", route.base_url(), request.uri))
            .map_err(|e| SendError::Invalid(format!("bad URI {:?}: {e}", request.uri)))?;
        // Signed as it goes on the wire, after the URL parser's normalisation.
        let mut uri = url.path().to_owned();
        if let Some(query) = url.query() {
            uri.push('?');
            uri.push_str(query);
        }
        let body = request.body.as_ref().map(|b| Bytes::copy_from_slice(b.get().as_bytes())).unwrap_or_default();
        let authorization = self.authorization(&method, &uri, destination, &body)?;
        let timeout = request.timeout_ms.map(Duration::from_millis).unwrap_or(DEFAULT_TIMEOUT);
        let client = match route.via {
            Via::Srv(_) => &self.inner.srv_client,
            Via::Address(_) | Via::Host { .. } => &self.inner.host_client,
        };
        let host = HeaderValue::from_str(&route.host_header)
            .map_err(|_| SendError::Invalid(format!("bad Host {:?}", route.host_header)))?;
        let mut builder = client
            .client()
            .request(method, url)
            .header(header::HOST, host)
            .header(header::AUTHORIZATION, authorization)
            .timeout(timeout);
        if !body.is_empty() {
            builder = builder.header(header::CONTENT_TYPE, "application/json").body(body);
        }
        let outgoing = builder.build().map_err(|e| SendError::Invalid(e.to_string()))?;
        let mut response = client.execute(outgoing).await.map_err(|e| unreachable(format!("{e:#}")))?;
        let status = response.status().as_u16();
        if response.content_length().is_some_and(|length| length > MAX_RESPONSE_BYTES as u64) {
            return Err(too_large(destination));
        }
        let mut received = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| unreachable(format!("{e:#}")))? {
            if received.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(too_large(destination));
            }
            received.extend_from_slice(&chunk);
        }
        Ok(FederationResponse { status, body: String::from_utf8_lossy(&received).into_owned() })
    }

    fn authorization(
        &self,
        method: &Method,
        uri: &str,
        destination: &ruma::ServerName,
        body: &[u8],
    ) -> Result<HeaderValue, SendError> {
        let signed = http::Request::builder()
            .method(method.clone())
            .uri(uri)
            .body(body)
            .map_err(|e| SendError::Invalid(format!("bad URI {uri:?}: {e}")))?;
        let input = XMatrixSigningInput::new(self.inner.origin.clone(), destination.to_owned(), self.inner.key.pair());
        let xmatrix = XMatrix::sign_http_request(&signed, input)
            .map_err(|e| SendError::Invalid(format!("cannot sign the request: {e}")))?;
        Ok(HeaderValue::from(&xmatrix))
    }
}

fn too_large(destination: &ruma::ServerName) -> SendError {
    SendError::Unreachable(format!(
        "{destination}: the answer is larger than {MAX_RESPONSE_BYTES} bytes, more than an RPC answer can carry"
    ))
}
