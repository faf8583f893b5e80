//! `PUT`/`GET /rooms/{roomId}/state/{eventType}/{stateKey}` (the state key
//! may be empty, and its slash left out) and `GET /rooms/{roomId}/state`.

use std::sync::Arc;

use axum::{
    Extension, Router,
    extract::State,
    routing::{get, put},
};
use common::{
    api::roomserver::{GetRoomAlias, GetRoomAliasRequest, StateFilter},
    bus::{RemoteErrorKind, RpcError},
    http::{GuestAllowed, MatrixError, Ruma, RumaResponse},
    pdu::EventBuilder,
};
use http::StatusCode;
use ruma::{
    OwnedRoomAliasId, RoomId,
    api::{
        Metadata,
        client::state::{
            get_state_event_for_key::{self, v3::StateEventFormat},
            get_state_events, send_state_event,
        },
        error::ErrorKind,
        path_builder::PathBuilder,
    },
    events::TimelineEventType,
    serde::Raw,
};
use serde_json::Value;

use crate::{
    App,
    rooms::{client_event, readable_state, send_event},
};

/// The routes for an empty state key written without its slash (or with
/// only the slash), which ruma's path templates leave out.
pub fn empty_state_key_routes() -> Router<Arc<App>> {
    let mut router = Router::new();
    for path in send_state_event::v3::Request::PATH_BUILDER.all_paths() {
        let Some(base) = path.strip_suffix("/{state_key}") else { continue };
        for path in [base.to_owned(), format!("{base}/")] {
            let read = get(get_state).layer(Extension(GuestAllowed));
            router = router.route(&path, put(send_state).merge(read));
        }
    }
    router
}

fn bad_alias(message: String) -> MatrixError {
    MatrixError::new(StatusCode::BAD_REQUEST, ErrorKind::BadAlias, message)
}

/// A canonical alias may only name local aliases that point to the room;
/// aliases of other servers cannot be checked here and are taken as given.
async fn check_canonical_alias(app: &App, room_id: &RoomId, content: &Value) -> Result<(), MatrixError> {
    let mut aliases: Vec<&Value> = content.get("alias").into_iter().filter(|a| !a.is_null()).collect();
    match content.get("alt_aliases") {
        None => {}
        Some(Value::Array(list)) => aliases.extend(list),
        Some(_) => return Err(MatrixError::invalid_param("alt_aliases must be a list of aliases")),
    }
    for alias in aliases {
        let alias = alias
            .as_str()
            .and_then(|a| OwnedRoomAliasId::try_from(a).ok())
            .ok_or_else(|| MatrixError::invalid_param(format!("{alias} is not a room alias")))?;
        if alias.server_name() != app.rt.config.global.server_name {
            continue;
        }
        match app.rt.bus.call::<GetRoomAlias>(&GetRoomAliasRequest { alias: alias.clone() }).await {
            Ok(found) if found.room_id == room_id => {}
            Ok(_) => return Err(bad_alias(format!("{alias} points to another room"))),
            Err(RpcError::Remote(e)) if e.kind == RemoteErrorKind::NotFound => {
                return Err(bad_alias(format!("{alias} does not exist")));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

pub async fn send_state(
    State(app): State<Arc<App>>,
    request: Ruma<send_state_event::v3::Request>,
) -> Result<RumaResponse<send_state_event::v3::Response>, MatrixError> {
    let user = request.require_user()?;
    let body = &request.body;
    let content: Value = serde_json::from_str(body.body.json().get())
        .map_err(|_| MatrixError::bad_json("The event content must be a JSON object"))?;
    if body.event_type.to_string() == "m.room.canonical_alias" {
        check_canonical_alias(&app, &body.room_id, &content).await?;
    }
    let event_type = TimelineEventType::from(body.event_type.to_string());
    let builder = EventBuilder::new(&user.user_id, event_type, content).state(body.state_key.clone());
    let event_id = send_event(&app, &body.room_id, builder, None).await?;
    Ok(RumaResponse(send_state_event::v3::Response::new(event_id)))
}

pub async fn get_state(
    State(app): State<Arc<App>>,
    request: Ruma<get_state_event_for_key::v3::Request>,
) -> Result<RumaResponse<get_state_event_for_key::v3::Response>, MatrixError> {
    let user = request.require_user()?;
    let body = &request.body;
    let view = readable_state(&app, &body.room_id, &user.user_id).await?;
    let filter = vec![StateFilter { event_type: body.event_type.clone(), state_key: Some(body.state_key.clone()) }];
    let event = view
        .events(&app, &body.room_id, Some(filter))
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| MatrixError::not_found("The room has no such state"))?;
    let answer = match body.format {
        StateEventFormat::Event => client_event(&event)?,
        _ => {
            let pdu = crate::rooms::parse_stored(event.event_id.clone(), event.event.clone())?;
            pdu.content_json().to_owned()
        }
    };
    Ok(RumaResponse(get_state_event_for_key::v3::Response::new(answer)))
}

pub async fn get_all_state(
    State(app): State<Arc<App>>,
    request: Ruma<get_state_events::v3::Request>,
) -> Result<RumaResponse<get_state_events::v3::Response>, MatrixError> {
    let user = request.require_user()?;
    let room_id = &request.body.room_id;
    let view = readable_state(&app, room_id, &user.user_id).await?;
    let events = view.events(&app, room_id, None).await?;
    let state = events.iter().map(|event| client_event(event).map(Raw::from_json)).collect::<Result<_, _>>()?;
    Ok(RumaResponse(get_state_events::v3::Response::new(state)))
}
