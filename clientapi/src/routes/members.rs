//! `GET /rooms/{roomId}/members`: for a member, the members now (or at the
//! event `at`); for a past member, the members as they were when they left.

use std::sync::Arc;

use axum::{Json, extract::State};
use common::{
    api::roomserver::{StateFilter, StoredEvent},
    http::{MatrixError, Ruma},
    members::MembershipFilter,
};
use ruma::{EventId, RoomId, UserId, api::client::membership::get_member_events, events::StateEventType};
use serde_json::{Value, json};

use crate::{
    App, membership,
    rooms::{self, StateView},
};

pub async fn get_member_events(
    State(app): State<Arc<App>>,
    request: Ruma<get_member_events::v3::Request>,
) -> Result<Json<Value>, MatrixError> {
    let user = request.require_user()?;
    let body = &request.body;
    let filter = MembershipFilter::new(body.membership.as_ref(), body.not_membership.as_ref())?;
    let room_id = &body.room_id;
    // A forgotten room's history is no longer the user's to read.
    if membership::membership_of(&app, room_id, &user.user_id).await?.forgotten {
        return Err(MatrixError::forbidden("You have forgotten this room"));
    }
    let readable = rooms::readable_state(&app, room_id, &user.user_id).await?;
    // `at` is an event id here; the sync tokens clients may also send are
    // syncapi's, which answers this path in a deployment behind nginx.
    let at = body.at.as_deref().and_then(|at| EventId::parse(at).ok());
    let members = match (readable, at) {
        (StateView::Current, Some(at)) => members_in(&app, room_id, StateView::AtEvent(at)).await?,
        // A past member may look back to when they were joined, never past their leaving.
        (StateView::AtEvent(left), Some(at)) => {
            let then = members_in(&app, room_id, StateView::AtEvent(at)).await?;
            if joined_in(&then, &user.user_id)? {
                then
            } else {
                members_in(&app, room_id, StateView::AtEvent(left)).await?
            }
        }
        (readable, None) => members_in(&app, room_id, readable).await?,
    };
    let mut chunk = Vec::new();
    for stored in &members {
        let pdu = rooms::parse_stored(stored.event_id.clone(), stored.event.clone())?;
        if pdu.content_str("membership").is_some_and(|m| filter.wants(&m)) {
            chunk.push(rooms::client_event(stored)?);
        }
    }
    Ok(Json(json!({ "chunk": chunk })))
}

async fn members_in(app: &App, room_id: &RoomId, view: StateView) -> Result<Vec<StoredEvent>, MatrixError> {
    let filter = vec![StateFilter { event_type: StateEventType::RoomMember, state_key: None }];
    view.events(app, room_id, Some(filter)).await
}

fn joined_in(members: &[StoredEvent], user_id: &UserId) -> Result<bool, MatrixError> {
    for stored in members {
        let pdu = rooms::parse_stored(stored.event_id.clone(), stored.event.clone())?;
        if pdu.key() == Some(user_id.as_str()) {
            return Ok(pdu.content_str("membership").as_deref() == Some("join"));
        }
    }
    Ok(false)
}
