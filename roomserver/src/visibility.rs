//! What another server may read of a room's history: each event as the
//! history visibility in the state before it allows, judged by the
//! memberships of that server's users there. `shared` and `world_readable`
//! history is open to any server in the room; `invited` and `joined` only
//! to servers with a user invited or joined at the time. Events the server
//! may not see are served pruned, as Synapse serves them.

use std::collections::HashMap;

use ruma::{OwnedRoomId, RoomVersionId, ServerName, events::StateEventType, room_version_rules::RoomVersionRules};

use crate::storage::{EventRow, Store};

/// `rows` with the events `server` may not see pruned.
pub async fn for_server(store: &Store, server: &ServerName, rows: Vec<EventRow>) -> anyhow::Result<Vec<EventRow>> {
    // By room and snapshot: an event kept without state is judged by its
    // room's current state.
    let mut judged: HashMap<(OwnedRoomId, Option<i64>), bool> = HashMap::new();
    let mut rules: HashMap<OwnedRoomId, RoomVersionRules> = HashMap::new();
    let mut out = Vec::with_capacity(rows.len());
    for mut row in rows {
        let own_member = row.pdu.state_pair().is_some_and(|(kind, key)| {
            kind == StateEventType::RoomMember && key.rsplit_once(':').is_some_and(|(_, s)| s == server.as_str())
        });
        let key = (row.room_id.clone(), row.state_before);
        let visible = match judged.get(&key) {
            Some(visible) => *visible,
            None => {
                let visible = may_see(store, &row, server).await?;
                judged.insert(key, visible);
                visible
            }
        };
        // A server always sees its own users' membership events.
        if !(visible || own_member || row.redacted) {
            if !rules.contains_key(&row.room_id) {
                rules.insert(row.room_id.clone(), common::pdu::rules(&room_version(store, &row).await?)?);
            }
            let object: ruma::CanonicalJsonObject = serde_json::from_str(row.pdu.json().get())?;
            let pruned = ruma::canonical_json::redact(object, &rules[&row.room_id].redaction, None)?;
            row.pdu = common::pdu::Pdu::parse(row.pdu.owned_id(), serde_json::value::to_raw_value(&pruned)?)?;
            row.redacted = true;
        }
        out.push(row);
    }
    Ok(out)
}

async fn room_version(store: &Store, row: &EventRow) -> anyhow::Result<RoomVersionId> {
    Ok(store.rooms.get(&row.room_id).await?.map(|room| room.room_version).unwrap_or(RoomVersionId::V10))
}

/// Whether `server` may see events with `row`'s state before them (the
/// room's current state for an event kept without state).
async fn may_see(store: &Store, row: &EventRow, server: &ServerName) -> anyhow::Result<bool> {
    let snapshot = match row.state_before {
        Some(snapshot) => Some(snapshot),
        None => store.rooms.get(&row.room_id).await?.and_then(|room| room.current_state),
    };
    let Some(snapshot) = snapshot else { return Ok(false) };
    let state = store.snapshots.load(snapshot).await?;
    let visibility = match state.get(&(StateEventType::RoomHistoryVisibility, String::new())) {
        Some(id) => store.events.load(id).await?.and_then(|row| row.pdu.content_str("history_visibility")),
        None => None,
    };
    let wanted: &[&str] = match visibility.as_deref() {
        Some("invited") => &["invite", "join"],
        Some("joined") => &["join"],
        // "shared", "world_readable" and anything unknown.
        _ => return Ok(true),
    };
    let suffix = format!(":{server}");
    let members: Vec<_> = state
        .iter()
        .filter(|((kind, key), _)| *kind == StateEventType::RoomMember && key.ends_with(&suffix))
        .map(|(_, id)| id.clone())
        .collect();
    let rows = store.events.load_many(&members).await?;
    Ok(rows.values().any(|row| row.pdu.content_str("membership").is_some_and(|m| wanted.contains(&m.as_str()))))
}
