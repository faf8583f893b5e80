//! Questions between components: core NATS request/reply on
//! `<prefix>.rpc.<component>.<method>`, answered by whichever instance of the
//! component's queue group is alive.

use std::{future::Future, time::Duration};

use anyhow::Context;
use futures::StreamExt;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use super::Bus;

/// One RPC method: who answers it, and the types of question and answer.
pub trait Rpc {
    const COMPONENT: &'static str;
    const METHOD: &'static str;
    /// Whether a request whose answer was lost may be sent again. Only queries
    /// and idempotent commands may say yes.
    const RETRY: bool;
    type Request: Serialize + DeserializeOwned + Send + Sync + 'static;
    type Response: Serialize + DeserializeOwned + Send + 'static;
}

/// An error the answering component chose to return.
#[derive(Clone, Debug, Serialize, Deserialize, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct RemoteError {
    pub kind: RemoteErrorKind,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum RemoteErrorKind {
    NotFound,
    BadRequest,
    Forbidden,
    Internal,
    /// The access or refresh token is unknown, revoked or expired; `soft`
    /// when the session may be resumed by refreshing or logging in again.
    UnknownToken {
        soft: bool,
    },
    UserDeactivated,
    UserInUse,
    InvalidUsername,
    WeakPassword,
    MissingParam,
    /// Another server could not be asked: not found, unreachable, refused as
    /// private, or it did not answer in time.
    Unreachable,
}

impl RemoteError {
    pub fn new(kind: RemoteErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into() }
    }
}

impl From<anyhow::Error> for RemoteError {
    fn from(e: anyhow::Error) -> Self {
        tracing::error!(error = format!("{e:#}"), "RPC handler failed");
        RemoteError::new(RemoteErrorKind::Internal, "internal error")
    }
}

impl From<sqlx::Error> for RemoteError {
    fn from(e: sqlx::Error) -> Self {
        anyhow::Error::from(e).into()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("no {0} instance answered in time")]
    Timeout(&'static str),
    #[error("no {0} instance is running")]
    Unavailable(&'static str),
    #[error(transparent)]
    Remote(#[from] RemoteError),
    #[error("NATS: {0}")]
    Transport(String),
    #[error("undecodable RPC message: {0}")]
    Decode(String),
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Reply<T> {
    Ok(T),
    Err(RemoteError),
}

fn subject<R: Rpc>(bus: &Bus) -> String {
    format!("{}.rpc.{}.{}", bus.prefix(), R::COMPONENT, R::METHOD)
}

impl Bus {
    /// Asks the component `R::COMPONENT`. When no instance answers (one has just
    /// died, or all are restarting) a retryable request is sent again until the
    /// configured RPC timeout has passed.
    pub async fn call<R: Rpc>(&self, request: &R::Request) -> Result<R::Response, RpcError> {
        self.call_within::<R>(request, self.rpc_timeout()).await
    }

    /// [`Bus::call`] with a budget of its own, for a question whose answer
    /// takes longer than the configured RPC timeout (one that waits on
    /// another server).
    pub async fn call_within<R: Rpc>(&self, request: &R::Request, total: Duration) -> Result<R::Response, RpcError> {
        let payload: bytes::Bytes = serde_json::to_vec(request).map_err(|e| RpcError::Decode(e.to_string()))?.into();
        let subject = subject::<R>(self);
        let deadline = tokio::time::Instant::now() + total;
        // A request that reached an instance as it died is lost; try again
        // after a fraction of the budget rather than spending all of it.
        let attempt_timeout = if R::RETRY { (total / 4).max(Duration::from_millis(500)) } else { total };
        let mut pause = Duration::from_millis(20);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let request = async_nats::Request::new().payload(payload.clone()).timeout(Some(attempt_timeout.min(left)));
            let failure = match self.client().send_request(subject.clone(), request).await {
                Ok(msg) => {
                    return match serde_json::from_slice::<Reply<R::Response>>(&msg.payload) {
                        Ok(Reply::Ok(response)) => Ok(response),
                        Ok(Reply::Err(e)) => Err(RpcError::Remote(e)),
                        Err(e) => Err(RpcError::Decode(e.to_string())),
                    };
                }
                Err(e) => match e.kind() {
                    async_nats::RequestErrorKind::NoResponders => RpcError::Unavailable(R::COMPONENT),
                    async_nats::RequestErrorKind::TimedOut => RpcError::Timeout(R::COMPONENT),
                    _ => RpcError::Transport(e.to_string()),
                },
            };
            let retryable =
                matches!(failure, RpcError::Unavailable(_)) || (R::RETRY && matches!(failure, RpcError::Timeout(_)));
            if !retryable || tokio::time::Instant::now() + pause >= deadline {
                return Err(failure);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }
}

/// Answers `R` in this instance until `shutdown`; requests in hand are
/// answered before it returns.
pub async fn serve<R, H, F>(bus: Bus, shutdown: CancellationToken, handler: H) -> anyhow::Result<()>
where
    R: Rpc,
    H: Fn(R::Request) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Result<R::Response, RemoteError>> + Send + 'static,
{
    let subject = subject::<R>(&bus);
    let queue = format!("{}.rpc.{}", bus.prefix(), R::COMPONENT);
    let mut subscription = bus
        .client()
        .queue_subscribe(subject.clone(), queue)
        .await
        .with_context(|| format!("cannot subscribe to {subject}"))?;
    let tracker = TaskTracker::new();
    loop {
        let msg = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            msg = subscription.next() => match msg {
                Some(msg) => msg,
                None => break,
            },
        };
        let Some(reply_to) = msg.reply.clone() else { continue };
        let handler = handler.clone();
        let client = bus.client().clone();
        tracker.spawn(async move {
            let reply = match Bus::decode::<R::Request>(&msg.payload) {
                Ok(request) => match handler(request).await {
                    Ok(response) => Reply::Ok(response),
                    Err(e) => Reply::Err(e),
                },
                Err(e) => Reply::Err(RemoteError::new(RemoteErrorKind::BadRequest, e.to_string())),
            };
            let outcome = if matches!(reply, Reply::Ok(_)) { "ok" } else { "error" };
            metrics::counter!("rpc_served_total", "method" => R::METHOD, "outcome" => outcome).increment(1);
            match serde_json::to_vec(&reply) {
                Ok(body) => {
                    if let Err(e) = client.publish(reply_to, body.into()).await {
                        tracing::warn!(method = R::METHOD, error = %e, "cannot send RPC reply");
                    }
                }
                Err(e) => tracing::error!(method = R::METHOD, error = %e, "cannot encode RPC reply"),
            }
        });
    }
    let _ = subscription.unsubscribe().await;
    tracker.close();
    tracker.wait().await;
    let _ = bus.client().flush().await;
    Ok(())
}

/// Declares an RPC method: `rpc_method!(Name: "component"."method", retry, Request => Response);`
#[macro_export]
macro_rules! rpc_method {
    ($(#[$doc:meta])* $name:ident: $component:literal . $method:literal, retry = $retry:expr, $req:ty => $resp:ty) => {
        $(#[$doc])*
        pub struct $name;

        impl $crate::bus::Rpc for $name {
            const COMPONENT: &'static str = $component;
            const METHOD: &'static str = $method;
            const RETRY: bool = $retry;
            type Request = $req;
            type Response = $resp;
        }
    };
}
