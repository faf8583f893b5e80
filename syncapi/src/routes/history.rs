//! What the room history paths share: who may read a room's history, paging
//! through events a viewer may see with a bounded amount of work per
//! request, and pagination tokens.

use common::{
    api::{
        roomserver::{QueryMembership, QueryMembershipRequest},
        userapi::{QueryAccountData, QueryAccountDataRequest},
    },
    bus::{RemoteErrorKind, RpcError},
    http::MatrixError,
};
use ruma::{RoomId, UserId};
use serde_json::Value;

use crate::{
    App,
    filter::{self, Candidate},
    storage::{Positions, RoomEvent, Store, history::Page},
    token::Token,
    visibility::Viewer,
};

/// Most rows one request reads to fill a page (most may be invisible to the
/// viewer); past it the page ends early, with a token to go on from.
const MAX_SCANNED: usize = 5000;
/// Fewest rows read at a time.
const MIN_BATCH: usize = 20;

/// Who reads a room's history: what the history visibility lets them see,
/// less what the users they ignore sent (state events excepted, as in `/sync`).
pub struct Reader {
    viewer: Viewer,
    ignored: Vec<String>,
}

impl Reader {
    pub fn new(viewer: Viewer, ignored: Vec<String>) -> Reader {
        Reader { viewer, ignored }
    }

    pub fn viewer(&self) -> &Viewer {
        &self.viewer
    }

    pub fn ignored(&self) -> &[String] {
        &self.ignored
    }

    pub fn may_see(&self, event: &RoomEvent) -> bool {
        self.viewer.may_see(event) && (event.state_key.is_some() || !self.ignored.contains(&event.sender))
    }
}

/// The reader of the room's history, or 403 when the user has forgotten the
/// room, or was never in it and it is not world readable.
pub async fn reader(app: &App, room_id: &RoomId, user_id: &UserId) -> Result<Reader, MatrixError> {
    let request = QueryMembershipRequest { room_id: room_id.to_owned(), user_id: user_id.to_owned() };
    if app.rt.bus.call::<QueryMembership>(&request).await?.forgotten {
        return Err(MatrixError::forbidden("You have forgotten this room"));
    }
    let store = &app.store;
    let ever_member = store.membership_at(room_id.as_str(), user_id.as_str(), i64::MAX).await?.is_some();
    if !ever_member && !world_readable(store, room_id.as_str()).await? {
        return Err(MatrixError::forbidden("You are not a member of this room and were never one"));
    }
    let viewer = Viewer::load(store, room_id.as_str(), user_id.as_str()).await?;
    Ok(Reader { viewer, ignored: ignored_users(app, user_id).await? })
}

/// The users on `user_id`'s `m.ignored_user_list`.
pub async fn ignored_users(app: &App, user_id: &UserId) -> Result<Vec<String>, MatrixError> {
    let request = QueryAccountDataRequest {
        user_id: user_id.to_owned(),
        room_id: None,
        data_type: "m.ignored_user_list".to_owned(),
    };
    let raw = match app.rt.bus.call::<QueryAccountData>(&request).await {
        Ok(raw) => raw,
        Err(RpcError::Remote(e)) if e.kind == RemoteErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let content: Value = serde_json::from_str(raw.get()).map_err(anyhow::Error::from)?;
    Ok(content["ignored_users"].as_object().map(|users| users.keys().cloned().collect()).unwrap_or_default())
}

pub async fn world_readable(store: &Store, room_id: &str) -> anyhow::Result<bool> {
    let json = store.current_state_json(store.pool(), room_id, "m.room.history_visibility", "").await?;
    Ok(json
        .and_then(|j| serde_json::from_str::<Value>(&j).ok())
        .is_some_and(|v| v["content"]["history_visibility"] == "world_readable"))
}

/// A pagination token from a client: 400 when it is not one of ours.
pub fn parse_token(token: &str) -> Result<Token, MatrixError> {
    Token::parse(token).ok_or_else(|| MatrixError::invalid_param(format!("Unknown pagination token {token}")))
}

/// `base` with its events position moved to `events`.
pub fn token_at(base: &Token, events: i64) -> String {
    Token { positions: Positions { events, ..base.positions }, presence: base.presence }.to_string()
}

/// Where events are read from.
pub enum Source<'a> {
    Room { room_id: &'a str },
    Relations { room_id: &'a str, parent: &'a str, depth: u32, rel_type: Option<&'a str>, event_type: Option<&'a str> },
}

impl Source<'_> {
    async fn fetch(&self, store: &Store, page: Page) -> anyhow::Result<Vec<RoomEvent>> {
        match self {
            Source::Room { room_id } => store.room_events_page(room_id, page).await,
            Source::Relations { room_id, parent, depth, rel_type, event_type } => {
                store.relations_page(room_id, parent, *depth, *rel_type, *event_type, page).await
            }
        }
    }
}

pub struct Scanned {
    /// In page order.
    pub events: Vec<RoomEvent>,
    /// The position reading stopped at, as a page cursor.
    pub cursor: i64,
    /// Whether rows past `cursor` remain unread.
    pub more: bool,
}

/// Up to `wanted` events of `source` that `keep` accepts, from `page`'s
/// cursor on; `page.limit` is ignored.
pub async fn scan(
    store: &Store,
    source: &Source<'_>,
    page: Page,
    wanted: usize,
    keep: impl Fn(&RoomEvent) -> bool,
) -> anyhow::Result<Scanned> {
    let mut events = Vec::new();
    let mut cursor = page.cursor;
    let mut scanned = 0;
    loop {
        let batch = (wanted - events.len() + 1).max(MIN_BATCH);
        let rows = source.fetch(store, Page { cursor, limit: batch as i64, ..page }).await?;
        let exhausted = rows.len() < batch;
        for row in rows {
            if events.len() == wanted {
                return Ok(Scanned { events, cursor, more: true });
            }
            cursor = if page.backward { row.pos - 1 } else { row.pos };
            scanned += 1;
            if keep(&row) {
                events.push(row);
            }
        }
        if exhausted {
            return Ok(Scanned { events, cursor, more: false });
        }
        if scanned >= MAX_SCANNED {
            return Ok(Scanned { events, cursor, more: true });
        }
    }
}

pub fn filter_allows(filter: &ruma::api::client::filter::RoomEventFilter, event: &RoomEvent) -> bool {
    let candidate =
        Candidate { event_type: &event.event_type, sender: &event.sender, room_id: &event.room_id, json: &event.json };
    filter::room_event_allows(filter, &candidate)
}

/// The member events of `senders` in the room's state at position `at`
/// (their current ones where the projection holds no change), for lazy loading.
pub async fn member_state(store: &Store, room_id: &str, at: i64, senders: &[String]) -> anyhow::Result<Vec<Value>> {
    let mut senders = senders.to_vec();
    senders.sort();
    senders.dedup();
    let mut ids: Vec<String> = Vec::new();
    let found = store.member_events_at(room_id, at, Some(&senders)).await?;
    let missing: Vec<(String, String)> = senders
        .iter()
        .filter(|s| !found.iter().any(|(user, _)| user == *s))
        .map(|s| ("m.room.member".to_owned(), s.clone()))
        .collect();
    ids.extend(found.into_iter().map(|(_, id)| id));
    ids.extend(store.current_state_of(room_id, &missing).await?.into_values());
    ids.sort();
    ids.dedup();
    let jsons = store.state_events(&ids).await?;
    let mut state = Vec::new();
    for id in &ids {
        if let Some((_, json)) = jsons.get(id) {
            state.push(crate::format::state_event(id, room_id, json, true)?);
        }
    }
    Ok(state)
}
