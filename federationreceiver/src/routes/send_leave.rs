//! `PUT /_matrix/federation/v2/send_leave/{roomId}/{eventId}` and the older
//! `PUT /_matrix/federation/v1/send_leave/{roomId}/{eventId}`: takes a leave
//! the asking server signed. v1 sends the same body and is answered
//! `[200, {}]`; ruma has no v1 type, so v2's reads it.

use axum::{Json, extract::State};
use common::http::{MatrixError, Ruma, RumaResponse};
use ruma::api::federation::membership::create_leave_event::v2::{Request, Response};
use serde_json::{Value, json};

use crate::{App, membership};

pub async fn send_leave(State(app): State<App>, request: Ruma<Request>) -> Result<RumaResponse<Response>, MatrixError> {
    leave(&app, &request).await?;
    Ok(RumaResponse(Response::new()))
}

pub async fn send_leave_v1(State(app): State<App>, request: Ruma<Request>) -> Result<Json<Value>, MatrixError> {
    leave(&app, &request).await?;
    Ok(Json(json!([200, {}])))
}

async fn leave(app: &App, request: &Ruma<Request>) -> Result<(), MatrixError> {
    let origin = request.origin()?;
    let body = &request.body;
    membership::accept(app, &body.room_id, &body.event_id, &body.pdu, origin, "leave").await?;
    Ok(())
}
