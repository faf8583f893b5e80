//! What the roomserver tells the other components about an accepted event.

use std::collections::HashMap;

use common::{
    api::roomserver::{
        InputKind, InputRoomEvent, NewInviteEvent, NewRoomEvent, OutputRoomEvent, RedactedEvent, RetireInviteEvent,
    },
    pdu::Pdu,
};
use ruma::{
    OwnedEventId, RoomId, ServerName, UserId,
    events::{StateEventType, TimelineEventType},
    room_version_rules::RoomVersionRules,
    state_res::Event,
};
use serde_json::{json, value::RawValue};
use sqlx::AnyConnection;

use crate::storage::{EventStatus, Room, StateMap, Store};

pub struct NewEventContext<'a> {
    pub msg: &'a InputRoomEvent,
    pub pdu: &'a Pdu,
    pub room: &'a Room,
    pub adds: &'a [OwnedEventId],
    pub removes: &'a [OwnedEventId],
}

pub async fn for_new_event(
    store: &Store,
    server_name: &ServerName,
    context: NewEventContext<'_>,
    new_current: &StateMap,
) -> anyhow::Result<Vec<OutputRoomEvent>> {
    let NewEventContext { msg, pdu, room, adds, removes } = context;
    let mut outputs = vec![OutputRoomEvent::NewRoomEvent(NewRoomEvent {
        event_id: pdu.owned_id(),
        room_id: msg.room_id.clone(),
        room_version: msg.room_version.clone(),
        event: pdu.to_raw(),
        kind: InputKind::New,
        adds_state_event_ids: adds.to_vec(),
        removes_state_event_ids: removes.to_vec(),
        latest_event_ids: room.latest_event_ids.clone(),
        stream_ordering: room.last_stream_ordering,
        transaction: msg.transaction.clone(),
    })];

    let changed: Vec<OwnedEventId> = adds.iter().chain(removes).cloned().collect();
    let pdus = store.pdus(&changed, pdu).await?;
    let members = |ids: &[OwnedEventId]| -> Vec<Pdu> {
        ids.iter()
            .filter_map(|id| pdus.get(id))
            .filter(|p| *p.kind() == TimelineEventType::RoomMember)
            .filter(|p| {
                p.key().and_then(|k| <&UserId>::try_from(k).ok()).is_some_and(|u| u.server_name() == server_name)
            })
            .cloned()
            .collect()
    };
    let added_members = members(adds);
    for invite in added_members.iter().filter(|p| p.content_str("membership").as_deref() == Some("invite")) {
        let target = invite.key().and_then(|k| UserId::parse(k).ok()).expect("a local member key is a user id");
        outputs.push(OutputRoomEvent::NewInviteEvent(NewInviteEvent {
            event_id: invite.owned_id(),
            room_id: msg.room_id.clone(),
            room_version: msg.room_version.clone(),
            target_user_id: target,
            event: invite.to_raw(),
            invite_room_state: stripped_state(store, new_current, invite).await?,
        }));
    }
    for old in members(removes).iter().filter(|p| p.content_str("membership").as_deref() == Some("invite")) {
        let Some(replacement) = added_members.iter().find(|p| p.key() == old.key()) else { continue };
        outputs.push(OutputRoomEvent::RetireInviteEvent(RetireInviteEvent {
            invite_event_id: old.owned_id(),
            room_id: msg.room_id.clone(),
            target_user_id: UserId::parse(old.key().unwrap_or_default())?,
            retired_by_event_id: replacement.owned_id(),
            membership: replacement.content_str("membership").unwrap_or_default(),
            outside: None,
        }));
    }
    Ok(outputs)
}

/// Stripped state events (type, state_key, content, sender) for an invitee.
async fn stripped_state(store: &Store, state: &StateMap, invite: &Pdu) -> anyhow::Result<Vec<Box<RawValue>>> {
    let mut ids: Vec<OwnedEventId> = common::pdu::STRIPPED_STATE_TYPES
        .iter()
        .filter_map(|t| state.get(&(StateEventType::from(*t), String::new())).cloned())
        .collect();
    if let Some(inviter) = state.get(&(StateEventType::RoomMember, invite.sender().to_string())) {
        ids.push(inviter.clone());
    }
    let pdus = store.pdus(&ids, invite).await?;
    ids.iter()
        .filter_map(|id| pdus.get(id))
        .map(|p| {
            let content: serde_json::Value = serde_json::from_str(p.content_json().get())?;
            Ok(serde_json::value::to_raw_value(&json!({
                "type": p.kind(),
                "state_key": p.key().unwrap_or_default(),
                "content": content,
                "sender": p.sender(),
            }))?)
        })
        .collect()
}

pub fn historical(msg: &InputRoomEvent, pdu: &Pdu) -> OutputRoomEvent {
    OutputRoomEvent::NewRoomEvent(NewRoomEvent {
        event_id: pdu.owned_id(),
        room_id: msg.room_id.clone(),
        room_version: msg.room_version.clone(),
        event: pdu.to_raw(),
        kind: InputKind::Historical,
        adds_state_event_ids: Vec::new(),
        removes_state_event_ids: Vec::new(),
        latest_event_ids: Vec::new(),
        stream_ordering: 0,
        transaction: msg.transaction.clone(),
    })
}

/// Redactions the event takes part in, worked out before the transaction:
/// as a redaction of a known event, or as the target of redactions that
/// arrived before it.
#[derive(Default)]
pub struct RedactionPlan {
    /// (target, its pruned JSON, the redaction).
    apply: Vec<(OwnedEventId, String, Pdu)>,
    /// A redaction whose target is not known yet.
    pending: Option<OwnedEventId>,
    /// The event was the target of pending redactions.
    clear_pending: bool,
}

impl RedactionPlan {
    /// Whether the plan prunes `event_id` (an event whose redaction came first).
    pub fn prunes(&self, event_id: &ruma::EventId) -> bool {
        self.apply.iter().any(|(target, _, _)| target == event_id)
    }
}

pub async fn plan_redactions(
    store: &Store,
    rules: &RoomVersionRules,
    pdu: &Pdu,
    room_id: &RoomId,
) -> anyhow::Result<RedactionPlan> {
    let mut plan = RedactionPlan::default();
    if *pdu.kind() == TimelineEventType::RoomRedaction
        && let Some(target_id) = pdu.redacted_id()
    {
        match store.events.get(target_id).await? {
            Some(target) if target.room_id == room_id && !target.redacted => {
                if let Some(pruned) = prune_if_allowed(store, rules, pdu, &target.pdu, room_id).await? {
                    plan.apply.push((target.pdu.owned_id(), pruned, pdu.clone()));
                }
            }
            Some(_) => {}
            None => plan.pending = Some(target_id.to_owned()),
        }
    }
    let pending: Vec<String> = sqlx::query_scalar(
        "SELECT redaction_id FROM roomserver_pending_redactions WHERE redacts = $1 AND room_id = $2",
    )
    .bind(pdu.id().as_str())
    .bind(room_id.as_str())
    .fetch_all(store.db.pool())
    .await?;
    if !pending.is_empty() {
        plan.clear_pending = true;
        let ids: Vec<OwnedEventId> = pending.iter().filter_map(|id| id.as_str().try_into().ok()).collect();
        let redactions = store.events.get_many(&ids).await?;
        for redaction in redactions.values().filter(|r| r.status == EventStatus::Accepted) {
            if let Some(pruned) = prune_if_allowed(store, rules, &redaction.pdu, pdu, room_id).await? {
                plan.apply.push((pdu.owned_id(), pruned, redaction.pdu.clone()));
                break;
            }
        }
    }
    Ok(plan)
}

pub async fn apply_redactions(
    store: &Store,
    tx: &mut AnyConnection,
    room_id: &RoomId,
    pdu: &Pdu,
    plan: RedactionPlan,
) -> anyhow::Result<Vec<OutputRoomEvent>> {
    if let Some(target) = &plan.pending {
        sqlx::query(
            "INSERT INTO roomserver_pending_redactions (redaction_id, redacts, room_id) VALUES ($1, $2, $3)
             ON CONFLICT (redaction_id) DO NOTHING",
        )
        .bind(pdu.id().as_str())
        .bind(target.as_str())
        .bind(room_id.as_str())
        .execute(&mut *tx)
        .await?;
    }
    if plan.clear_pending {
        sqlx::query("DELETE FROM roomserver_pending_redactions WHERE redacts = $1")
            .bind(pdu.id().as_str())
            .execute(&mut *tx)
            .await?;
    }
    let mut outputs = Vec::new();
    for (target, pruned, redaction) in plan.apply {
        store.events.mark_redacted(tx, &target, &pruned).await?;
        outputs.push(OutputRoomEvent::RedactedEvent(RedactedEvent {
            room_id: room_id.to_owned(),
            redacted_event_id: target,
            redaction_event_id: redaction.owned_id(),
            redaction_event: redaction.to_raw(),
        }));
    }
    Ok(outputs)
}

/// `target` pruned when `redaction` may redact it: the same server sent
/// both, or the redaction's sender has the power to redact others' events.
async fn prune_if_allowed(
    store: &Store,
    rules: &RoomVersionRules,
    redaction: &Pdu,
    target: &Pdu,
    room_id: &RoomId,
) -> anyhow::Result<Option<String>> {
    let same_server = redaction.sender().server_name() == target.sender().server_name();
    if !same_server && !may_redact_others(store, rules, redaction.sender(), room_id).await? {
        return Ok(None);
    }
    let object: ruma::CanonicalJsonObject = serde_json::from_str(target.json().get())?;
    let pruned = ruma::canonical_json::redact(object, &rules.redaction, None)?;
    Ok(Some(serde_json::to_string(&pruned)?))
}

/// Whether `sender`'s power in the room's current state reaches the level
/// needed to redact other users' events.
async fn may_redact_others(
    store: &Store,
    rules: &RoomVersionRules,
    sender: &UserId,
    room_id: &RoomId,
) -> anyhow::Result<bool> {
    let Some(snapshot) = store.rooms.get(room_id).await?.and_then(|room| room.current_state) else {
        return Ok(false);
    };
    let state = store.snapshots.load(snapshot).await?;
    let keys = [StateEventType::RoomCreate, StateEventType::RoomPowerLevels];
    let ids: Vec<OwnedEventId> = keys.iter().filter_map(|t| state.get(&(t.clone(), String::new())).cloned()).collect();
    let events: HashMap<OwnedEventId, _> = store.events.get_many(&ids).await?;
    let content_of = |t: &StateEventType| -> Option<serde_json::Value> {
        let id = state.get(&(t.clone(), String::new()))?;
        serde_json::from_str(events.get(id)?.pdu.content_json().get()).ok()
    };
    let create = state.get(&(StateEventType::RoomCreate, String::new())).and_then(|id| events.get(id));
    if rules.authorization.explicitly_privilege_room_creators
        && let Some(create) = create
    {
        let additional = content_of(&StateEventType::RoomCreate)
            .and_then(|c| c.get("additional_creators").cloned())
            .and_then(|v| serde_json::from_value::<Vec<String>>(v).ok())
            .unwrap_or_default();
        if create.pdu.sender() == sender || additional.iter().any(|c| c == sender.as_str()) {
            return Ok(true);
        }
    }
    let Some(levels) = content_of(&StateEventType::RoomPowerLevels) else {
        // Without power levels only the creator has power (100 against the default 50).
        return Ok(create.is_some_and(|c| c.pdu.sender() == sender));
    };
    let level = |v: Option<&serde_json::Value>, default: i64| -> i64 {
        match v {
            Some(serde_json::Value::Number(n)) => n.as_i64().unwrap_or(default),
            Some(serde_json::Value::String(s)) => s.trim().parse().unwrap_or(default),
            _ => default,
        }
    };
    let user_level =
        level(levels.get("users").and_then(|u| u.get(sender.as_str())), level(levels.get("users_default"), 0));
    Ok(user_level >= level(levels.get("redact"), 50))
}
