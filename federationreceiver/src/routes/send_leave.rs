//! `PUT /_matrix/federation/v2/send_leave/{roomId}/{eventId}`: takes a
//! leave the asking server signed.

use axum::extract::State;
use common::http::{MatrixError, Ruma, RumaResponse};
use ruma::api::federation::membership::create_leave_event::v2::{Request, Response};

use crate::{App, membership};

pub async fn send_leave(State(app): State<App>, request: Ruma<Request>) -> Result<RumaResponse<Response>, MatrixError> {
    let origin = request.origin()?;
    let body = &request.body;
    membership::accept(&app, &body.room_id, &body.event_id, &body.pdu, origin, "leave").await?;
    Ok(RumaResponse(Response::new()))
}
