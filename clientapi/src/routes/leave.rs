//! `POST /rooms/{roomId}/leave`: leave, reject an invite or withdraw a knock.

use std::sync::Arc;

use axum::extract::State;
use common::http::{MatrixError, Ruma, RumaResponse};
use ruma::api::client::membership::leave_room;

use crate::{App, membership};

pub async fn leave_room(
    State(app): State<Arc<App>>,
    request: Ruma<leave_room::v3::Request>,
) -> Result<RumaResponse<leave_room::v3::Response>, MatrixError> {
    let user = request.require_user()?;
    membership::leave(&app, &user.user_id, &request.body.room_id, request.body.reason.clone()).await?;
    Ok(RumaResponse(leave_room::v3::Response::new()))
}
