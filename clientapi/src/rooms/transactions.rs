//! Client transaction ids: a repeat of `PUT …/{txnId}` by the same device
//! returns the first event's id and sends nothing, on whichever clientapi
//! instance it lands.
//!
//! A row is claimed before the event is built, so that of two concurrent
//! requests exactly one sends; the other waits for its outcome. The claimer
//! keeps its claim fresh while it works, and stores the event it built before
//! publishing it. When the claimer died (its claim went stale), a retry takes
//! the row over: it publishes the stored event again and hears the verdict
//! itself (the roomserver answers a copy with the first one's verdict), or
//! sends afresh when nothing was built yet. When the event is refused the row
//! goes, so a retry sends afresh instead of answering with the id of an event
//! that is not in the room.

use std::{future::Future, time::Duration};

use common::{api::roomserver::ClientTransaction, http::MatrixError, pdu::BuiltEvent, storage::now_ms};
use http::StatusCode;
use ruma::{OwnedEventId, RoomId, UserId};
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
    accepted: bool,
    claimed_ts: i64,
}

/// Runs `send` once per transaction and returns the event id it produced.
pub(super) async fn once<F, Fut>(
    app: &App,
    room_id: &RoomId,
    user_id: &UserId,
    txn: &ClientTransaction,
    send: F,
) -> Result<OwnedEventId, MatrixError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<OwnedEventId, MatrixError>>,
{
    let deadline = tokio::time::Instant::now() + REPEAT_WAIT;
    loop {
        if claim(app, user_id, txn).await? {
            return settle(app, user_id, txn, send()).await;
        }
        let Some(row) = read(app, user_id, txn).await? else { continue };
        if let (true, Some(event_id)) = (row.accepted, &row.event_id) {
            return parse_id(event_id);
        }
        if now_ms() - row.claimed_ts > STALE_CLAIM_MS && take_over(app, user_id, txn, row.claimed_ts).await? {
            return match (row.event_id, row.event_json) {
                (Some(event_id), Some(json)) => {
                    let resend = resend(app, room_id, txn, parse_id(&event_id)?, json);
                    settle(app, user_id, txn, resend).await
                }
                _ => settle(app, user_id, txn, send()).await,
            };
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(MatrixError::unknown(
                StatusCode::GATEWAY_TIMEOUT,
                "This transaction is still being processed; try again",
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs the claimed transaction's `work`, keeping the claim fresh, and
/// records its outcome.
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
        Ok(event_id) => accept(app, user_id, txn, event_id).await?,
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

/// True when this request now owns the transaction.
async fn claim(app: &App, user_id: &UserId, txn: &ClientTransaction) -> Result<bool, MatrixError> {
    let result = sqlx::query(
        "INSERT INTO clientapi_transactions (user_id, device_id, txn_id, event_id, accepted, claimed_ts)
         VALUES ($1, $2, $3, NULL, 0, $4) ON CONFLICT DO NOTHING",
    )
    .bind(user_id.as_str())
    .bind(txn.device_id.as_str())
    .bind(txn.txn_id.as_str())
    .bind(now_ms())
    .execute(app.db.pool())
    .await
    .map_err(MatrixError::internal)?;
    Ok(result.rows_affected() == 1)
}

async fn read(app: &App, user_id: &UserId, txn: &ClientTransaction) -> Result<Option<Row>, MatrixError> {
    let row: Option<(Option<String>, Option<String>, i64, i64)> = sqlx::query_as(
        "SELECT event_id, event_json, accepted, claimed_ts FROM clientapi_transactions
         WHERE user_id = $1 AND device_id = $2 AND txn_id = $3",
    )
    .bind(user_id.as_str())
    .bind(txn.device_id.as_str())
    .bind(txn.txn_id.as_str())
    .fetch_optional(app.db.pool())
    .await
    .map_err(MatrixError::internal)?;
    Ok(row.map(|(event_id, event_json, accepted, claimed_ts)| Row {
        event_id,
        event_json,
        accepted: accepted != 0,
        claimed_ts,
    }))
}

/// Stores the event about to be published under the transaction.
pub(super) async fn set_event(
    app: &App,
    user_id: &UserId,
    txn: &ClientTransaction,
    event: &BuiltEvent,
) -> Result<(), MatrixError> {
    sqlx::query(
        "UPDATE clientapi_transactions SET event_id = $1, event_json = $2
         WHERE user_id = $3 AND device_id = $4 AND txn_id = $5",
    )
    .bind(event.event_id.as_str())
    .bind(event.to_raw().get())
    .bind(user_id.as_str())
    .bind(txn.device_id.as_str())
    .bind(txn.txn_id.as_str())
    .execute(app.db.pool())
    .await
    .map_err(MatrixError::internal)?;
    Ok(())
}

/// The roomserver accepted the transaction's event: repeats get its id. The
/// stored event is not needed any more.
async fn accept(
    app: &App,
    user_id: &UserId,
    txn: &ClientTransaction,
    event_id: &OwnedEventId,
) -> Result<(), MatrixError> {
    sqlx::query(
        "UPDATE clientapi_transactions SET event_id = $1, accepted = 1, event_json = NULL
         WHERE user_id = $2 AND device_id = $3 AND txn_id = $4",
    )
    .bind(event_id.as_str())
    .bind(user_id.as_str())
    .bind(txn.device_id.as_str())
    .bind(txn.txn_id.as_str())
    .execute(app.db.pool())
    .await
    .map_err(MatrixError::internal)?;
    Ok(())
}

async fn keep_claim(app: &App, user_id: &UserId, txn: &ClientTransaction) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE clientapi_transactions SET claimed_ts = $1
         WHERE user_id = $2 AND device_id = $3 AND txn_id = $4 AND accepted = 0",
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
    sqlx::query(
        "DELETE FROM clientapi_transactions WHERE user_id = $1 AND device_id = $2 AND txn_id = $3 AND accepted = 0",
    )
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
         WHERE user_id = $2 AND device_id = $3 AND txn_id = $4 AND accepted = 0 AND claimed_ts = $5",
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
