//! `POST /createRoom`: the room's first events, built here in the order the
//! spec gives, checked together, then published; the answer comes once the
//! roomserver accepted the last of them.

use std::sync::Arc;

use axum::extract::State;
use common::{
    api::{
        roomserver::{
            GetRoomAlias, GetRoomAliasRequest, RemoveRoomAlias, SUPPORTED_ROOM_VERSIONS, SetRoomAlias,
            SetRoomAliasRequest, SetRoomVisibility, SetRoomVisibilityRequest,
        },
        userapi::{QueryProfile, QueryProfileRequest},
    },
    bus::{RemoteErrorKind, RpcError},
    http::{MatrixError, Ruma, RumaResponse},
    pdu::EventBuilder,
};
use http::StatusCode;
use ruma::{
    OwnedRoomAliasId, OwnedRoomId, OwnedUserId, RoomId, RoomVersionId, UserId,
    api::{
        client::room::{
            Visibility,
            create_room::v3::{self as create_room, RoomPreset},
        },
        error::ErrorKind,
    },
    events::TimelineEventType,
    room_version_rules::{RoomIdFormatVersion, RoomVersionRules},
};
use serde_json::{Map, Value, json};

use crate::{
    App,
    rooms::{NewRoom, unsupported_version},
};

/// A state event of `initial_state`.
struct InitialState {
    event_type: String,
    state_key: String,
    content: Value,
}

fn parse_initial_state(
    raw: &[ruma::serde::Raw<ruma::events::AnyInitialStateEvent>],
) -> Result<Vec<InitialState>, MatrixError> {
    raw.iter()
        .map(|event| {
            let event: Map<String, Value> = serde_json::from_str(event.json().get())
                .map_err(|_| MatrixError::bad_json("initial_state items must be objects"))?;
            let event_type = event.get("type").and_then(Value::as_str).filter(|t| !t.is_empty());
            let event_type = event_type.ok_or_else(|| MatrixError::bad_json("initial_state items need a type"))?;
            if event_type == "m.room.create" {
                return Err(MatrixError::invalid_param(
                    "initial_state cannot hold m.room.create; use creation_content",
                ));
            }
            let state_key = match event.get("state_key") {
                None => String::new(),
                Some(Value::String(key)) => key.clone(),
                Some(_) => return Err(MatrixError::bad_json("an initial_state state_key must be a string")),
            };
            let content = event.get("content").filter(|c| c.is_object()).cloned();
            let content = content.ok_or_else(|| MatrixError::bad_json("initial_state content must be an object"))?;
            Ok(InitialState { event_type: event_type.to_owned(), state_key, content })
        })
        .collect()
}

/// The `#localpart:server` alias for `room_alias_name`.
fn alias_for(app: &App, name: &str) -> Result<OwnedRoomAliasId, MatrixError> {
    let invalid = || MatrixError::invalid_param(format!("{name:?} is not a valid alias localpart"));
    if name.is_empty() || name.contains(':') || name.chars().any(char::is_whitespace) {
        return Err(invalid());
    }
    OwnedRoomAliasId::try_from(format!("#{name}:{}", app.rt.config.global.server_name)).map_err(|_| invalid())
}

fn room_in_use(alias: &OwnedRoomAliasId) -> MatrixError {
    MatrixError::new(StatusCode::BAD_REQUEST, ErrorKind::RoomInUse, format!("The alias {alias} is already in use"))
}

/// 400 M_ROOM_IN_USE when a local alias already names a room.
pub(super) async fn check_alias_free(app: &App, alias: &OwnedRoomAliasId) -> Result<(), MatrixError> {
    match app.rt.bus.call::<GetRoomAlias>(&GetRoomAliasRequest { alias: alias.clone() }).await {
        Ok(_) => Err(room_in_use(alias)),
        Err(RpcError::Remote(e)) if e.kind == RemoteErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Points a local alias at a room; 400 M_ROOM_IN_USE when it names one already.
pub(super) async fn set_alias(
    app: &App,
    alias: &OwnedRoomAliasId,
    room_id: &RoomId,
    creator: &UserId,
) -> Result<(), MatrixError> {
    let request =
        SetRoomAliasRequest { alias: alias.clone(), room_id: room_id.to_owned(), creator: creator.to_owned() };
    match app.rt.bus.call::<SetRoomAlias>(&request).await {
        Ok(response) if response.created => Ok(()),
        Ok(_) => Err(room_in_use(alias)),
        Err(RpcError::Remote(e)) if e.kind == RemoteErrorKind::BadRequest => Err(room_in_use(alias)),
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn remove_alias(app: &App, alias: &OwnedRoomAliasId) {
    if let Err(e) = app.rt.bus.call::<RemoveRoomAlias>(&GetRoomAliasRequest { alias: alias.clone() }).await {
        tracing::warn!(error = %e, %alias, "cannot remove an alias");
    }
}

/// The creator's join: with their display name and avatar, as other members' are.
pub(super) async fn own_join_content(app: &App, user_id: &UserId) -> Result<Value, MatrixError> {
    let profile = app.rt.bus.call::<QueryProfile>(&QueryProfileRequest { user_id: user_id.to_owned() }).await?;
    let mut content = json!({"membership": "join"});
    for field in ["displayname", "avatar_url"] {
        if let Some(value) = profile.get(field).filter(|v| v.is_string()) {
            content[field] = value.clone();
        }
    }
    Ok(content)
}

/// The power levels a new room starts with.
pub(super) fn default_power_levels(creator: &UserId, rules: &RoomVersionRules, public: bool) -> Map<String, Value> {
    let privileged_creators = rules.authorization.explicitly_privilege_room_creators;
    // From room version 12 the tombstone must need more than other state,
    // so that only creators upgrade a room by default.
    let tombstone = if privileged_creators { 150 } else { 100 };
    let mut users = Map::new();
    if !privileged_creators {
        users.insert(creator.to_string(), 100.into());
    }
    let levels = json!({
        "users": users,
        "users_default": 0,
        "events": {
            "m.room.name": 50,
            "m.room.power_levels": 100,
            "m.room.history_visibility": 100,
            "m.room.canonical_alias": 50,
            "m.room.avatar": 50,
            "m.room.tombstone": tombstone,
            "m.room.server_acl": 100,
            "m.room.encryption": 100,
        },
        "events_default": 0,
        "state_default": 50,
        "ban": 50,
        "kick": 50,
        "redact": 50,
        // Anyone in a private chat may bring others in, as clients expect.
        "invite": if public { 50 } else { 0 },
        "notifications": {"room": 50},
    });
    match levels {
        Value::Object(map) => map,
        _ => unreachable!("a JSON object literal"),
    }
}

/// A fresh room id, for versions whose room id does not come from the create event.
pub(super) fn new_room_id(app: &App, version: &RoomVersionId) -> Result<Option<OwnedRoomId>, MatrixError> {
    Ok(match crate::rooms::version_rules(version)?.room_id_format {
        RoomIdFormatVersion::V1 => {
            let id = format!("!{}:{}", common::auth::random_id(18), app.rt.config.global.server_name);
            Some(OwnedRoomId::try_from(id).map_err(MatrixError::internal)?)
        }
        _ => None,
    })
}

pub(super) fn state_event(sender: &UserId, event_type: &str, state_key: &str, content: Value) -> EventBuilder {
    EventBuilder::new(sender, TimelineEventType::from(event_type), content).state(state_key)
}

/// The `m.room.create` content: `creation_content` with the keys the server decides.
pub(super) fn create_content(
    mut content: Map<String, Value>,
    creator: &UserId,
    version: &RoomVersionId,
    rules: &RoomVersionRules,
    extra_creators: &[OwnedUserId],
) -> Result<Value, MatrixError> {
    content.remove("creator");
    if !rules.authorization.use_room_create_sender {
        content.insert("creator".into(), creator.as_str().into());
    }
    content.insert("room_version".into(), version.as_str().into());
    if rules.authorization.additional_room_creators {
        let mut creators: Vec<OwnedUserId> = Vec::new();
        match content.remove("additional_creators") {
            None => {}
            Some(Value::Array(list)) => {
                for user in list {
                    let user = user.as_str().and_then(|u| OwnedUserId::try_from(u).ok());
                    creators.push(
                        user.ok_or_else(|| {
                            MatrixError::invalid_param("additional_creators must be a list of user ids")
                        })?,
                    );
                }
            }
            Some(_) => return Err(MatrixError::invalid_param("additional_creators must be a list of user ids")),
        }
        creators.extend(extra_creators.iter().cloned());
        let mut seen = std::collections::HashSet::new();
        creators.retain(|user| user != creator && seen.insert(user.clone()));
        if !creators.is_empty() {
            content.insert("additional_creators".into(), json!(creators));
        }
    }
    Ok(Value::Object(content))
}

pub async fn create_room(
    State(app): State<Arc<App>>,
    request: Ruma<create_room::Request>,
) -> Result<RumaResponse<create_room::Response>, MatrixError> {
    let creator = request.require_user()?.user_id.clone();
    let body = &request.body;
    let version = body.room_version.clone().unwrap_or_else(|| app.rt.config.roomserver.default_room_version.clone());
    if !SUPPORTED_ROOM_VERSIONS.contains(&version.as_str()) {
        return Err(unsupported_version(format!("This server does not support room version {version}")));
    }
    let public = match body.visibility {
        Visibility::Public => true,
        Visibility::Private => false,
        _ => return Err(MatrixError::invalid_param("visibility must be public or private")),
    };
    let preset = body.preset.clone().unwrap_or(if public { RoomPreset::PublicChat } else { RoomPreset::PrivateChat });
    let (join_rule, guest_access) = match preset {
        RoomPreset::PrivateChat | RoomPreset::TrustedPrivateChat => ("invite", "can_join"),
        RoomPreset::PublicChat => ("public", "forbidden"),
        _ => return Err(MatrixError::invalid_param("Unknown preset")),
    };
    let trusted = preset == RoomPreset::TrustedPrivateChat;
    if !body.invite_3pid.is_empty() {
        return Err(MatrixError::invalid_param("Third-party invites are not supported by this server"));
    }
    let mut initial_state = parse_initial_state(&body.initial_state)?;
    let alias = body.room_alias_name.as_deref().map(|name| alias_for(&app, name)).transpose()?;
    if let Some(alias) = &alias {
        check_alias_free(&app, alias).await?;
    }
    let mut invites: Vec<OwnedUserId> = Vec::new();
    for user in &body.invite {
        if *user != creator && !invites.contains(user) {
            invites.push(user.clone());
        }
    }

    let mut room = NewRoom::new(&version, new_room_id(&app, &version)?)?;
    let rules = room.rules().clone();
    let privileged_creators = rules.authorization.explicitly_privilege_room_creators;

    // 1. The create event; trusted invitees are creators where the version has more than one.
    let extra_creators = if trusted && rules.authorization.additional_room_creators { &invites[..] } else { &[] };
    let creation_content = match &body.creation_content {
        Some(raw) => serde_json::from_str(raw.json().get())
            .map_err(|_| MatrixError::bad_json("creation_content must be an object"))?,
        None => Map::new(),
    };
    let content = create_content(creation_content, &creator, &version, &rules, extra_creators)?;
    room.push(&app, state_event(&creator, "m.room.create", "", content))?;
    let room_id = room.room_id().ok_or_else(|| MatrixError::internal("no room id after the create event"))?.to_owned();

    // 2. The creator joins.
    room.push(&app, state_event(&creator, "m.room.member", creator.as_str(), own_join_content(&app, &creator).await?))?;

    // 3. Power levels: an initial_state one replaces the defaults, the override goes on top.
    let mut levels = default_power_levels(&creator, &rules, join_rule == "public");
    if let Some(i) = initial_state.iter().position(|e| e.event_type == "m.room.power_levels" && e.state_key.is_empty())
    {
        let given = initial_state.remove(i);
        levels = given.content.as_object().cloned().unwrap_or_default();
    }
    if trusted && !privileged_creators {
        let users = levels.entry("users").or_insert_with(|| json!({}));
        let creator_level = users.get(creator.as_str()).cloned().unwrap_or(json!(100));
        if let Some(users) = users.as_object_mut() {
            for invitee in &invites {
                users.insert(invitee.to_string(), creator_level.clone());
            }
        }
    }
    if let Some(overrides) = &body.power_level_content_override {
        let overrides: Map<String, Value> = serde_json::from_str(overrides.json().get())
            .map_err(|_| MatrixError::bad_json("power_level_content_override must be an object"))?;
        levels.extend(overrides);
    }
    room.push(&app, state_event(&creator, "m.room.power_levels", "", Value::Object(levels)))?;

    // 4. The canonical alias.
    if let Some(alias) = &alias {
        room.push(&app, state_event(&creator, "m.room.canonical_alias", "", json!({"alias": alias})))?;
    }

    // 5. The preset's events, unless initial_state sets them (it takes precedence).
    let preset_events = [
        ("m.room.join_rules", json!({"join_rule": join_rule})),
        ("m.room.history_visibility", json!({"history_visibility": "shared"})),
        ("m.room.guest_access", json!({"guest_access": guest_access})),
    ];
    for (event_type, content) in preset_events {
        if !initial_state.iter().any(|e| e.event_type == event_type && e.state_key.is_empty()) {
            room.push(&app, state_event(&creator, event_type, "", content))?;
        }
    }

    // 6. initial_state, in order.
    for event in initial_state {
        room.push(&app, state_event(&creator, &event.event_type, &event.state_key, event.content))?;
    }

    // 7. Name and topic.
    if let Some(name) = &body.name {
        room.push(&app, state_event(&creator, "m.room.name", "", json!({"name": name})))?;
    }
    if let Some(topic) = &body.topic {
        let content = json!({
            "topic": topic,
            "m.topic": {"m.text": [{"body": topic, "mimetype": "text/plain"}]},
        });
        room.push(&app, state_event(&creator, "m.room.topic", "", content))?;
    }

    // 8. Invites.
    for invitee in &invites {
        let mut content = json!({"membership": "invite"});
        if body.is_direct {
            content["is_direct"] = true.into();
        }
        room.push(&app, state_event(&creator, "m.room.member", invitee.as_str(), content))?;
    }

    if let Some(alias) = &alias {
        set_alias(&app, alias, &room_id, &creator).await?;
    }
    if let Err(e) = room.publish(&app).await {
        if let Some(alias) = &alias {
            remove_alias(&app, alias).await;
        }
        return Err(e);
    }
    if public {
        app.rt.bus.call::<SetRoomVisibility>(&SetRoomVisibilityRequest { room_id: room_id.clone(), public }).await?;
    }
    Ok(RumaResponse(create_room::Response::new(room_id)))
}
