//! `roomserver_events`: every event the roomserver has seen, with its verdict
//! and the state snapshots before and after it.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use common::{api::roomserver::StoredEvent, pdu::Pdu, storage::now_ms};
use ruma::{EventId, OwnedEventId, OwnedRoomId};
use serde_json::value::RawValue;
use sqlx::{AnyConnection, AnyPool, AssertSqlSafe};

use super::placeholders;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventStatus {
    Accepted = 0,
    SoftFailed = 1,
    Rejected = 2,
    Outlier = 3,
}

impl EventStatus {
    fn from_i64(value: i64) -> EventStatus {
        match value {
            0 => EventStatus::Accepted,
            1 => EventStatus::SoftFailed,
            2 => EventStatus::Rejected,
            _ => EventStatus::Outlier,
        }
    }
}

/// An event as stored, with what the roomserver knows of its place in the room.
#[derive(Clone, Debug)]
pub struct EventRow {
    pub pdu: Pdu,
    pub room_id: OwnedRoomId,
    pub status: EventStatus,
    pub redacted: bool,
    pub state_before: Option<i64>,
    pub state_after: Option<i64>,
}

impl EventRow {
    pub fn stored(&self) -> StoredEvent {
        StoredEvent {
            event_id: self.pdu.owned_id(),
            room_id: self.room_id.clone(),
            event: self.pdu.to_raw(),
            redacted: self.redacted,
            soft_failed: self.status == EventStatus::SoftFailed,
        }
    }
}

pub struct NewEvent<'a> {
    pub pdu: &'a Pdu,
    pub room_id: &'a str,
    pub status: EventStatus,
    pub state_before: Option<i64>,
    pub state_after: Option<i64>,
    pub stream_ordering: Option<i64>,
}

#[derive(Clone)]
pub struct Events {
    pool: AnyPool,
    /// Events placed in their room, by id: what input processing reads again
    /// and again (the prev events, the auth events). Such a row never changes
    /// but for redaction, which this instance applies here too; another
    /// instance's redaction leaves the unpruned content here, which the
    /// authorisation rules cannot tell apart (redaction keeps what they read).
    /// Answers to other components read the database.
    recent: Arc<Mutex<HashMap<OwnedEventId, EventRow>>>,
}

/// Rows kept in memory; the map starts over when full.
const CACHE_SIZE: usize = 50_000;

type Row = (String, String, String, i64, i64, Option<i64>, Option<i64>);

const COLUMNS: &str = "event_id, room_id, json, redacted, status, state_before, state_after";

fn decode(row: Row) -> anyhow::Result<EventRow> {
    let (event_id, room_id, json, redacted, status, state_before, state_after) = row;
    Ok(EventRow {
        pdu: Pdu::parse(event_id.try_into()?, RawValue::from_string(json)?)?,
        room_id: room_id.try_into()?,
        status: EventStatus::from_i64(status),
        redacted: redacted != 0,
        state_before,
        state_after,
    })
}

impl Events {
    pub fn new(pool: AnyPool) -> Self {
        Self { pool, recent: Arc::default() }
    }

    /// Keeps a row this instance has just committed.
    pub fn remember(&self, row: EventRow) {
        if row.status == EventStatus::Outlier {
            return;
        }
        let mut recent = self.recent.lock().expect("cache lock");
        if recent.len() >= CACHE_SIZE {
            recent.clear();
        }
        recent.insert(row.pdu.owned_id(), row);
    }

    /// Stores an event, or places an outlier seen before; false when it was
    /// already stored (a redelivery).
    pub async fn insert(&self, tx: &mut AnyConnection, event: NewEvent<'_>) -> anyhow::Result<bool> {
        let result = sqlx::query(
            "INSERT INTO roomserver_events (event_id, room_id, event_type, state_key, depth, json, redacted, status,
                 state_before, state_after, stream_ordering, received_ts, origin_server_ts)
             VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8, $9, $10, $11, $12)
             ON CONFLICT (event_id) DO UPDATE SET status = excluded.status, state_before = excluded.state_before,
                 state_after = excluded.state_after, stream_ordering = excluded.stream_ordering
             WHERE roomserver_events.status = 3",
        )
        .bind(event.pdu.id().as_str())
        .bind(event.room_id)
        .bind(event.pdu.kind().to_string())
        .bind(event.pdu.key())
        .bind(event.pdu.depth().min(i64::MAX as u64) as i64)
        .bind(event.pdu.json().get())
        .bind(event.status as i64)
        .bind(event.state_before)
        .bind(event.state_after)
        .bind(event.stream_ordering)
        .bind(now_ms())
        .bind(i64::from(event.pdu.ts().get()))
        .execute(tx)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// The accepted event of `room_id` nearest `ts` (milliseconds): the first
    /// at or after it, or with `backward` the last at or before it; ties go
    /// to the room's order. Events stored before timestamps were kept are
    /// not found.
    pub async fn nearest_in_time(
        &self,
        room_id: &str,
        ts: i64,
        backward: bool,
    ) -> anyhow::Result<Option<(String, i64)>> {
        let sql = if backward {
            "SELECT event_id, origin_server_ts FROM roomserver_events
             WHERE room_id = $1 AND status = 0 AND origin_server_ts <= $2
             ORDER BY origin_server_ts DESC, stream_ordering DESC LIMIT 1"
        } else {
            "SELECT event_id, origin_server_ts FROM roomserver_events
             WHERE room_id = $1 AND status = 0 AND origin_server_ts >= $2
             ORDER BY origin_server_ts ASC, stream_ordering ASC LIMIT 1"
        };
        Ok(sqlx::query_as(sql).bind(room_id).bind(ts).fetch_optional(&self.pool).await?)
    }

    /// Replaces an event's JSON with its pruned form.
    pub async fn mark_redacted(&self, tx: &mut AnyConnection, event_id: &EventId, pruned: &str) -> anyhow::Result<()> {
        self.recent.lock().expect("cache lock").remove(event_id);
        sqlx::query("UPDATE roomserver_events SET json = $1, redacted = 1 WHERE event_id = $2")
            .bind(pruned)
            .bind(event_id.as_str())
            .execute(tx)
            .await?;
        Ok(())
    }

    /// For input processing: see [`Events::recent`].
    pub async fn get(&self, event_id: &EventId) -> anyhow::Result<Option<EventRow>> {
        Ok(self.get_many(&[event_id.to_owned()]).await?.remove(event_id))
    }

    /// For input processing, from memory where it can: see [`Events::recent`].
    pub async fn get_many(&self, event_ids: &[OwnedEventId]) -> anyhow::Result<HashMap<OwnedEventId, EventRow>> {
        let mut found = HashMap::with_capacity(event_ids.len());
        let mut missing = Vec::new();
        {
            let recent = self.recent.lock().expect("cache lock");
            for id in event_ids {
                match recent.get(id) {
                    Some(row) => {
                        found.insert(id.clone(), row.clone());
                    }
                    None => missing.push(id.clone()),
                }
            }
        }
        if !missing.is_empty() {
            let loaded = self.load_many(&missing).await?;
            for row in loaded.values() {
                self.remember(row.clone());
            }
            found.extend(loaded);
        }
        Ok(found)
    }

    pub async fn load(&self, event_id: &EventId) -> anyhow::Result<Option<EventRow>> {
        Ok(self.load_many(&[event_id.to_owned()]).await?.remove(event_id))
    }

    /// The stored events among `event_ids`, as the database has them now.
    pub async fn load_many(&self, event_ids: &[OwnedEventId]) -> anyhow::Result<HashMap<OwnedEventId, EventRow>> {
        let mut found = HashMap::with_capacity(event_ids.len());
        // Bounded batches keep under every database's parameter limit.
        for chunk in event_ids.chunks(500) {
            let sql =
                format!("SELECT {COLUMNS} FROM roomserver_events WHERE event_id IN ({})", placeholders(1, chunk.len()));
            let mut query = sqlx::query_as::<_, Row>(AssertSqlSafe(sql));
            for id in chunk {
                query = query.bind(id.as_str());
            }
            for row in query.fetch_all(&self.pool).await? {
                let row = decode(row)?;
                found.insert(row.pdu.owned_id(), row);
            }
        }
        Ok(found)
    }
}
