//! Batched consumers: the messages that are ready together are handled
//! together, so a consumer can apply them in one transaction, one commit for
//! many messages where an ordered consumer commits each. Stream order holds
//! across instances because only the holder of the durable's lease pulls;
//! within a batch the handler applies the messages in order.
//!
//! A batch that fails is rolled back by its handler and handled again one
//! message at a time, so one bad message costs only itself. A message that
//! must be retried is kept in hand (progress acks extend its deadline) and
//! retried with backoff, holding back those after it, as an ordered consumer
//! does.

use std::{future::Future, time::Duration};

use async_nats::jetstream::{
    AckKind, Message,
    stream::{RawMessageErrorKind, Stream},
};
use futures::{FutureExt, StreamExt};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{
    Bus, StreamMessage,
    consumer::{ConsumerSpec, HandlerError, backoff, declare},
    lease::Lease,
};

/// How long one pull waits for messages: a lease holder whose lease is lost
/// stops asking within this.
const PULL_EXPIRES: Duration = Duration::from_secs(1);

/// Runs a batched durable consumer until `shutdown`. At most
/// `spec.max_ack_pending` messages go to one call of `handler`.
pub async fn consume_batches<M, H, F>(
    bus: &Bus,
    spec: ConsumerSpec,
    shutdown: CancellationToken,
    handler: H,
) -> anyhow::Result<()>
where
    M: StreamMessage,
    H: Fn(Vec<M>) -> F,
    F: Future<Output = Result<(), HandlerError>>,
{
    if spec.filter_subject.is_some() {
        anyhow::bail!("{}: a batched consumer reads its whole stream", spec.durable);
    }
    let (mut consumer, label) = declare::<M>(bus, &spec).await?;
    let stream = bus.jetstream().get_stream(bus.stream_name(M::STREAM)).await?;
    let lease_name = format!("{}.{}", M::STREAM.name(), spec.durable);
    let most = usize::try_from(spec.max_ack_pending).unwrap_or(1).max(1);
    let batcher = Batcher { applied: bus.applied_sender(M::STREAM, &spec.durable), label, spec, handler };
    loop {
        let Some(lease) = bus.acquire_lease(&lease_name, &shutdown).await else { return Ok(()) };
        tracing::debug!(consumer = %batcher.label, "pulling: this instance holds the lease");
        // Everything below the ack floor is applied; what a holder that died
        // had in hand above it comes back after its ack deadline, after newer
        // messages would, and is waited for (see `in_order`).
        let mut next = match consumer.info().await {
            Ok(info) => info.ack_floor.stream_sequence + 1,
            Err(e) => {
                tracing::warn!(consumer = %batcher.label, error = %e, "no consumer info; trying again");
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        while lease.held() {
            let mut messages = match consumer.batch().max_messages(most).expires(PULL_EXPIRES).messages().await {
                Ok(messages) => messages,
                Err(e) => {
                    tracing::warn!(consumer = %batcher.label, error = %e, "cannot pull; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            };
            let mut open = true;
            while open {
                let first = tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = lease.lost() => break,
                    next = messages.next() => next,
                };
                let mut batch = match first {
                    Some(Ok(msg)) => vec![msg],
                    Some(Err(e)) => {
                        tracing::warn!(consumer = %batcher.label, error = %e, "pull failed; pulling again");
                        break;
                    }
                    // The pull is complete or expired.
                    None => break,
                };
                // Whatever else has already arrived joins the batch.
                while batch.len() < most {
                    match messages.next().now_or_never() {
                        Some(Some(Ok(msg))) => batch.push(msg),
                        Some(Some(Err(_)) | None) => {
                            open = false;
                            break;
                        }
                        None => break,
                    }
                }
                let (batch, held_back) = batcher.in_order(batch, next, &stream).await;
                if held_back && let Ok(info) = consumer.info().await {
                    // Whatever was acked meanwhile (a holder that was only slow) is not waited for.
                    next = next.max(info.ack_floor.stream_sequence + 1);
                }
                let Some(last) = batch.last().and_then(|msg| msg.info().ok()).map(|info| info.stream_sequence) else {
                    continue;
                };
                if !batcher.settle::<M, F>(batch, &shutdown, &lease).await {
                    break;
                }
                next = next.max(last + 1);
            }
        }
        if shutdown.is_cancelled() {
            return Ok(());
        }
    }
}

/// Whether the stream still holds message `sequence` (errors count as yes:
/// waiting is safe, skipping is not).
async fn still_stored(stream: &Stream, sequence: u64) -> bool {
    match stream.get_raw_message(sequence).await {
        Ok(_) => true,
        Err(e) => e.kind() != RawMessageErrorKind::NoMessageFound,
    }
}

struct Batcher<H> {
    label: String,
    spec: ConsumerSpec,
    handler: H,
    applied: watch::Sender<u64>,
}

struct InHand {
    msg: Message,
    sequence: u64,
    delivered: i64,
}

/// Why a batcher let go of the messages it held.
struct Stopped;

impl<H> Batcher<H> {
    /// The part of `batch` that follows on from what was applied: at the
    /// first message beyond a gap whose messages are still stored (in the
    /// hand of a holder that died, or coming back), the rest is given back
    /// until they have been applied. A gap of messages the stream no longer
    /// holds is passed over.
    async fn in_order(&self, mut batch: Vec<Message>, next: u64, stream: &Stream) -> (Vec<Message>, bool) {
        let mut expected = next;
        for at in 0..batch.len() {
            let Ok(sequence) = batch[at].info().map(|info| info.stream_sequence) else { continue };
            if sequence > expected && still_stored(stream, expected).await {
                tracing::debug!(consumer = %self.label, waiting_for = expected, got = sequence, "holding back messages");
                for later in batch.drain(at..) {
                    let _ = later.ack_with(AckKind::Nak(Some(self.spec.ack_wait))).await;
                }
                return (batch, true);
            }
            expected = expected.max(sequence + 1);
        }
        (batch, false)
    }

    /// Handles and settles a batch; false when it stopped (shutdown or lease
    /// lost) and gave back what it had not settled.
    async fn settle<M, F>(&self, batch: Vec<Message>, shutdown: &CancellationToken, lease: &Lease) -> bool
    where
        M: StreamMessage,
        H: Fn(Vec<M>) -> F,
        F: Future<Output = Result<(), HandlerError>>,
    {
        let mut held = Vec::with_capacity(batch.len());
        for msg in batch {
            let Ok(info) = msg.info() else {
                tracing::error!(consumer = %self.label, "message without delivery info");
                continue;
            };
            let (sequence, delivered) = (info.stream_sequence, info.delivered);
            if let Err(e) = Bus::decode::<M>(&msg.payload) {
                // Not counted as applied: those before it in the batch are not yet.
                tracing::error!(consumer = %self.label, seq = sequence, error = %e, "undecodable message dropped");
                let _ = msg.ack_with(AckKind::Term).await;
                continue;
            }
            held.push(InHand { msg, sequence, delivered });
        }
        if held.len() > 1 {
            match self.run::<M, F>(&held, &held).await {
                Ok(()) => {
                    let (last, rest) = held.split_last().expect("a batch");
                    for one in rest {
                        if let Err(e) = one.msg.ack().await {
                            tracing::warn!(consumer = %self.label, error = %e, "cannot acknowledge");
                        }
                    }
                    self.finish(&last.msg, last.sequence, AckKind::Ack, "ok").await;
                    metrics::counter!("bus_consumed_total", "consumer" => self.label.clone(), "outcome" => "ok")
                        .increment(rest.len() as u64);
                    return true;
                }
                Err(e) => {
                    let e = match e {
                        HandlerError::Retry(e) | HandlerError::Reject(e) => e,
                    };
                    tracing::debug!(consumer = %self.label, error = format!("{e:#}"), "batch failed; one at a time");
                }
            }
        }
        for at in 0..held.len() {
            if self.settle_one::<M, F>(&held[at..], shutdown, lease).await.is_err() {
                for rest in &held[at..] {
                    // Back at once to whoever holds the lease next.
                    let _ = rest.msg.ack_with(AckKind::Nak(None)).await;
                }
                return false;
            }
        }
        true
    }

    /// Handles the first message held, retrying it with backoff; the others
    /// wait behind it.
    async fn settle_one<M, F>(
        &self,
        held: &[InHand],
        shutdown: &CancellationToken,
        lease: &Lease,
    ) -> Result<(), Stopped>
    where
        M: StreamMessage,
        H: Fn(Vec<M>) -> F,
        F: Future<Output = Result<(), HandlerError>>,
    {
        let one = &held[0];
        let mut attempt = one.delivered;
        loop {
            let outcome = self.run::<M, F>(std::slice::from_ref(one), held).await;
            match outcome {
                Ok(()) => {
                    self.finish(&one.msg, one.sequence, AckKind::Ack, "ok").await;
                    return Ok(());
                }
                Err(HandlerError::Retry(e)) if attempt < self.spec.max_deliver => {
                    let delay = backoff(attempt);
                    tracing::warn!(
                        consumer = %self.label, seq = one.sequence, attempt, retry_in = ?delay,
                        error = format!("{e:#}"), "message failed; will retry"
                    );
                    let wait = tokio::time::sleep(delay);
                    tokio::pin!(wait);
                    let mut progress = tokio::time::interval(self.spec.ack_wait / 3);
                    loop {
                        tokio::select! {
                            _ = &mut wait => break,
                            _ = shutdown.cancelled() => return Err(Stopped),
                            _ = lease.lost() => return Err(Stopped),
                            _ = progress.tick() => self.extend(held).await,
                        }
                    }
                    attempt += 1;
                }
                Err(HandlerError::Retry(e) | HandlerError::Reject(e)) => {
                    tracing::error!(
                        consumer = %self.label, seq = one.sequence, attempt,
                        error = format!("{e:#}"), "message dropped: it cannot be processed"
                    );
                    self.finish(&one.msg, one.sequence, AckKind::Term, "dropped").await;
                    return Ok(());
                }
            }
        }
    }

    /// Runs the handler on `batch`, extending the deadline of all in hand meanwhile.
    async fn run<M, F>(&self, batch: &[InHand], in_hand: &[InHand]) -> Result<(), HandlerError>
    where
        M: StreamMessage,
        H: Fn(Vec<M>) -> F,
        F: Future<Output = Result<(), HandlerError>>,
    {
        let values = batch
            .iter()
            .map(|one| Bus::decode::<M>(&one.msg.payload))
            .collect::<Result<Vec<M>, _>>()
            .map_err(|e| HandlerError::Reject(e.into()))?;
        let work = (self.handler)(values);
        tokio::pin!(work);
        let mut progress = tokio::time::interval(self.spec.ack_wait / 3);
        progress.tick().await;
        loop {
            tokio::select! {
                outcome = &mut work => return outcome,
                _ = progress.tick() => self.extend(in_hand).await,
            }
        }
    }

    async fn extend(&self, in_hand: &[InHand]) {
        for one in in_hand {
            if let Err(e) = one.msg.ack_with(AckKind::Progress).await {
                tracing::warn!(consumer = %self.label, error = %e, "cannot extend the ack deadline");
            }
        }
    }

    /// Settles a message for good; a confirmed settlement tells read fences
    /// that everything up to it is applied (acks on one connection arrive in
    /// order).
    async fn finish(&self, msg: &Message, sequence: u64, kind: AckKind, outcome: &'static str) {
        let result = match kind {
            AckKind::Ack => msg.double_ack().await,
            other => msg.ack_with(other).await,
        };
        metrics::counter!("bus_consumed_total", "consumer" => self.label.clone(), "outcome" => outcome).increment(1);
        match result {
            Ok(()) => {
                self.applied.send_if_modified(|seen| std::mem::replace(seen, (*seen).max(sequence)) < sequence);
            }
            // The message comes back after ack_wait; consumers are idempotent.
            Err(e) => tracing::warn!(consumer = %self.label, error = %e, "cannot acknowledge"),
        }
    }
}
