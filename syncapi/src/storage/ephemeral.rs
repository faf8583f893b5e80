//! Receipts and typing notifications, each with its own stream positions.

use std::collections::HashMap;

use sqlx::{AnyConnection, AssertSqlSafe};

use super::{PER_QUERY, Store, placeholders};

#[derive(Clone, Debug)]
pub struct Receipt {
    pub user_id: String,
    pub receipt_type: String,
    pub thread_id: String,
    pub event_id: String,
    pub ts: i64,
}

#[derive(Clone, Debug)]
pub struct Typing {
    pub user_id: String,
    pub expires_ts: i64,
}

/// Unthreaded receipts are stored under this thread id.
pub const MAIN_THREAD: &str = "";

impl Store {
    /// Keeps the latest receipt of each (room, user, type, thread); false
    /// when the same receipt was stored before.
    #[allow(clippy::too_many_arguments)]
    pub async fn upsert_receipt(
        &self,
        tx: &mut AnyConnection,
        pos: i64,
        room_id: &str,
        user_id: &str,
        receipt_type: &str,
        thread_id: &str,
        event_id: &str,
        ts: i64,
    ) -> anyhow::Result<bool> {
        let result = sqlx::query(
            "INSERT INTO syncapi_receipts (pos, room_id, user_id, receipt_type, thread_id, event_id, ts)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (room_id, user_id, receipt_type, thread_id) DO UPDATE SET pos = $1, event_id = $6, ts = $7
             WHERE syncapi_receipts.event_id <> $6",
        )
        .bind(pos)
        .bind(room_id)
        .bind(user_id)
        .bind(receipt_type)
        .bind(thread_id)
        .bind(event_id)
        .bind(ts)
        .execute(tx)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Receipts of each room that changed in (from, to]; all of them when
    /// `from` is 0. Rooms without any are left out.
    pub async fn receipts(&self, rooms: &[&str], from: i64, to: i64) -> anyhow::Result<HashMap<String, Vec<Receipt>>> {
        let mut found: HashMap<String, Vec<Receipt>> = HashMap::new();
        for chunk in rooms.chunks(PER_QUERY) {
            let sql = format!(
                "SELECT room_id, user_id, receipt_type, thread_id, event_id, ts FROM syncapi_receipts
                 WHERE room_id IN ({}) AND pos > $1 AND pos <= $2 ORDER BY pos",
                placeholders(3, chunk.len())
            );
            let mut query = sqlx::query_as::<_, (String, String, String, String, String, i64)>(AssertSqlSafe(sql))
                .bind(from)
                .bind(to);
            for room in chunk {
                query = query.bind(*room);
            }
            for (room_id, user_id, receipt_type, thread_id, event_id, ts) in query.fetch_all(self.pool()).await? {
                found.entry(room_id).or_default().push(Receipt { user_id, receipt_type, thread_id, event_id, ts });
            }
        }
        Ok(found)
    }

    pub async fn set_typing(
        &self,
        tx: &mut AnyConnection,
        pos: i64,
        room_id: &str,
        user_id: &str,
        expires_ts: Option<i64>,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO syncapi_typing (room_id, user_id, expires_ts, pos) VALUES ($1, $2, $3, $4)
             ON CONFLICT (room_id, user_id) DO UPDATE SET expires_ts = $3, pos = $4",
        )
        .bind(room_id)
        .bind(user_id)
        .bind(expires_ts.unwrap_or(0))
        .bind(pos)
        .execute(tx)
        .await?;
        Ok(())
    }

    /// The rooms whose typing changed in (from, to], each with who types
    /// at `now_ms` (maybe no one).
    pub async fn typing(
        &self,
        rooms: &[&str],
        from: i64,
        to: i64,
        now_ms: i64,
    ) -> anyhow::Result<HashMap<String, Vec<Typing>>> {
        let mut changed: HashMap<String, Vec<Typing>> = HashMap::new();
        let mut typing: Vec<(String, Typing)> = Vec::new();
        for chunk in rooms.chunks(PER_QUERY) {
            let sql = format!(
                "SELECT room_id, user_id, expires_ts, pos FROM syncapi_typing
                 WHERE room_id IN ({}) AND ((pos > $1 AND pos <= $2) OR expires_ts > $3) ORDER BY pos",
                placeholders(4, chunk.len())
            );
            let mut query =
                sqlx::query_as::<_, (String, String, i64, i64)>(AssertSqlSafe(sql)).bind(from).bind(to).bind(now_ms);
            for room in chunk {
                query = query.bind(*room);
            }
            for (room_id, user_id, expires_ts, pos) in query.fetch_all(self.pool()).await? {
                if pos > from && pos <= to {
                    changed.entry(room_id.clone()).or_default();
                }
                if expires_ts > now_ms {
                    typing.push((room_id, Typing { user_id, expires_ts }));
                }
            }
        }
        for (room_id, typer) in typing {
            if let Some(typers) = changed.get_mut(&room_id) {
                typers.push(typer);
            }
        }
        Ok(changed)
    }
}

impl Store {
    /// Ends typing that lapsed by `now_ms` under a new typing position;
    /// returns the rooms it changed. Instances may race: each lapsed row is
    /// ended once, by whichever transaction takes it first.
    pub async fn expire_typing(&self, now_ms: i64) -> anyhow::Result<Vec<String>> {
        let lapsed: Vec<(String, String)> =
            sqlx::query_as("SELECT room_id, user_id FROM syncapi_typing WHERE expires_ts > 0 AND expires_ts <= $1")
                .bind(now_ms)
                .fetch_all(self.pool())
                .await?;
        if lapsed.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.db.begin_write().await?;
        let pos = self.next_position(&mut tx, super::Kind::Typing).await?;
        let mut rooms = Vec::new();
        for (room_id, user_id) in lapsed {
            let ended = sqlx::query(
                "UPDATE syncapi_typing SET expires_ts = 0, pos = $1
                 WHERE room_id = $2 AND user_id = $3 AND expires_ts > 0 AND expires_ts <= $4",
            )
            .bind(pos)
            .bind(&room_id)
            .bind(&user_id)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
            if ended.rows_affected() == 1 {
                rooms.push(room_id);
            }
        }
        tx.commit().await?;
        rooms.sort();
        rooms.dedup();
        Ok(rooms)
    }
}
