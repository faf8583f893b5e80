//! What the `/sync` scenarios share: sending events, syncing until syncapi
//! has seen an event (it consumes the roomserver's output asynchronously, so
//! a send's 200 does not mean a sync shows it yet), and reading responses.
#![allow(dead_code)]

use std::time::Duration;

use serde_json::{Value, json};
use tests::client::{Client, enc};

/// How long syncapi may take to show an event that was accepted.
const PATIENCE: Duration = Duration::from_secs(30);

pub async fn create_room(client: &Client, body: Value) -> String {
    let answer = client.post("/createRoom", body).await.expect(200);
    answer["room_id"].as_str().unwrap_or_else(|| panic!("a room id: {answer}")).to_owned()
}

fn txn() -> String {
    format!("t{:016x}", rand::random::<u64>())
}

pub async fn send(client: &Client, room_id: &str, event_type: &str, content: Value) -> String {
    let path = format!("/rooms/{}/send/{}/{}", enc(room_id), enc(event_type), txn());
    let answer = client.put(&path, content).await.expect(200);
    answer["event_id"].as_str().unwrap_or_else(|| panic!("an event id: {answer}")).to_owned()
}

pub async fn send_text(client: &Client, room_id: &str, body: &str) -> String {
    send(client, room_id, "m.room.message", json!({"msgtype": "m.text", "body": body})).await
}

pub async fn set_state(client: &Client, room_id: &str, event_type: &str, state_key: &str, content: Value) -> String {
    let path = format!("/rooms/{}/state/{}/{}", enc(room_id), enc(event_type), enc(state_key));
    let answer = client.put(&path, content).await.expect(200);
    answer["event_id"].as_str().unwrap_or_else(|| panic!("an event id: {answer}")).to_owned()
}

pub async fn join(client: &Client, room_id: &str) {
    client.post(&format!("/join/{}", enc(room_id)), json!({})).await.expect(200);
}

pub async fn invite(client: &Client, room_id: &str, user_id: &str) {
    client.post(&format!("/rooms/{}/invite", enc(room_id)), json!({"user_id": user_id})).await.expect(200);
}

pub async fn leave(client: &Client, room_id: &str) {
    client.post(&format!("/rooms/{}/leave", enc(room_id)), json!({})).await.expect(200);
}

/// The query value of an inline filter.
pub fn filter(definition: Value) -> String {
    enc(&definition.to_string())
}

/// `GET /sync?{query}`, which must succeed.
pub async fn sync(client: &Client, query: &str) -> Value {
    client.get(&format!("/sync?{query}")).await.expect(200)
}

pub fn next_batch(response: &Value) -> String {
    response["next_batch"].as_str().unwrap_or_else(|| panic!("a next_batch: {response}")).to_owned()
}

/// Every event id in any room's timeline of a response.
fn timeline_event_ids(response: &Value) -> Vec<String> {
    let mut ids = Vec::new();
    for section in ["join", "leave"] {
        if let Some(rooms) = response["rooms"][section].as_object() {
            for room in rooms.values() {
                ids.extend(ids_of(&room["timeline"]["events"]));
            }
        }
    }
    ids
}

/// Long-polls from `since` (an initial sync when None) until a response
/// satisfies `done`; returns that response. Panics after [`PATIENCE`].
pub async fn sync_until(client: &Client, since: Option<&str>, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    // A big timeline window, so that what we wait for is not cut off.
    let wide = filter(json!({"room": {"timeline": {"limit": 100}}}));
    let mut since = since.map(str::to_owned);
    loop {
        let query = match &since {
            Some(token) => format!("since={token}&timeout=5000&filter={wide}"),
            None => format!("filter={wide}"),
        };
        let response = sync(client, &query).await;
        if done(&response) {
            return response;
        }
        assert!(tokio::time::Instant::now() < deadline, "no sync satisfied the wait: last {response}");
        since = Some(next_batch(&response));
    }
}

/// The token of a sync that includes `event_id` (so: a token after it).
pub async fn token_after(client: &Client, since: Option<&str>, event_id: &str) -> String {
    next_batch(&sync_until(client, since, |r| timeline_event_ids(r).iter().any(|id| id == event_id)).await)
}

/// A token after everything the client can currently see has been processed:
/// sends a marker into `room_id` and waits for it.
pub async fn settled_token(client: &Client, since: Option<&str>, room_id: &str) -> String {
    let marker = send_text(client, room_id, "settle").await;
    token_after(client, since, &marker).await
}

pub fn ids_of(events: &Value) -> Vec<String> {
    events
        .as_array()
        .unwrap_or_else(|| panic!("an event list: {events}"))
        .iter()
        .map(|e| e["event_id"].as_str().unwrap_or_else(|| panic!("an event id: {e}")).to_owned())
        .collect()
}

pub fn timeline_ids(room: &Value) -> Vec<String> {
    ids_of(&room["timeline"]["events"])
}

pub fn state_ids(room: &Value) -> Vec<String> {
    ids_of(&room["state"]["events"])
}

pub fn bodies(room: &Value) -> Vec<String> {
    room["timeline"]["events"]
        .as_array()
        .unwrap_or_else(|| panic!("a timeline: {room}"))
        .iter()
        .filter_map(|e| e["content"]["body"].as_str().map(str::to_owned))
        .collect()
}

/// The events of a list with this type (and state key, when given); none
/// when the list is absent (a response without the room).
pub fn of_type<'a>(events: &'a Value, event_type: &str, state_key: Option<&str>) -> Vec<&'a Value> {
    if events.is_null() {
        return Vec::new();
    }
    events
        .as_array()
        .unwrap_or_else(|| panic!("an event list: {events}"))
        .iter()
        .filter(|e| e["type"] == event_type && state_key.is_none_or(|k| e["state_key"] == k))
        .collect()
}

pub fn sorted(mut list: Vec<String>) -> Vec<String> {
    list.sort();
    list
}

/// A response with the parts that depend on when it was made (`age`,
/// `last_active_ago`) taken out.
pub fn without_ages(mut value: Value) -> Value {
    fn strip(value: &mut Value) {
        match value {
            Value::Object(map) => {
                if let Some(Value::Object(unsigned)) = map.get_mut("unsigned") {
                    unsigned.remove("age");
                }
                map.remove("last_active_ago");
                map.values_mut().for_each(strip);
            }
            Value::Array(list) => list.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut value);
    value
}
