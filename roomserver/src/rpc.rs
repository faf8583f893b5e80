//! The questions the roomserver answers, one handler per RPC method.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    future::Future,
    sync::Arc,
};

use common::{
    Runtime,
    api::roomserver::*,
    bus::{RemoteError, RemoteErrorKind, Rpc, serve},
};
use ruma::{OwnedEventId, OwnedUserId, RoomId, events::StateEventType};

use crate::{
    input::resolve::auth_closure,
    storage::{EventRow, EventStatus, StateMap, Store},
};

/// Most ids or events a single query may ask for.
const MAX_PER_QUERY: usize = 1000;

fn serve_with<R, H, F>(rt: &Runtime, store: &Store, handler: H)
where
    R: Rpc + 'static,
    H: Fn(Store, R::Request) -> F + Send + Sync + Clone + 'static,
    F: Future<Output = Result<R::Response, RemoteError>> + Send + 'static,
{
    let (bus, shutdown, store) = (rt.bus.clone(), rt.shutdown.clone(), store.clone());
    rt.spawn(
        R::METHOD,
        serve::<R, _, _>(bus, shutdown, move |request| {
            let (store, handler) = (store.clone(), handler.clone());
            async move { handler(store, request).await }
        }),
    );
}

pub fn start(rt: &Runtime, store: &Store) {
    serve_with::<QueryEvents, _, _>(rt, store, query_events);
    serve_with::<QueryLatestEventsAndState, _, _>(rt, store, query_latest_events_and_state);
    serve_with::<QueryCurrentState, _, _>(rt, store, query_current_state);
    serve_with::<QueryStateAtEvent, _, _>(rt, store, query_state_at_event);
    serve_with::<QueryAuthChain, _, _>(rt, store, query_auth_chain);
    serve_with::<QueryMembership, _, _>(rt, store, query_membership);
    serve_with::<QueryMembers, _, _>(rt, store, query_members);
    serve_with::<QueryJoinAuthoriser, _, _>(rt, store, query_join_authoriser);
    serve_with::<QueryJoinedServers, _, _>(rt, store, query_joined_servers);
    serve_with::<QueryRoomsForUser, _, _>(rt, store, query_rooms_for_user);
    serve_with::<QueryRoomVersion, _, _>(rt, store, query_room_version);
    serve_with::<QueryEventsForServer, _, _>(rt, store, query_events_for_server);
    serve_with::<QueryBackfill, _, _>(rt, store, query_backfill);
    serve_with::<QueryMissingEvents, _, _>(rt, store, query_missing_events);
    serve_with::<QueryEventByTimestamp, _, _>(rt, store, query_event_by_timestamp);
    serve_with::<ForgetRoom, _, _>(rt, store, forget_room);
}

fn bad_request(message: impl Into<String>) -> RemoteError {
    RemoteError::new(RemoteErrorKind::BadRequest, message)
}

fn not_found(message: impl Into<String>) -> RemoteError {
    RemoteError::new(RemoteErrorKind::NotFound, message)
}

fn at_most(count: usize) -> Result<(), RemoteError> {
    if count > MAX_PER_QUERY {
        return Err(bad_request(format!("at most {MAX_PER_QUERY} per query")));
    }
    Ok(())
}

/// Rows as other components may see them: never rejected events.
fn visible(rows: impl IntoIterator<Item = EventRow>) -> Vec<StoredEvent> {
    rows.into_iter().filter(|row| row.status != EventStatus::Rejected).map(|row| row.stored()).collect()
}

/// The stored events of a state, in a stable order, keeping only the keys
/// `filter` asks for. `for_auth`: the asker reads only what redaction keeps,
/// so the events may come from the input cache.
async fn state_events(
    store: &Store,
    state: &StateMap,
    filter: Option<&[StateFilter]>,
    for_auth: bool,
) -> Result<Vec<StoredEvent>, RemoteError> {
    let ids: Vec<OwnedEventId> = state
        .iter()
        .filter(|((t, k), _)| {
            filter.is_none_or(|f| f.iter().any(|f| f.event_type == *t && f.state_key.as_ref().is_none_or(|fk| fk == k)))
        })
        .map(|(_, id)| id.clone())
        .collect();
    let mut rows = if for_auth { store.events.get_many(&ids).await? } else { store.events.load_many(&ids).await? };
    Ok(ids.iter().filter_map(|id| rows.remove(id)).map(|row| row.stored()).collect())
}

/// The room's version and current state; NotFound when it has none here.
async fn current(store: &Store, room_id: &RoomId) -> Result<(crate::storage::Room, Arc<StateMap>), RemoteError> {
    let room = store.rooms.get(room_id).await?.ok_or_else(|| not_found("unknown room"))?;
    let snapshot = room.current_state.ok_or_else(|| not_found("unknown room"))?;
    let state = store.snapshots.load(snapshot).await?;
    Ok((room, state))
}

async fn query_events(store: Store, request: QueryEventsRequest) -> Result<QueryEventsResponse, RemoteError> {
    at_most(request.event_ids.len())?;
    let mut rows = store.events.load_many(&request.event_ids).await?;
    let ordered = request.event_ids.iter().filter_map(|id| rows.remove(id));
    Ok(QueryEventsResponse { events: visible(ordered) })
}

async fn query_events_for_server(
    store: Store,
    request: QueryEventsForServerRequest,
) -> Result<QueryEventsResponse, RemoteError> {
    at_most(request.event_ids.len())?;
    let mut rows = store.events.load_many(&request.event_ids).await?;
    let ordered: Vec<EventRow> = request.event_ids.iter().filter_map(|id| rows.remove(id)).collect();
    let rows = crate::visibility::for_server(&store, &request.server_name, ordered).await?;
    Ok(QueryEventsResponse { events: visible(rows) })
}

async fn query_latest_events_and_state(
    store: Store,
    request: QueryLatestEventsAndStateRequest,
) -> Result<QueryLatestEventsAndStateResponse, RemoteError> {
    at_most(request.state_keys.len())?;
    let (room, state) = current(&store, &request.room_id).await?;
    let filter: Vec<StateFilter> = request
        .state_keys
        .into_iter()
        .map(|(event_type, state_key)| StateFilter { event_type, state_key: Some(state_key) })
        .collect();
    Ok(QueryLatestEventsAndStateResponse {
        room_version: room.room_version,
        latest_event_ids: room.latest_event_ids,
        depth: room.max_depth.max(0) as u64,
        state: state_events(&store, &state, Some(&filter), true).await?,
    })
}

async fn query_current_state(
    store: Store,
    request: QueryCurrentStateRequest,
) -> Result<QueryStateResponse, RemoteError> {
    let (room, state) = current(&store, &request.room_id).await?;
    Ok(QueryStateResponse {
        room_version: room.room_version,
        state: state_events(&store, &state, request.filter.as_deref(), false).await?,
    })
}

async fn query_state_at_event(
    store: Store,
    request: QueryStateAtEventRequest,
) -> Result<QueryStateResponse, RemoteError> {
    let row = store.events.load(&request.event_id).await?.ok_or_else(|| not_found("unknown event"))?;
    let snapshot = if request.after { row.state_after } else { row.state_before };
    let snapshot = snapshot.filter(|_| row.room_id == request.room_id).ok_or_else(|| not_found("unknown event"))?;
    let room = store.rooms.get(&request.room_id).await?.ok_or_else(|| not_found("unknown room"))?;
    let state = store.snapshots.load(snapshot).await?;
    Ok(QueryStateResponse {
        room_version: room.room_version,
        state: state_events(&store, &state, request.filter.as_deref(), false).await?,
    })
}

async fn query_auth_chain(store: Store, request: QueryAuthChainRequest) -> Result<QueryEventsResponse, RemoteError> {
    at_most(request.event_ids.len())?;
    let roots = store.events.load_many(&request.event_ids).await?;
    // Every event reached through auth events, a root too when another
    // root's chain holds it: a send_join answer's chain must hold the create
    // event and the power levels even though they are in its state as well.
    let closure = auth_closure(&store.events, roots.values().flat_map(|r| r.pdu.auth_ids().to_vec()), None).await?;
    let ids: Vec<OwnedEventId> = closure.into_keys().collect();
    let rows = store.events.load_many(&ids).await?;
    Ok(QueryEventsResponse { events: visible(rows.into_values()) })
}

async fn query_membership(
    store: Store,
    request: QueryMembershipRequest,
) -> Result<QueryMembershipResponse, RemoteError> {
    let room_exists = store.rooms.get(&request.room_id).await?.is_some_and(|room| room.current_state.is_some());
    let Some(membership) = store.memberships.get(&request.room_id, &request.user_id).await? else {
        return Ok(QueryMembershipResponse { room_exists, membership: None, event: None, forgotten: false });
    };
    let event_id: OwnedEventId = membership.event_id.as_str().try_into().map_err(anyhow::Error::from)?;
    let event = store.events.load(&event_id).await?.map(|row| row.stored());
    Ok(QueryMembershipResponse {
        room_exists,
        membership: Some(membership.membership),
        event,
        forgotten: membership.forgotten,
    })
}

async fn query_join_authoriser(
    store: Store,
    request: QueryJoinAuthoriserRequest,
) -> Result<JoinAuthoriser, RemoteError> {
    let (room, state) = current(&store, &request.room_id).await?;
    let rules = common::pdu::rules(&room.room_version)?.authorization;
    let ids: Vec<OwnedEventId> =
        [StateEventType::RoomJoinRules, StateEventType::RoomCreate, StateEventType::RoomPowerLevels]
            .into_iter()
            .filter_map(|kind| state.get(&(kind, String::new())).cloned())
            .collect();
    let rows = store.events.load_many(&ids).await?;
    let event =
        |kind: StateEventType| state.get(&(kind, String::new())).and_then(|id| rows.get(id)).map(|row| &row.pdu);
    let join_rules: serde_json::Value = event(StateEventType::RoomJoinRules)
        .and_then(|pdu| serde_json::from_str(pdu.content_json().get()).ok())
        .unwrap_or_default();
    let restricted = match join_rules["join_rule"].as_str() {
        Some("restricted") => rules.restricted_join_rule,
        Some("knock_restricted") => rules.knock_restricted_join_rule,
        _ => false,
    };
    if !restricted {
        return Ok(JoinAuthoriser::NotRestricted);
    }
    let allowed = join_rules["allow"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|allow| allow["type"] == "m.room_membership")
        .filter_map(|allow| allow["room_id"].as_str().and_then(|id| RoomId::parse(id).ok()));
    let (mut rooms_known, mut qualifies) = (false, false);
    for allowed in allowed {
        if store.rooms.get(&allowed).await?.is_none_or(|room| room.current_state.is_none()) {
            continue;
        }
        rooms_known = true;
        if store.memberships.get(&allowed, &request.user_id).await?.is_some_and(|m| m.membership == "join") {
            qualifies = true;
            break;
        }
    }
    if !qualifies {
        return Ok(JoinAuthoriser::NotAllowed { rooms_known });
    }
    let (levels, _) = common::power_levels::from_events(
        event(StateEventType::RoomCreate),
        event(StateEventType::RoomPowerLevels),
        &rules,
    );
    let local = store.memberships.member_events(&request.room_id, &["join".to_owned()], true).await?;
    let local: Vec<OwnedEventId> = local.iter().filter_map(|id| id.as_str().try_into().ok()).collect();
    let members = store.events.load_many(&local).await?;
    let authoriser = members
        .values()
        .filter_map(|row| OwnedUserId::try_from(row.pdu.key()?).ok())
        .filter(|member| levels.user_can_invite(member))
        // The most powerful one is the likeliest to keep the power to invite.
        .max_by_key(|member| levels.for_user(member));
    Ok(authoriser.map_or(JoinAuthoriser::NoAuthoriser, JoinAuthoriser::User))
}

async fn query_members(store: Store, request: QueryMembersRequest) -> Result<QueryStateResponse, RemoteError> {
    let room = store.rooms.get(&request.room_id).await?.ok_or_else(|| not_found("unknown room"))?;
    let memberships = request.memberships.unwrap_or_default();
    let ids = store.memberships.member_events(&request.room_id, &memberships, request.local_only).await?;
    let ids: Vec<OwnedEventId> = ids.iter().filter_map(|id| id.as_str().try_into().ok()).collect();
    let mut rows = store.events.load_many(&ids).await?;
    let state = ids.iter().filter_map(|id| rows.remove(id)).map(|row| row.stored()).collect();
    Ok(QueryStateResponse { room_version: room.room_version, state })
}

async fn query_joined_servers(
    store: Store,
    request: QueryJoinedServersRequest,
) -> Result<QueryJoinedServersResponse, RemoteError> {
    store.rooms.get(&request.room_id).await?.ok_or_else(|| not_found("unknown room"))?;
    let joined = store.memberships.joined_users(&request.room_id).await?;
    let mut servers: Vec<ruma::OwnedServerName> = joined
        .iter()
        .filter_map(|user| ruma::UserId::parse(user.as_str()).ok())
        .map(|user| user.server_name().to_owned())
        .collect();
    servers.sort();
    servers.dedup();
    Ok(QueryJoinedServersResponse { servers })
}

async fn query_rooms_for_user(
    store: Store,
    request: QueryRoomsForUserRequest,
) -> Result<QueryRoomsForUserResponse, RemoteError> {
    Ok(QueryRoomsForUserResponse {
        room_ids: store.memberships.rooms_of(&request.user_id, &request.memberships).await?,
    })
}

async fn query_room_version(
    store: Store,
    request: QueryRoomVersionRequest,
) -> Result<QueryRoomVersionResponse, RemoteError> {
    let (room, _) = current(&store, &request.room_id).await?;
    Ok(QueryRoomVersionResponse { room_version: room.room_version })
}

/// Walks prev events backwards from `from`, breadth first, the starting
/// events included, skipping `stop`; at most `limit` events of the room.
async fn walk_back(
    store: &Store,
    room_id: &RoomId,
    from: &[OwnedEventId],
    stop: &HashSet<OwnedEventId>,
    limit: usize,
) -> Result<Vec<EventRow>, RemoteError> {
    let mut seen: HashSet<OwnedEventId> = HashSet::new();
    let mut queue: VecDeque<OwnedEventId> = from.iter().filter(|id| !stop.contains(*id)).cloned().collect();
    let mut found = Vec::new();
    while !queue.is_empty() && found.len() < limit {
        let batch: Vec<OwnedEventId> = queue.drain(..).filter(|id| seen.insert(id.clone())).collect();
        let rows: HashMap<OwnedEventId, EventRow> = store.events.load_many(&batch).await?;
        for id in batch {
            let Some(row) = rows.get(&id) else { continue };
            if row.room_id != room_id || row.status == EventStatus::Rejected {
                continue;
            }
            queue.extend(row.pdu.prev_ids().iter().filter(|p| !stop.contains(*p) && !seen.contains(*p)).cloned());
            found.push(row.clone());
            if found.len() == limit {
                break;
            }
        }
    }
    Ok(found)
}

async fn query_backfill(store: Store, request: QueryBackfillRequest) -> Result<QueryEventsResponse, RemoteError> {
    at_most(request.from.len())?;
    let limit = (request.limit as usize).min(MAX_PER_QUERY);
    let mut rows = walk_back(&store, &request.room_id, &request.from, &HashSet::new(), limit).await?;
    rows.sort_by_key(|row| std::cmp::Reverse(row.pdu.depth()));
    let rows = crate::visibility::for_server(&store, &request.for_server, rows).await?;
    Ok(QueryEventsResponse { events: visible(rows) })
}

async fn query_missing_events(
    store: Store,
    request: QueryMissingEventsRequest,
) -> Result<QueryEventsResponse, RemoteError> {
    at_most(request.latest.len() + request.earliest.len())?;
    let limit = (request.limit as usize).min(MAX_PER_QUERY);
    // The latest events themselves are what the asker already has.
    let starts: Vec<OwnedEventId> = store
        .events
        .load_many(&request.latest)
        .await?
        .values()
        .filter(|row| row.room_id == request.room_id)
        .flat_map(|row| row.pdu.prev_ids().to_vec())
        .collect();
    let stop: HashSet<OwnedEventId> = request.earliest.iter().chain(&request.latest).cloned().collect();
    let mut rows = walk_back(&store, &request.room_id, &starts, &stop, limit).await?;
    rows.sort_by_key(|row| row.pdu.depth());
    let rows = crate::visibility::for_server(&store, &request.for_server, rows).await?;
    Ok(QueryEventsResponse { events: visible(rows) })
}

async fn query_event_by_timestamp(
    store: Store,
    request: QueryEventByTimestampRequest,
) -> Result<QueryEventByTimestampResponse, RemoteError> {
    let ts = i64::try_from(request.ts).unwrap_or(i64::MAX);
    let found = store.events.nearest_in_time(request.room_id.as_str(), ts, request.backward).await?;
    let (event_id, origin_server_ts) = found.ok_or_else(|| not_found("no event in the room at that time"))?;
    Ok(QueryEventByTimestampResponse {
        event_id: event_id.as_str().try_into().map_err(anyhow::Error::from)?,
        origin_server_ts: u64::try_from(origin_server_ts).unwrap_or_default(),
    })
}

async fn forget_room(store: Store, request: ForgetRoomRequest) -> Result<(), RemoteError> {
    if store.memberships.forget(&request.room_id, &request.user_id).await? {
        return Ok(());
    }
    match store.memberships.get(&request.room_id, &request.user_id).await? {
        None => Err(not_found("the user was never in the room")),
        Some(_) => Err(bad_request("the user is still in the room")),
    }
}
