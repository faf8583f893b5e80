//! Reading what components publish, as another component would.

use std::time::Duration;

use serde_json::Value;

use crate::Deployment;

/// Reads the JetStream stream `stream` from its first message, with an
/// ordered consumer, until a message satisfies `wanted`; returns every
/// message read, the match last. Panics after a deadline.
pub async fn read_until(
    deployment: &Deployment,
    stream: &str,
    what: &str,
    wanted: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    use async_nats::jetstream::consumer::{DeliverPolicy, pull::OrderedConfig};
    use futures::StreamExt;

    let bus = deployment.bus().await;
    let handle = bus.jetstream().get_stream(stream).await.unwrap_or_else(|e| panic!("no stream {stream}: {e}"));
    let consumer = handle
        .create_consumer(OrderedConfig { deliver_policy: DeliverPolicy::All, ..Default::default() })
        .await
        .expect("an ordered consumer");
    let mut messages = consumer.messages().await.expect("the consumer's messages");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    let mut last_error = None;
    loop {
        match tokio::time::timeout_at(deadline, messages.next()).await {
            Ok(Some(Ok(message))) => {
                let value: Value = serde_json::from_slice(&message.payload)
                    .unwrap_or_else(|e| panic!("a message on {stream} is not JSON ({e}): {:?}", message.payload));
                let found = wanted(&value);
                seen.push(value);
                if found {
                    return seen;
                }
            }
            // The ordered consumer recreates itself after most errors; keep reading until the deadline.
            Ok(Some(Err(e))) => last_error = Some(e.to_string()),
            Ok(None) | Err(_) => {
                panic!("no message {what} on {stream} within 20s (last error: {last_error:?}); read: {seen:#?}")
            }
        }
    }
}
