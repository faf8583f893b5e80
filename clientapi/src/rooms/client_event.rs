//! Events as the client-server API shows them: the PDU without what only
//! servers need (hashes, signatures, auth and prev events, depth).

use common::api::roomserver::StoredEvent;
use serde_json::{Map, Value, value::RawValue};

use super::MatrixError;

/// The fields of a PDU a client sees.
const CLIENT_FIELDS: &[&str] =
    &["content", "event_id", "origin_server_ts", "room_id", "sender", "state_key", "type", "unsigned", "redacts"];

/// `event` in the client-server format.
pub(crate) fn client_event(event: &StoredEvent) -> Result<Box<RawValue>, MatrixError> {
    let pdu: Map<String, Value> = serde_json::from_str(event.event.get())
        .map_err(|e| MatrixError::internal(format!("a stored event is not an object: {e}")))?;
    let mut out: Map<String, Value> =
        pdu.into_iter().filter(|(key, _)| CLIENT_FIELDS.contains(&key.as_str())).collect();
    // Ids are computed from the content since room version 3, and a room
    // version 12 create event carries no room id.
    out.insert("event_id".into(), event.event_id.as_str().into());
    out.insert("room_id".into(), event.room_id.as_str().into());
    serde_json::value::to_raw_value(&out).map_err(MatrixError::internal)
}
