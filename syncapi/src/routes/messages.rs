//! `GET /rooms/{roomId}/messages`: the room's history a page at a time, in
//! either direction, as far as the caller may see it.

use std::sync::Arc;

use axum::{Json, extract::State};
use common::http::{MatrixError, Ruma};
use ruma::api::{
    Direction,
    client::{filter::LazyLoadOptions, message::get_message_events},
};
use serde_json::{Value, json};

use super::history::{self, Source, filter_allows, parse_token, token_at};
use crate::{
    App, backfill, format,
    storage::{
        RoomEvent,
        history::{Page, START},
    },
    token::Token,
};

/// Most events per page, as Synapse caps it.
const MAX_LIMIT: u64 = 1000;

/// Fewest events asked of other servers at a time: a page that needs only a
/// few more would otherwise cost a round trip for every few events.
const MIN_BACKFILL: usize = 20;

pub async fn messages(
    State(app): State<Arc<App>>,
    request: Ruma<get_message_events::v3::Request>,
) -> Result<Json<Value>, MatrixError> {
    let user = request.require_user()?;
    let body = &request.body;
    let room_id = body.room_id.as_str();
    let backward = body.dir == Direction::Backward;
    let now = app.store.positions().await?;
    let from = match &body.from {
        Some(from) => parse_token(from)?,
        // Per spec v1.16: from the latest event backwards, from the first one forwards.
        None if backward => Token { positions: now, presence: 0 },
        None => Token { positions: crate::storage::Positions { events: START, ..now }, presence: 0 },
    };
    let to = body.to.as_deref().map(parse_token).transpose()?;
    let reader = history::reader(&app, &body.room_id, &user.user_id).await?;
    let bound = match (backward, to) {
        (true, to) => to.map_or(START, |t| t.positions.events),
        (false, to) => to.map_or(now.events, |t| t.positions.events.min(now.events)),
    };
    let limit = u64::from(body.limit).min(MAX_LIMIT) as usize;
    let page = Page { backward, cursor: from.positions.events, bound, limit: 0 };
    let keep = |e: &RoomEvent| reader.may_see(e) && filter_allows(&body.filter, e);
    let mut scanned = history::scan(&app.store, &Source::Room { room_id }, page, limit, keep).await?;
    // Reaching the start of what is here: the room may be older than our
    // part in it, and its other servers have the rest.
    if backward && to.is_none() && !scanned.more && scanned.events.len() < limit {
        let wanted = limit - scanned.events.len();
        if backfill::fill(&app, &body.room_id, wanted.max(MIN_BACKFILL)).await? {
            let rest = Page { cursor: scanned.cursor, ..page };
            let more = history::scan(&app.store, &Source::Room { room_id }, rest, wanted, keep).await?;
            scanned.events.extend(more.events);
            // Older history may remain there: the next page asks again.
            (scanned.cursor, scanned.more) = (more.cursor, true);
        }
    }

    let mut answer = json!({
        "chunk": scanned
            .events
            .iter()
            .map(|e| format::client_event(e, Some(user.device_id.as_str()), true))
            .collect::<anyhow::Result<Vec<_>>>()?,
        "start": from.to_string(),
    });
    if scanned.more {
        answer["end"] = json!(token_at(&from, scanned.cursor));
    }
    if matches!(body.filter.lazy_load_options, LazyLoadOptions::Enabled { .. })
        && let Some(newest) = scanned.events.iter().map(|e| e.pos).max()
    {
        let senders: Vec<String> = scanned.events.iter().map(|e| e.sender.clone()).collect();
        answer["state"] = json!(history::member_state(&app.store, room_id, newest, &senders).await?);
    }
    Ok(Json(answer))
}
