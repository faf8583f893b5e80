//! `PUT /rooms/{roomId}/send/{eventType}/{txnId}`: a message event, sent once
//! per transaction id.

use std::sync::Arc;

use axum::extract::State;
use common::{
    api::roomserver::ClientTransaction,
    http::{MatrixError, Ruma, RumaResponse},
    pdu::EventBuilder,
};
use ruma::{api::client::message::send_message_event, events::TimelineEventType};

use crate::{App, rooms::send_event};

pub async fn send_message(
    State(app): State<Arc<App>>,
    request: Ruma<send_message_event::v3::Request>,
) -> Result<RumaResponse<send_message_event::v3::Response>, MatrixError> {
    let user = request.require_user()?;
    let body = &request.body;
    if user.is_guest && body.event_type.to_string() != "m.room.message" {
        return Err(MatrixError::guest_access_forbidden());
    }
    let content = serde_json::from_str(body.body.json().get())
        .map_err(|_| MatrixError::bad_json("The event content must be a JSON object"))?;
    let event_type = TimelineEventType::from(body.event_type.to_string());
    let builder = EventBuilder::new(&user.user_id, event_type, content);
    let txn = ClientTransaction { device_id: user.device_id.clone(), txn_id: body.txn_id.clone() };
    let event_id = send_event(&app, &body.room_id, builder, Some(txn)).await?;
    Ok(RumaResponse(send_message_event::v3::Response::new(event_id)))
}
