//! Room events, current state and membership changes.

use std::collections::{HashMap, HashSet};

use ruma::{OwnedEventId, RoomId, UserId};
use sqlx::{AnyConnection, AssertSqlSafe};

use super::{Store, placeholders};

/// A room event as syncapi keeps it.
#[derive(Clone, Debug)]
pub struct RoomEvent {
    pub pos: i64,
    pub room_id: String,
    pub event_id: String,
    pub event_type: String,
    pub state_key: Option<String>,
    pub sender: String,
    pub json: String,
    pub redacted_because: Option<String>,
    pub visibility: String,
    pub txn_device: Option<String>,
    pub txn_id: Option<String>,
    pub adds: Vec<String>,
    pub removes: Vec<String>,
}

pub(super) type EventRow = (
    i64,
    String,
    String,
    String,
    Option<String>,
    String,
    String,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    String,
    String,
);

pub(super) const EVENT_COLUMNS: &str =
    "pos, room_id, event_id, event_type, state_key, sender, json, redacted_because, visibility,
     txn_device, txn_id, adds, removes";

pub(super) fn decode(row: EventRow) -> anyhow::Result<RoomEvent> {
    let (
        pos,
        room_id,
        event_id,
        event_type,
        state_key,
        sender,
        json,
        redacted_because,
        visibility,
        txn_device,
        txn_id,
        adds,
        removes,
    ) = row;
    Ok(RoomEvent {
        pos,
        room_id,
        event_id,
        event_type,
        state_key,
        sender,
        json,
        redacted_because,
        visibility,
        txn_device,
        txn_id,
        adds: serde_json::from_str(&adds)?,
        removes: serde_json::from_str(&removes)?,
    })
}

/// A change of one user's membership of one room.
#[derive(Clone, Debug)]
pub struct MembershipChange {
    pub pos: i64,
    pub room_id: String,
    pub membership: String,
    pub event_id: String,
}

pub struct NewRoomEvent<'a> {
    pub pos: i64,
    pub room_id: &'a str,
    pub event_id: &'a str,
    pub event_type: &'a str,
    pub state_key: Option<&'a str>,
    pub sender: &'a str,
    pub json: &'a str,
    pub historical: bool,
    pub visibility: &'a str,
    pub txn: Option<(&'a str, &'a str)>,
    pub adds: &'a [OwnedEventId],
    pub removes: &'a [OwnedEventId],
    pub origin_server_ts: i64,
}

impl Store {
    /// Stores a room event; false when it was stored before (a redelivery).
    pub async fn insert_room_event(&self, tx: &mut AnyConnection, e: NewRoomEvent<'_>) -> anyhow::Result<bool> {
        let result = sqlx::query(
            "INSERT INTO syncapi_room_events (pos, room_id, event_id, event_type, state_key, sender, json,
                 redacted_because, historical, visibility, txn_device, txn_id, adds, removes, origin_server_ts)
             VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, $8, $9, $10, $11, $12, $13, $14)
             ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(e.pos)
        .bind(e.room_id)
        .bind(e.event_id)
        .bind(e.event_type)
        .bind(e.state_key)
        .bind(e.sender)
        .bind(e.json)
        .bind(e.historical as i64)
        .bind(e.visibility)
        .bind(e.txn.map(|t| t.0))
        .bind(e.txn.map(|t| t.1))
        .bind(serde_json::to_string(e.adds)?)
        .bind(serde_json::to_string(e.removes)?)
        .bind(e.origin_server_ts)
        .execute(tx)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Rooms with new events, receipts or typing between two sets of
    /// positions: what an incremental sync has to look at, found by position
    /// ranges so the cost follows the delta, not the number of rooms.
    pub async fn active_rooms(
        &self,
        since: &super::Positions,
        to: &super::Positions,
    ) -> anyhow::Result<HashSet<String>> {
        let mut rooms = HashSet::new();
        for (sql, from, until) in [
            ("SELECT DISTINCT room_id FROM syncapi_room_events WHERE pos > $1 AND pos <= $2", since.events, to.events),
            ("SELECT DISTINCT room_id FROM syncapi_receipts WHERE pos > $1 AND pos <= $2", since.receipts, to.receipts),
            ("SELECT DISTINCT room_id FROM syncapi_typing WHERE pos > $1 AND pos <= $2", since.typing, to.typing),
        ] {
            if from < until {
                let found: Vec<String> = sqlx::query_scalar(sql).bind(from).bind(until).fetch_all(self.pool()).await?;
                rooms.extend(found);
            }
        }
        Ok(rooms)
    }

    pub async fn event_known(&self, event_id: &str) -> anyhow::Result<bool> {
        Ok(sqlx::query_scalar::<_, i64>("SELECT 1 FROM syncapi_room_events WHERE event_id = $1")
            .bind(event_id)
            .fetch_optional(self.pool())
            .await?
            .is_some())
    }

    pub async fn insert_state_event(
        &self,
        tx: &mut AnyConnection,
        event_id: &str,
        room_id: &str,
        event_type: &str,
        state_key: &str,
        json: &str,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO syncapi_state_events (event_id, room_id, event_type, state_key, json) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(event_id)
        .bind(room_id)
        .bind(event_type)
        .bind(state_key)
        .bind(json)
        .execute(tx)
        .await?;
        Ok(())
    }

    /// Keys ((type, state_key)) and JSON of state events, by id.
    pub async fn state_events(&self, ids: &[String]) -> anyhow::Result<HashMap<String, ((String, String), String)>> {
        let mut found = HashMap::new();
        for chunk in ids.chunks(500) {
            let sql = format!(
                "SELECT event_id, event_type, state_key, json FROM syncapi_state_events WHERE event_id IN ({})",
                placeholders(1, chunk.len())
            );
            let mut query = sqlx::query_as::<_, (String, String, String, String)>(AssertSqlSafe(sql));
            for id in chunk {
                query = query.bind(id.as_str());
            }
            for (id, event_type, state_key, json) in query.fetch_all(self.pool()).await? {
                found.insert(id, ((event_type, state_key), json));
            }
        }
        Ok(found)
    }

    pub async fn set_current_state(
        &self,
        tx: &mut AnyConnection,
        room_id: &str,
        (event_type, state_key): (&str, &str),
        event_id: &str,
        membership: Option<&str>,
        pos: i64,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO syncapi_current_state (room_id, event_type, state_key, event_id, membership, pos)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (room_id, event_type, state_key) DO UPDATE SET event_id = $4, membership = $5, pos = $6",
        )
        .bind(room_id)
        .bind(event_type)
        .bind(state_key)
        .bind(event_id)
        .bind(membership)
        .bind(pos)
        .execute(tx)
        .await?;
        Ok(())
    }

    pub async fn remove_current_state(
        &self,
        tx: &mut AnyConnection,
        room_id: &str,
        (event_type, state_key): (&str, &str),
        event_id: &str,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "DELETE FROM syncapi_current_state WHERE room_id = $1 AND event_type = $2 AND state_key = $3 AND event_id = $4",
        )
        .bind(room_id)
        .bind(event_type)
        .bind(state_key)
        .bind(event_id)
        .execute(tx)
        .await?;
        Ok(())
    }

    /// The room's current state: (type, state_key) → event id.
    pub async fn current_state(&self, room_id: &str) -> anyhow::Result<HashMap<(String, String), String>> {
        let rows: Vec<(String, String, String)> =
            sqlx::query_as("SELECT event_type, state_key, event_id FROM syncapi_current_state WHERE room_id = $1")
                .bind(room_id)
                .fetch_all(self.pool())
                .await?;
        Ok(rows.into_iter().map(|(t, k, id)| ((t, k), id)).collect())
    }

    /// The current event ids of some keys of the room's state.
    pub async fn current_state_of(
        &self,
        room_id: &str,
        keys: &[(String, String)],
    ) -> anyhow::Result<HashMap<(String, String), String>> {
        let mut types: Vec<&str> = keys.iter().map(|(t, _)| t.as_str()).collect();
        types.sort();
        types.dedup();
        if types.is_empty() {
            return Ok(HashMap::new());
        }
        let sql = format!(
            "SELECT event_type, state_key, event_id FROM syncapi_current_state WHERE room_id = $1 AND event_type IN ({})",
            placeholders(2, types.len())
        );
        let mut query = sqlx::query_as::<_, (String, String, String)>(AssertSqlSafe(sql)).bind(room_id);
        for t in &types {
            query = query.bind(*t);
        }
        Ok(query
            .fetch_all(self.pool())
            .await?
            .into_iter()
            .map(|(t, k, id)| ((t, k), id))
            .filter(|(key, _)| keys.contains(key))
            .collect())
    }

    /// The current value of one state key, as JSON.
    pub async fn current_state_json(
        &self,
        room_id: &str,
        event_type: &str,
        state_key: &str,
    ) -> anyhow::Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT s.json FROM syncapi_current_state c JOIN syncapi_state_events s ON s.event_id = c.event_id
             WHERE c.room_id = $1 AND c.event_type = $2 AND c.state_key = $3",
        )
        .bind(room_id)
        .bind(event_type)
        .bind(state_key)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Users of the room by current membership, in the order their member events arrived.
    pub async fn members(&self, room_id: &str, membership: &str) -> anyhow::Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT state_key FROM syncapi_current_state WHERE room_id = $1 AND event_type = 'm.room.member'
             AND membership = $2 ORDER BY pos",
        )
        .bind(room_id)
        .bind(membership)
        .fetch_all(self.pool())
        .await?)
    }

    /// The users joined to a room the user is joined to (the user included), in one query.
    pub async fn room_mates(&self, user_id: &UserId) -> anyhow::Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT theirs.state_key FROM syncapi_current_state mine
             JOIN syncapi_current_state theirs ON theirs.room_id = mine.room_id
             WHERE mine.event_type = 'm.room.member' AND mine.state_key = $1 AND mine.membership = 'join'
               AND theirs.event_type = 'm.room.member' AND theirs.membership = 'join'",
        )
        .bind(user_id.as_str())
        .fetch_all(self.pool())
        .await?)
    }

    /// The rooms where the user's current membership is `membership`.
    pub async fn rooms_with_membership(&self, user_id: &UserId, membership: &str) -> anyhow::Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT room_id FROM syncapi_current_state WHERE event_type = 'm.room.member' AND state_key = $1
             AND membership = $2",
        )
        .bind(user_id.as_str())
        .bind(membership)
        .fetch_all(self.pool())
        .await?)
    }

    pub async fn record_membership(
        &self,
        tx: &mut AnyConnection,
        pos: i64,
        room_id: &str,
        user_id: &str,
        membership: &str,
        event_id: &str,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO syncapi_membership_changes (pos, room_id, user_id, membership, event_id) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (pos, user_id) DO NOTHING",
        )
        .bind(pos)
        .bind(room_id)
        .bind(user_id)
        .bind(membership)
        .bind(event_id)
        .execute(tx)
        .await?;
        Ok(())
    }

    /// The user's membership changes in (from, to], oldest first.
    pub async fn membership_changes(
        &self,
        user_id: &UserId,
        from: i64,
        to: i64,
    ) -> anyhow::Result<Vec<MembershipChange>> {
        let rows: Vec<(i64, String, String, String)> = sqlx::query_as(
            "SELECT pos, room_id, membership, event_id FROM syncapi_membership_changes
             WHERE user_id = $1 AND pos > $2 AND pos <= $3 ORDER BY pos",
        )
        .bind(user_id.as_str())
        .bind(from)
        .bind(to)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(pos, room_id, membership, event_id)| MembershipChange { pos, room_id, membership, event_id })
            .collect())
    }

    /// The user's membership of the room at position `at` (the last change at or before it).
    pub async fn membership_at(
        &self,
        room_id: &str,
        user_id: &str,
        at: i64,
    ) -> anyhow::Result<Option<MembershipChange>> {
        let row: Option<(i64, String, String)> = sqlx::query_as(
            "SELECT pos, membership, event_id FROM syncapi_membership_changes
             WHERE room_id = $1 AND user_id = $2 AND pos <= $3 ORDER BY pos DESC LIMIT 1",
        )
        .bind(room_id)
        .bind(user_id)
        .bind(at)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|(pos, membership, event_id)| MembershipChange {
            pos,
            room_id: room_id.to_owned(),
            membership,
            event_id,
        }))
    }

    /// The user's membership changes of one room, oldest first, up to `to`.
    pub async fn room_membership_history(
        &self,
        room_id: &str,
        user_id: &str,
        to: i64,
    ) -> anyhow::Result<Vec<MembershipChange>> {
        let rows: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT pos, membership, event_id FROM syncapi_membership_changes
             WHERE room_id = $1 AND user_id = $2 AND pos <= $3 ORDER BY pos",
        )
        .bind(room_id)
        .bind(user_id)
        .bind(to)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(pos, membership, event_id)| MembershipChange {
                pos,
                room_id: room_id.to_owned(),
                membership,
                event_id,
            })
            .collect())
    }

    /// Sync-visible events of a room with positions in (from, to], the newest
    /// `limit` of them, oldest first.
    pub async fn timeline(&self, room_id: &str, from: i64, to: i64, limit: i64) -> anyhow::Result<Vec<RoomEvent>> {
        let rows: Vec<EventRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {EVENT_COLUMNS} FROM syncapi_room_events
             WHERE room_id = $1 AND pos > $2 AND pos <= $3 AND historical = 0 ORDER BY pos DESC LIMIT $4"
        )))
        .bind(room_id)
        .bind(from)
        .bind(to)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        let mut events: Vec<RoomEvent> = rows.into_iter().map(decode).collect::<anyhow::Result<_>>()?;
        events.reverse();
        Ok(events)
    }

    /// Events of a room with positions in (from, to] that changed its state, oldest first.
    pub async fn state_changes(&self, room_id: &str, from: i64, to: i64) -> anyhow::Result<Vec<RoomEvent>> {
        let rows: Vec<EventRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {EVENT_COLUMNS} FROM syncapi_room_events
             WHERE room_id = $1 AND pos > $2 AND pos <= $3 AND (adds <> '[]' OR removes <> '[]') ORDER BY pos"
        )))
        .bind(room_id)
        .bind(from)
        .bind(to)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(decode).collect()
    }

    pub async fn room_event(&self, event_id: &str) -> anyhow::Result<Option<RoomEvent>> {
        let row: Option<EventRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {EVENT_COLUMNS} FROM syncapi_room_events WHERE event_id = $1"
        )))
        .bind(event_id)
        .fetch_optional(self.pool())
        .await?;
        row.map(decode).transpose()
    }

    pub async fn redact(
        &self,
        tx: &mut AnyConnection,
        event_id: &str,
        pruned: &str,
        redacted_because: &str,
    ) -> anyhow::Result<()> {
        sqlx::query("UPDATE syncapi_room_events SET json = $1, redacted_because = $2 WHERE event_id = $3")
            .bind(pruned)
            .bind(redacted_because)
            .bind(event_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE syncapi_state_events SET json = $1 WHERE event_id = $2")
            .bind(pruned)
            .bind(event_id)
            .execute(&mut *tx)
            .await?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn insert_invite(
        &self,
        tx: &mut AnyConnection,
        pos: i64,
        room_id: &RoomId,
        user_id: &UserId,
        event_id: &str,
        json: &str,
        invite_room_state: &str,
    ) -> anyhow::Result<bool> {
        let result = sqlx::query(
            "INSERT INTO syncapi_invites (event_id, pos, room_id, user_id, json, invite_room_state, retired)
             VALUES ($1, $2, $3, $4, $5, $6, 0) ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(event_id)
        .bind(pos)
        .bind(room_id.as_str())
        .bind(user_id.as_str())
        .bind(json)
        .bind(invite_room_state)
        .execute(tx)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    pub async fn retire_invite(&self, tx: &mut AnyConnection, event_id: &str) -> anyhow::Result<()> {
        sqlx::query("UPDATE syncapi_invites SET retired = 1 WHERE event_id = $1").bind(event_id).execute(tx).await?;
        Ok(())
    }

    /// The user's standing invites: (room, position, event JSON, stripped state JSON).
    pub async fn invites(&self, user_id: &UserId) -> anyhow::Result<Vec<(String, i64, String, String)>> {
        Ok(sqlx::query_as(
            "SELECT room_id, pos, json, invite_room_state FROM syncapi_invites WHERE user_id = $1 AND retired = 0 ORDER BY pos",
        )
        .bind(user_id.as_str())
        .fetch_all(self.pool())
        .await?)
    }
}
