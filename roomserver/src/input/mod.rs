//! Processing one input event: the checks on receipt of a PDU, its state,
//! the room's new current state, and what is emitted. The caller (the input
//! consumer) guarantees one event per room at a time.

mod keys;
mod outputs;
pub mod resolve;

use std::{collections::HashMap, sync::Arc};

use common::{
    api::roomserver::{InputKind, InputRoomEvent, NewInviteEvent, OutputRoomEvent, OutsideEvent, RetireInviteEvent},
    bus::{Bus, HandlerError},
    keys::SigningKey,
    pdu::{self, Pdu},
    storage::{Db, Outbox},
};
use ruma::{
    CanonicalJsonObject, OwnedEventId, OwnedServerName, RoomId,
    events::{StateEventType, TimelineEventType},
    room_version_rules::RoomVersionRules,
    signatures::{PublicKeySet, Verified},
    state_res::{self, Event},
};

use crate::storage::{EventRow, EventStatus, NewEvent, Room, StateMap, Store};

/// What the roomserver decided.
#[derive(Debug)]
pub enum Verdict {
    Accepted,
    SoftFailed(String),
    /// Stored as rejected by the authorisation rules.
    Rejected(String),
    /// Not taken: not a valid event of the room, or nothing to check it against.
    Refused(String),
}

pub struct Processor {
    store: Store,
    outbox: Outbox,
    bus: Bus,
    server_name: OwnedServerName,
    own_keys: PublicKeySet,
}

fn reject(e: impl std::fmt::Display) -> HandlerError {
    HandlerError::Reject(anyhow::anyhow!("{e}"))
}

impl Processor {
    pub fn new(store: Store, outbox: Outbox, bus: Bus, server_name: OwnedServerName, key: &SigningKey) -> Self {
        let own_keys = PublicKeySet::from([(key.key_id(), key.public_key())]);
        Self { store, outbox, bus, server_name, own_keys }
    }

    fn db(&self) -> &Db {
        &self.store.db
    }

    pub async fn process(&self, msg: &InputRoomEvent) -> Result<Verdict, HandlerError> {
        let rules = pdu::rules(&msg.room_version).map_err(reject)?;
        let mut object: CanonicalJsonObject = serde_json::from_str(msg.event.get())
            .map_err(|e| reject(format!("the event is not canonical JSON: {e}")))?;
        let event_id = pdu::event_id_of(&object, &msg.room_version).map_err(reject)?;
        if event_id != msg.event_id {
            return Err(reject(format!("the event id should be {event_id}")));
        }

        if let Some(row) = self.store.events.get(&event_id).await? {
            // An outlier seen again in its place in the room is processed now;
            // anything else is a duplicate and keeps its first verdict.
            if !(row.status == EventStatus::Outlier && msg.kind != InputKind::Outlier) {
                return Ok(match row.status {
                    EventStatus::Rejected => Verdict::Rejected("the event was rejected before".into()),
                    EventStatus::SoftFailed => Verdict::SoftFailed("the event was soft-failed before".into()),
                    _ => Verdict::Accepted,
                });
            }
        }

        if let Err(e) = state_res::check_pdu_format(&object, &rules.event_format) {
            return Ok(Verdict::Refused(format!("malformed event: {e}")));
        }
        if msg.origin != self.server_name {
            let keys = keys::for_event(&self.bus, &self.server_name, &self.own_keys, &object, &rules).await?;
            match ruma::signatures::verify_event(&keys, &object, &rules) {
                Ok(Verified::All) => {}
                // A wrong content hash: keep only what the signatures cover.
                Ok(Verified::Signatures) => {
                    object = ruma::canonical_json::redact(object, &rules.redaction, None).map_err(reject)?;
                }
                Err(e) => return Ok(Verdict::Refused(format!("bad signatures: {e}"))),
            }
        }
        let json = serde_json::value::to_raw_value(&object).map_err(reject)?;
        let pdu = Pdu::parse(event_id.clone(), json).map_err(reject)?;
        let room_id = self.room_of(&pdu, &rules)?;
        if room_id != msg.room_id {
            return Ok(Verdict::Refused(format!("the event belongs to {room_id}, not {}", msg.room_id)));
        }

        // Authorisation against the event's own auth events.
        let mut auth_ids: Vec<OwnedEventId> = pdu.auth_ids().to_vec();
        if rules.authorization.room_create_event_id_as_room_id && *pdu.kind() != TimelineEventType::RoomCreate {
            auth_ids.push(pdu::create_event_id_of(&room_id).map_err(reject)?);
        }
        // An invite to a room this server is not in (or our user's answer
        // to one) cannot be checked against a room we do not have: its
        // signatures are all there is, as for every server.
        if msg.kind == InputKind::Outlier && self.local_membership_outside(&pdu, &room_id).await? {
            return self.store_outlier(msg, &pdu, &room_id).await;
        }
        let auth_rows = self.store.events.get_many(&auth_ids).await?;
        if let Some(missing) = auth_ids.iter().find(|id| !auth_rows.contains_key(*id)) {
            return Ok(Verdict::Refused(format!("auth event {missing} is unknown here")));
        }
        let auth: HashMap<OwnedEventId, Pdu> = auth_rows
            .into_iter()
            .map(|(id, row)| {
                let pdu = if row.status == EventStatus::Rejected { row.pdu.into_rejected() } else { row.pdu };
                (id, pdu)
            })
            .collect();
        if let Err(e) =
            state_res::check_state_independent_auth_rules(&rules.authorization, &pdu, |id| auth.get(id).cloned())
        {
            return self.store_rejected(&pdu, &room_id, &msg.room_version, e).await;
        }
        let by_key: HashMap<(StateEventType, String), Pdu> =
            auth.values().filter_map(|p| p.state_pair().map(|k| (k, p.clone()))).collect();
        if let Err(e) = state_res::check_state_dependent_auth_rules(&rules.authorization, &pdu, |t, k| {
            by_key.get(&(t.clone(), k.to_owned())).cloned()
        }) {
            return self.store_rejected(&pdu, &room_id, &msg.room_version, e).await;
        }

        if msg.kind == InputKind::Outlier {
            return self.store_outlier(msg, &pdu, &room_id).await;
        }
        self.process_in_room(msg, &rules, pdu, &room_id).await
    }

    /// Whether the event is a member event of one of our users in a room whose
    /// state is not known here.
    async fn local_membership_outside(&self, pdu: &Pdu, room_id: &RoomId) -> Result<bool, HandlerError> {
        let local = *pdu.kind() == TimelineEventType::RoomMember
            && pdu
                .key()
                .and_then(|key| ruma::UserId::parse(key).ok())
                .is_some_and(|u| u.server_name() == self.server_name);
        Ok(local && self.store.rooms.get(room_id).await?.is_none_or(|room| room.current_state.is_none()))
    }

    /// An event stored apart from the room's graph. In a room this server is
    /// not in, a local user's invite or their answer to it (a rejection sent
    /// through the inviting server) also changes their membership here and
    /// reaches their devices: no other event of that room ever will.
    async fn store_outlier(&self, msg: &InputRoomEvent, pdu: &Pdu, room_id: &RoomId) -> Result<Verdict, HandlerError> {
        let local_member = (*pdu.kind() == TimelineEventType::RoomMember)
            .then(|| pdu.key().and_then(|key| ruma::UserId::parse(key).ok()))
            .flatten()
            .filter(|user| user.server_name() == self.server_name);
        let membership_change = match &local_member {
            Some(user) if self.store.rooms.get(room_id).await?.is_none_or(|room| room.current_state.is_none()) => {
                Some((user.clone(), self.store.memberships.get(room_id, user).await?))
            }
            _ => None,
        };
        let mut outputs = Vec::new();
        if let Some((user, previous)) = &membership_change {
            match pdu.content_str("membership").as_deref() {
                Some("invite") => outputs.push(OutputRoomEvent::NewInviteEvent(NewInviteEvent {
                    event_id: pdu.owned_id(),
                    room_id: room_id.to_owned(),
                    room_version: msg.room_version.clone(),
                    target_user_id: user.clone(),
                    event: pdu.to_raw(),
                    invite_room_state: msg.invite_room_state.clone().unwrap_or_default(),
                })),
                Some(membership) => {
                    if let Some(previous) = previous.as_ref().filter(|p| p.membership == "invite") {
                        outputs.push(OutputRoomEvent::RetireInviteEvent(RetireInviteEvent {
                            invite_event_id: previous.event_id.as_str().try_into().map_err(reject)?,
                            room_id: room_id.to_owned(),
                            target_user_id: user.clone(),
                            retired_by_event_id: pdu.owned_id(),
                            membership: membership.to_owned(),
                            outside: Some(OutsideEvent { room_version: msg.room_version.clone(), event: pdu.to_raw() }),
                        }));
                    }
                }
                None => {}
            }
        }
        let mut tx = self.db().begin_write().await.map_err(anyhow::Error::from)?;
        self.store.rooms.create(&mut tx, room_id, &msg.room_version).await?;
        let new = NewEvent {
            pdu,
            room_id: room_id.as_str(),
            status: EventStatus::Outlier,
            state_before: None,
            state_after: None,
            stream_ordering: None,
        };
        self.store.events.insert(&mut tx, new).await?;
        if let Some((user, _)) = &membership_change
            && let Some(membership) = pdu.content_str("membership")
        {
            self.store.memberships.set(&mut tx, room_id, user, &membership, pdu.id().as_str(), true).await?;
        }
        self.commit_with(tx, &outputs).await?;
        Ok(Verdict::Accepted)
    }

    /// Why a redaction is ignored: it names itself, or an event of another
    /// room. Ignored as a soft failure: kept, so that events built on it
    /// still have a state, but never served or applied.
    async fn misdirected_redaction(&self, pdu: &Pdu, room_id: &RoomId) -> Result<Option<String>, HandlerError> {
        let Some(target) = pdu.redacted_id() else { return Ok(None) };
        if target == pdu.id() {
            return Ok(Some("the event redacts itself".into()));
        }
        Ok(match self.store.events.get(target).await? {
            Some(row) if row.room_id != room_id => {
                Some(format!("the event redacts {target}, which is in another room"))
            }
            _ => None,
        })
    }

    /// The room an event is in: its `room_id`, or for a room version 12
    /// create event the id its hash determines.
    fn room_of(&self, pdu: &Pdu, rules: &RoomVersionRules) -> Result<ruma::OwnedRoomId, HandlerError> {
        if *pdu.kind() == TimelineEventType::RoomCreate && rules.authorization.room_create_event_id_as_room_id {
            return pdu::room_id_of_create(pdu.id()).map_err(reject);
        }
        pdu.room_id().map(ToOwned::to_owned).ok_or_else(|| reject("the event has no room_id"))
    }

    async fn store_rejected(
        &self,
        pdu: &Pdu,
        room_id: &RoomId,
        version: &ruma::RoomVersionId,
        reason: String,
    ) -> Result<Verdict, HandlerError> {
        let mut tx = self.db().begin_write().await.map_err(anyhow::Error::from)?;
        self.store.rooms.create(&mut tx, room_id, version).await?;
        let new = NewEvent {
            pdu,
            room_id: room_id.as_str(),
            status: EventStatus::Rejected,
            state_before: None,
            state_after: None,
            stream_ordering: None,
        };
        self.store.events.insert(&mut tx, new).await?;
        tx.commit().await.map_err(anyhow::Error::from)?;
        tracing::info!(event_id = %pdu.id(), reason, "rejected an event");
        Ok(Verdict::Rejected(reason))
    }

    /// A new or historical event: its state, the checks against it, and the
    /// room's new current state.
    async fn process_in_room(
        &self,
        msg: &InputRoomEvent,
        rules: &RoomVersionRules,
        pdu: Pdu,
        room_id: &RoomId,
    ) -> Result<Verdict, HandlerError> {
        let events = &self.store.events;
        let version = &msg.room_version;
        let is_create = *pdu.kind() == TimelineEventType::RoomCreate;

        // The state before the event.
        let (before_id, before): (Option<i64>, Arc<StateMap>) = if is_create {
            (None, Arc::new(StateMap::new()))
        } else if let Some(ids) = &msg.state_before {
            let rows = events.get_many(ids).await?;
            let mut state = StateMap::new();
            for id in ids {
                // Another server's state may hold events that fail our checks
                // (rejected, or refused for their signatures and so never
                // stored): they are left out, as if it had never had them.
                let Some(row) = rows.get(id).filter(|row| row.status != EventStatus::Rejected) else {
                    tracing::debug!(event_id = %id, "a state event given with an event is left out");
                    continue;
                };
                let key = row.pdu.state_pair().ok_or_else(|| reject(format!("{id} is not a state event")))?;
                state.insert(key, id.clone());
            }
            (None, Arc::new(state))
        } else {
            let prevs = events.get_many(pdu.prev_ids()).await?;
            let mut snapshots: Vec<i64> = pdu
                .prev_ids()
                .iter()
                .filter_map(|id| prevs.get(id))
                .filter(|row| matches!(row.status, EventStatus::Accepted | EventStatus::SoftFailed))
                .filter_map(|row| row.state_after)
                .collect();
            snapshots.sort();
            snapshots.dedup();
            match snapshots.as_slice() {
                [] if msg.kind == InputKind::Historical => return self.store_history(msg, rules, pdu, room_id).await,
                [] => return Ok(Verdict::Refused("none of the prev events is known here with its state".into())),
                [one] => (Some(*one), self.store.snapshots.load(*one).await?),
                many => {
                    let mut states = Vec::with_capacity(many.len());
                    for id in many {
                        states.push(self.store.snapshots.load(*id).await?);
                    }
                    let resolved = resolve::resolve(events, version, rules, &states, None).await?;
                    (None, Arc::new(resolved))
                }
            }
        };

        // Authorisation against the state before the event.
        if !is_create {
            let at_before = resolve::state_events_for_auth(events, &before, &pdu, rules).await?;
            if let Err(e) = state_res::check_state_dependent_auth_rules(&rules.authorization, &pdu, |t, k| {
                at_before.get(&(t.clone(), k.to_owned())).cloned()
            }) {
                return self.store_rejected(&pdu, room_id, version, e).await;
            }
        }

        // Everything is read and worked out first; the transaction below only
        // writes, so it never waits for a second connection while holding one.
        let room = match self.store.rooms.get(room_id).await? {
            Some(room) => room,
            None if is_create => Room {
                room_version: version.clone(),
                current_state: None,
                latest_event_ids: Vec::new(),
                max_depth: 0,
                last_stream_ordering: 0,
            },
            None => return Ok(Verdict::Refused("the room is unknown here".into())),
        };
        let current = match room.current_state {
            Some(id) => Some(self.store.snapshots.load(id).await?),
            None => None,
        };

        // Authorisation against the current state: failing only this is a soft fail.
        let mut soft_failure = None;
        if msg.kind == InputKind::New
            && !is_create
            && let Some(current) = &current
        {
            let at_current = resolve::state_events_for_auth(events, current, &pdu, rules).await?;
            if let Err(e) = state_res::check_state_dependent_auth_rules(&rules.authorization, &pdu, |t, k| {
                at_current.get(&(t.clone(), k.to_owned())).cloned()
            }) {
                soft_failure = Some(e);
            }
        }
        if soft_failure.is_none() {
            soft_failure = self.misdirected_redaction(&pdu, room_id).await?;
        }
        let after: Arc<StateMap> = match pdu.state_pair() {
            Some(key) => {
                let mut after = (*before).clone();
                after.insert(key, pdu.owned_id());
                Arc::new(after)
            }
            None => before.clone(),
        };
        let accepted_new = msg.kind == InputKind::New && soft_failure.is_none();
        let mut next_room = room.clone();
        let mut plan = None;
        if accepted_new {
            let old_current = current.clone().unwrap_or_default();
            let resolved = self.advance(&mut next_room, version, rules, &pdu, &after).await?;
            // The usual case, an event on top of the current state, changes at
            // most its own key: no need to compare whole states.
            let on_top = before_id.is_some() && before_id == room.current_state;
            let (adds, removes) = match (&resolved, on_top) {
                (None, true) => match pdu.state_pair() {
                    Some(key) => (vec![pdu.owned_id()], old_current.get(&key).cloned().into_iter().collect()),
                    None => (Vec::new(), Vec::new()),
                },
                (None, false) => diff(&old_current, &after),
                (Some(resolved), _) => diff(&old_current, resolved),
            };
            next_room.last_stream_ordering += 1;
            let new_current = resolved.clone().map(Arc::new).unwrap_or_else(|| after.clone());
            let memberships = self.store.plan_memberships(&pdu, &self.server_name, &adds, &removes).await?;
            let context = outputs::NewEventContext { msg, pdu: &pdu, room: &next_room, adds: &adds, removes: &removes };
            let outputs = outputs::for_new_event(&self.store, &self.server_name, context, &new_current).await?;
            plan = Some((resolved, memberships, outputs));
        }
        let redactions = if soft_failure.is_none() {
            outputs::plan_redactions(&self.store, rules, &pdu, room_id).await?
        } else {
            Default::default()
        };

        let mut tx = self.db().begin_write().await.map_err(anyhow::Error::from)?;
        if is_create {
            self.store.rooms.create(&mut tx, room_id, version).await?;
        }
        let before_id = match before_id {
            Some(id) => id,
            None => {
                let parent = match (room.current_state, &current) {
                    (Some(id), Some(state)) => Some((id, &**state)),
                    _ => None,
                };
                self.store.snapshots.write(&mut tx, room_id.as_str(), parent, &before).await?
            }
        };
        let after_id = if pdu.state_pair().is_some() {
            self.store.snapshots.write(&mut tx, room_id.as_str(), Some((before_id, &before)), &after).await?
        } else {
            before_id
        };
        let status = if soft_failure.is_some() { EventStatus::SoftFailed } else { EventStatus::Accepted };
        let new = NewEvent {
            pdu: &pdu,
            room_id: room_id.as_str(),
            status,
            state_before: Some(before_id),
            state_after: Some(after_id),
            stream_ordering: accepted_new.then_some(next_room.last_stream_ordering),
        };
        self.store.events.insert(&mut tx, new).await?;
        let row = EventRow {
            pdu: pdu.clone(),
            room_id: room_id.to_owned(),
            status,
            redacted: false,
            state_before: Some(before_id),
            state_after: Some(after_id),
        };

        if let Some(reason) = soft_failure {
            tx.commit().await.map_err(anyhow::Error::from)?;
            self.store.events.remember(row);
            tracing::info!(event_id = %pdu.id(), reason, "soft-failed an event");
            return Ok(Verdict::SoftFailed(reason));
        }

        let mut outputs: Vec<OutputRoomEvent> = Vec::new();
        match plan {
            Some((resolved, memberships, new_outputs)) => {
                next_room.current_state = Some(match resolved {
                    Some(resolved) => {
                        self.store
                            .snapshots
                            .write(&mut tx, room_id.as_str(), Some((after_id, &after)), &resolved)
                            .await?
                    }
                    None => after_id,
                });
                self.store.apply_memberships(&mut tx, room_id, &memberships).await?;
                self.store.rooms.update(&mut tx, room_id, &next_room).await?;
                outputs.extend(new_outputs);
            }
            None => outputs.push(outputs::historical(msg, &pdu)),
        }
        let pruned = redactions.prunes(pdu.id());
        outputs.extend(outputs::apply_redactions(&self.store, &mut tx, room_id, &pdu, redactions).await?);
        self.commit_with(tx, &outputs).await?;
        if !pruned {
            self.store.events.remember(row);
        }
        Ok(Verdict::Accepted)
    }

    /// A backfilled event older than anything known here with its state
    /// (the history before this server joined): the checks against its own
    /// auth events, already passed, are all a server that was not there can
    /// make. It is kept without state and changes neither the current state
    /// nor the extremities.
    async fn store_history(
        &self,
        msg: &InputRoomEvent,
        rules: &RoomVersionRules,
        pdu: Pdu,
        room_id: &RoomId,
    ) -> Result<Verdict, HandlerError> {
        let redactions = outputs::plan_redactions(&self.store, rules, &pdu, room_id).await?;
        let mut tx = self.db().begin_write().await.map_err(anyhow::Error::from)?;
        let new = NewEvent {
            pdu: &pdu,
            room_id: room_id.as_str(),
            status: EventStatus::Accepted,
            state_before: None,
            state_after: None,
            stream_ordering: None,
        };
        self.store.events.insert(&mut tx, new).await?;
        let mut outputs = vec![outputs::historical(msg, &pdu)];
        outputs.extend(outputs::apply_redactions(&self.store, &mut tx, room_id, &pdu, redactions).await?);
        self.commit_with(tx, &outputs).await?;
        Ok(Verdict::Accepted)
    }

    /// Commits `tx` with `outputs` in the outbox, then publishes them: a
    /// crash in between leaves them for the relay, never lost.
    async fn commit_with(
        &self,
        mut tx: sqlx::Transaction<'static, sqlx::Any>,
        outputs: &[OutputRoomEvent],
    ) -> Result<(), HandlerError> {
        self.outbox.forget_published(&mut tx).await?;
        let mut written = Vec::with_capacity(outputs.len());
        for output in outputs {
            written.push(self.outbox.write(&mut tx, output).await?);
        }
        tx.commit().await.map_err(anyhow::Error::from)?;
        if let Err(e) = self.outbox.publish(written).await {
            tracing::warn!(error = format!("{e:#}"), "cannot publish the output now");
        }
        Ok(())
    }

    /// Moves the forward extremities past the event. The new current state is
    /// the event's own state when it was built on every extremity (`None`),
    /// else the resolution of the states at all of them.
    async fn advance(
        &self,
        room: &mut Room,
        version: &ruma::RoomVersionId,
        rules: &RoomVersionRules,
        pdu: &Pdu,
        after: &Arc<StateMap>,
    ) -> Result<Option<StateMap>, HandlerError> {
        let remaining: Vec<OwnedEventId> =
            room.latest_event_ids.iter().filter(|id| !pdu.prev_ids().contains(id)).cloned().collect();
        room.latest_event_ids = remaining.iter().cloned().chain([pdu.owned_id()]).collect();
        room.max_depth = room.max_depth.max(pdu.depth().min(i64::MAX as u64) as i64);
        if remaining.is_empty() {
            return Ok(None);
        }
        let rows = self.store.events.get_many(&remaining).await?;
        let mut snapshots: Vec<i64> = rows.values().filter_map(|row| row.state_after).collect();
        snapshots.sort();
        snapshots.dedup();
        let mut states = vec![after.clone()];
        for id in snapshots {
            let state = self.store.snapshots.load(id).await?;
            if *state != **after {
                states.push(state);
            }
        }
        if states.len() == 1 {
            return Ok(None);
        }
        Ok(Some(resolve::resolve(&self.store.events, version, rules, &states, Some(pdu)).await?))
    }
}

/// State event ids that enter and leave the state going from `old` to `new`.
fn diff(old: &StateMap, new: &StateMap) -> (Vec<OwnedEventId>, Vec<OwnedEventId>) {
    let adds = new.iter().filter(|(k, v)| old.get(*k) != Some(*v)).map(|(_, v)| v.clone()).collect();
    let removes = old.iter().filter(|(k, v)| new.get(*k) != Some(*v)).map(|(_, v)| v.clone()).collect();
    (adds, removes)
}
