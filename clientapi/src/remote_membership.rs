//! Membership of rooms this server is not in, through a server that is (the
//! resident server): `make_join`/`make_leave`/`make_knock` hand us a
//! template, we sign it, and `send_*` puts it into the room. A join brings
//! back the room's state and its auth chain; the roomserver checks and
//! stores them as outliers (signatures, auth), then takes the join on top of
//! that state, and from then on the room is known here like any other.

use std::{collections::HashSet, time::Duration};

use common::{
    api::roomserver::{
        InputKind, InputRoomEvent, InputVerdict, QueryEvents, QueryEventsRequest, QueryRoomVersion,
        QueryRoomVersionRequest, SUPPORTED_ROOM_VERSIONS,
    },
    federation::{self, FederationError},
    http::MatrixError,
    pdu::{self, BuiltEvent, Pdu},
};
use ruma::{
    CanonicalJsonObject, CanonicalJsonValue, MilliSecondsSinceUnixEpoch, OwnedEventId, OwnedServerName, RoomId,
    RoomVersionId, UserId,
    api::federation::membership::{
        create_join_event, create_knock_event, create_leave_event, prepare_join_event, prepare_knock_event,
        prepare_leave_event,
    },
    events::TimelineEventType,
};
use serde_json::{Map, Value, value::RawValue};

use crate::App;

/// How long the join's state may take to be checked and stored. A big
/// room's state is thousands of events.
const JOIN_PATIENCE: Duration = Duration::from_secs(120);

/// A resident server can take a while to answer `send_join` for a big room.
const SEND_JOIN_TIMEOUT: Duration = Duration::from_secs(120);

fn supported_versions() -> Vec<RoomVersionId> {
    SUPPORTED_ROOM_VERSIONS.iter().filter_map(|v| RoomVersionId::try_from(*v).ok()).collect()
}

/// The servers to try, in order, without ourselves and without repeats.
fn candidates(app: &App, servers: &[OwnedServerName]) -> Vec<OwnedServerName> {
    let mut seen = HashSet::new();
    servers
        .iter()
        .filter(|server| **server != app.rt.config.global.server_name && seen.insert((*server).clone()))
        .cloned()
        .collect()
}

/// What a client hears when no server could help.
fn no_server(last: Option<FederationError>) -> MatrixError {
    match last {
        Some(e) => e.into(),
        None => MatrixError::not_found("No server to reach the room through: name one with `via` or `server_name`"),
    }
}

/// Fills in a membership template from another server and signs it: our
/// content over theirs (keeping what authorises the event), our origin and
/// time.
fn sign_template(
    app: &App,
    template: &RawValue,
    version: &RoomVersionId,
    room_id: &RoomId,
    user_id: &UserId,
    membership: &str,
    content: &Map<String, Value>,
) -> Result<BuiltEvent, MatrixError> {
    let bad = |why: &str| {
        MatrixError::unknown(http::StatusCode::BAD_GATEWAY, format!("The resident server's template {why}"))
    };
    let mut object: CanonicalJsonObject = serde_json::from_str(template.get()).map_err(|_| bad("is not JSON"))?;
    let text = |object: &CanonicalJsonObject, field: &str| match object.get(field) {
        Some(CanonicalJsonValue::String(value)) => Some(value.clone()),
        _ => None,
    };
    if text(&object, "type").as_deref() != Some("m.room.member")
        || text(&object, "state_key").as_deref() != Some(user_id.as_str())
        || text(&object, "sender").as_deref() != Some(user_id.as_str())
        || text(&object, "room_id").as_deref() != Some(room_id.as_str())
    {
        return Err(bad("is not this user's member event in this room"));
    }
    let mut merged = match object.remove("content") {
        Some(CanonicalJsonValue::Object(theirs)) => theirs,
        _ => CanonicalJsonObject::new(),
    };
    for (field, value) in content {
        let value = serde_json::from_value(value.clone()).map_err(|_| bad("cannot take our content"))?;
        merged.insert(field.clone(), value);
    }
    merged.insert("membership".into(), CanonicalJsonValue::String(membership.to_owned()));
    object.insert("content".into(), CanonicalJsonValue::Object(merged));
    let server_name = app.rt.config.global.server_name.as_str();
    object.insert("origin".into(), CanonicalJsonValue::String(server_name.to_owned()));
    let now = i64::from(MilliSecondsSinceUnixEpoch::now().get());
    object
        .insert("origin_server_ts".into(), CanonicalJsonValue::Integer(now.try_into().map_err(MatrixError::internal)?));
    pdu::finish(object, version, server_name, &app.rt.key).map_err(|e| bad(&format!("cannot be signed: {e:#}")))
}

/// `user_id` joins `room_id` through the first of `servers` that lets them.
pub async fn join(
    app: &App,
    user_id: &UserId,
    room_id: &RoomId,
    servers: &[OwnedServerName],
    content: &Map<String, Value>,
) -> Result<(), MatrixError> {
    let mut last = None;
    for server in candidates(app, servers) {
        let mut ask = prepare_join_event::v1::Request::new(room_id.to_owned(), user_id.to_owned());
        ask.ver = supported_versions();
        let made = match federation::request(&app.rt.bus, &server, ask).await {
            Ok(made) => made,
            Err(e) => {
                tracing::info!(%server, %room_id, error = %e, "make_join failed; trying the next server");
                last = Some(e);
                continue;
            }
        };
        let version = made.room_version.unwrap_or(RoomVersionId::V1);
        if !SUPPORTED_ROOM_VERSIONS.contains(&version.as_str()) {
            return Err(MatrixError::new(
                http::StatusCode::BAD_REQUEST,
                ruma::api::error::ErrorKind::UnsupportedRoomVersion,
                format!("The room's version {version} is not supported here"),
            ));
        }
        let built = sign_template(app, &made.event, &version, room_id, user_id, "join", content)?;
        let send = create_join_event::v2::Request::new(room_id.to_owned(), built.event_id.clone(), built.to_raw());
        let sent = match federation::request_within(&app.rt.bus, &server, send.clone(), SEND_JOIN_TIMEOUT).await {
            Ok(joined) => Ok(joined.room_state),
            // An older server: v1 takes the same request.
            Err(e) if e.is_unrecognized() => send_join_v1(app, &server, send).await,
            Err(e) => Err(e),
        };
        let joined = match sent {
            Ok(joined) => joined,
            Err(e) => {
                tracing::info!(%server, %room_id, error = %e, "send_join failed; trying the next server");
                last = Some(e);
                continue;
            }
        };
        // A restricted join comes back signed by the server that authorised it.
        let join_event = match &joined.event {
            Some(signed) => {
                let pdu = pdu::received(signed, &version).map_err(MatrixError::internal)?;
                if pdu.id() != built.event_id {
                    return Err(MatrixError::unknown(
                        http::StatusCode::BAD_GATEWAY,
                        "The resident server answered another join event",
                    ));
                }
                signed.clone()
            }
            None => built.to_raw(),
        };
        return store_join(
            app,
            &server,
            room_id,
            &version,
            &built.event_id,
            join_event,
            joined.state,
            joined.auth_chain,
        )
        .await;
    }
    Err(no_server(last))
}

/// `send_join` through v1, whose answer is `[200, {…}]`.
async fn send_join_v1(
    app: &App,
    server: &OwnedServerName,
    v2: create_join_event::v2::Request,
) -> Result<create_join_event::v2::RoomState, FederationError> {
    let mut outgoing = federation::encode(server, v2)?;
    outgoing.uri = outgoing.uri.replacen("/v2/send_join/", "/v1/send_join/", 1);
    federation::request_v1(&app.rt.bus, outgoing, SEND_JOIN_TIMEOUT).await
}

/// Hands the room's state, its auth chain and the join to the roomserver.
#[allow(clippy::too_many_arguments)]
async fn store_join(
    app: &App,
    server: &OwnedServerName,
    room_id: &RoomId,
    version: &RoomVersionId,
    join_id: &OwnedEventId,
    join_event: Box<RawValue>,
    state: Vec<Box<RawValue>>,
    auth_chain: Vec<Box<RawValue>>,
) -> Result<(), MatrixError> {
    let mut seen = HashSet::new();
    let mut events = Vec::with_capacity(state.len() + auth_chain.len());
    let mut state_ids = Vec::with_capacity(state.len());
    for (json, in_state) in state.iter().map(|j| (j, true)).chain(auth_chain.iter().map(|j| (j, false))) {
        let Ok(event) = pdu::received(json, version) else {
            tracing::info!(%server, %room_id, "an unreadable event in a send_join answer");
            continue;
        };
        if in_state && event.key().is_some() {
            state_ids.push(event.owned_id());
        }
        if seen.insert(event.owned_id()) {
            events.push(event);
        }
    }
    let input = |event: &Pdu, kind: InputKind, state_before: Option<Vec<OwnedEventId>>| InputRoomEvent {
        kind,
        room_id: room_id.to_owned(),
        room_version: version.clone(),
        event_id: event.owned_id(),
        event: event.to_raw(),
        origin: server.clone(),
        state_before,
        transaction: None,
        invite_room_state: None,
        reply_to: None,
        resend: 0,
    };
    // What the roomserver has already (the invite or knock that led here) is
    // not sent again: its stream would drop the repeat as a duplicate, and
    // no verdict would come.
    let ids: Vec<OwnedEventId> = events.iter().map(Pdu::owned_id).collect();
    let mut known = HashSet::new();
    for chunk in ids.chunks(1000) {
        let request = QueryEventsRequest { event_ids: chunk.to_vec() };
        known.extend(app.rt.bus.call::<QueryEvents>(&request).await?.events.into_iter().map(|e| e.event_id));
    }
    events.retain(|event| !known.contains(event.id()));
    let mut inputs: Vec<InputRoomEvent> =
        pdu::auth_order(events).iter().map(|event| input(event, InputKind::Outlier, None)).collect();
    let join = pdu::received(&join_event, version).map_err(MatrixError::internal)?;
    inputs.push(input(&join, InputKind::New, Some(state_ids)));
    let verdicts = app.rt.bus.submit(inputs, JOIN_PATIENCE).await.map_err(|e| {
        tracing::warn!(%room_id, error = %e, "the joined room's state was not taken in time");
        MatrixError::unavailable("The room's state could not be stored in time; try again")
    })?;
    let refused = verdicts[..verdicts.len() - 1].iter().filter(|v| !matches!(v, InputVerdict::Accepted { .. })).count();
    if refused > 0 {
        tracing::info!(%room_id, %server, refused, "events of a joined room's state were refused");
    }
    match verdicts.last() {
        Some(InputVerdict::Accepted { event_id }) if event_id == join_id => Ok(()),
        Some(InputVerdict::Rejected { reason, .. } | InputVerdict::SoftFailed { reason, .. }) => {
            Err(MatrixError::forbidden(format!("The join was refused here: {reason}")))
        }
        _ => Err(MatrixError::internal("no verdict on the join")),
    }
}

/// `user_id` leaves a room this server is not in (rejecting an invite to
/// it, or withdrawing a knock) through the first of `servers` that answers.
/// The leave is kept as an outlier, so the invite or knock ends here too.
pub async fn leave(
    app: &App,
    user_id: &UserId,
    room_id: &RoomId,
    servers: &[OwnedServerName],
    content: &Map<String, Value>,
) -> Result<(), MatrixError> {
    let mut last = None;
    for server in candidates(app, servers) {
        let ask = prepare_leave_event::v1::Request::new(room_id.to_owned(), user_id.to_owned());
        let made = match federation::request(&app.rt.bus, &server, ask).await {
            Ok(made) => made,
            Err(e) => {
                last = Some(e);
                continue;
            }
        };
        let version = made.room_version.unwrap_or(RoomVersionId::V1);
        let built = sign_template(app, &made.event, &version, room_id, user_id, "leave", content)?;
        let send = create_leave_event::v2::Request::new(room_id.to_owned(), built.event_id.clone(), built.to_raw());
        if let Err(e) = federation::request(&app.rt.bus, &server, send).await {
            last = Some(e);
            continue;
        }
        return store_outlier(app, &server, room_id, &version, built.to_pdu()).await;
    }
    Err(no_server(last))
}

/// `user_id` knocks on a room this server is not in.
pub async fn knock(
    app: &App,
    user_id: &UserId,
    room_id: &RoomId,
    servers: &[OwnedServerName],
    content: &Map<String, Value>,
) -> Result<(), MatrixError> {
    let mut last = None;
    for server in candidates(app, servers) {
        let mut ask = prepare_knock_event::v1::Request::new(room_id.to_owned(), user_id.to_owned());
        ask.ver = supported_versions();
        let made = match federation::request(&app.rt.bus, &server, ask).await {
            Ok(made) => made,
            Err(e) => {
                last = Some(e);
                continue;
            }
        };
        let built = sign_template(app, &made.event, &made.room_version, room_id, user_id, "knock", content)?;
        let send = create_knock_event::v1::Request::new(room_id.to_owned(), built.event_id.clone(), built.to_raw());
        if let Err(e) = federation::request(&app.rt.bus, &server, send).await {
            last = Some(e);
            continue;
        }
        return store_outlier(app, &server, room_id, &made.room_version, built.to_pdu()).await;
    }
    Err(no_server(last))
}

/// A leave that only this server knows of, built on the invite or knock it
/// ends: for when no server of the room takes the real one.
pub async fn leave_here(
    app: &App,
    user_id: &UserId,
    room_id: &RoomId,
    ended: &Pdu,
    content: &Map<String, Value>,
) -> Result<(), MatrixError> {
    let request = QueryRoomVersionRequest { room_id: room_id.to_owned() };
    let version = match app.rt.bus.call::<QueryRoomVersion>(&request).await {
        Ok(response) => response.room_version,
        Err(_) => RoomVersionId::V10,
    };
    let builder = pdu::EventBuilder::new(user_id, TimelineEventType::RoomMember, Value::Object(content.clone()))
        .state(user_id.as_str());
    let ended_id = ended.owned_id();
    let template = builder
        .template(
            &version,
            Some(room_id),
            std::slice::from_ref(&ended_id),
            std::slice::from_ref(&ended_id),
            ended.depth() + 1,
        )
        .map_err(MatrixError::internal)?;
    let server_name = app.rt.config.global.server_name.clone();
    let built = pdu::finish(template, &version, server_name.as_str(), &app.rt.key).map_err(MatrixError::internal)?;
    store_outlier(app, &server_name, room_id, &version, built.to_pdu()).await
}

async fn store_outlier(
    app: &App,
    server: &OwnedServerName,
    room_id: &RoomId,
    version: &RoomVersionId,
    event: Pdu,
) -> Result<(), MatrixError> {
    let input = InputRoomEvent {
        kind: InputKind::Outlier,
        room_id: room_id.to_owned(),
        room_version: version.clone(),
        event_id: event.owned_id(),
        event: event.to_raw(),
        origin: server.clone(),
        state_before: None,
        transaction: None,
        invite_room_state: None,
        reply_to: None,
        resend: 0,
    };
    match app.rt.bus.submit(vec![input], JOIN_PATIENCE).await {
        Ok(verdicts) if matches!(verdicts.first(), Some(InputVerdict::Accepted { .. })) => Ok(()),
        Ok(verdicts) => Err(MatrixError::internal(format!("our own membership event was refused: {verdicts:?}"))),
        Err(e) => Err(MatrixError::unavailable(format!("The event could not be stored in time: {e}"))),
    }
}
