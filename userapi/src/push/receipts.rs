//! Read receipts (and the fully-read marker) of local users bring their
//! notifications up to the receipt's event to read.

use common::{
    api::{syncapi::OutputReceiptEvent, userapi::OutputClientData},
    bus::HandlerError,
};
use ruma::{EventId, RoomId, UserId};
use serde_json::Value;

use super::Push;

pub(super) async fn receipt(push: Push, msg: OutputReceiptEvent) -> Result<(), HandlerError> {
    if !matches!(msg.receipt_type.as_str(), "m.read" | "m.read.private")
        || msg.user_id.server_name() != push.state.config.global.server_name
    {
        return Ok(());
    }
    mark_read(&push, &msg.user_id, &msg.room_id, &msg.event_id, msg.thread_id.as_deref()).await
}

/// `m.fully_read` moves like an unthreaded read receipt.
pub(super) async fn fully_read(push: Push, msg: OutputClientData) -> Result<(), HandlerError> {
    let Some(room_id) = msg.room_id.as_ref().filter(|_| msg.data_type == "m.fully_read") else {
        return Ok(());
    };
    let content: Option<String> = sqlx::query_scalar(
        "SELECT content FROM userapi_account_data WHERE user_id = $1 AND room_id = $2 AND data_type = 'm.fully_read'",
    )
    .bind(msg.user_id.as_str())
    .bind(room_id.as_str())
    .fetch_optional(push.state.db.pool())
    .await
    .map_err(anyhow::Error::from)?;
    let event_id = content
        .and_then(|c| serde_json::from_str::<Value>(&c).ok())
        .and_then(|c| c["event_id"].as_str().and_then(|e| EventId::parse(e).ok()));
    match event_id {
        Some(event_id) => mark_read(&push, &msg.user_id, room_id, &event_id, None).await,
        None => Ok(()),
    }
}

const READ_ALL: &str = "UPDATE userapi_notifications SET is_read = 1
    WHERE user_id = $1 AND room_id = $2 AND is_read = 0 AND stream_ordering <= $3";
const READ_THREAD: &str = "UPDATE userapi_notifications SET is_read = 1
    WHERE user_id = $1 AND room_id = $2 AND is_read = 0 AND stream_ordering <= $3 AND thread_id = $4";

/// `thread`: `None` reads everything up to the event, `main` the main
/// timeline only, else that thread only.
pub(super) async fn mark_read(
    push: &Push,
    user_id: &UserId,
    room_id: &RoomId,
    event_id: &EventId,
    thread: Option<&str>,
) -> Result<(), HandlerError> {
    let state = &push.state;
    let mut tx = state.db.begin_write().await.map_err(anyhow::Error::from)?;
    // Not evaluated (yet): the receipt covers nothing known here.
    let Some(ordering) = super::stream_ordering(&mut tx, event_id).await? else {
        return Ok(());
    };
    let query = match thread {
        None => sqlx::query(READ_ALL),
        Some(_) => sqlx::query(READ_THREAD),
    };
    let query = query.bind(user_id.as_str()).bind(room_id.as_str()).bind(ordering);
    let query = match thread {
        None => query,
        // The main timeline's notifications have no thread id.
        Some("main") => query.bind(""),
        Some(thread) => query.bind(thread),
    };
    let changed = query.execute(&mut *tx).await.map_err(anyhow::Error::from)?.rows_affected();
    if changed == 0 {
        return Ok(());
    }
    super::announce_counts(&mut tx, &state.outbox, user_id, room_id).await?;
    tx.commit().await.map_err(anyhow::Error::from)?;
    crate::publish_now(&state.outbox).await;
    Ok(())
}
