//! Unread notification counts per user and room, from userapi.

use std::collections::HashMap;

use sqlx::AnyConnection;

use super::Store;

#[derive(Clone, Debug, Default)]
pub struct Counts {
    pub notification_count: i64,
    pub highlight_count: i64,
    /// JSON object: thread root id → counts.
    pub threads: String,
}

impl Store {
    /// Keeps the latest counts (by userapi's position); false when `source_pos` is not newer.
    #[allow(clippy::too_many_arguments)]
    pub async fn set_notification_counts(
        &self,
        tx: &mut AnyConnection,
        pos: i64,
        user_id: &str,
        room_id: &str,
        counts: &Counts,
        source_pos: i64,
    ) -> anyhow::Result<bool> {
        let result = sqlx::query(
            "INSERT INTO syncapi_notification_counts
                 (user_id, room_id, notification_count, highlight_count, threads, source_pos, pos)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (user_id, room_id) DO UPDATE SET notification_count = $3, highlight_count = $4,
                 threads = $5, source_pos = $6, pos = $7
             WHERE syncapi_notification_counts.source_pos < $6",
        )
        .bind(user_id)
        .bind(room_id)
        .bind(counts.notification_count)
        .bind(counts.highlight_count)
        .bind(&counts.threads)
        .bind(source_pos)
        .bind(pos)
        .execute(tx)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// The user's rooms whose counts changed in (from, to].
    pub async fn notification_count_changes(&self, user_id: &str, from: i64, to: i64) -> anyhow::Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT room_id FROM syncapi_notification_counts WHERE user_id = $1 AND pos > $2 AND pos <= $3",
        )
        .bind(user_id)
        .bind(from)
        .bind(to)
        .fetch_all(self.pool())
        .await?)
    }

    /// The user's current counts in some rooms (rooms without any are left out).
    pub async fn notification_counts(&self, user_id: &str) -> anyhow::Result<HashMap<String, Counts>> {
        let rows: Vec<(String, i64, i64, String)> = sqlx::query_as(
            "SELECT room_id, notification_count, highlight_count, threads FROM syncapi_notification_counts
             WHERE user_id = $1",
        )
        .bind(user_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(room, notification_count, highlight_count, threads)| {
                (room, Counts { notification_count, highlight_count, threads })
            })
            .collect())
    }
}
