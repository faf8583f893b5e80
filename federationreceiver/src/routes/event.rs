//! `GET /_matrix/federation/v1/event/{eventId}`: one event, to a server in
//! its room (pruned when the room's history is hidden from that server).

use axum::extract::State;
use common::{
    api::roomserver::{QueryEventsForServer, QueryEventsForServerRequest},
    http::{MatrixError, Ruma, RumaResponse},
};
use ruma::{
    MilliSecondsSinceUnixEpoch,
    api::federation::event::get_event::v1::{Request, Response},
};

use crate::{App, access};

pub async fn get_event(State(app): State<App>, request: Ruma<Request>) -> Result<RumaResponse<Response>, MatrixError> {
    let origin = request.origin()?;
    let query =
        QueryEventsForServerRequest { event_ids: vec![request.body.event_id.clone()], server_name: origin.to_owned() };
    let event = app.rt.bus.call::<QueryEventsForServer>(&query).await?.events.into_iter().next();
    let event = event.ok_or_else(|| MatrixError::not_found("Unknown event"))?;
    access::check_in_room(&app, &event.room_id, origin).await?;
    Ok(RumaResponse(Response::new(
        app.rt.config.global.server_name.clone(),
        MilliSecondsSinceUnixEpoch::now(),
        event.event,
    )))
}
