//! Sending events into rooms: clientapi builds and signs an event on the
//! room's latest events, checks it against the current state, hands it to the
//! roomserver and waits for its verdict, so that a client reads its own
//! writes and a refused event is answered 403 rather than 200.

mod access;
mod client_event;
mod new_room;
mod power;
mod transactions;

use std::{
    collections::{HashMap, HashSet},
    sync::{LazyLock, RwLock},
    time::Duration,
};

use common::{
    api::roomserver::{
        ClientTransaction, InputKind, InputRoomEvent, InputVerdict, QueryCurrentState, QueryCurrentStateRequest,
        QueryLatestEventsAndState, QueryLatestEventsAndStateRequest, QueryRoomVersion, QueryRoomVersionRequest,
        StateFilter, StateKey,
    },
    bus::{RemoteErrorKind, RpcError},
    http::MatrixError,
    pdu::{BuiltEvent, EventBuilder, MAX_PDU_BYTES, Pdu, TooLarge},
};
use futures::StreamExt;
use http::StatusCode;
use ruma::{
    OwnedEventId, OwnedRoomId, RoomId, RoomVersionId,
    api::error::ErrorKind,
    events::{StateEventType, TimelineEventType},
    room_version_rules::RoomVersionRules,
    state_res,
};

use crate::App;

pub(crate) use access::{StateView, readable_state, visible_event};
pub(crate) use client_event::client_event;
pub(crate) use new_room::NewRoom;
pub(crate) use power::power_levels;
pub use transactions::expire as expire_transactions;

/// How long a client waits for the roomserver's verdict.
const VERDICT_TIMEOUT: Duration = Duration::from_secs(30);

/// Prev events of a new event: the room's forward extremities, at most this many.
const MAX_PREV_EVENTS: usize = 20;

/// Room versions never change, so they are kept once known.
static ROOM_VERSIONS: LazyLock<RwLock<HashMap<OwnedRoomId, RoomVersionId>>> = LazyLock::new(Default::default);

/// Sends `builder` into the room as a new event and returns its id once the
/// roomserver accepted it. With `txn`, a repeat of the same transaction by
/// the same device returns the first event's id and sends nothing.
pub async fn send_event(
    app: &App,
    room_id: &RoomId,
    builder: EventBuilder,
    txn: Option<ClientTransaction>,
) -> Result<OwnedEventId, MatrixError> {
    match txn {
        None => {
            let (version, built) = build_checked(app, room_id, &builder).await?;
            publish_and_wait(app, &version, &[built], None).await
        }
        Some(txn) => transactions::once(app, &builder.sender, &txn, || build_checked(app, room_id, &builder)).await,
    }
}

/// The content of the room's current state event `(event_type, state_key)`, if any.
pub async fn state_content(
    app: &App,
    room_id: &RoomId,
    event_type: &str,
    state_key: &str,
) -> Result<Option<serde_json::Value>, MatrixError> {
    let filter = vec![StateFilter { event_type: event_type.into(), state_key: Some(state_key.to_owned()) }];
    let request = QueryCurrentStateRequest { room_id: room_id.to_owned(), filter: Some(filter) };
    let response = app.rt.bus.call::<QueryCurrentState>(&request).await?;
    let Some(event) = response.state.into_iter().next() else { return Ok(None) };
    let pdu = parse_stored(event.event_id, event.event)?;
    Ok(Some(serde_json::from_str(pdu.content_json().get()).map_err(MatrixError::internal)?))
}

/// The room's version; 404 M_NOT_FOUND when the room is unknown here.
pub(crate) async fn room_version(app: &App, room_id: &RoomId) -> Result<RoomVersionId, MatrixError> {
    if let Some(version) = ROOM_VERSIONS.read().expect("not poisoned").get(room_id) {
        return Ok(version.clone());
    }
    let request = QueryRoomVersionRequest { room_id: room_id.to_owned() };
    let version = match app.rt.bus.call::<QueryRoomVersion>(&request).await {
        Ok(response) => response.room_version,
        Err(RpcError::Remote(e)) if e.kind == RemoteErrorKind::NotFound => {
            return Err(MatrixError::not_found("Unknown room"));
        }
        Err(e) => return Err(e.into()),
    };
    ROOM_VERSIONS.write().expect("not poisoned").insert(room_id.to_owned(), version.clone());
    Ok(version)
}

/// The rules of a room version this server supports.
pub(crate) fn version_rules(version: &RoomVersionId) -> Result<RoomVersionRules, MatrixError> {
    common::pdu::rules(version).map_err(|e| unsupported_version(e.to_string()))
}

pub(crate) fn unsupported_version(message: impl Into<String>) -> MatrixError {
    MatrixError::new(StatusCode::BAD_REQUEST, ErrorKind::UnsupportedRoomVersion, message)
}

pub(crate) fn parse_stored(event_id: OwnedEventId, json: Box<serde_json::value::RawValue>) -> Result<Pdu, MatrixError> {
    Pdu::parse(event_id, json).map_err(|e| MatrixError::internal(format!("a stored event does not parse: {e:#}")))
}

/// Building fails for content that is not canonical JSON (a client's
/// mistake, 400) and for events over the size limit (413), which ruma's
/// signing and `EventBuilder::build` both report.
fn build_error(e: anyhow::Error) -> MatrixError {
    let signing_says =
        matches!(e.downcast_ref::<ruma::signatures::JsonError>(), Some(ruma::signatures::JsonError::PduTooLarge));
    let message = format!("{e:#}");
    if signing_says || e.is::<TooLarge>() {
        MatrixError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::TooLarge,
            format!("The event would be larger than {MAX_PDU_BYTES} bytes"),
        )
    } else {
        MatrixError::bad_json(format!("Cannot build the event: {message}"))
    }
}

/// Builds `builder` on the room's latest events with the auth events of the
/// room's current state. Returns the room version, the event, and the
/// current state of the builder's auth types and the create event.
pub(crate) async fn build_on_latest(
    app: &App,
    room_id: &RoomId,
    builder: &EventBuilder,
) -> Result<(RoomVersionId, BuiltEvent, HashMap<StateKey, Pdu>), MatrixError> {
    if builder.event_type == TimelineEventType::RoomCreate {
        return Err(MatrixError::forbidden("A room has exactly one m.room.create event, its first"));
    }
    let version = room_version(app, room_id).await?;
    let content_bytes = serde_json::to_vec(&builder.content).map_err(MatrixError::internal)?.len();
    if content_bytes > MAX_PDU_BYTES {
        return Err(build_error(TooLarge { size: content_bytes }.into()));
    }
    let auth_types =
        builder.auth_types(&version).map_err(|e| MatrixError::bad_json(format!("Invalid event content: {e:#}")))?;
    let create_key: StateKey = (StateEventType::RoomCreate, String::new());
    let mut state_keys = auth_types.clone();
    if !state_keys.contains(&create_key) {
        // The authorisation rules read the create event in every version.
        state_keys.push(create_key);
    }
    let request = QueryLatestEventsAndStateRequest { room_id: room_id.to_owned(), state_keys };
    let latest = match app.rt.bus.call::<QueryLatestEventsAndState>(&request).await {
        Err(RpcError::Remote(e)) if e.kind == RemoteErrorKind::NotFound => {
            return Err(MatrixError::not_found("Unknown room"));
        }
        other => other?,
    };
    let mut state = HashMap::new();
    for event in latest.state {
        let pdu = parse_stored(event.event_id, event.event)?;
        if let Some(key) = pdu.state_pair() {
            state.insert(key, pdu);
        }
    }
    let auth_events: Vec<OwnedEventId> =
        auth_types.iter().filter_map(|key| state.get(key)).map(Pdu::owned_id).collect();
    let prev_events: Vec<OwnedEventId> = latest.latest_event_ids.into_iter().take(MAX_PREV_EVENTS).collect();
    let built = builder
        .build(
            &version,
            Some(room_id),
            &prev_events,
            &auth_events,
            latest.depth + 1,
            app.rt.config.global.server_name.as_str(),
            &app.rt.key,
        )
        .map_err(build_error)?;
    Ok((version, built, state))
}

/// Checks a built event against the state it will be authorised by.
pub(crate) fn check_auth(
    rules: &RoomVersionRules,
    event: &Pdu,
    state: &HashMap<StateKey, Pdu>,
) -> Result<(), MatrixError> {
    state_res::check_state_dependent_auth_rules(&rules.authorization, event, |kind, key| {
        state.get(&(kind.clone(), key.to_owned())).cloned()
    })
    .map_err(|reason| MatrixError::forbidden(format!("The event is not allowed: {reason}")))
}

/// Builds `builder` on the room's latest events and checks it may be sent.
async fn build_checked(
    app: &App,
    room_id: &RoomId,
    builder: &EventBuilder,
) -> Result<(RoomVersionId, BuiltEvent), MatrixError> {
    let (version, built, state) = build_on_latest(app, room_id, builder).await?;
    check_auth(&version_rules(&version)?, &built.to_pdu(), &state)?;
    Ok((version, built))
}

/// Publishes events of one room, in order, and waits until the roomserver
/// accepted all of them; returns the last one's id. `txn` goes with the last.
pub(crate) async fn publish_and_wait(
    app: &App,
    version: &RoomVersionId,
    events: &[BuiltEvent],
    txn: Option<&ClientTransaction>,
) -> Result<OwnedEventId, MatrixError> {
    let inputs = events
        .iter()
        .enumerate()
        .map(|(i, event)| Publish {
            room_id: event.room_id.clone(),
            event_id: event.event_id.clone(),
            event: event.to_raw(),
            transaction: if i + 1 == events.len() { txn.cloned() } else { None },
            resend: 0,
        })
        .collect();
    publish_inputs_and_wait(app, version, inputs).await
}

/// One local event to hand to the roomserver.
pub(crate) struct Publish {
    pub room_id: OwnedRoomId,
    pub event_id: OwnedEventId,
    pub event: Box<serde_json::value::RawValue>,
    pub transaction: Option<ClientTransaction>,
    pub resend: u64,
}

pub(crate) async fn publish_inputs_and_wait(
    app: &App,
    version: &RoomVersionId,
    events: Vec<Publish>,
) -> Result<OwnedEventId, MatrixError> {
    let last = events.last().ok_or_else(|| MatrixError::internal("nothing to publish"))?.event_id.clone();
    let mut pending: HashSet<OwnedEventId> = events.iter().map(|e| e.event_id.clone()).collect();
    let client = app.rt.bus.client();
    let inbox = client.new_inbox();
    // Subscribed before publishing: the verdict can come back at once.
    let mut verdicts = client.subscribe(inbox.clone()).await.map_err(MatrixError::internal)?;
    client.flush().await.map_err(MatrixError::internal)?;
    for event in events {
        let input = InputRoomEvent {
            kind: InputKind::New,
            room_id: event.room_id,
            room_version: version.clone(),
            event_id: event.event_id,
            event: event.event,
            origin: app.rt.config.global.server_name.clone(),
            state_before: None,
            transaction: event.transaction,
            invite_room_state: None,
            reply_to: Some(inbox.clone()),
            resend: event.resend,
        };
        app.rt.bus.publish(&input).await.map_err(|e| {
            tracing::warn!(error = format!("{e:#}"), "cannot publish an input event");
            MatrixError::unavailable("The server cannot take the event now; try again")
        })?;
    }
    let wait = async {
        while let Some(message) = verdicts.next().await {
            let Ok(verdict) = serde_json::from_slice::<InputVerdict>(&message.payload) else {
                tracing::warn!("undecodable input verdict");
                continue;
            };
            match verdict {
                InputVerdict::Accepted { event_id } => {
                    pending.remove(&event_id);
                    if pending.is_empty() {
                        return Ok(());
                    }
                }
                InputVerdict::Rejected { event_id, reason, .. } | InputVerdict::SoftFailed { event_id, reason }
                    if pending.contains(&event_id) =>
                {
                    return Err(MatrixError::forbidden(format!("The event was refused: {reason}")));
                }
                _ => {}
            }
        }
        Err(undecided())
    };
    match tokio::time::timeout(VERDICT_TIMEOUT, wait).await {
        Ok(Ok(())) => Ok(last),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(undecided()),
    }
}

/// The event was published but no verdict came: it may still be accepted.
fn undecided() -> MatrixError {
    MatrixError::unknown(StatusCode::GATEWAY_TIMEOUT, "The roomserver has not decided about the event yet; try again")
}
