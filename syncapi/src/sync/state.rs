//! Rooms' state at a point of their timelines, worked back from the current
//! state through the roomserver's adds and removes of the events since — so
//! the cost is what happened after that point, not the rooms' history — for
//! all the rooms of a sync at once, in a fixed number of queries.

use std::collections::{HashMap, HashSet};

use crate::storage::{Span, StateChange, Store};

pub type StateKey = (String, String);

/// What a sync needs of one room's state: its values after position `at`…
pub struct Want<'a> {
    pub room_id: &'a str,
    pub at: i64,
    /// …of every key;
    pub whole: bool,
    /// or of the keys that changed in (from, at], when given…
    pub changed_after: Option<i64>,
    /// …and of these.
    pub keys: HashSet<StateKey>,
}

impl Want<'_> {
    fn needs_nothing(&self) -> bool {
        !self.whole && self.changed_after.is_none() && self.keys.is_empty()
    }
}

/// The state each `Want` asks for, by room: (type, state_key) → event id
/// (keys absent then are left out). The rooms are distinct.
pub async fn states_at(
    store: &Store,
    wants: &[Want<'_>],
) -> anyhow::Result<HashMap<String, HashMap<StateKey, String>>> {
    let wants: Vec<&Want> = wants.iter().filter(|w| !w.needs_nothing()).collect();
    if wants.is_empty() {
        return Ok(HashMap::new());
    }
    // The changes to undo (after `at`), and those that name the changed keys
    // (from `changed_after` to `at`): one range per room.
    let spans: Vec<Span> = wants
        .iter()
        .map(|w| Span {
            room_id: w.room_id,
            after: w.changed_after.map_or(w.at, |from| from.min(w.at)),
            upto: i64::MAX,
        })
        .collect();
    let changes = store.state_changes(&spans).await?;
    let ids: Vec<String> = changes.values().flatten().flat_map(|c| c.adds.iter().chain(&c.removes)).cloned().collect();
    let known: HashMap<String, StateKey> =
        store.state_events(&ids).await?.into_iter().map(|(id, (key, _))| (id, key)).collect();

    let no_changes = Vec::new();
    let changes_of = |room: &str| changes.get(room).unwrap_or(&no_changes);
    // The keys each room needs, unless it needs them all.
    let mut keys: HashMap<&str, HashSet<StateKey>> = HashMap::new();
    for want in wants.iter().filter(|w| !w.whole) {
        let mut wanted = want.keys.clone();
        if let Some(from) = want.changed_after {
            let changed = changes_of(want.room_id).iter().filter(|c| c.pos > from && c.pos <= want.at);
            wanted
                .extend(changed.flat_map(|c| c.adds.iter().chain(&c.removes)).filter_map(|id| known.get(id).cloned()));
        }
        keys.insert(want.room_id, wanted);
    }

    let whole: Vec<&str> = wants.iter().filter(|w| w.whole).map(|w| w.room_id).collect();
    let mut states = store.current_states(&whole).await?;
    let triples: Vec<(&str, &str, &str)> =
        keys.iter().flat_map(|(room, keys)| keys.iter().map(move |(t, k)| (*room, t.as_str(), k.as_str()))).collect();
    states.extend(store.current_state_keys(&triples).await?);

    let mut found = HashMap::new();
    for want in wants {
        let mut state = states.remove(want.room_id).unwrap_or_default();
        let later: Vec<&StateChange> = changes_of(want.room_id).iter().filter(|c| c.pos > want.at).collect();
        undo(&mut state, &later, &known, keys.get(want.room_id));
        found.insert(want.room_id.to_owned(), state);
    }
    Ok(found)
}

/// Undoes `changes` (oldest first) on `state`, newest first. Only `keys`,
/// when given, are kept up to date; `known` gives the state events' keys.
fn undo(
    state: &mut HashMap<StateKey, String>,
    changes: &[&StateChange],
    known: &HashMap<String, StateKey>,
    keys: Option<&HashSet<StateKey>>,
) {
    let key_of = |id: &String| known.get(id).filter(|k| keys.is_none_or(|keys| keys.contains(*k))).cloned();
    for change in changes.iter().rev() {
        for added in &change.adds {
            if let Some(key) = key_of(added)
                && state.get(&key) == Some(added)
            {
                state.remove(&key);
            }
        }
        for removed in &change.removes {
            if let Some(key) = key_of(removed) {
                state.insert(key, removed.clone());
            }
        }
    }
}
