//! `OutputRoomEvent` → room events, current state, membership changes,
//! invites and redactions. The state moves only as the roomserver's
//! adds/removes say, never by last write wins.

use std::{collections::HashMap, sync::Arc};

use common::{
    api::roomserver::{
        InputKind, NewInviteEvent, NewRoomEvent, OutputRoomEvent, QueryEvents, QueryEventsRequest, RedactedEvent,
    },
    bus::HandlerError,
    pdu::Pdu,
};
use ruma::{OwnedEventId, events::TimelineEventType};

use crate::{
    App,
    storage::{Kind, rooms::NewRoomEvent as Row},
};

pub async fn handle(app: Arc<App>, msg: OutputRoomEvent) -> Result<(), HandlerError> {
    match msg {
        OutputRoomEvent::NewRoomEvent(event) => new_room_event(&app, event).await,
        OutputRoomEvent::NewInviteEvent(invite) => new_invite(&app, invite).await,
        OutputRoomEvent::RetireInviteEvent(retired) => {
            let mut tx = app.store.db.begin_write().await.map_err(anyhow::Error::from)?;
            app.store.retire_invite(&mut tx, retired.invite_event_id.as_str()).await?;
            tx.commit().await.map_err(anyhow::Error::from)?;
            Ok(())
        }
        OutputRoomEvent::RedactedEvent(redacted) => redaction(&app, redacted).await,
    }
}

fn reject(e: impl std::fmt::Display) -> HandlerError {
    HandlerError::Reject(anyhow::anyhow!("{e}"))
}

async fn new_room_event(app: &App, msg: NewRoomEvent) -> Result<(), HandlerError> {
    let store = &app.store;
    if store.event_known(msg.event_id.as_str()).await? {
        return Ok(());
    }
    let pdu = Pdu::parse(msg.event_id.clone(), msg.event.clone()).map_err(reject)?;
    let room_id = msg.room_id.as_str();
    let visibility = history_visibility(app, room_id).await?;

    // The JSON of every state event that enters the state.
    let mut added: HashMap<OwnedEventId, Pdu> = HashMap::new();
    let historical = msg.kind == InputKind::Historical;
    if !historical {
        let missing: Vec<OwnedEventId> =
            msg.adds_state_event_ids.iter().filter(|id| **id != msg.event_id).cloned().collect();
        let known = store.state_events(&missing.iter().map(|id| id.to_string()).collect::<Vec<_>>()).await?;
        let unknown: Vec<OwnedEventId> =
            missing.iter().filter(|id| !known.contains_key(id.as_str())).cloned().collect();
        for id in &missing {
            if let Some((_, json)) = known.get(id.as_str()) {
                let raw = serde_json::value::RawValue::from_string(json.clone()).map_err(anyhow::Error::from)?;
                added.insert(id.clone(), Pdu::parse(id.clone(), raw).map_err(reject)?);
            }
        }
        for chunk in unknown.chunks(500) {
            let found = app
                .rt
                .bus
                .call::<QueryEvents>(&QueryEventsRequest { event_ids: chunk.to_vec() })
                .await
                .map_err(anyhow::Error::from)?;
            for event in found.events {
                added.insert(event.event_id.clone(), Pdu::parse(event.event_id, event.event).map_err(reject)?);
            }
        }
        if msg.adds_state_event_ids.contains(&msg.event_id) {
            added.insert(msg.event_id.clone(), pdu.clone());
        }
        if let Some(id) = msg.adds_state_event_ids.iter().find(|id| !added.contains_key(*id)) {
            // The roomserver stores before it announces: try again shortly.
            return Err(HandlerError::Retry(anyhow::anyhow!("state event {id} is not available yet")));
        }
    }

    // Read before the transaction, which then only writes.
    let removed = if historical {
        HashMap::new()
    } else {
        store.state_events(&msg.removes_state_event_ids.iter().map(|id| id.to_string()).collect::<Vec<_>>()).await?
    };
    let mut tx = store.db.begin_write().await.map_err(anyhow::Error::from)?;
    let pos = store.next_position(&mut tx, Kind::Events).await?;
    let txn = msg.transaction.as_ref().map(|t| (t.device_id.as_str(), t.txn_id.as_str()));
    let row = Row {
        pos,
        room_id,
        event_id: msg.event_id.as_str(),
        event_type: &pdu.kind().to_string(),
        state_key: pdu.key(),
        sender: pdu.sender_id().as_str(),
        json: msg.event.get(),
        historical,
        visibility: &visibility,
        txn,
        adds: &msg.adds_state_event_ids,
        removes: &msg.removes_state_event_ids,
        origin_server_ts: i64::from(pdu.ts().get()),
    };
    if !store.insert_room_event(&mut tx, row).await? {
        return Ok(());
    }
    store.record_relation(&mut tx, pos, room_id, &pdu).await?;
    let mut concerned: Vec<String> = Vec::new();
    if !historical {
        let added_keys: Vec<(String, String)> =
            added.values().filter_map(|p| p.state_pair()).map(|(t, k)| (t.to_string(), k)).collect();
        for (id, ((event_type, state_key), _)) in &removed {
            if !added_keys.contains(&(event_type.clone(), state_key.clone())) {
                store.remove_current_state(&mut tx, room_id, (event_type, state_key), id).await?;
            }
        }
        for id in &msg.adds_state_event_ids {
            let added = &added[id];
            let Some((event_type, state_key)) = added.state_pair() else { continue };
            let event_type = event_type.to_string();
            store
                .insert_state_event(&mut tx, id.as_str(), room_id, &event_type, &state_key, added.json().get())
                .await?;
            let membership =
                (*added.kind() == TimelineEventType::RoomMember).then(|| added.content_str("membership")).flatten();
            store
                .set_current_state(&mut tx, room_id, (&event_type, &state_key), id.as_str(), membership.as_deref(), pos)
                .await?;
            if let Some(membership) = &membership {
                store.record_membership(&mut tx, pos, room_id, &state_key, membership, id.as_str()).await?;
                concerned.push(state_key.clone());
            }
        }
    }
    tx.commit().await.map_err(anyhow::Error::from)?;
    if !historical {
        concerned.extend(store.members(room_id, "join").await?);
        app.wake_local(concerned).await;
    }
    Ok(())
}

/// The room's current `m.room.history_visibility` ("shared" when unset).
async fn history_visibility(app: &App, room_id: &str) -> Result<String, HandlerError> {
    let json = app.store.current_state_json(room_id, "m.room.history_visibility", "").await?;
    let value = json
        .and_then(|j| serde_json::from_str::<serde_json::Value>(&j).ok())
        .and_then(|v| v["content"]["history_visibility"].as_str().map(str::to_owned));
    Ok(value.unwrap_or_else(|| "shared".to_owned()))
}

async fn new_invite(app: &App, msg: NewInviteEvent) -> Result<(), HandlerError> {
    let mut tx = app.store.db.begin_write().await.map_err(anyhow::Error::from)?;
    let pos = app.store.next_position(&mut tx, Kind::Events).await?;
    let stripped = serde_json::to_string(&msg.invite_room_state).map_err(anyhow::Error::from)?;
    let inserted = app
        .store
        .insert_invite(
            &mut tx,
            pos,
            &msg.room_id,
            &msg.target_user_id,
            msg.event_id.as_str(),
            msg.event.get(),
            &stripped,
        )
        .await?;
    if !inserted {
        return Ok(());
    }
    tx.commit().await.map_err(anyhow::Error::from)?;
    app.wake_local(vec![msg.target_user_id.to_string()]).await;
    Ok(())
}

/// Serves the event pruned from now on, as the roomserver has it.
async fn redaction(app: &App, msg: RedactedEvent) -> Result<(), HandlerError> {
    let request = QueryEventsRequest { event_ids: vec![msg.redacted_event_id.clone()] };
    let found = app.rt.bus.call::<QueryEvents>(&request).await.map_err(anyhow::Error::from)?;
    let Some(pruned) = found.events.into_iter().next() else { return Ok(()) };
    // Kept in the client format: the PDU of a version 3+ event carries no id.
    let because = crate::format::pdu_to_client(
        msg.redaction_event_id.as_str(),
        msg.room_id.as_str(),
        msg.redaction_event.get(),
        true,
    )
    .map_err(reject)?;
    let because = serde_json::to_string(&because).map_err(anyhow::Error::from)?;
    let mut tx = app.store.db.begin_write().await.map_err(anyhow::Error::from)?;
    app.store.redact(&mut tx, msg.redacted_event_id.as_str(), pruned.event.get(), &because).await?;
    tx.commit().await.map_err(anyhow::Error::from)?;
    Ok(())
}
