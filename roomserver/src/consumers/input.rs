//! `InputRoomEvent`: rooms are hashed onto partitions, each an ordered durable
//! consumer (`max_ack_pending = 1`) that every roomserver instance pulls from.
//! One room's events are thus handled one at a time in order, rooms on
//! different partitions in parallel, and when an instance dies the message it
//! held is redelivered to another after the ack deadline.

use std::time::Duration;

use std::sync::Arc;

use common::{
    Runtime,
    api::roomserver::{InputRoomEvent, InputVerdict},
    bus::{ConsumerSpec, Delivery, HandlerError, Stream, consume},
    storage::Outbox,
};

use crate::{
    input::{Processor, Verdict},
    storage::Store,
};

pub fn start(rt: &Runtime, store: Store, outbox: Outbox) {
    let processor =
        Arc::new(Processor::new(store, outbox, rt.bus.clone(), rt.config.global.server_name.clone(), &rt.key));
    for partition in 0..rt.bus.partitions() {
        let spec = ConsumerSpec {
            filter_subject: Some(rt.bus.partition_subject(Stream::InputRoomEvent, partition)),
            ack_wait: Duration::from_secs(10),
            ..ConsumerSpec::ordered(format!("roomserver_input_{partition}"))
        };
        let (bus, shutdown) = (rt.bus.clone(), rt.shutdown.clone());
        let input = Input { rt: rt.clone(), processor: processor.clone() };
        rt.spawn("roomserver input", async move {
            consume(&bus, spec, shutdown, |msg, delivery| input.handle(msg, delivery)).await
        });
    }
}

struct Input {
    rt: Runtime,
    processor: Arc<Processor>,
}

impl Input {
    async fn handle(&self, msg: InputRoomEvent, _delivery: Delivery) -> Result<(), HandlerError> {
        let outcome = self.processor.process(&msg).await;
        let event_id = msg.event_id.clone();
        let verdict = match &outcome {
            Ok(Verdict::Accepted) => Some(InputVerdict::Accepted { event_id }),
            Ok(Verdict::SoftFailed(reason)) => Some(InputVerdict::SoftFailed { event_id, reason: reason.clone() }),
            Ok(Verdict::Rejected(reason)) => {
                Some(InputVerdict::Rejected { event_id, reason: reason.clone(), stored: true })
            }
            Ok(Verdict::Refused(reason)) => {
                Some(InputVerdict::Rejected { event_id, reason: reason.clone(), stored: false })
            }
            Err(HandlerError::Reject(e)) => {
                Some(InputVerdict::Rejected { event_id, reason: format!("{e:#}"), stored: false })
            }
            // The message comes back; the publisher hears when it is decided.
            Err(HandlerError::Retry(_)) => None,
        };
        if let (Some(reply_to), Some(verdict)) = (&msg.reply_to, verdict) {
            let body = serde_json::to_vec(&verdict).map_err(anyhow::Error::from)?;
            if let Err(e) = self.rt.bus.client().publish(reply_to.clone(), body.into()).await {
                tracing::warn!(error = %e, "cannot send the input verdict");
            }
        }
        outcome.map(|_| ())
    }
}
