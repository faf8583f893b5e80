//! The state before an event from its prev events, and state resolution
//! (v2, and v2.1 for room version 12) where the branches disagree.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use common::pdu::Pdu;
use ruma::{
    EventId, OwnedEventId, RoomVersionId,
    room_version_rules::{RoomVersionRules, StateResolutionV2Rules},
    state_res::{self, Event, utils::event_id_set::EventIdSet},
};

use crate::storage::{EventStatus, Events, StateMap};

/// Every event in the auth chains of `roots` (the roots included), read in
/// breadth-first batches. `fresh` is an event the caller's open transaction
/// wrote, which the database does not show yet.
pub async fn auth_closure(
    events: &Events,
    roots: impl IntoIterator<Item = OwnedEventId>,
    fresh: Option<&Pdu>,
) -> anyhow::Result<HashMap<OwnedEventId, Pdu>> {
    let mut seen: HashMap<OwnedEventId, Pdu> = HashMap::new();
    let mut frontier: Vec<OwnedEventId> = roots.into_iter().collect();
    if let Some(fresh) = fresh {
        seen.insert(fresh.owned_id(), fresh.clone());
        frontier.extend(fresh.auth_ids().iter().cloned());
    }
    while !frontier.is_empty() {
        frontier.retain(|id| !seen.contains_key(id));
        frontier.sort();
        frontier.dedup();
        let found = events.get_many(&frontier).await?;
        let mut next = Vec::new();
        for (id, row) in found {
            next.extend(row.pdu.auth_ids().iter().filter(|a| !seen.contains_key(*a)).cloned());
            let pdu = if row.status == EventStatus::Rejected { row.pdu.into_rejected() } else { row.pdu };
            seen.insert(id, pdu);
        }
        frontier = next;
    }
    Ok(seen)
}

/// The ids in the auth chain of `id` (itself left out), from a loaded closure.
fn auth_chain_of(id: &EventId, closure: &HashMap<OwnedEventId, Pdu>) -> HashSet<OwnedEventId> {
    let mut chain = HashSet::new();
    let mut stack: Vec<&OwnedEventId> = closure.get(id).map(|p| p.auth_ids().iter().collect()).unwrap_or_default();
    while let Some(next) = stack.pop() {
        if chain.insert(next.clone())
            && let Some(pdu) = closure.get(next)
        {
            stack.extend(pdu.auth_ids());
        }
    }
    chain
}

/// Resolves the states at the tips of several branches into one. `fresh`:
/// as for [`auth_closure`].
pub async fn resolve(
    events: &Events,
    version: &RoomVersionId,
    rules: &RoomVersionRules,
    states: &[Arc<StateMap>],
    fresh: Option<&Pdu>,
) -> anyhow::Result<StateMap> {
    if let [only] = states {
        return Ok((**only).clone());
    }
    if !is_conflicted(states) {
        let mut union = StateMap::new();
        for state in states {
            union.extend(state.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        return Ok(union);
    }
    let closure = auth_closure(events, states.iter().flat_map(|s| s.values().cloned()), fresh).await?;
    let auth_chains: Vec<EventIdSet<OwnedEventId>> = states
        .iter()
        .map(|state| {
            let mut chain = HashSet::new();
            for id in state.values() {
                chain.extend(auth_chain_of(id, &closure));
            }
            chain.into_iter().collect()
        })
        .collect();
    let maps: Vec<state_res::StateMap<OwnedEventId>> =
        states.iter().map(|s| s.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).collect();
    // Room version 1's own algorithm is not implemented by ruma; v2 is the best available.
    let v2 = rules.state_res.v2_rules().copied().unwrap_or(StateResolutionV2Rules::V2_0);
    let resolved = state_res::resolve(
        &rules.authorization,
        &v2,
        maps.iter(),
        auth_chains,
        |id| closure.get(id).cloned(),
        |conflicted| Some(conflicted_subgraph(conflicted, &closure)),
    )
    .map_err(|e| anyhow::anyhow!("state resolution failed in a room of version {version}: {e}"))?;
    Ok(resolved.into_iter().collect())
}

fn is_conflicted(states: &[Arc<StateMap>]) -> bool {
    let first = &states[0];
    states[1..].iter().any(|s| s.len() != first.len() || s.iter().any(|(k, v)| first.get(k) != Some(v)))
}

/// The events on some auth path between two conflicted events (v2.1): those
/// that descend from a conflicted event and lead to one.
fn conflicted_subgraph(
    conflicted: &state_res::StateMap<Vec<OwnedEventId>>,
    closure: &HashMap<OwnedEventId, Pdu>,
) -> EventIdSet<OwnedEventId> {
    let conflicted: HashSet<&OwnedEventId> = conflicted.values().flatten().collect();
    // Whether each event's auth chain reaches a conflicted event, memoised.
    let mut reaches: HashMap<OwnedEventId, bool> = HashMap::new();
    fn visit(
        id: &OwnedEventId,
        closure: &HashMap<OwnedEventId, Pdu>,
        conflicted: &HashSet<&OwnedEventId>,
        reaches: &mut HashMap<OwnedEventId, bool>,
    ) -> bool {
        if let Some(known) = reaches.get(id) {
            return *known;
        }
        // Marked first so a malformed cycle terminates.
        reaches.insert(id.clone(), false);
        let mut result = false;
        if let Some(pdu) = closure.get(id) {
            for parent in pdu.auth_ids() {
                let parent_reaches = visit(parent, closure, conflicted, reaches);
                result |= conflicted.contains(parent) || parent_reaches;
            }
        }
        reaches.insert(id.clone(), result);
        result
    }
    let mut subgraph = EventIdSet::new();
    for id in &conflicted {
        subgraph.insert((*id).clone());
        // Ancestors of conflicted events that themselves reach one.
        for ancestor in auth_chain_of(id, closure) {
            if visit(&ancestor, closure, &conflicted, &mut reaches) || conflicted.contains(&ancestor) {
                subgraph.insert(ancestor);
            }
        }
    }
    subgraph
}

/// The events of `state` that authorise an event of the given kind, by key,
/// as the authorisation rules look them up.
pub async fn state_events_for_auth(
    events: &Events,
    state: &StateMap,
    pdu: &Pdu,
    rules: &RoomVersionRules,
) -> anyhow::Result<HashMap<(ruma::events::StateEventType, String), Pdu>> {
    let mut keys = state_res::auth_types_for_event(
        pdu.event_type(),
        pdu.sender(),
        pdu.state_key(),
        pdu.content(),
        &rules.authorization,
    )
    .unwrap_or_default();
    // The rules read the create event in every version (v12: by the room id).
    keys.push((ruma::events::StateEventType::RoomCreate, String::new()));
    let wanted: Vec<_> = keys.iter().filter_map(|k| state.get(k).map(|id| (k.clone(), id.clone()))).collect();
    let ids: Vec<OwnedEventId> = wanted.iter().map(|(_, id)| id.clone()).collect();
    let found = events.get_many(&ids).await?;
    Ok(wanted
        .into_iter()
        .filter_map(|(k, id)| {
            found.get(&id).map(|row| {
                let pdu =
                    if row.status == EventStatus::Rejected { row.pdu.clone().into_rejected() } else { row.pdu.clone() };
                (k, pdu)
            })
        })
        .collect())
}
