//! A fake remote server (`tests::remote`) that has joined a room of one of
//! our servers the proper way (make_join, send_join), for scenarios in
//! which another server asks ours things or misbehaves.
#![allow(dead_code)]

use axum::http::Method;
use common::{
    keys::SigningKey,
    pdu::{self, BuiltEvent, EventBuilder},
};
use ruma::{CanonicalJsonObject, OwnedEventId, RoomId, RoomVersionId};
use serde_json::{Value, json};
use tests::{
    Deployment, Mode, Options,
    client::{Client, enc},
    remote::RemoteServer,
    tls::TestCa,
};

use crate::sync_support::create_room;

pub struct Scene {
    pub hs: Deployment,
    pub remote: RemoteServer,
    pub http: reqwest::Client,
    pub alice: Client,
    pub room_id: String,
    pub mallory: String,
    /// The auth events of mallory's messages: create, power levels, her join.
    pub auth: Vec<OwnedEventId>,
    pub latest: OwnedEventId,
    /// Our server's answer to her send_join.
    pub joined: Value,
    _ca: TestCa,
}

/// A room mallory joined: what her events there are placed on.
pub struct Joined {
    pub room_id: String,
    /// Create, power levels, her join.
    pub auth: Vec<OwnedEventId>,
    pub latest: OwnedEventId,
    /// Our server's answer to her send_join.
    pub answer: Value,
}

impl Scene {
    pub async fn start() -> Scene {
        Self::start_in(json!({"preset": "public_chat", "room_version": "10"})).await
    }

    /// Like [`Scene::start`], in a room created with `create` (a version 10 room).
    pub async fn start_in(create: Value) -> Scene {
        let ca = TestCa::new("federation test CA");
        let hs = Deployment::start_with(Options::new(Mode::Monolith).federating(&ca)).await;
        let remote = RemoteServer::start(&ca).await;
        let http = hs.federation_client();
        let alice = hs.new_user().await;
        let room_id = create_room(&alice, create).await;
        let mallory = format!("@mallory:{}", remote.server_name);
        let mut scene = Scene {
            hs,
            remote,
            http,
            alice,
            room_id,
            mallory,
            auth: Vec::new(),
            latest: "$x".try_into().unwrap(),
            joined: Value::Null,
            _ca: ca,
        };
        let joined = scene.join(&scene.room_id).await;
        (scene.auth, scene.latest, scene.joined) = (joined.auth, joined.latest, joined.answer);
        scene
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        key: Option<&SigningKey>,
    ) -> (u16, Value) {
        self.remote.request(&self.http, &self.hs.federation_url, &self.hs.server_name, method, path, body, key).await
    }

    /// Mallory joins a public room of alice's.
    pub async fn join(&self, room_id: &str) -> Joined {
        let path = format!("/_matrix/federation/v1/make_join/{}/{}?ver=10", enc(room_id), enc(&self.mallory));
        let (status, made) = self.call(Method::GET, &path, None, None).await;
        assert_eq!(status, 200, "make_join: {made}");
        let template: CanonicalJsonObject = serde_json::from_value(made["event"].clone()).unwrap();
        let join = pdu::finish(template, &RoomVersionId::V10, &self.remote.server_name, &self.remote.key).unwrap();
        let path = format!("/_matrix/federation/v2/send_join/{}/{}", enc(room_id), enc(join.event_id.as_str()));
        let (status, answer) =
            self.call(Method::PUT, &path, Some(&serde_json::to_value(&join.object).unwrap()), None).await;
        assert_eq!(status, 200, "send_join: {answer}");
        let state = self.alice.get(&format!("/rooms/{}/state", enc(room_id))).await.expect(200);
        let id_of = |kind: &str| -> OwnedEventId {
            let event = state
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["type"] == kind)
                .unwrap_or_else(|| panic!("{kind}: {state}"));
            event["event_id"].as_str().unwrap().try_into().unwrap()
        };
        Joined {
            room_id: room_id.to_owned(),
            auth: vec![id_of("m.room.create"), id_of("m.room.power_levels"), join.event_id.clone()],
            latest: join.event_id,
            answer,
        }
    }

    /// An event of mallory's in a room she joined, on its latest event.
    pub fn event_in(&self, room: &Joined, kind: &str, content: Value, redacts: Option<&OwnedEventId>) -> BuiltEvent {
        let room_id = RoomId::parse(&room.room_id).unwrap();
        let mut builder = EventBuilder::new(self.mallory.as_str().try_into().unwrap(), kind, content);
        builder.redacts = redacts.cloned();
        builder
            .build(
                &RoomVersionId::V10,
                Some(&room_id),
                std::slice::from_ref(&room.latest),
                &room.auth,
                100,
                &self.remote.server_name,
                &self.remote.key,
            )
            .unwrap()
    }

    /// A message from mallory on the room's latest event, signed with `key`
    /// (hers unless given) under her server's name.
    pub fn message(&self, body: &str, key: Option<&SigningKey>) -> BuiltEvent {
        let room_id = RoomId::parse(&self.room_id).unwrap();
        EventBuilder::new(
            self.mallory.as_str().try_into().unwrap(),
            "m.room.message",
            json!({"msgtype": "m.text", "body": body}),
        )
        .build(
            &RoomVersionId::V10,
            Some(&room_id),
            std::slice::from_ref(&self.latest),
            &self.auth,
            100,
            &self.remote.server_name,
            key.unwrap_or(&self.remote.key),
        )
        .unwrap()
    }

    pub async fn send(&self, txn_id: &str, pdus: Vec<Value>, key: Option<&SigningKey>) -> (u16, Value) {
        let body = json!({"origin": self.remote.server_name, "origin_server_ts": 1, "pdus": pdus});
        self.call(Method::PUT, &format!("/_matrix/federation/v1/send/{txn_id}"), Some(&body), key).await
    }

    /// The event as our server serves it to the remote server, if it does.
    pub async fn served(&self, event_id: &OwnedEventId) -> Option<Value> {
        let (status, body) = self
            .call(Method::GET, &format!("/_matrix/federation/v1/event/{}", enc(event_id.as_str())), None, None)
            .await;
        (status == 200).then(|| body["pdus"][0].clone())
    }
}

pub fn json_of(event: &BuiltEvent) -> Value {
    serde_json::to_value(&event.object).unwrap()
}
