//! PDUs other servers push to us (`PUT /send`): each is checked and, when
//! events before it are missing here, the gap is filled from the sending
//! server first — the missing events themselves (`get_missing_events`), or
//! failing that the state before the event (`state_ids`, then the events
//! not known here) — so that the roomserver gets every event with what it
//! needs and never waits on the network. Rooms are handled concurrently; the
//! PDUs of one room in the order they came.

use std::collections::BTreeMap;

use common::{
    api::roomserver::{
        InputKind, InputVerdict, QueryEvents, QueryEventsRequest, QueryLatestEventsAndState,
        QueryLatestEventsAndStateRequest,
    },
    federation,
    pdu::{self, Pdu},
};
use ruma::{
    OwnedEventId, OwnedRoomId, RoomId, ServerName, UInt,
    api::federation::event::{get_missing_events, get_room_state_ids},
};
use serde_json::value::RawValue;

use crate::{
    App, access,
    fetch::{self, Source, VERDICT_PATIENCE},
    membership,
};

/// How many missing events are asked for before falling back to the state.
const MISSING_EVENTS_LIMIT: u32 = 20;

pub type Results = BTreeMap<OwnedEventId, Result<(), String>>;

/// Processes a transaction's PDUs and says what became of each.
pub async fn process(app: &App, origin: &ServerName, pdus: &[Box<RawValue>]) -> Results {
    let mut by_room: Vec<(OwnedRoomId, Vec<&RawValue>)> = Vec::new();
    for json in pdus {
        #[derive(serde::Deserialize)]
        struct RoomOf {
            room_id: OwnedRoomId,
        }
        let Ok(RoomOf { room_id }) = serde_json::from_str::<RoomOf>(json.get()) else {
            // Without a room there is no room version to compute its id with.
            tracing::debug!(%origin, "a PDU without a room id");
            continue;
        };
        match by_room.iter_mut().find(|(id, _)| *id == room_id) {
            Some((_, list)) => list.push(json),
            None => by_room.push((room_id, vec![json])),
        }
    }
    let rooms = by_room.iter().map(|(room_id, list)| process_room(app, origin, room_id, list));
    futures::future::join_all(rooms).await.into_iter().flatten().collect()
}

async fn process_room(app: &App, origin: &ServerName, room_id: &RoomId, pdus: &[&RawValue]) -> Results {
    let mut results = Results::new();
    let version = match membership::room_version(app, room_id).await {
        Ok(version) => version,
        Err(_) => {
            // A room we are not in: its events mean nothing here.
            tracing::debug!(%room_id, %origin, "PDUs for a room unknown here");
            return results;
        }
    };
    if let Err(e) = access::check_acl(app, room_id, origin).await {
        let reason = e.parts().1;
        for json in pdus {
            if let Ok(pdu) = pdu::received(json, &version) {
                results.insert(pdu.owned_id(), Err(reason.clone()));
            }
        }
        return results;
    }
    let room = Room(Source { app, origin, room_id, version: &version });
    for json in pdus {
        let pdu = match pdu::received(json, &version) {
            Ok(pdu) => pdu,
            Err(e) => {
                tracing::debug!(%room_id, %origin, error = format!("{e:#}"), "an unreadable PDU");
                // Answered when it can be named (too large, but well formed).
                let object = serde_json::from_str::<ruma::CanonicalJsonObject>(json.get());
                if let Ok(event_id) = object.map_err(anyhow::Error::from).and_then(|o| pdu::event_id_of(&o, &version)) {
                    results.insert(event_id, Err(format!("{e:#}")));
                }
                continue;
            }
        };
        let outcome = room.take(pdu.clone()).await;
        if let Err(reason) = &outcome {
            tracing::info!(event_id = %pdu.id(), %origin, reason, "a PDU was not taken");
        }
        results.insert(pdu.owned_id(), outcome);
    }
    results
}

/// One room's PDUs from the sending server.
struct Room<'a>(Source<'a>);

impl<'a> std::ops::Deref for Room<'a> {
    type Target = Source<'a>;

    fn deref(&self) -> &Source<'a> {
        &self.0
    }
}

impl Room<'_> {
    /// Has the roomserver take a new event, filling the gap before it first.
    async fn take(&self, pdu: Pdu) -> Result<(), String> {
        if self.unknown(&[pdu.owned_id()]).await?.is_empty() {
            // Sent again (the sender retried, or another server relayed it).
            return Ok(());
        }
        if !self.unknown(pdu.prev_ids()).await?.is_empty() {
            self.fill_gap_before(&pdu).await?;
        }
        if self.unknown(pdu.prev_ids()).await?.is_empty() {
            return self.submit_new(&pdu, None).await;
        }
        let state = self.state_before(&pdu).await?;
        self.submit_new(&pdu, Some(state)).await
    }

    async fn unknown(&self, ids: &[OwnedEventId]) -> Result<Vec<OwnedEventId>, String> {
        fetch::unknown(self.app, ids).await
    }

    /// Asks the origin for the events between our latest ones and `pdu`, and
    /// takes those that connect, oldest first.
    async fn fill_gap_before(&self, pdu: &Pdu) -> Result<(), String> {
        let request = QueryLatestEventsAndStateRequest { room_id: self.room_id.to_owned(), state_keys: Vec::new() };
        let latest = self
            .app
            .rt
            .bus
            .call::<QueryLatestEventsAndState>(&request)
            .await
            .map_err(|e| format!("cannot ask the roomserver: {e}"))?;
        let mut ask = get_missing_events::v1::Request::new(
            self.room_id.to_owned(),
            latest.latest_event_ids,
            vec![pdu.owned_id()],
        );
        ask.limit = UInt::from(MISSING_EVENTS_LIMIT);
        let events = match federation::request(&self.app.rt.bus, self.origin, ask).await {
            Ok(response) => response.events,
            Err(e) => {
                tracing::debug!(origin = %self.origin, error = %e, "get_missing_events failed");
                return Ok(());
            }
        };
        let mut missing = Vec::with_capacity(events.len());
        for json in &events {
            match pdu::received(json, self.version) {
                Ok(event) => missing.push(event),
                Err(e) => {
                    tracing::debug!(origin = %self.origin, error = format!("{e:#}"), "an unreadable missing event")
                }
            }
        }
        missing.sort_by_key(Pdu::depth);
        for event in missing {
            if event.id() == pdu.id() || self.unknown(&[event.owned_id()]).await?.is_empty() {
                continue;
            }
            // The oldest of them may still not connect: it gets the state
            // the origin says it had, and the others build on it.
            let state = if self.unknown(event.prev_ids()).await?.is_empty() {
                None
            } else {
                Some(self.state_before(&event).await?)
            };
            if let Err(reason) = self.submit_new(&event, state).await {
                tracing::debug!(event_id = %event.id(), reason, "a missing event was not taken");
            }
        }
        Ok(())
    }

    /// The state before `pdu` as the origin has it: the state after its
    /// (first) missing prev event, which is the state `/state_ids` gives
    /// before that event plus the event itself when it is state — asked of
    /// the event the origin built on, as Synapse asks. The events not known
    /// here (auth chain included) are stored as outliers first. With several
    /// prev events the others' states are not resolved in: the roomserver
    /// gets the one the origin gave.
    async fn state_before(&self, pdu: &Pdu) -> Result<Vec<OwnedEventId>, String> {
        let Source { app, origin, room_id, .. } = **self;
        let missing = self.unknown(pdu.prev_ids()).await?;
        let prev = missing.first().or(pdu.prev_ids().first()).ok_or("the event has no prev events")?.clone();
        let ask = get_room_state_ids::v1::Request::new(prev.clone(), room_id.to_owned());
        let ids = federation::request(&app.rt.bus, origin, ask)
            .await
            .map_err(|e| format!("cannot get the state at {prev} from {origin}: {e}"))?;
        let wanted: Vec<OwnedEventId> = ids.pdu_ids.iter().chain(&ids.auth_chain_ids).chain([&prev]).cloned().collect();
        self.store_outliers(&wanted, &[]).await?;
        let mut state = ids.pdu_ids;
        let stored = app
            .rt
            .bus
            .call::<QueryEvents>(&QueryEventsRequest { event_ids: vec![prev.clone()] })
            .await
            .map_err(|e| format!("cannot ask the roomserver: {e}"))?;
        let prev_is_state = stored
            .events
            .into_iter()
            .next()
            .and_then(|event| Pdu::parse(event.event_id, event.event).ok())
            .is_some_and(|event| event.key().is_some());
        if prev_is_state {
            // Last, so that it replaces what held its key before it.
            state.push(prev);
        }
        Ok(state)
    }

    async fn submit_new(&self, pdu: &Pdu, state_before: Option<Vec<OwnedEventId>>) -> Result<(), String> {
        let input = self.input(pdu, InputKind::New, state_before);
        let verdicts =
            self.app.rt.bus.submit(vec![input], VERDICT_PATIENCE).await.map_err(|e| format!("not processed: {e}"))?;
        match verdicts.into_iter().next() {
            // A soft-failed event is stored: the sender need not send it again.
            Some(InputVerdict::Accepted { .. } | InputVerdict::SoftFailed { .. }) => Ok(()),
            // An event that fails the authorisation rules is stored as
            // rejected, which is the outcome (Synapse answers `{}` too); one
            // that was never taken (its signatures fail, it is no valid
            // event) was never the sender's to send.
            Some(InputVerdict::Rejected { reason, stored: true, .. }) => {
                tracing::info!(event_id = %pdu.id(), reason, "a PDU was rejected");
                Ok(())
            }
            Some(InputVerdict::Rejected { reason, stored: false, .. }) => Err(reason),
            None => Err("no verdict".into()),
        }
    }
}
