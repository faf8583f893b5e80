//! `POST /knock/{roomIdOrAlias}`. `via` (and the older `server_name`) name
//! servers to knock through, for a room this server is not in.

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
    let body = &request.body;
    let (room_id, mut servers) = membership::resolve_room(&app, body.room_id_or_alias.clone()).await?;
    servers.extend(body.via.iter().cloned());
    membership::knock(&app, &user.user_id, &room_id, body.reason.clone(), &servers).await?;
    Ok(RumaResponse(knock_room::v3::Response::new(room_id)))
}
