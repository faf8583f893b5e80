//! `GET /_matrix/federation/v1/query/directory?room_alias=`: the room a
//! local alias names, and servers in it to join through.

use axum::extract::State;
use common::{
    api::roomserver::{GetRoomAlias, GetRoomAliasRequest, QueryJoinedServers, QueryJoinedServersRequest},
    http::{MatrixError, Ruma, RumaResponse},
};
use ruma::api::federation::query::get_room_information::v1::{Request, Response};

use crate::App;

pub async fn query_directory(
    State(app): State<App>,
    request: Ruma<Request>,
) -> Result<RumaResponse<Response>, MatrixError> {
    let alias = request.body.room_alias;
    let server_name = &app.rt.config.global.server_name;
    if alias.server_name() != server_name {
        return Err(MatrixError::not_found("The alias is not on this server"));
    }
    let room_id = app.rt.bus.call::<GetRoomAlias>(&GetRoomAliasRequest { alias }).await?.room_id;
    let joined = app.rt.bus.call::<QueryJoinedServers>(&QueryJoinedServersRequest { room_id: room_id.clone() }).await;
    // Ourselves first: we answered, so we can be joined through.
    let mut servers = vec![server_name.clone()];
    servers.extend(joined.map(|r| r.servers).unwrap_or_default().into_iter().filter(|s| s != server_name));
    Ok(RumaResponse(Response::new(room_id, servers)))
}
