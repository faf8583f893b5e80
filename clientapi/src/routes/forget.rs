//! `POST /rooms/{roomId}/forget`.

use std::sync::Arc;

use axum::extract::State;
use common::{
    api::roomserver::{ForgetRoom, ForgetRoomRequest},
    bus::{RemoteErrorKind, RpcError},
    http::{MatrixError, Ruma, RumaResponse},
};
use http::StatusCode;
use ruma::api::client::membership::forget_room;

use crate::App;

pub async fn forget_room(
    State(app): State<Arc<App>>,
    request: Ruma<forget_room::v3::Request>,
) -> Result<RumaResponse<forget_room::v3::Response>, MatrixError> {
    let user = request.require_user()?;
    let forget = ForgetRoomRequest { room_id: request.body.room_id.clone(), user_id: user.user_id.clone() };
    match app.rt.bus.call::<ForgetRoom>(&forget).await {
        Ok(()) => Ok(RumaResponse(forget_room::v3::Response::new())),
        // The spec's answer to a user who has not left the room.
        Err(RpcError::Remote(e)) if e.kind == RemoteErrorKind::BadRequest => {
            Err(MatrixError::unknown(StatusCode::BAD_REQUEST, e.message))
        }
        Err(e) => Err(e.into()),
    }
}
