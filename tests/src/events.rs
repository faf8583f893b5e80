//! Events as a component would build them: hashed and signed with the
//! deployment's key.

use common::{
    api::roomserver::{InputKind, InputRoomEvent, InputVerdict},
    keys::SigningKey,
};
use ruma::{CanonicalJsonObject, OwnedEventId, RoomVersionId};
use serde_json::json;

/// A signed `m.room.create` event of a new room, and its event id.
pub fn create_event(server_name: &str, key: &SigningKey) -> (OwnedEventId, ruma::OwnedRoomId, CanonicalJsonObject) {
    let room_id: ruma::OwnedRoomId =
        format!("!{:016x}:{server_name}", rand::random::<u64>()).try_into().expect("a room id");
    let (event_id, object) = event_in_room(server_name, key, &room_id, 0);
    (event_id, room_id, object)
}

/// The `n`th distinct signed event in a room, and its id.
pub fn event_in_room(
    server_name: &str,
    key: &SigningKey,
    room_id: &ruma::RoomId,
    n: u64,
) -> (OwnedEventId, CanonicalJsonObject) {
    let sender = format!("@creator:{server_name}");
    let event = json!({
        "type": "m.room.create",
        "state_key": "",
        "content": { "creator": sender, "room_version": "10" },
        "sender": sender,
        "room_id": room_id,
        "origin_server_ts": 1_700_000_000_000u64 + n,
        "depth": 1,
        "prev_events": [],
        "auth_events": [],
    });
    let mut object: CanonicalJsonObject = serde_json::from_value(event).expect("canonical JSON");
    let rules = RoomVersionId::V10.rules().expect("room version 10");
    ruma::signatures::hash_and_sign_event(server_name, key.pair(), &mut object, &rules.redaction)
        .expect("the event signs");
    let hash = ruma::signatures::reference_hash(&object, &rules).expect("a reference hash");
    (format!("${hash}").try_into().expect("an event id"), object)
}

/// The `InputRoomEvent` a local component would publish for an event.
pub fn input(
    server_name: &str,
    room_id: &ruma::RoomId,
    event_id: OwnedEventId,
    event: &CanonicalJsonObject,
) -> InputRoomEvent {
    InputRoomEvent {
        kind: InputKind::New,
        room_id: room_id.to_owned(),
        room_version: RoomVersionId::V10,
        event_id,
        event: serde_json::value::to_raw_value(event).expect("JSON"),
        origin: server_name.try_into().expect("a server name"),
        state_before: None,
        transaction: None,
        invite_room_state: None,
        reply_to: None,
        resend: 0,
    }
}

/// A room built event by event, as another server (or a careful test) would:
/// each event names its prev and auth events explicitly, so forks can be
/// made on purpose. Events go to the roomserver over `InputRoomEvent` and
/// the verdict comes back on a reply inbox.
pub struct Dag {
    pub server_name: String,
    pub room_id: ruma::OwnedRoomId,
    pub version: RoomVersionId,
    key: SigningKey,
    bus: common::bus::Bus,
    depths: std::collections::HashMap<OwnedEventId, u64>,
}

impl Dag {
    /// Creates the room with `creator`'s create event; returns the DAG and the event's id.
    pub async fn create(deployment: &crate::Deployment, version: RoomVersionId, creator: &str) -> (Dag, OwnedEventId) {
        let bus = deployment.bus().await;
        let key = deployment.signing_key();
        let sender: ruma::OwnedUserId = creator.try_into().expect("a user id");
        let mut content = json!({ "room_version": version });
        if !version.rules().expect("known version").authorization.use_room_create_sender {
            content["creator"] = json!(creator);
        }
        let placeholder: ruma::OwnedRoomId =
            format!("!{:016x}:{}", rand::random::<u64>(), deployment.server_name).try_into().expect("a room id");
        let built = common::pdu::EventBuilder::new(&sender, "m.room.create", content)
            .state("")
            .build(&version, Some(&placeholder), &[], &[], 1, &deployment.server_name, &key)
            .expect("the create event builds");
        let mut dag = Dag {
            server_name: deployment.server_name.clone(),
            room_id: built.room_id.clone(),
            version,
            key,
            bus,
            depths: Default::default(),
        };
        let id = built.event_id.clone();
        dag.depths.insert(id.clone(), 1);
        let verdict = dag.input(&built, InputKind::New, None).await;
        assert_eq!(verdict, InputVerdict::Accepted { event_id: id.clone() });
        (dag, id)
    }

    /// Builds (without sending) an event after `prev`, authorised by `auth`.
    pub fn build(
        &mut self,
        sender: &str,
        event_type: &str,
        state_key: Option<&str>,
        content: serde_json::Value,
        prev: &[&OwnedEventId],
        auth: &[&OwnedEventId],
    ) -> common::pdu::BuiltEvent {
        let sender: ruma::OwnedUserId = sender.try_into().expect("a user id");
        let mut builder = common::pdu::EventBuilder::new(&sender, event_type, content);
        if let Some(key) = state_key {
            builder = builder.state(key);
        }
        self.place(builder, prev, auth)
    }

    /// Builds (without sending) `sender`'s redaction of `target`.
    pub fn redaction(
        &mut self,
        sender: &str,
        target: &OwnedEventId,
        prev: &[&OwnedEventId],
        auth: &[&OwnedEventId],
    ) -> common::pdu::BuiltEvent {
        let sender: ruma::OwnedUserId = sender.try_into().expect("a user id");
        let mut builder = common::pdu::EventBuilder::new(&sender, "m.room.redaction", json!({"reason": "test"}));
        builder.redacts = Some(target.clone());
        self.place(builder, prev, auth)
    }

    fn place(
        &mut self,
        builder: common::pdu::EventBuilder,
        prev: &[&OwnedEventId],
        auth: &[&OwnedEventId],
    ) -> common::pdu::BuiltEvent {
        let depth = prev.iter().filter_map(|p| self.depths.get(*p)).max().copied().unwrap_or(0) + 1;
        let prev: Vec<OwnedEventId> = prev.iter().map(|id| (*id).clone()).collect();
        let auth: Vec<OwnedEventId> = auth.iter().map(|id| (*id).clone()).collect();
        let built = builder
            .build(&self.version, Some(&self.room_id), &prev, &auth, depth, &self.server_name, &self.key)
            .expect("the event builds");
        self.depths.insert(built.event_id.clone(), depth);
        built
    }

    /// Sends a built event as `kind` and waits for the verdict; sending the
    /// same event again reaches the roomserver again.
    pub async fn input(
        &self,
        built: &common::pdu::BuiltEvent,
        kind: InputKind,
        state_before: Option<Vec<OwnedEventId>>,
    ) -> InputVerdict {
        self.input_from(&self.server_name, built, kind, state_before).await
    }

    /// As [`Dag::input`], as if `origin` had sent the event over federation.
    pub async fn input_from(
        &self,
        origin: &str,
        built: &common::pdu::BuiltEvent,
        kind: InputKind,
        state_before: Option<Vec<OwnedEventId>>,
    ) -> InputVerdict {
        use futures::StreamExt;
        let inbox = self.bus.client().new_inbox();
        let mut replies = self.bus.client().subscribe(inbox.clone()).await.expect("an inbox");
        let msg = InputRoomEvent {
            kind,
            room_id: self.room_id.clone(),
            room_version: self.version.clone(),
            event_id: built.event_id.clone(),
            event: built.to_raw(),
            origin: origin.try_into().expect("a server name"),
            state_before,
            transaction: None,
            invite_room_state: None,
            reply_to: Some(inbox),
            resend: 0,
        };
        // A message id of its own each time: a repeat must reach the roomserver,
        // which has to recognise the event itself.
        use common::bus::StreamMessage;
        let publish = async_nats::jetstream::message::PublishMessage::build()
            .payload(serde_json::to_vec(&msg).expect("JSON").into())
            .message_id(format!("{}-{:x}", msg.msg_id(), rand::random::<u64>()));
        let ack = self.bus.jetstream().send_publish(self.bus.subject_for(&msg), publish).await.expect("published");
        ack.await.expect("stored");
        let reply = tokio::time::timeout(std::time::Duration::from_secs(20), replies.next())
            .await
            .expect("a verdict within 20 s")
            .expect("the inbox stays open");
        serde_json::from_slice(&reply.payload).expect("a verdict")
    }

    /// Builds and sends a new event; returns its id and the verdict.
    pub async fn send(
        &mut self,
        sender: &str,
        event_type: &str,
        state_key: Option<&str>,
        content: serde_json::Value,
        prev: &[&OwnedEventId],
        auth: &[&OwnedEventId],
    ) -> (OwnedEventId, InputVerdict) {
        let built = self.build(sender, event_type, state_key, content, prev, auth);
        let verdict = self.input(&built, InputKind::New, None).await;
        (built.event_id, verdict)
    }

    /// Sends a new event that must be accepted; returns its id.
    pub async fn accepted(
        &mut self,
        sender: &str,
        event_type: &str,
        state_key: Option<&str>,
        content: serde_json::Value,
        prev: &[&OwnedEventId],
        auth: &[&OwnedEventId],
    ) -> OwnedEventId {
        let (id, verdict) = self.send(sender, event_type, state_key, content, prev, auth).await;
        assert_eq!(verdict, InputVerdict::Accepted { event_id: id.clone() }, "{event_type} by {sender}");
        id
    }

    /// The room's current state as (type, state_key) → event id.
    pub async fn current_state(&self) -> std::collections::BTreeMap<(String, String), OwnedEventId> {
        use common::api::roomserver::{QueryCurrentState, QueryCurrentStateRequest};
        let response = self
            .bus
            .call::<QueryCurrentState>(&QueryCurrentStateRequest { room_id: self.room_id.clone(), filter: None })
            .await
            .expect("the roomserver answers");
        response
            .state
            .into_iter()
            .map(|e| {
                let v: serde_json::Value = serde_json::from_str(e.event.get()).expect("JSON");
                let key = (v["type"].as_str().unwrap().to_owned(), v["state_key"].as_str().unwrap().to_owned());
                (key, e.event_id)
            })
            .collect()
    }
}
