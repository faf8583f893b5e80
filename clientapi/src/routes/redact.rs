//! `PUT /rooms/{roomId}/redact/{eventId}/{txnId}`: users redact their own
//! events, and others' with the power to. The authorisation rules let any
//! user of the same server redact, so the power is checked here.

use std::sync::Arc;

use axum::extract::State;
use common::{
    api::roomserver::{ClientTransaction, QueryEvents, QueryEventsRequest},
    http::{MatrixError, Ruma, RumaResponse},
    pdu::EventBuilder,
};
use ruma::{api::client::redact::redact_event, events::TimelineEventType};
use serde_json::json;

use crate::{
    App,
    rooms::{parse_stored, power_levels, send_event},
};

pub async fn redact(
    State(app): State<Arc<App>>,
    request: Ruma<redact_event::v3::Request>,
) -> Result<RumaResponse<redact_event::v3::Response>, MatrixError> {
    let user = request.require_user()?;
    let body = &request.body;
    let query = QueryEventsRequest { event_ids: vec![body.event_id.clone()] };
    let target = app.rt.bus.call::<QueryEvents>(&query).await?.events.into_iter().next();
    let target = target.ok_or_else(|| MatrixError::not_found("No such event in this room"))?;
    // A redaction redacts only in its own room; Synapse and SyTest say 400.
    if target.room_id != body.room_id {
        return Err(MatrixError::invalid_param("The event is in another room"));
    }
    let target = parse_stored(target.event_id, target.event)?;
    if target.sender_id() != user.user_id {
        let (levels, _) = power_levels(&app, &body.room_id).await?;
        if !levels.user_can_redact_event_of_other(&user.user_id) {
            return Err(MatrixError::forbidden("You do not have the power to redact others' events"));
        }
    }
    let mut content = json!({});
    if let Some(reason) = &body.reason {
        content["reason"] = reason.as_str().into();
    }
    let mut builder = EventBuilder::new(&user.user_id, TimelineEventType::RoomRedaction, content);
    builder.redacts = Some(body.event_id.clone());
    let txn = ClientTransaction { device_id: user.device_id.clone(), txn_id: body.txn_id.clone() };
    let event_id = send_event(&app, &body.room_id, builder, Some(txn)).await?;
    Ok(RumaResponse(redact_event::v3::Response::new(event_id)))
}
