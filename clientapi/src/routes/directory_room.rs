//! `PUT`/`GET`/`DELETE /directory/room/{roomAlias}`: local room aliases,
//! kept by the roomserver; other servers' aliases are asked of them.

use std::sync::Arc;

use axum::extract::State;
use common::{
    api::roomserver::{
        GetRoomAlias, GetRoomAliasRequest, QueryMembers, QueryMembersRequest, RemoveRoomAlias, SetRoomAlias,
        SetRoomAliasRequest,
    },
    bus::{RemoteErrorKind, RpcError},
    federation,
    http::{MatrixError, Ruma, RumaResponse},
    pdu::{EventBuilder, Pdu},
};
use http::StatusCode;
use ruma::{
    OwnedServerName, RoomAliasId, RoomId, UserId,
    api::{
        client::alias::{create_alias, delete_alias, get_alias},
        federation::query::get_room_information,
    },
};
use serde_json::Value;

use crate::{App, room_access, rooms};

/// Aliases of other servers are theirs to create and delete.
fn check_local(app: &App, alias: &RoomAliasId) -> Result<(), MatrixError> {
    if alias.server_name() != app.rt.config.global.server_name {
        return Err(MatrixError::invalid_param("Room aliases must be on this server"));
    }
    Ok(())
}

pub async fn create_alias(
    State(app): State<Arc<App>>,
    request: Ruma<create_alias::v3::Request>,
) -> Result<RumaResponse<create_alias::v3::Response>, MatrixError> {
    let user_id = request.require_user()?.user_id.clone();
    let create_alias::v3::Request { room_alias, room_id, .. } = request.body;
    check_local(&app, &room_alias)?;
    // 404 for a room the roomserver does not know.
    rooms::room_version(&app, &room_id).await?;
    room_access::require_joined(&app, &room_id, &user_id).await?;
    let request = SetRoomAliasRequest { alias: room_alias, room_id, creator: user_id.clone() };
    if !app.rt.bus.call::<SetRoomAlias>(&request).await?.created {
        return Err(MatrixError::unknown(StatusCode::CONFLICT, "Room alias already exists"));
    }
    Ok(RumaResponse(create_alias::v3::Response::new()))
}

pub async fn get_alias(
    State(app): State<Arc<App>>,
    request: Ruma<get_alias::v3::Request>,
) -> Result<RumaResponse<get_alias::v3::Response>, MatrixError> {
    let alias = request.body.room_alias;
    let ours = &app.rt.config.global.server_name;
    if alias.server_name() != ours {
        let server = alias.server_name().to_owned();
        let found = federation::request(&app.rt.bus, &server, get_room_information::v1::Request::new(alias)).await?;
        return Ok(RumaResponse(get_alias::v3::Response::new(found.room_id, found.servers)));
    }
    let found = app.rt.bus.call::<GetRoomAlias>(&GetRoomAliasRequest { alias }).await?;
    // Servers that can help a client join: ours first, then the others in the room.
    let members = QueryMembersRequest {
        room_id: found.room_id.clone(),
        memberships: Some(vec!["join".to_owned()]),
        local_only: false,
    };
    let mut servers: Vec<OwnedServerName> = vec![ours.clone()];
    match app.rt.bus.call::<QueryMembers>(&members).await {
        Ok(joined) => {
            for member in joined.state {
                let Ok(pdu) = Pdu::parse(member.event_id, member.event) else { continue };
                let server = pdu.key().and_then(|key| UserId::parse(key).ok()).map(|u| u.server_name().to_owned());
                if let Some(server) = server.filter(|s| !servers.contains(s)) {
                    servers.push(server);
                }
            }
        }
        // An alias may outlive the room's presence here; the alias still resolves.
        Err(RpcError::Remote(e)) if e.kind == RemoteErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    Ok(RumaResponse(get_alias::v3::Response::new(found.room_id, servers)))
}

pub async fn delete_alias(
    State(app): State<Arc<App>>,
    request: Ruma<delete_alias::v3::Request>,
) -> Result<RumaResponse<delete_alias::v3::Response>, MatrixError> {
    let user_id = request.require_user()?.user_id.clone();
    let alias = request.body.room_alias;
    check_local(&app, &alias)?;
    let found = app.rt.bus.call::<GetRoomAlias>(&GetRoomAliasRequest { alias: alias.clone() }).await?;
    if found.creator != user_id && !room_access::can_edit_directory_entry(&app, &found.room_id, &user_id).await? {
        return Err(MatrixError::forbidden("Only the alias's creator or the room's moderators may delete it"));
    }
    app.rt.bus.call::<RemoveRoomAlias>(&GetRoomAliasRequest { alias: alias.clone() }).await?;
    if let Err(e) = forget_canonical_alias(&app, &found.room_id, &user_id, &alias).await {
        // As in Synapse: the alias is gone whether or not the room's event could follow.
        tracing::info!(%alias, room_id = %found.room_id, error = ?e, "the canonical alias event still names a deleted alias");
    }
    Ok(RumaResponse(delete_alias::v3::Response::new()))
}

/// Takes a deleted alias out of the room's `m.room.canonical_alias`, sent as
/// the user who deleted it (so only when their power allows).
async fn forget_canonical_alias(
    app: &App,
    room_id: &RoomId,
    user_id: &UserId,
    alias: &RoomAliasId,
) -> Result<(), MatrixError> {
    let Some(mut content) = rooms::state_content(app, room_id, "m.room.canonical_alias", "").await? else {
        return Ok(());
    };
    let mut changed = false;
    if content.get("alias").and_then(Value::as_str) == Some(alias.as_str()) {
        content.as_object_mut().map(|c| c.remove("alias"));
        changed = true;
    }
    if let Some(alt) = content.get_mut("alt_aliases").and_then(Value::as_array_mut) {
        let before = alt.len();
        alt.retain(|a| a.as_str() != Some(alias.as_str()));
        changed |= alt.len() != before;
    }
    if changed {
        let builder = EventBuilder::new(user_id, "m.room.canonical_alias", content).state("");
        rooms::send_event(app, room_id, builder, None).await?;
    }
    Ok(())
}
