//! `OutputRoomEvent` → room events, current state, membership changes,
//! invites and redactions, one transaction for a batch of messages. The
//! state moves only as the roomserver's adds/removes say, never by last
//! write wins.

use std::{collections::HashMap, sync::Arc};

use common::{
    api::roomserver::{
        InputKind, NewInviteEvent, NewRoomEvent, OutputRoomEvent, QueryEvents, QueryEventsRequest, RedactedEvent,
        StoredEvent,
    },
    bus::HandlerError,
    pdu::Pdu,
};
use ruma::{OwnedEventId, events::TimelineEventType};
use serde_json::value::RawValue;
use sqlx::AnyConnection;

use crate::{
    App,
    storage::{Kind, rooms::NewRoomEvent as Row},
};

/// Applies a batch of consecutive messages in one transaction, in order.
/// What the batch needs from elsewhere (state events it does not carry,
/// redacted events as the roomserver now has them) is fetched first, so the
/// transaction waits on nothing but the database.
pub async fn handle(app: Arc<App>, batch: Vec<OutputRoomEvent>) -> Result<(), HandlerError> {
    let batch = with_outside_events(batch);
    let fetched = Fetched::load(&app, &batch).await?;
    let mut woken = Woken::default();
    // It reads what it writes (whether an event is known, the room's history
    // visibility as earlier events of the batch left it).
    let mut tx = app.store.db.begin_read_write().await.map_err(anyhow::Error::from)?;
    for msg in &batch {
        match msg {
            OutputRoomEvent::NewRoomEvent(event) => new_room_event(&app, &mut tx, &fetched, event, &mut woken).await?,
            OutputRoomEvent::NewInviteEvent(invite) => new_invite(&app, &mut tx, invite, &mut woken).await?,
            OutputRoomEvent::RetireInviteEvent(retired) => {
                app.store.retire_invite(&mut tx, retired.invite_event_id.as_str()).await?
            }
            OutputRoomEvent::RedactedEvent(redacted) => redaction(&app, &mut tx, &fetched, redacted).await?,
        }
    }
    tx.commit().await.map_err(anyhow::Error::from)?;
    woken.wake(&app).await
}

/// The batch with, after each invite retired in a room this server is not
/// in, the event that retired it as the room's one event: readers see the
/// invite end (a rejection in the `leave` section) as in any other room.
fn with_outside_events(batch: Vec<OutputRoomEvent>) -> Vec<OutputRoomEvent> {
    let mut out = Vec::with_capacity(batch.len());
    for msg in batch {
        let outside = match &msg {
            OutputRoomEvent::RetireInviteEvent(retired) => retired.outside.as_ref().map(|outside| NewRoomEvent {
                event_id: retired.retired_by_event_id.clone(),
                room_id: retired.room_id.clone(),
                room_version: outside.room_version.clone(),
                event: outside.event.clone(),
                kind: InputKind::New,
                adds_state_event_ids: vec![retired.retired_by_event_id.clone()],
                removes_state_event_ids: Vec::new(),
                latest_event_ids: vec![retired.retired_by_event_id.clone()],
                stream_ordering: 0,
                transaction: None,
            }),
            _ => None,
        };
        out.push(msg);
        out.extend(outside.map(OutputRoomEvent::NewRoomEvent));
    }
    out
}

fn reject(e: impl std::fmt::Display) -> HandlerError {
    HandlerError::Reject(anyhow::anyhow!("{e}"))
}

/// What a batch reads from outside its transaction.
#[derive(Default)]
struct Fetched {
    /// State events by id: the batch's own, stored ones, the roomserver's.
    state: HashMap<OwnedEventId, Pdu>,
    /// Redacted events, pruned, by id.
    pruned: HashMap<OwnedEventId, Box<RawValue>>,
}

impl Fetched {
    async fn load(app: &App, batch: &[OutputRoomEvent]) -> Result<Fetched, HandlerError> {
        let mut fetched = Fetched::default();
        let mut wanted: Vec<&OwnedEventId> = Vec::new();
        let mut redacted: Vec<OwnedEventId> = Vec::new();
        for msg in batch {
            match msg {
                OutputRoomEvent::NewRoomEvent(event) if event.kind != InputKind::Historical => {
                    if event.adds_state_event_ids.contains(&event.event_id) {
                        let pdu = Pdu::parse(event.event_id.clone(), event.event.clone()).map_err(reject)?;
                        fetched.state.insert(event.event_id.clone(), pdu);
                    }
                    wanted.extend(event.adds_state_event_ids.iter().chain(&event.removes_state_event_ids));
                }
                OutputRoomEvent::RedactedEvent(event) => redacted.push(event.redacted_event_id.clone()),
                _ => {}
            }
        }
        let mut missing: Vec<String> =
            wanted.into_iter().filter(|id| !fetched.state.contains_key(*id)).map(|id| id.to_string()).collect();
        missing.sort();
        missing.dedup();
        let stored = app.store.state_events(&missing).await?;
        for (id, (_, json)) in stored {
            let id = OwnedEventId::try_from(id).map_err(reject)?;
            let raw = RawValue::from_string(json).map_err(anyhow::Error::from)?;
            fetched.state.insert(id.clone(), Pdu::parse(id, raw).map_err(reject)?);
        }
        // Removed events were added before and are stored; added ones may be
        // new to syncapi (a state reset, a join over federation).
        let unknown: Vec<OwnedEventId> = batch
            .iter()
            .filter_map(|msg| match msg {
                OutputRoomEvent::NewRoomEvent(event) if event.kind != InputKind::Historical => {
                    Some(event.adds_state_event_ids.iter())
                }
                _ => None,
            })
            .flatten()
            .filter(|id| !fetched.state.contains_key(*id))
            .cloned()
            .collect();
        for chunk in unknown.chunks(500) {
            for event in query_events(app, chunk.to_vec()).await? {
                let pdu = Pdu::parse(event.event_id.clone(), event.event).map_err(reject)?;
                fetched.state.insert(event.event_id, pdu);
            }
        }
        if !redacted.is_empty() {
            fetched.pruned = query_events(app, redacted).await?.into_iter().map(|e| (e.event_id, e.event)).collect();
        }
        Ok(fetched)
    }
}

async fn query_events(app: &App, event_ids: Vec<OwnedEventId>) -> Result<Vec<StoredEvent>, HandlerError> {
    let found = app.rt.bus.call::<QueryEvents>(&QueryEventsRequest { event_ids }).await.map_err(anyhow::Error::from)?;
    Ok(found.events)
}

/// Whom a batch wakes once it is committed.
#[derive(Default)]
struct Woken {
    users: Vec<String>,
    /// Rooms whose joined members all hear of the batch.
    rooms: Vec<String>,
}

impl Woken {
    async fn wake(mut self, app: &App) -> Result<(), HandlerError> {
        self.rooms.sort();
        self.rooms.dedup();
        self.users.extend(app.store.joined_to_any(&self.rooms).await?);
        app.wake_local(self.users).await;
        Ok(())
    }
}

async fn new_room_event(
    app: &App,
    tx: &mut AnyConnection,
    fetched: &Fetched,
    msg: &NewRoomEvent,
    woken: &mut Woken,
) -> Result<(), HandlerError> {
    let store = &app.store;
    if store.event_known(tx, msg.event_id.as_str()).await? {
        return Ok(());
    }
    let pdu = Pdu::parse(msg.event_id.clone(), msg.event.clone()).map_err(reject)?;
    let room_id = msg.room_id.as_str();
    let visibility = history_visibility(app, tx, room_id).await?;
    let historical = msg.kind == InputKind::Historical;
    if !historical && let Some(id) = msg.adds_state_event_ids.iter().find(|id| !fetched.state.contains_key(*id)) {
        // The roomserver stores before it announces: try again shortly.
        return Err(HandlerError::Retry(anyhow::anyhow!("state event {id} is not available yet")));
    }
    // What the event changed itself (its own key), and what changed just
    // before it: the state a resolution or a join through another server
    // brought in, which the state at the start of a timeline beginning with
    // this event must show.
    let own_key = pdu.state_pair();
    let is_own = |id: &OwnedEventId| own_key.is_some() && fetched.state.get(id).and_then(Pdu::state_pair) == own_key;
    let prior_adds: Vec<&OwnedEventId> = msg.adds_state_event_ids.iter().filter(|id| !is_own(id)).collect();
    let prior_removes: Vec<&OwnedEventId> = msg.removes_state_event_ids.iter().filter(|id| !is_own(id)).collect();
    let own_adds: Vec<OwnedEventId> = msg.adds_state_event_ids.iter().filter(|id| is_own(id)).cloned().collect();
    let own_removes: Vec<OwnedEventId> = msg.removes_state_event_ids.iter().filter(|id| is_own(id)).cloned().collect();
    let prior_pos = if !(historical || prior_adds.is_empty() && prior_removes.is_empty()) {
        let prior_pos = store.next_position(tx, Kind::Events).await?;
        store.insert_prior_state_change(tx, prior_pos, room_id, &prior_adds, &prior_removes).await?;
        Some(prior_pos)
    } else {
        None
    };
    let pos = if historical {
        store.next_backfill_position(tx).await?
    } else {
        store.next_position(tx, Kind::Events).await?
    };
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
        adds: if historical { &msg.adds_state_event_ids } else { &own_adds },
        removes: if historical { &msg.removes_state_event_ids } else { &own_removes },
        origin_server_ts: i64::from(pdu.ts().get()),
    };
    if !store.insert_room_event(tx, row).await? {
        return Ok(());
    }
    store.record_relation(tx, pos, room_id, &pdu).await?;
    if historical {
        return Ok(());
    }
    let added: Vec<&Pdu> = msg.adds_state_event_ids.iter().map(|id| &fetched.state[id]).collect();
    let added_keys: Vec<(String, String)> =
        added.iter().filter_map(|p| p.state_pair()).map(|(t, k)| (t.to_string(), k)).collect();
    for id in &msg.removes_state_event_ids {
        let Some((event_type, state_key)) = fetched.state.get(id).and_then(Pdu::state_pair) else { continue };
        let key = (event_type.to_string(), state_key);
        if !added_keys.contains(&key) {
            store.remove_current_state(tx, room_id, (&key.0, &key.1), id.as_str()).await?;
        }
    }
    for (id, added) in msg.adds_state_event_ids.iter().zip(added) {
        let Some((event_type, state_key)) = added.state_pair() else { continue };
        let event_type = event_type.to_string();
        store.insert_state_event(tx, id.as_str(), room_id, &event_type, &state_key, added.json().get()).await?;
        let membership =
            (*added.kind() == TimelineEventType::RoomMember).then(|| added.content_str("membership")).flatten();
        let at = if *id == msg.event_id { pos } else { prior_pos.unwrap_or(pos) };
        store.set_current_state(tx, room_id, (&event_type, &state_key), id.as_str(), membership.as_deref(), at).await?;
        if let Some(membership) = &membership {
            store.record_membership(tx, at, room_id, &state_key, membership, id.as_str()).await?;
            woken.users.push(state_key.clone());
        }
    }
    woken.rooms.push(room_id.to_owned());
    Ok(())
}

/// The room's current `m.room.history_visibility` ("shared" when unset).
async fn history_visibility(app: &App, tx: &mut AnyConnection, room_id: &str) -> Result<String, HandlerError> {
    let json = app.store.current_state_json(&mut *tx, room_id, "m.room.history_visibility", "").await?;
    let value = json
        .and_then(|j| serde_json::from_str::<serde_json::Value>(&j).ok())
        .and_then(|v| v["content"]["history_visibility"].as_str().map(str::to_owned));
    Ok(value.unwrap_or_else(|| "shared".to_owned()))
}

async fn new_invite(
    app: &App,
    tx: &mut AnyConnection,
    msg: &NewInviteEvent,
    woken: &mut Woken,
) -> Result<(), HandlerError> {
    let pos = app.store.next_position(tx, Kind::Events).await?;
    let stripped = serde_json::to_string(&msg.invite_room_state).map_err(anyhow::Error::from)?;
    let inserted = app
        .store
        .insert_invite(tx, pos, &msg.room_id, &msg.target_user_id, msg.event_id.as_str(), msg.event.get(), &stripped)
        .await?;
    if inserted {
        woken.users.push(msg.target_user_id.to_string());
    }
    Ok(())
}

/// Serves the event pruned from now on, as the roomserver has it.
async fn redaction(
    app: &App,
    tx: &mut AnyConnection,
    fetched: &Fetched,
    msg: &RedactedEvent,
) -> Result<(), HandlerError> {
    let Some(pruned) = fetched.pruned.get(&msg.redacted_event_id) else { return Ok(()) };
    // Kept in the client format: the PDU of a version 3+ event carries no id.
    let because = crate::format::pdu_to_client(
        msg.redaction_event_id.as_str(),
        msg.room_id.as_str(),
        msg.redaction_event.get(),
        true,
    )
    .map_err(reject)?;
    let because = serde_json::to_string(&because).map_err(anyhow::Error::from)?;
    app.store.redact(tx, msg.redacted_event_id.as_str(), pruned.get(), &because).await?;
    Ok(())
}
