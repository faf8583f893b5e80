//! The NATS JetStream bus: streams for facts, request/reply for questions.
//!
//! Every name lives under the deployment's prefix: stream `<prefix>_<Name>`,
//! subjects `<prefix>.<Name>[.<partition>]`, RPC `<prefix>.rpc.<component>.<method>`.

mod batched;
mod consumer;
mod fence;
mod lease;
mod rpc;
mod streams;
mod verdicts;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::{Context, bail};
use async_nats::jetstream::{self, message::PublishMessage};
use serde::{Serialize, de::DeserializeOwned};

pub use batched::consume_batches;
pub use consumer::{ConsumerSpec, Delivery, HandlerError, consume};
pub use lease::{Lease, lease_bucket};
pub use rpc::{RemoteError, RemoteErrorKind, Rpc, RpcError, serve};
pub use streams::Stream;
pub use verdicts::SubmitError;

/// A fact published on a stream.
pub trait StreamMessage: Serialize + DeserializeOwned + Send + Sync + 'static {
    const STREAM: Stream;

    /// The deduplication id: publishing the same fact twice gives the same id,
    /// and JetStream keeps only the first within its duplicate window.
    fn msg_id(&self) -> String;

    /// For partitioned streams, the key (a room id) whose messages stay in order.
    fn routing_key(&self) -> Option<&str> {
        None
    }
}

/// The oldest nats-server this homeserver works with; it uses no 2.10 features.
const MIN_SERVER_VERSION: (u64, u64) = (2, 9);

#[derive(Clone)]
pub struct Bus {
    inner: Arc<Inner>,
}

struct Inner {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    prefix: String,
    partitions: u32,
    rpc_timeout: Duration,
    /// Counts connections made; core NATS messages sent while disconnected are lost.
    connections: Arc<AtomicU64>,
    applied: fence::Applied,
}

impl Bus {
    /// Connects and declares every stream (idempotently).
    pub async fn connect(config: &crate::config::Nats, name: &str) -> anyhow::Result<Bus> {
        let Some(url) = &config.url else { bail!("global.nats.url is not set") };
        let connections = Arc::new(AtomicU64::new(0));
        let counter = connections.clone();
        let client = async_nats::ConnectOptions::new()
            .name(name)
            .event_callback(move |event| {
                let counter = counter.clone();
                async move {
                    if matches!(event, async_nats::Event::Connected) {
                        counter.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(5))
            .connect(url.as_str())
            .await
            .with_context(|| format!("cannot connect to NATS at {url}"))?;
        // retry_on_initial_connect returns before the connection is up; wait for it.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while client.connection_state() != async_nats::connection::State::Connected {
            if tokio::time::Instant::now() > deadline {
                bail!("cannot connect to NATS at {url}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        check_server_version(&client.server_info().version)?;
        if !client.server_info().headers {
            bail!("the NATS server at {url} does not support headers");
        }
        let bus = Bus {
            inner: Arc::new(Inner {
                jetstream: jetstream::new(client.clone()),
                client,
                prefix: config.stream_prefix.clone(),
                partitions: config.input_partitions,
                rpc_timeout: Duration::from_millis(config.rpc_timeout_ms),
                connections,
                applied: Default::default(),
            }),
        };
        bus.declare_streams().await?;
        Ok(bus)
    }

    async fn declare_streams(&self) -> anyhow::Result<()> {
        for stream in Stream::ALL {
            let config = stream.config(&self.inner.prefix);
            let name = config.name.clone();
            self.inner
                .jetstream
                .get_or_create_stream(config)
                .await
                .with_context(|| format!("cannot declare stream {name}; is JetStream enabled (-js)?"))?;
        }
        lease::declare_bucket(&self.inner.jetstream, &self.inner.prefix).await
    }

    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    pub fn partitions(&self) -> u32 {
        self.inner.partitions
    }

    pub fn client(&self) -> &async_nats::Client {
        &self.inner.client
    }

    pub fn jetstream(&self) -> &jetstream::Context {
        &self.inner.jetstream
    }

    pub fn rpc_timeout(&self) -> Duration {
        self.inner.rpc_timeout
    }

    /// Changes whenever the connection to NATS is re-established: whoever
    /// relies on core NATS notifications must assume it missed some.
    pub fn connection_epoch(&self) -> u64 {
        self.inner.connections.load(Ordering::SeqCst)
    }

    pub fn is_connected(&self) -> bool {
        self.inner.client.connection_state() == async_nats::connection::State::Connected
    }

    pub fn stream_name(&self, stream: Stream) -> String {
        format!("{}_{}", self.inner.prefix, stream.name())
    }

    /// The subject of one partition of a partitioned stream.
    pub fn partition_subject(&self, stream: Stream, partition: u32) -> String {
        format!("{}.{}.{partition}", self.inner.prefix, stream.name())
    }

    /// The subject a message goes to.
    pub fn subject_for<M: StreamMessage>(&self, msg: &M) -> String {
        match (M::STREAM.partitioned(), msg.routing_key()) {
            (true, Some(key)) => self.partition_subject(M::STREAM, partition_of(key, self.inner.partitions)),
            _ => format!("{}.{}", self.inner.prefix, M::STREAM.name()),
        }
    }

    /// Publishes a message and waits for JetStream to store it.
    pub async fn publish<M: StreamMessage>(&self, msg: &M) -> anyhow::Result<()> {
        let payload = serde_json::to_vec(msg)?;
        self.publish_raw(self.subject_for(msg), msg.msg_id(), payload.into()).await
    }

    pub(crate) async fn publish_raw(
        &self,
        subject: String,
        msg_id: String,
        payload: bytes::Bytes,
    ) -> anyhow::Result<()> {
        let ack = self
            .inner
            .jetstream
            .send_publish(subject.clone(), PublishMessage::build().payload(payload).message_id(msg_id))
            .await
            .with_context(|| format!("cannot publish to {subject}"))?;
        ack.await.with_context(|| format!("JetStream did not store the message on {subject}"))?;
        metrics::counter!("bus_published_total", "subject" => subject).increment(1);
        Ok(())
    }

    /// Deserialises what another component sent; used by consumers and RPC.
    pub(crate) fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, serde_json::Error> {
        serde_json::from_slice(payload)
    }
}

/// Which partition a routing key belongs to: FNV-1a, stable across processes and releases.
pub fn partition_of(key: &str, partitions: u32) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in key.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % partitions
}

fn check_server_version(version: &str) -> anyhow::Result<()> {
    let mut parts = version.split(['.', '-']).map(|p| p.parse::<u64>().unwrap_or(0));
    let found = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if found < MIN_SERVER_VERSION {
        bail!("nats-server {version} is too old: {}.{} or newer is needed", MIN_SERVER_VERSION.0, MIN_SERVER_VERSION.1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_stable_and_in_range() {
        assert_eq!(partition_of("!room:example.org", 8), partition_of("!room:example.org", 8));
        for i in 0..1000 {
            assert!(partition_of(&format!("!r{i}:x"), 8) < 8);
        }
        // Pinned so that a change of hash, which would reorder rooms' events
        // during an upgrade, cannot go unnoticed.
        assert_eq!(partition_of("!room:example.org", 1024), 991);
    }

    #[test]
    fn old_servers_are_refused() {
        assert!(check_server_version("2.9.10").is_ok());
        assert!(check_server_version("2.10.1").is_ok());
        assert!(check_server_version("2.8.4").is_err());
        assert!(check_server_version("garbage").is_err());
    }
}
