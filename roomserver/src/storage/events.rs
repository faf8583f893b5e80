//! `roomserver_events`: every event the roomserver has accepted, by id.

use common::{
    api::roomserver::StoredEvent,
    storage::{Db, now_ms},
};
use sqlx::AnyConnection;

#[derive(Clone)]
pub struct Events {
    db: Db,
}

impl Events {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Stores an event; false when it was already stored (a redelivery).
    pub async fn insert(&self, tx: &mut AnyConnection, event_id: &str, room_id: &str, json: &str) -> anyhow::Result<bool> {
        let result = sqlx::query(
            "INSERT INTO roomserver_events (event_id, room_id, json, received_ts) VALUES ($1, $2, $3, $4)
             ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(event_id)
        .bind(room_id)
        .bind(json)
        .bind(now_ms())
        .execute(tx)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    pub async fn get(&self, event_id: &str) -> anyhow::Result<Option<StoredEvent>> {
        let row: Option<(String, String, String)> =
            sqlx::query_as("SELECT event_id, room_id, json FROM roomserver_events WHERE event_id = $1")
                .bind(event_id)
                .fetch_optional(self.db.pool())
                .await?;
        row.map(|(event_id, room_id, json)| {
            Ok(StoredEvent {
                event_id: event_id.try_into()?,
                room_id: room_id.try_into()?,
                event: serde_json::value::RawValue::from_string(json)?,
            })
        })
        .transpose()
    }
}
