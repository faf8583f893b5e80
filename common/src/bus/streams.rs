//! Every JetStream stream of the homeserver, in one table.

use std::time::Duration;

use async_nats::jetstream::stream::{Config, DiscardPolicy, RetentionPolicy, StorageType};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stream {
    /// Events for the roomserver to authorise and store; partitioned by room.
    InputRoomEvent,
    /// What the roomserver decided: new events and the state they change.
    OutputRoomEvent,
    /// Account data changes, for sync.
    OutputClientData,
    OutputReceiptEvent,
    OutputTypingEvent,
    OutputSendToDeviceEvent,
    /// Device list and cross-signing key changes.
    OutputKeyChangeEvent,
    /// Unread notification counts, for sync.
    OutputNotificationData,
    OutputPresenceEvent,
    /// Display name and avatar changes, for member events and the user directory.
    OutputProfileUpdate,
}

/// How long a repeated `Nats-Msg-Id` is recognised and dropped.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

const DAY: Duration = Duration::from_secs(24 * 3600);

impl Stream {
    pub const ALL: [Stream; 10] = [
        Stream::InputRoomEvent,
        Stream::OutputRoomEvent,
        Stream::OutputClientData,
        Stream::OutputReceiptEvent,
        Stream::OutputTypingEvent,
        Stream::OutputSendToDeviceEvent,
        Stream::OutputKeyChangeEvent,
        Stream::OutputNotificationData,
        Stream::OutputPresenceEvent,
        Stream::OutputProfileUpdate,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stream::InputRoomEvent => "InputRoomEvent",
            Stream::OutputRoomEvent => "OutputRoomEvent",
            Stream::OutputClientData => "OutputClientData",
            Stream::OutputReceiptEvent => "OutputReceiptEvent",
            Stream::OutputTypingEvent => "OutputTypingEvent",
            Stream::OutputSendToDeviceEvent => "OutputSendToDeviceEvent",
            Stream::OutputKeyChangeEvent => "OutputKeyChangeEvent",
            Stream::OutputNotificationData => "OutputNotificationData",
            Stream::OutputPresenceEvent => "OutputPresenceEvent",
            Stream::OutputProfileUpdate => "OutputProfileUpdate",
        }
    }

    /// Whether messages go to `<subject>.<partition>` by a hash of their routing key.
    pub fn partitioned(self) -> bool {
        self == Stream::InputRoomEvent
    }

    /// How long messages stay for consumers that have not read them yet.
    fn max_age(self) -> Duration {
        match self {
            // A work queue: messages leave once the roomserver acks them.
            Stream::InputRoomEvent => Duration::ZERO,
            // Typing notifications are worthless after a minute.
            Stream::OutputTypingEvent => Duration::from_secs(60),
            Stream::OutputPresenceEvent => DAY,
            _ => 30 * DAY,
        }
    }

    /// The JetStream configuration of this stream under a deployment's prefix.
    pub(crate) fn config(self, prefix: &str) -> Config {
        let base = format!("{prefix}.{}", self.name());
        Config {
            name: format!("{prefix}_{}", self.name()),
            subjects: vec![base.clone(), format!("{base}.*")],
            retention: if self == Stream::InputRoomEvent {
                RetentionPolicy::WorkQueue
            } else {
                RetentionPolicy::Limits
            },
            max_age: self.max_age(),
            storage: StorageType::File,
            discard: DiscardPolicy::Old,
            // At most the message lifetime; JetStream refuses more.
            duplicate_window: match self.max_age() {
                Duration::ZERO => DUPLICATE_WINDOW,
                age => age.min(DUPLICATE_WINDOW),
            },
            ..Default::default()
        }
    }
}
