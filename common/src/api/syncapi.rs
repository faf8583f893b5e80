//! Ephemeral facts for syncapi, published by clientapi (local users) and
//! federationreceiver (EDUs from other servers).

use ruma::{OwnedDeviceId, OwnedEventId, OwnedRoomId, OwnedUserId, presence::PresenceState};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::bus::{Stream, StreamMessage};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OutputReceiptEvent {
    pub room_id: OwnedRoomId,
    pub user_id: OwnedUserId,
    pub event_id: OwnedEventId,
    /// `m.read`, `m.read.private`.
    pub receipt_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
    pub ts: u64,
}

impl StreamMessage for OutputReceiptEvent {
    const STREAM: Stream = Stream::OutputReceiptEvent;

    fn msg_id(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}",
            self.room_id,
            self.user_id,
            self.receipt_type,
            self.thread_id.as_deref().unwrap_or("main"),
            self.event_id
        )
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OutputTypingEvent {
    pub room_id: OwnedRoomId,
    pub user_id: OwnedUserId,
    pub typing: bool,
    /// Milliseconds since the epoch after which `typing` lapses.
    pub expires_ts: u64,
}

impl StreamMessage for OutputTypingEvent {
    const STREAM: Stream = Stream::OutputTypingEvent;

    fn msg_id(&self) -> String {
        format!("{}|{}|{}|{}", self.room_id, self.user_id, self.typing, self.expires_ts)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OutputSendToDeviceEvent {
    pub sender: OwnedUserId,
    pub user_id: OwnedUserId,
    /// `None`: every device of the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<OwnedDeviceId>,
    pub event_type: String,
    pub content: Box<RawValue>,
    /// Unique per message: the sender's transaction or the remote message id.
    pub message_id: String,
}

impl StreamMessage for OutputSendToDeviceEvent {
    const STREAM: Stream = Stream::OutputSendToDeviceEvent;

    fn msg_id(&self) -> String {
        format!("{}|{}|{:?}|{}", self.sender, self.user_id, self.device_id, self.message_id)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OutputPresenceEvent {
    pub user_id: OwnedUserId,
    pub presence: PresenceState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_msg: Option<String>,
    pub last_active_ts: u64,
    pub currently_active: bool,
}

impl StreamMessage for OutputPresenceEvent {
    const STREAM: Stream = Stream::OutputPresenceEvent;

    fn msg_id(&self) -> String {
        format!("{}|{}|{}", self.user_id, self.presence, self.last_active_ts)
    }
}
