//! `roomserver_memberships`: every user's current membership of every room,
//! kept in step with the current state.

use ruma::{OwnedRoomId, RoomId, UserId};
use sqlx::{AnyConnection, AnyPool, AssertSqlSafe};

use super::placeholders;

#[derive(Clone)]
pub struct Memberships {
    pool: AnyPool,
}

#[derive(Clone, Debug)]
pub struct Membership {
    pub membership: String,
    pub event_id: String,
    pub forgotten: bool,
}

impl Memberships {
    pub fn new(pool: AnyPool) -> Self {
        Self { pool }
    }

    pub async fn set(
        &self,
        tx: &mut AnyConnection,
        room_id: &RoomId,
        user_id: &UserId,
        membership: &str,
        event_id: &str,
        is_local: bool,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO roomserver_memberships (room_id, user_id, membership, event_id, is_local, forgotten)
             VALUES ($1, $2, $3, $4, $5, 0)
             ON CONFLICT (room_id, user_id) DO UPDATE SET membership = $3, event_id = $4, forgotten = 0",
        )
        .bind(room_id.as_str())
        .bind(user_id.as_str())
        .bind(membership)
        .bind(event_id)
        .bind(is_local as i64)
        .execute(tx)
        .await?;
        Ok(())
    }

    pub async fn remove(&self, tx: &mut AnyConnection, room_id: &RoomId, user_id: &str) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM roomserver_memberships WHERE room_id = $1 AND user_id = $2")
            .bind(room_id.as_str())
            .bind(user_id)
            .execute(tx)
            .await?;
        Ok(())
    }

    pub async fn get(&self, room_id: &RoomId, user_id: &UserId) -> anyhow::Result<Option<Membership>> {
        let row: Option<(String, String, i64)> = sqlx::query_as(
            "SELECT membership, event_id, forgotten FROM roomserver_memberships WHERE room_id = $1 AND user_id = $2",
        )
        .bind(room_id.as_str())
        .bind(user_id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(membership, event_id, forgotten)| Membership { membership, event_id, forgotten: forgotten != 0 }))
    }

    /// Event ids of the room's current member events with one of `memberships` (all when empty).
    pub async fn member_events(
        &self,
        room_id: &RoomId,
        memberships: &[String],
        local_only: bool,
    ) -> anyhow::Result<Vec<String>> {
        let mut sql = "SELECT event_id FROM roomserver_memberships WHERE room_id = $1".to_owned();
        if local_only {
            sql.push_str(" AND is_local = 1");
        }
        if !memberships.is_empty() {
            sql.push_str(&format!(" AND membership IN ({})", placeholders(2, memberships.len())));
        }
        let mut query = sqlx::query_scalar::<_, String>(AssertSqlSafe(sql)).bind(room_id.as_str());
        for membership in memberships {
            query = query.bind(membership.as_str());
        }
        Ok(query.fetch_all(&self.pool).await?)
    }

    /// The users joined to the room now.
    pub async fn joined_users(&self, room_id: &RoomId) -> anyhow::Result<Vec<String>> {
        Ok(sqlx::query_scalar("SELECT user_id FROM roomserver_memberships WHERE room_id = $1 AND membership = 'join'")
            .bind(room_id.as_str())
            .fetch_all(&self.pool)
            .await?)
    }

    /// Rooms where the user's membership is one of `memberships`, forgotten ones left out.
    pub async fn rooms_of(&self, user_id: &UserId, memberships: &[String]) -> anyhow::Result<Vec<OwnedRoomId>> {
        if memberships.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT room_id FROM roomserver_memberships WHERE user_id = $1 AND forgotten = 0 AND membership IN ({})",
            placeholders(2, memberships.len())
        );
        let mut query = sqlx::query_scalar::<_, String>(AssertSqlSafe(sql)).bind(user_id.as_str());
        for membership in memberships {
            query = query.bind(membership.as_str());
        }
        query.fetch_all(&self.pool).await?.into_iter().map(|id| Ok(id.try_into()?)).collect()
    }

    /// Marks a room forgotten for a user who is not in it; false when they are joined or invited.
    pub async fn forget(&self, room_id: &RoomId, user_id: &UserId) -> anyhow::Result<bool> {
        let result = sqlx::query(
            "UPDATE roomserver_memberships SET forgotten = 1
             WHERE room_id = $1 AND user_id = $2 AND membership NOT IN ('join', 'invite', 'knock')",
        )
        .bind(room_id.as_str())
        .bind(user_id.as_str())
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }
}
