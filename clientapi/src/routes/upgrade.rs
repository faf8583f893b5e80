//! `POST /rooms/{roomId}/upgrade`: a new room of another version that
//! continues the old one: its state carried over, the local aliases moved,
//! a tombstone in the old room and the old room's power levels restricted.

use std::{collections::HashMap, sync::Arc};

use axum::extract::State;
use common::{
    api::roomserver::{
        GetRoomAliasRequest, QueryAliasesForRoom, QueryAliasesForRoomRequest, QueryCurrentState,
        QueryCurrentStateRequest, QueryMembership, QueryMembershipRequest, RemoveRoomAlias, SUPPORTED_ROOM_VERSIONS,
    },
    http::{MatrixError, Ruma, RumaResponse},
    pdu::EventBuilder,
};
use ruma::{
    OwnedUserId, RoomId, UserId,
    api::client::room::upgrade_room,
    events::{StateEventType, TimelineEventType},
};
use serde_json::{Map, Value, json};

use super::create_room::{create_content, new_room_id, own_join_content, set_alias, state_event};
use crate::{
    App,
    rooms::{NewRoom, parse_stored, power_levels, room_version, send_event, unsupported_version, version_rules},
};

/// State carried over to the new room, after its create event, the
/// upgrader's join and the power levels.
const CARRIED_STATE: &[&str] = &[
    "m.room.join_rules",
    "m.room.history_visibility",
    "m.room.guest_access",
    "m.room.name",
    "m.room.topic",
    "m.room.avatar",
    "m.room.encryption",
    "m.room.server_acl",
    "m.room.pinned_events",
    "m.room.canonical_alias",
];

/// Power levels with every level an integer: rooms before version 10 allow
/// strings, later versions reject them.
fn integer_levels(mut levels: Map<String, Value>) -> Map<String, Value> {
    fn int(value: &mut Value) {
        if let Some(n) = value.as_str().and_then(|s| s.trim().parse::<i64>().ok()) {
            *value = n.into();
        }
    }
    for (key, value) in levels.iter_mut() {
        match key.as_str() {
            "users" | "events" | "notifications" => {
                value.as_object_mut().into_iter().flatten().for_each(|(_, v)| int(v))
            }
            _ => int(value),
        }
    }
    levels
}

/// The highest level any action of `levels` needs.
fn highest_level(levels: &Map<String, Value>) -> i64 {
    let nested = ["events", "notifications"].into_iter().filter_map(|key| levels.get(key)?.as_object());
    levels.values().chain(nested.flat_map(|map| map.values())).filter_map(Value::as_i64).max().unwrap_or(0).max(100)
}

fn level_of(levels: &Map<String, Value>, user: &UserId) -> i64 {
    levels
        .get("users")
        .and_then(|users| users.get(user.as_str()))
        .or_else(|| levels.get("users_default"))
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// The old room's current state, by type and state key.
async fn current_state(app: &App, room_id: &RoomId) -> Result<HashMap<(String, String), Value>, MatrixError> {
    let request = QueryCurrentStateRequest { room_id: room_id.to_owned(), filter: None };
    let mut state = HashMap::new();
    for event in app.rt.bus.call::<QueryCurrentState>(&request).await?.state {
        let pdu = parse_stored(event.event_id, event.event)?;
        let content = serde_json::from_str(pdu.content_json().get()).unwrap_or_default();
        if let Some((kind, key)) = pdu.state_pair() {
            state.insert((kind.to_string(), key), content);
        }
    }
    Ok(state)
}

pub async fn upgrade(
    State(app): State<Arc<App>>,
    request: Ruma<upgrade_room::v3::Request>,
) -> Result<RumaResponse<upgrade_room::v3::Response>, MatrixError> {
    let user = request.require_user()?.user_id.clone();
    let body = &request.body;
    let new_version = &body.new_version;
    if !SUPPORTED_ROOM_VERSIONS.contains(&new_version.as_str()) {
        return Err(unsupported_version(format!("This server does not support room version {new_version}")));
    }
    let old_room = &body.room_id;
    let old_rules = version_rules(&room_version(&app, old_room).await?)?;
    let membership = app
        .rt
        .bus
        .call::<QueryMembership>(&QueryMembershipRequest { room_id: old_room.clone(), user_id: user.clone() })
        .await?;
    if membership.membership.as_deref() != Some("join") {
        return Err(MatrixError::forbidden("You are not in this room"));
    }
    let (levels, old_creators) = power_levels(&app, old_room).await?;
    if !levels.user_can_send_state(&user, StateEventType::RoomTombstone) {
        return Err(MatrixError::forbidden("You do not have the power to upgrade this room"));
    }
    let state = current_state(&app, old_room).await?;
    let content_of = |event_type: &str| state.get(&(event_type.to_owned(), String::new())).cloned();

    let mut room = NewRoom::new(new_version, new_room_id(&app, new_version)?)?;
    let rules = room.rules().clone();

    // The create event: what described the old room, and where it came from.
    let mut creation = Map::new();
    if let Some(Value::Object(old_create)) = content_of("m.room.create") {
        for key in ["m.federate", "type"] {
            if let Some(value) = old_create.get(key) {
                creation.insert(key.into(), value.clone());
            }
        }
    }
    creation.insert("predecessor".into(), json!({"room_id": old_room}));
    let additional: &[OwnedUserId] =
        if rules.authorization.additional_room_creators { &body.additional_creators } else { &[] };
    room.push(
        &app,
        state_event(&user, "m.room.create", "", create_content(creation, &user, new_version, &rules, additional)?),
    )?;
    room.push(&app, state_event(&user, "m.room.member", user.as_str(), own_join_content(&app, &user).await?))?;

    // Power levels: the old ones, with creators left out where they have
    // unlimited power, and listed where they no longer do.
    let mut final_levels = integer_levels(match content_of("m.room.power_levels") {
        Some(Value::Object(levels)) => levels,
        _ => super::create_room::default_power_levels(&user, &rules, false),
    });
    let needed = highest_level(&final_levels);
    let users = final_levels.entry("users").or_insert_with(|| json!({}));
    if let Some(users) = users.as_object_mut() {
        if rules.authorization.explicitly_privilege_room_creators {
            users.remove(user.as_str());
            for creator in additional {
                users.remove(creator.as_str());
            }
        } else if old_rules.authorization.explicitly_privilege_room_creators {
            for creator in &old_creators {
                users.insert(creator.to_string(), needed.into());
            }
        }
    }
    // Until the state is carried over the upgrader may need more power than
    // the old room gave them; the old levels come back after.
    let raise = !rules.authorization.explicitly_privilege_room_creators && level_of(&final_levels, &user) < needed;
    let mut first_levels = final_levels.clone();
    if raise && let Some(users) = first_levels.get_mut("users").and_then(Value::as_object_mut) {
        users.insert(user.to_string(), needed.into());
    }
    room.push(&app, state_event(&user, "m.room.power_levels", "", Value::Object(first_levels)))?;
    for event_type in CARRIED_STATE {
        if let Some(content) = content_of(event_type) {
            room.push(&app, state_event(&user, event_type, "", content))?;
        }
    }
    if raise {
        room.push(&app, state_event(&user, "m.room.power_levels", "", Value::Object(final_levels)))?;
    }
    let new_room = room.publish(&app).await?;

    // The local aliases follow the room.
    let aliases = app
        .rt
        .bus
        .call::<QueryAliasesForRoom>(&QueryAliasesForRoomRequest { room_id: old_room.clone() })
        .await?
        .aliases;
    for alias in aliases {
        app.rt.bus.call::<RemoveRoomAlias>(&GetRoomAliasRequest { alias: alias.clone() }).await?;
        set_alias(&app, &alias, &new_room, &user).await?;
    }

    let tombstone = EventBuilder::new(
        &user,
        TimelineEventType::RoomTombstone,
        json!({"body": "This room has been replaced", "replacement_room": new_room}),
    )
    .state("");
    send_event(&app, old_room, tombstone, None).await?;

    // Nobody should talk or invite in the old room any more; upgraders
    // without the power to change its levels leave them as they are.
    if let Some(Value::Object(levels)) = content_of("m.room.power_levels") {
        let mut levels = integer_levels(levels);
        let floor = levels.get("users_default").and_then(Value::as_i64).unwrap_or(0).saturating_add(1).max(50);
        let mut changed = false;
        for key in ["events_default", "invite"] {
            if levels.get(key).and_then(Value::as_i64).unwrap_or(0) < floor {
                levels.insert(key.into(), floor.into());
                changed = true;
            }
        }
        if changed {
            let builder = EventBuilder::new(&user, TimelineEventType::RoomPowerLevels, Value::Object(levels)).state("");
            if let Err(e) = send_event(&app, old_room, builder, None).await {
                tracing::info!(error = ?e, room_id = %old_room, "the old room's power levels stay as they were");
            }
        }
    }
    Ok(RumaResponse(upgrade_room::v3::Response::new(new_room)))
}
