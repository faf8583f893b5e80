//! `GET /rooms/{roomId}/aliases`: the room's local aliases, for its members
//! (or anyone, when its history is world readable).

use std::sync::Arc;

use axum::extract::State;
use common::{
    api::roomserver::{QueryAliasesForRoom, QueryAliasesForRoomRequest},
    http::{MatrixError, Ruma, RumaResponse},
};
use ruma::api::client::room::aliases;

use crate::{App, room_access, rooms};

pub async fn get_room_aliases(
    State(app): State<Arc<App>>,
    request: Ruma<aliases::v3::Request>,
) -> Result<RumaResponse<aliases::v3::Response>, MatrixError> {
    let user_id = request.require_user()?.user_id.clone();
    let room_id = request.body.room_id;
    if !room_access::is_joined(&app, &room_id, &user_id).await? {
        let forbidden = || MatrixError::forbidden("You are not joined to this room");
        let visibility = match rooms::state_content(&app, &room_id, "m.room.history_visibility", "").await {
            Ok(content) => content.and_then(|c| c["history_visibility"].as_str().map(str::to_owned)),
            // Unknown rooms look like rooms the caller is not in.
            Err(e) if e.status() == http::StatusCode::NOT_FOUND => return Err(forbidden()),
            Err(e) => return Err(e),
        };
        if visibility.as_deref() != Some("world_readable") {
            return Err(forbidden());
        }
    }
    let found = app.rt.bus.call::<QueryAliasesForRoom>(&QueryAliasesForRoomRequest { room_id }).await?;
    Ok(RumaResponse(aliases::v3::Response::new(found.aliases)))
}
