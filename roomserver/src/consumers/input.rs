//! `InputRoomEvent`: rooms are hashed onto partitions, each an ordered durable
//! consumer (`max_ack_pending = 1`) that every roomserver instance pulls from.
//! One room's events are thus handled one at a time in order, rooms on
//! different partitions in parallel, and when an instance dies the message it
//! held is redelivered to another after the ack deadline.

use std::time::Duration;

use common::{
    Runtime,
    api::roomserver::{InputRoomEvent, InputVerdict, NewRoomEvent, OutputRoomEvent},
    bus::{ConsumerSpec, Delivery, HandlerError, Stream, consume},
    storage::Outbox,
};
use ruma::{CanonicalJsonObject, RoomVersionId};

use crate::storage::Events;

pub fn start(rt: &Runtime, events: Events, outbox: Outbox) {
    for partition in 0..rt.bus.partitions() {
        let spec = ConsumerSpec {
            filter_subject: Some(rt.bus.partition_subject(Stream::InputRoomEvent, partition)),
            ack_wait: Duration::from_secs(10),
            ..ConsumerSpec::ordered(format!("roomserver_input_{partition}"))
        };
        let (bus, shutdown) = (rt.bus.clone(), rt.shutdown.clone());
        let input = Input { rt: rt.clone(), events: events.clone(), outbox: outbox.clone() };
        rt.spawn("roomserver input", async move {
            consume(&bus, spec, shutdown, |msg, delivery| input.handle(msg, delivery)).await
        });
    }
}

struct Input {
    rt: Runtime,
    events: Events,
    outbox: Outbox,
}

impl Input {
    async fn handle(&self, msg: InputRoomEvent, _delivery: Delivery) -> Result<(), HandlerError> {
        let outcome = self.process(&msg).await;
        let verdict = match &outcome {
            Ok(()) => Some(InputVerdict::Accepted { event_id: msg.event_id.clone() }),
            Err(HandlerError::Reject(e)) => {
                Some(InputVerdict::Rejected { event_id: msg.event_id.clone(), reason: format!("{e:#}") })
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
        outcome
    }

    async fn process(&self, msg: &InputRoomEvent) -> Result<(), HandlerError> {
        let object: CanonicalJsonObject = serde_json::from_str(msg.event.get())
            .map_err(|e| HandlerError::Reject(anyhow::anyhow!("the event is not canonical JSON: {e}")))?;
        check_event_id(msg, &object).map_err(HandlerError::Reject)?;

        // Authorisation against the room's state comes with state storage;
        // until then every well-formed event is stored as it arrives.
        let mut tx = self.events.db().pool().begin().await.map_err(anyhow::Error::from)?;
        let stored = self.events.insert(&mut tx, msg.event_id.as_str(), msg.room_id.as_str(), msg.event.get()).await?;
        if stored {
            let output = OutputRoomEvent::NewRoomEvent(NewRoomEvent {
                event_id: msg.event_id.clone(),
                room_id: msg.room_id.clone(),
                room_version: msg.room_version.clone(),
                event: msg.event.clone(),
                transaction: msg.transaction.clone(),
            });
            self.outbox.enqueue(&mut tx, &output).await?;
        }
        tx.commit().await.map_err(anyhow::Error::from)?;
        if let Err(e) = self.outbox.flush().await {
            // The rows stay in the outbox; the relay publishes them.
            tracing::warn!(error = format!("{e:#}"), "cannot publish the output now");
        }
        Ok(())
    }
}

/// The event id must be the one the event's content determines.
fn check_event_id(msg: &InputRoomEvent, object: &CanonicalJsonObject) -> anyhow::Result<()> {
    let rules =
        msg.room_version.rules().ok_or_else(|| anyhow::anyhow!("unsupported room version {}", msg.room_version))?;
    let expected = match msg.room_version {
        // Versions 1 and 2 carry their id in the event.
        RoomVersionId::V1 | RoomVersionId::V2 => match object.get("event_id") {
            Some(ruma::CanonicalJsonValue::String(id)) => id.clone(),
            _ => anyhow::bail!("the event has no event_id"),
        },
        _ => format!("${}", ruma::signatures::reference_hash(object, &rules)?),
    };
    anyhow::ensure!(expected == msg.event_id.as_str(), "the event id should be {expected}");
    Ok(())
}
