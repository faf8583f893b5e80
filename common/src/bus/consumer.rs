//! Durable pull consumers: explicit ack after the effect is committed, nak
//! with backoff on failure, termination and an error log after `max_deliver`.

use std::{future::Future, time::Duration};

use anyhow::Context;
use async_nats::jetstream::{
    AckKind,
    consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull},
};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::{Bus, StreamMessage};

/// How a durable consumer is set up.
#[derive(Clone, Debug)]
pub struct ConsumerSpec {
    pub durable: String,
    /// Only messages on this subject (one partition of a partitioned stream).
    pub filter_subject: Option<String>,
    /// 1 keeps the messages strictly in order, across every instance sharing the durable.
    pub max_ack_pending: i64,
    pub max_deliver: i64,
    /// How long a message may be in hand before it is redelivered; a handler
    /// still working sends progress acks, so this bounds how long a dead
    /// instance's message waits to be taken over.
    pub ack_wait: Duration,
}

impl ConsumerSpec {
    pub fn ordered(durable: impl Into<String>) -> Self {
        Self {
            durable: durable.into(),
            filter_subject: None,
            max_ack_pending: 1,
            max_deliver: 10,
            ack_wait: Duration::from_secs(30),
        }
    }
}

/// What went wrong with one message.
#[derive(Debug)]
pub enum HandlerError {
    /// Worth trying again later (database or peer unavailable).
    Retry(anyhow::Error),
    /// Will never succeed: the message is terminated and logged.
    Reject(anyhow::Error),
}

impl From<anyhow::Error> for HandlerError {
    fn from(e: anyhow::Error) -> Self {
        HandlerError::Retry(e)
    }
}

/// Where a message stands in its stream.
#[derive(Clone, Copy, Debug)]
pub struct Delivery {
    pub stream_sequence: u64,
    /// 1 on first delivery.
    pub delivered: i64,
}

/// How long one pull request waits for messages, and how many it asks for.
/// Each request is a batch of its own: nothing outlives it, so a request the
/// client or server loses track of costs at most `PULL_EXPIRES` (async-nats'
/// long-lived pull stream, with idle heartbeats, was seen to stall for 8–10 s
/// after a slow handler made it miss a heartbeat).
const PULL_EXPIRES: Duration = Duration::from_secs(5);
const PULL_BATCH: usize = 64;

/// The delay before a failed message comes back: doubling from one second, at most a minute.
pub(super) fn backoff(delivered: i64) -> Duration {
    let exponent = delivered.clamp(1, 7) - 1;
    Duration::from_secs(1 << exponent).min(Duration::from_secs(60))
}

/// Runs a durable consumer until `shutdown`, handling one message at a time.
/// The message in hand when shutdown comes is finished and acked first.
pub async fn consume<M, H, F>(
    bus: &Bus,
    spec: ConsumerSpec,
    shutdown: CancellationToken,
    handler: H,
) -> anyhow::Result<()>
where
    M: StreamMessage,
    H: Fn(M, Delivery) -> F,
    F: Future<Output = Result<(), HandlerError>>,
{
    let (consumer, label) = declare::<M>(bus, &spec).await?;

    let applied = bus.applied_sender(M::STREAM, &spec.durable);
    loop {
        let batch = consumer.batch().max_messages(PULL_BATCH).expires(PULL_EXPIRES).messages();
        let mut messages = match batch.await {
            Ok(messages) => messages,
            Err(e) => {
                tracing::warn!(consumer = %label, error = %e, "cannot pull; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        loop {
            let next = tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    tracing::debug!(consumer = %label, "stopped");
                    return Ok(());
                }
                next = messages.next() => next,
            };
            match next {
                Some(Ok(msg)) => {
                    if let Some(sequence) = handle_one(&label, &spec, &msg, &handler).await {
                        applied.send_if_modified(|seen| std::mem::replace(seen, (*seen).max(sequence)) < sequence);
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(consumer = %label, error = %e, "pull failed; pulling again");
                    break;
                }
                // The batch is complete or expired.
                None => break,
            }
        }
    }
    tracing::debug!(consumer = %label, "stopped");
    Ok(())
}

/// The durable consumer `spec` describes, and the label its logs carry.
pub(super) async fn declare<M: StreamMessage>(
    bus: &Bus,
    spec: &ConsumerSpec,
) -> anyhow::Result<(PullConsumer, String)> {
    let stream_name = bus.stream_name(M::STREAM);
    let stream =
        bus.jetstream().get_stream(&stream_name).await.with_context(|| format!("stream {stream_name} is missing"))?;
    let config = pull::Config {
        durable_name: Some(spec.durable.clone()),
        filter_subject: spec.filter_subject.clone().unwrap_or_default(),
        ack_policy: AckPolicy::Explicit,
        deliver_policy: DeliverPolicy::All,
        ack_wait: spec.ack_wait,
        max_deliver: spec.max_deliver,
        max_ack_pending: spec.max_ack_pending,
        ..Default::default()
    };
    // Creating again updates the settings a release changed (say, a consumer
    // now batched); a server that cannot change them keeps the old ones.
    let consumer = match stream.create_consumer(config).await {
        Ok(consumer) => consumer,
        Err(e) => {
            let consumer: PullConsumer = stream.get_consumer(&spec.durable).await.map_err(|found| {
                anyhow::anyhow!("cannot create consumer {} on {stream_name}: {e}; {found}", spec.durable)
            })?;
            tracing::warn!(consumer = %spec.durable, stream = %stream_name, error = %e, "the consumer keeps its earlier settings");
            consumer
        }
    };
    Ok((consumer, format!("{stream_name}/{}", spec.durable)))
}

/// Handles one message and settles it; returns its stream sequence when it
/// is done with for good (acked or terminated), as read fences count.
async fn handle_one<M, H, F>(
    label: &str,
    spec: &ConsumerSpec,
    msg: &async_nats::jetstream::Message,
    handler: &H,
) -> Option<u64>
where
    M: StreamMessage,
    H: Fn(M, Delivery) -> F,
    F: Future<Output = Result<(), HandlerError>>,
{
    let delivery = match msg.info() {
        Ok(info) => Delivery { stream_sequence: info.stream_sequence, delivered: info.delivered },
        Err(e) => {
            tracing::error!(consumer = %label, error = %e, "message without delivery info");
            return None;
        }
    };
    let outcome = match Bus::decode::<M>(&msg.payload) {
        Err(e) => Err(HandlerError::Reject(anyhow::Error::new(e).context("undecodable message"))),
        Ok(value) => {
            let work = handler(value, delivery);
            tokio::pin!(work);
            let mut progress = tokio::time::interval(spec.ack_wait / 3);
            progress.tick().await;
            loop {
                tokio::select! {
                    outcome = &mut work => break outcome,
                    _ = progress.tick() => {
                        if let Err(e) = msg.ack_with(AckKind::Progress).await {
                            tracing::warn!(consumer = %label, error = %e, "cannot extend the ack deadline");
                        }
                    }
                }
            }
        }
    };
    let (result, outcome_label) = match outcome {
        Ok(()) => (msg.double_ack().await, "ok"),
        Err(HandlerError::Retry(e)) if delivery.delivered < spec.max_deliver => {
            let delay = backoff(delivery.delivered);
            tracing::warn!(
                consumer = %label, seq = delivery.stream_sequence, delivered = delivery.delivered,
                retry_in = ?delay, error = format!("{e:#}"), "message failed; will retry"
            );
            (msg.ack_with(AckKind::Nak(Some(delay))).await, "retry")
        }
        Err(HandlerError::Retry(e) | HandlerError::Reject(e)) => {
            tracing::error!(
                consumer = %label, seq = delivery.stream_sequence, delivered = delivery.delivered,
                error = format!("{e:#}"), "message dropped: it cannot be processed"
            );
            (msg.ack_with(AckKind::Term).await, "dropped")
        }
    };
    metrics::counter!("bus_consumed_total", "consumer" => label.to_owned(), "outcome" => outcome_label).increment(1);
    match result {
        Ok(()) if outcome_label != "retry" => Some(delivery.stream_sequence),
        Ok(()) => None,
        Err(e) => {
            // The message comes back after ack_wait; consumers are idempotent.
            tracing::warn!(consumer = %label, error = %e, "cannot acknowledge");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_minute() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(6), Duration::from_secs(32));
        assert_eq!(backoff(7), Duration::from_secs(60));
        assert_eq!(backoff(100), Duration::from_secs(60));
    }
}
