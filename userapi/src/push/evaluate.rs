//! Runs each new room event through the push rules of the room's local
//! members.

use std::collections::BTreeMap;

use common::{
    api::roomserver::{
        InputKind, NewRoomEvent, OutputRoomEvent, QueryCurrentState, QueryCurrentStateRequest, QueryEvents,
        QueryEventsRequest, QueryMembers, QueryMembersRequest, RedactedEvent, StateFilter, StoredEvent,
    },
    bus::{HandlerError, RemoteErrorKind, RpcError},
    storage::now_ms,
};
use ruma::{
    Int, OwnedUserId, UInt, UserId,
    events::StateEventType,
    power_levels::NotificationPowerLevels,
    push::{Action, PushConditionPowerLevelsCtx, PushConditionRoomCtx, Ruleset},
    room_version_rules::RoomPowerLevelsRules,
    serde::Raw,
};
use serde_json::{Map, Value, json};
use sqlx::AnyConnection;

use super::Push;

pub(super) async fn handle(push: Push, msg: OutputRoomEvent) -> Result<(), HandlerError> {
    match msg {
        OutputRoomEvent::NewRoomEvent(new) if new.kind == InputKind::New => {
            let own_membership = own_membership_change(&new);
            evaluate(&push, new).await?;
            // Joining or leaving a room is reading it up to there: the invite
            // that notified the user no longer counts as unread.
            match own_membership {
                Some((user_id, room_id, event_id)) if user_id.server_name() == push.state.config.global.server_name => {
                    super::receipts::mark_read(&push, &user_id, &room_id, &event_id, None).await
                }
                _ => Ok(()),
            }
        }
        OutputRoomEvent::RedactedEvent(redacted) => redact(&push, redacted).await,
        _ => Ok(()),
    }
}

/// (user, room, event) when the event is a user's own member event.
fn own_membership_change(new: &NewRoomEvent) -> Option<(OwnedUserId, ruma::OwnedRoomId, ruma::OwnedEventId)> {
    let event: Value = serde_json::from_str(new.event.get()).ok()?;
    let sender = event["sender"].as_str()?;
    (event["type"] == "m.room.member" && event["state_key"].as_str() == Some(sender))
        .then(|| Some((UserId::parse(sender).ok()?, new.room_id.clone(), new.event_id.clone())))
        .flatten()
}

/// `GET /notifications` shows a redacted event pruned, as everywhere else.
async fn redact(push: &Push, msg: RedactedEvent) -> Result<(), HandlerError> {
    let pool = push.state.db.pool();
    let notified: Option<i64> = sqlx::query_scalar("SELECT id FROM userapi_notifications WHERE event_id = $1 LIMIT 1")
        .bind(msg.redacted_event_id.as_str())
        .fetch_optional(pool)
        .await
        .map_err(anyhow::Error::from)?;
    if notified.is_none() {
        return Ok(());
    }
    let request = QueryEventsRequest { event_ids: vec![msg.redacted_event_id.clone()] };
    let found = push.state.bus.call::<QueryEvents>(&request).await.map_err(rpc_failed)?;
    let Some(pruned) = found.events.into_iter().next() else { return Ok(()) };
    sqlx::query("UPDATE userapi_notifications SET event = $1 WHERE event_id = $2")
        .bind(pruned.event.get())
        .bind(msg.redacted_event_id.as_str())
        .execute(pool)
        .await
        .map_err(anyhow::Error::from)?;
    Ok(())
}

/// Only a roomserver that could not answer is worth asking again: a refusal
/// (an unknown room) would hold up the ordered consumer for nothing.
fn rpc_failed(e: RpcError) -> HandlerError {
    match e {
        RpcError::Remote(remote) if remote.kind != RemoteErrorKind::Internal => {
            HandlerError::Reject(anyhow::Error::from(remote))
        }
        e => HandlerError::Retry(e.into()),
    }
}

/// A state event's content, parsed.
fn content(event: &StoredEvent) -> Value {
    serde_json::from_str::<Value>(event.event.get()).ok().map(|mut e| e["content"].take()).unwrap_or(Value::Null)
}

fn state_key(event: &StoredEvent) -> Option<String> {
    let parsed: Value = serde_json::from_str(event.event.get()).ok()?;
    parsed["state_key"].as_str().map(str::to_owned)
}

async fn evaluate(push: &Push, new: NewRoomEvent) -> Result<(), HandlerError> {
    let state = &push.state;
    let event: Value = serde_json::from_str(new.event.get()).map_err(|e| HandlerError::Reject(e.into()))?;
    let sender = event["sender"].as_str().unwrap_or_default().to_owned();
    // The roomserver is asked before the transaction begins, so that no
    // write lock waits on it.
    let members = state
        .bus
        .call::<QueryMembers>(&QueryMembersRequest {
            room_id: new.room_id.clone(),
            memberships: Some(vec!["join".to_owned()]),
            local_only: false,
        })
        .await
        .map_err(rpc_failed)?
        .state;
    let server_name = &state.config.global.server_name;
    let mut display_names: BTreeMap<String, Option<String>> = members
        .iter()
        .filter_map(|m| Some((state_key(m)?, content(m)["displayname"].as_str().map(str::to_owned))))
        .collect();
    // An invite is for the invitee, who is not joined yet (`.m.rule.invite_for_me`).
    if event["type"] == "m.room.member"
        && event["content"]["membership"] == "invite"
        && let Some(invitee) = event["state_key"].as_str()
    {
        let name = event["content"]["displayname"].as_str().map(str::to_owned);
        display_names.entry(invitee.to_owned()).or_insert(name);
    }
    let targets: Vec<OwnedUserId> = display_names
        .keys()
        .filter(|user| user.as_str() != sender)
        .filter_map(|user| UserId::parse(user.as_str()).ok())
        .filter(|user| user.server_name() == server_name)
        .collect();
    if targets.is_empty() {
        let mut tx = state.db.begin_write().await.map_err(anyhow::Error::from)?;
        record_ordering(&mut tx, &new).await?;
        tx.commit().await.map_err(anyhow::Error::from)?;
        return Ok(());
    }

    let room_state = state
        .bus
        .call::<QueryCurrentState>(&QueryCurrentStateRequest {
            room_id: new.room_id.clone(),
            filter: Some(
                [StateEventType::RoomPowerLevels, StateEventType::RoomCreate, StateEventType::RoomName]
                    .into_iter()
                    .map(|event_type| StateFilter { event_type, state_key: Some(String::new()) })
                    .collect(),
            ),
        })
        .await
        .map_err(rpc_failed)?
        .state;
    let of_type = |t: &str| {
        room_state.iter().find(|e| {
            serde_json::from_str::<Value>(e.event.get()).is_ok_and(|parsed| parsed["type"].as_str() == Some(t))
        })
    };
    let power_levels = power_levels_ctx(&new, of_type("m.room.power_levels"), of_type("m.room.create"));
    let room_name = of_type("m.room.name").and_then(|e| content(e)["name"].as_str().map(str::to_owned));
    let member_count = UInt::try_from(members.len() as u64).unwrap_or(UInt::MAX);
    let raw = Raw::<Value>::from_json(new.event.clone());
    let thread_id = match &event["content"]["m.relates_to"] {
        relates if relates["rel_type"] == "m.thread" => relates["event_id"].as_str().unwrap_or_default().to_owned(),
        _ => String::new(),
    };
    let event_type = event["type"].as_str().unwrap_or_default().to_owned();

    let mut tx = state.db.begin_write().await.map_err(anyhow::Error::from)?;
    record_ordering(&mut tx, &new).await?;
    let mut notified = false;
    for user_id in targets {
        let ruleset = ruleset(&mut tx, &user_id).await?;
        let display_name =
            display_names.get(user_id.as_str()).cloned().flatten().unwrap_or_else(|| user_id.localpart().to_owned());
        let mut ctx = PushConditionRoomCtx::new(new.room_id.clone(), member_count, user_id.clone(), display_name);
        if let Some(power_levels) = &power_levels {
            ctx = ctx.with_power_levels(power_levels.clone());
        }
        let actions = ruleset.get_actions(&raw, &ctx).await;
        if !actions.iter().any(Action::should_notify) {
            continue;
        }
        let highlight = actions.iter().any(Action::is_highlight);
        let actions_json = serde_json::to_value(actions).map_err(anyhow::Error::from)?;
        let inserted = sqlx::query(
            "INSERT INTO userapi_notifications (user_id, room_id, event_id, event_type, stream_ordering, thread_id,
                 event, actions, highlight, ts, is_read)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0) ON CONFLICT (user_id, event_id) DO NOTHING",
        )
        .bind(user_id.as_str())
        .bind(new.room_id.as_str())
        .bind(new.event_id.as_str())
        .bind(&event_type)
        .bind(new.stream_ordering)
        .bind(&thread_id)
        .bind(new.event.get())
        .bind(actions_json.to_string())
        .bind(i64::from(highlight))
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(anyhow::Error::from)?
        .rows_affected();
        if inserted == 0 {
            // Redelivered: this user's notification, counts and pushes are already in.
            continue;
        }
        super::announce_counts(&mut tx, &state.outbox, &user_id, &new.room_id).await?;

        let tweaks = tweaks(&actions_json);
        let urgent = highlight || tweaks.contains_key("sound") || event_type == "m.room.encrypted";
        let mut notification = json!({
            "event_id": new.event_id,
            "room_id": new.room_id,
            "type": event_type,
            "sender": sender,
            "content": event["content"],
            // What the user would notice (a sound, a highlight) or cannot be judged here (encrypted) is urgent.
            "prio": if urgent { "high" } else { "low" },
            "counts": counts(&mut tx, &user_id).await?,
        });
        if let Some(Some(name)) = display_names.get(&sender) {
            notification["sender_display_name"] = name.as_str().into();
        }
        if let Some(name) = &room_name {
            notification["room_name"] = name.as_str().into();
        }
        if event_type == "m.room.member" {
            notification["user_is_target"] = (event["state_key"] == user_id.as_str()).into();
        }
        let pushers: Vec<(String, String)> =
            sqlx::query_as("SELECT app_id, pushkey FROM userapi_pushers WHERE user_id = $1 AND kind = 'http'")
                .bind(user_id.as_str())
                .fetch_all(&mut *tx)
                .await
                .map_err(anyhow::Error::from)?;
        for (app_id, pushkey) in pushers {
            sqlx::query(
                "INSERT INTO userapi_push_queue (user_id, app_id, pushkey, notification, tweaks, attempts,
                     next_attempt_ts, created_ts) VALUES ($1, $2, $3, $4, $5, 0, $6, $6)",
            )
            .bind(user_id.as_str())
            .bind(&app_id)
            .bind(&pushkey)
            .bind(notification.to_string())
            .bind(Value::Object(tweaks.clone()).to_string())
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .map_err(anyhow::Error::from)?;
        }
        notified = true;
    }
    tx.commit().await.map_err(anyhow::Error::from)?;
    if notified {
        crate::publish_now(&state.outbox).await;
        push.queued.notify_one();
    }
    Ok(())
}

/// Remembers where the event stands, for receipts pointing at it.
async fn record_ordering(tx: &mut AnyConnection, new: &NewRoomEvent) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO userapi_event_orderings (event_id, room_id, stream_ordering) VALUES ($1, $2, $3)
         ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(new.event_id.as_str())
    .bind(new.room_id.as_str())
    .bind(new.stream_ordering)
    .execute(tx)
    .await?;
    Ok(())
}

/// The user's push rules: their `m.push_rules` account data, else the defaults.
async fn ruleset(tx: &mut AnyConnection, user_id: &UserId) -> anyhow::Result<Ruleset> {
    #[derive(serde::Deserialize)]
    struct PushRules {
        global: Ruleset,
    }
    let stored: Option<String> = sqlx::query_scalar(
        "SELECT content FROM userapi_account_data WHERE user_id = $1 AND room_id = '' AND data_type = 'm.push_rules'",
    )
    .bind(user_id.as_str())
    .fetch_optional(tx)
    .await?;
    Ok(stored.and_then(|content| serde_json::from_str::<PushRules>(&content).ok()).map_or_else(
        || common::push::server_default(user_id),
        |rules| common::push::with_current_defaults(rules.global, user_id),
    ))
}

/// `counts` of a push: the user's unread notifications across rooms.
async fn counts(tx: &mut AnyConnection, user_id: &UserId) -> anyhow::Result<Value> {
    let (unread, missed_calls): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COALESCE(SUM(CASE WHEN event_type = 'm.call.invite' THEN 1 ELSE 0 END), 0)
         FROM userapi_notifications WHERE user_id = $1 AND is_read = 0",
    )
    .bind(user_id.as_str())
    .fetch_one(tx)
    .await?;
    Ok(json!({ "unread": unread, "missed_calls": missed_calls }))
}

/// The `set_tweak` actions as the gateway's `tweaks` object.
fn tweaks(actions: &Value) -> Map<String, Value> {
    actions
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|action| {
            let name = action["set_tweak"].as_str()?;
            Some((name.to_owned(), action.get("value").cloned().unwrap_or(Value::Bool(true))))
        })
        .collect()
}

/// What the sender-permission conditions (`@room`) need; `None` without power levels.
fn power_levels_ctx(
    new: &NewRoomEvent,
    power_levels: Option<&StoredEvent>,
    create: Option<&StoredEvent>,
) -> Option<PushConditionPowerLevelsCtx> {
    let content = content(power_levels?);
    let level = |v: &Value| -> Option<Int> {
        v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok())).and_then(|n| Int::try_from(n).ok())
    };
    let users = content["users"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(user, v)| Some((UserId::parse(user.as_str()).ok()?, level(v)?)))
        .collect();
    let users_default = level(&content["users_default"]).unwrap_or_default();
    let notifications: NotificationPowerLevels =
        serde_json::from_value(content["notifications"].clone()).unwrap_or_else(|_| NotificationPowerLevels::new());
    let authorization = new.room_version.rules()?.authorization;
    let creators = create
        .and_then(|create| {
            let parsed: Value = serde_json::from_str(create.event.get()).ok()?;
            let mut creators: Vec<OwnedUserId> =
                parsed["sender"].as_str().and_then(|s| UserId::parse(s).ok()).into_iter().collect();
            creators.extend(
                parsed["content"]["additional_creators"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| UserId::parse(v.as_str()?).ok()),
            );
            Some(creators)
        })
        .unwrap_or_default();
    let rules = RoomPowerLevelsRules::new(&authorization, creators);
    Some(PushConditionPowerLevelsCtx::new(users, users_default, notifications, rules))
}
