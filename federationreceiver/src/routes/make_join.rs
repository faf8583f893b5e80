//! `GET /_matrix/federation/v1/make_join/{roomId}/{userId}`: a join template
//! for a user of the asking server, in a room version it supports.

use axum::extract::State;
use common::http::{MatrixError, Ruma, RumaResponse};
use ruma::api::federation::membership::prepare_join_event::v1::{Request, Response};

use crate::{App, membership};

pub async fn make_join(State(app): State<App>, request: Ruma<Request>) -> Result<RumaResponse<Response>, MatrixError> {
    let origin = request.origin()?;
    let body = &request.body;
    let (version, event) =
        membership::template(&app, &body.room_id, &body.user_id, origin, "join", Some(&body.ver)).await?;
    let mut response = Response::new(event);
    response.room_version = Some(version);
    Ok(RumaResponse(response))
}
