//! Who may do what in a room, asked of the roomserver: membership, and the
//! power to manage the room's directory entries.

use common::{
    api::roomserver::{QueryEvents, QueryEventsRequest},
    http::MatrixError,
};
use ruma::{EventId, RoomId, UserId, events::StateEventType};

use crate::{App, membership, rooms};

pub async fn is_joined(app: &App, room_id: &RoomId, user_id: &UserId) -> Result<bool, MatrixError> {
    Ok(membership::membership_of(app, room_id, user_id).await?.is("join"))
}

/// 403 unless the user is joined to the room (unknown rooms included).
pub async fn require_joined(app: &App, room_id: &RoomId, user_id: &UserId) -> Result<(), MatrixError> {
    if is_joined(app, room_id, user_id).await? {
        Ok(())
    } else {
        Err(MatrixError::forbidden("You are not joined to this room"))
    }
}

/// Whether the user may change what the directory says about the room
/// (publish it, remove others' aliases): as Synapse, a joined member with
/// the power to send `m.room.canonical_alias`.
pub async fn can_edit_directory_entry(app: &App, room_id: &RoomId, user_id: &UserId) -> Result<bool, MatrixError> {
    if !is_joined(app, room_id, user_id).await? {
        return Ok(false);
    }
    let (levels, _) = rooms::power_levels(app, room_id).await?;
    Ok(levels.user_can_send_state(user_id, StateEventType::RoomCanonicalAlias))
}

/// Whether the roomserver has the event, in this room.
pub async fn has_event(app: &App, room_id: &RoomId, event_id: &EventId) -> Result<bool, MatrixError> {
    let request = QueryEventsRequest { event_ids: vec![event_id.to_owned()] };
    let found = app.rt.bus.call::<QueryEvents>(&request).await?;
    Ok(found.events.iter().any(|stored| stored.room_id == room_id))
}
