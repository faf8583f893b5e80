//! Servers that know only the older (v1) membership endpoints: an invite
//! of one of their users that v2 cannot deliver (404 M_UNRECOGNIZED) goes
//! again through v1, as the bare event with the stripped state in its
//! `unsigned`, and the event they countersign enters the room. The older
//! server is a fake in the test process.

mod sync_support;

use common::pdu;
use ruma::{CanonicalJsonObject, RoomVersionId};
use serde_json::{Value, json};
use sync_support::create_room;
use tests::{Deployment, Mode, Options, client::enc, remote::RemoteServer, tls::TestCa};

#[tokio::test]
async fn an_invite_goes_through_v1_to_a_server_without_v2() {
    let ca = TestCa::new("federation test CA");
    let hs = Deployment::start_with(Options::new(Mode::Monolith).federating(&ca)).await;
    let remote = RemoteServer::start(&ca).await;
    let (name, key) = (remote.server_name.clone(), remote.key.clone());
    remote.answer_with("/_matrix/federation/v1/invite/*", move |request| {
        let mut event: CanonicalJsonObject = serde_json::from_slice(&request.body).expect("the bare event");
        event.remove("unsigned");
        let rules = pdu::rules(&RoomVersionId::V10).unwrap();
        ruma::signatures::hash_and_sign_event(&name, key.pair(), &mut event, &rules.redaction).unwrap();
        (200, json!([200, { "event": event }]))
    });
    let alice = hs.new_user().await;
    let room_id =
        create_room(&alice, json!({"preset": "private_chat", "room_version": "10", "name": "old friends"})).await;
    let bob = format!("@bob:{}", remote.server_name);

    alice.post(&format!("/rooms/{}/invite", enc(&room_id)), json!({"user_id": bob})).await.expect(200);
    let member = alice.get(&format!("/rooms/{}/state/m.room.member/{}", enc(&room_id), enc(&bob))).await.expect(200);
    assert_eq!(member["membership"], "invite", "{member}");

    // The invite itself follows in a transaction, once in the room.
    let invites: Vec<_> = remote.recorded().into_iter().filter(|r| r.uri.contains("/invite/")).collect();
    let asked: Vec<(String, String)> = invites
        .iter()
        .map(|r| (r.method.to_string(), r.uri.split('/').take(5).collect::<Vec<_>>().join("/")))
        .collect();
    assert_eq!(
        asked,
        [
            ("PUT".to_owned(), "/_matrix/federation/v2/invite".to_owned()),
            ("PUT".to_owned(), "/_matrix/federation/v1/invite".to_owned())
        ],
        "v2 first, then v1"
    );
    let v1: Value = serde_json::from_slice(&invites[1].body).unwrap();
    assert_eq!((&v1["type"], &v1["state_key"]), (&json!("m.room.member"), &json!(bob)), "the bare event: {v1}");
    let stripped = v1["unsigned"]["invite_room_state"].as_array().expect("the stripped state in unsigned");
    assert!(stripped.iter().any(|e| e["content"]["name"] == "old friends"), "{v1}");
}
