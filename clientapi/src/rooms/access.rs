//! What of a room a user may read: its state while they are (or were) in it,
//! and its events as `m.room.history_visibility` allows.

use common::api::roomserver::{
    QueryCurrentState, QueryCurrentStateRequest, QueryMembership, QueryMembershipRequest, QueryMembershipResponse,
    QueryStateAtEvent, QueryStateAtEventRequest, StateFilter, StoredEvent,
};
use common::pdu::Pdu;
use ruma::{OwnedEventId, RoomId, UserId, events::StateEventType};

use super::{MatrixError, parse_stored, state_content};
use crate::App;

/// Which state of a room a user may read.
pub(crate) enum StateView {
    /// The current state: the user is in the room, or it is world readable.
    Current,
    /// The state after the user's leave (or ban) event: they see the room as it was when they left.
    AtEvent(OwnedEventId),
}

impl StateView {
    /// The state events of this view, those of `filter` only when given.
    pub(crate) async fn events(
        &self,
        app: &App,
        room_id: &RoomId,
        filter: Option<Vec<StateFilter>>,
    ) -> Result<Vec<StoredEvent>, MatrixError> {
        let response = match self {
            StateView::Current => {
                let request = QueryCurrentStateRequest { room_id: room_id.to_owned(), filter };
                app.rt.bus.call::<QueryCurrentState>(&request).await?
            }
            StateView::AtEvent(event_id) => {
                let request = QueryStateAtEventRequest {
                    room_id: room_id.to_owned(),
                    event_id: event_id.clone(),
                    after: true,
                    filter,
                };
                app.rt.bus.call::<QueryStateAtEvent>(&request).await?
            }
        };
        Ok(response.state)
    }
}

fn not_member() -> MatrixError {
    MatrixError::forbidden("You are not a member of this room and were never one")
}

async fn history_visibility(app: &App, room_id: &RoomId) -> Result<String, MatrixError> {
    let content = state_content(app, room_id, "m.room.history_visibility", "").await?;
    Ok(content.and_then(|c| c["history_visibility"].as_str().map(str::to_owned)).unwrap_or_else(|| "shared".into()))
}

/// The state `user_id` may read; 403 M_FORBIDDEN when none.
pub(crate) async fn readable_state(app: &App, room_id: &RoomId, user_id: &UserId) -> Result<StateView, MatrixError> {
    let request = QueryMembershipRequest { room_id: room_id.to_owned(), user_id: user_id.to_owned() };
    let membership = app.rt.bus.call::<QueryMembership>(&request).await?;
    if !membership.room_exists || membership.forgotten {
        return Err(not_member());
    }
    match (membership.membership.as_deref(), membership.event) {
        (Some("join"), _) => Ok(StateView::Current),
        (Some("leave" | "ban"), Some(event)) => Ok(StateView::AtEvent(event.event_id)),
        _ if history_visibility(app, room_id).await? == "world_readable" => Ok(StateView::Current),
        _ => Err(not_member()),
    }
}

/// Whether `user_id` may see `event` of `room_id`, by the history visibility
/// and the user's membership when it was sent.
pub(crate) async fn visible_event(
    app: &App,
    room_id: &RoomId,
    user_id: &UserId,
    event: &StoredEvent,
) -> Result<bool, MatrixError> {
    if event.room_id != room_id || event.soft_failed {
        return Ok(false);
    }
    let request = QueryMembershipRequest { room_id: room_id.to_owned(), user_id: user_id.to_owned() };
    let now = app.rt.bus.call::<QueryMembership>(&request).await?;
    // A forgotten room's history is gone for the user.
    if now.forgotten {
        return Ok(false);
    }
    let pdu = parse_stored(event.event_id.clone(), event.event.clone())?;
    // Users see their own membership changes, also the one that took them out.
    if pdu.state_pair() == Some((StateEventType::RoomMember, user_id.to_string())) {
        return Ok(true);
    }
    let filter = vec![
        StateFilter { event_type: StateEventType::RoomHistoryVisibility, state_key: Some(String::new()) },
        StateFilter { event_type: StateEventType::RoomMember, state_key: Some(user_id.to_string()) },
    ];
    let request = QueryStateAtEventRequest {
        room_id: room_id.to_owned(),
        event_id: event.event_id.clone(),
        after: true,
        filter: Some(filter),
    };
    let state = match app.rt.bus.call::<QueryStateAtEvent>(&request).await {
        Ok(response) => response.state,
        // Outliers have no place in the room's history to be seen at.
        Err(common::bus::RpcError::Remote(e)) if e.kind == common::bus::RemoteErrorKind::NotFound => {
            return Ok(false);
        }
        Err(e) => return Err(e.into()),
    };
    let mut visibility = "shared".to_owned();
    let mut membership_then = None;
    for stored in state {
        let pdu = parse_stored(stored.event_id, stored.event)?;
        match pdu.state_pair().map(|(kind, _)| kind) {
            Some(StateEventType::RoomHistoryVisibility) => {
                visibility = pdu.content_str("history_visibility").unwrap_or(visibility);
            }
            Some(StateEventType::RoomMember) => membership_then = pdu.content_str("membership"),
            _ => {}
        }
    }
    let then = membership_then.as_deref();
    Ok(match visibility.as_str() {
        "world_readable" => true,
        _ if then == Some("join") => true,
        "invited" => then == Some("invite"),
        "joined" => false,
        // "shared", and what the spec does not define, which it says to treat as shared.
        _ => joined_after(app, room_id, user_id, &pdu, now).await?,
    })
}

/// Whether the user was in the room at some point after `event`: they are
/// now, or they left (or were banned) after it, from the room. Depth stands
/// for "after", which it is on one line of history.
async fn joined_after(
    app: &App,
    room_id: &RoomId,
    user_id: &UserId,
    event: &Pdu,
    now: QueryMembershipResponse,
) -> Result<bool, MatrixError> {
    let left = match (now.membership.as_deref(), now.event) {
        (Some("join"), _) => return Ok(true),
        (Some("leave" | "ban"), Some(left)) => left,
        _ => return Ok(false),
    };
    let left = parse_stored(left.event_id, left.event)?;
    if left.depth() <= event.depth() {
        return Ok(false);
    }
    let filter = vec![StateFilter { event_type: StateEventType::RoomMember, state_key: Some(user_id.to_string()) }];
    let request = QueryStateAtEventRequest {
        room_id: room_id.to_owned(),
        event_id: left.owned_id(),
        after: false,
        filter: Some(filter),
    };
    let before = app.rt.bus.call::<QueryStateAtEvent>(&request).await?.state;
    let mut joined = false;
    for stored in before {
        joined |= parse_stored(stored.event_id, stored.event)?.content_str("membership").as_deref() == Some("join");
    }
    Ok(joined)
}
