//! `GET /_matrix/federation/v1/make_leave/{roomId}/{userId}`: a leave
//! template, for a user of the asking server who is invited, knocking or
//! joined (a remote user rejecting our invite has no other way out).

use axum::extract::State;
use common::http::{MatrixError, Ruma, RumaResponse};
use ruma::api::federation::membership::prepare_leave_event::v1::{Request, Response};

use crate::{App, membership};

pub async fn make_leave(State(app): State<App>, request: Ruma<Request>) -> Result<RumaResponse<Response>, MatrixError> {
    let origin = request.origin()?;
    let body = &request.body;
    let (version, event) = membership::template(&app, &body.room_id, &body.user_id, origin, "leave", None).await?;
    Ok(RumaResponse(Response::new(Some(version), event)))
}
