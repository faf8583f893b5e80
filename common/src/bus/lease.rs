//! Leases: at most one instance holds a named lease at a time. Batched
//! consumers (see `consume_batches`) take one on their durable, so that their
//! batches, many messages in hand at once, are still applied in stream order
//! across instances; federationsender takes one per destination, so that one
//! instance at a time sends to a server.
//!
//! A lease is a key in the deployment's KV bucket whose entries live
//! `LEASE_TTL`; its holder rewrites it every `REFRESH`, each time expecting
//! the revision it last wrote, so a holder that stalls past the TTL finds
//! that it lost the lease at its next refresh. Others try to create the key
//! every `REFRESH` and get it once the holder's entry has expired.

use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream::{
    kv,
    stream::{self, DiscardPolicy, StorageType},
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::Bus;

/// How long a holder that stopped refreshing keeps its lease.
const LEASE_TTL: Duration = Duration::from_secs(3);
const REFRESH: Duration = Duration::from_secs(1);

/// The KV bucket of a deployment's leases.
pub fn lease_bucket(prefix: &str) -> String {
    format!("{prefix}_leases")
}

/// Declares the bucket as the stream KV buckets are (async-nats'
/// `create_key_value` asks for account details nats-server 2.9 answers in
/// another shape).
pub(super) async fn declare_bucket(jetstream: &async_nats::jetstream::Context, prefix: &str) -> anyhow::Result<()> {
    let bucket = lease_bucket(prefix);
    jetstream
        .get_or_create_stream(stream::Config {
            name: format!("KV_{bucket}"),
            subjects: vec![format!("$KV.{bucket}.>")],
            max_messages_per_subject: 1,
            max_age: LEASE_TTL,
            // Leases need not outlive a restart of NATS: holders write them again.
            storage: StorageType::Memory,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: DiscardPolicy::New,
            ..Default::default()
        })
        .await
        .with_context(|| format!("cannot declare the KV bucket {bucket}"))?;
    Ok(())
}

/// A lease this instance holds until it is dropped or lost.
pub struct Lease {
    held: watch::Receiver<bool>,
    release: CancellationToken,
}

impl Lease {
    pub fn held(&self) -> bool {
        *self.held.borrow()
    }

    /// Resolves once the lease is lost (never, while it is refreshed).
    pub async fn lost(&self) {
        let mut held = self.held.clone();
        let _ = held.wait_for(|held| !held).await;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.release.cancel();
    }
}

impl Bus {
    /// Waits until this instance holds the lease `name` (letters, digits,
    /// `-`, `_`, `.`); `None` on shutdown.
    pub async fn acquire_lease(&self, name: &str, shutdown: &CancellationToken) -> Option<Lease> {
        let holder = bytes::Bytes::from(format!("{:016x}", rand::random::<u64>()));
        let mut leases: Option<kv::Store> = None;
        loop {
            match try_acquire(self, &mut leases, name, &holder).await {
                Ok(Some(revision)) => return Some(hold(leases?, name, holder, revision)),
                Ok(None) => {}
                Err(e) => tracing::warn!(lease = name, error = format!("{e:#}"), "cannot take the lease; trying again"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return None,
                _ = tokio::time::sleep(REFRESH) => {}
            }
        }
    }

    /// The lease `name` if no other instance holds it now.
    pub async fn try_lease(&self, name: &str) -> anyhow::Result<Option<Lease>> {
        let holder = bytes::Bytes::from(format!("{:016x}", rand::random::<u64>()));
        let mut leases = None;
        Ok(match try_acquire(self, &mut leases, name, &holder).await? {
            Some(revision) => leases.map(|store| hold(store, name, holder, revision)),
            None => None,
        })
    }
}

/// The revision written when the lease was free, `None` when another holds it.
async fn try_acquire(
    bus: &Bus,
    leases: &mut Option<kv::Store>,
    name: &str,
    holder: &bytes::Bytes,
) -> anyhow::Result<Option<u64>> {
    let store = match leases {
        Some(store) => store,
        None => leases.insert(bus.jetstream().get_key_value(lease_bucket(bus.prefix())).await?),
    };
    match store.create(name, holder.clone()).await {
        Ok(revision) => Ok(Some(revision)),
        Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Keeps the lease written every `REFRESH` until it is released or lost.
fn hold(store: kv::Store, name: &str, holder: bytes::Bytes, mut revision: u64) -> Lease {
    let (held, watch) = watch::channel(true);
    let release = CancellationToken::new();
    let (name, stop) = (name.to_owned(), release.clone());
    tracing::debug!(lease = %name, "lease taken");
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => {
                    // Hand over at once rather than after the TTL.
                    let _ = store.delete_expect_revision(&name, Some(revision)).await;
                    return;
                }
                _ = tokio::time::sleep(REFRESH) => {}
            }
            match store.update(&name, holder.clone(), revision).await {
                Ok(next) => revision = next,
                Err(e) => {
                    tracing::warn!(lease = %name, error = %e, "lease lost");
                    let _ = held.send(false);
                    return;
                }
            }
        }
    });
    Lease { held: watch, release }
}
