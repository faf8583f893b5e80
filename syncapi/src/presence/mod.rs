//! Presence: who is online, stored in `syncapi_presence` and served by
//! `GET`/`PUT /presence/{userId}/status` and by `/sync`'s `presence` section.
//!
//! Every change gets a position on the presence stream and is published as
//! `OutputPresenceEvent` (through syncapi's outbox) for whoever passes it on.

mod routes;
mod storage;

use std::time::Duration;

use common::{
    bus::Bus,
    storage::{Db, Outbox, now_ms},
};
use ruma::{UserId, presence::PresenceState};
use serde_json::{Map, Value, json};

pub use routes::routes;
use storage::Presence;

/// The schema, syncapi's migration "presence".
pub const MIGRATION_SQL: &str = include_str!("presence.sql");

/// How stale `last_active_ts` may get before a sync saying the same thing
/// again is recorded as a change. Without it every sync would be a change
/// that wakes every other sync of the user and of those who see them.
const ACTIVITY_GRANULARITY: Duration = Duration::from_secs(60);

/// Records what a `/sync` with `set_presence` says about its user. `offline`
/// only means the client does not want to be marked online, so it changes
/// nothing; repeating the current state changes nothing either until a
/// minute has passed.
pub async fn set_from_sync(db: &Db, bus: &Bus, user_id: &UserId, presence: PresenceState) -> anyhow::Result<()> {
    if presence == PresenceState::Offline {
        return Ok(());
    }
    let now = now_ms();
    let currently_active = presence == PresenceState::Online;
    let current = storage::get(db, user_id).await?;
    if let Some(current) = &current
        && current.presence == presence
        && current.currently_active == currently_active
        && now - current.last_active_ts < ACTIVITY_GRANULARITY.as_millis() as i64
    {
        return Ok(());
    }
    let last_active_ts = match &current {
        // Idle clients say `unavailable`: that is no new activity.
        Some(current) if !currently_active => current.last_active_ts,
        _ => now,
    };
    let status_msg = current.and_then(|c| c.status_msg);
    let update =
        Presence { user_id: user_id.to_owned(), presence, status_msg, last_active_ts, currently_active, pos: 0 };
    store_and_publish(db, bus, &update).await
}

/// `m.presence` events, as the client-server API shows them, for the users
/// `viewer` shares a room with (and `viewer`) whose presence changed after
/// position `since`; and the position they bring the caller up to.
pub async fn changes_since(db: &Db, since: i64, viewer: &UserId) -> anyhow::Result<(Vec<Value>, i64)> {
    // The position first: a change committing meanwhile is left for next time.
    let until = max_position(db).await?;
    if since >= until {
        return Ok((Vec::new(), until));
    }
    let now = now_ms();
    let events = storage::changed_for(db, since, until, viewer)
        .await?
        .iter()
        .map(|p| json!({ "type": "m.presence", "sender": p.user_id, "content": client_content(p, now) }))
        .collect();
    Ok((events, until))
}

/// The position of the latest presence change.
pub async fn max_position(db: &Db) -> anyhow::Result<i64> {
    storage::max_position(db).await
}

/// The content of an `m.presence` event.
fn client_content(p: &Presence, now: i64) -> Map<String, Value> {
    let mut content = Map::new();
    content.insert("presence".into(), p.presence.as_str().into());
    if p.last_active_ts > 0 {
        content.insert("last_active_ago".into(), (now - p.last_active_ts).max(0).into());
    }
    content.insert("currently_active".into(), p.currently_active.into());
    if let Some(msg) = &p.status_msg {
        content.insert("status_msg".into(), msg.as_str().into());
    }
    content
}

/// Stores a change and publishes it. The change stands even when NATS does
/// not answer now: the outbox relay publishes it later.
async fn store_and_publish(db: &Db, bus: &Bus, presence: &Presence) -> anyhow::Result<()> {
    let outbox = Outbox::new(db.clone(), bus.clone(), "syncapi");
    storage::store(db, &outbox, presence).await?;
    if let Err(e) = outbox.flush().await {
        tracing::warn!(error = format!("{e:#}"), "cannot publish a presence change yet; the outbox relay will");
    }
    Ok(())
}
