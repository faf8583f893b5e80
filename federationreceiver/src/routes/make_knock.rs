//! `GET /_matrix/federation/v1/make_knock/{roomId}/{userId}`: a knock
//! template, in a room version the asking server supports.

use axum::extract::State;
use common::http::{MatrixError, Ruma, RumaResponse};
use ruma::api::federation::membership::prepare_knock_event::v1::{Request, Response};

use crate::{App, membership};

pub async fn make_knock(State(app): State<App>, request: Ruma<Request>) -> Result<RumaResponse<Response>, MatrixError> {
    let origin = request.origin()?;
    let body = &request.body;
    let (version, event) =
        membership::template(&app, &body.room_id, &body.user_id, origin, "knock", Some(&body.ver)).await?;
    Ok(RumaResponse(Response::new(version, event)))
}
