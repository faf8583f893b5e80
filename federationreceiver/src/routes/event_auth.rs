//! `GET /_matrix/federation/v1/event_auth/{roomId}/{eventId}`: an event's
//! full auth chain, to a server in its room.

use axum::extract::State;
use common::{
    api::roomserver::{QueryAuthChain, QueryAuthChainRequest, QueryEvents, QueryEventsRequest},
    http::{MatrixError, Ruma, RumaResponse},
};
use ruma::api::federation::authorization::get_event_authorization::v1::{Request, Response};

use crate::{App, access};

pub async fn get_event_auth(
    State(app): State<App>,
    request: Ruma<Request>,
) -> Result<RumaResponse<Response>, MatrixError> {
    let origin = request.origin()?;
    let body = &request.body;
    access::check_in_room(&app, &body.room_id, origin).await?;
    let event_ids = vec![body.event_id.clone()];
    let known = app.rt.bus.call::<QueryEvents>(&QueryEventsRequest { event_ids: event_ids.clone() }).await?.events;
    if !known.iter().any(|event| event.room_id == body.room_id) {
        return Err(MatrixError::not_found("Unknown event"));
    }
    let chain = app.rt.bus.call::<QueryAuthChain>(&QueryAuthChainRequest { event_ids }).await?.events;
    Ok(RumaResponse(Response::new(chain.into_iter().map(|event| event.event).collect())))
}
