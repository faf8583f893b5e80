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
    storage::{MemberSummary, MembershipChange, Positions, RoomEvent, Span, Store},
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

/// Every room's entry is built from the same few queries, each asked once
/// for all rooms (see `storage::rooms`), so a sync costs the same number of
/// queries whether the user is in one room or thousands.
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
    let memberships = store.memberships(&request.user_id).await?;
    let rooms_with = |membership: &'static str| {
        memberships.iter().filter(move |(_, m)| m == membership).map(|(room, _)| room.as_str())
    };

    // An incremental sync looks only at rooms where something happened.
    let active = if initial || request.full_state { None } else { Some(store.active_rooms(since, to).await?) };
    let quiet = |room: &str| {
        active.as_ref().is_some_and(|a| !a.contains(room))
            && !changed.contains_key(room)
            && !room_account_data.contains_key(room)
            && !counts_changed.contains(room)
    };
    let joined: Vec<&str> = rooms_with("join").filter(|room| allowed(room) && !quiet(room)).collect();
    // Rooms left, kicked or banned from: what happened up to the leave.
    let left_rooms: Vec<&str> = if initial {
        if room_filter.include_leave { rooms_with("leave").chain(rooms_with("ban")).collect() } else { Vec::new() }
    } else {
        changed
            .values()
            .filter(|c| c.membership == "leave" || c.membership == "ban")
            .map(|c| c.room_id.as_str())
            .collect()
    };
    let left_rooms: Vec<&str> = left_rooms.into_iter().filter(|room| allowed(room)).collect();
    let histories =
        store.membership_histories(&request.user_id, &[joined.as_slice(), left_rooms.as_slice()].concat()).await?;
    // The user's membership of a room at a position (the last change at or before it).
    let membership_at =
        |room: &str, at: i64| histories.get(room).and_then(|history| history.iter().rev().find(|c| c.pos <= at));

    let windows: Vec<Window> = joined
        .iter()
        .map(|&room_id| {
            let newly_joined = !initial
                && changed.get(room_id).is_some_and(|c| c.membership == "join")
                && membership_at(room_id, since.events).is_none_or(|m| m.membership != "join");
            Window {
                room_id,
                from: if initial || newly_joined { 0 } else { since.events },
                to: to.events,
                full_state: initial || newly_joined || request.full_state,
            }
        })
        .collect();
    let mut members = Members::default();
    let entries = room_entries(app, request, &windows, &histories, &mut members, ignored).await?;
    let mut ephemerals = ephemeral(app, request, &joined, since, to, initial, ignored).await?;
    let mut shown = Vec::new();
    for (window, entry) in windows.iter().zip(entries) {
        let ephemeral = ephemerals.remove(window.room_id).unwrap_or_default();
        let data = room_data(app, request, window.room_id, room_account_data.get(window.room_id)).await?;
        let has_news =
            !entry.timeline.is_empty() || !entry.state.is_empty() || !ephemeral.is_empty() || !data.is_empty();
        if window.full_state || has_news {
            shown.push((window, entry, ephemeral, data));
        }
    }
    let summarised: Vec<&str> =
        shown.iter().filter(|(w, e, ..)| w.full_state || e.members_changed).map(|(w, ..)| w.room_id).collect();
    members.load(store, &summarised).await?;
    for (window, entry, ephemeral, data) in shown {
        let room_id = window.room_id;
        let prev_batch = history_token(entry.start);
        let room_counts = counts.get(room_id).cloned().unwrap_or_default();
        let thread_counts: Value = serde_json::from_str(&room_counts.threads).unwrap_or_else(|_| json!({}));
        let mut room = json!({
            "timeline": { "events": entry.timeline, "limited": entry.limited, "prev_batch": prev_batch },
            state_field(request): { "events": entry.state },
            "ephemeral": { "events": ephemeral },
            "account_data": { "events": data },
            "unread_notifications": {
                "notification_count": room_counts.notification_count,
                "highlight_count": room_counts.highlight_count,
            },
            "unread_thread_notifications": thread_counts,
        });
        if window.full_state || entry.members_changed {
            room["summary"] = members.summary(room_id, user);
        }
        response.join.insert(room_id.to_owned(), room);
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

    let knocked: Vec<&str> =
        rooms_with("knock").filter(|room| allowed(room) && (initial || changed.contains_key(*room))).collect();
    add_knocks(app, user, &knocked, response).await?;

    let mut left_windows = Vec::new();
    for room_id in left_rooms {
        let change = if initial { membership_at(room_id, to.events) } else { changed.get(room_id) };
        if let Some(change) = change {
            left_windows.push(Window {
                room_id,
                from: if initial { 0 } else { since.events },
                to: change.pos,
                full_state: initial,
            });
        }
    }
    let entries = room_entries(app, request, &left_windows, &histories, &mut members, ignored).await?;
    for (window, entry) in left_windows.iter().zip(entries) {
        let prev_batch = history_token(entry.start);
        let room = json!({
            "timeline": { "events": entry.timeline, "limited": entry.limited, "prev_batch": prev_batch },
            state_field(request): { "events": entry.state },
            "account_data": { "events": [] },
        });
        response.leave.insert(window.room_id.to_owned(), room);
    }
    Ok(())
}

/// The knock section: each room's stripped state and the user's knock.
async fn add_knocks(app: &App, user: &str, rooms: &[&str], response: &mut Response) -> anyhow::Result<()> {
    let types = || STRIPPED_STATE.iter().copied().chain(std::iter::once("m.room.member"));
    let key_of = |event_type: &str| if event_type == "m.room.member" { user } else { "" };
    let keys: Vec<(&str, &str, &str)> =
        rooms.iter().flat_map(|room| types().map(move |t| (*room, t, key_of(t)))).collect();
    let current = app.store.current_state_keys(&keys).await?;
    let ids: Vec<String> = current.values().flat_map(|state| state.values().cloned()).collect();
    let jsons = app.store.state_events(&ids).await?;
    for room_id in rooms {
        let mut events = Vec::new();
        for event_type in types() {
            let key = (event_type.to_owned(), key_of(event_type).to_owned());
            let id = current.get(*room_id).and_then(|state| state.get(&key));
            if let Some((_, json)) = id.and_then(|id| jsons.get(id)) {
                events.push(strip(&serde_json::from_str(json)?));
            }
        }
        response.knock.insert((*room_id).to_owned(), json!({ "knock_state": { "events": events } }));
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

/// How far one room's timeline is filled.
struct Fill {
    /// Newest first.
    shown: Vec<RoomEvent>,
    /// Events at or below this position are still to read.
    upper: i64,
    scanned: usize,
    limited: bool,
    done: bool,
}

/// For each window (the rooms distinct): the timeline in (from, to] (its
/// newest `limit` events) and the state at its start.
async fn room_entries(
    app: &App,
    request: &Request,
    windows: &[Window<'_>],
    histories: &HashMap<String, Vec<MembershipChange>>,
    members: &mut Members,
    ignored: &[String],
) -> anyhow::Result<Vec<Entry>> {
    if windows.is_empty() {
        return Ok(Vec::new());
    }
    let store = &app.store;
    let user = request.user_id.as_str();
    let timeline_filter = &request.filter.room.timeline;
    let limit =
        timeline_filter.limit.map(u64::from).unwrap_or(DEFAULT_TIMELINE_LIMIT).clamp(1, MAX_TIMELINE_LIMIT) as usize;
    let viewers: Vec<Viewer> =
        windows.iter().map(|w| Viewer::new(user, histories.get(w.room_id).cloned().unwrap_or_default())).collect();
    let wanted = |viewer: &Viewer, e: &RoomEvent| {
        let candidate = Candidate { event_type: &e.event_type, sender: &e.sender, room_id: &e.room_id, json: &e.json };
        viewer.may_see(e)
            && (e.state_key.is_some() || !ignored.contains(&e.sender))
            && filter::room_event_allows(timeline_filter, &candidate)
    };
    // The limit counts the events shown: the rooms whose timelines are not
    // full yet are read back a page at a time, all in one query per page,
    // until the limit is met, the window is exhausted, or the read is too
    // long to be worth it. The first page is the limit and one more: enough
    // when the filter lets every event through.
    let mut fills: Vec<Fill> = windows
        .iter()
        .map(|w| Fill { shown: Vec::new(), upper: w.to, scanned: 0, limited: false, done: false })
        .collect();
    let mut page = limit as i64 + 1;
    loop {
        let pending: Vec<usize> = (0..windows.len()).filter(|&i| !fills[i].done).collect();
        if pending.is_empty() {
            break;
        }
        let spans: Vec<Span> = pending
            .iter()
            .map(|&i| Span { room_id: windows[i].room_id, after: windows[i].from, upto: fills[i].upper })
            .collect();
        let mut pages = store.timelines(&spans, page).await?;
        for i in pending {
            let events = pages.remove(windows[i].room_id).unwrap_or_default();
            let fill = &mut fills[i];
            let exhausted = (events.len() as i64) < page;
            fill.scanned += events.len();
            for event in events.into_iter().rev() {
                fill.upper = event.pos - 1;
                if wanted(&viewers[i], &event) {
                    if fill.shown.len() == limit {
                        fill.limited = true;
                        break;
                    }
                    fill.shown.push(event);
                }
            }
            if fill.limited || exhausted {
                fill.done = true;
            } else if fill.scanned >= MAX_SCANNED {
                // Older matching events may exist; say so rather than read on.
                fill.limited = true;
                fill.done = true;
            }
        }
        page = SCAN_PAGE;
    }

    let lazy = matches!(request.filter.room.state.lazy_load_options, LazyLoadOptions::Enabled { .. });
    if lazy {
        members.load(store, &windows.iter().map(|w| w.room_id).collect::<Vec<_>>()).await?;
    }
    let mut starts = Vec::with_capacity(windows.len());
    let mut lazy_members: Vec<HashSet<String>> = Vec::with_capacity(windows.len());
    let mut wants = Vec::with_capacity(windows.len());
    for (window, fill) in windows.iter().zip(&mut fills) {
        fill.shown.reverse();
        let start = fill.shown.first().map_or(window.to, |e| e.pos - 1);
        starts.push(start);
        // Events after the token that the timeline does not show may still
        // have changed the state before its start.
        let gap = start > window.from;
        // With `use_state_after` the state runs to the end of the timeline, and
        // covers every change since the token whether the timeline shows it or not.
        let state_at = if request.use_state_after { window.to } else { start };
        // Lazy-loading clients get the member events of the senders they see,
        // of the heroes they name rooms after, and their own. Which member events
        // a client already has is not tracked, so these always come along.
        let mut room_lazy: HashSet<String> = HashSet::new();
        if lazy {
            room_lazy.extend(fill.shown.iter().map(|e| e.sender.clone()));
            room_lazy.extend(members.heroes(window.room_id, user));
            room_lazy.insert(user.to_owned());
        }
        let keys = if lazy && !window.full_state {
            room_lazy.iter().map(|m| ("m.room.member".to_owned(), m.clone())).collect()
        } else {
            HashSet::new()
        };
        let changed_after = (!window.full_state && (gap || request.use_state_after)).then_some(window.from);
        wants.push(state::Want {
            room_id: window.room_id,
            at: state_at,
            whole: window.full_state,
            changed_after,
            keys,
        });
        lazy_members.push(room_lazy);
    }
    let mut states = state::states_at(store, &wants).await?;

    let mut shown_state: Vec<Vec<String>> = Vec::with_capacity(windows.len());
    for (window, room_lazy) in windows.iter().zip(&lazy_members) {
        let state = states.remove(window.room_id).unwrap_or_default();
        let mut ids: Vec<String> = state
            .into_iter()
            .filter(|((event_type, state_key), _)| {
                !lazy || event_type != "m.room.member" || room_lazy.contains(state_key)
            })
            .map(|(_, id)| id)
            .collect();
        ids.sort();
        shown_state.push(ids);
    }
    let jsons = store.state_events(&shown_state.concat()).await?;

    let state_filter = &request.filter.room.state;
    let mut entries = Vec::with_capacity(windows.len());
    for (((window, fill), ids), start) in windows.iter().zip(fills).zip(shown_state).zip(starts) {
        let mut state_events = Vec::new();
        let mut members_changed = fill.shown.iter().any(|e| e.event_type == "m.room.member");
        for id in &ids {
            let Some(((event_type, _), json)) = jsons.get(id) else { continue };
            let sender = serde_json::from_str::<Value>(json)?["sender"].as_str().unwrap_or_default().to_owned();
            let candidate = Candidate { event_type, sender: &sender, room_id: window.room_id, json };
            if !filter::room_event_allows(state_filter, &candidate) {
                continue;
            }
            members_changed |= event_type == "m.room.member";
            state_events.push(format::state_event(id, window.room_id, json, false)?);
        }
        let timeline = fill
            .shown
            .iter()
            .map(|e| format::client_event(e, Some(request.device_id.as_str()), false))
            .collect::<anyhow::Result<Vec<_>>>()?;
        entries.push(Entry { timeline, state: state_events, limited: fill.limited, start, members_changed });
    }
    Ok(entries)
}

/// Typing and receipts of each room that changed since the token (all of
/// them on an initial sync); rooms without any are left out.
async fn ephemeral(
    app: &App,
    request: &Request,
    rooms: &[&str],
    since: &Positions,
    to: &Positions,
    initial: bool,
    ignored: &[String],
) -> anyhow::Result<HashMap<String, Vec<Value>>> {
    let store = &app.store;
    let filter = &request.filter.room.ephemeral;
    let wanted = |event_type: &'static str| {
        rooms
            .iter()
            .copied()
            .filter(|room| {
                filter::room_allows(&filter.rooms, &filter.not_rooms, room)
                    && filter::types_allow(&filter.types, &filter.not_types, event_type)
            })
            .collect::<Vec<&str>>()
    };
    let mut events: HashMap<String, Vec<Value>> = HashMap::new();
    let from = if initial { 0 } else { since.typing };
    for (room_id, typing) in store.typing(&wanted("m.typing"), from, to.typing, common::storage::now_ms()).await? {
        let users: Vec<&str> =
            typing.iter().map(|t| t.user_id.as_str()).filter(|u| !ignored.iter().any(|i| i == u)).collect();
        if !users.is_empty() || !initial {
            events.entry(room_id).or_default().push(json!({ "type": "m.typing", "content": { "user_ids": users } }));
        }
    }
    let from = if initial { 0 } else { since.receipts };
    for (room_id, receipts) in store.receipts(&wanted("m.receipt"), from, to.receipts).await? {
        let mut content: Map<String, Value> = Map::new();
        for receipt in receipts {
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
            events.entry(room_id).or_default().push(json!({ "type": "m.receipt", "content": content }));
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

/// Rooms' member counts and first members, read once for all the rooms
/// that need them.
#[derive(Default)]
struct Members(HashMap<String, MemberSummary>);

impl Members {
    async fn load(&mut self, store: &Store, rooms: &[&str]) -> anyhow::Result<()> {
        let missing: Vec<&str> = rooms.iter().copied().filter(|room| !self.0.contains_key(*room)).collect();
        // One more than the heroes: the user may be among the first.
        let mut found = store.member_summaries(&missing, HEROES as i64 + 1).await?;
        for room in missing {
            self.0.insert(room.to_owned(), found.remove(room).unwrap_or_default());
        }
        Ok(())
    }

    /// The first members, joined or invited, in stream order, other than `user`.
    fn heroes(&self, room_id: &str, user: &str) -> Vec<String> {
        let Some(summary) = self.0.get(room_id) else { return Vec::new() };
        summary.first_joined.iter().chain(&summary.first_invited).filter(|u| *u != user).take(HEROES).cloned().collect()
    }

    /// Heroes and member counts, for clients to name rooms without a name.
    fn summary(&self, room_id: &str, user: &str) -> Value {
        let (joined, invited) = self.0.get(room_id).map_or((0, 0), |s| (s.joined, s.invited));
        json!({
            "m.heroes": self.heroes(room_id, user),
            "m.joined_member_count": joined,
            "m.invited_member_count": invited,
        })
    }
}

/// A `prev_batch`: only its events position means anything (to `/messages`),
/// so the others are left at zero and the token is the same however late it is made.
fn history_token(events: i64) -> String {
    Token { positions: Positions { events, ..Default::default() }, presence: 0 }.to_string()
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
