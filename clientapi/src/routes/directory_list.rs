//! `GET`/`PUT /directory/list/room/{roomId}`: whether the room is published
//! in this server's public room directory.

use std::sync::Arc;

use axum::extract::State;
use common::{
    api::roomserver::{QueryRoomVersionRequest, QueryRoomVisibility, SetRoomVisibility, SetRoomVisibilityRequest},
    http::{MatrixError, Ruma, RumaResponse},
};
use ruma::api::client::{
    directory::{get_room_visibility, set_room_visibility},
    room::Visibility,
};

use crate::{App, room_access, rooms};

pub async fn get_room_visibility(
    State(app): State<Arc<App>>,
    request: Ruma<get_room_visibility::v3::Request>,
) -> Result<RumaResponse<get_room_visibility::v3::Response>, MatrixError> {
    let request = QueryRoomVersionRequest { room_id: request.body.room_id };
    let found = app.rt.bus.call::<QueryRoomVisibility>(&request).await?;
    let visibility = if found.public { Visibility::Public } else { Visibility::Private };
    Ok(RumaResponse(get_room_visibility::v3::Response::new(visibility)))
}

pub async fn set_room_visibility(
    State(app): State<Arc<App>>,
    request: Ruma<set_room_visibility::v3::Request>,
) -> Result<RumaResponse<set_room_visibility::v3::Response>, MatrixError> {
    let user_id = request.require_user()?.user_id.clone();
    let set_room_visibility::v3::Request { room_id, visibility, .. } = request.body;
    let public = match visibility {
        Visibility::Public => true,
        Visibility::Private => false,
        other => return Err(MatrixError::invalid_param(format!("Unknown visibility {}", other.as_str()))),
    };
    // 404 for a room the roomserver does not know.
    rooms::room_version(&app, &room_id).await?;
    if !room_access::can_edit_directory_entry(&app, &room_id, &user_id).await? {
        return Err(MatrixError::forbidden(
            "Only room members with the power to change its canonical alias may publish or unpublish it",
        ));
    }
    app.rt.bus.call::<SetRoomVisibility>(&SetRoomVisibilityRequest { room_id, public }).await?;
    Ok(RumaResponse(set_room_visibility::v3::Response::new()))
}
