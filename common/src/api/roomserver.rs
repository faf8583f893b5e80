//! The roomserver's contracts: events in (`InputRoomEvent`), decisions out
//! (`OutputRoomEvent`), and the questions it answers.

use ruma::{OwnedDeviceId, OwnedEventId, OwnedRoomId, OwnedServerName, OwnedTransactionId, RoomVersionId};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::bus::{Rpc, Stream, StreamMessage};

/// How the roomserver should treat an input event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputKind {
    /// A new event at the tip of the room.
    New,
    /// An event whose state is not known (auth chains, missing events).
    Outlier,
    /// An old event filling history (backfill).
    Historical,
}

/// A local client's transaction, echoed back to its device in sync.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientTransaction {
    pub device_id: OwnedDeviceId,
    pub txn_id: OwnedTransactionId,
}

/// An event for the roomserver to check and store. Published by clientapi
/// (local events) and federationreceiver (remote ones).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InputRoomEvent {
    pub kind: InputKind,
    pub room_id: OwnedRoomId,
    pub room_version: RoomVersionId,
    /// The id the publisher computed; the roomserver checks it against the event.
    pub event_id: OwnedEventId,
    /// The PDU as servers exchange it: hashed and signed.
    pub event: Box<RawValue>,
    /// The server that sent it to us (our own for local events).
    pub origin: OwnedServerName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction: Option<ClientTransaction>,
    /// A core NATS subject on which the publisher waits for [`InputVerdict`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
}

impl StreamMessage for InputRoomEvent {
    const STREAM: Stream = Stream::InputRoomEvent;

    fn msg_id(&self) -> String {
        format!("in:{}", self.event_id)
    }

    fn routing_key(&self) -> Option<&str> {
        Some(self.room_id.as_str())
    }
}

/// What the roomserver decided about an input event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum InputVerdict {
    Accepted { event_id: OwnedEventId },
    Rejected { event_id: OwnedEventId, reason: String },
}

/// What the roomserver emits for every event it accepts. Externally tagged:
/// an internally tagged enum cannot carry a `RawValue`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputRoomEvent {
    NewRoomEvent(NewRoomEvent),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NewRoomEvent {
    pub event_id: OwnedEventId,
    pub room_id: OwnedRoomId,
    pub room_version: RoomVersionId,
    pub event: Box<RawValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction: Option<ClientTransaction>,
}

impl StreamMessage for OutputRoomEvent {
    const STREAM: Stream = Stream::OutputRoomEvent;

    fn msg_id(&self) -> String {
        match self {
            OutputRoomEvent::NewRoomEvent(e) => format!("new:{}", e.event_id),
        }
    }
}

/// The room versions this server can join and create, all stable.
pub const SUPPORTED_ROOM_VERSIONS: &[&str] = &["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12"];

/// Events the roomserver has stored, by id; unknown ids are left out.
pub struct QueryEvents;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueryEventsRequest {
    pub event_ids: Vec<OwnedEventId>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueryEventsResponse {
    pub events: Vec<StoredEvent>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoredEvent {
    pub event_id: OwnedEventId,
    pub room_id: OwnedRoomId,
    pub event: Box<RawValue>,
}

impl Rpc for QueryEvents {
    const COMPONENT: &'static str = "roomserver";
    const METHOD: &'static str = "query_events";
    const RETRY: bool = true;
    type Request = QueryEventsRequest;
    type Response = QueryEventsResponse;
}
