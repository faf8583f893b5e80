//! syncapi's projection: room events in the order they arrived here, each
//! room's current state and its changes, memberships, invites, receipts,
//! typing, account data changes and to-device messages — each kind numbered
//! by its own stream position (`syncapi_positions`).

mod account_data;
mod ephemeral;
pub mod history;
mod notification_counts;
pub mod rooms;
mod to_device;

pub use ephemeral::MAIN_THREAD;
pub use notification_counts::Counts;
pub use rooms::{MemberSummary, MembershipChange, RoomEvent, Span, StateChange};

use common::storage::{Db, Migration};
use sqlx::AnyConnection;

pub const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "sync projection", sql: include_str!("migrations/0001_sync.sql") },
    Migration { version: 2, name: "presence", sql: crate::presence::MIGRATION_SQL },
    Migration { version: 3, name: "relations", sql: include_str!("migrations/0003_relations.sql") },
    Migration { version: 4, name: "notification counts", sql: include_str!("migrations/0004_notification_counts.sql") },
    Migration { version: 5, name: "prior state changes", sql: include_str!("migrations/0005_prior_state_changes.sql") },
    Migration { version: 6, name: "backfill positions", sql: include_str!("migrations/0006_backfill.sql") },
];

/// The kinds of data with their own stream positions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Events,
    Receipts,
    Typing,
    AccountData,
    ToDevice,
    Notifications,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Events => "events",
            Kind::Receipts => "receipts",
            Kind::Typing => "typing",
            Kind::AccountData => "account_data",
            Kind::ToDevice => "to_device",
            Kind::Notifications => "notifications",
        }
    }
}

/// The latest position of every kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Positions {
    pub events: i64,
    pub receipts: i64,
    pub typing: i64,
    pub account_data: i64,
    pub to_device: i64,
    pub notifications: i64,
}

#[derive(Clone)]
pub struct Store {
    pub db: Db,
}

impl Store {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    pub(crate) fn pool(&self) -> &sqlx::AnyPool {
        self.db.pool()
    }

    /// The next position of `kind`, inside the writer's transaction. Each kind
    /// has one writer at a time (an ordered consumer), so positions are
    /// committed in order.
    pub async fn next_position(&self, tx: &mut AnyConnection, kind: Kind) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar("UPDATE syncapi_positions SET pos = pos + 1 WHERE kind = $1 RETURNING pos")
            .bind(kind.name())
            .fetch_one(tx)
            .await?)
    }

    /// The position of an event fetched from another server's history:
    /// below every other, as it is older than what was here before it.
    pub async fn next_backfill_position(&self, tx: &mut AnyConnection) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar("UPDATE syncapi_positions SET pos = pos - 1 WHERE kind = 'backfill' RETURNING pos")
            .fetch_one(tx)
            .await?)
    }

    pub async fn positions(&self) -> anyhow::Result<Positions> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT kind, pos FROM syncapi_positions").fetch_all(self.pool()).await?;
        let mut positions = Positions::default();
        for (kind, pos) in rows {
            match kind.as_str() {
                "events" => positions.events = pos,
                "receipts" => positions.receipts = pos,
                "typing" => positions.typing = pos,
                "account_data" => positions.account_data = pos,
                "to_device" => positions.to_device = pos,
                "notifications" => positions.notifications = pos,
                _ => {}
            }
        }
        Ok(positions)
    }
}

/// Rooms (or ids, or keys) one query names at most, with `IN (…)` or
/// `VALUES`: a few thousand bound values, well under SQLite's 32766 and
/// Postgres's 65535, so a user in many thousands of rooms costs a few queries.
pub(crate) const PER_QUERY: usize = 1000;

/// `$first, $first+1, …` for `count` bound values.
pub(crate) fn placeholders(first: usize, count: usize) -> String {
    (first..first + count).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// `($first, …), (…), …`: `rows` rows of `width` bound values, for a `VALUES` list.
pub(crate) fn value_rows(first: usize, rows: usize, width: usize) -> String {
    (0..rows).map(|r| format!("({})", placeholders(first + r * width, width))).collect::<Vec<_>>().join(", ")
}
