//! A room's state at a point of its timeline, worked back from the current
//! state through the roomserver's adds and removes of the events since — so
//! the cost is what happened after that point, not the room's history.

use std::collections::{HashMap, HashSet};

use crate::storage::{RoomEvent, Store};

pub type StateKey = (String, String);

/// Undoes `changes` (oldest first) on `state`, newest first. Only `keys`, when given, are kept up to date.
async fn undo(
    store: &Store,
    state: &mut HashMap<StateKey, String>,
    changes: &[RoomEvent],
    keys: Option<&HashSet<StateKey>>,
) -> anyhow::Result<()> {
    let ids: Vec<String> = changes.iter().flat_map(|c| c.adds.iter().chain(&c.removes)).cloned().collect();
    let known = store.state_events(&ids).await?;
    let key_of = |id: &String| known.get(id).map(|(key, _)| key.clone());
    for change in changes.iter().rev() {
        for added in &change.adds {
            if let Some(key) = key_of(added).filter(|k| keys.is_none_or(|keys| keys.contains(k)))
                && state.get(&key) == Some(added)
            {
                state.remove(&key);
            }
        }
        for removed in &change.removes {
            if let Some(key) = key_of(removed).filter(|k| keys.is_none_or(|keys| keys.contains(k))) {
                state.insert(key, removed.clone());
            }
        }
    }
    Ok(())
}

/// The whole state of the room after position `at`.
pub async fn full_state_at(store: &Store, room_id: &str, at: i64) -> anyhow::Result<HashMap<StateKey, String>> {
    let mut state = store.current_state(room_id).await?;
    let later = store.state_changes(room_id, at, i64::MAX).await?;
    undo(store, &mut state, &later, None).await?;
    Ok(state)
}

/// The state keys that changed in (from, at], with their values after `at`
/// (keys absent then are left out).
pub async fn changed_state_at(
    store: &Store,
    room_id: &str,
    from: i64,
    at: i64,
) -> anyhow::Result<HashMap<StateKey, String>> {
    let changed = store.state_changes(room_id, from, at).await?;
    let ids: Vec<String> = changed.iter().flat_map(|c| c.adds.iter().chain(&c.removes)).cloned().collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let keys: HashSet<StateKey> = store.state_events(&ids).await?.into_values().map(|(key, _)| key).collect();
    values_at(store, room_id, at, keys).await
}

/// The values after `at` of some keys of the room's state (keys absent then are left out).
pub async fn values_at(
    store: &Store,
    room_id: &str,
    at: i64,
    keys: HashSet<StateKey>,
) -> anyhow::Result<HashMap<StateKey, String>> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let key_list: Vec<StateKey> = keys.iter().cloned().collect();
    let mut state = store.current_state_of(room_id, &key_list).await?;
    let later = store.state_changes(room_id, at, i64::MAX).await?;
    undo(store, &mut state, &later, Some(&keys)).await?;
    Ok(state)
}
