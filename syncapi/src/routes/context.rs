//! `GET /rooms/{roomId}/context/{eventId}`: an event with the events around
//! it and the room's state at the last of them.

use std::sync::Arc;

use axum::{Json, extract::State};
use common::{
    api::roomserver::{QueryStateAtEvent, QueryStateAtEventRequest},
    bus::{RemoteErrorKind, RpcError},
    http::{MatrixError, Ruma},
};
use ruma::api::client::{context::get_context, filter::LazyLoadOptions};
use serde_json::{Value, json};

use super::history::{self, Source, filter_allows};
use crate::{
    App,
    filter::{self, Candidate},
    format,
    storage::{RoomEvent, history::Page},
    token::Token,
};

/// Most events around the event, before and after together.
const MAX_LIMIT: u64 = 1000;

pub async fn context(
    State(app): State<Arc<App>>,
    request: Ruma<get_context::v3::Request>,
) -> Result<Json<Value>, MatrixError> {
    let user = request.require_user()?;
    let body = &request.body;
    let room_id = body.room_id.as_str();
    let reader = history::reader(&app, &body.room_id, &user.user_id).await?;
    let event = app
        .store
        .room_event(body.event_id.as_str())
        .await?
        .filter(|e| e.room_id == room_id && reader.may_see(e))
        .ok_or_else(|| MatrixError::not_found("Event not found"))?;
    let now = Token { positions: app.store.positions().await?, presence: 0 };
    let limit = u64::from(body.limit).min(MAX_LIMIT) as usize;
    let before_limit = limit / 2;
    let keep = |e: &RoomEvent| reader.may_see(e) && filter_allows(&body.filter, e);
    let source = Source::Room { room_id };
    let before_page = Page { backward: true, cursor: event.pos - 1, bound: crate::storage::history::START, limit: 0 };
    let before = history::scan(&app.store, &source, before_page, before_limit, keep).await?;
    let after_page = Page { backward: false, cursor: event.pos, bound: now.positions.events, limit: 0 };
    let after = history::scan(&app.store, &source, after_page, limit - before_limit, keep).await?;

    let device = Some(user.device_id.as_str());
    let client = |events: &[RoomEvent]| {
        events.iter().map(|e| format::client_event(e, device, true)).collect::<anyhow::Result<Vec<_>>>()
    };
    let last = after.events.last().unwrap_or(&event);
    let all: Vec<&RoomEvent> = before.events.iter().chain([&event]).chain(&after.events).collect();
    let state = state_at(&app, last, &body.filter, &all).await?;
    Ok(Json(json!({
        "event": format::client_event(&event, device, true)?,
        "events_before": client(&before.events)?,
        "events_after": client(&after.events)?,
        "start": history::token_at(&now, before.cursor),
        "end": history::token_at(&now, after.cursor),
        "state": state,
    })))
}

/// The room's state after `last`, through the filter; with lazy loading, of
/// the members only those who sent one of `events`.
async fn state_at(
    app: &App,
    last: &RoomEvent,
    filter: &ruma::api::client::filter::RoomEventFilter,
    events: &[&RoomEvent],
) -> Result<Vec<Value>, MatrixError> {
    let request = QueryStateAtEventRequest {
        room_id: last.room_id.as_str().try_into().map_err(anyhow::Error::from)?,
        event_id: last.event_id.as_str().try_into().map_err(anyhow::Error::from)?,
        after: true,
        filter: None,
    };
    let state = match app.rt.bus.call::<QueryStateAtEvent>(&request).await {
        Ok(response) => response.state,
        // An event the roomserver holds no state for (an outlier): none to give.
        Err(RpcError::Remote(e)) if e.kind == RemoteErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let lazy = matches!(filter.lazy_load_options, LazyLoadOptions::Enabled { .. });
    let mut out = Vec::new();
    for stored in state {
        let event: Value = serde_json::from_str(stored.event.get()).map_err(anyhow::Error::from)?;
        let event_type = event["type"].as_str().unwrap_or_default();
        let sender = event["sender"].as_str().unwrap_or_default();
        if lazy
            && event_type == "m.room.member"
            && !events.iter().any(|e| Some(e.sender.as_str()) == event["state_key"].as_str())
        {
            continue;
        }
        let candidate = Candidate { event_type, sender, room_id: &last.room_id, json: stored.event.get() };
        if !filter::room_event_allows(filter, &candidate) {
            continue;
        }
        out.push(format::state_event(stored.event_id.as_str(), &last.room_id, stored.event.get(), true)?);
    }
    Ok(out)
}
