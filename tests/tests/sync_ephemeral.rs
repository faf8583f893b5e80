//! Typing, receipts (`m.read`, `m.read.private` only to its owner, threaded
//! receipts), global and room account data, and presence with `set_presence`
//! in a sync.

mod sync_support;

use serde_json::{Value, json};
use sync_support::*;
use tests::{Deployment, Mode, client::Client, client::enc};

/// The room's ephemeral events of one type in a response.
fn ephemeral<'a>(answer: &'a Value, room: &str, event_type: &str) -> Vec<&'a Value> {
    answer["rooms"]["join"][room]["ephemeral"]["events"]
        .as_array()
        .map(|events| events.iter().filter(|e| e["type"] == event_type).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn typing_is_synced_when_it_starts_and_stops() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    let room = create_room(&alice, json!({"preset": "public_chat"})).await;
    join(&bob, &room).await;
    let t0 = settled_token(&bob, None, &room).await;
    let typing = format!("/rooms/{}/typing/{}", enc(&room), enc(&alice.user_id));

    alice.put(&typing, json!({"typing": true, "timeout": 20000})).await.expect(200);
    let answer = sync_until(&bob, Some(&t0), |r| !ephemeral(r, &room, "m.typing").is_empty()).await;
    let events = ephemeral(&answer, &room, "m.typing");
    assert_eq!(events, vec![&json!({"type": "m.typing", "content": {"user_ids": [alice.user_id]}})], "{answer}");
    let t1 = next_batch(&answer);

    // Nothing new: no typing event again.
    let quiet = sync(&bob, &format!("since={t1}")).await;
    assert!(ephemeral(&quiet, &room, "m.typing").is_empty(), "{quiet}");

    alice.put(&typing, json!({"typing": false})).await.expect(200);
    let answer = sync_until(&bob, Some(&t1), |r| !ephemeral(r, &room, "m.typing").is_empty()).await;
    let events = ephemeral(&answer, &room, "m.typing");
    assert_eq!(events, vec![&json!({"type": "m.typing", "content": {"user_ids": []}})], "{answer}");
}

async fn receipt(client: &Client, room: &str, receipt_type: &str, event_id: &str, body: Value) {
    let path = format!("/rooms/{}/receipt/{receipt_type}/{}", enc(room), enc(event_id));
    client.post(&path, body).await.expect(200);
}

/// The merged content of the room's `m.receipt` events in a response.
fn receipts(answer: &Value, room: &str) -> Value {
    let mut merged = serde_json::Map::new();
    for event in ephemeral(answer, room, "m.receipt") {
        for (event_id, by_type) in event["content"].as_object().unwrap() {
            let entry = merged.entry(event_id.clone()).or_insert_with(|| json!({}));
            for (receipt_type, by_user) in by_type.as_object().unwrap() {
                for (user, data) in by_user.as_object().unwrap() {
                    entry[receipt_type][user] = data.clone();
                }
            }
        }
    }
    Value::Object(merged)
}

#[tokio::test]
async fn receipts_are_synced_and_private_ones_only_to_their_owner() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    let room = create_room(&alice, json!({"preset": "public_chat"})).await;
    join(&bob, &room).await;
    let first = send_text(&alice, &room, "first").await;
    let second = send_text(&alice, &room, "second").await;
    let root = send_text(&alice, &room, "thread root").await;
    let reply = send(
        &alice,
        &room,
        "m.room.message",
        json!({"msgtype": "m.text", "body": "in the thread", "m.relates_to": {"rel_type": "m.thread", "event_id": root}}),
    )
    .await;
    let ta = settled_token(&alice, None, &room).await;
    let tb = settled_token(&bob, None, &room).await;

    receipt(&bob, &room, "m.read", &first, json!({})).await;
    receipt(&bob, &room, "m.read.private", &second, json!({})).await;
    receipt(&bob, &room, "m.read", &reply, json!({"thread_id": root})).await;
    receipt(&bob, &room, "m.read", &root, json!({"thread_id": "main"})).await;
    // The last receipt is public: once alice has it, she had the chance to see all of them.
    sync_until(&alice, Some(&ta), |r| receipts(r, &room).get(&root).is_some()).await;
    let answer = sync(&alice, &format!("since={ta}")).await;
    let after_receipts = next_batch(&answer);
    let content = receipts(&answer, &room);
    let bob_id = bob.user_id.as_str();
    assert!(content[&first]["m.read"][bob_id]["ts"].is_u64(), "{answer}");
    assert!(content[&first]["m.read"][bob_id].get("thread_id").is_none(), "unthreaded: {answer}");
    assert_eq!(content[&reply]["m.read"][bob_id]["thread_id"], root.as_str(), "{answer}");
    assert_eq!(content[&root]["m.read"][bob_id]["thread_id"], "main", "{answer}");
    assert!(!answer.to_string().contains("m.read.private"), "not bob's private receipt: {answer}");
    assert!(content.get(&second).is_none(), "{answer}");

    // Bob sees his own private receipt.
    sync_until(&bob, Some(&tb), |r| receipts(r, &room).get(&root).is_some()).await;
    let own = sync(&bob, &format!("since={tb}")).await;
    assert!(receipts(&own, &room)[&second]["m.read.private"][bob_id]["ts"].is_u64(), "{own}");

    // An initial sync has the receipts too (the latest of each thread).
    let initial = sync(&alice, "").await;
    let content = receipts(&initial, &room);
    assert!(content[&first]["m.read"][bob_id]["ts"].is_u64(), "{initial}");
    assert_eq!(content[&reply]["m.read"][bob_id]["thread_id"], root.as_str(), "{initial}");
    assert_eq!(content[&root]["m.read"][bob_id]["thread_id"], "main", "{initial}");

    // A later receipt in the same thread replaces the earlier one.
    let marker = send_text(&alice, &room, "marker").await;
    receipt(&bob, &room, "m.read", &marker, json!({"thread_id": "main"})).await;
    let answer = sync_until(&alice, Some(&after_receipts), |r| receipts(r, &room).get(&marker).is_some()).await;
    let after_receipts = next_batch(&answer);
    let content = receipts(&sync(&alice, "").await, &room);
    assert_eq!(content[&marker]["m.read"][bob_id]["thread_id"], "main", "{content}");
    assert!(content.get(&root).is_none(), "replaced: {content}");
    assert!(!initial.to_string().contains("m.read.private"), "{initial}");

    // Nothing new: no receipts again.
    let quiet = sync(&alice, &format!("since={after_receipts}")).await;
    assert!(ephemeral(&quiet, &room, "m.receipt").is_empty(), "{quiet}");
}

fn global_data<'a>(answer: &'a Value, data_type: &str) -> Vec<&'a Value> {
    answer["account_data"]["events"].as_array().unwrap().iter().filter(|e| e["type"] == data_type).collect()
}

#[tokio::test]
async fn global_and_room_account_data_are_synced() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let bob = deployment.new_user().await;
    let room = create_room(&bob, json!({"preset": "private_chat"})).await;
    let t0 = settled_token(&bob, None, &room).await;
    let global = format!("/user/{}/account_data/test.global", enc(&bob.user_id));
    let in_room = format!("/user/{}/rooms/{}/account_data/test.room", enc(&bob.user_id), enc(&room));

    bob.put(&global, json!({"a": 1})).await.expect(200);
    bob.put(&in_room, json!({"b": 2})).await.expect(200);
    let room_data = |r: &Value| r["rooms"]["join"][&room]["account_data"]["events"].clone();
    sync_until(&bob, Some(&t0), |r| !global_data(r, "test.global").is_empty()).await;
    sync_until(&bob, Some(&t0), |r| room_data(r).as_array().is_some_and(|e| !e.is_empty())).await;

    for query in [format!("since={t0}"), String::new()] {
        let answer = sync(&bob, &query).await;
        assert_eq!(global_data(&answer, "test.global"), vec![&json!({"type": "test.global", "content": {"a": 1}})]);
        assert_eq!(room_data(&answer), json!([{"type": "test.room", "content": {"b": 2}}]), "{answer}");
        assert!(global_data(&answer, "test.room").is_empty(), "room data is not global: {answer}");
    }
    let t1 = next_batch(&sync(&bob, &format!("since={t0}")).await);
    let quiet = sync(&bob, &format!("since={t1}")).await;
    assert!(global_data(&quiet, "test.global").is_empty(), "{quiet}");
    assert!(quiet["rooms"]["join"].get(&room).is_none(), "{quiet}");

    // A change: the new content, once.
    bob.put(&global, json!({"a": 2})).await.expect(200);
    let answer = sync_until(&bob, Some(&t1), |r| !global_data(r, "test.global").is_empty()).await;
    assert_eq!(global_data(&answer, "test.global"), vec![&json!({"type": "test.global", "content": {"a": 2}})]);
    assert!(answer["rooms"]["join"].get(&room).is_none(), "{answer}");
}

fn presence_of<'a>(answer: &'a Value, user: &str) -> Option<&'a Value> {
    answer["presence"]["events"].as_array().unwrap().iter().rev().find(|e| e["sender"] == user)
}

#[tokio::test]
async fn presence_is_synced_and_set_presence_is_honoured() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    let room = create_room(&alice, json!({"preset": "public_chat"})).await;
    join(&bob, &room).await;
    let ta = settled_token(&alice, None, &room).await;
    let status = |user: &str| format!("/presence/{}/status", enc(user));

    // Syncing as "unavailable" marks bob so.
    sync(&bob, "set_presence=unavailable").await;
    assert_eq!(bob.get(&status(&bob.user_id)).await.expect(200)["presence"], "unavailable");
    let answer = sync_until(&alice, Some(&ta), |r| presence_of(r, &bob.user_id).is_some()).await;
    let event = presence_of(&answer, &bob.user_id).unwrap();
    assert_eq!(event["type"], "m.presence", "{answer}");
    assert_eq!(event["content"]["presence"], "unavailable", "{answer}");
    let ta = next_batch(&answer);

    // "offline": syncing does not change it.
    sync(&bob, "set_presence=offline").await;
    assert_eq!(bob.get(&status(&bob.user_id)).await.expect(200)["presence"], "unavailable");

    // Without set_presence: online.
    sync(&bob, "").await;
    assert_eq!(bob.get(&status(&bob.user_id)).await.expect(200)["presence"], "online");
    let answer = sync_until(&alice, Some(&ta), |r| presence_of(r, &bob.user_id).is_some()).await;
    assert_eq!(presence_of(&answer, &bob.user_id).unwrap()["content"]["presence"], "online", "{answer}");
    let ta = next_batch(&answer);

    // A status message set explicitly comes in the sync.
    bob.put(&status(&bob.user_id), json!({"presence": "online", "status_msg": "busy"})).await.expect(200);
    let answer = sync_until(&alice, Some(&ta), |r| {
        presence_of(r, &bob.user_id).is_some_and(|e| e["content"]["status_msg"] == "busy")
    })
    .await;
    assert_eq!(presence_of(&answer, &bob.user_id).unwrap()["content"]["presence"], "online", "{answer}");

    // A stranger's presence is not sent to alice.
    let stranger = deployment.new_user().await;
    stranger.put(&status(&stranger.user_id), json!({"presence": "online"})).await.expect(200);
    let answer = sync(&alice, "").await;
    assert!(presence_of(&answer, &stranger.user_id).is_none(), "{answer}");
    assert!(presence_of(&answer, &bob.user_id).is_some(), "an initial sync has the presence of room mates: {answer}");
}
