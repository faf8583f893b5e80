//! `GET /rooms/{roomId}/event/{eventId}`: one event, when the caller may see it.

use std::sync::Arc;

use axum::extract::State;
use common::{
    api::roomserver::{QueryEvents, QueryEventsRequest},
    http::{MatrixError, Ruma, RumaResponse},
};
use ruma::{api::client::room::get_room_event, serde::Raw};

use crate::{
    App,
    rooms::{client_event, visible_event},
};

pub async fn get_event(
    State(app): State<Arc<App>>,
    request: Ruma<get_room_event::v3::Request>,
) -> Result<RumaResponse<get_room_event::v3::Response>, MatrixError> {
    let user = request.require_user()?;
    let body = &request.body;
    // The same answer whether the event is unknown or hidden, so that
    // nothing is learnt about rooms the caller cannot read.
    let not_found = || MatrixError::not_found("Event not found");
    let request = QueryEventsRequest { event_ids: vec![body.event_id.clone()] };
    let event = app.rt.bus.call::<QueryEvents>(&request).await?.events.into_iter().next().ok_or_else(not_found)?;
    if !visible_event(&app, &body.room_id, &user.user_id, &event).await? {
        return Err(not_found());
    }
    Ok(RumaResponse(get_room_event::v3::Response::new(Raw::from_json(client_event(&event)?))))
}
