//! The tables of delivery: who is in each room, what each destination has
//! still to get, and which destinations are backed off.

use std::collections::BTreeSet;

use common::storage::{Db, now_ms};
use ruma::{OwnedEventId, OwnedServerName, RoomId, ServerName};
use sqlx::AnyConnection;

#[derive(Clone)]
pub struct QueueStore {
    pub db: Db,
}

/// One queued event for a destination.
pub struct Queued {
    pub id: i64,
    pub event_id: OwnedEventId,
    pub json: String,
}

/// A destination's failures so far and when it may be tried again.
#[derive(Clone, Copy, Default)]
pub struct Backoff {
    pub failures: i64,
    pub retry_at_ms: i64,
}

impl QueueStore {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// The servers with a member joined to the room, as far as the events
    /// applied so far say.
    pub async fn joined_servers(
        &self,
        tx: &mut AnyConnection,
        room_id: &RoomId,
    ) -> anyhow::Result<BTreeSet<OwnedServerName>> {
        let servers: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT server_name FROM federationsender_joined_hosts WHERE room_id = $1")
                .bind(room_id.as_str())
                .fetch_all(&mut *tx)
                .await?;
        Ok(servers.into_iter().filter_map(|s| OwnedServerName::try_from(s).ok()).collect())
    }

    pub async fn add_joined(
        &self,
        tx: &mut AnyConnection,
        room_id: &RoomId,
        event_id: &str,
        server: &ServerName,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO federationsender_joined_hosts (event_id, room_id, server_name) VALUES ($1, $2, $3)
             ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(event_id)
        .bind(room_id.as_str())
        .bind(server.as_str())
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    pub async fn remove_joined(&self, tx: &mut AnyConnection, event_id: &str) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM federationsender_joined_hosts WHERE event_id = $1")
            .bind(event_id)
            .execute(&mut *tx)
            .await?;
        Ok(())
    }

    /// Queues an event for each destination (again: nothing).
    pub async fn enqueue(
        &self,
        tx: &mut AnyConnection,
        room_id: &RoomId,
        event_id: &str,
        json: &str,
        destinations: &BTreeSet<OwnedServerName>,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO federationsender_pdus (event_id, json) VALUES ($1, $2) ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(event_id)
        .bind(json)
        .execute(&mut *tx)
        .await?;
        for destination in destinations {
            sqlx::query(
                "INSERT INTO federationsender_queue (destination, room_id, event_id) VALUES ($1, $2, $3)
                 ON CONFLICT (destination, event_id) DO NOTHING",
            )
            .bind(destination.as_str())
            .bind(room_id.as_str())
            .bind(event_id)
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }

    /// Destinations with something queued that may be tried now.
    pub async fn due(&self) -> anyhow::Result<Vec<OwnedServerName>> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT q.destination FROM federationsender_queue q
             LEFT JOIN federationsender_destinations d ON d.destination = q.destination
             WHERE d.retry_at_ms IS NULL OR d.retry_at_ms <= $1",
        )
        .bind(now_ms())
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows.into_iter().filter_map(|s| OwnedServerName::try_from(s).ok()).collect())
    }

    /// The oldest `limit` events queued for the destination.
    pub async fn next(&self, destination: &ServerName, limit: i64) -> anyhow::Result<Vec<Queued>> {
        let rows: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT q.id, q.event_id, p.json FROM federationsender_queue q
             JOIN federationsender_pdus p ON p.event_id = q.event_id
             WHERE q.destination = $1 ORDER BY q.id LIMIT $2",
        )
        .bind(destination.as_str())
        .bind(limit)
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, event_id, json)| Some(Queued { id, event_id: event_id.try_into().ok()?, json }))
            .collect())
    }

    pub async fn pending(&self, destination: &ServerName) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM federationsender_queue WHERE destination = $1")
            .bind(destination.as_str())
            .fetch_one(self.db.pool())
            .await?)
    }

    /// Keeps only the newest queued event of each room for the destination:
    /// what a server that was away needs to learn it is behind; it fetches
    /// the rest itself (`get_missing_events`).
    pub async fn compact(&self, destination: &ServerName) -> anyhow::Result<u64> {
        let mut tx = self.db.begin_write().await?;
        let dropped: Vec<String> = sqlx::query_scalar(
            "SELECT event_id FROM federationsender_queue WHERE destination = $1 AND id NOT IN
             (SELECT MAX(id) FROM federationsender_queue WHERE destination = $1 GROUP BY room_id)",
        )
        .bind(destination.as_str())
        .fetch_all(&mut *tx)
        .await?;
        let deleted = sqlx::query(
            "DELETE FROM federationsender_queue WHERE destination = $1 AND id NOT IN
             (SELECT MAX(id) FROM federationsender_queue WHERE destination = $1 GROUP BY room_id)",
        )
        .bind(destination.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        forget_unqueued(&mut tx, &dropped).await?;
        tx.commit().await?;
        Ok(deleted)
    }

    /// The destination acknowledged these events: they leave its queue, and
    /// their JSON once no destination waits for them.
    pub async fn sent(&self, destination: &ServerName, sent: &[Queued]) -> anyhow::Result<()> {
        let mut tx = self.db.begin_write().await?;
        for queued in sent {
            sqlx::query("DELETE FROM federationsender_queue WHERE id = $1").bind(queued.id).execute(&mut *tx).await?;
        }
        let ids: Vec<String> = sent.iter().map(|q| q.event_id.to_string()).collect();
        forget_unqueued(&mut tx, &ids).await?;
        sqlx::query("DELETE FROM federationsender_destinations WHERE destination = $1")
            .bind(destination.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn backoff(&self, destination: &ServerName) -> anyhow::Result<Backoff> {
        let row: Option<(i64, i64)> =
            sqlx::query_as("SELECT failures, retry_at_ms FROM federationsender_destinations WHERE destination = $1")
                .bind(destination.as_str())
                .fetch_optional(self.db.pool())
                .await?;
        Ok(row.map(|(failures, retry_at_ms)| Backoff { failures, retry_at_ms }).unwrap_or_default())
    }

    pub async fn failed(&self, destination: &ServerName, backoff: Backoff) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO federationsender_destinations (destination, failures, retry_at_ms) VALUES ($1, $2, $3)
             ON CONFLICT (destination) DO UPDATE SET failures = $2, retry_at_ms = $3",
        )
        .bind(destination.as_str())
        .bind(backoff.failures)
        .bind(backoff.retry_at_ms)
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    /// The destination is up (it contacted us): try it now, keeping the count
    /// of failures so that a catch-up still compacts its queue.
    pub async fn retry_now(&self, destination: &ServerName) -> anyhow::Result<bool> {
        Ok(sqlx::query(
            "UPDATE federationsender_destinations SET retry_at_ms = 0 WHERE destination = $1 AND retry_at_ms > 0",
        )
        .bind(destination.as_str())
        .execute(self.db.pool())
        .await?
        .rows_affected()
            > 0)
    }
}

async fn forget_unqueued(tx: &mut AnyConnection, event_ids: &[String]) -> anyhow::Result<()> {
    for event_id in event_ids {
        sqlx::query(
            "DELETE FROM federationsender_pdus WHERE event_id = $1
             AND NOT EXISTS (SELECT 1 FROM federationsender_queue WHERE event_id = $1)",
        )
        .bind(event_id)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}
