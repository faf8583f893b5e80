//! History from before this server joined a room: when a reader pages back
//! past the oldest event here, federationreceiver fetches what came before
//! it from the room's other servers, and the roomserver's outputs put it
//! below everything else (negative positions, newest first).

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use common::{
    api::federationreceiver::{PerformBackfill, PerformBackfillRequest},
    pdu::Pdu,
};
use ruma::{OwnedEventId, RoomId};

use crate::{App, consumers::HISTORY_FENCE};

/// How long a reader waits for other servers before getting what is here.
const PATIENCE: Duration = Duration::from_secs(10);

/// After a backfill that brought nothing, how long the room is not asked
/// again (its servers may be down; each reader should not wait for them).
const COOLDOWN: Duration = Duration::from_secs(60);

/// Rooms whose last backfill brought nothing, and when.
#[derive(Default)]
pub struct Misses(Mutex<HashMap<String, Instant>>);

impl Misses {
    fn recent(&self, room_id: &str) -> bool {
        let mut misses = self.0.lock().expect("misses lock");
        misses.retain(|_, at| at.elapsed() < COOLDOWN);
        misses.contains_key(room_id)
    }

    fn record(&self, room_id: &str) {
        self.0.lock().expect("misses lock").insert(room_id.to_owned(), Instant::now());
    }
}

/// Fetches up to `limit` events of the room's history before the oldest one
/// here; whether any came (and are stored by the time it returns).
pub async fn fill(app: &App, room_id: &RoomId, limit: usize) -> anyhow::Result<bool> {
    if app.backfill_misses.recent(room_id.as_str()) {
        return Ok(false);
    }
    let Some(oldest) = app.store.oldest_room_event(room_id.as_str()).await? else { return Ok(false) };
    if oldest.event_type == "m.room.create" {
        return Ok(false);
    }
    let pdu = Pdu::parse(oldest.event_id.as_str().try_into()?, serde_json::from_str(&oldest.json)?)?;
    let mut from: Vec<OwnedEventId> = Vec::new();
    for id in pdu.prev_ids() {
        if app.store.room_event(id.as_str()).await?.is_none() {
            from.push(id.clone());
        }
    }
    if from.is_empty() {
        return Ok(false);
    }
    let request = PerformBackfillRequest { room_id: room_id.to_owned(), from, limit: limit.min(100) as u32 };
    let accepted = match app.rt.bus.call_within::<PerformBackfill>(&request, PATIENCE).await {
        Ok(response) => response.accepted,
        Err(e) => {
            tracing::info!(%room_id, error = %e, "cannot backfill the room");
            0
        }
    };
    if accepted == 0 {
        app.backfill_misses.record(room_id.as_str());
        return Ok(false);
    }
    // The verdicts follow the outputs; once our consumer has applied them,
    // the history is readable.
    app.rt.bus.fence(HISTORY_FENCE).await;
    Ok(true)
}
