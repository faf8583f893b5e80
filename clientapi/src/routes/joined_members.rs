//! `GET /rooms/{roomId}/joined_members`, for the room's joined members only.

use std::sync::Arc;

use axum::{Json, extract::State};
use common::{
    api::roomserver::{QueryMembers, QueryMembersRequest},
    http::{MatrixError, Ruma},
};
use ruma::api::client::membership::joined_members;
use serde_json::{Map, Value, json};

use crate::{App, membership, rooms};

pub async fn joined_members(
    State(app): State<Arc<App>>,
    request: Ruma<joined_members::v3::Request>,
) -> Result<Json<Value>, MatrixError> {
    let user = request.require_user()?;
    let room_id = &request.body.room_id;
    if !membership::membership_of(&app, room_id, &user.user_id).await?.is("join") {
        return Err(MatrixError::forbidden("You are not a member of this room"));
    }
    let query =
        QueryMembersRequest { room_id: room_id.clone(), memberships: Some(vec!["join".into()]), local_only: false };
    let mut joined = Map::new();
    for stored in app.rt.bus.call::<QueryMembers>(&query).await?.state {
        let pdu = rooms::parse_stored(stored.event_id, stored.event)?;
        let Some(member) = pdu.key() else { continue };
        let content = membership::content_of(&pdu);
        let mut info = Map::new();
        // Only strings: the spec's types for both fields.
        if let Some(name) = content.get("displayname").filter(|v| v.is_string()) {
            info.insert("display_name".into(), name.clone());
        }
        if let Some(avatar) = content.get("avatar_url").filter(|v| v.is_string()) {
            info.insert("avatar_url".into(), avatar.clone());
        }
        joined.insert(member.to_owned(), Value::Object(info));
    }
    Ok(Json(json!({ "joined": joined })))
}
