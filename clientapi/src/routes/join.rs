//! `POST /join/{roomIdOrAlias}` and `POST /rooms/{roomId}/join`.

use std::sync::Arc;

use axum::extract::State;
use common::http::{MatrixError, Ruma, RumaResponse};
use ruma::api::client::membership::{join_room_by_id, join_room_by_id_or_alias};

use crate::{App, membership};

pub async fn join_room_by_id(
    State(app): State<Arc<App>>,
    request: Ruma<join_room_by_id::v3::Request>,
) -> Result<RumaResponse<join_room_by_id::v3::Response>, MatrixError> {
    let user = request.require_user()?;
    let body = &request.body;
    refuse_third_party_signed(body.third_party_signed.is_some())?;
    membership::join(&app, &user.user_id, user.is_guest, &body.room_id, body.reason.clone(), &[]).await?;
    Ok(RumaResponse(join_room_by_id::v3::Response::new(body.room_id.clone())))
}

/// `via` (and the older `server_name`) name servers to join through, for a
/// room this server is not in.
pub async fn join_room_by_id_or_alias(
    State(app): State<Arc<App>>,
    request: Ruma<join_room_by_id_or_alias::v3::Request>,
) -> Result<RumaResponse<join_room_by_id_or_alias::v3::Response>, MatrixError> {
    let user = request.require_user()?;
    let body = &request.body;
    refuse_third_party_signed(body.third_party_signed.is_some())?;
    let (room_id, mut servers) = membership::resolve_room(&app, body.room_id_or_alias.clone()).await?;
    servers.extend(body.via.iter().cloned());
    membership::join(&app, &user.user_id, user.is_guest, &room_id, body.reason.clone(), &servers).await?;
    Ok(RumaResponse(join_room_by_id_or_alias::v3::Response::new(room_id)))
}

/// Joins by third-party invite need the invite's identity server, and this
/// server makes no third-party invites.
fn refuse_third_party_signed(present: bool) -> Result<(), MatrixError> {
    if present {
        return Err(MatrixError::forbidden("Third-party invites are not supported"));
    }
    Ok(())
}
