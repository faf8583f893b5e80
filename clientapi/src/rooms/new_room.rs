//! A room's first events, built here one after the other: the state they
//! create is known, so each is placed after the previous one and authorised
//! by the state so far, and none is published until all of them passed.

use std::collections::HashMap;

use common::{
    api::roomserver::StateKey,
    pdu::{BuiltEvent, EventBuilder, Pdu},
};
use ruma::{
    OwnedEventId, OwnedRoomId, RoomId, RoomVersionId, events::TimelineEventType, room_version_rules::RoomVersionRules,
    state_res,
};

use super::{MatrixError, ROOM_VERSIONS, build_error, check_auth, publish_and_wait, version_rules};
use crate::App;

pub(crate) struct NewRoom {
    version: RoomVersionId,
    rules: RoomVersionRules,
    room_id: Option<OwnedRoomId>,
    state: HashMap<StateKey, Pdu>,
    by_id: HashMap<OwnedEventId, Pdu>,
    events: Vec<BuiltEvent>,
}

impl NewRoom {
    /// A room of `version`; `room_id` is `None` for versions whose room id
    /// comes from the create event.
    pub(crate) fn new(version: &RoomVersionId, room_id: Option<OwnedRoomId>) -> Result<Self, MatrixError> {
        Ok(Self {
            rules: version_rules(version)?,
            version: version.clone(),
            room_id,
            state: HashMap::new(),
            by_id: HashMap::new(),
            events: Vec::new(),
        })
    }

    /// The room id, known once the create event is built.
    pub(crate) fn room_id(&self) -> Option<&RoomId> {
        self.room_id.as_deref()
    }

    pub(crate) fn rules(&self) -> &RoomVersionRules {
        &self.rules
    }

    /// Builds the next event and checks it against the state so far.
    pub(crate) fn push(&mut self, app: &App, builder: EventBuilder) -> Result<(), MatrixError> {
        let auth_types = builder
            .auth_types(&self.version)
            .map_err(|e| MatrixError::bad_json(format!("Invalid {} content: {e:#}", builder.event_type)))?;
        let auth_events: Vec<OwnedEventId> =
            auth_types.iter().filter_map(|key| self.state.get(key)).map(Pdu::owned_id).collect();
        let prev_events: Vec<OwnedEventId> = self.events.last().map(|e| e.event_id.clone()).into_iter().collect();
        let built = builder
            .build(
                &self.version,
                self.room_id.as_deref(),
                &prev_events,
                &auth_events,
                self.events.len() as u64 + 1,
                app.rt.config.global.server_name.as_str(),
                &app.rt.key,
            )
            .map_err(build_error)?;
        let pdu = built.to_pdu();
        state_res::check_state_independent_auth_rules(&self.rules.authorization, &pdu, |id| {
            self.by_id.get(id).cloned()
        })
        .map_err(|reason| {
            if builder.event_type == TimelineEventType::RoomCreate {
                MatrixError::invalid_param(format!("Invalid creation content: {reason}"))
            } else {
                MatrixError::forbidden(format!("The {} event is not allowed: {reason}", builder.event_type))
            }
        })?;
        check_auth(&self.rules, &pdu, &self.state)?;
        self.room_id.get_or_insert_with(|| built.room_id.clone());
        if let Some(key) = pdu.state_pair() {
            self.state.insert(key, pdu.clone());
        }
        self.by_id.insert(built.event_id.clone(), pdu);
        self.events.push(built);
        Ok(())
    }

    /// Publishes every event and returns the room id once the roomserver accepted them all.
    pub(crate) async fn publish(&self, app: &App) -> Result<OwnedRoomId, MatrixError> {
        let room_id = self.room_id.clone().ok_or_else(|| MatrixError::internal("a room without a create event"))?;
        publish_and_wait(app, &self.version, &self.events, None).await?;
        ROOM_VERSIONS.write().expect("not poisoned").insert(room_id.clone(), self.version.clone());
        Ok(room_id)
    }
}
