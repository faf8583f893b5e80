//! The roomserver's tables.

mod events;

pub use events::Events;

use common::storage::Migration;

pub const MIGRATIONS: &[Migration] =
    &[Migration { version: 1, name: "events", sql: include_str!("migrations/0001_events.sql") }];
