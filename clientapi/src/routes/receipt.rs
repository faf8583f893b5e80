//! `POST /rooms/{roomId}/receipt/{receiptType}/{eventId}`: read receipts
//! (`OutputReceiptEvent`) and the fully-read marker (room account data).

use std::sync::Arc;

use axum::extract::State;
use common::{
    api::{
        syncapi::OutputReceiptEvent,
        userapi::{SetAccountData, SetAccountDataRequest},
    },
    http::{MatrixError, Ruma, RumaResponse},
    storage::now_ms,
};
use ruma::{
    EventId, RoomId, UserId,
    api::client::receipt::create_receipt::{self, v3::ReceiptType},
    events::receipt::ReceiptThread,
};
use serde_json::json;

use crate::{App, room_access};

/// 404 unless the event is one the roomserver has in this room.
pub(super) async fn require_event(app: &App, room_id: &RoomId, event_id: &EventId) -> Result<(), MatrixError> {
    if room_access::has_event(app, room_id, event_id).await? {
        Ok(())
    } else {
        Err(MatrixError::not_found("Event not found in this room"))
    }
}

/// Publishes a public (`m.read`) or private (`m.read.private`) receipt.
pub(super) async fn send_receipt(
    app: &App,
    room_id: &RoomId,
    user_id: &UserId,
    event_id: &EventId,
    receipt_type: &str,
    thread_id: Option<String>,
) -> Result<(), MatrixError> {
    let receipt = OutputReceiptEvent {
        room_id: room_id.to_owned(),
        user_id: user_id.to_owned(),
        event_id: event_id.to_owned(),
        receipt_type: receipt_type.to_owned(),
        thread_id,
        ts: u64::try_from(now_ms()).unwrap_or_default(),
    };
    app.rt.bus.publish(&receipt).await?;
    Ok(())
}

/// Moves the user's `m.fully_read` marker, which lives in room account data.
pub(super) async fn set_fully_read(
    app: &App,
    room_id: &RoomId,
    user_id: &UserId,
    event_id: &EventId,
) -> Result<(), MatrixError> {
    let content = serde_json::value::to_raw_value(&json!({ "event_id": event_id })).map_err(anyhow::Error::from)?;
    let request = SetAccountDataRequest {
        user_id: user_id.to_owned(),
        room_id: Some(room_id.to_owned()),
        data_type: "m.fully_read".to_owned(),
        content,
    };
    app.rt.bus.call::<SetAccountData>(&request).await?;
    Ok(())
}

pub async fn create_receipt(
    State(app): State<Arc<App>>,
    request: Ruma<create_receipt::v3::Request>,
) -> Result<RumaResponse<create_receipt::v3::Response>, MatrixError> {
    let user_id = request.require_user()?.user_id.clone();
    let create_receipt::v3::Request { room_id, receipt_type, event_id, thread, .. } = request.body;
    let thread_id = match thread {
        ReceiptThread::Unthreaded => None,
        ReceiptThread::Main | ReceiptThread::Thread(_) => thread.as_str().map(str::to_owned),
        _ => return Err(MatrixError::invalid_param("thread_id must be \"main\" or an event id")),
    };
    let receipt_type = match receipt_type {
        ReceiptType::Read => "m.read",
        ReceiptType::ReadPrivate => "m.read.private",
        ReceiptType::FullyRead if thread_id.is_some() => {
            return Err(MatrixError::invalid_param("m.fully_read markers cannot have a thread_id"));
        }
        ReceiptType::FullyRead => "m.fully_read",
        other => return Err(MatrixError::invalid_param(format!("Unknown receipt type {}", other.as_str()))),
    };
    room_access::require_joined(&app, &room_id, &user_id).await?;
    require_event(&app, &room_id, &event_id).await?;
    if receipt_type == "m.fully_read" {
        set_fully_read(&app, &room_id, &user_id, &event_id).await?;
    } else {
        send_receipt(&app, &room_id, &user_id, &event_id, receipt_type, thread_id).await?;
    }
    Ok(RumaResponse(create_receipt::v3::Response::new()))
}
