//! To-device messages, kept until the device has come back with a token past them.

use sqlx::AnyConnection;

use super::Store;

#[derive(Clone, Debug)]
pub struct ToDevice {
    pub pos: i64,
    pub sender: String,
    pub event_type: String,
    pub content: String,
}

impl Store {
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_to_device(
        &self,
        tx: &mut AnyConnection,
        pos: i64,
        user_id: &str,
        device_id: &str,
        sender: &str,
        event_type: &str,
        content: &str,
        message_id: &str,
    ) -> anyhow::Result<bool> {
        let result = sqlx::query(
            "INSERT INTO syncapi_send_to_device (pos, user_id, device_id, sender, event_type, content, message_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (user_id, device_id, message_id) DO NOTHING",
        )
        .bind(pos)
        .bind(user_id)
        .bind(device_id)
        .bind(sender)
        .bind(event_type)
        .bind(content)
        .bind(message_id)
        .execute(tx)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Deletes what the device acknowledged (positions up to `acked`) and
    /// returns the next messages after it, at most `limit`, up to `to`.
    pub async fn to_device(
        &self,
        user_id: &str,
        device_id: &str,
        acked: i64,
        to: i64,
        limit: i64,
    ) -> anyhow::Result<Vec<ToDevice>> {
        if acked > 0 {
            sqlx::query("DELETE FROM syncapi_send_to_device WHERE user_id = $1 AND device_id = $2 AND pos <= $3")
                .bind(user_id)
                .bind(device_id)
                .bind(acked)
                .execute(self.pool())
                .await?;
        }
        let rows: Vec<(i64, String, String, String)> = sqlx::query_as(
            "SELECT pos, sender, event_type, content FROM syncapi_send_to_device
             WHERE user_id = $1 AND device_id = $2 AND pos > $3 AND pos <= $4 ORDER BY pos LIMIT $5",
        )
        .bind(user_id)
        .bind(device_id)
        .bind(acked)
        .bind(to)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(pos, sender, event_type, content)| ToDevice { pos, sender, event_type, content })
            .collect())
    }
}
