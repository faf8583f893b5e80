//! Working out a sync response: from the positions in the client's token to
//! the latest ones, each kind of data read for what changed in between only.

mod rooms;
mod state;

use common::api::userapi::{QueryAccountData, QueryAccountDataRequest};
use ruma::{OwnedDeviceId, OwnedUserId, api::client::filter::FilterDefinition};
use serde_json::{Map, Value, json};

use crate::{App, filter, storage::Positions, token::Token};

/// To-device messages per response at most; the rest come in the next one.
const TO_DEVICE_LIMIT: i64 = 100;

pub struct Request {
    pub user_id: OwnedUserId,
    pub device_id: OwnedDeviceId,
    pub since: Option<Token>,
    pub filter: FilterDefinition,
    pub full_state: bool,
    /// Give the state at the end of the timeline (`state_after`) instead of at its start.
    pub use_state_after: bool,
}

impl Request {
    fn since_positions(&self) -> Positions {
        self.since.map(|t| t.positions).unwrap_or_default()
    }
}

#[derive(Default)]
pub struct Response {
    next_batch: String,
    join: Map<String, Value>,
    invite: Map<String, Value>,
    knock: Map<String, Value>,
    leave: Map<String, Value>,
    account_data: Vec<Value>,
    presence: Vec<Value>,
    to_device: Vec<Value>,
}

impl Response {
    /// Nothing new for the client: a long-poll keeps waiting.
    pub fn is_empty(&self) -> bool {
        self.join.is_empty()
            && self.invite.is_empty()
            && self.knock.is_empty()
            && self.leave.is_empty()
            && self.account_data.is_empty()
            && self.presence.is_empty()
            && self.to_device.is_empty()
    }

    pub fn into_json(self) -> Value {
        json!({
            "next_batch": self.next_batch,
            "rooms": { "join": self.join, "invite": self.invite, "knock": self.knock, "leave": self.leave },
            "account_data": { "events": self.account_data },
            "presence": { "events": self.presence },
            "to_device": { "events": self.to_device },
            "device_lists": { "changed": [], "left": [] },
            // Until end-to-end encryption lands: no keys uploaded.
            "device_one_time_keys_count": { "signed_curve25519": 0 },
            "device_unused_fallback_key_types": [],
        })
    }
}

pub async fn respond(app: &App, request: &Request) -> anyhow::Result<Response> {
    let to = app.store.positions().await?;
    let since = request.since_positions();
    let ignored = ignored_users(app, request).await?;
    let mut response = Response::default();
    rooms::add_rooms(app, request, &since, &to, &ignored, &mut response).await?;
    add_account_data(app, request, &since, &to, &mut response).await?;
    let to_device_pos = add_to_device(app, request, &since, &to, &mut response).await?;
    let since_presence = request.since.map(|t| t.presence).unwrap_or_default();
    let (presence, presence_pos) =
        crate::presence::changes_since(&app.store.db, since_presence, &request.user_id).await?;
    response.presence = presence
        .into_iter()
        .filter(|p| filter::allows(&request.filter.presence, "m.presence", p["sender"].as_str().unwrap_or_default()))
        .collect();
    let next = Token { positions: Positions { to_device: to_device_pos, ..to }, presence: presence_pos };
    response.next_batch = next.to_string();
    Ok(response)
}

/// The users on the syncing user's `m.ignored_user_list`.
async fn ignored_users(app: &App, request: &Request) -> anyhow::Result<Vec<String>> {
    let content = account_data(app, &request.user_id, None, "m.ignored_user_list").await?;
    Ok(content
        .and_then(|c| c.get("ignored_users").and_then(Value::as_object).map(|m| m.keys().cloned().collect()))
        .unwrap_or_default())
}

/// One account data entry's content, from userapi (which owns it).
async fn account_data(
    app: &App,
    user_id: &OwnedUserId,
    room_id: Option<&str>,
    data_type: &str,
) -> anyhow::Result<Option<Value>> {
    let request = QueryAccountDataRequest {
        user_id: user_id.clone(),
        room_id: room_id.map(|r| r.try_into()).transpose()?,
        data_type: data_type.to_owned(),
    };
    match app.rt.bus.call::<QueryAccountData>(&request).await {
        Ok(raw) => Ok(Some(serde_json::from_str(raw.get())?)),
        Err(common::bus::RpcError::Remote(e)) if e.kind == common::bus::RemoteErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

async fn add_account_data(
    app: &App,
    request: &Request,
    since: &Positions,
    to: &Positions,
    response: &mut Response,
) -> anyhow::Result<()> {
    let changes = app.store.account_data_changes(request.user_id.as_str(), since.account_data, to.account_data).await?;
    let global: Vec<&String> =
        changes.iter().filter(|(room, _)| room.is_empty()).map(|(_, data_type)| data_type).collect();
    for data_type in &global {
        if !filter::allows(&request.filter.account_data, data_type, request.user_id.as_str()) {
            continue;
        }
        if let Some(content) = account_data(app, &request.user_id, None, data_type).await? {
            response.account_data.push(json!({ "type": data_type, "content": content }));
        }
    }
    // Every account has push rules: the defaults until it changes them.
    let push_rules = "m.push_rules";
    if request.since.is_none()
        && !global.iter().any(|t| *t == push_rules)
        && filter::allows(&request.filter.account_data, push_rules, request.user_id.as_str())
    {
        let content = common::push::default_push_rules(&request.user_id);
        response.account_data.push(json!({ "type": push_rules, "content": content }));
    }
    Ok(())
}

/// Adds the device's waiting messages; returns the to-device position the
/// next token carries (short of the latest when more are waiting).
async fn add_to_device(
    app: &App,
    request: &Request,
    since: &Positions,
    to: &Positions,
    response: &mut Response,
) -> anyhow::Result<i64> {
    let messages = app
        .store
        .to_device(request.user_id.as_str(), request.device_id.as_str(), since.to_device, to.to_device, TO_DEVICE_LIMIT)
        .await?;
    let next = if (messages.len() as i64) < TO_DEVICE_LIMIT {
        to.to_device
    } else {
        messages.last().map_or(to.to_device, |m| m.pos)
    };
    for message in messages {
        let content: Value = serde_json::from_str(&message.content)?;
        response.to_device.push(json!({ "sender": message.sender, "type": message.event_type, "content": content }));
    }
    Ok(next)
}
