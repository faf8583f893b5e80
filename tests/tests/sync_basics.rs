//! `/sync` basics: an initial sync shows joined rooms with their state and
//! timeline; an incremental sync shows only what is new; a long-poll wakes
//! on a new event, on either syncapi instance.

use std::time::Duration;

use serde_json::{Value, json};
use tests::{Deployment, Mode};

fn timeline_bodies(room: &Value) -> Vec<String> {
    room["timeline"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["content"]["body"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn initial_then_incremental_sync_and_a_waking_long_poll() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let alice = deployment.new_user().await;
    let room = alice.post("/createRoom", json!({"preset": "public_chat", "name": "Sync"})).await.expect(200);
    let room_id = room["room_id"].as_str().unwrap().to_owned();
    alice
        .put(&format!("/rooms/{room_id}/send/m.room.message/1"), json!({"msgtype": "m.text", "body": "first"}))
        .await
        .expect(200);

    let initial = alice.get("/sync").await.expect(200);
    let joined = &initial["rooms"]["join"][&room_id];
    assert!(joined.is_object(), "{initial}");
    assert_eq!(timeline_bodies(joined), vec!["first"]);
    let state_types: Vec<&str> = joined["state"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .chain(joined["timeline"]["events"].as_array().unwrap())
        .filter_map(|e| e["type"].as_str())
        .collect();
    assert!(state_types.contains(&"m.room.create") && state_types.contains(&"m.room.name"), "{joined}");
    let mut since = initial["next_batch"].as_str().unwrap().to_owned();

    // Nothing new: an immediate empty answer when no timeout is given.
    let empty = alice.get(&format!("/sync?since={since}")).await.expect(200);
    assert!(empty["rooms"]["join"].as_object().unwrap().is_empty(), "{empty}");

    // A long-poll on each syncapi instance wakes when the message arrives.
    for instance in ["syncapi-1", "syncapi-2"] {
        let waiting = alice.at(&deployment.instance_url(instance));
        let path = format!("/sync?since={since}&timeout=20000");
        let poll = tokio::spawn(async move { waiting.get(&path).await });
        tokio::time::sleep(Duration::from_millis(500)).await;
        let body = format!("to {instance}");
        alice
            .put(
                &format!("/rooms/{room_id}/send/m.room.message/{instance}"),
                json!({"msgtype": "m.text", "body": body}),
            )
            .await
            .expect(200);
        let started = std::time::Instant::now();
        let answer = poll.await.unwrap().expect(200);
        assert!(started.elapsed() < Duration::from_secs(10), "woken, not timed out");
        let bodies = timeline_bodies(&answer["rooms"]["join"][&room_id]);
        assert_eq!(bodies, vec![body], "{answer}");
        since = answer["next_batch"].as_str().unwrap().to_owned();
    }
}

/// `use_state_after`: the state runs to the end of the timeline, in `state_after`.
#[tokio::test]
async fn state_after_covers_the_timeline() {
    let deployment = Deployment::start(Mode::Monolith).await;
    let alice = deployment.new_user().await;
    let room = alice.post("/createRoom", json!({"preset": "private_chat"})).await.expect(200);
    let room_id = room["room_id"].as_str().unwrap().to_owned();
    let since = alice.get("/sync").await.expect(200)["next_batch"].as_str().unwrap().to_owned();
    alice.put(&format!("/rooms/{room_id}/state/m.room.topic/"), json!({"topic": "new"})).await.expect(200);
    let answer = alice.get(&format!("/sync?since={since}&use_state_after=true&timeout=10000")).await.expect(200);
    let joined = &answer["rooms"]["join"][&room_id];
    assert!(joined.get("state").is_none(), "{joined}");
    let after: Vec<&Value> = joined["state_after"]["events"].as_array().unwrap().iter().collect();
    assert_eq!(after.len(), 1, "{joined}");
    assert_eq!(after[0]["content"]["topic"], "new");
    // Without it: the topic is in the timeline, and the state before it is empty.
    let answer = alice.get(&format!("/sync?since={since}")).await.expect(200);
    assert_eq!(answer["rooms"]["join"][&room_id]["state"]["events"], json!([]));
}

/// Typing shows in sync, and ends by itself when its timeout lapses.
#[tokio::test]
async fn typing_lapses_by_itself() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    let room = alice.post("/createRoom", json!({"preset": "public_chat"})).await.expect(200);
    let room_id = room["room_id"].as_str().unwrap().to_owned();
    bob.post(&format!("/rooms/{room_id}/join"), json!({})).await.expect(200);
    let mut since = bob.get("/sync").await.expect(200)["next_batch"].as_str().unwrap().to_owned();
    let typing_path = format!("/rooms/{room_id}/typing/{}", tests::client::enc(&alice.user_id));
    alice.put(&typing_path, json!({"typing": true, "timeout": 1500})).await.expect(200);

    let typers = |answer: &Value| -> Option<Value> {
        answer["rooms"]["join"][&room_id]["ephemeral"]["events"]
            .as_array()?
            .iter()
            .find(|e| e["type"] == "m.typing")
            .map(|e| e["content"]["user_ids"].clone())
    };
    let mut seen = Vec::new();
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(15) {
        let answer = bob.get(&format!("/sync?since={since}&timeout=5000")).await.expect(200);
        since = answer["next_batch"].as_str().unwrap().to_owned();
        if let Some(users) = typers(&answer) {
            seen.push(users.clone());
            if users == json!([]) {
                break;
            }
        }
    }
    assert_eq!(seen, vec![json!([alice.user_id]), json!([])], "typing started, then lapsed");
}

/// A new account's initial sync carries its push rules: the spec's defaults.
#[tokio::test]
async fn an_initial_sync_carries_the_default_push_rules() {
    let deployment = Deployment::start(Mode::Monolith).await;
    let alice = deployment.new_user().await;
    let answer = alice.get("/sync").await.expect(200);
    let rules = answer["account_data"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "m.push_rules")
        .unwrap_or_else(|| panic!("no m.push_rules: {answer}"));
    let overrides: Vec<&str> = rules["content"]["global"]["override"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["rule_id"].as_str())
        .collect();
    assert!(overrides.contains(&".m.rule.master"), "{rules}");
    assert_eq!(rules["content"]["global"]["sender"], json!([]), "every kind is listed");
    // The same as GET /pushrules/.
    assert_eq!(alice.get("/pushrules/").await.expect(200), rules["content"]);
}
