//! `syncapi_presence`: each user's presence, stamped with the presence stream
//! position of its last change.
//!
//! Positions come from the single row of `syncapi_presence_position`, bumped
//! in the same transaction as the change. The row lock makes writers commit
//! in position order, so a reader that takes the counter first and then
//! reads up to it never skips a change that commits later with a lower
//! position.

use common::{
    api::syncapi::OutputPresenceEvent,
    storage::{Db, Outbox},
};
use ruma::{OwnedUserId, UserId, presence::PresenceState};
use sqlx::AssertSqlSafe;

/// One user's stored presence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Presence {
    pub user_id: OwnedUserId,
    pub presence: PresenceState,
    pub status_msg: Option<String>,
    pub last_active_ts: i64,
    pub currently_active: bool,
    pub pos: i64,
}

type Row = (String, String, Option<String>, i64, i64, i64);

fn from_row((user_id, presence, status_msg, last_active_ts, currently_active, pos): Row) -> anyhow::Result<Presence> {
    Ok(Presence {
        user_id: UserId::parse(user_id)?,
        presence: PresenceState::from(presence.as_str()),
        status_msg,
        last_active_ts,
        currently_active: currently_active != 0,
        pos,
    })
}

const COLUMNS: &str = "user_id, presence, status_msg, last_active_ts, currently_active, pos";

pub async fn get(db: &Db, user_id: &UserId) -> anyhow::Result<Option<Presence>> {
    let row: Option<Row> =
        sqlx::query_as(AssertSqlSafe(format!("SELECT {COLUMNS} FROM syncapi_presence WHERE user_id = $1")))
            .bind(user_id.as_str())
            .fetch_optional(db.pool())
            .await?;
    row.map(from_row).transpose()
}

/// The position of the latest change.
pub async fn max_position(db: &Db) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT pos FROM syncapi_presence_position WHERE id = 1").fetch_one(db.pool()).await?)
}

/// The presence changes in `(since, until]` that `viewer` may see: their
/// own, and those of users they share a joined room with. Found from the
/// changes in the range, so the cost follows the changes, not the rooms.
pub async fn changed_for(db: &Db, since: i64, until: i64, viewer: &UserId) -> anyhow::Result<Vec<Presence>> {
    let rows: Vec<Row> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM syncapi_presence p WHERE pos > $1 AND pos <= $2 AND (user_id = $3 OR EXISTS (
             SELECT 1 FROM syncapi_current_state mine JOIN syncapi_current_state theirs ON theirs.room_id = mine.room_id
             WHERE mine.event_type = 'm.room.member' AND mine.state_key = $3 AND mine.membership = 'join'
               AND theirs.event_type = 'm.room.member' AND theirs.state_key = p.user_id AND theirs.membership = 'join'))
         ORDER BY pos"
    )))
    .bind(since)
    .bind(until)
    .bind(viewer.as_str())
    .fetch_all(db.pool())
    .await?;
    rows.into_iter().map(from_row).collect()
}

/// Stores `presence` (its `pos` is ignored) under a new position and queues
/// its `OutputPresenceEvent` in the same transaction; the caller flushes the
/// outbox after this returns.
pub async fn store(db: &Db, outbox: &Outbox, presence: &Presence) -> anyhow::Result<i64> {
    let mut tx = db.begin_write().await?;
    // The counter first: its row lock orders the writers (see the module comment).
    let pos: i64 = sqlx::query_scalar("UPDATE syncapi_presence_position SET pos = pos + 1 WHERE id = 1 RETURNING pos")
        .fetch_one(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO syncapi_presence (user_id, presence, status_msg, last_active_ts, currently_active, pos)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (user_id) DO UPDATE SET presence = excluded.presence, status_msg = excluded.status_msg,
             last_active_ts = excluded.last_active_ts, currently_active = excluded.currently_active, pos = excluded.pos",
    )
    .bind(presence.user_id.as_str())
    .bind(presence.presence.as_str())
    .bind(presence.status_msg.as_deref())
    .bind(presence.last_active_ts)
    .bind(i64::from(presence.currently_active))
    .bind(pos)
    .execute(&mut *tx)
    .await?;
    let event = OutputPresenceEvent {
        user_id: presence.user_id.clone(),
        presence: presence.presence.clone(),
        status_msg: presence.status_msg.clone(),
        last_active_ts: u64::try_from(presence.last_active_ts).unwrap_or_default(),
        currently_active: presence.currently_active,
    };
    outbox.enqueue(&mut tx, &event).await?;
    tx.commit().await?;
    Ok(pos)
}
