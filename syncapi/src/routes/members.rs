//! `GET /rooms/{roomId}/members`: for a member, the members now (or at `at`,
//! a sync token or an event id); for a past member, the members as they were
//! when they left. The same answers as clientapi's, from syncapi's projection.

use std::sync::Arc;

use axum::{Json, extract::State};
use common::{
    api::roomserver::{QueryMembership, QueryMembershipRequest},
    http::{MatrixError, Ruma},
    members::MembershipFilter,
};
use ruma::{EventId, RoomId, api::client::membership::get_member_events};
use serde_json::{Value, json};

use super::history::{parse_token, world_readable};
use crate::{App, format};

/// Which state a user may read the members of.
enum View {
    Current,
    /// After the user's leave (or ban) event, at its position here.
    At(i64),
}

pub async fn get_member_events(
    State(app): State<Arc<App>>,
    request: Ruma<get_member_events::v3::Request>,
) -> Result<Json<Value>, MatrixError> {
    let user = request.require_user()?;
    let body = &request.body;
    let filter = MembershipFilter::new(body.membership.as_ref(), body.not_membership.as_ref())?;
    let room_id = &body.room_id;
    let membership = app
        .rt
        .bus
        .call::<QueryMembership>(&QueryMembershipRequest { room_id: room_id.clone(), user_id: user.user_id.clone() })
        .await?;
    let not_member = || MatrixError::forbidden("You are not a member of this room and were never one");
    // A forgotten room's history is no longer the user's to read.
    if membership.forgotten {
        return Err(MatrixError::forbidden("You have forgotten this room"));
    }
    if !membership.room_exists {
        return Err(not_member());
    }
    let readable = match (membership.membership.as_deref(), &membership.event) {
        (Some("join"), _) => View::Current,
        (Some("leave" | "ban"), Some(event)) => match app.store.room_event(event.event_id.as_str()).await? {
            Some(left) => View::At(left.pos),
            // Not projected here yet: the current state here is from before it.
            None => View::Current,
        },
        _ if world_readable(&app.store, room_id.as_str()).await? => View::Current,
        _ => return Err(not_member()),
    };
    let at = match body.at.as_deref() {
        Some(at) if at.starts_with('s') => Some(parse_token(at)?.positions.events),
        Some(at) => match EventId::parse(at) {
            Ok(event_id) => Some(
                app.store
                    .room_event(event_id.as_str())
                    .await?
                    .filter(|e| e.room_id == room_id.as_str())
                    .ok_or_else(|| MatrixError::not_found(format!("Unknown event {event_id}")))?
                    .pos,
            ),
            Err(_) => None,
        },
        None => None,
    };
    let members = match (readable, at) {
        (View::Current, Some(at)) => members_at(&app, room_id, Some(at)).await?,
        // A past member may look back to when they were joined, never past their leaving.
        (View::At(left), Some(at)) => {
            let then = members_at(&app, room_id, Some(at)).await?;
            let joined_then =
                then.iter().any(|(user_id, membership, _)| user_id == user.user_id.as_str() && membership == "join");
            if joined_then { then } else { members_at(&app, room_id, Some(left)).await? }
        }
        (View::At(left), None) => members_at(&app, room_id, Some(left)).await?,
        (View::Current, None) => members_at(&app, room_id, None).await?,
    };
    let chunk: Vec<Value> =
        members.into_iter().filter(|(_, membership, _)| filter.wants(membership)).map(|(_, _, event)| event).collect();
    Ok(Json(json!({ "chunk": chunk })))
}

/// The member events of the room's state now (`None`) or after position
/// `at`: (user, membership, event in the client format).
async fn members_at(app: &App, room_id: &RoomId, at: Option<i64>) -> anyhow::Result<Vec<(String, String, Value)>> {
    let store = &app.store;
    let ids: Vec<String> = match at {
        None => store
            .current_state(room_id.as_str())
            .await?
            .into_iter()
            .filter(|((event_type, _), _)| event_type == "m.room.member")
            .map(|(_, id)| id)
            .collect(),
        Some(at) => store.member_events_at(room_id.as_str(), at, None).await?.into_iter().map(|(_, id)| id).collect(),
    };
    let jsons = store.state_events(&ids).await?;
    let mut members = Vec::new();
    for id in &ids {
        let Some(((_, user_id), json)) = jsons.get(id) else { continue };
        let event = format::state_event(id, room_id.as_str(), json, true)?;
        let membership = event["content"]["membership"].as_str().unwrap_or_default().to_owned();
        members.push((user_id.clone(), membership, event));
    }
    Ok(members)
}
