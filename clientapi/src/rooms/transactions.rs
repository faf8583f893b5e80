//! Client transaction ids: a repeat of `PUT …/{txnId}` by the same device
//! returns the first event's id and sends nothing, on whichever clientapi
//! instance it lands.
//!
//! A row is claimed before the event is built, so that of two concurrent
//! requests exactly one sends; the other waits for its outcome. The row gets
//! the event id before publishing and is marked accepted after the verdict.
//! When the event is refused the row goes, so a retry sends afresh instead of
//! answering with the id of an event that is not in the room.

use std::{future::Future, time::Duration};

use common::{
    api::roomserver::{ClientTransaction, QueryEvents, QueryEventsRequest},
    http::MatrixError,
    storage::now_ms,
};
use http::StatusCode;
use ruma::{OwnedEventId, UserId};

use super::VERDICT_TIMEOUT;
use crate::App;

/// How long a repeat waits for the first request to finish.
const REPEAT_WAIT: Duration = Duration::from_secs(35);

/// A claim whose request never finished (its instance died) is taken over
/// after this long, unless its event reached the room.
const STALE_CLAIM_MS: i64 = 2 * VERDICT_TIMEOUT.as_millis() as i64;

/// How long a transaction id is remembered.
const KEEP_MS: i64 = 24 * 60 * 60 * 1000;

struct Row {
    event_id: Option<String>,
    accepted: bool,
    claimed_ts: i64,
}

/// Runs `send` once per transaction and returns the event id it produced.
pub(super) async fn once<F, Fut>(
    app: &App,
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
            let result = send().await;
            match &result {
                Ok(event_id) => set_event(app, user_id, txn, event_id, true).await?,
                // Undecided: the event may still be accepted, and a retry must
                // then get its id rather than send a second one.
                Err(e) if e.status() == StatusCode::GATEWAY_TIMEOUT => {}
                Err(_) => release(app, user_id, txn).await?,
            }
            return result;
        }
        let Some(row) = read(app, user_id, txn).await? else { continue };
        if let (true, Some(event_id)) = (row.accepted, &row.event_id) {
            return parse_id(event_id);
        }
        let age = now_ms() - row.claimed_ts;
        if age > VERDICT_TIMEOUT.as_millis() as i64
            && let Some(event_id) = &row.event_id
            && event_known(app, event_id).await?
        {
            let event_id = parse_id(event_id)?;
            set_event(app, user_id, txn, &event_id, true).await?;
            return Ok(event_id);
        }
        if age > STALE_CLAIM_MS {
            take_over(app, user_id, txn, row.claimed_ts).await?;
            continue;
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

fn parse_id(event_id: &str) -> Result<OwnedEventId, MatrixError> {
    OwnedEventId::try_from(event_id).map_err(MatrixError::internal)
}

async fn event_known(app: &App, event_id: &str) -> Result<bool, MatrixError> {
    let request = QueryEventsRequest { event_ids: vec![parse_id(event_id)?] };
    Ok(!app.rt.bus.call::<QueryEvents>(&request).await?.events.is_empty())
}

/// True when this request now owns the transaction. The user's transactions
/// older than [`KEEP_MS`] are forgotten on the way: clients retry within
/// minutes, not days.
async fn claim(app: &App, user_id: &UserId, txn: &ClientTransaction) -> Result<bool, MatrixError> {
    sqlx::query("DELETE FROM clientapi_transactions WHERE user_id = $1 AND claimed_ts < $2")
        .bind(user_id.as_str())
        .bind(now_ms() - KEEP_MS)
        .execute(app.db.pool())
        .await
        .map_err(MatrixError::internal)?;
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
    let row: Option<(Option<String>, i64, i64)> = sqlx::query_as(
        "SELECT event_id, accepted, claimed_ts FROM clientapi_transactions
         WHERE user_id = $1 AND device_id = $2 AND txn_id = $3",
    )
    .bind(user_id.as_str())
    .bind(txn.device_id.as_str())
    .bind(txn.txn_id.as_str())
    .fetch_optional(app.db.pool())
    .await
    .map_err(MatrixError::internal)?;
    Ok(row.map(|(event_id, accepted, claimed_ts)| Row { event_id, accepted: accepted != 0, claimed_ts }))
}

/// Notes the id of the event published under the transaction, and whether
/// the roomserver accepted it.
pub(super) async fn set_event(
    app: &App,
    user_id: &UserId,
    txn: &ClientTransaction,
    event_id: &OwnedEventId,
    accepted: bool,
) -> Result<(), MatrixError> {
    sqlx::query(
        "UPDATE clientapi_transactions SET event_id = $1, accepted = $2
         WHERE user_id = $3 AND device_id = $4 AND txn_id = $5",
    )
    .bind(event_id.as_str())
    .bind(accepted as i64)
    .bind(user_id.as_str())
    .bind(txn.device_id.as_str())
    .bind(txn.txn_id.as_str())
    .execute(app.db.pool())
    .await
    .map_err(MatrixError::internal)?;
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

/// Drops a stale claim, unless another request took it over first.
async fn take_over(app: &App, user_id: &UserId, txn: &ClientTransaction, claimed_ts: i64) -> Result<(), MatrixError> {
    sqlx::query(
        "DELETE FROM clientapi_transactions
         WHERE user_id = $1 AND device_id = $2 AND txn_id = $3 AND accepted = 0 AND claimed_ts = $4",
    )
    .bind(user_id.as_str())
    .bind(txn.device_id.as_str())
    .bind(txn.txn_id.as_str())
    .bind(claimed_ts)
    .execute(app.db.pool())
    .await
    .map_err(MatrixError::internal)?;
    Ok(())
}
