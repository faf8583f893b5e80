//! Push notifications: which room events notify which local users (their
//! push rules), the notifications and unread counts that follow, read
//! receipts bringing them down, and the delivery of pushes to gateways.
//!
//! Everything an event causes (notifications, counts on
//! `OutputNotificationData`, queued pushes) is written in one transaction
//! before the message is acked, so a redelivered event changes nothing and a
//! crash loses nothing.

mod evaluate;
mod gateway;
mod receipts;

use std::{collections::BTreeMap, sync::Arc};

use common::{
    Runtime,
    api::userapi::{OutputNotificationData, QueryNotificationsRequest, QueryNotificationsResponse, ThreadCounts},
    bus::{ConsumerSpec, HandlerError, RemoteError, RemoteErrorKind, StreamMessage, consume},
    storage::{Outbox, now_ms},
};
use ruma::{EventId, RoomId, UserId};
use serde_json::{Value, json};
use sqlx::AnyConnection;
use tokio::sync::Notify;

use crate::State;

/// What the push consumers and the gateway client share.
#[derive(Clone)]
struct Push {
    state: State,
    /// Woken when pushes were queued.
    queued: Arc<Notify>,
}

pub(crate) fn start(rt: &Runtime, state: &State) -> anyhow::Result<()> {
    let push = Push { state: state.clone(), queued: Arc::new(Notify::new()) };
    spawn(rt, &push, "userapi_push", evaluate::handle);
    spawn(rt, &push, "userapi_push_receipts", receipts::receipt);
    spawn(rt, &push, "userapi_push_fully_read", receipts::fully_read);
    let client = common::outbound::OutboundClient::new(&rt.config.global)?;
    let (sender, shutdown) = (push.clone(), rt.shutdown.clone());
    rt.spawn("userapi push gateway client", async move {
        gateway::run(sender, client, shutdown).await;
        Ok(())
    });
    Ok(())
}

fn spawn<M, F, Fut>(rt: &Runtime, push: &Push, durable: &'static str, handler: F)
where
    M: StreamMessage + Send + 'static,
    F: Fn(Push, M) -> Fut + Send + Sync + Copy + 'static,
    Fut: std::future::Future<Output = Result<(), HandlerError>> + Send,
{
    let (bus, shutdown, push) = (rt.bus.clone(), rt.shutdown.clone(), push.clone());
    rt.spawn(durable, async move {
        consume(&bus, ConsumerSpec::ordered(durable), shutdown, |msg: M, _| handler(push.clone(), msg)).await
    });
}

/// Queues the user's current counts in the room on `OutputNotificationData`.
async fn announce_counts(
    tx: &mut AnyConnection,
    outbox: &Outbox,
    user_id: &UserId,
    room_id: &RoomId,
) -> anyhow::Result<()> {
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT thread_id, COUNT(*), CAST(SUM(highlight) AS BIGINT) FROM userapi_notifications
         WHERE user_id = $1 AND room_id = $2 AND is_read = 0 GROUP BY thread_id",
    )
    .bind(user_id.as_str())
    .bind(room_id.as_str())
    .fetch_all(&mut *tx)
    .await?;
    let (stream_pos,): (i64,) = sqlx::query_as(
        "INSERT INTO userapi_notification_changes (user_id, room_id, changed_ts) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(user_id.as_str())
    .bind(room_id.as_str())
    .bind(now_ms())
    .fetch_one(&mut *tx)
    .await?;
    let mut change = OutputNotificationData {
        user_id: user_id.to_owned(),
        room_id: room_id.to_owned(),
        notification_count: 0,
        highlight_count: 0,
        threads: BTreeMap::new(),
        stream_pos,
    };
    for (thread_id, notifications, highlights) in rows {
        let counts = ThreadCounts { notification_count: notifications as u64, highlight_count: highlights as u64 };
        if thread_id.is_empty() {
            change.notification_count = counts.notification_count;
            change.highlight_count = counts.highlight_count;
        } else {
            change.threads.insert(thread_id, counts);
        }
    }
    outbox.enqueue(tx, &change).await
}

/// Where an event evaluated here stands in its room.
async fn stream_ordering(tx: &mut AnyConnection, event_id: &EventId) -> anyhow::Result<Option<i64>> {
    Ok(sqlx::query_scalar("SELECT stream_ordering FROM userapi_event_orderings WHERE event_id = $1")
        .bind(event_id.as_str())
        .fetch_optional(tx)
        .await?)
}

pub(crate) async fn query_notifications(
    state: State,
    request: QueryNotificationsRequest,
) -> Result<QueryNotificationsResponse, RemoteError> {
    let before = match &request.from {
        Some(token) => token
            .parse::<i64>()
            .map_err(|_| RemoteError::new(RemoteErrorKind::BadRequest, "Unknown pagination token"))?,
        None => i64::MAX,
    };
    let limit = request.limit.clamp(1, 1000) as i64;
    let only_highlight = if request.only_highlight { 1 } else { 0 };
    let rows: Vec<(i64, String, String, String, String, i64, i64)> = sqlx::query_as(
        "SELECT id, room_id, event_id, event, actions, ts, is_read FROM userapi_notifications
         WHERE user_id = $1 AND id < $2 AND highlight >= $3 ORDER BY id DESC LIMIT $4",
    )
    .bind(request.user_id.as_str())
    .bind(before)
    .bind(only_highlight)
    .bind(limit + 1)
    .fetch_all(state.db.pool())
    .await?;
    let more = rows.len() as i64 > limit;
    let mut notifications = Vec::new();
    let mut last_id = None;
    for (id, room_id, event_id, event, actions, ts, read) in rows.into_iter().take(limit as usize) {
        let (room_id, event_id) = (
            RoomId::parse(&room_id).map_err(anyhow::Error::from)?,
            EventId::parse(&event_id).map_err(anyhow::Error::from)?,
        );
        let raw = serde_json::value::RawValue::from_string(event).map_err(anyhow::Error::from)?;
        let event = common::pdu::client_format(&event_id, &room_id, &raw)?;
        let actions: Value = serde_json::from_str(&actions).map_err(anyhow::Error::from)?;
        notifications.push(json!({
            "actions": actions,
            "event": event,
            "read": read != 0,
            "room_id": room_id,
            "ts": ts,
        }));
        last_id = Some(id);
    }
    Ok(QueryNotificationsResponse { notifications, next_token: last_id.filter(|_| more).map(|id| id.to_string()) })
}
