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
    pub async fn insert(
        &self,
        tx: &mut AnyConnection,
        event_id: &str,
        room_id: &str,
        json: &str,
    ) -> anyhow::Result<bool> {
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

    /// The stored events among `event_ids`, in one query.
    pub async fn get_many(&self, event_ids: &[&str]) -> anyhow::Result<Vec<StoredEvent>> {
        if event_ids.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (1..=event_ids.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT event_id, room_id, json FROM roomserver_events WHERE event_id IN ({})",
            placeholders.join(", ")
        );
        let mut query = sqlx::query_as::<_, (String, String, String)>(sqlx::AssertSqlSafe(sql));
        for event_id in event_ids {
            query = query.bind(*event_id);
        }
        query
            .fetch_all(self.db.pool())
            .await?
            .into_iter()
            .map(|(event_id, room_id, json)| {
                Ok(StoredEvent {
                    event_id: event_id.try_into()?,
                    room_id: room_id.try_into()?,
                    event: serde_json::value::RawValue::from_string(json)?,
                })
            })
            .collect()
    }
}
