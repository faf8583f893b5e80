//! Delivery to other servers. Each destination has a persisted queue of the
//! events it has to get (filled by the `OutputRoomEvent` consumer), sent as
//! transactions of at most 50 PDUs, one in flight at a time. A destination is
//! served by one instance at a time, the holder of its lease; every instance
//! looks for due destinations, so a dead instance's are taken over within the
//! lease's lifetime. A failing destination is backed off exponentially; when
//! it comes back (or contacts us) with a long queue, it gets only the newest
//! event of each room and fetches the rest itself, instead of the backlog.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use common::{
    Runtime,
    api::federationsender::{HeardFrom, heard_from_subject},
    federation::{self, FederationError},
    storage::now_ms,
};
use futures::StreamExt;
use ruma::{
    MilliSecondsSinceUnixEpoch, OwnedServerName, OwnedTransactionId, ServerName,
    api::federation::transactions::send_transaction_message,
};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use crate::{
    client::{FederationClient, SendError},
    storage::{Backoff, QueueStore, Queued},
};

/// The spec's bound on the PDUs of one transaction.
const MAX_PDUS: i64 = 50;

/// How often every instance looks for destinations with due work: the bound
/// on how long a dead instance's destinations wait for another.
const SCAN_EVERY: Duration = Duration::from_secs(2);

/// The first retry after a failure, doubling up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// A transaction may take this long to be answered; a receiving server
/// fills gaps before it answers.
const SEND_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Clone)]
pub struct Queues(Arc<Inner>);

struct Inner {
    rt: Runtime,
    store: QueueStore,
    client: FederationClient,
    /// Destinations this instance is sending to now.
    active: Mutex<HashSet<OwnedServerName>>,
    /// Wakes the scanner (new events queued).
    scan: Notify,
    /// Wakes a destination's worker waiting out its backoff.
    waiting: Mutex<HashMap<OwnedServerName, Arc<Notify>>>,
}

fn lease_name(destination: &ServerName) -> String {
    let digest = Sha256::digest(destination.as_str().as_bytes());
    format!("federationsender.destination.{}", hex::encode(&digest[..16]))
}

impl Queues {
    pub fn start(rt: &Runtime, store: QueueStore, client: FederationClient) -> Queues {
        let queues = Queues(Arc::new(Inner {
            rt: rt.clone(),
            store,
            client,
            active: Mutex::new(HashSet::new()),
            scan: Notify::new(),
            waiting: Mutex::new(HashMap::new()),
        }));
        rt.spawn("federationsender queue scanner", queues.clone().scan());
        rt.spawn("federationsender heard-from listener", queues.clone().listen());
        queues
    }

    /// New events are queued: look for destinations to serve now.
    pub fn wake(&self) {
        self.0.scan.notify_one();
    }

    async fn scan(self) -> anyhow::Result<()> {
        let shutdown = self.0.rt.shutdown.clone();
        loop {
            match self.0.store.due().await {
                Ok(due) => {
                    for destination in due {
                        self.serve(destination).await;
                    }
                }
                Err(e) => tracing::warn!(error = format!("{e:#}"), "cannot list the destinations with work"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = self.0.scan.notified() => {}
                _ = tokio::time::sleep(SCAN_EVERY) => {}
            }
        }
    }

    /// Starts a worker for the destination unless one runs here already or
    /// another instance holds its lease.
    async fn serve(&self, destination: OwnedServerName) {
        if !self.0.active.lock().expect("not poisoned").insert(destination.clone()) {
            return;
        }
        let lease = match self.0.rt.bus.try_lease(&lease_name(&destination)).await {
            Ok(Some(lease)) => lease,
            Ok(None) => {
                self.0.active.lock().expect("not poisoned").remove(&destination);
                return;
            }
            Err(e) => {
                tracing::warn!(%destination, error = format!("{e:#}"), "cannot take a destination's lease");
                self.0.active.lock().expect("not poisoned").remove(&destination);
                return;
            }
        };
        let queues = self.clone();
        tokio::spawn(async move {
            if let Err(e) = queues.drain(&destination, &lease).await {
                tracing::warn!(%destination, error = format!("{e:#}"), "delivery stopped; it resumes at the next scan");
            }
            queues.0.active.lock().expect("not poisoned").remove(&destination);
            drop(lease);
        });
    }

    /// Sends the destination's queue until it is empty, the lease is lost,
    /// or the process stops.
    async fn drain(&self, destination: &ServerName, lease: &common::bus::Lease) -> anyhow::Result<()> {
        let store = &self.0.store;
        let shutdown = &self.0.rt.shutdown;
        let wake = Arc::new(Notify::new());
        self.0.waiting.lock().expect("not poisoned").insert(destination.to_owned(), wake.clone());
        let result = async {
            while lease.held() && !shutdown.is_cancelled() {
                let backoff = store.backoff(destination).await?;
                let wait = backoff.retry_at_ms - now_ms();
                if wait > 0 {
                    tokio::select! {
                        _ = shutdown.cancelled() => return Ok(()),
                        _ = lease.lost() => return Ok(()),
                        _ = wake.notified() => {}
                        _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
                    }
                    continue;
                }
                if backoff.failures > 0 && store.pending(destination).await? > MAX_PDUS {
                    let dropped = store.compact(destination).await?;
                    tracing::info!(%destination, dropped, "catching up a destination that was away: newest event of each room only");
                }
                let batch = store.next(destination, MAX_PDUS).await?;
                if batch.is_empty() {
                    return Ok(());
                }
                match self.send(destination, &batch).await {
                    Ok(()) => store.sent(destination, &batch).await?,
                    Err(e) => {
                        let failures = backoff.failures + 1;
                        let doublings = (failures - 1).clamp(0, 20) as u32;
                        let delay = FIRST_BACKOFF.saturating_mul(1 << doublings).min(MAX_BACKOFF);
                        tracing::info!(%destination, failures, retry_in = ?delay, error = %e, "a transaction failed");
                        let retry_at_ms = now_ms() + delay.as_millis() as i64;
                        store.failed(destination, Backoff { failures, retry_at_ms }).await?;
                    }
                }
            }
            Ok(())
        }
        .await;
        self.0.waiting.lock().expect("not poisoned").remove(destination);
        result
    }

    /// One transaction. Its id is a digest of what it holds, so a retry of
    /// the same events is recognised by the receiver, and other events never
    /// reuse an id.
    async fn send(&self, destination: &ServerName, batch: &[Queued]) -> Result<(), FederationError> {
        let mut digest = Sha256::new();
        for queued in batch {
            digest.update(queued.event_id.as_str().as_bytes());
            digest.update(b"\n");
        }
        let txn_id: OwnedTransactionId = hex::encode(&digest.finalize()[..12]).into();
        let origin = self.0.rt.config.global.server_name.clone();
        let mut request = send_transaction_message::v1::Request::new(txn_id, origin, MilliSecondsSinceUnixEpoch::now());
        request.pdus = batch
            .iter()
            .filter_map(|queued| serde_json::value::RawValue::from_string(queued.json.clone()).ok())
            .collect();
        let mut outgoing = federation::encode(destination, request)?;
        outgoing.timeout_ms = Some(SEND_TIMEOUT.as_millis() as u64);
        let answer = self.0.client.send(&outgoing).await.map_err(|e| match e {
            SendError::Invalid(message) | SendError::Unreachable(message) => FederationError::Unreachable(message),
        })?;
        if answer.status >= 300 {
            return Err(federation::decode::<send_transaction_message::v1::Response>(answer).err().unwrap_or_else(
                || FederationError::Unreachable(format!("{destination} answered the transaction with a redirect")),
            ));
        }
        // Read leniently: some servers answer `{}` without `pdus`.
        let body: serde_json::Value = serde_json::from_str(&answer.body).unwrap_or_default();
        for (event_id, result) in body["pdus"].as_object().into_iter().flatten() {
            if let Some(error) = result.get("error") {
                // The receiver has decided: sending it again changes nothing.
                tracing::info!(%destination, %event_id, %error, "a destination refused an event");
            }
        }
        Ok(())
    }

    /// A destination contacted us: if it was backed off, try it now.
    async fn listen(self) -> anyhow::Result<()> {
        let rt = &self.0.rt;
        let mut notices = rt.bus.client().subscribe(heard_from_subject(rt.bus.prefix())).await?;
        loop {
            let message = tokio::select! {
                _ = rt.shutdown.cancelled() => return Ok(()),
                message = notices.next() => match message {
                    Some(message) => message,
                    None => return Ok(()),
                },
            };
            let Ok(HeardFrom { server_name }) = serde_json::from_slice::<HeardFrom>(&message.payload) else { continue };
            match self.0.store.retry_now(&server_name).await {
                Ok(true) => {
                    tracing::info!(destination = %server_name, "a backed-off destination is up again");
                    let waiting = self.0.waiting.lock().expect("not poisoned").get(&server_name).cloned();
                    match waiting {
                        Some(wake) => wake.notify_one(),
                        None => self.wake(),
                    }
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = format!("{e:#}"), "cannot reset a destination's backoff"),
            }
        }
    }
}
