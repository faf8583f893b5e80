//! `GET /_matrix/client/r0/events`, `GET /_matrix/client/v3/events`: the deprecated event stream.
//! The events of the caller's rooms after a token (from `/events` or `/sync`), oldest first,
//! waiting like `/sync` when there are none; with `room_id`, of that one room (peeking a
//! world-readable room, or one the caller is in).

use std::{collections::HashMap, sync::Arc};

use axum::{Json, extract::State};
use common::http::{MatrixError, Ruma};
use ruma::{RoomId, UserId};
use serde_json::{Value, json};

use super::history::{self, Reader, token_at};
use crate::{
    App, format,
    notifier::MAX_TIMEOUT,
    storage::{RoomEvent, history::Page},
    token::Token,
    visibility::Viewer,
};

/// ruma's type for this path (`peeking::listen_to_new_events`) requires
/// `room_id`, which the spec leaves out: without it, the stream is of every
/// room of the caller. So the request is declared here, on the same paths.
pub mod v3 {
    use std::time::Duration;

    use ruma::{
        OwnedRoomId,
        api::{IncomingRequest, auth_scheme::AccessToken, error::DeserializationError},
        metadata,
    };
    use serde::Deserialize;

    pub struct Request {
        /// A token of `/events` or `/sync`; now when absent.
        pub from: Option<String>,
        /// Only this room's events (peeking).
        pub room_id: Option<OwnedRoomId>,
        pub timeout: Option<Duration>,
    }

    metadata! {
        method: GET,
        rate_limited: false,
        authentication: AccessToken,
        history: {
            1.0 => "/_matrix/client/r0/events",
            1.1 => "/_matrix/client/v3/events",
        }
    }

    #[derive(Deserialize)]
    struct Query {
        from: Option<String>,
        room_id: Option<OwnedRoomId>,
        /// Milliseconds.
        timeout: Option<u64>,
    }

    impl IncomingRequest for Request {
        type EndpointError = ruma::api::error::Error;
        /// Never built: the handler answers with JSON of its own (see there).
        type OutgoingResponse = ruma::api::client::peeking::listen_to_new_events::v3::Response;

        fn try_from_http_request_inner(
            request: http::Request<&[u8]>,
            _path_args: &[&str],
        ) -> Result<Self, DeserializationError> {
            let query: Query = serde_html_form::from_str(request.uri().query().unwrap_or_default())?;
            Ok(Request { from: query.from, room_id: query.room_id, timeout: query.timeout.map(Duration::from_millis) })
        }
    }
}

/// Events per answer at most; `end` then stops at the last one.
const CHUNK_LIMIT: usize = 100;
/// Rows read at most for one answer (some may be hidden from the caller);
/// past it the answer ends early, with an `end` to go on from.
const MAX_SCANNED: usize = 1000;

/// Answered as JSON, not ruma's response type, which leaves out an empty `chunk`
/// (and SyTest, as older clients, reads `chunk` on every answer).
pub async fn events(State(app): State<Arc<App>>, request: Ruma<v3::Request>) -> Result<Json<Value>, MatrixError> {
    let user = request.require_user()?;
    let body = &request.body;
    let from = match body.from.as_deref() {
        None | Some("") => Token { positions: app.store.positions().await?, presence: 0 },
        Some(token) => Token::parse_since(token)
            .ok_or_else(|| MatrixError::invalid_param(format!("Unknown from token {token}")))?,
    };
    let room_id = body.room_id.as_deref();
    let ignored = match room_id {
        // Whether the caller may read the room at all: 403 otherwise.
        Some(room_id) => history::reader(&app, room_id, &user.user_id).await?.ignored().to_vec(),
        None => history::ignored_users(&app, &user.user_id).await?,
    };
    let view = View { room_id, ignored };
    let deadline = tokio::time::Instant::now() + body.timeout.unwrap_or_default().min(MAX_TIMEOUT);
    let read = || async {
        read_chunk(&app, &user.user_id, from.positions.events, &view)
            .await
            .map_err(|e| MatrixError::internal(format!("{e:#}")))
    };
    let chunk = app.notifier.poll(user.user_id.as_str(), deadline, read, |c| !c.events.is_empty() || c.more).await?;
    let events = chunk
        .events
        .iter()
        .map(|(event, invite_state)| {
            let mut out = format::client_event(event, Some(user.device_id.as_str()), true)?;
            if let Some(stripped) = invite_state {
                out["unsigned"]["invite_room_state"] = serde_json::from_str(stripped)?;
            }
            Ok(out)
        })
        .collect::<anyhow::Result<Vec<Value>>>()?;
    Ok(Json(json!({ "chunk": events, "start": from.to_string(), "end": token_at(&from, chunk.end) })))
}

/// Whose events are streamed: of one room (peeking), or of every room of the caller.
struct View<'a> {
    room_id: Option<&'a RoomId>,
    ignored: Vec<String>,
}

struct Chunk {
    /// Oldest first, with the stripped state of an invite into another server's room.
    events: Vec<(RoomEvent, Option<String>)>,
    /// The events position the chunk ends at.
    end: i64,
    /// Whether events after `end` are already there.
    more: bool,
}

/// The events after `from` that the caller may see, up to the latest position.
async fn read_chunk(app: &App, user_id: &UserId, from: i64, view: &View<'_>) -> anyhow::Result<Chunk> {
    let store = &app.store;
    let user = user_id.as_str();
    // A token from further on than here (a server restored from a backup) stays where it is.
    let to = store.positions().await?.events.max(from);
    let limit = CHUNK_LIMIT as i64;
    let mut events = Vec::new();
    let mut cursor = from;
    let mut scanned = 0;
    // Each room's reader, loaded when the room first comes up, so the cost
    // follows the events read; afresh on each read, as a wake-up may follow
    // a change of the caller's membership.
    let mut readers: HashMap<String, Reader> = HashMap::new();
    loop {
        // The rows after `cursor`, and how far they cover the range: up to
        // `covered` every row was read.
        let (rows, covered) = match view.room_id {
            Some(room_id) => {
                let page = Page { backward: false, cursor, bound: to, limit };
                let rows = store.room_events_page(room_id.as_str(), page).await?;
                let covered = if rows.len() < CHUNK_LIMIT { to } else { rows.last().map_or(to, |e| e.pos) };
                (rows.into_iter().map(|e| (e, None)).collect::<Vec<_>>(), covered)
            }
            None => {
                let room_events = store.user_events_page(user, cursor, to, limit).await?;
                let invites = store.remote_invites_page(user, cursor, to, limit).await?;
                // Each source is read as far as its last row when it filled its page.
                let mut covered = to;
                if room_events.len() == CHUNK_LIMIT {
                    covered = covered.min(room_events.last().map_or(to, |e| e.pos));
                }
                if invites.len() == CHUNK_LIMIT {
                    covered = covered.min(invites.last().map_or(to, |(e, _)| e.pos));
                }
                let mut rows: Vec<(RoomEvent, Option<String>)> = room_events
                    .into_iter()
                    .map(|e| (e, None))
                    .chain(invites.into_iter().map(|(e, stripped)| (e, Some(stripped))))
                    .filter(|(e, _)| e.pos <= covered)
                    .collect();
                rows.sort_by_key(|(e, _)| e.pos);
                (rows, covered)
            }
        };
        scanned += rows.len();
        load_readers(app, user_id, &view.ignored, &mut readers, &rows).await?;
        for (event, invite_state) in rows {
            if events.len() == CHUNK_LIMIT {
                return Ok(Chunk { events, end: cursor, more: true });
            }
            cursor = event.pos;
            if shown(readers.get(&event.room_id), view.room_id.is_some(), user, &event) {
                events.push((event, invite_state));
            }
        }
        if covered >= to {
            return Ok(Chunk { events, end: to, more: false });
        }
        cursor = covered;
        if events.len() == CHUNK_LIMIT || scanned >= MAX_SCANNED {
            return Ok(Chunk { events, end: cursor, more: true });
        }
    }
}

/// The readers of the rooms of `rows` not loaded yet, in one query.
async fn load_readers(
    app: &App,
    user_id: &UserId,
    ignored: &[String],
    readers: &mut HashMap<String, Reader>,
    rows: &[(RoomEvent, Option<String>)],
) -> anyhow::Result<()> {
    let mut missing: Vec<&str> =
        rows.iter().map(|(e, _)| e.room_id.as_str()).filter(|room| !readers.contains_key(*room)).collect();
    missing.sort();
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    let mut histories = app.store.membership_histories(user_id, &missing).await?;
    for room in missing {
        let viewer = Viewer::new(user_id.as_str(), histories.remove(room).unwrap_or_default());
        readers.insert(room.to_owned(), Reader::new(viewer, ignored.to_vec()));
    }
    Ok(())
}

/// Whether the caller sees `event` in the stream: their own membership
/// changes always; other events when history visibility lets them see it
/// (as in `/sync`) and it is of their part of the room (see
/// `Viewer::in_room_for`) — or, peeking, when the room was world readable then.
fn shown(reader: Option<&Reader>, peeking: bool, user: &str, event: &RoomEvent) -> bool {
    if event.event_type == "m.room.member" && event.state_key.as_deref() == Some(user) {
        return true;
    }
    reader.is_some_and(|reader| {
        reader.may_see(event)
            && (reader.viewer().in_room_for(event.pos) || peeking && event.visibility == "world_readable")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_serves_both_paths() {
        use ruma::api::{Metadata, path_builder::PathBuilder};
        let paths: Vec<&str> = v3::Request::PATH_BUILDER.all_paths().collect();
        assert_eq!(paths, vec!["/_matrix/client/r0/events", "/_matrix/client/v3/events"]);
    }
}
