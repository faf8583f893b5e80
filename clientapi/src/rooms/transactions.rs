//! Client transaction ids: a repeat of `PUT …/{txnId}` by the same device
//! returns the first event's id and sends nothing, on whichever clientapi
//! instance it lands.
//!
//! The event is built first and claims the transaction together with its
//! own id and JSON in one write, so that of two concurrent requests exactly
//! one sends; the other waits until the roomserver has the claimed event.
//! The claimer keeps its claim fresh while it waits for the verdict. When
//! the claimer died (its claim went stale), a retry takes the row over and
//! publishes the stored event again, hearing the verdict itself (the
//! roomserver answers a copy with the first one's verdict). When the event
//! is refused the row goes, so a retry sends afresh instead of answering
//! with the id of an event that is not in the room.

use std::{future::Future, time::Duration};

use common::{
    api::roomserver::{ClientTransaction, QueryEvents, QueryEventsRequest},
    http::MatrixError,
    pdu::BuiltEvent,
    storage::now_ms,
};
use http::StatusCode;
use ruma::{OwnedEventId, OwnedRoomId, RoomId, RoomVersionId, UserId};
use serde_json::value::RawValue;

use super::Publish;
use crate::App;

/// How long a repeat waits for the first request to finish.
const REPEAT_WAIT: Duration = Duration::from_secs(35);

/// How often a working claimer refreshes its claim…
const CLAIM_REFRESH: Duration = Duration::from_secs(1);
/// …and how old a claim is when its claimer is taken to be dead.
const STALE_CLAIM_MS: i64 = 4000;

/// How long a transaction id is remembered.
const KEEP_MS: i64 = 24 * 60 * 60 * 1000;

struct Row {
    event_id: Option<String>,
    event_json: Option<String>,
    claimed_ts: i64,
}

/// Sends the event `build` makes once per transaction and returns its id.
pub(super) async fn once<F, Fut>(
    app: &App,
    user_id: &UserId,
    txn: &ClientTransaction,
    build: F,
) -> Result<OwnedEventId, MatrixError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<(RoomVersionId, BuiltEvent), MatrixError>>,
{
    loop {
        let built = build().await;
        if let Ok((version, event)) = &built
            && claim(app, user_id, txn, event).await?
        {
            let send = super::publish_and_wait(app, version, std::slice::from_ref(event), Some(txn));
            return settle(app, user_id, txn, send).await;
        }
        // A repeat: what became of the first request's event decides, also
        // when this one could not be built (the sender may have left since).
        match repeat(app, user_id, txn).await? {
            Some(outcome) => return outcome,
            None if built.is_err() => return built.map(|(_, event)| event.event_id),
            // The first one was refused and its row went: send afresh.
            None => continue,
        }
    }
}

/// Waits for the outcome of the transaction another request claimed; None
/// when there is no claim (any more).
async fn repeat(
    app: &App,
    user_id: &UserId,
    txn: &ClientTransaction,
) -> Result<Option<Result<OwnedEventId, MatrixError>>, MatrixError> {
    let deadline = tokio::time::Instant::now() + REPEAT_WAIT;
    loop {
        let Some(row) = read(app, user_id, txn).await? else { return Ok(None) };
        let event_id = row.event_id.as_deref().map(parse_id).transpose()?;
        if let Some(event_id) = &event_id
            && accepted(app, event_id).await?
        {
            return Ok(Some(Ok(event_id.clone())));
        }
        if now_ms() - row.claimed_ts > STALE_CLAIM_MS && take_over(app, user_id, txn, row.claimed_ts).await? {
            let (Some(event_id), Some(json)) = (event_id, row.event_json) else {
                // Claimed by an older release, before the event was built.
                release(app, user_id, txn).await?;
                return Ok(None);
            };
            let room_id = room_of(&json)?;
            let resend = resend(app, &room_id, txn, event_id, json);
            return Ok(Some(settle(app, user_id, txn, resend).await));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(Some(Err(MatrixError::unknown(
                StatusCode::GATEWAY_TIMEOUT,
                "This transaction is still being processed; try again",
            ))));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs the claimed transaction's `work`, keeping the claim fresh; a refused
/// event gives the transaction up.
async fn settle(
    app: &App,
    user_id: &UserId,
    txn: &ClientTransaction,
    work: impl Future<Output = Result<OwnedEventId, MatrixError>>,
) -> Result<OwnedEventId, MatrixError> {
    tokio::pin!(work);
    let mut refresh = tokio::time::interval(CLAIM_REFRESH);
    refresh.tick().await;
    let result = loop {
        tokio::select! {
            result = &mut work => break result,
            _ = refresh.tick() => {
                if let Err(e) = keep_claim(app, user_id, txn).await {
                    tracing::warn!(error = %e, "cannot refresh a transaction claim");
                }
            }
        }
    };
    match &result {
        Ok(_) => {}
        // Undecided: the event may still be accepted, and a retry must
        // then get its id rather than send a second one.
        Err(e) if e.status() == StatusCode::GATEWAY_TIMEOUT => {}
        Err(_) => release(app, user_id, txn).await?,
    }
    result
}

/// Publishes the stored event of a dead claimer again and waits for its verdict.
async fn resend(
    app: &App,
    room_id: &RoomId,
    txn: &ClientTransaction,
    event_id: OwnedEventId,
    json: String,
) -> Result<OwnedEventId, MatrixError> {
    let version = super::room_version(app, room_id).await?;
    let event = RawValue::from_string(json).map_err(MatrixError::internal)?;
    let publish = Publish {
        room_id: room_id.to_owned(),
        event_id,
        event,
        transaction: Some(txn.clone()),
        resend: now_ms().max(1) as u64,
    };
    super::publish_inputs_and_wait(app, &version, vec![publish]).await
}

fn parse_id(event_id: &str) -> Result<OwnedEventId, MatrixError> {
    OwnedEventId::try_from(event_id).map_err(MatrixError::internal)
}

fn room_of(json: &str) -> Result<OwnedRoomId, MatrixError> {
    #[derive(serde::Deserialize)]
    struct InRoom {
        room_id: OwnedRoomId,
    }
    let event: InRoom = serde_json::from_str(json).map_err(MatrixError::internal)?;
    Ok(event.room_id)
}

/// Whether the roomserver has accepted the event.
async fn accepted(app: &App, event_id: &OwnedEventId) -> Result<bool, MatrixError> {
    let request = QueryEventsRequest { event_ids: vec![event_id.clone()] };
    let found = app.rt.bus.call::<QueryEvents>(&request).await?.events;
    Ok(found.iter().any(|event| !event.soft_failed))
}

/// Claims the transaction for `event`; true when this request now owns it.
async fn claim(app: &App, user_id: &UserId, txn: &ClientTransaction, event: &BuiltEvent) -> Result<bool, MatrixError> {
    let result = sqlx::query(
        "INSERT INTO clientapi_transactions (user_id, device_id, txn_id, event_id, event_json, accepted, claimed_ts)
         VALUES ($1, $2, $3, $4, $5, 0, $6) ON CONFLICT DO NOTHING",
    )
    .bind(user_id.as_str())
    .bind(txn.device_id.as_str())
    .bind(txn.txn_id.as_str())
    .bind(event.event_id.as_str())
    .bind(event.to_raw().get())
    .bind(now_ms())
    .execute(app.db.pool())
    .await
    .map_err(MatrixError::internal)?;
    Ok(result.rows_affected() == 1)
}

async fn read(app: &App, user_id: &UserId, txn: &ClientTransaction) -> Result<Option<Row>, MatrixError> {
    let row: Option<(Option<String>, Option<String>, i64)> = sqlx::query_as(
        "SELECT event_id, event_json, claimed_ts FROM clientapi_transactions
         WHERE user_id = $1 AND device_id = $2 AND txn_id = $3",
    )
    .bind(user_id.as_str())
    .bind(txn.device_id.as_str())
    .bind(txn.txn_id.as_str())
    .fetch_optional(app.db.pool())
    .await
    .map_err(MatrixError::internal)?;
    Ok(row.map(|(event_id, event_json, claimed_ts)| Row { event_id, event_json, claimed_ts }))
}

async fn keep_claim(app: &App, user_id: &UserId, txn: &ClientTransaction) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE clientapi_transactions SET claimed_ts = $1
         WHERE user_id = $2 AND device_id = $3 AND txn_id = $4",
    )
    .bind(now_ms())
    .bind(user_id.as_str())
    .bind(txn.device_id.as_str())
    .bind(txn.txn_id.as_str())
    .execute(app.db.pool())
    .await?;
    Ok(())
}

async fn release(app: &App, user_id: &UserId, txn: &ClientTransaction) -> Result<(), MatrixError> {
    sqlx::query("DELETE FROM clientapi_transactions WHERE user_id = $1 AND device_id = $2 AND txn_id = $3")
        .bind(user_id.as_str())
        .bind(txn.device_id.as_str())
        .bind(txn.txn_id.as_str())
        .execute(app.db.pool())
        .await
        .map_err(MatrixError::internal)?;
    Ok(())
}

/// Takes a stale claim over; false when another request took it first.
async fn take_over(app: &App, user_id: &UserId, txn: &ClientTransaction, claimed_ts: i64) -> Result<bool, MatrixError> {
    let result = sqlx::query(
        "UPDATE clientapi_transactions SET claimed_ts = $1
         WHERE user_id = $2 AND device_id = $3 AND txn_id = $4 AND claimed_ts = $5",
    )
    .bind(now_ms())
    .bind(user_id.as_str())
    .bind(txn.device_id.as_str())
    .bind(txn.txn_id.as_str())
    .bind(claimed_ts)
    .execute(app.db.pool())
    .await
    .map_err(MatrixError::internal)?;
    Ok(result.rows_affected() == 1)
}

/// Forgets transactions older than [`KEEP_MS`], every hour until shutdown:
/// clients retry within minutes, not days.
pub async fn expire(app: std::sync::Arc<App>) -> anyhow::Result<()> {
    loop {
        let result = sqlx::query("DELETE FROM clientapi_transactions WHERE claimed_ts < $1")
            .bind(now_ms() - KEEP_MS)
            .execute(app.db.pool())
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "cannot forget old transactions");
        }
        tokio::select! {
            _ = app.rt.shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
        }
    }
}
