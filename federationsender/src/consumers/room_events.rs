//! `OutputRoomEvent` → who is in each room, and the events our users send
//! queued for every other server in the room at that event (those joined
//! before or after it, so a server that is kicked or leaves hears of it,
//! and the invitee's for an invite). Events of other servers are not sent
//! on: their own server sends them.

use std::{collections::HashMap, time::Duration};

use common::{
    Runtime,
    api::roomserver::{InputKind, NewRoomEvent, OutputRoomEvent, QueryEvents, QueryEventsRequest},
    bus::{ConsumerSpec, HandlerError, consume_batches},
    pdu::Pdu,
};
use ruma::{OwnedEventId, UserId, events::TimelineEventType};

use crate::{queue::Queues, storage::QueueStore};

pub fn start(rt: &Runtime, store: QueueStore, queues: Queues) {
    let spec = ConsumerSpec {
        max_ack_pending: 64,
        ack_wait: Duration::from_secs(10),
        ..ConsumerSpec::ordered("federationsender_room_events")
    };
    let (bus, shutdown, rt2) = (rt.bus.clone(), rt.shutdown.clone(), rt.clone());
    rt.spawn("federationsender room events", async move {
        consume_batches(&bus, spec, shutdown, |batch: Vec<OutputRoomEvent>| {
            let (rt, store, queues) = (rt2.clone(), store.clone(), queues.clone());
            async move { handle(&rt, &store, &queues, batch).await }
        })
        .await
    });
}

fn reject(e: impl std::fmt::Display) -> HandlerError {
    HandlerError::Reject(anyhow::anyhow!("{e}"))
}

async fn handle(
    rt: &Runtime,
    store: &QueueStore,
    queues: &Queues,
    batch: Vec<OutputRoomEvent>,
) -> Result<(), HandlerError> {
    let events: Vec<&NewRoomEvent> = batch
        .iter()
        .filter_map(|msg| match msg {
            OutputRoomEvent::NewRoomEvent(event) if event.kind != InputKind::Historical => Some(event),
            _ => None,
        })
        .collect();
    if events.is_empty() {
        return Ok(());
    }
    let members = member_events(rt, &events).await?;
    let server_name = &rt.config.global.server_name;
    let mut queued = false;
    // It reads what earlier events of the batch wrote (who is joined).
    let mut tx = store.db.begin_read_write().await.map_err(anyhow::Error::from)?;
    for event in events {
        let pdu = Pdu::parse(event.event_id.clone(), event.event.clone()).map_err(reject)?;
        let local = pdu.sender_id().server_name() == server_name;
        let before = if local { store.joined_servers(&mut tx, &event.room_id).await? } else { Default::default() };
        for removed in &event.removes_state_event_ids {
            store.remove_joined(&mut tx, removed.as_str()).await?;
        }
        for added in &event.adds_state_event_ids {
            let Some(member) = members.get(added) else { continue };
            if member.content_str("membership").as_deref() == Some("join")
                && let Some(user) = member.key().and_then(|key| UserId::parse(key).ok())
            {
                store.add_joined(&mut tx, &event.room_id, added.as_str(), user.server_name()).await?;
            }
        }
        if !local {
            continue;
        }
        let mut destinations = before;
        destinations.extend(store.joined_servers(&mut tx, &event.room_id).await?);
        if *pdu.kind() == TimelineEventType::RoomMember
            && pdu.content_str("membership").as_deref() == Some("invite")
            && let Some(invitee) = pdu.key().and_then(|key| UserId::parse(key).ok())
        {
            destinations.insert(invitee.server_name().to_owned());
        }
        destinations.remove(server_name);
        if !destinations.is_empty() {
            store.enqueue(&mut tx, &event.room_id, event.event_id.as_str(), event.event.get(), &destinations).await?;
            queued = true;
        }
    }
    tx.commit().await.map_err(anyhow::Error::from)?;
    if queued {
        queues.wake();
    }
    Ok(())
}

/// The member events among the state the batch adds, from the batch itself
/// or the roomserver.
async fn member_events(rt: &Runtime, events: &[&NewRoomEvent]) -> Result<HashMap<OwnedEventId, Pdu>, HandlerError> {
    let mut found = HashMap::new();
    let mut wanted = Vec::new();
    for event in events {
        for added in &event.adds_state_event_ids {
            if *added == event.event_id {
                found.insert(added.clone(), Pdu::parse(added.clone(), event.event.clone()).map_err(reject)?);
            } else {
                wanted.push(added.clone());
            }
        }
    }
    wanted.retain(|id| !found.contains_key(id));
    wanted.sort();
    wanted.dedup();
    for chunk in wanted.chunks(1000) {
        let request = QueryEventsRequest { event_ids: chunk.to_vec() };
        let stored = rt.bus.call::<QueryEvents>(&request).await.map_err(|e| HandlerError::Retry(e.into()))?;
        for event in stored.events {
            let pdu = Pdu::parse(event.event_id.clone(), event.event).map_err(reject)?;
            if *pdu.kind() == TimelineEventType::RoomMember {
                found.insert(event.event_id, pdu);
            }
        }
    }
    found.retain(|_, pdu| *pdu.kind() == TimelineEventType::RoomMember);
    Ok(found)
}
