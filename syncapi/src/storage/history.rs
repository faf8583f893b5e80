//! Reading a room's history page by page (always along an index, with a
//! LIMIT, so an old token costs what the page costs), relations between
//! events, and events by timestamp.

use common::pdu::Pdu;
use sqlx::{AnyConnection, AssertSqlSafe};

use super::{
    Store, placeholders,
    rooms::{EVENT_COLUMNS, EventRow, RoomEvent, decode, prefixed_columns},
};

/// A position before every event of a room, those fetched from other
/// servers (below zero) included.
pub const START: i64 = i64::MIN;

/// How deep `recurse=true` follows relations of relations.
pub const MAX_RELATION_DEPTH: u32 = 3;

/// A page's position range: events after (forward) or at and before
/// (backward) `cursor`, not beyond `bound`.
#[derive(Clone, Copy, Debug)]
pub struct Page {
    pub backward: bool,
    pub cursor: i64,
    /// Backward: events with positions above it only; forward: at or below it.
    pub bound: i64,
    pub limit: i64,
}

impl Page {
    /// The SQL condition and order for a position column.
    fn sql(&self, column: &str, cursor: usize, bound: usize) -> String {
        if self.backward {
            format!("{column} <= ${cursor} AND {column} > ${bound} ORDER BY {column} DESC")
        } else {
            format!("{column} > ${cursor} AND {column} <= ${bound} ORDER BY {column}")
        }
    }
}

/// What a relation row names: the event related to and how.
fn relation_of(pdu: &Pdu) -> Option<(String, String)> {
    let content: serde_json::Value = serde_json::from_str(pdu.content_json().get()).ok()?;
    let relates_to = content.get("m.relates_to")?;
    let rel_type = relates_to.get("rel_type")?.as_str()?;
    let event_id = relates_to.get("event_id")?.as_str()?;
    Some((rel_type.to_owned(), event_id.to_owned()))
}

impl Store {
    /// One page of a room's events, historical ones included, in page order.
    pub async fn room_events_page(&self, room_id: &str, page: Page) -> anyhow::Result<Vec<RoomEvent>> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM syncapi_room_events WHERE room_id = $1 AND {} LIMIT $4",
            page.sql("pos", 2, 3)
        );
        let rows: Vec<EventRow> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(room_id)
            .bind(page.cursor)
            .bind(page.bound)
            .bind(page.limit)
            .fetch_all(self.pool())
            .await?;
        rows.into_iter().map(decode).collect()
    }

    /// The next events of a user's rooms after position `after`, up to
    /// `upto`, at most `limit`, oldest first: of the rooms they are joined to
    /// now, and of those where their membership changed in that range (their
    /// own member events among them). Read along positions with a LIMIT, so an
    /// old token costs what the page costs, not the account's history.
    pub async fn user_events_page(
        &self,
        user_id: &str,
        after: i64,
        upto: i64,
        limit: i64,
    ) -> anyhow::Result<Vec<RoomEvent>> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM syncapi_room_events
             WHERE pos > $1 AND pos <= $2 AND historical = 0 AND room_id IN (
                 SELECT room_id FROM syncapi_current_state
                 WHERE event_type = 'm.room.member' AND state_key = $3 AND membership = 'join'
                 UNION
                 SELECT room_id FROM syncapi_membership_changes WHERE user_id = $3 AND pos > $1 AND pos <= $2)
             ORDER BY pos LIMIT $4"
        );
        let rows: Vec<EventRow> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(after)
            .bind(upto)
            .bind(user_id)
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        rows.into_iter().map(decode).collect()
    }

    /// The user's invites in (after, upto] that are no room event here
    /// (invites into other servers' rooms, known only as invites), oldest
    /// first, at most `limit`: each as its member event, with the stripped
    /// state (JSON) that came with it. A local room's invite is its room event.
    pub async fn remote_invites_page(
        &self,
        user_id: &str,
        after: i64,
        upto: i64,
        limit: i64,
    ) -> anyhow::Result<Vec<(RoomEvent, String)>> {
        let rows: Vec<(i64, String, String, String, String)> = sqlx::query_as(
            "SELECT i.pos, i.room_id, i.event_id, i.json, i.invite_room_state FROM syncapi_invites i
             WHERE i.user_id = $1 AND i.pos > $2 AND i.pos <= $3
               AND NOT EXISTS (SELECT 1 FROM syncapi_room_events e WHERE e.event_id = i.event_id)
             ORDER BY i.pos LIMIT $4",
        )
        .bind(user_id)
        .bind(after)
        .bind(upto)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        let mut invites = Vec::with_capacity(rows.len());
        for (pos, room_id, event_id, json, stripped) in rows {
            let pdu: serde_json::Value = serde_json::from_str(&json)?;
            let event = RoomEvent {
                pos,
                room_id,
                event_id,
                event_type: "m.room.member".to_owned(),
                state_key: Some(user_id.to_owned()),
                sender: pdu["sender"].as_str().unwrap_or_default().to_owned(),
                json,
                redacted_because: None,
                visibility: "invited".to_owned(),
                txn_device: None,
                txn_id: None,
                adds: Vec::new(),
                removes: Vec::new(),
            };
            invites.push((event, stripped));
        }
        Ok(invites)
    }

    /// The room's oldest event here (by position).
    pub async fn oldest_room_event(&self, room_id: &str) -> anyhow::Result<Option<RoomEvent>> {
        self.room_events_page(room_id, Page { backward: false, cursor: START, bound: i64::MAX, limit: 1 })
            .await
            .map(|mut events| events.pop())
    }

    /// Records the relation `pdu` (stored at `pos`) declares, if any.
    pub async fn record_relation(
        &self,
        tx: &mut AnyConnection,
        pos: i64,
        room_id: &str,
        pdu: &Pdu,
    ) -> anyhow::Result<()> {
        let Some((rel_type, relates_to)) = relation_of(pdu) else { return Ok(()) };
        sqlx::query(
            "INSERT INTO syncapi_relations (event_id, room_id, relates_to, rel_type, event_type, sender, pos)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(pdu.id().as_str())
        .bind(room_id)
        .bind(relates_to)
        .bind(rel_type)
        .bind(pdu.kind().to_string())
        .bind(pdu.sender_id().as_str())
        .bind(pos)
        .execute(tx)
        .await?;
        Ok(())
    }

    /// One page of the unredacted events relating to `parent` (directly, or
    /// through up to `depth` relations), of one relation and event type when given.
    pub async fn relations_page(
        &self,
        room_id: &str,
        parent: &str,
        depth: u32,
        rel_type: Option<&str>,
        event_type: Option<&str>,
        page: Page,
    ) -> anyhow::Result<Vec<RoomEvent>> {
        let sql = format!(
            "WITH RECURSIVE tree (event_id, depth) AS (
                 SELECT event_id, 1 FROM syncapi_relations WHERE relates_to = $1 AND room_id = $2
                 UNION ALL
                 SELECT r.event_id, tree.depth + 1 FROM syncapi_relations r JOIN tree ON r.relates_to = tree.event_id
                 WHERE tree.depth < {depth}
             )
             SELECT {} FROM tree
             JOIN syncapi_relations r ON r.event_id = tree.event_id
             JOIN syncapi_room_events e ON e.event_id = r.event_id
             WHERE e.redacted_because IS NULL AND ($3 IS NULL OR r.rel_type = $3) AND ($4 IS NULL OR r.event_type = $4)
             AND {} LIMIT $7",
            prefixed_columns("e"),
            page.sql("r.pos", 5, 6)
        );
        let rows: Vec<EventRow> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(parent)
            .bind(room_id)
            .bind(rel_type)
            .bind(event_type)
            .bind(page.cursor)
            .bind(page.bound)
            .bind(page.limit)
            .fetch_all(self.pool())
            .await?;
        rows.into_iter().map(decode).collect()
    }

    /// Thread roots of the room by latest activity (the position of their
    /// newest reply), newest first, with that position at most `before`; only
    /// threads `participant` started or replied to when given.
    pub async fn thread_roots(
        &self,
        room_id: &str,
        participant: Option<&str>,
        before: i64,
        limit: i64,
    ) -> anyhow::Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT r.relates_to, MAX(r.pos) FROM syncapi_relations r
             JOIN syncapi_room_events e ON e.event_id = r.event_id
             WHERE r.room_id = $1 AND r.rel_type = 'm.thread' AND e.redacted_because IS NULL
             GROUP BY r.relates_to
             HAVING MAX(r.pos) <= $2 AND ($3 IS NULL
                 OR SUM(CASE WHEN r.sender = $3 THEN 1 ELSE 0 END) > 0
                 OR EXISTS (SELECT 1 FROM syncapi_room_events root WHERE root.event_id = r.relates_to AND root.sender = $3))
             ORDER BY MAX(r.pos) DESC LIMIT $4",
        )
        .bind(room_id)
        .bind(before)
        .bind(participant)
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }

    /// How many unredacted replies a thread has, and whether `user` sent one.
    pub async fn thread_counts(&self, root: &str, user: &str) -> anyhow::Result<(i64, bool)> {
        let (count, mine): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN r.sender = $2 THEN 1 ELSE 0 END), 0) FROM syncapi_relations r
             JOIN syncapi_room_events e ON e.event_id = r.event_id
             WHERE r.relates_to = $1 AND r.rel_type = 'm.thread' AND e.redacted_because IS NULL",
        )
        .bind(root)
        .bind(user)
        .fetch_one(self.pool())
        .await?;
        Ok((count, mine > 0))
    }

    /// Events of the room from timestamp `ts` on (forward) or back (backward),
    /// nearest first, after the `(ts, pos)` of the last one already seen.
    pub async fn events_by_ts(
        &self,
        room_id: &str,
        backward: bool,
        ts: i64,
        seen: Option<(i64, i64)>,
        limit: i64,
    ) -> anyhow::Result<Vec<(i64, RoomEvent)>> {
        let (op, order) = if backward { ("<", "DESC") } else { (">", "ASC") };
        let (last_ts, last_pos) = seen.unwrap_or((ts, if backward { i64::MAX } else { i64::MIN }));
        let sql = format!(
            "SELECT origin_server_ts, pos FROM syncapi_room_events
             WHERE room_id = $1 AND origin_server_ts {op}= $2
             AND (origin_server_ts {op} $3 OR (origin_server_ts = $3 AND pos {op} $4))
             ORDER BY origin_server_ts {order}, pos {order} LIMIT $5"
        );
        let found: Vec<(i64, i64)> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(room_id)
            .bind(ts)
            .bind(last_ts)
            .bind(last_pos)
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        if found.is_empty() {
            return Ok(Vec::new());
        }
        let sql =
            format!("SELECT {EVENT_COLUMNS} FROM syncapi_room_events WHERE pos IN ({})", placeholders(1, found.len()));
        let mut query = sqlx::query_as::<_, EventRow>(AssertSqlSafe(sql));
        for (_, pos) in &found {
            query = query.bind(*pos);
        }
        let mut events: Vec<RoomEvent> =
            query.fetch_all(self.pool()).await?.into_iter().map(decode).collect::<anyhow::Result<_>>()?;
        let mut ordered = Vec::with_capacity(found.len());
        for (ts, pos) in found {
            if let Some(i) = events.iter().position(|e| e.pos == pos) {
                ordered.push((ts, events.swap_remove(i)));
            }
        }
        Ok(ordered)
    }

    /// The member events of the room's state at position `at`, of the given
    /// users only when given: (user, event id).
    pub async fn member_events_at(
        &self,
        room_id: &str,
        at: i64,
        users: Option<&[String]>,
    ) -> anyhow::Result<Vec<(String, String)>> {
        let only = match users {
            None => String::new(),
            Some([]) => return Ok(Vec::new()),
            Some(users) => format!("AND m.user_id IN ({})", placeholders(3, users.len())),
        };
        let sql = format!(
            "SELECT m.user_id, m.event_id FROM syncapi_membership_changes m
             WHERE m.room_id = $1 {only} AND m.pos = (SELECT MAX(l.pos) FROM syncapi_membership_changes l
                 WHERE l.room_id = $1 AND l.user_id = m.user_id AND l.pos <= $2)"
        );
        let mut query = sqlx::query_as::<_, (String, String)>(AssertSqlSafe(sql)).bind(room_id).bind(at);
        for user in users.unwrap_or_default() {
            query = query.bind(user.as_str());
        }
        Ok(query.fetch_all(self.pool()).await?)
    }
}
