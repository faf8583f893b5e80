//! `POST /knock/{roomIdOrAlias}`. `via` and `server_name` name servers to
//! knock through, which needs federation: only rooms this server is in for now.

use std::sync::Arc;

use axum::extract::State;
use common::http::{MatrixError, Ruma, RumaResponse};
use ruma::api::client::knock::knock_room;

use crate::{App, membership};

pub async fn knock_room(
    State(app): State<Arc<App>>,
    request: Ruma<knock_room::v3::Request>,
) -> Result<RumaResponse<knock_room::v3::Response>, MatrixError> {
    let user = request.require_user()?;
    let room_id = membership::resolve_room(&app, request.body.room_id_or_alias.clone()).await?;
    membership::knock(&app, &user.user_id, &room_id, request.body.reason.clone()).await?;
    Ok(RumaResponse(knock_room::v3::Response::new(room_id)))
}
