//! What another server may do in a room: its name must pass the room's
//! `m.room.server_acl`, and it reads a room's events only while one of its
//! users is in the room.

use common::{
    api::roomserver::{
        QueryCurrentState, QueryCurrentStateRequest, QueryJoinedServers, QueryJoinedServersRequest, StateFilter,
    },
    bus::{RemoteErrorKind, RpcError},
    http::MatrixError,
};
use ruma::{RoomId, ServerName, events::room::server_acl::RoomServerAclEventContent};

use crate::App;

/// 403 M_FORBIDDEN when the room's server ACL bans `origin`. A room unknown
/// here has no ACL to apply.
pub async fn check_acl(app: &App, room_id: &RoomId, origin: &ServerName) -> Result<(), MatrixError> {
    let filter = vec![StateFilter { event_type: "m.room.server_acl".into(), state_key: Some(String::new()) }];
    let request = QueryCurrentStateRequest { room_id: room_id.to_owned(), filter: Some(filter) };
    let state = match app.rt.bus.call::<QueryCurrentState>(&request).await {
        Ok(response) => response.state,
        Err(RpcError::Remote(e)) if e.kind == RemoteErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let Some(event) = state.first() else { return Ok(()) };
    #[derive(serde::Deserialize)]
    struct Content {
        content: RoomServerAclEventContent,
    }
    // An ACL whose content does not parse bans no one, as Synapse reads it.
    let Ok(Content { content }) = serde_json::from_str::<Content>(event.event.get()) else { return Ok(()) };
    if content.is_allowed(origin) {
        Ok(())
    } else {
        Err(MatrixError::forbidden(format!("{origin} is banned from this room by its server ACL")))
    }
}

/// The room's ACL passes `origin` and one of its users is joined; 403
/// otherwise, 404 when the room is unknown here.
pub async fn check_in_room(app: &App, room_id: &RoomId, origin: &ServerName) -> Result<(), MatrixError> {
    check_acl(app, room_id, origin).await?;
    let request = QueryJoinedServersRequest { room_id: room_id.to_owned() };
    let servers = match app.rt.bus.call::<QueryJoinedServers>(&request).await {
        Ok(response) => response.servers,
        Err(RpcError::Remote(e)) if e.kind == RemoteErrorKind::NotFound => {
            return Err(MatrixError::not_found("Unknown room"));
        }
        Err(e) => return Err(e.into()),
    };
    if servers.iter().any(|server| server == origin) {
        Ok(())
    } else {
        Err(MatrixError::forbidden(format!("{origin} is not in this room")))
    }
}
