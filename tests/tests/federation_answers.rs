//! What our server answers another server in a room of ours, played by a
//! fake remote server that joined it: `send_join`'s `auth_chain` holds the
//! whole auth chain of the returned state, the events that are also in the
//! state included; `get_missing_events` takes a body with only
//! `latest_events` (limit 10, min_depth 0, no earliest events) or none at
//! all; `timestamp_to_event` finds the event nearest a time either way; the
//! v1 `send_leave`, `send_join` and `invite` older servers use answer
//! `[200, {…}]`.

mod federation_support;
mod sync_support;

use std::collections::HashSet;

use axum::http::Method;
use common::pdu;
use federation_support::Scene;
use ruma::{CanonicalJsonObject, OwnedEventId, RoomVersionId};
use serde_json::{Value, json};
use sync_support::send_text;
use tests::client::enc;

fn id_of(event: &Value) -> OwnedEventId {
    let object: CanonicalJsonObject = serde_json::from_value(event.clone()).expect("an event object");
    pdu::event_id_of(&object, &RoomVersionId::V10).expect("an event id")
}

#[tokio::test]
async fn send_join_answers_the_whole_auth_chain_of_the_state() {
    let scene = Scene::start().await;
    let state = scene.joined["state"].as_array().expect("state");
    let chain = scene.joined["auth_chain"].as_array().expect("auth_chain");
    let chain_ids: HashSet<OwnedEventId> = chain.iter().map(id_of).collect();
    for event in state {
        for auth_id in event["auth_events"].as_array().expect("auth_events") {
            let auth_id: OwnedEventId = auth_id.as_str().unwrap().try_into().unwrap();
            assert!(chain_ids.contains(&auth_id), "{auth_id}, an auth event of {event}, is in the chain: {chain:?}");
        }
    }
    let kinds: HashSet<&str> = chain.iter().filter_map(|e| e["type"].as_str()).collect();
    for kind in ["m.room.create", "m.room.power_levels", "m.room.join_rules", "m.room.member"] {
        assert!(kinds.contains(kind), "{kind} is in the auth chain though also in the state: {kinds:?}");
    }
}

#[tokio::test]
async fn get_missing_events_defaults_what_the_body_leaves_out() {
    let scene = Scene::start().await;
    let mut sent = Vec::new();
    for n in 0..12 {
        sent.push(send_text(&scene.alice, &scene.room_id, &format!("message {n}")).await);
    }
    let path = format!("/_matrix/federation/v1/get_missing_events/{}", enc(&scene.room_id));
    let last = sent.last().unwrap();
    let (status, body) = scene.call(Method::POST, &path, Some(&json!({"latest_events": [last]})), None).await;
    assert_eq!(status, 200, "{body}");
    let events = body["events"].as_array().expect("events");
    assert_eq!(events.len(), 10, "the default limit is 10: {body}");
    let ids: HashSet<String> = events.iter().map(|e| id_of(e).to_string()).collect();
    assert!(ids.contains(&sent[10]), "the event before the latest is missing: {body}");

    let (status, body) = scene.call(Method::POST, &path, Some(&json!({})), None).await;
    assert_eq!((status, &body), (200, &json!({"events": []})), "nothing asked, nothing answered");
}

#[tokio::test]
async fn timestamp_to_event_finds_the_event_nearest_a_time() {
    let scene = Scene::start().await;
    let first = send_text(&scene.alice, &scene.room_id, "first").await;
    let last = send_text(&scene.alice, &scene.room_id, "last").await;
    let ts_of = |event_id: String| {
        let alice = &scene.alice;
        let path = format!("/rooms/{}/event/{}", enc(&scene.room_id), enc(&event_id));
        async move { alice.get(&path).await.expect(200)["origin_server_ts"].as_u64().expect("a timestamp") }
    };
    let (first_ts, last_ts) = (ts_of(first.clone()).await, ts_of(last.clone()).await);
    let scene = &scene;
    let ask = |ts: u64, dir: &str| {
        let path = format!("/_matrix/federation/v1/timestamp_to_event/{}?ts={ts}&dir={dir}", enc(&scene.room_id));
        async move { scene.call(Method::GET, &path, None, None).await }
    };

    let (status, body) = ask(last_ts, "b").await;
    assert_eq!((status, body["event_id"].as_str()), (200, Some(last.as_str())), "{body}");
    assert_eq!(body["origin_server_ts"], last_ts, "{body}");
    let (status, body) = ask(first_ts, "f").await;
    assert_eq!((status, body["origin_server_ts"].as_u64()), (200, Some(first_ts)), "{body}");
    if first_ts < last_ts {
        assert_eq!(body["event_id"], first.as_str(), "{body}");
    }
    let (status, body) = ask(last_ts + 1, "f").await;
    assert_eq!((status, body["errcode"].as_str()), (404, Some("M_NOT_FOUND")), "nothing after the last: {body}");
    let (status, body) = ask(0, "b").await;
    assert_eq!((status, body["errcode"].as_str()), (404, Some("M_NOT_FOUND")), "nothing before the first: {body}");
}

#[tokio::test]
async fn v1_send_leave_and_send_join_answer_in_the_v1_shape() {
    let scene = Scene::start().await;
    let signed = |made: &Value| {
        let template: CanonicalJsonObject = serde_json::from_value(made["event"].clone()).unwrap();
        pdu::finish(template, &RoomVersionId::V10, &scene.remote.server_name, &scene.remote.key).unwrap()
    };
    let room = enc(&scene.room_id);
    let user = enc(&scene.mallory);

    let (status, made) =
        scene.call(Method::GET, &format!("/_matrix/federation/v1/make_leave/{room}/{user}"), None, None).await;
    assert_eq!(status, 200, "{made}");
    let leave = signed(&made);
    let path = format!("/_matrix/federation/v1/send_leave/{room}/{}", enc(leave.event_id.as_str()));
    let (status, body) =
        scene.call(Method::PUT, &path, Some(&serde_json::to_value(&leave.object).unwrap()), None).await;
    assert_eq!((status, &body), (200, &json!([200, {}])), "{body}");

    let path = format!("/_matrix/federation/v1/make_join/{room}/{user}?ver=10");
    let (status, made) = scene.call(Method::GET, &path, None, None).await;
    assert_eq!(status, 200, "{made}");
    let join = signed(&made);
    let path = format!("/_matrix/federation/v1/send_join/{room}/{}", enc(join.event_id.as_str()));
    let (status, body) = scene.call(Method::PUT, &path, Some(&serde_json::to_value(&join.object).unwrap()), None).await;
    assert_eq!((status, &body[0]), (200, &json!(200)), "{body}");
    assert_eq!(body[1]["origin"], scene.hs.server_name.as_str(), "{body}");
    let state = body[1]["state"].as_array().expect("state");
    assert!(state.iter().any(|e| e["type"] == "m.room.create"), "{body}");
    assert!(body[1]["auth_chain"].as_array().is_some_and(|chain| !chain.is_empty()), "{body}");
    let members = scene.alice.get(&format!("/rooms/{room}/joined_members")).await.expect(200);
    assert!(members["joined"].get(&scene.mallory).is_some(), "mallory is back: {members}");
}

#[tokio::test]
async fn a_v1_invite_is_cosigned_and_answered_in_the_v1_shape() {
    let room = json!({"preset": "public_chat", "room_version": "10", "power_level_content_override": {"invite": 0}});
    let scene = Scene::start_in(room).await;
    let bob = scene.hs.new_user().await;
    let joined = federation_support::Joined {
        room_id: scene.room_id.clone(),
        auth: scene.auth.clone(),
        latest: scene.latest.clone(),
        answer: Value::Null,
    };
    let room_id = ruma::RoomId::parse(&joined.room_id).unwrap();
    let invite = common::pdu::EventBuilder::new(
        scene.mallory.as_str().try_into().unwrap(),
        "m.room.member",
        json!({"membership": "invite"}),
    )
    .state(bob.user_id.as_str())
    .build(
        &RoomVersionId::V10,
        Some(&room_id),
        std::slice::from_ref(&joined.latest),
        &joined.auth,
        100,
        &scene.remote.server_name,
        &scene.remote.key,
    )
    .unwrap();
    let mut body = serde_json::to_value(&invite.object).unwrap();
    body["unsigned"] = json!({"invite_room_state": [{"type": "m.room.name", "state_key": "", "sender": scene.mallory, "content": {"name": "v1 land"}}]});
    let path = format!("/_matrix/federation/v1/invite/{}/{}", enc(&scene.room_id), enc(invite.event_id.as_str()));
    let (status, answer) = scene.call(Method::PUT, &path, Some(&body), None).await;
    assert_eq!((status, &answer[0]), (200, &json!(200)), "{answer}");
    let signed = &answer[1]["event"];
    assert!(signed["signatures"].get(&scene.hs.server_name).is_some(), "co-signed by us: {answer}");
    assert_eq!(id_of(signed), invite.event_id, "the same event: {answer}");
}

#[tokio::test]
async fn a_join_for_a_user_of_another_server_is_forbidden() {
    let scene = Scene::start().await;
    let room = enc(&scene.room_id);
    let user = enc(&scene.mallory);
    let (status, made) =
        scene.call(Method::GET, &format!("/_matrix/federation/v1/make_join/{room}/{user}?ver=10"), None, None).await;
    assert_eq!(status, 200, "{made}");
    let mut template: CanonicalJsonObject = serde_json::from_value(made["event"].clone()).unwrap();
    for field in ["sender", "state_key"] {
        template.insert(field.into(), "@eve:elsewhere.example".into());
    }
    let join = pdu::finish(template, &RoomVersionId::V10, &scene.remote.server_name, &scene.remote.key).unwrap();
    let path = format!("/_matrix/federation/v2/send_join/{room}/{}", enc(join.event_id.as_str()));
    let (status, body) = scene.call(Method::PUT, &path, Some(&serde_json::to_value(&join.object).unwrap()), None).await;
    assert_eq!((status, body["errcode"].as_str()), (403, Some("M_FORBIDDEN")), "{body}");
}
