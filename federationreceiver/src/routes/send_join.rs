//! `PUT /_matrix/federation/v2/send_join/{roomId}/{eventId}` and the older
//! `PUT /_matrix/federation/v1/send_join/{roomId}/{eventId}`: takes a join
//! the asking server signed and answers the room's state before it with its
//! auth chain, so the joining server can check and store them. v1 asks the
//! same and answers `[200, {…}]`; ruma has no v1 type, so it is read with
//! v2's (the same body) and answered as JSON.

use axum::{Json, extract::State};
use common::{
    api::roomserver::{
        QueryAuthChain, QueryAuthChainRequest, QueryJoinedServers, QueryJoinedServersRequest, QueryStateAtEvent,
        QueryStateAtEventRequest,
    },
    http::{MatrixError, Ruma, RumaResponse},
    pdu::Pdu,
};
use ruma::{
    CanonicalJsonValue, OwnedEventId,
    api::federation::membership::create_join_event::v2::{Request, Response, RoomState},
    events::TimelineEventType,
};

use serde_json::{Value, json};

use crate::{App, membership};

pub async fn send_join(State(app): State<App>, request: Ruma<Request>) -> Result<RumaResponse<Response>, MatrixError> {
    Ok(RumaResponse(Response::new(join(&app, &request).await?)))
}

pub async fn send_join_v1(State(app): State<App>, request: Ruma<Request>) -> Result<Json<Value>, MatrixError> {
    let mut answer = serde_json::to_value(join(&app, &request).await?).map_err(MatrixError::internal)?;
    answer["origin"] = app.rt.config.global.server_name.as_str().into();
    Ok(Json(json!([200, answer])))
}

async fn join(app: &App, request: &Ruma<Request>) -> Result<RoomState, MatrixError> {
    let origin = request.origin()?;
    let body = &request.body;
    let (_, event) = membership::accept(app, &body.room_id, &body.event_id, &body.pdu, origin, "join").await?;

    let state_request = QueryStateAtEventRequest {
        room_id: body.room_id.clone(),
        event_id: body.event_id.clone(),
        after: false,
        filter: None,
    };
    let state = app.rt.bus.call::<QueryStateAtEvent>(&state_request).await?.state;
    let mut chain_of: Vec<OwnedEventId> = state.iter().map(|event| event.event_id.clone()).collect();
    chain_of.push(body.event_id.clone());
    let auth_chain = app.rt.bus.call::<QueryAuthChain>(&QueryAuthChainRequest { event_ids: chain_of }).await?.events;
    let servers = app
        .rt
        .bus
        .call::<QueryJoinedServers>(&QueryJoinedServersRequest { room_id: body.room_id.clone() })
        .await?
        .servers;

    let mut room_state = RoomState::new();
    // Without members the answer stays small in big rooms; the joining
    // server learns them later (MSC3706, partial state).
    let is_member = |event: &common::api::roomserver::StoredEvent| {
        Pdu::parse(event.event_id.clone(), event.event.clone())
            .is_ok_and(|pdu| *pdu.kind() == TimelineEventType::RoomMember)
    };
    room_state.state =
        state.into_iter().filter(|event| !(body.omit_members && is_member(event))).map(|event| event.event).collect();
    room_state.members_omitted = body.omit_members;
    room_state.auth_chain = auth_chain.into_iter().map(|event| event.event).collect();
    // A restricted join comes back with our signature, which the joining
    // server's copy lacks.
    if let Some(CanonicalJsonValue::Object(content)) = event.get("content")
        && content.contains_key("join_authorised_via_users_server")
    {
        room_state.event = Some(serde_json::value::to_raw_value(&event).map_err(MatrixError::internal)?);
    }
    room_state.servers_in_room = Some(servers.into_iter().map(|server| server.to_string()).collect());
    Ok(room_state)
}
