//! Events another server has and we lack, fetched before the events that
//! need them are handed to the roomserver: what it already has, and the
//! events (with the auth events they name) it is missing, stored as
//! outliers in auth order.

use std::{collections::HashSet, time::Duration};

use common::{
    api::roomserver::{InputKind, InputRoomEvent, InputVerdict, QueryEvents, QueryEventsRequest},
    federation,
    pdu::{self, Pdu},
};
use ruma::{OwnedEventId, RoomId, RoomVersionId, ServerName, api::federation::event::get_event};

use crate::App;

/// How long one event may wait for the roomserver's verdict.
pub const VERDICT_PATIENCE: Duration = Duration::from_secs(30);

/// Most events fetched one by one at a time; beyond, the caller fails (the
/// sender retries, and a backfill or a later event fills it).
const MAX_FETCHED: usize = 500;

/// Of `ids`, those the roomserver has not stored.
pub async fn unknown(app: &App, ids: &[OwnedEventId]) -> Result<Vec<OwnedEventId>, String> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let known = app
        .rt
        .bus
        .call::<QueryEvents>(&QueryEventsRequest { event_ids: ids.to_vec() })
        .await
        .map_err(|e| format!("cannot ask the roomserver: {e}"))?
        .events;
    let known: HashSet<OwnedEventId> = known.into_iter().map(|event| event.event_id).collect();
    Ok(ids.iter().filter(|id| !known.contains(*id)).cloned().collect())
}

/// One room's events from one server.
pub struct Source<'a> {
    pub app: &'a App,
    pub origin: &'a ServerName,
    pub room_id: &'a RoomId,
    pub version: &'a RoomVersionId,
}

impl Source<'_> {
    pub fn input(&self, pdu: &Pdu, kind: InputKind, state_before: Option<Vec<OwnedEventId>>) -> InputRoomEvent {
        InputRoomEvent {
            kind,
            room_id: self.room_id.to_owned(),
            room_version: self.version.clone(),
            event_id: pdu.owned_id(),
            event: pdu.to_raw(),
            origin: self.origin.to_owned(),
            state_before,
            transaction: None,
            invite_room_state: None,
            reply_to: None,
            resend: 0,
        }
    }

    /// Has the roomserver store, as outliers, the events of `wanted` it does
    /// not have and the auth events they name that it does not have either:
    /// taken from `at_hand` when there, fetched from the origin otherwise.
    pub async fn store_outliers(&self, wanted: &[OwnedEventId], at_hand: &[Pdu]) -> Result<(), String> {
        let mut queue = unknown(self.app, wanted).await?;
        if queue.len() > MAX_FETCHED {
            return Err(format!("{} events are unknown here; too many to fetch one by one", queue.len()));
        }
        let mut found = Vec::with_capacity(queue.len());
        let mut seen = HashSet::new();
        while let Some(event_id) = queue.pop() {
            if !seen.insert(event_id.clone()) || seen.len() > MAX_FETCHED {
                continue;
            }
            let event = match at_hand.iter().find(|pdu| *pdu.id() == event_id) {
                Some(pdu) => pdu.clone(),
                None => self.fetch(&event_id).await?,
            };
            queue.extend(unknown(self.app, event.auth_ids()).await?);
            found.push(event);
        }
        let inputs: Vec<InputRoomEvent> =
            pdu::auth_order(found).into_iter().map(|event| self.input(&event, InputKind::Outlier, None)).collect();
        if inputs.is_empty() {
            return Ok(());
        }
        let verdicts = self
            .app
            .rt
            .bus
            .submit(inputs, VERDICT_PATIENCE)
            .await
            .map_err(|e| format!("the events could not be stored: {e}"))?;
        let refused = verdicts.iter().filter(|v| !matches!(v, InputVerdict::Accepted { .. })).count();
        if refused > 0 {
            tracing::info!(room_id = %self.room_id, origin = %self.origin, refused, "events from another server were refused");
        }
        Ok(())
    }

    async fn fetch(&self, event_id: &OwnedEventId) -> Result<Pdu, String> {
        let response =
            federation::request(&self.app.rt.bus, self.origin, get_event::v1::Request::new(event_id.clone()))
                .await
                .map_err(|e| format!("cannot fetch {event_id} from {}: {e}", self.origin))?;
        let event = pdu::received(&response.pdu, self.version).map_err(|e| format!("{event_id}: {e:#}"))?;
        if event.id() != event_id {
            return Err(format!("{} answered another event for {event_id}", self.origin));
        }
        Ok(event)
    }
}
