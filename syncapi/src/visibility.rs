//! Who may see which room events: `m.room.history_visibility` as it was when
//! each event arrived, and the user's membership then.

use crate::storage::{MembershipChange, RoomEvent, Store};

/// A user's membership history in one room, to judge many events with one query.
pub struct Viewer {
    user_id: String,
    history: Vec<MembershipChange>,
}

impl Viewer {
    pub async fn load(store: &Store, room_id: &str, user_id: &str) -> anyhow::Result<Viewer> {
        Ok(Viewer::new(user_id, store.room_membership_history(room_id, user_id, i64::MAX).await?))
    }

    /// The viewer with this membership history of the room (all of it, oldest first).
    pub fn new(user_id: &str, history: Vec<MembershipChange>) -> Viewer {
        Viewer { user_id: user_id.to_owned(), history }
    }

    /// The user's membership when the event at `pos` arrived.
    fn membership_at(&self, pos: i64) -> Option<&str> {
        self.history.iter().rev().find(|c| c.pos <= pos).map(|c| c.membership.as_str())
    }

    /// Whether the event at `pos` is in the user's part of the room: they were
    /// joined when it arrived, or their next change of membership was a join
    /// (the history before a join, which a sync shows the newly joined too).
    pub fn in_room_for(&self, pos: i64) -> bool {
        self.membership_at(pos) == Some("join")
            || self.history.iter().find(|c| c.pos > pos).is_some_and(|c| c.membership == "join")
    }

    pub fn may_see(&self, event: &RoomEvent) -> bool {
        // Users always see their own membership events.
        if event.event_type == "m.room.member" && event.state_key.as_deref() == Some(self.user_id.as_str()) {
            return true;
        }
        let then = self.membership_at(event.pos);
        match event.visibility.as_str() {
            "world_readable" => true,
            "invited" => matches!(then, Some("join" | "invite")),
            "joined" => then == Some("join"),
            // "shared", and anything unknown: visible to whoever was a
            // member then or joined at some point after.
            _ => then == Some("join") || self.history.iter().any(|c| c.membership == "join" && c.pos >= event.pos),
        }
    }
}
