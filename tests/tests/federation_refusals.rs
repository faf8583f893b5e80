//! What another server may not do to ours over federation, played by a fake
//! remote server in the test process that joins a room of ours properly
//! (make_join, send_join) and then misbehaves: requests with a forged,
//! missing or misdirected X-Matrix signature get 401 M_UNAUTHORIZED; a PDU
//! signed with a key that is not its server's is refused; one whose content
//! does not match its hash is kept redacted; an oversized PDU is refused; a
//! transaction sent again under the same id is answered as the first time
//! and its new PDUs are never taken. Nothing refused is served afterwards.

mod sync_support;

use axum::http::Method;
use common::{
    keys::SigningKey,
    pdu::{self, BuiltEvent, EventBuilder},
};
use ruma::{CanonicalJsonObject, OwnedEventId, RoomId, RoomVersionId};
use serde_json::{Value, json};
use sync_support::{create_room, sync_until};
use tests::{
    Deployment, Mode, Options,
    client::{Client, enc},
    remote::RemoteServer,
    tls::TestCa,
};

struct Scene {
    hs: Deployment,
    remote: RemoteServer,
    http: reqwest::Client,
    alice: Client,
    room_id: String,
    mallory: String,
    /// The auth events of mallory's messages: create, power levels, her join.
    auth: Vec<OwnedEventId>,
    latest: OwnedEventId,
    _ca: TestCa,
}

impl Scene {
    async fn start() -> Scene {
        let ca = TestCa::new("federation test CA");
        let hs = Deployment::start_with(Options::new(Mode::Monolith).federating(&ca)).await;
        let remote = RemoteServer::start(&ca).await;
        let http = hs.federation_client();
        let alice = hs.new_user().await;
        let room_id = create_room(&alice, json!({"preset": "public_chat", "room_version": "10"})).await;
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
            _ca: ca,
        };
        scene.join().await;
        scene
    }

    async fn call(&self, method: Method, path: &str, body: Option<&Value>, key: Option<&SigningKey>) -> (u16, Value) {
        self.remote.request(&self.http, &self.hs.federation_url, &self.hs.server_name, method, path, body, key).await
    }

    async fn join(&mut self) {
        let path = format!("/_matrix/federation/v1/make_join/{}/{}?ver=10", enc(&self.room_id), enc(&self.mallory));
        let (status, made) = self.call(Method::GET, &path, None, None).await;
        assert_eq!(status, 200, "make_join: {made}");
        let template: CanonicalJsonObject = serde_json::from_value(made["event"].clone()).unwrap();
        let join = pdu::finish(template, &RoomVersionId::V10, &self.remote.server_name, &self.remote.key).unwrap();
        let path = format!("/_matrix/federation/v2/send_join/{}/{}", enc(&self.room_id), enc(join.event_id.as_str()));
        let (status, joined) =
            self.call(Method::PUT, &path, Some(&serde_json::to_value(&join.object).unwrap()), None).await;
        assert_eq!(status, 200, "send_join: {joined}");
        let state = self.alice.get(&format!("/rooms/{}/state", enc(&self.room_id))).await.expect(200);
        let id_of = |kind: &str| -> OwnedEventId {
            let event = state
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["type"] == kind)
                .unwrap_or_else(|| panic!("{kind}: {state}"));
            event["event_id"].as_str().unwrap().try_into().unwrap()
        };
        self.auth = vec![id_of("m.room.create"), id_of("m.room.power_levels"), join.event_id.clone()];
        self.latest = join.event_id;
    }

    /// A message from mallory on the room's latest event, signed with `key`
    /// (hers unless given) under her server's name.
    fn message(&self, body: &str, key: Option<&SigningKey>) -> BuiltEvent {
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

    async fn send(&self, txn_id: &str, pdus: Vec<Value>, key: Option<&SigningKey>) -> (u16, Value) {
        let body = json!({"origin": self.remote.server_name, "origin_server_ts": 1, "pdus": pdus});
        self.call(Method::PUT, &format!("/_matrix/federation/v1/send/{txn_id}"), Some(&body), key).await
    }

    /// The event as our server serves it to the remote server, if it does.
    async fn served(&self, event_id: &OwnedEventId) -> Option<Value> {
        let (status, body) = self
            .call(Method::GET, &format!("/_matrix/federation/v1/event/{}", enc(event_id.as_str())), None, None)
            .await;
        (status == 200).then(|| body["pdus"][0].clone())
    }
}

fn json_of(event: &BuiltEvent) -> Value {
    serde_json::to_value(&event.object).unwrap()
}

#[tokio::test]
async fn forged_and_misdirected_requests_are_unauthorized() {
    let scene = Scene::start().await;
    let good = scene.message("a message never taken", None);
    let other = SigningKey::generate();
    let (status, body) = scene.send("forged", vec![json_of(&good)], Some(&other)).await;
    assert_eq!((status, body["errcode"].as_str()), (401, Some("M_UNAUTHORIZED")), "{body}");

    let path = format!("/_matrix/federation/v1/event/{}", enc(scene.latest.as_str()));
    let unsigned = scene.http.get(format!("{}{path}", scene.hs.federation_url)).send().await.unwrap();
    assert_eq!(unsigned.status(), 401);
    let body: Value = unsigned.json().await.unwrap();
    assert_eq!(body["errcode"], "M_UNAUTHORIZED", "{body}");

    let misdirected = scene
        .remote
        .request(&scene.http, &scene.hs.federation_url, "elsewhere.example", Method::GET, &path, None, None)
        .await;
    assert_eq!((misdirected.0, misdirected.1["errcode"].as_str()), (401, Some("M_UNAUTHORIZED")), "{misdirected:?}");

    // Properly signed, the same request is answered.
    assert!(scene.served(&scene.latest).await.is_some(), "mallory's join is served to her server");
    assert!(scene.served(&good.event_id).await.is_none(), "the forged transaction's PDU was never taken");
}

#[tokio::test]
async fn bad_pdus_are_refused_and_a_replayed_transaction_changes_nothing() {
    let scene = Scene::start().await;
    let good = scene.message("a genuine message", None);
    let (status, body) = scene.send("txn1", vec![json_of(&good)], None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["pdus"][good.event_id.as_str()], json!({}), "{body}");
    sync_until(&scene.alice, None, |sync| {
        sync["rooms"]["join"][&scene.room_id]["timeline"]["events"]
            .as_array()
            .is_some_and(|events| events.iter().any(|e| e["content"]["body"] == "a genuine message"))
    })
    .await;

    // The same transaction id with other PDUs: the first answer, nothing new taken.
    let sneaky = scene.message("smuggled in a replay", None);
    let (status, replayed) = scene.send("txn1", vec![json_of(&sneaky)], None).await;
    assert_eq!(status, 200, "{replayed}");
    assert_eq!(replayed, body, "a replayed transaction gets the first answer");

    // Signed by a key that is not the server's.
    let impostor = SigningKey::generate();
    let forged = scene.message("signed by someone else", Some(&impostor));
    // Content changed after signing: its hash no longer matches.
    let mut tampered = scene.message("the original words", None);
    tampered.object.insert(
        "content".into(),
        serde_json::from_value(json!({"msgtype": "m.text", "body": "words put in its mouth"})).unwrap(),
    );
    // Larger than the 64 KiB a PDU may be (no server would sign it: it is
    // made bigger after signing).
    let mut oversized = scene.message("soon to be too large", None);
    oversized.object.insert(
        "content".into(),
        serde_json::from_value(json!({"msgtype": "m.text", "body": "x".repeat(70_000)})).unwrap(),
    );
    let (status, body) =
        scene.send("txn2", vec![json_of(&forged), json_of(&tampered), json_of(&oversized)], None).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["pdus"][forged.event_id.as_str()]["error"].is_string(), "the forged PDU is refused: {body}");
    assert!(body["pdus"][oversized.event_id.as_str()]["error"].is_string(), "the oversized PDU is refused: {body}");
    assert_eq!(body["pdus"][tampered.event_id.as_str()], json!({}), "the tampered PDU is kept, redacted: {body}");

    assert!(scene.served(&sneaky.event_id).await.is_none(), "the replay's PDU was never taken");
    assert!(scene.served(&forged.event_id).await.is_none(), "the forged PDU is not stored");
    assert!(scene.served(&oversized.event_id).await.is_none(), "the oversized PDU is not stored");
    let kept = scene.served(&tampered.event_id).await.expect("the tampered PDU is stored");
    assert_eq!(kept["content"], json!({}), "only what the signatures cover is kept: {kept}");
    let messages =
        scene.alice.get(&format!("/rooms/{}/messages?dir=b&limit=50", enc(&scene.room_id))).await.expect(200);
    let bodies: Vec<&str> =
        messages["chunk"].as_array().unwrap().iter().filter_map(|e| e["content"]["body"].as_str()).collect();
    assert_eq!(bodies, vec!["a genuine message"], "{messages}");
}
