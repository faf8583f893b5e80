//! The `rooms` part of a sync: joined rooms (timeline, the state at its
//! start, summary, ephemeral events, room account data), invites, knocks and
//! rooms left.

use std::collections::{HashMap, HashSet};

use ruma::api::client::filter::LazyLoadOptions;
use serde_json::{Map, Value, json};

use super::{Request, Response, account_data, state};
use crate::{
    App,
    filter::{self, Candidate},
    format,
    storage::{MembershipChange, Positions, RoomEvent},
    token::Token,
    visibility::Viewer,
};

/// Timeline events per room unless the filter says otherwise.
const DEFAULT_TIMELINE_LIMIT: u64 = 10;
/// Most timeline events per room a filter may ask for.
const MAX_TIMELINE_LIMIT: u64 = 100;
/// Room events read per page while filling a timeline, and at most in all.
const SCAN_PAGE: i64 = 50;
const MAX_SCANNED: usize = 2000;
/// Members named as a room's heroes.
const HEROES: usize = 5;
/// The state an invitee or knocker sees of a room.
const STRIPPED_STATE: &[&str] = &[
    "m.room.create",
    "m.room.join_rules",
    "m.room.name",
    "m.room.avatar",
    "m.room.canonical_alias",
    "m.room.encryption",
];

/// What one room's entry is built from.
struct Window<'a> {
    room_id: &'a str,
    /// Timeline events after this position…
    from: i64,
    /// …up to this one.
    to: i64,
    /// The whole state at the start of the timeline, not only what changed since `from`.
    full_state: bool,
}

pub async fn add_rooms(
    app: &App,
    request: &Request,
    since: &Positions,
    to: &Positions,
    ignored: &[String],
    response: &mut Response,
) -> anyhow::Result<()> {
    let store = &app.store;
    let user = request.user_id.as_str();
    let room_filter = &request.filter.room;
    let initial = request.since.is_none();
    let allowed = |room: &str| filter::room_allows(&room_filter.rooms, &room_filter.not_rooms, room);

    // The latest change of the user's membership of each room since the token.
    let mut changed: HashMap<String, MembershipChange> = HashMap::new();
    if !initial {
        for change in store.membership_changes(&request.user_id, since.events, to.events).await? {
            changed.insert(change.room_id.clone(), change);
        }
    }
    let counts = store.notification_counts(user).await?;
    let counts_changed: HashSet<String> = if initial {
        HashSet::new()
    } else {
        store.notification_count_changes(user, since.notifications, to.notifications).await?.into_iter().collect()
    };
    let mut room_account_data: HashMap<String, Vec<String>> = HashMap::new();
    for (room, data_type) in store.account_data_changes(user, since.account_data, to.account_data).await? {
        if !room.is_empty() {
            room_account_data.entry(room).or_default().push(data_type);
        }
    }

    // An incremental sync looks only at rooms where something happened.
    let active = if initial || request.full_state { None } else { Some(store.active_rooms(since, to).await?) };
    for room_id in store.rooms_with_membership(&request.user_id, "join").await? {
        let quiet = active.as_ref().is_some_and(|a| !a.contains(&room_id))
            && !changed.contains_key(&room_id)
            && !room_account_data.contains_key(&room_id)
            && !counts_changed.contains(&room_id);
        if !allowed(&room_id) || quiet {
            continue;
        }
        let newly_joined = !initial
            && changed.get(&room_id).is_some_and(|c| c.membership == "join")
            && store.membership_at(&room_id, user, since.events).await?.is_none_or(|m| m.membership != "join");
        let full = initial || newly_joined || request.full_state;
        let window = Window {
            room_id: &room_id,
            from: if initial || newly_joined { 0 } else { since.events },
            to: to.events,
            full_state: full,
        };
        let mut entry = room_entry(app, request, &window, ignored).await?;
        let ephemeral = ephemeral(app, request, &room_id, since, to, initial, ignored).await?;
        let data = room_data(app, request, &room_id, room_account_data.get(&room_id)).await?;
        let has_news =
            !entry.timeline.is_empty() || !entry.state.is_empty() || !ephemeral.is_empty() || !data.is_empty();
        if !full && !has_news {
            continue;
        }
        let summary = if full || entry.members_changed { Some(summary(app, &room_id, user).await?) } else { None };
        let prev_batch = history_token(entry.start);
        let room_counts = counts.get(&room_id).cloned().unwrap_or_default();
        let thread_counts: Value = serde_json::from_str(&room_counts.threads).unwrap_or_else(|_| json!({}));
        let mut room = json!({
            "timeline": { "events": std::mem::take(&mut entry.timeline), "limited": entry.limited, "prev_batch": prev_batch },
            state_field(request): { "events": std::mem::take(&mut entry.state) },
            "ephemeral": { "events": ephemeral },
            "account_data": { "events": data },
            "unread_notifications": {
                "notification_count": room_counts.notification_count,
                "highlight_count": room_counts.highlight_count,
            },
            "unread_thread_notifications": thread_counts,
        });
        if let Some(summary) = summary {
            room["summary"] = summary;
        }
        response.join.insert(room_id, room);
    }

    for (room_id, pos, json, stripped) in store.invites(&request.user_id).await? {
        // Invites written after `to` come with a later token.
        if !allowed(&room_id) || (!initial && pos <= since.events) || pos > to.events {
            continue;
        }
        let invite: Value = serde_json::from_str(&json)?;
        if invite["sender"].as_str().is_some_and(|s| ignored.iter().any(|i| i == s)) {
            continue;
        }
        let mut events: Vec<Value> = serde_json::from_str(&stripped)?;
        events.push(strip(&invite));
        response.invite.insert(room_id, json!({ "invite_state": { "events": events } }));
    }

    for room_id in store.rooms_with_membership(&request.user_id, "knock").await? {
        if !allowed(&room_id) || (!initial && !changed.contains_key(&room_id)) {
            continue;
        }
        let mut events = Vec::new();
        for event_type in STRIPPED_STATE.iter().copied().chain(std::iter::once("m.room.member")) {
            let key = if event_type == "m.room.member" { user } else { "" };
            if let Some(json) = store.current_state_json(&room_id, event_type, key).await? {
                events.push(strip(&serde_json::from_str(&json)?));
            }
        }
        response.knock.insert(room_id, json!({ "knock_state": { "events": events } }));
    }

    // Rooms left, kicked or banned from: what happened up to the leave.
    let mut left: Vec<MembershipChange> = Vec::new();
    if initial {
        if room_filter.include_leave {
            for membership in ["leave", "ban"] {
                for room_id in store.rooms_with_membership(&request.user_id, membership).await? {
                    if let Some(change) = store.membership_at(&room_id, user, to.events).await? {
                        left.push(change);
                    }
                }
            }
        }
    } else {
        left.extend(changed.into_values().filter(|c| c.membership == "leave" || c.membership == "ban"));
    }
    for change in left {
        if !allowed(&change.room_id) {
            continue;
        }
        let window = Window {
            room_id: &change.room_id,
            from: if initial { 0 } else { since.events },
            to: change.pos,
            full_state: initial,
        };
        let entry = room_entry(app, request, &window, ignored).await?;
        let prev_batch = history_token(entry.start);
        let room = json!({
            "timeline": { "events": entry.timeline, "limited": entry.limited, "prev_batch": prev_batch },
            state_field(request): { "events": entry.state },
            "account_data": { "events": [] },
        });
        response.leave.insert(change.room_id.clone(), room);
    }
    Ok(())
}

struct Entry {
    timeline: Vec<Value>,
    state: Vec<Value>,
    limited: bool,
    /// The position just before the timeline's first event.
    start: i64,
    /// A member event is in the timeline or the state.
    members_changed: bool,
}

/// The timeline in (from, to] (its newest `limit` events) and the state at its start.
async fn room_entry(app: &App, request: &Request, window: &Window<'_>, ignored: &[String]) -> anyhow::Result<Entry> {
    let store = &app.store;
    let timeline_filter = &request.filter.room.timeline;
    let limit =
        timeline_filter.limit.map(u64::from).unwrap_or(DEFAULT_TIMELINE_LIMIT).clamp(1, MAX_TIMELINE_LIMIT) as usize;
    let viewer = Viewer::load(store, window.room_id, request.user_id.as_str()).await?;
    let wanted = |e: &RoomEvent| {
        let candidate = Candidate { event_type: &e.event_type, sender: &e.sender, room_id: &e.room_id, json: &e.json };
        viewer.may_see(e)
            && (e.state_key.is_some() || !ignored.contains(&e.sender))
            && filter::room_event_allows(timeline_filter, &candidate)
    };
    // The limit counts the events shown: read back in pages until it is
    // met, the window is exhausted, or the read is too long to be worth it.
    let mut shown: Vec<RoomEvent> = Vec::new();
    let mut upper = window.to;
    let mut scanned = 0;
    let mut limited = false;
    loop {
        let page = store.timeline(window.room_id, window.from, upper, SCAN_PAGE).await?;
        let exhausted = (page.len() as i64) < SCAN_PAGE;
        scanned += page.len();
        for event in page.into_iter().rev() {
            upper = event.pos - 1;
            if wanted(&event) {
                if shown.len() == limit {
                    limited = true;
                    break;
                }
                shown.push(event);
            }
        }
        if limited || exhausted {
            break;
        }
        if scanned >= MAX_SCANNED {
            // Older matching events may exist; say so rather than read on.
            limited = true;
            break;
        }
    }
    shown.reverse();
    let start = shown.first().map_or(window.to, |e| e.pos - 1);
    let shown: Vec<&RoomEvent> = shown.iter().collect();
    // Events after the token that the timeline does not show may still have
    // changed the state before its start.
    let gap = start > window.from;

    // With `use_state_after` the state runs to the end of the timeline, and
    // covers every change since the token whether the timeline shows it or not.
    let state_at = if request.use_state_after { window.to } else { start };
    let mut state = if window.full_state {
        state::full_state_at(store, window.room_id, state_at).await?
    } else if gap || request.use_state_after {
        state::changed_state_at(store, window.room_id, window.from, state_at).await?
    } else {
        HashMap::new()
    };
    let lazy = matches!(request.filter.room.state.lazy_load_options, LazyLoadOptions::Enabled { .. });
    // Lazy-loading clients get the member events of the senders they see,
    // of the heroes they name rooms after, and their own. Which member events
    // a client already has is not tracked, so these always come along.
    let mut lazy_members: HashSet<String> = HashSet::new();
    if lazy {
        let joined = store.members(window.room_id, "join").await?;
        let invited = store.members(window.room_id, "invite").await?;
        lazy_members.extend(shown.iter().map(|e| e.sender.clone()));
        lazy_members.extend(heroes(&joined, &invited, request.user_id.as_str()).into_iter().cloned());
        lazy_members.insert(request.user_id.to_string());
        if !window.full_state {
            let keys = lazy_members.iter().map(|m| ("m.room.member".to_owned(), m.clone())).collect();
            state.extend(state::values_at(store, window.room_id, state_at, keys).await?);
        }
    }
    let state_filter = &request.filter.room.state;
    let mut wanted: Vec<String> = state
        .iter()
        .filter(|((event_type, state_key), _)| {
            !lazy || event_type != "m.room.member" || lazy_members.contains(state_key)
        })
        .map(|(_, id)| id.clone())
        .collect();
    wanted.sort();
    let jsons = store.state_events(&wanted).await?;
    let mut state_events = Vec::new();
    let mut members_changed = shown.iter().any(|e| e.event_type == "m.room.member");
    for id in &wanted {
        let Some(((event_type, _), json)) = jsons.get(id) else { continue };
        let sender = serde_json::from_str::<Value>(json)?["sender"].as_str().unwrap_or_default().to_owned();
        let candidate = Candidate { event_type, sender: &sender, room_id: window.room_id, json };
        if !filter::room_event_allows(state_filter, &candidate) {
            continue;
        }
        members_changed |= event_type == "m.room.member";
        state_events.push(format::state_event(id, window.room_id, json, false)?);
    }
    let timeline = shown
        .iter()
        .map(|e| format::client_event(e, Some(request.device_id.as_str()), false))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Entry { timeline, state: state_events, limited, start, members_changed })
}

/// Typing and receipts that changed since the token (all of them on an initial sync).
async fn ephemeral(
    app: &App,
    request: &Request,
    room_id: &str,
    since: &Positions,
    to: &Positions,
    initial: bool,
    ignored: &[String],
) -> anyhow::Result<Vec<Value>> {
    let store = &app.store;
    let filter = &request.filter.room.ephemeral;
    let wanted = |event_type: &str| {
        filter::room_allows(&filter.rooms, &filter.not_rooms, room_id)
            && filter::types_allow(&filter.types, &filter.not_types, event_type)
    };
    let mut events = Vec::new();
    if wanted("m.typing") {
        let from = if initial { 0 } else { since.typing };
        if let Some(typing) = store.typing(room_id, from, to.typing, common::storage::now_ms()).await? {
            let users: Vec<&str> =
                typing.iter().map(|t| t.user_id.as_str()).filter(|u| !ignored.iter().any(|i| i == u)).collect();
            if !users.is_empty() || !initial {
                events.push(json!({ "type": "m.typing", "content": { "user_ids": users } }));
            }
        }
    }
    if wanted("m.receipt") {
        let from = if initial { 0 } else { since.receipts };
        let mut content: Map<String, Value> = Map::new();
        for receipt in store.receipts(room_id, from, to.receipts).await? {
            if receipt.receipt_type == "m.read.private" && receipt.user_id != request.user_id.as_str() {
                continue;
            }
            if ignored.contains(&receipt.user_id) {
                continue;
            }
            let mut data = json!({ "ts": receipt.ts });
            if !receipt.thread_id.is_empty() {
                data["thread_id"] = json!(receipt.thread_id);
            }
            let by_type = content.entry(receipt.event_id).or_insert_with(|| json!({}));
            by_type[&receipt.receipt_type][&receipt.user_id] = data;
        }
        if !content.is_empty() {
            events.push(json!({ "type": "m.receipt", "content": content }));
        }
    }
    Ok(events)
}

async fn room_data(
    app: &App,
    request: &Request,
    room_id: &str,
    types: Option<&Vec<String>>,
) -> anyhow::Result<Vec<Value>> {
    let mut events = Vec::new();
    for data_type in types.into_iter().flatten() {
        let candidate = Candidate { event_type: data_type, sender: request.user_id.as_str(), room_id, json: "{}" };
        if !filter::room_event_allows(&request.filter.room.account_data, &candidate) {
            continue;
        }
        if let Some(content) = account_data(app, &request.user_id, Some(room_id), data_type).await? {
            events.push(json!({ "type": data_type, "content": content }));
        }
    }
    Ok(events)
}

/// Heroes and member counts, for clients to name rooms without a name.
async fn summary(app: &App, room_id: &str, user: &str) -> anyhow::Result<Value> {
    let joined = app.store.members(room_id, "join").await?;
    let invited = app.store.members(room_id, "invite").await?;
    let heroes = heroes(&joined, &invited, user);
    Ok(json!({
        "m.heroes": heroes,
        "m.joined_member_count": joined.len(),
        "m.invited_member_count": invited.len(),
    }))
}

/// A `prev_batch`: only its events position means anything (to `/messages`),
/// so the others are left at zero and the token is the same however late it is made.
fn history_token(events: i64) -> String {
    Token { positions: Positions { events, ..Default::default() }, presence: 0 }.to_string()
}

/// The first members, joined or invited, in stream order, other than `user`.
fn heroes<'a>(joined: &'a [String], invited: &'a [String], user: &str) -> Vec<&'a String> {
    joined.iter().chain(invited).filter(|u| *u != user).take(HEROES).collect()
}

/// Where a room's state goes: `state`, or `state_after` for clients that asked for it.
fn state_field(request: &Request) -> &'static str {
    if request.use_state_after { "state_after" } else { "state" }
}

/// An event as stripped state: type, state key, content, sender.
fn strip(event: &Value) -> Value {
    json!({
        "type": event["type"],
        "state_key": event["state_key"],
        "content": event["content"],
        "sender": event["sender"],
    })
}
