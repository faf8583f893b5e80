//! Servers that know only the older (v1) membership endpoints: an invite
//! of one of their users that v2 cannot deliver (404 M_UNRECOGNIZED) goes
//! again through v1, as the bare event with the stripped state in its
//! `unsigned`, and the event they countersign enters the room; a join
//! through such a server whose v2 `send_join` is unknown goes through v1
//! and its `[200, {…}]` answer. The older server is a fake in the test
//! process.

mod sync_support;

use common::pdu::{self, BuiltEvent, EventBuilder};
use ruma::{CanonicalJsonObject, OwnedEventId, RoomId, RoomVersionId, UserId};
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

#[tokio::test]
async fn a_join_goes_through_v1_send_join_to_a_server_without_v2() {
    let ca = TestCa::new("federation test CA");
    let hs = Deployment::start_with(Options::new(Mode::Monolith).federating(&ca)).await;
    let remote = RemoteServer::start(&ca).await;
    let alice = hs.new_user().await;

    // The older server's room: create, carol's join, power levels, public join rules.
    let room_id = RoomId::parse(format!("!old:{}", remote.server_name)).unwrap();
    let carol = UserId::parse(format!("@carol:{}", remote.server_name)).unwrap();
    let event = |kind: &str, content: Value, prev: &[&BuiltEvent], auth: &[&BuiltEvent], depth: u64| {
        let prev: Vec<OwnedEventId> = prev.iter().map(|e| e.event_id.clone()).collect();
        let auth: Vec<OwnedEventId> = auth.iter().map(|e| e.event_id.clone()).collect();
        let key = if kind == "m.room.member" { carol.to_string() } else { String::new() };
        EventBuilder::new(&carol, kind, content)
            .state(key)
            .build(&RoomVersionId::V10, Some(&room_id), &prev, &auth, depth, &remote.server_name, &remote.key)
            .unwrap()
    };
    let create = event("m.room.create", json!({"creator": carol, "room_version": "10"}), &[], &[], 1);
    let join = event("m.room.member", json!({"membership": "join"}), &[&create], &[&create], 2);
    let power = event(
        "m.room.power_levels",
        json!({"users": {carol.as_str(): 100}, "users_default": 0, "state_default": 50, "events_default": 0}),
        &[&join],
        &[&create, &join],
        3,
    );
    let rules = event("m.room.join_rules", json!({"join_rule": "public"}), &[&power], &[&create, &join, &power], 4);
    let state: Vec<Value> =
        [&create, &join, &power, &rules].iter().map(|e| serde_json::to_value(&e.object).unwrap()).collect();
    let template = json!({
        "type": "m.room.member",
        "room_id": room_id,
        "sender": alice.user_id,
        "state_key": alice.user_id,
        "content": {"membership": "join"},
        "prev_events": [rules.event_id],
        "auth_events": [create.event_id, power.event_id, rules.event_id],
        "depth": 5,
        "origin_server_ts": tests::remote::now_ms(),
    });
    remote.reply("/_matrix/federation/v1/make_join/*", 200, json!({"room_version": "10", "event": template}));
    let origin = remote.server_name.clone();
    remote.reply(
        "/_matrix/federation/v1/send_join/*",
        200,
        json!([200, {"origin": origin, "state": state, "auth_chain": state}]),
    );

    let path = format!("/join/{}?via={}", enc(room_id.as_str()), enc(&remote.server_name));
    let joined = alice.post(&path, json!({})).await.expect(200);
    assert_eq!(joined["room_id"], room_id.as_str(), "{joined}");
    let members = alice.get(&format!("/rooms/{}/joined_members", enc(room_id.as_str()))).await.expect(200);
    assert!(members["joined"].get(carol.as_str()).is_some(), "{members}");
    let sends: Vec<String> = remote
        .recorded()
        .iter()
        .filter(|r| r.uri.contains("/send_join/"))
        .map(|r| r.uri.split('/').take(5).collect::<Vec<_>>().join("/"))
        .collect();
    assert_eq!(sends, ["/_matrix/federation/v2/send_join", "/_matrix/federation/v1/send_join"], "v2 first, then v1");
}
