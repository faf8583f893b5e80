//! What our server answers another server in a room of ours, played by a
//! fake remote server that joined it: `send_join`'s `auth_chain` holds the
//! whole auth chain of the returned state, the events that are also in the
//! state included; `get_missing_events` takes a body with only
//! `latest_events` (limit 10, min_depth 0, no earliest events) or none at
//! all.

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
