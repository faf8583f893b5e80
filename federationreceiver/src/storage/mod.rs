//! federationreceiver's tables: the transactions it has received.

use std::time::Duration;

use common::storage::{Db, Migration, now_ms};
use ruma::ServerName;

use crate::App;

pub const MIGRATIONS: &[Migration] =
    &[Migration { version: 1, name: "transactions", sql: include_str!("migrations/0001_transactions.sql") }];

/// How long a transaction id is remembered. A sender retries a transaction
/// for minutes at most; a day covers a server that was down meanwhile.
const TRANSACTION_MEMORY: Duration = Duration::from_secs(24 * 3600);

/// A claim older than this belongs to an instance that died while
/// processing; the transaction may be processed again.
const CLAIM_STALE_MS: i64 = 120_000;

#[derive(Clone)]
pub struct Store {
    pub db: Db,
}

/// What a transaction id already means here.
pub enum Seen {
    /// Never seen: it is now claimed for processing.
    New,
    /// Processed: the answer given then.
    Answered(String),
    /// Being processed by another request right now.
    InProgress,
}

impl Store {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Claims a transaction for processing, or says what it already is.
    pub async fn claim_transaction(&self, origin: &ServerName, txn_id: &str) -> anyhow::Result<Seen> {
        let now = now_ms();
        let inserted = sqlx::query(
            "INSERT INTO federationreceiver_transactions (origin, txn_id, response, received_ts)
             VALUES ($1, $2, NULL, $3) ON CONFLICT (origin, txn_id) DO NOTHING",
        )
        .bind(origin.as_str())
        .bind(txn_id)
        .bind(now)
        .execute(self.db.pool())
        .await?
        .rows_affected();
        if inserted == 1 {
            return Ok(Seen::New);
        }
        let row: Option<(Option<String>, i64)> = sqlx::query_as(
            "SELECT response, received_ts FROM federationreceiver_transactions WHERE origin = $1 AND txn_id = $2",
        )
        .bind(origin.as_str())
        .bind(txn_id)
        .fetch_optional(self.db.pool())
        .await?;
        match row {
            Some((Some(response), _)) => Ok(Seen::Answered(response)),
            Some((None, received)) if now - received > CLAIM_STALE_MS => {
                let taken = sqlx::query(
                    "UPDATE federationreceiver_transactions SET received_ts = $3
                     WHERE origin = $1 AND txn_id = $2 AND response IS NULL AND received_ts = $4",
                )
                .bind(origin.as_str())
                .bind(txn_id)
                .bind(now)
                .bind(received)
                .execute(self.db.pool())
                .await?
                .rows_affected();
                Ok(if taken == 1 { Seen::New } else { Seen::InProgress })
            }
            Some((None, _)) => Ok(Seen::InProgress),
            // Expired between the two statements: treat as new next time.
            None => Ok(Seen::InProgress),
        }
    }

    pub async fn answer_transaction(&self, origin: &ServerName, txn_id: &str, response: &str) -> anyhow::Result<()> {
        sqlx::query("UPDATE federationreceiver_transactions SET response = $3 WHERE origin = $1 AND txn_id = $2")
            .bind(origin.as_str())
            .bind(txn_id)
            .bind(response)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// Lets a transaction whose processing failed be sent again.
    pub async fn release_transaction(&self, origin: &ServerName, txn_id: &str) -> anyhow::Result<()> {
        sqlx::query(
            "DELETE FROM federationreceiver_transactions WHERE origin = $1 AND txn_id = $2 AND response IS NULL",
        )
        .bind(origin.as_str())
        .bind(txn_id)
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    async fn expire(&self) -> anyhow::Result<u64> {
        let cutoff = now_ms() - TRANSACTION_MEMORY.as_millis() as i64;
        Ok(sqlx::query("DELETE FROM federationreceiver_transactions WHERE received_ts < $1")
            .bind(cutoff)
            .execute(self.db.pool())
            .await?
            .rows_affected())
    }
}

/// Forgets old transaction ids hourly, off the request path.
pub fn start_expiry(app: &App) {
    let (store, shutdown) = (app.store.clone(), app.rt.shutdown.clone());
    app.rt.spawn("federationreceiver transaction expiry", async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
            }
            if let Err(e) = store.expire().await {
                tracing::warn!(error = format!("{e:#}"), "cannot expire old transaction ids");
            }
        }
    });
}
