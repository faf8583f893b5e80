//! Two syncapi instances behind nginx: the same token gives the same
//! response from either, a long-poll on each wakes on a new event, and room
//! events keep being applied, each once and in order, as instances die.

mod sync_support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sync_support::*;
use tests::{Deployment, Mode, client::enc};

/// Each instance's answer to the same query. Data that follows an event by
/// a moment (its unread count, from userapi) may reach one answer and not the
/// other; asked again once the server is quiet, the two must agree.
async fn answers_once_quiet(one: &tests::client::Client, two: &tests::client::Client, query: &str) -> (Value, Value) {
    let mut answers = (Value::Null, Value::Null);
    for _ in 0..50 {
        answers = (without_ages(sync(one, query).await), without_ages(sync(two, query).await));
        if answers.0 == answers.1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    answers
}

#[tokio::test]
async fn both_instances_answer_the_same_and_both_wake() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    let room = create_room(&alice, json!({"preset": "public_chat", "name": "Twins"})).await;
    join(&bob, &room).await;
    let t0 = settled_token(&bob, None, &room).await;
    for i in 0..8 {
        send_text(&alice, &room, &format!("m{i}")).await;
    }
    set_state(&alice, &room, "m.room.topic", "", json!({"topic": "twins"})).await;
    let last = send_text(&alice, &room, "last").await;
    alice.post(&format!("/rooms/{}/receipt/m.read/{}", enc(&room), enc(&last)), json!({})).await.expect(200);
    bob.put(&format!("/user/{}/account_data/test.twins", enc(&bob.user_id)), json!({"a": 1})).await.expect(200);
    sync_until(&bob, Some(&t0), |r| {
        r["rooms"]["join"][&room]["ephemeral"]["events"].as_array().is_some_and(|e| !e.is_empty())
    })
    .await;
    sync_until(&bob, Some(&t0), |r| r["account_data"]["events"].as_array().is_some_and(|e| !e.is_empty())).await;
    let t1 = token_after(&bob, Some(&t0), &last).await;

    let one = bob.at(&deployment.instance_url("syncapi-1"));
    let two = bob.at(&deployment.instance_url("syncapi-2"));
    let limit = filter(json!({"room": {"timeline": {"limit": 5}}}));
    for query in [format!("filter={limit}"), format!("since={t0}&filter={limit}"), format!("since={t0}"), String::new()]
    {
        let (a, b) = answers_once_quiet(&one, &two, &query).await;
        assert_eq!(a, b, "{query}");
        assert!(a["rooms"]["join"].get(&room).is_some(), "{a}");
    }

    // A long-poll on each instance, both woken by one message.
    let polls: Vec<_> = [one.clone(), two.clone()]
        .into_iter()
        .map(|client| {
            let path = format!("/sync?since={t1}&timeout=20000");
            tokio::spawn(async move { client.get(&path).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let woke = send_text(&alice, &room, "wake up").await;
    let mut answers = Vec::new();
    for poll in polls {
        let answer = poll.await.unwrap().expect(200);
        assert!(started.elapsed() < Duration::from_secs(10), "woken, not timed out: {answer}");
        assert_eq!(timeline_ids(&answer["rooms"]["join"][&room]), vec![woke.clone()], "{answer}");
        answers.push(without_ages(answer));
    }
    // Both woke for the same message; what follows it (its unread count,
    // counted by userapi a moment later) may have reached one answer and not
    // the other. Once the server is quiet, the same token gets the same
    // answer from each instance, and it holds what both woke for.
    let (a, b) = answers_once_quiet(&one, &two, &format!("since={t1}")).await;
    assert_eq!(a, b);
    assert_eq!(
        a["rooms"]["join"][&room]["timeline"]["events"],
        answers[0]["rooms"]["join"][&room]["timeline"]["events"]
    );
}

/// The instance holding the room events' lease applies them in batches; when
/// it dies another takes over, and what the dead one held in hand is applied
/// by the next, once, before what came after it. Both original instances are killed in turn while
/// messages flow, so the holder is killed at least once.
#[tokio::test]
async fn room_events_survive_the_death_of_each_instance() {
    let mut deployment = Deployment::start(Mode::Polylith).await;
    let alice = deployment.new_user().await;
    let room = create_room(&alice, json!({"preset": "public_chat"})).await;
    let sender = alice.clone();
    let (room_id, sent) = (room.clone(), std::sync::Arc::new(std::sync::Mutex::new(Vec::new())));
    let log = sent.clone();
    let sending = tokio::spawn(async move {
        for i in 0..100 {
            let id = send_text(&sender, &room_id, &format!("m{i}")).await;
            log.lock().unwrap().push(id);
        }
    });
    let count = || sent.lock().unwrap().len();
    while count() < 25 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    deployment.kill_instance("syncapi-1", libc::SIGKILL).await;
    let extra = deployment.start_instance("syncapi").await;
    while count() < 60 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    deployment.kill_instance("syncapi-2", libc::SIGKILL).await;
    sending.await.unwrap();
    let sent = sent.lock().unwrap().clone();
    assert!(sent.len() == 100, "every send was answered");

    let reader = alice.at(&deployment.instance_url(&extra));
    let path = format!(
        "/rooms/{}/messages?dir=b&limit=200&filter={}",
        enc(&room),
        filter(json!({"types": ["m.room.message"]}))
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut shown = Vec::new();
    while Instant::now() < deadline {
        let page = reader.get(&path).await.expect(200);
        shown = page["chunk"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .map(|e| e["event_id"].as_str().unwrap().to_owned())
            .collect();
        if shown.len() >= sent.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(shown, sent, "the surviving instance shows every message once, in the order sent");
}
