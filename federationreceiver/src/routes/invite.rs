//! `PUT /_matrix/federation/v2/invite/{roomId}/{eventId}` and the older
//! `PUT /_matrix/federation/v1/invite/{roomId}/{eventId}`: another server
//! invites one of our users. We co-sign the invite (which lets it into the
//! room) and keep it as an outlier, with the stripped state the inviting
//! server sent, so the invitee sees it in `/sync` and can accept or reject.
//! v1 sends the bare event (stripped state in its `unsigned`) and no room
//! version, and is answered `[200, {"event": …}]`.

use std::time::Duration;

use axum::{Json, extract::State};
use common::{
    api::{
        roomserver::{InputKind, InputRoomEvent, InputVerdict, SUPPORTED_ROOM_VERSIONS},
        userapi::{QueryProfile, QueryProfileRequest},
    },
    http::{MatrixError, Ruma, RumaResponse},
    pdu::{self, Pdu},
};
use http::StatusCode;
use ruma::{
    CanonicalJsonObject, EventId, RoomId, RoomVersionId, ServerName, UserId,
    api::{
        error::{ErrorKind, IncompatibleRoomVersionErrorData},
        federation::membership::{
            RawStrippedState, create_invite,
            create_invite::v2::{Request, Response},
        },
    },
    events::TimelineEventType,
};
use serde_json::value::RawValue;

use crate::{App, access, membership};

const VERDICT_PATIENCE: Duration = Duration::from_secs(30);

pub async fn invite(State(app): State<App>, request: Ruma<Request>) -> Result<RumaResponse<Response>, MatrixError> {
    let origin = request.origin()?;
    let body = &request.body;
    let invite = Invite {
        room_id: &body.room_id,
        event_id: &body.event_id,
        version: &body.room_version,
        event: &body.event,
        stripped_state: &body.invite_room_state,
    };
    Ok(RumaResponse(Response::new(take(&app, origin, invite).await?)))
}

pub async fn invite_v1(
    State(app): State<App>,
    request: Ruma<create_invite::v1::Request>,
) -> Result<Json<serde_json::Value>, MatrixError> {
    let origin = request.origin()?;
    let body = &request.body;
    // Only rooms of versions 1 and 2 are invited to with v1, and we know the
    // version of a room we are in.
    let version = match membership::room_version(&app, &body.room_id).await {
        Ok(version) => version,
        Err(_) => RoomVersionId::V1,
    };
    let event: Box<RawValue> = serde_json::from_slice(&request.raw_body)
        .map_err(|e| MatrixError::bad_json(format!("The event is not JSON: {e}")))?;
    let invite = Invite {
        room_id: &body.room_id,
        event_id: &body.event_id,
        version: &version,
        event: &event,
        stripped_state: &body.unsigned.invite_room_state,
    };
    let signed = take(&app, origin, invite).await?;
    Ok(Json(serde_json::json!([200, { "event": signed }])))
}

/// ruma's v1 type requires the event's `origin`, which events lost in room
/// version 11 and which nothing here reads (the request's signature says
/// who sent it); the event itself is taken from the body as sent.
pub fn v1_defaults(body: &mut serde_json::Map<String, serde_json::Value>) {
    body.entry("origin").or_insert_with(|| "origin.invalid".into());
}

/// An invite as either version of the endpoint carries it.
struct Invite<'a> {
    room_id: &'a RoomId,
    event_id: &'a EventId,
    version: &'a RoomVersionId,
    event: &'a RawValue,
    stripped_state: &'a [RawStrippedState],
}

/// Co-signs the invite and has the roomserver keep it; returns it signed.
async fn take(app: &App, origin: &ServerName, body: Invite<'_>) -> Result<Box<RawValue>, MatrixError> {
    // Before anything else, so a banned server learns nothing from the answer.
    access::check_acl(app, body.room_id, origin).await?;
    let version = body.version;
    if !SUPPORTED_ROOM_VERSIONS.contains(&version.as_str()) {
        return Err(MatrixError::new(
            StatusCode::BAD_REQUEST,
            ErrorKind::IncompatibleRoomVersion(IncompatibleRoomVersionErrorData::new(version.clone())),
            format!("Room version {version} is not supported here"),
        ));
    }
    let mut object: CanonicalJsonObject = serde_json::from_str(body.event.get())
        .map_err(|e| MatrixError::bad_json(format!("The event is not canonical JSON: {e}")))?;
    let event_id = pdu::event_id_of(&object, version).map_err(|e| MatrixError::bad_json(format!("{e:#}")))?;
    if event_id != *body.event_id {
        return Err(MatrixError::invalid_param(format!("The event's id is {event_id}, not {}", body.event_id)));
    }
    let parsed =
        Pdu::parse(event_id.clone(), body.event.to_owned()).map_err(|e| MatrixError::bad_json(format!("{e:#}")))?;
    let server_name = &app.rt.config.global.server_name;
    let invitee = parsed.key().and_then(|key| UserId::parse(key).ok());
    let is_invite = *parsed.kind() == TimelineEventType::RoomMember
        && parsed.content_str("membership").as_deref() == Some("invite")
        && parsed.sender_id().server_name() == origin
        && ruma::state_res::Event::room_id(&parsed) == Some(body.room_id);
    let Some(invitee) = invitee.filter(|user| is_invite && user.server_name() == server_name) else {
        return Err(MatrixError::invalid_param(format!(
            "Not an invite of a user of {server_name} into {}, sent by a user of {origin}",
            body.room_id
        )));
    };
    app.rt.bus.call::<QueryProfile>(&QueryProfileRequest { user_id: invitee.clone() }).await?;

    let rules = pdu::rules(version).map_err(MatrixError::internal)?;
    ruma::signatures::hash_and_sign_event(server_name.as_str(), app.rt.key.pair(), &mut object, &rules.redaction)
        .map_err(|e| MatrixError::bad_json(format!("Cannot sign the invite: {e}")))?;
    let signed = serde_json::value::to_raw_value(&object).map_err(MatrixError::internal)?;
    let input = InputRoomEvent {
        kind: InputKind::Outlier,
        room_id: body.room_id.to_owned(),
        room_version: version.clone(),
        event_id,
        event: signed.clone(),
        origin: origin.to_owned(),
        state_before: None,
        transaction: None,
        invite_room_state: Some(body.stripped_state.iter().filter_map(stripped).collect()),
        reply_to: None,
        resend: 0,
    };
    let verdicts = app.rt.bus.submit(vec![input], VERDICT_PATIENCE).await.map_err(|e| {
        tracing::warn!(error = %e, "no verdict on a remote invite");
        MatrixError::unavailable("The invite could not be processed in time; try again")
    })?;
    match verdicts.into_iter().next() {
        Some(InputVerdict::Accepted { .. }) => Ok(signed),
        Some(InputVerdict::Rejected { reason, .. } | InputVerdict::SoftFailed { reason, .. }) => {
            Err(MatrixError::forbidden(format!("The invite was refused: {reason}")))
        }
        None => Err(MatrixError::internal("no verdict")),
    }
}

/// A stripped state event as clients see it (`type`, `state_key`, `content`,
/// `sender`), from either form servers send: stripped, or (since v1.16) the
/// full PDU.
fn stripped(state: &RawStrippedState) -> Option<Box<RawValue>> {
    #[allow(deprecated)]
    let json = match state {
        RawStrippedState::Stripped(raw) => raw.json(),
        RawStrippedState::Pdu(raw) => raw,
        _ => return None,
    };
    let value: serde_json::Value = serde_json::from_str(json.get()).ok()?;
    let stripped = serde_json::json!({
        "type": value.get("type")?,
        "state_key": value.get("state_key")?,
        "content": value.get("content")?,
        "sender": value.get("sender")?,
    });
    serde_json::value::to_raw_value(&stripped).ok()
}
