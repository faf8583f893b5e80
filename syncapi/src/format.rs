//! Room events as clients see them (the client-server "ClientEvent" format).

use serde_json::{Map, Value, json};

use crate::storage::RoomEvent;

/// A stored PDU in the client format; `room_id` left out where the response
/// names the room already (sync).
pub fn pdu_to_client(
    event_id: &str,
    room_id: &str,
    pdu_json: &str,
    with_room_id: bool,
) -> anyhow::Result<Map<String, Value>> {
    let raw = serde_json::value::RawValue::from_string(pdu_json.to_owned())?;
    let mut event = common::pdu::client_format(event_id.try_into()?, room_id.try_into()?, &raw)?;
    if !with_room_id {
        event.remove("room_id");
    }
    Ok(event)
}

/// A room event for `device` of its viewer: with its age, the transaction id
/// when that device sent it, and what redacted it.
pub fn client_event(event: &RoomEvent, device_id: Option<&str>, with_room_id: bool) -> anyhow::Result<Value> {
    let mut out = pdu_to_client(&event.event_id, &event.room_id, &event.json, with_room_id)?;
    let mut unsigned = match out.remove("unsigned") {
        Some(Value::Object(unsigned)) => unsigned,
        _ => Map::new(),
    };
    if let Some(ts) = out.get("origin_server_ts").and_then(Value::as_i64) {
        unsigned.insert("age".into(), json!((common::storage::now_ms() - ts).max(0)));
    }
    if let (Some(sent_by), Some(txn_id)) = (&event.txn_device, &event.txn_id)
        && device_id == Some(sent_by.as_str())
    {
        unsigned.insert("transaction_id".into(), json!(txn_id));
    }
    if let Some(redaction) = &event.redacted_because {
        let mut because: Map<String, Value> = serde_json::from_str(redaction)?;
        if !with_room_id {
            because.remove("room_id");
        }
        unsigned.insert("redacted_because".into(), Value::Object(because));
    }
    if !unsigned.is_empty() {
        out.insert("unsigned".into(), Value::Object(unsigned));
    }
    Ok(Value::Object(out))
}

/// A state event known only by its id and JSON (state sections).
pub fn state_event(event_id: &str, room_id: &str, json: &str, with_room_id: bool) -> anyhow::Result<Value> {
    Ok(Value::Object(pdu_to_client(event_id, room_id, json, with_room_id)?))
}
