//! Room events, current state and membership changes.

use std::collections::{HashMap, HashSet};

use ruma::{OwnedEventId, RoomId, UserId};
use sqlx::{AnyConnection, AssertSqlSafe};

use super::{PER_QUERY, Store, placeholders, value_rows};

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

/// A room and a range of its positions, (after, upto]: what a sync reads of it.
#[derive(Clone, Copy, Debug)]
pub struct Span<'a> {
    pub room_id: &'a str,
    pub after: i64,
    pub upto: i64,
}

/// What an event did to its room's current state: the state event ids it
/// added and removed.
#[derive(Clone, Debug)]
pub struct StateChange {
    pub pos: i64,
    pub adds: Vec<String>,
    pub removes: Vec<String>,
}

/// A room's joined and invited members: how many, and the first few of each
/// in the order their member events arrived.
#[derive(Clone, Debug, Default)]
pub struct MemberSummary {
    pub joined: i64,
    pub invited: i64,
    pub first_joined: Vec<String>,
    pub first_invited: Vec<String>,
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

    /// Whether the event is stored, as the writer's transaction sees it.
    pub async fn event_known(&self, tx: &mut AnyConnection, event_id: &str) -> anyhow::Result<bool> {
        Ok(sqlx::query_scalar::<_, i64>("SELECT 1 FROM syncapi_room_events WHERE event_id = $1")
            .bind(event_id)
            .fetch_optional(tx)
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
        for chunk in ids.chunks(PER_QUERY) {
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

    /// The current value of one state key, as JSON, read from the pool or
    /// inside a writer's transaction.
    pub async fn current_state_json<'e>(
        &self,
        db: impl sqlx::Executor<'e, Database = sqlx::Any>,
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
        .fetch_optional(db)
        .await?)
    }

    /// The users joined to any of `rooms`, each once.
    pub async fn joined_to_any(&self, rooms: &[String]) -> anyhow::Result<Vec<String>> {
        let mut users = Vec::new();
        for chunk in rooms.chunks(PER_QUERY) {
            let sql = format!(
                "SELECT DISTINCT state_key FROM syncapi_current_state WHERE event_type = 'm.room.member'
                 AND membership = 'join' AND room_id IN ({})",
                placeholders(1, chunk.len())
            );
            let mut query = sqlx::query_scalar::<_, String>(AssertSqlSafe(sql));
            for room_id in chunk {
                query = query.bind(room_id.as_str());
            }
            users.extend(query.fetch_all(self.pool()).await?);
        }
        Ok(users)
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

    /// The user's current membership of every room they have one in: (room, membership).
    pub async fn memberships(&self, user_id: &UserId) -> anyhow::Result<Vec<(String, String)>> {
        Ok(sqlx::query_as(
            "SELECT room_id, membership FROM syncapi_current_state WHERE event_type = 'm.room.member'
             AND state_key = $1 AND membership IS NOT NULL",
        )
        .bind(user_id.as_str())
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

/// What a sync reads of many rooms at once: each question one query whatever
/// the number of rooms (chunked by [`PER_QUERY`]), answered per room. The
/// rooms of one call are distinct.
impl Store {
    /// The user's membership changes in each of `rooms`, oldest first.
    pub async fn membership_histories(
        &self,
        user_id: &UserId,
        rooms: &[&str],
    ) -> anyhow::Result<HashMap<String, Vec<MembershipChange>>> {
        let mut found: HashMap<String, Vec<MembershipChange>> = HashMap::new();
        for chunk in rooms.chunks(PER_QUERY) {
            let sql = format!(
                "SELECT pos, room_id, membership, event_id FROM syncapi_membership_changes
                 WHERE user_id = $1 AND room_id IN ({}) ORDER BY pos",
                placeholders(2, chunk.len())
            );
            let mut query =
                sqlx::query_as::<_, (i64, String, String, String)>(AssertSqlSafe(sql)).bind(user_id.as_str());
            for room in chunk {
                query = query.bind(*room);
            }
            for (pos, room_id, membership, event_id) in query.fetch_all(self.pool()).await? {
                found.entry(room_id.clone()).or_default().push(MembershipChange { pos, room_id, membership, event_id });
            }
        }
        Ok(found)
    }

    /// Sync-visible events of each span, the newest `limit` of each, oldest first.
    /// The cut is found along the room's index, so a long span costs `limit` rows.
    pub async fn timelines(&self, spans: &[Span<'_>], limit: i64) -> anyhow::Result<HashMap<String, Vec<RoomEvent>>> {
        let mut found: HashMap<String, Vec<RoomEvent>> = HashMap::new();
        for chunk in spans.chunks(PER_QUERY) {
            // `cut`: the position below the newest `limit` events of the span.
            let sql = format!(
                "WITH w (room_id, lo, hi) AS (VALUES {}),
                 c AS (SELECT w.room_id, w.hi, COALESCE((SELECT x.pos FROM syncapi_room_events x
                          WHERE x.room_id = w.room_id AND x.pos > w.lo AND x.pos <= w.hi AND x.historical = 0
                          ORDER BY x.pos DESC LIMIT 1 OFFSET $1), w.lo) AS cut
                       FROM w)
                 SELECT {} FROM c JOIN syncapi_room_events e ON e.room_id = c.room_id
                 WHERE e.pos > c.cut AND e.pos <= c.hi AND e.historical = 0 ORDER BY e.pos",
                value_rows(2, chunk.len(), 3),
                prefixed_columns("e"),
            );
            let mut query = sqlx::query_as::<_, EventRow>(AssertSqlSafe(sql)).bind(limit);
            for span in chunk {
                query = query.bind(span.room_id).bind(span.after).bind(span.upto);
            }
            for row in query.fetch_all(self.pool()).await? {
                let event = decode(row)?;
                found.entry(event.room_id.clone()).or_default().push(event);
            }
        }
        Ok(found)
    }

    /// Records state that changed just before the event at the next position
    /// (see the migration of `syncapi_prior_state_changes`).
    pub async fn insert_prior_state_change(
        &self,
        tx: &mut AnyConnection,
        pos: i64,
        room_id: &str,
        adds: &[&OwnedEventId],
        removes: &[&OwnedEventId],
    ) -> anyhow::Result<()> {
        sqlx::query("INSERT INTO syncapi_prior_state_changes (pos, room_id, adds, removes) VALUES ($1, $2, $3, $4)")
            .bind(pos)
            .bind(room_id)
            .bind(serde_json::to_string(adds)?)
            .bind(serde_json::to_string(removes)?)
            .execute(tx)
            .await?;
        Ok(())
    }

    /// The changes of each span to its room's state, by events or just
    /// before them, oldest first.
    pub async fn state_changes(&self, spans: &[Span<'_>]) -> anyhow::Result<HashMap<String, Vec<StateChange>>> {
        let mut found: HashMap<String, Vec<StateChange>> = HashMap::new();
        for chunk in spans.chunks(PER_QUERY) {
            let sql = format!(
                "WITH w (room_id, lo, hi) AS (VALUES {})
                 SELECT e.room_id, e.pos, e.adds, e.removes FROM w JOIN syncapi_room_events e ON e.room_id = w.room_id
                 WHERE e.pos > w.lo AND e.pos <= w.hi AND (e.adds <> '[]' OR e.removes <> '[]')
                 UNION ALL
                 SELECT p.room_id, p.pos, p.adds, p.removes FROM w JOIN syncapi_prior_state_changes p
                 ON p.room_id = w.room_id WHERE p.pos > w.lo AND p.pos <= w.hi
                 ORDER BY 2",
                value_rows(1, chunk.len(), 3),
            );
            let mut query = sqlx::query_as::<_, (String, i64, String, String)>(AssertSqlSafe(sql));
            for span in chunk {
                query = query.bind(span.room_id).bind(span.after).bind(span.upto);
            }
            for (room_id, pos, adds, removes) in query.fetch_all(self.pool()).await? {
                let change =
                    StateChange { pos, adds: serde_json::from_str(&adds)?, removes: serde_json::from_str(&removes)? };
                found.entry(room_id).or_default().push(change);
            }
        }
        Ok(found)
    }

    /// The whole current state of each room: (type, state_key) → event id.
    pub async fn current_states(
        &self,
        rooms: &[&str],
    ) -> anyhow::Result<HashMap<String, HashMap<(String, String), String>>> {
        let mut found: HashMap<String, HashMap<(String, String), String>> = HashMap::new();
        for chunk in rooms.chunks(PER_QUERY) {
            let sql = format!(
                "SELECT room_id, event_type, state_key, event_id FROM syncapi_current_state WHERE room_id IN ({})",
                placeholders(1, chunk.len())
            );
            let mut query = sqlx::query_as::<_, (String, String, String, String)>(AssertSqlSafe(sql));
            for room in chunk {
                query = query.bind(*room);
            }
            for (room_id, event_type, state_key, event_id) in query.fetch_all(self.pool()).await? {
                found.entry(room_id).or_default().insert((event_type, state_key), event_id);
            }
        }
        Ok(found)
    }

    /// The current event ids of some (room, type, state_key) keys; keys
    /// without a current value are left out.
    pub async fn current_state_keys(
        &self,
        keys: &[(&str, &str, &str)],
    ) -> anyhow::Result<HashMap<String, HashMap<(String, String), String>>> {
        let mut found: HashMap<String, HashMap<(String, String), String>> = HashMap::new();
        for chunk in keys.chunks(PER_QUERY) {
            let sql = format!(
                "WITH k (room_id, event_type, state_key) AS (VALUES {})
                 SELECT c.room_id, c.event_type, c.state_key, c.event_id FROM k JOIN syncapi_current_state c
                 ON c.room_id = k.room_id AND c.event_type = k.event_type AND c.state_key = k.state_key",
                value_rows(1, chunk.len(), 3),
            );
            let mut query = sqlx::query_as::<_, (String, String, String, String)>(AssertSqlSafe(sql));
            for (room_id, event_type, state_key) in chunk {
                query = query.bind(*room_id).bind(*event_type).bind(*state_key);
            }
            for (room_id, event_type, state_key, event_id) in query.fetch_all(self.pool()).await? {
                found.entry(room_id).or_default().insert((event_type, state_key), event_id);
            }
        }
        Ok(found)
    }

    /// Member counts of each room, with the first `first` joined and invited
    /// members (rooms without any are left out).
    pub async fn member_summaries(&self, rooms: &[&str], first: i64) -> anyhow::Result<HashMap<String, MemberSummary>> {
        let mut found: HashMap<String, MemberSummary> = HashMap::new();
        for chunk in rooms.chunks(PER_QUERY) {
            let sql = format!(
                "SELECT room_id, membership, state_key, n FROM (
                     SELECT room_id, membership, state_key, pos,
                         ROW_NUMBER() OVER (PARTITION BY room_id, membership ORDER BY pos) AS rn,
                         COUNT(*) OVER (PARTITION BY room_id, membership) AS n
                     FROM syncapi_current_state
                     WHERE room_id IN ({}) AND event_type = 'm.room.member' AND membership IN ('join', 'invite')
                 ) AS m WHERE rn <= $1 ORDER BY pos",
                placeholders(2, chunk.len())
            );
            let mut query = sqlx::query_as::<_, (String, String, String, i64)>(AssertSqlSafe(sql)).bind(first);
            for room in chunk {
                query = query.bind(*room);
            }
            for (room_id, membership, user, count) in query.fetch_all(self.pool()).await? {
                let summary = found.entry(room_id).or_default();
                if membership == "join" {
                    summary.joined = count;
                    summary.first_joined.push(user);
                } else {
                    summary.invited = count;
                    summary.first_invited.push(user);
                }
            }
        }
        Ok(found)
    }
}

pub(super) fn prefixed_columns(table: &str) -> String {
    EVENT_COLUMNS.split(',').map(|c| format!("{table}.{}", c.trim())).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh SQLite projection in a directory of its own, removed when dropped.
    struct Scratch(std::path::PathBuf);

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    async fn store() -> (Store, Scratch) {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let dir = std::env::temp_dir().join(format!("syncapi-test-{}-{nanos}", std::process::id()));
        let db = common::storage::Db::connect(&format!("sqlite://{}", dir.join("sync.db").display())).await.unwrap();
        db.migrate("syncapi", super::super::MIGRATIONS).await.unwrap();
        (Store::new(db), Scratch(dir))
    }

    async fn add_event(store: &Store, pos: i64, room: &str, historical: bool) {
        let event_id = format!("$e{pos}");
        let event = NewRoomEvent {
            pos,
            room_id: room,
            event_id: &event_id,
            event_type: "m.room.message",
            state_key: None,
            sender: "@a:x",
            json: "{}",
            historical,
            visibility: "shared",
            txn: None,
            adds: &[],
            removes: &[],
            origin_server_ts: pos,
        };
        let mut tx = store.db.begin_write().await.unwrap();
        store.insert_room_event(&mut tx, event).await.unwrap();
        tx.commit().await.unwrap();
    }

    #[tokio::test]
    async fn timelines_take_the_newest_of_each_span_across_chunks() {
        let (store, _scratch) = store().await;
        // More rooms than one query names, three events each, the last historical.
        let rooms: Vec<String> = (0..PER_QUERY + 5).map(|i| format!("!r{i}:x")).collect();
        let mut pos = 0;
        for round in 0..3 {
            for room in &rooms {
                pos += 1;
                add_event(&store, pos, room, round == 2).await;
            }
        }
        let spans: Vec<Span> = rooms.iter().map(|room| Span { room_id: room, after: 0, upto: pos }).collect();
        let found = store.timelines(&spans, 1).await.unwrap();
        assert_eq!(found.len(), rooms.len());
        let n = rooms.len() as i64;
        for (i, room) in rooms.iter().enumerate() {
            // The newest event that is not historical: the second round's.
            let positions: Vec<i64> = found[room].iter().map(|e| e.pos).collect();
            assert_eq!(positions, vec![n + i as i64 + 1], "{room}");
        }
        // A span ending before the second round, and one that is empty.
        let spans =
            [Span { room_id: &rooms[0], after: 0, upto: n }, Span { room_id: &rooms[1], after: 2 * n, upto: pos }];
        let found = store.timelines(&spans, 10).await.unwrap();
        assert_eq!(found[&rooms[0]].iter().map(|e| e.pos).collect::<Vec<_>>(), vec![1]);
        assert!(!found.contains_key(&rooms[1]));
    }
}
