//! `POST /rooms/{roomId}/read_markers`: the fully-read marker and the read
//! receipts in one request.

use std::sync::Arc;

use axum::extract::State;
use common::http::{MatrixError, Ruma, RumaResponse};
use ruma::api::client::read_marker::set_read_marker;

use super::receipt::{require_event, send_receipt, set_fully_read};
use crate::{App, room_access};

pub async fn set_read_marker(
    State(app): State<Arc<App>>,
    request: Ruma<set_read_marker::v3::Request>,
) -> Result<RumaResponse<set_read_marker::v3::Response>, MatrixError> {
    let user_id = request.require_user()?.user_id.clone();
    let set_read_marker::v3::Request { room_id, fully_read, read_receipt, private_read_receipt, .. } = request.body;
    room_access::require_joined(&app, &room_id, &user_id).await?;
    // Every event is checked before anything moves: a request is applied whole or not at all.
    for event_id in [&fully_read, &read_receipt, &private_read_receipt].into_iter().flatten() {
        require_event(&app, &room_id, event_id).await?;
    }
    if let Some(event_id) = &fully_read {
        set_fully_read(&app, &room_id, &user_id, event_id).await?;
    }
    if let Some(event_id) = &read_receipt {
        send_receipt(&app, &room_id, &user_id, event_id, "m.read", None).await?;
    }
    if let Some(event_id) = &private_read_receipt {
        send_receipt(&app, &room_id, &user_id, event_id, "m.read.private", None).await?;
    }
    Ok(RumaResponse(set_read_marker::v3::Response::new()))
}
