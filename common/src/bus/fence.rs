//! Read-your-writes across instances. A write is answered once its fact is
//! stored in a stream (the roomserver's verdict follows the publish of its
//! output), so a reader that first waits until its consumers have applied
//! everything their streams held when the read began sees every write
//! answered before it, whichever instance applied it.
//!
//! Each instance knows what its own consumers acked (in order: they are
//! ordered consumers); what other instances sharing the durable acked it
//! learns from the consumer's ack floor.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use anyhow::bail;
use serde::Deserialize;
use tokio::sync::watch;

use super::{Bus, Stream};

/// A fence that cannot close this soon (a consumer stuck on a failing
/// message) lets the read go on with what is there, rather than hang.
const FENCE_LIMIT: Duration = Duration::from_secs(5);

/// The longest pause between two looks at another instance's progress.
const MAX_POLL: Duration = Duration::from_millis(16);

/// The highest stream sequence each consumer of this instance has settled.
#[derive(Default)]
pub(super) struct Applied(Mutex<HashMap<String, watch::Sender<u64>>>);

impl Applied {
    fn sender(&self, key: String) -> watch::Sender<u64> {
        self.0.lock().expect("applied lock").entry(key).or_insert_with(|| watch::channel(0).0).clone()
    }
}

#[derive(Deserialize)]
struct StreamInfo {
    state: Option<StreamState>,
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct StreamState {
    last_seq: u64,
}

#[derive(Deserialize)]
struct ConsumerInfo {
    ack_floor: Option<Sequence>,
    #[serde(default)]
    num_pending: u64,
    #[serde(default)]
    num_ack_pending: u64,
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Sequence {
    stream_seq: u64,
}

impl Bus {
    pub(super) fn applied_sender(&self, stream: Stream, durable: &str) -> watch::Sender<u64> {
        self.inner.applied.sender(format!("{}/{durable}", self.stream_name(stream)))
    }

    /// Waits until each `(stream, durable)` consumer has applied everything
    /// its stream held when this was called.
    pub async fn fence(&self, consumers: &[(Stream, &str)]) {
        let waits = consumers.iter().map(|(stream, durable)| self.fence_one(*stream, durable));
        match tokio::time::timeout(FENCE_LIMIT, futures::future::join_all(waits)).await {
            Ok(outcomes) => {
                for e in outcomes.into_iter().filter_map(Result::err) {
                    tracing::warn!(error = format!("{e:#}"), "read fence failed; reading what is there");
                }
            }
            Err(_) => tracing::warn!(?consumers, "read fence still open after {FENCE_LIMIT:?}; reading what is there"),
        }
    }

    async fn fence_one(&self, stream: Stream, durable: &str) -> anyhow::Result<()> {
        let name = self.stream_name(stream);
        let info: StreamInfo = self.jetstream().request(format!("STREAM.INFO.{name}"), &serde_json::json!({})).await?;
        let target = match (info.state, info.error) {
            (Some(state), None) => state.last_seq,
            (_, error) => bail!("no info on stream {name}: {error:?}"),
        };
        let mut applied = self.applied_sender(stream, durable).subscribe();
        if *applied.borrow_and_update() >= target {
            return Ok(());
        }
        let mut pause = Duration::from_millis(1);
        loop {
            let info: ConsumerInfo =
                self.jetstream().request(format!("CONSUMER.INFO.{name}.{durable}"), &serde_json::json!({})).await?;
            if let Some(error) = info.error {
                bail!("no info on consumer {durable} of {name}: {error}");
            }
            let floor = info.ack_floor.map_or(0, |floor| floor.stream_seq);
            // Nothing left to deliver and nothing in hand: everything up to
            // `target` was settled before this look.
            if floor >= target || (info.num_pending == 0 && info.num_ack_pending == 0) {
                return Ok(());
            }
            tokio::select! {
                _ = applied.wait_for(|seen| *seen >= target) => return Ok(()),
                _ = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(MAX_POLL);
        }
    }
}
