//! Events as a component would build them: hashed and signed with the
//! deployment's key.

use common::{
    api::roomserver::{InputKind, InputRoomEvent},
    keys::SigningKey,
};
use ruma::{CanonicalJsonObject, OwnedEventId, RoomVersionId};
use serde_json::json;

/// A signed `m.room.create` event of a new room, and its event id.
pub fn create_event(server_name: &str, key: &SigningKey) -> (OwnedEventId, ruma::OwnedRoomId, CanonicalJsonObject) {
    let room_id: ruma::OwnedRoomId =
        format!("!{:016x}:{server_name}", rand::random::<u64>()).try_into().expect("a room id");
    let (event_id, object) = event_in_room(server_name, key, &room_id, 0);
    (event_id, room_id, object)
}

/// The `n`th distinct signed event in a room, and its id.
pub fn event_in_room(
    server_name: &str,
    key: &SigningKey,
    room_id: &ruma::RoomId,
    n: u64,
) -> (OwnedEventId, CanonicalJsonObject) {
    let sender = format!("@creator:{server_name}");
    let event = json!({
        "type": "m.room.create",
        "state_key": "",
        "content": { "creator": sender, "room_version": "10" },
        "sender": sender,
        "room_id": room_id,
        "origin_server_ts": 1_700_000_000_000u64 + n,
        "depth": 1,
        "prev_events": [],
        "auth_events": [],
    });
    let mut object: CanonicalJsonObject = serde_json::from_value(event).expect("canonical JSON");
    let rules = RoomVersionId::V10.rules().expect("room version 10");
    ruma::signatures::hash_and_sign_event(server_name, key.pair(), &mut object, &rules.redaction)
        .expect("the event signs");
    let hash = ruma::signatures::reference_hash(&object, &rules).expect("a reference hash");
    (format!("${hash}").try_into().expect("an event id"), object)
}

/// The `InputRoomEvent` a local component would publish for an event.
pub fn input(
    server_name: &str,
    room_id: &ruma::RoomId,
    event_id: OwnedEventId,
    event: &CanonicalJsonObject,
) -> InputRoomEvent {
    InputRoomEvent {
        kind: InputKind::New,
        room_id: room_id.to_owned(),
        room_version: RoomVersionId::V10,
        event_id,
        event: serde_json::value::to_raw_value(event).expect("JSON"),
        origin: server_name.try_into().expect("a server name"),
        state_before: None,
        transaction: None,
        reply_to: None,
    }
}
