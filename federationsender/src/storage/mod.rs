//! federationsender's tables.

mod queue;
mod server_keys;

pub use queue::{Backoff, QueueStore, Queued};
pub use server_keys::{ServerKeys, SignedKeys, StoredKey};

use common::storage::Migration;

pub const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "server keys", sql: include_str!("migrations/0001_server_keys.sql") },
    Migration { version: 2, name: "delivery queues", sql: include_str!("migrations/0002_queue.sql") },
];
