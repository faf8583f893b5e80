//! `PUT /sendToDevice/{eventType}/{txnId}`: messages to devices, published on
//! `OutputSendToDeviceEvent` for syncapi to deliver, once per transaction id.
//!
//! The transaction id is remembered in `clientapi_to_device_txns` in the same
//! database transaction that queues the messages in the outbox, so a repeated
//! request (on any clientapi instance, after any crash) publishes nothing new
//! and nothing accepted is lost.

use std::{sync::Arc, time::Duration};

use axum::extract::State;
use common::{
    api::syncapi::OutputSendToDeviceEvent,
    http::{MatrixError, Ruma, RumaResponse},
    storage::now_ms,
};
use ruma::{api::client::to_device::send_event_to_device, to_device::DeviceIdOrAllDevices};
use serde_json::value::RawValue;

use crate::App;

/// How long a transaction id is remembered: a client retrying later than
/// this has long since moved on.
const TXN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// The largest content of one message; the spec's limit for a whole event,
/// which is what a device receives.
const MAX_CONTENT_BYTES: usize = 65536;

pub async fn send_to_device(
    State(app): State<Arc<App>>,
    request: Ruma<send_event_to_device::v3::Request>,
) -> Result<RumaResponse<send_event_to_device::v3::Response>, MatrixError> {
    let sender = request.require_user()?;
    let body = &request.body;
    let event_type = body.event_type.to_string();
    if event_type.is_empty() {
        return Err(MatrixError::invalid_param("The event type must not be empty"));
    }
    let local = &app.rt.config.global.server_name;
    let mut messages = Vec::new();
    for (user_id, devices) in &body.messages {
        if user_id.server_name() != local {
            // Remote devices are reached over federation, which comes later.
            tracing::info!(sender = %sender.user_id, target = %user_id, event_type, "to-device message for a remote user dropped");
            continue;
        }
        for (device, content) in devices {
            let content = content.json();
            if !content.get().trim_start().starts_with('{') {
                return Err(MatrixError::bad_json("Each message must be a JSON object"));
            }
            if content.get().len() > MAX_CONTENT_BYTES {
                return Err(MatrixError::too_large(MAX_CONTENT_BYTES));
            }
            let device_id = match device {
                DeviceIdOrAllDevices::DeviceId(id) => Some(id.clone()),
                DeviceIdOrAllDevices::AllDevices => None,
            };
            let message_id = format!("{}|{}|{}|{}", sender.device_id, body.txn_id, user_id, device);
            messages.push(OutputSendToDeviceEvent {
                sender: sender.user_id.clone(),
                user_id: user_id.clone(),
                device_id,
                event_type: event_type.clone(),
                content: RawValue::from_string(content.get().to_owned()).map_err(MatrixError::internal)?,
                message_id,
            });
        }
    }

    let mut tx = app.db.begin_write().await.map_err(MatrixError::internal)?;
    sqlx::query("DELETE FROM clientapi_to_device_txns WHERE user_id = $1 AND created_ts < $2")
        .bind(sender.user_id.as_str())
        .bind(now_ms() - TXN_LIFETIME.as_millis() as i64)
        .execute(&mut *tx)
        .await
        .map_err(MatrixError::internal)?;
    let claimed = sqlx::query(
        "INSERT INTO clientapi_to_device_txns (user_id, device_id, txn_id, created_ts)
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(sender.user_id.as_str())
    .bind(sender.device_id.as_str())
    .bind(body.txn_id.as_str())
    .bind(now_ms())
    .execute(&mut *tx)
    .await
    .map_err(MatrixError::internal)?
    .rows_affected();
    if claimed == 0 {
        // A retry of a request that was already accepted.
        return Ok(RumaResponse(send_event_to_device::v3::Response::new()));
    }
    for message in &messages {
        app.outbox.enqueue(&mut tx, message).await?;
    }
    tx.commit().await.map_err(MatrixError::internal)?;
    crate::publish_now(&app.outbox).await;
    Ok(RumaResponse(send_event_to_device::v3::Response::new()))
}
