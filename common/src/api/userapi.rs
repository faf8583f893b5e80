//! Facts userapi publishes: account data, device key changes, unread counts.

use ruma::{OwnedRoomId, OwnedUserId};
use serde::{Deserialize, Serialize};

use crate::bus::{Stream, StreamMessage};

/// A user's account data changed (global when `room_id` is absent).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OutputClientData {
    pub user_id: OwnedUserId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_id: Option<OwnedRoomId>,
    pub data_type: String,
    /// userapi's position for this change; unique per user.
    pub stream_pos: i64,
}

impl StreamMessage for OutputClientData {
    const STREAM: Stream = Stream::OutputClientData;

    fn msg_id(&self) -> String {
        format!("{}:{}", self.user_id, self.stream_pos)
    }
}

/// A user's device list or cross-signing keys changed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OutputKeyChangeEvent {
    pub user_id: OwnedUserId,
    pub change: KeyChange,
    /// userapi's position for this change; unique.
    pub stream_pos: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum KeyChange {
    DeviceKeys { device_id: ruma::OwnedDeviceId, deleted: bool },
    CrossSigningKeys,
}

impl StreamMessage for OutputKeyChangeEvent {
    const STREAM: Stream = Stream::OutputKeyChangeEvent;

    fn msg_id(&self) -> String {
        format!("keys:{}", self.stream_pos)
    }
}

/// A user's unread notification counts in a room changed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OutputNotificationData {
    pub user_id: OwnedUserId,
    pub room_id: OwnedRoomId,
    pub notification_count: u64,
    pub highlight_count: u64,
    /// userapi's position for this change; unique.
    pub stream_pos: i64,
}

impl StreamMessage for OutputNotificationData {
    const STREAM: Stream = Stream::OutputNotificationData;

    fn msg_id(&self) -> String {
        format!("notif:{}", self.stream_pos)
    }
}
