//! `PUT /_matrix/federation/v2/invite/{roomId}/{eventId}`: another server
//! invites one of our users. We co-sign the invite (which lets it into the
//! room) and keep it as an outlier, with the stripped state the inviting
//! server sent, so the invitee sees it in `/sync` and can accept or reject.

use std::time::Duration;

use axum::extract::State;
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
    CanonicalJsonObject, UserId,
    api::{
        error::{ErrorKind, IncompatibleRoomVersionErrorData},
        federation::membership::{
            RawStrippedState,
            create_invite::v2::{Request, Response},
        },
    },
    events::TimelineEventType,
};
use serde_json::value::RawValue;

use crate::{App, access};

const VERDICT_PATIENCE: Duration = Duration::from_secs(30);

pub async fn invite(State(app): State<App>, request: Ruma<Request>) -> Result<RumaResponse<Response>, MatrixError> {
    let origin = request.origin()?;
    let body = &request.body;
    // Before anything else, so a banned server learns nothing from the answer.
    access::check_acl(&app, &body.room_id, origin).await?;
    let version = &body.room_version;
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
    if event_id != body.event_id {
        return Err(MatrixError::invalid_param(format!("The event's id is {event_id}, not {}", body.event_id)));
    }
    let parsed =
        Pdu::parse(event_id.clone(), body.event.clone()).map_err(|e| MatrixError::bad_json(format!("{e:#}")))?;
    let server_name = &app.rt.config.global.server_name;
    let invitee = parsed.key().and_then(|key| UserId::parse(key).ok());
    let is_invite = *parsed.kind() == TimelineEventType::RoomMember
        && parsed.content_str("membership").as_deref() == Some("invite")
        && parsed.sender_id().server_name() == origin
        && ruma::state_res::Event::room_id(&parsed) == Some(&*body.room_id);
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
        room_id: body.room_id.clone(),
        room_version: version.clone(),
        event_id,
        event: signed.clone(),
        origin: origin.to_owned(),
        state_before: None,
        transaction: None,
        invite_room_state: Some(body.invite_room_state.iter().filter_map(stripped).collect()),
        reply_to: None,
        resend: 0,
    };
    let verdicts = app.rt.bus.submit(vec![input], VERDICT_PATIENCE).await.map_err(|e| {
        tracing::warn!(error = %e, "no verdict on a remote invite");
        MatrixError::unavailable("The invite could not be processed in time; try again")
    })?;
    match verdicts.into_iter().next() {
        Some(InputVerdict::Accepted { .. }) => Ok(RumaResponse(Response::new(signed))),
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
