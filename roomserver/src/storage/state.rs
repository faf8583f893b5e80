//! State snapshots: `roomserver_state_snapshots` and their entries. A snapshot
//! stores only how it differs from its parent; reading one walks the chain
//! (at most [`MAX_CHAIN`] long) and the result is cached, snapshots being
//! immutable once written.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
};

use ruma::{OwnedEventId, events::StateEventType};
use sqlx::{AnyConnection, AnyPool};

/// A room state: event id by (type, state key).
pub type StateMap = BTreeMap<(StateEventType, String), OwnedEventId>;

/// Longest delta chain before a snapshot is written in full.
const MAX_CHAIN: i64 = 32;

/// Snapshots kept in memory.
const CACHE_SIZE: usize = 2048;

#[derive(Clone)]
pub struct Snapshots {
    pool: AnyPool,
    cache: Arc<Mutex<HashMap<i64, Arc<StateMap>>>>,
}

impl Snapshots {
    pub fn new(pool: AnyPool) -> Self {
        Self { pool, cache: Arc::default() }
    }

    /// The full state of a snapshot.
    pub async fn load(&self, snapshot: i64) -> anyhow::Result<Arc<StateMap>> {
        if let Some(state) = self.cache.lock().expect("cache lock").get(&snapshot) {
            return Ok(state.clone());
        }
        // Walk up to the nearest cached or full snapshot, then apply the deltas down.
        let mut chain = vec![snapshot];
        let mut base: Option<Arc<StateMap>> = None;
        let mut current = snapshot;
        loop {
            let parent: Option<i64> = sqlx::query_scalar("SELECT parent FROM roomserver_state_snapshots WHERE id = $1")
                .bind(current)
                .fetch_optional(&self.pool)
                .await?
                .ok_or_else(|| anyhow::anyhow!("state snapshot {current} is missing"))?;
            let Some(parent) = parent else { break };
            if let Some(state) = self.cache.lock().expect("cache lock").get(&parent) {
                base = Some(state.clone());
                break;
            }
            chain.push(parent);
            current = parent;
        }
        let mut state = base.map(|b| (*b).clone()).unwrap_or_default();
        for id in chain.iter().rev() {
            let entries: Vec<(String, String, Option<String>)> = sqlx::query_as(
                "SELECT event_type, state_key, event_id FROM roomserver_state_entries WHERE snapshot = $1",
            )
            .bind(*id)
            .fetch_all(&self.pool)
            .await?;
            for (event_type, state_key, event_id) in entries {
                let key = (StateEventType::from(event_type), state_key);
                match event_id {
                    Some(id) => state.insert(key, id.try_into()?),
                    None => state.remove(&key),
                };
            }
        }
        let state = Arc::new(state);
        self.remember(snapshot, state.clone());
        Ok(state)
    }

    fn remember(&self, snapshot: i64, state: Arc<StateMap>) {
        let mut cache = self.cache.lock().expect("cache lock");
        if cache.len() >= CACHE_SIZE {
            cache.clear();
        }
        cache.insert(snapshot, state);
    }

    /// Writes `state` as a new snapshot, as a delta against `parent` (whose
    /// full state the caller has at hand) when the chain is short enough.
    pub async fn write(
        &self,
        tx: &mut AnyConnection,
        room_id: &str,
        parent: Option<(i64, &StateMap)>,
        state: &StateMap,
    ) -> anyhow::Result<i64> {
        type Entry<'a> = (&'a (StateEventType, String), Option<&'a OwnedEventId>);
        // A delta on the parent while its chain is short enough. Asked with an
        // INSERT, not a SELECT first: on SQLite a transaction that reads
        // before it writes fails with "database is locked" whenever another
        // writer commits in between, where a first write waits its turn.
        let delta_id: Option<i64> = match parent {
            Some((parent, _)) => {
                sqlx::query_scalar(
                    "INSERT INTO roomserver_state_snapshots (room_id, parent, chain_length)
                     SELECT $1, id, chain_length + 1 FROM roomserver_state_snapshots WHERE id = $2 AND chain_length < $3
                     RETURNING id",
                )
                .bind(room_id)
                .bind(parent)
                .bind(MAX_CHAIN)
                .fetch_optional(&mut *tx)
                .await?
            }
            None => None,
        };
        let (id, entries): (i64, Vec<Entry>) = match (delta_id, parent) {
            (Some(id), Some((_, base))) => {
                let mut delta: Vec<Entry> =
                    state.iter().filter(|(k, v)| base.get(*k) != Some(*v)).map(|(k, v)| (k, Some(v))).collect();
                delta.extend(base.keys().filter(|k| !state.contains_key(*k)).map(|k| (k, None)));
                (id, delta)
            }
            _ => {
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO roomserver_state_snapshots (room_id, parent, chain_length) VALUES ($1, NULL, 0) RETURNING id",
                )
                .bind(room_id)
                .fetch_one(&mut *tx)
                .await?;
                (id, state.iter().map(|(k, v)| (k, Some(v))).collect())
            }
        };
        for ((event_type, state_key), event_id) in entries {
            sqlx::query(
                "INSERT INTO roomserver_state_entries (snapshot, event_type, state_key, event_id) VALUES ($1, $2, $3, $4)",
            )
            .bind(id)
            .bind(event_type.to_string())
            .bind(state_key.as_str())
            .bind(event_id.map(|id| id.as_str()))
            .execute(&mut *tx)
            .await?;
        }
        // Not cached yet: the transaction may still roll back and the id be reused.
        Ok(id)
    }
}
