//! `GET /rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]]`:
//! the events relating to an event, newest first unless asked otherwise.

use std::sync::Arc;

use axum::{Json, extract::State};
use common::http::{MatrixError, Ruma};
use ruma::{
    EventId, RoomId, UInt,
    api::{
        Direction,
        client::relations::{
            get_relating_events, get_relating_events_with_rel_type, get_relating_events_with_rel_type_and_event_type,
        },
    },
};
use serde_json::{Value, json};

use super::history::{self, Source, parse_token, token_at};
use crate::{
    App, format,
    storage::history::{MAX_RELATION_DEPTH, Page},
    token::Token,
};

/// Events per page unless the client asks otherwise, and at most, as Synapse has them.
const DEFAULT_LIMIT: u64 = 5;
const MAX_LIMIT: u64 = 1000;

struct Query<'a> {
    room_id: &'a RoomId,
    event_id: &'a EventId,
    rel_type: Option<String>,
    event_type: Option<String>,
    from: Option<&'a str>,
    to: Option<&'a str>,
    dir: Direction,
    limit: Option<UInt>,
    recurse: bool,
}

/// The query of any of the three paths: the fields they share, with the
/// relation type and event type the longer ones add.
macro_rules! query {
    ($body:expr, $rel_type:expr, $event_type:expr) => {
        Query {
            room_id: &$body.room_id,
            event_id: &$body.event_id,
            rel_type: $rel_type,
            event_type: $event_type,
            from: $body.from.as_deref(),
            to: $body.to.as_deref(),
            dir: $body.dir,
            limit: $body.limit,
            recurse: $body.recurse,
        }
    };
}

pub async fn relations(
    State(app): State<Arc<App>>,
    request: Ruma<get_relating_events::v1::Request>,
) -> Result<Json<Value>, MatrixError> {
    let user = request.require_user()?;
    let query = query!(request.body, None, None);
    answer(&app, user, query).await
}

pub async fn relations_of_type(
    State(app): State<Arc<App>>,
    request: Ruma<get_relating_events_with_rel_type::v1::Request>,
) -> Result<Json<Value>, MatrixError> {
    let user = request.require_user()?;
    let query = query!(request.body, Some(request.body.rel_type.to_string()), None);
    answer(&app, user, query).await
}

pub async fn relations_of_type_and_event_type(
    State(app): State<Arc<App>>,
    request: Ruma<get_relating_events_with_rel_type_and_event_type::v1::Request>,
) -> Result<Json<Value>, MatrixError> {
    let user = request.require_user()?;
    let query =
        query!(request.body, Some(request.body.rel_type.to_string()), Some(request.body.event_type.to_string()));
    answer(&app, user, query).await
}

async fn answer(
    app: &App,
    user: &common::api::userapi::TokenOwner,
    query: Query<'_>,
) -> Result<Json<Value>, MatrixError> {
    let reader = history::reader(app, query.room_id, &user.user_id).await?;
    let room_id = query.room_id.as_str();
    app.store
        .room_event(query.event_id.as_str())
        .await?
        .filter(|e| e.room_id == room_id && reader.may_see(e))
        .ok_or_else(|| MatrixError::not_found("Unknown parent event"))?;
    let backward = query.dir == Direction::Backward;
    let now = Token { positions: app.store.positions().await?, presence: 0 };
    let from = match query.from {
        Some(from) => parse_token(from)?,
        None if backward => now,
        None => Token {
            positions: crate::storage::Positions { events: crate::storage::history::START, ..now.positions },
            presence: 0,
        },
    };
    let to = query.to.map(parse_token).transpose()?;
    let bound = match (backward, to) {
        (true, to) => to.map_or(crate::storage::history::START, |t| t.positions.events),
        (false, to) => to.map_or(now.positions.events, |t| t.positions.events.min(now.positions.events)),
    };
    let limit = query.limit.map_or(DEFAULT_LIMIT, u64::from).min(MAX_LIMIT) as usize;
    let depth = if query.recurse { MAX_RELATION_DEPTH } else { 1 };
    let source = Source::Relations {
        room_id,
        parent: query.event_id.as_str(),
        depth,
        rel_type: query.rel_type.as_deref(),
        event_type: query.event_type.as_deref(),
    };
    let page = Page { backward, cursor: from.positions.events, bound, limit: 0 };
    let scanned = history::scan(&app.store, &source, page, limit, |e| reader.may_see(e)).await?;
    let mut answer = json!({
        "chunk": scanned
            .events
            .iter()
            .map(|e| format::client_event(e, Some(user.device_id.as_str()), true))
            .collect::<anyhow::Result<Vec<_>>>()?,
    });
    if query.from.is_some() {
        answer["prev_batch"] = json!(from.to_string());
    }
    if scanned.more {
        answer["next_batch"] = json!(token_at(&from, scanned.cursor));
    }
    if query.recurse {
        answer["recursion_depth"] = json!(depth);
    }
    Ok(Json(answer))
}
