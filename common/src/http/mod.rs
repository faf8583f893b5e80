//! What every HTTP listener shares: errors, request parsing, CORS, limits,
//! /health and /metrics.

mod error;
mod ratelimit;
mod ruma;
pub mod tls;
mod xmatrix;

use std::{
    future::Future,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::Arc,
    time::Instant,
};

use axum::{
    Extension, Router,
    extract::{MatchedPath, Request},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use http::{HeaderValue, Method, StatusCode, header};
use tokio_util::sync::CancellationToken;

pub use error::MatrixError;
pub use ratelimit::{RateLimiter, client_address};
pub use ruma::{GuestAllowed, RouteOptions, Ruma, RumaResponse, RumaRouter, TokenUse, read_body};
pub use xmatrix::ServerAuth;

use crate::{auth::TokenCache, config::Config};

/// Per-listener settings the extractor reads from the request extensions.
pub struct HttpContext {
    pub max_body: usize,
    pub limiter: Option<RateLimiter<IpAddr>>,
    /// Resolves access tokens.
    pub tokens: Arc<TokenCache>,
    /// Checks the signatures of server-server requests.
    pub servers: Arc<ServerAuth>,
}

impl HttpContext {
    pub fn new(config: &Config, tokens: Arc<TokenCache>) -> Arc<Self> {
        let limits = &config.global.rate_limits;
        Arc::new(Self {
            max_body: config.global.max_request_bytes,
            limiter: RateLimiter::new(limits.enabled, limits.per_second, limits.burst),
            servers: Arc::new(ServerAuth::new(config.global.server_name.clone(), tokens.bus().clone(), limits.enabled)),
            tokens,
        })
    }

    fn check_rate(&self, client: Option<IpAddr>) -> Result<(), MatrixError> {
        match (&self.limiter, client) {
            (Some(limiter), Some(ip)) => limiter.take(ip).map_err(MatrixError::limit_exceeded),
            _ => Ok(()),
        }
    }
}

/// A readiness check: true when what the component depends on answers.
pub type HealthCheck = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

/// Wraps a listener's routes with the fallbacks, limits and headers every
/// Matrix endpoint needs, and adds /health and /metrics.
pub fn finish(routes: Router, ctx: Arc<HttpContext>, health: HealthCheck) -> Router {
    let max_body = ctx.max_body;
    routes
        .route(
            "/health",
            get(move || {
                let health = health.clone();
                async move {
                    if health().await {
                        (StatusCode::OK, "OK")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "NATS or the database is unreachable")
                    }
                }
            }),
        )
        .route("/metrics", get(|| async { crate::metrics::render() }))
        .fallback(|| async { MatrixError::unrecognized() })
        .method_not_allowed_fallback(|| async { MatrixError::method_not_allowed() })
        .layer(middleware::from_fn(move |req, next| buffer_body(req, next, max_body)))
        .layer(middleware::from_fn(record_metrics))
        .layer(Extension(ctx))
        .layer(middleware::from_fn(cors))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            MatrixError::internal("handler panicked").into_response()
        }))
}

/// Reads the whole body before the handler runs, so a handler that answers
/// without reading it (a 401, a 404) leaves the connection clean for the
/// client's next request: hyper closes a connection whose request body was
/// left unread. A body over the limit is 413; it is still read and dropped
/// when it is at most [`DRAIN_FACTOR`] times the limit, so the connection
/// stays usable, and beyond that the answer says `Connection: close`.
async fn buffer_body(req: Request, next: Next, max_body: usize) -> Response {
    let (parts, body) = req.into_parts();
    let declared =
        parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let drain_limit = max_body.saturating_mul(DRAIN_FACTOR);
    if declared.is_some_and(|len| len > drain_limit as u64) {
        return too_large_closing(max_body);
    }
    let mut body = body.into_data_stream();
    let mut bytes = bytes::BytesMut::new();
    let mut read = 0usize;
    while let Some(chunk) = futures::StreamExt::next(&mut body).await {
        let Ok(chunk) = chunk else {
            return ([(header::CONNECTION, "close")], MatrixError::bad_json("Cannot read the request body"))
                .into_response();
        };
        read += chunk.len();
        if read > drain_limit {
            return too_large_closing(max_body);
        }
        if read <= max_body {
            bytes.extend_from_slice(&chunk);
        }
    }
    if read > max_body {
        return MatrixError::too_large(max_body).into_response();
    }
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes.freeze()))).await
}

/// How many times the body limit a refused body may be before it is no
/// longer read to keep the connection (beyond it, reading costs more than a
/// new connection).
const DRAIN_FACTOR: usize = 2;

fn too_large_closing(max_body: usize) -> Response {
    ([(header::CONNECTION, "close")], MatrixError::too_large(max_body)).into_response()
}

/// The CORS headers the spec asks every response to carry, and preflights answered directly.
async fn cors(req: Request, next: Next) -> Response {
    let mut response =
        if req.method() == Method::OPTIONS { StatusCode::NO_CONTENT.into_response() } else { next.run(req).await };
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, PUT, DELETE, OPTIONS"));
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("X-Requested-With, Content-Type, Authorization"),
    );
    response
}

async fn record_metrics(req: Request, next: Next) -> Response {
    let route =
        req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().to_string();
    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// An address to serve routes on: plain HTTP, or HTTPS with `tls`.
pub struct Listen {
    pub addr: SocketAddr,
    pub router: Router,
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Listen {
    pub fn plain(addr: SocketAddr, router: Router) -> Self {
        Self { addr, router, tls: None }
    }
}

/// Serves until `shutdown`, then finishes the requests in hand. Handlers
/// see the TCP peer as `ConnectInfo<SocketAddr>`, over TLS or not.
pub async fn serve(Listen { addr, router, tls }: Listen, shutdown: CancellationToken) -> anyhow::Result<()> {
    use anyhow::Context;
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    let stopped = async move { shutdown.cancelled().await };
    let served = match tls {
        None => {
            tracing::info!(%addr, "listening");
            axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
                .with_graceful_shutdown(stopped)
                .await
        }
        Some(config) => {
            tracing::info!(%addr, "listening (HTTPS)");
            let listener = tls::TlsListener::new(listener, config)?;
            // axum provides ConnectInfo only for the listeners it knows, so
            // it is added here as into_make_service_with_connect_info does.
            let make_service = tower::service_fn(move |incoming: axum::serve::IncomingStream<'_, tls::TlsListener>| {
                let peer = axum::extract::ConnectInfo(*incoming.remote_addr());
                std::future::ready(Ok::<_, std::convert::Infallible>(tower::Layer::layer(
                    &Extension(peer),
                    router.clone(),
                )))
            });
            axum::serve(listener, make_service).with_graceful_shutdown(stopped).await
        }
    };
    served.with_context(|| format!("HTTP server on {addr} failed"))
}
