//! `GET /joined_rooms`.

use std::sync::Arc;

use axum::extract::State;
use common::{
    api::roomserver::{QueryRoomsForUser, QueryRoomsForUserRequest},
    http::{MatrixError, Ruma, RumaResponse},
};
use ruma::api::client::membership::joined_rooms;

use crate::App;

pub async fn joined_rooms(
    State(app): State<Arc<App>>,
    request: Ruma<joined_rooms::v3::Request>,
) -> Result<RumaResponse<joined_rooms::v3::Response>, MatrixError> {
    let user = request.require_user()?;
    let query = QueryRoomsForUserRequest { user_id: user.user_id.clone(), memberships: vec!["join".into()] };
    let rooms = app.rt.bus.call::<QueryRoomsForUser>(&query).await?;
    Ok(RumaResponse(joined_rooms::v3::Response::new(rooms.room_ids)))
}
