//! The roomserver's tables.

mod events;
mod memberships;
mod rooms;
mod state;

pub use events::{EventRow, EventStatus, Events, NewEvent};
pub use memberships::Memberships;
pub use rooms::{Room, Rooms};
pub use state::{Snapshots, StateMap};

use common::storage::Migration;

pub const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "events", sql: include_str!("migrations/0001_events.sql") },
    Migration { version: 2, name: "rooms and state", sql: include_str!("migrations/0002_rooms_and_state.sql") },
    Migration { version: 3, name: "directory", sql: include_str!("migrations/0003_directory.sql") },
    Migration { version: 4, name: "event timestamps", sql: include_str!("migrations/0004_event_timestamps.sql") },
];

/// `$first, $first+1, …` for `count` bound values.
fn placeholders(first: usize, count: usize) -> String {
    (first..first + count).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// Every table of the roomserver, shared by the input pipeline and the queries.
#[derive(Clone)]
pub struct Store {
    pub db: common::storage::Db,
    pub events: Events,
    pub rooms: Rooms,
    pub snapshots: Snapshots,
    pub memberships: Memberships,
}

impl Store {
    pub fn new(db: common::storage::Db) -> Self {
        let pool = db.pool().clone();
        Self {
            events: Events::new(pool.clone()),
            rooms: Rooms::new(pool.clone()),
            snapshots: Snapshots::new(pool.clone()),
            memberships: Memberships::new(pool),
            db,
        }
    }

    /// The events among `ids`: `fresh` (written in the caller's open
    /// transaction) from memory, the rest from the database.
    pub async fn pdus(
        &self,
        ids: &[ruma::OwnedEventId],
        fresh: &common::pdu::Pdu,
    ) -> anyhow::Result<std::collections::HashMap<ruma::OwnedEventId, common::pdu::Pdu>> {
        let others: Vec<_> = ids.iter().filter(|id| **id != *fresh.id()).cloned().collect();
        let mut found: std::collections::HashMap<_, _> =
            self.events.get_many(&others).await?.into_iter().map(|(id, row)| (id, row.pdu)).collect();
        if ids.iter().any(|id| **id == *fresh.id()) {
            found.insert(fresh.owned_id(), fresh.clone());
        }
        Ok(found)
    }

    /// How `roomserver_memberships` follows a change of current state: the
    /// memberships to set and the users whose membership left the state.
    pub async fn plan_memberships(
        &self,
        fresh: &common::pdu::Pdu,
        server_name: &ruma::ServerName,
        adds: &[ruma::OwnedEventId],
        removes: &[ruma::OwnedEventId],
    ) -> anyhow::Result<MembershipPlan> {
        let all: Vec<_> = adds.iter().chain(removes).cloned().collect();
        let pdus = self.pdus(&all, fresh).await?;
        let is_member = |pdu: &&common::pdu::Pdu| *pdu.kind() == ruma::events::TimelineEventType::RoomMember;
        let mut plan = MembershipPlan::default();
        for pdu in adds.iter().filter_map(|id| pdus.get(id)).filter(is_member) {
            let (Some(user), Some(membership)) = (pdu.key(), pdu.content_str("membership")) else { continue };
            let Ok(user_id) = ruma::UserId::parse(user) else { continue };
            let is_local = user_id.server_name() == server_name;
            plan.set.push((user_id, membership, pdu.owned_id(), is_local));
        }
        for pdu in removes.iter().filter_map(|id| pdus.get(id)).filter(is_member) {
            if let Some(user) = pdu.key().filter(|user| !plan.set.iter().any(|(u, ..)| u.as_str() == *user)) {
                plan.removed.push(user.to_owned());
            }
        }
        Ok(plan)
    }

    pub async fn apply_memberships(
        &self,
        tx: &mut sqlx::AnyConnection,
        room_id: &ruma::RoomId,
        plan: &MembershipPlan,
    ) -> anyhow::Result<()> {
        for user in &plan.removed {
            self.memberships.remove(tx, room_id, user).await?;
        }
        for (user_id, membership, event_id, is_local) in &plan.set {
            self.memberships.set(tx, room_id, user_id, membership, event_id.as_str(), *is_local).await?;
        }
        Ok(())
    }
}

/// Membership changes worked out before the transaction that writes them.
#[derive(Default)]
pub struct MembershipPlan {
    set: Vec<(ruma::OwnedUserId, String, ruma::OwnedEventId, bool)>,
    removed: Vec<String>,
}
