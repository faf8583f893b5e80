//! `GET /rooms/{roomId}/joined_members`, for the room's joined members only;
//! the same answers as clientapi's, from syncapi's projection.

use std::sync::Arc;

use axum::{Json, extract::State};
use common::{
    api::roomserver::{QueryMembership, QueryMembershipRequest},
    http::{MatrixError, Ruma},
};
use ruma::api::client::membership::joined_members;
use serde_json::{Map, Value, json};

use crate::App;

pub async fn joined_members(
    State(app): State<Arc<App>>,
    request: Ruma<joined_members::v3::Request>,
) -> Result<Json<Value>, MatrixError> {
    let user = request.require_user()?;
    let room_id = request.body.room_id.as_str();
    let query = QueryMembershipRequest { room_id: request.body.room_id.clone(), user_id: user.user_id.clone() };
    if app.rt.bus.call::<QueryMembership>(&query).await?.membership.as_deref() != Some("join") {
        return Err(MatrixError::forbidden("You are not a member of this room"));
    }
    let store = &app.store;
    let keys: Vec<(String, String)> =
        store.members(room_id, "join").await?.into_iter().map(|u| ("m.room.member".to_owned(), u)).collect();
    let ids: Vec<String> = store.current_state_of(room_id, &keys).await?.into_values().collect();
    let mut joined = Map::new();
    for (_, ((_, member), json)) in store.state_events(&ids).await? {
        let event: Value = serde_json::from_str(&json).map_err(anyhow::Error::from)?;
        let mut info = Map::new();
        // Only strings: the spec's types for both fields.
        if let Some(name) = event["content"].get("displayname").filter(|v| v.is_string()) {
            info.insert("display_name".into(), name.clone());
        }
        if let Some(avatar) = event["content"].get("avatar_url").filter(|v| v.is_string()) {
            info.insert("avatar_url".into(), avatar.clone());
        }
        joined.insert(member, Value::Object(info));
    }
    Ok(Json(json!({ "joined": joined })))
}
