//! `GET /_matrix/federation/v1/state/{roomId}?event_id=` and
//! `/state_ids/{roomId}`: the room's state before an event, with its auth
//! chain, to a server in the room; as events or as their ids.

use axum::extract::State;
use common::{
    api::roomserver::{
        QueryAuthChain, QueryAuthChainRequest, QueryStateAtEvent, QueryStateAtEventRequest, StoredEvent,
    },
    bus::{RemoteErrorKind, RpcError},
    http::{MatrixError, Ruma, RumaResponse},
};
use ruma::{
    EventId, OwnedEventId, RoomId, ServerName,
    api::federation::event::{get_room_state, get_room_state_ids},
};

use crate::{App, access};

/// The state before `event_id` and the auth chain of that state.
async fn state_and_chain(
    app: &App,
    room_id: &RoomId,
    event_id: &EventId,
    origin: &ServerName,
) -> Result<(Vec<StoredEvent>, Vec<StoredEvent>), MatrixError> {
    access::check_in_room(app, room_id, origin).await?;
    let request = QueryStateAtEventRequest {
        room_id: room_id.to_owned(),
        event_id: event_id.to_owned(),
        after: false,
        filter: None,
    };
    let state = match app.rt.bus.call::<QueryStateAtEvent>(&request).await {
        Ok(response) => response.state,
        Err(RpcError::Remote(e)) if e.kind == RemoteErrorKind::NotFound => {
            return Err(MatrixError::not_found("The event is unknown here, or its state is"));
        }
        Err(e) => return Err(e.into()),
    };
    let event_ids: Vec<OwnedEventId> = state.iter().map(|event| event.event_id.clone()).collect();
    let chain = app.rt.bus.call::<QueryAuthChain>(&QueryAuthChainRequest { event_ids }).await?.events;
    Ok((state, chain))
}

pub async fn get_state(
    State(app): State<App>,
    request: Ruma<get_room_state::v1::Request>,
) -> Result<RumaResponse<get_room_state::v1::Response>, MatrixError> {
    let origin = request.origin()?;
    let (state, chain) = state_and_chain(&app, &request.body.room_id, &request.body.event_id, origin).await?;
    Ok(RumaResponse(get_room_state::v1::Response::new(
        chain.into_iter().map(|event| event.event).collect(),
        state.into_iter().map(|event| event.event).collect(),
    )))
}

pub async fn get_state_ids(
    State(app): State<App>,
    request: Ruma<get_room_state_ids::v1::Request>,
) -> Result<RumaResponse<get_room_state_ids::v1::Response>, MatrixError> {
    let origin = request.origin()?;
    let (state, chain) = state_and_chain(&app, &request.body.room_id, &request.body.event_id, origin).await?;
    Ok(RumaResponse(get_room_state_ids::v1::Response::new(
        chain.into_iter().map(|event| event.event_id).collect(),
        state.into_iter().map(|event| event.event_id).collect(),
    )))
}
