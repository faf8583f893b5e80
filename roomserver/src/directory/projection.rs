//! The directory's projection of each room's current state: the few state
//! events a directory entry shows (`roomserver_directory_state`, one value
//! each) and the summary built from them (`roomserver_directory_rooms`).
//!
//! Fed by a durable, ordered consumer of `OutputRoomEvent`. A message can
//! arrive twice: each room remembers the `stream_ordering` of the last change
//! applied, and an older or equal one is skipped.

use std::collections::HashMap;

use common::{
    Runtime,
    api::roomserver::{
        InputKind, NewRoomEvent, OutputRoomEvent, QueryEvents, QueryEventsRequest, RedactedEvent, StoredEvent,
    },
    bus::{ConsumerSpec, Delivery, HandlerError, consume},
    pdu::Pdu,
    storage::Db,
};
use ruma::{OwnedEventId, RoomId};
use serde_json::Value;
use sqlx::AnyConnection;

const MEMBER: &str = "m.room.member";

/// The state types a directory entry is made of (members aside), and the
/// content field each contributes.
const SUMMARY_FIELDS: &[(&str, &str)] = &[
    ("m.room.create", "type"),
    ("m.room.name", "name"),
    ("m.room.topic", "topic"),
    ("m.room.avatar", "url"),
    ("m.room.canonical_alias", "alias"),
    ("m.room.join_rules", "join_rule"),
    ("m.room.guest_access", "guest_access"),
    ("m.room.history_visibility", "history_visibility"),
];

/// Types whose summarised field redaction removes; the others keep theirs
/// through redaction (join rule, history visibility, membership).
const ERASED_BY_REDACTION: &[&str] =
    &["m.room.name", "m.room.topic", "m.room.avatar", "m.room.canonical_alias", "m.room.guest_access"];

/// Most ids one `QueryEvents` call may carry.
const QUERY_CHUNK: usize = 1000;

pub fn start(rt: &Runtime, db: Db) {
    let (bus, shutdown) = (rt.bus.clone(), rt.shutdown.clone());
    let projection = Projection { rt: rt.clone(), db };
    rt.spawn("roomserver directory projection", async move {
        consume(&bus, ConsumerSpec::ordered("roomserver_directory"), shutdown, |msg, delivery| {
            projection.handle(msg, delivery)
        })
        .await
    });
}

struct Projection {
    rt: Runtime,
    db: Db,
}

/// A state event as the projection keeps it.
struct Entry {
    event_type: String,
    state_key: String,
    event_id: OwnedEventId,
    value: Option<String>,
}

impl Projection {
    async fn handle(&self, msg: OutputRoomEvent, _delivery: Delivery) -> Result<(), HandlerError> {
        match msg {
            OutputRoomEvent::NewRoomEvent(event) => self.apply(event).await,
            OutputRoomEvent::RedactedEvent(redaction) => self.redact(redaction).await,
            OutputRoomEvent::NewInviteEvent(_) | OutputRoomEvent::RetireInviteEvent(_) => Ok(()),
        }
    }

    async fn apply(&self, msg: NewRoomEvent) -> Result<(), HandlerError> {
        if msg.kind != InputKind::New || (msg.adds_state_event_ids.is_empty() && msg.removes_state_event_ids.is_empty())
        {
            return Ok(());
        }
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT stream_ordering FROM roomserver_directory_rooms WHERE room_id = $1")
                .bind(msg.room_id.as_str())
                .fetch_optional(self.db.pool())
                .await
                .map_err(anyhow::Error::from)?;
        if applied.is_some_and(|applied| applied >= msg.stream_ordering) {
            return Ok(());
        }
        let added = self.added_entries(&msg).await?;

        let mut tx = self.db.begin_write().await.map_err(anyhow::Error::from)?;
        let mut changed = applied.is_none();
        for event_id in &msg.removes_state_event_ids {
            let removed = sqlx::query("DELETE FROM roomserver_directory_state WHERE room_id = $1 AND event_id = $2")
                .bind(msg.room_id.as_str())
                .bind(event_id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(anyhow::Error::from)?;
            changed |= removed.rows_affected() > 0;
        }
        for entry in &added {
            sqlx::query(
                "INSERT INTO roomserver_directory_state (room_id, event_type, state_key, event_id, value)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (room_id, event_type, state_key) DO UPDATE SET event_id = excluded.event_id, value = excluded.value",
            )
            .bind(msg.room_id.as_str())
            .bind(entry.event_type.as_str())
            .bind(entry.state_key.as_str())
            .bind(entry.event_id.as_str())
            .bind(entry.value.as_deref())
            .execute(&mut *tx)
            .await
            .map_err(anyhow::Error::from)?;
            changed = true;
        }
        if changed {
            write_summary(&mut tx, &msg.room_id, msg.stream_ordering).await?;
        }
        tx.commit().await.map_err(anyhow::Error::from)?;
        Ok(())
    }

    /// The added state events the directory keeps, with their values.
    async fn added_entries(&self, msg: &NewRoomEvent) -> Result<Vec<Entry>, HandlerError> {
        let mut events = Vec::new();
        let mut others = Vec::new();
        for event_id in &msg.adds_state_event_ids {
            if *event_id == msg.event_id {
                events.push(StoredEvent {
                    event_id: msg.event_id.clone(),
                    room_id: msg.room_id.clone(),
                    event: msg.event.clone(),
                    redacted: false,
                    soft_failed: false,
                });
            } else {
                others.push(event_id.clone());
            }
        }
        for chunk in others.chunks(QUERY_CHUNK) {
            let request = QueryEventsRequest { event_ids: chunk.to_vec() };
            let found = self.rt.bus.call::<QueryEvents>(&request).await.map_err(anyhow::Error::from)?;
            if found.events.len() < chunk.len() {
                // The roomserver stores state before it announces it; an id it
                // does not know cannot be looked up later either.
                tracing::warn!(room_id = %msg.room_id, "some added state events are unknown; left out of the directory");
            }
            events.extend(found.events);
        }
        let mut entries = Vec::new();
        for stored in events {
            let pdu = match Pdu::parse(stored.event_id.clone(), stored.event) {
                Ok(pdu) => pdu,
                Err(e) => {
                    tracing::warn!(event_id = %stored.event_id, error = format!("{e:#}"), "unreadable state event");
                    continue;
                }
            };
            let event_type = pdu.kind().to_string();
            let Some(state_key) = pdu.key() else { continue };
            let field = if event_type == MEMBER {
                "membership"
            } else {
                match SUMMARY_FIELDS.iter().find(|(kind, _)| *kind == event_type) {
                    // Only the room's own state (empty key) describes it.
                    Some((_, field)) if state_key.is_empty() => field,
                    _ => continue,
                }
            };
            entries.push(Entry {
                state_key: state_key.to_owned(),
                event_id: stored.event_id,
                value: content_field(pdu.content_json().get(), field),
                event_type,
            });
        }
        Ok(entries)
    }

    async fn redact(&self, msg: RedactedEvent) -> Result<(), HandlerError> {
        let mut tx = self.db.begin_write().await.map_err(anyhow::Error::from)?;
        let event_type: Option<String> = sqlx::query_scalar(
            "SELECT event_type FROM roomserver_directory_state WHERE room_id = $1 AND event_id = $2",
        )
        .bind(msg.room_id.as_str())
        .bind(msg.redacted_event_id.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(anyhow::Error::from)?;
        if !event_type.is_some_and(|kind| ERASED_BY_REDACTION.contains(&kind.as_str())) {
            return Ok(());
        }
        sqlx::query("UPDATE roomserver_directory_state SET value = NULL WHERE room_id = $1 AND event_id = $2")
            .bind(msg.room_id.as_str())
            .bind(msg.redacted_event_id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(anyhow::Error::from)?;
        let applied: i64 =
            sqlx::query_scalar("SELECT stream_ordering FROM roomserver_directory_rooms WHERE room_id = $1")
                .bind(msg.room_id.as_str())
                .fetch_one(&mut *tx)
                .await
                .map_err(anyhow::Error::from)?;
        write_summary(&mut tx, &msg.room_id, applied).await?;
        tx.commit().await.map_err(anyhow::Error::from)?;
        Ok(())
    }
}

/// A non-empty string field of an event's content.
fn content_field(content: &str, field: &str) -> Option<String> {
    let content: Value = serde_json::from_str(content).ok()?;
    content.get(field)?.as_str().filter(|value| !value.is_empty()).map(str::to_owned)
}

/// Rebuilds the room's summary from its projected state.
async fn write_summary(tx: &mut AnyConnection, room_id: &RoomId, stream_ordering: i64) -> anyhow::Result<()> {
    let rows: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT event_type, value FROM roomserver_directory_state WHERE room_id = $1 AND event_type <> 'm.room.member'",
    )
    .bind(room_id.as_str())
    .fetch_all(&mut *tx)
    .await?;
    let values: HashMap<String, Option<String>> = rows.into_iter().collect();
    let value = |kind: &str| values.get(kind).cloned().flatten();
    let joined: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM roomserver_directory_state
         WHERE room_id = $1 AND event_type = 'm.room.member' AND value = 'join'",
    )
    .bind(room_id.as_str())
    .fetch_one(&mut *tx)
    .await?;
    let (name, topic, canonical_alias) = (value("m.room.name"), value("m.room.topic"), value("m.room.canonical_alias"));
    let search_text = search_text(room_id, [&name, &topic, &canonical_alias]);
    sqlx::query(
        "INSERT INTO roomserver_directory_rooms (room_id, stream_ordering, name, topic, avatar_url, canonical_alias,
             join_rule, guest_can_join, world_readable, room_type, num_joined_members, search_text)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         ON CONFLICT (room_id) DO UPDATE SET stream_ordering = excluded.stream_ordering, name = excluded.name,
             topic = excluded.topic, avatar_url = excluded.avatar_url, canonical_alias = excluded.canonical_alias,
             join_rule = excluded.join_rule, guest_can_join = excluded.guest_can_join,
             world_readable = excluded.world_readable, room_type = excluded.room_type,
             num_joined_members = excluded.num_joined_members, search_text = excluded.search_text",
    )
    .bind(room_id.as_str())
    .bind(stream_ordering)
    .bind(name)
    .bind(topic)
    .bind(value("m.room.avatar"))
    .bind(canonical_alias)
    .bind(value("m.room.join_rules"))
    .bind(i64::from(value("m.room.guest_access").as_deref() == Some("can_join")))
    .bind(i64::from(value("m.room.history_visibility").as_deref() == Some("world_readable")))
    .bind(value("m.room.create"))
    .bind(joined)
    .bind(search_text)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// What `generic_search_term` is matched against: lowercase, one field a line.
fn search_text(room_id: &RoomId, fields: [&Option<String>; 3]) -> String {
    let mut text = room_id.as_str().to_lowercase();
    for field in fields.into_iter().flatten() {
        text.push('\n');
        text.push_str(&field.to_lowercase());
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_fields_are_non_empty_strings() {
        assert_eq!(content_field(r#"{"name":"Lobby"}"#, "name").as_deref(), Some("Lobby"));
        assert_eq!(content_field(r#"{"name":""}"#, "name"), None);
        assert_eq!(content_field(r#"{"name":7}"#, "name"), None);
        assert_eq!(content_field(r#"{}"#, "name"), None);
    }

    #[test]
    fn search_text_is_lowercase() {
        let room: &RoomId = "!AbC:example.org".try_into().unwrap();
        let text = search_text(room, [&Some("Lobby".into()), &None, &Some("#Main:example.org".into())]);
        assert_eq!(text, "!abc:example.org\nlobby\n#main:example.org");
    }
}
