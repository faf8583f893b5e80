//! Publishing after a commit without losing anything: the message is written
//! to `<component>_outbox` in the same transaction as the change, published
//! with its `Nats-Msg-Id` after the commit, and deleted once JetStream has
//! stored it. Rows left by a crash are published by the relay; a row
//! published twice is deduplicated by JetStream.

use std::{sync::Arc, time::Duration};

use sqlx::{AnyConnection, AssertSqlSafe};
use tokio_util::sync::CancellationToken;

use super::{Db, now_ms};
use crate::bus::{Bus, StreamMessage};

/// A message written to the outbox, to publish after the commit.
pub struct Written {
    id: i64,
    subject: String,
    msg_id: String,
    payload: String,
}

#[derive(Clone)]
pub struct Outbox {
    db: Db,
    bus: Bus,
    table: Arc<str>,
    /// One flush at a time in this instance keeps rows in order.
    flushing: Arc<tokio::sync::Mutex<()>>,
    /// Rows [`Outbox::publish`] published, to delete in the writer's next
    /// transaction rather than with a commit of their own.
    published: Arc<std::sync::Mutex<Vec<i64>>>,
}

/// Rows older than this are taken to be a crashed writer's and published by the relay.
const ORPHAN_AGE: Duration = Duration::from_secs(5);

impl Outbox {
    pub fn new(db: Db, bus: Bus, component: &str) -> Self {
        Self {
            db,
            bus,
            table: format!("{component}_outbox").into(),
            flushing: Arc::new(tokio::sync::Mutex::new(())),
            published: Arc::default(),
        }
    }

    /// Writes a message inside the caller's transaction; call [`Outbox::flush`] after commit.
    pub async fn enqueue<M: StreamMessage>(&self, tx: &mut AnyConnection, msg: &M) -> anyhow::Result<()> {
        self.write(tx, msg).await.map(|_| ())
    }

    /// Writes a message inside the caller's transaction and keeps it, so that
    /// [`Outbox::publish`] after the commit need not read it back.
    pub async fn write<M: StreamMessage>(&self, tx: &mut AnyConnection, msg: &M) -> anyhow::Result<Written> {
        let (subject, msg_id, payload) = (self.bus.subject_for(msg), msg.msg_id(), serde_json::to_string(msg)?);
        let (id,): (i64,) = sqlx::query_as(AssertSqlSafe(format!(
            "INSERT INTO {} (subject, msg_id, payload, created_ts) VALUES ($1, $2, $3, $4) RETURNING id",
            self.table
        )))
        .bind(&subject)
        .bind(&msg_id)
        .bind(&payload)
        .bind(now_ms())
        .fetch_one(tx)
        .await?;
        Ok(Written { id, subject, msg_id, payload })
    }

    /// Publishes committed messages in order. Their rows are deleted by the
    /// next [`Outbox::forget_published`], or by the relay when all is quiet;
    /// until then a crash only makes the relay publish them again, which
    /// JetStream deduplicates.
    pub async fn publish(&self, written: Vec<Written>) -> anyhow::Result<()> {
        for message in written {
            self.bus.publish_raw(message.subject, message.msg_id, message.payload.into_bytes().into()).await?;
            self.published.lock().expect("outbox lock").push(message.id);
        }
        Ok(())
    }

    /// Deletes the rows published so far, inside the caller's transaction.
    pub async fn forget_published(&self, tx: &mut AnyConnection) -> anyhow::Result<()> {
        let ids = std::mem::take(&mut *self.published.lock().expect("outbox lock"));
        self.delete(tx, &ids).await
    }

    async fn delete(&self, conn: &mut AnyConnection, ids: &[i64]) -> anyhow::Result<()> {
        // Bounded statements; the ids are integers: nothing to inject.
        for chunk in ids.chunks(500) {
            let list: Vec<String> = chunk.iter().map(i64::to_string).collect();
            sqlx::query(AssertSqlSafe(format!("DELETE FROM {} WHERE id IN ({})", self.table, list.join(","))))
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    /// Publishes every waiting row, oldest first.
    pub async fn flush(&self) -> anyhow::Result<usize> {
        self.publish_rows_older_than(i64::MAX).await
    }

    async fn publish_rows_older_than(&self, created_before: i64) -> anyhow::Result<usize> {
        let _guard = self.flushing.lock().await;
        let mut published = 0;
        loop {
            let rows: Vec<(i64, String, String, String)> = sqlx::query_as(AssertSqlSafe(format!(
                "SELECT id, subject, msg_id, payload FROM {} WHERE created_ts < $1 ORDER BY id LIMIT 100",
                self.table
            )))
            .bind(created_before)
            .fetch_all(self.db.pool())
            .await?;
            if rows.is_empty() {
                return Ok(published);
            }
            for (id, subject, msg_id, payload) in rows {
                self.bus.publish_raw(subject, msg_id, payload.into_bytes().into()).await?;
                sqlx::query(AssertSqlSafe(format!("DELETE FROM {} WHERE id = $1", self.table)))
                    .bind(id)
                    .execute(self.db.pool())
                    .await?;
                published += 1;
            }
        }
    }

    /// Publishes what crashed writers (this instance's past, or another
    /// instance) left behind, every few seconds until `shutdown`.
    pub async fn relay(self, shutdown: CancellationToken) {
        loop {
            let ids = std::mem::take(&mut *self.published.lock().expect("outbox lock"));
            if !ids.is_empty() {
                let deleted = match self.db.pool().acquire().await {
                    Ok(mut conn) => self.delete(&mut conn, &ids).await,
                    Err(e) => Err(e.into()),
                };
                if let Err(e) = deleted {
                    tracing::warn!(table = %self.table, error = format!("{e:#}"), "cannot delete published rows");
                }
            }
            let cutoff = now_ms() - ORPHAN_AGE.as_millis() as i64;
            match self.publish_rows_older_than(cutoff).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(table = %self.table, published = n, "relayed outbox rows"),
                Err(e) => tracing::warn!(table = %self.table, error = format!("{e:#}"), "outbox relay failed"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(ORPHAN_AGE / 2) => {}
            }
        }
    }
}
