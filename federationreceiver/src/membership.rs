//! The resident server's half of joins, leaves and knocks from other
//! servers: `make_*` hands out an event template placed on the room's
//! latest events, `send_*` takes the event the other server signed and
//! hands it to the roomserver.

use std::{collections::HashMap, time::Duration};

use common::{
    api::roomserver::{
        InputKind, InputRoomEvent, InputVerdict, JoinAuthoriser, QueryJoinAuthoriser, QueryJoinAuthoriserRequest,
        QueryJoinedServers, QueryJoinedServersRequest, QueryLatestEventsAndState, QueryLatestEventsAndStateRequest,
        QueryMembership, QueryMembershipRequest, QueryRoomVersion, QueryRoomVersionRequest, StateKey,
    },
    bus::{RemoteErrorKind, RpcError},
    http::MatrixError,
    pdu::{self, EventBuilder, Pdu},
};
use http::StatusCode;
use ruma::{
    CanonicalJsonObject, CanonicalJsonValue, EventId, OwnedEventId, OwnedUserId, RoomId, RoomVersionId, ServerName,
    UserId,
    api::error::{ErrorKind, IncompatibleRoomVersionErrorData},
    events::{StateEventType, TimelineEventType},
    state_res,
};
use serde_json::value::RawValue;

use crate::{App, access};

/// How long the other server's `send_*` waits for the roomserver.
const VERDICT_PATIENCE: Duration = Duration::from_secs(30);

pub async fn room_version(app: &App, room_id: &RoomId) -> Result<RoomVersionId, MatrixError> {
    let request = QueryRoomVersionRequest { room_id: room_id.to_owned() };
    match app.rt.bus.call::<QueryRoomVersion>(&request).await {
        Ok(response) => Ok(response.room_version),
        Err(RpcError::Remote(e)) if e.kind == RemoteErrorKind::NotFound => Err(MatrixError::not_found("Unknown room")),
        Err(e) => Err(e.into()),
    }
}

fn incompatible(version: &RoomVersionId) -> MatrixError {
    MatrixError::new(
        StatusCode::BAD_REQUEST,
        ErrorKind::IncompatibleRoomVersion(IncompatibleRoomVersionErrorData::new(version.clone())),
        format!("The room is of version {version}, which the joining server does not support"),
    )
}

/// A `membership` event template for `user_id` of `origin`, checked to be
/// allowed by the room's current state. `supported` lists the room versions
/// the other server can take (`make_join`'s `ver`); `None` for leaves.
pub async fn template(
    app: &App,
    room_id: &RoomId,
    user_id: &UserId,
    origin: &ServerName,
    membership: &str,
    supported: Option<&[RoomVersionId]>,
) -> Result<(RoomVersionId, Box<RawValue>), MatrixError> {
    if user_id.server_name() != origin {
        return Err(MatrixError::forbidden("The user does not belong to the requesting server"));
    }
    let version = room_version(app, room_id).await?;
    // A room all our users have left: our copy of it is stale, and nothing
    // we put in a template would reach its other servers.
    let request = QueryJoinedServersRequest { room_id: room_id.to_owned() };
    let joined = app.rt.bus.call::<QueryJoinedServers>(&request).await?.servers;
    if !joined.contains(&app.rt.config.global.server_name) {
        return Err(MatrixError::not_found("This server is no longer in the room"));
    }
    if supported.is_some_and(|versions| !versions.contains(&version)) {
        return Err(incompatible(&version));
    }
    access::check_acl(app, room_id, origin).await?;
    let mut content = serde_json::json!({ "membership": membership });
    if membership == "join"
        && let Some(authoriser) = join_authoriser(app, room_id, user_id).await?
    {
        content["join_authorised_via_users_server"] = authoriser.as_str().into();
    }
    let builder = EventBuilder::new(user_id, TimelineEventType::RoomMember, content).state(user_id.as_str());
    let auth_types = builder.auth_types(&version).map_err(MatrixError::internal)?;
    let create_key: StateKey = (StateEventType::RoomCreate, String::new());
    let mut state_keys = auth_types.clone();
    if !state_keys.contains(&create_key) {
        state_keys.push(create_key);
    }
    let request = QueryLatestEventsAndStateRequest { room_id: room_id.to_owned(), state_keys };
    let latest = app.rt.bus.call::<QueryLatestEventsAndState>(&request).await?;
    let mut state: HashMap<StateKey, Pdu> = HashMap::new();
    for event in latest.state {
        let pdu = Pdu::parse(event.event_id, event.event).map_err(MatrixError::internal)?;
        if let Some(key) = pdu.state_pair() {
            state.insert(key, pdu);
        }
    }
    let auth_events: Vec<OwnedEventId> =
        auth_types.iter().filter_map(|key| state.get(key)).map(Pdu::owned_id).collect();
    let prev_events: Vec<OwnedEventId> = latest.latest_event_ids.into_iter().take(20).collect();
    let mut object = builder
        .template(&version, Some(room_id), &prev_events, &auth_events, latest.depth + 1)
        .map_err(MatrixError::internal)?;
    object.insert("origin".into(), CanonicalJsonValue::String(app.rt.config.global.server_name.to_string()));

    // Refused now rather than after the other server signed it.
    let rules = pdu::rules(&version).map_err(MatrixError::internal)?;
    let json = serde_json::value::to_raw_value(&object).map_err(MatrixError::internal)?;
    let candidate =
        Pdu::parse("$template".try_into().expect("a valid event id"), json.clone()).map_err(MatrixError::internal)?;
    state_res::check_state_dependent_auth_rules(&rules.authorization, &candidate, |kind, key| {
        state.get(&(kind.clone(), key.to_owned())).cloned()
    })
    .map_err(|reason| MatrixError::forbidden(format!("The {membership} is not allowed: {reason}")))?;
    Ok((version, json))
}

/// The user of ours who vouches for `user_id` joining a restricted room
/// (none needed when the room is not restricted or the user is invited or
/// joined already), or the error the spec names for why there is none.
async fn join_authoriser(app: &App, room_id: &RoomId, user_id: &UserId) -> Result<Option<OwnedUserId>, MatrixError> {
    let request = QueryMembershipRequest { room_id: room_id.to_owned(), user_id: user_id.to_owned() };
    let membership = app.rt.bus.call::<QueryMembership>(&request).await?.membership;
    if matches!(membership.as_deref(), Some("invite" | "join")) {
        return Ok(None);
    }
    let request = QueryJoinAuthoriserRequest { room_id: room_id.to_owned(), user_id: user_id.to_owned() };
    match app.rt.bus.call::<QueryJoinAuthoriser>(&request).await? {
        JoinAuthoriser::NotRestricted => Ok(None),
        JoinAuthoriser::User(user) => Ok(Some(user)),
        JoinAuthoriser::NotAllowed { rooms_known: true } => {
            Err(MatrixError::forbidden("The user is in none of the rooms the join rules allow"))
        }
        JoinAuthoriser::NotAllowed { rooms_known: false } => Err(MatrixError::new(
            StatusCode::BAD_REQUEST,
            ErrorKind::UnableToAuthorizeJoin,
            "This server is in none of the rooms the join rules allow; try another",
        )),
        JoinAuthoriser::NoAuthoriser => Err(MatrixError::new(
            StatusCode::BAD_REQUEST,
            ErrorKind::UnableToGrantJoin,
            "None of this server's members may invite; try another server",
        )),
    }
}

/// Checks that a membership event signed by `origin` is the one the path
/// names and says what it should, then has the roomserver take it. Returns
/// the room version and the event as stored.
pub async fn accept(
    app: &App,
    room_id: &RoomId,
    event_id: &EventId,
    event: &RawValue,
    origin: &ServerName,
    membership: &str,
) -> Result<(RoomVersionId, CanonicalJsonObject), MatrixError> {
    let version = room_version(app, room_id).await?;
    access::check_acl(app, room_id, origin).await?;
    let object: CanonicalJsonObject = serde_json::from_str(event.get())
        .map_err(|e| MatrixError::bad_json(format!("The event is not canonical JSON: {e}")))?;
    let computed = pdu::event_id_of(&object, &version).map_err(|e| MatrixError::bad_json(format!("{e:#}")))?;
    if computed != event_id {
        return Err(MatrixError::invalid_param(format!("The event's id is {computed}, not {event_id}")));
    }
    let parsed = Pdu::parse(computed.clone(), serde_json::value::to_raw_value(&object).map_err(MatrixError::internal)?)
        .map_err(|e| MatrixError::bad_json(format!("{e:#}")))?;
    if parsed.sender_id().server_name() != origin {
        return Err(MatrixError::forbidden(format!("The {membership} is not sent by a user of {origin}")));
    }
    let field_ok = *parsed.kind() == TimelineEventType::RoomMember
        && parsed.key() == Some(parsed.sender_id().as_str())
        && parsed.content_str("membership").as_deref() == Some(membership)
        && ruma::state_res::Event::room_id(&parsed) == Some(room_id);
    if !field_ok {
        return Err(MatrixError::invalid_param(format!(
            "Not an m.room.member {membership} of a user of {origin} in {room_id}, sent by that user"
        )));
    }
    let mut object = object;
    let authoriser = parsed.content_str("join_authorised_via_users_server");
    let own = &app.rt.config.global.server_name;
    if membership == "join"
        && let Some(authoriser) = authoriser.as_deref().and_then(|a| UserId::parse(a).ok())
        && authoriser.server_name() == own
    {
        // The auth rules want the authorising server's signature on it.
        pdu::co_sign(&mut object, &version, own.as_str(), &app.rt.key).map_err(MatrixError::internal)?;
    }
    let input = InputRoomEvent {
        kind: InputKind::New,
        room_id: room_id.to_owned(),
        room_version: version.clone(),
        event_id: computed,
        event: serde_json::value::to_raw_value(&object).map_err(MatrixError::internal)?,
        origin: origin.to_owned(),
        state_before: None,
        transaction: None,
        invite_room_state: None,
        reply_to: None,
        resend: 0,
    };
    let verdicts = app.rt.bus.submit(vec![input], VERDICT_PATIENCE).await.map_err(|e| {
        tracing::warn!(error = %e, "no verdict on a remote membership event");
        MatrixError::unavailable("The event could not be processed in time; try again")
    })?;
    match verdicts.into_iter().next() {
        Some(InputVerdict::Accepted { .. }) => Ok((version, object)),
        Some(InputVerdict::Rejected { reason, .. } | InputVerdict::SoftFailed { reason, .. }) => {
            Err(MatrixError::forbidden(format!("The event was refused: {reason}")))
        }
        None => Err(MatrixError::internal("no verdict")),
    }
}
