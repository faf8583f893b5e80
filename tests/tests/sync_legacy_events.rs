//! The deprecated event stream, `GET /events`: a first call with `timeout=0`
//! answers at once with `start` and `end` tokens (on `r0` too, with the
//! access token in the query, as SyTest calls it); each later call from the
//! previous `end` brings what happened since in the user's rooms, oldest
//! first and once each, an invite to the user included; a long-poll wakes
//! when a message arrives; events of a room the user is not in never appear,
//! except when peeking a world-readable room with `room_id`; an answer holds
//! at most 100 events, its `end` where it stopped; an invite from another
//! server arrives with the room's stripped state; a token that is not one of
//! ours, or a bad timeout, is 400.

mod sync_support;

use std::time::Duration;

use serde_json::{Value, json};
use sync_support::*;
use tests::{
    Deployment, Mode, Options,
    client::{Client, enc},
    tls::TestCa,
};

/// How long syncapi may take to show an event that was accepted.
const PATIENCE: Duration = Duration::from_secs(30);

/// `GET /events?{query}`, which must succeed and carry the stream's fields.
async fn events(client: &Client, query: &str) -> Value {
    let answer = client.get(&format!("/events?{query}")).await.expect(200);
    assert!(answer["chunk"].is_array() && answer["start"].is_string() && answer["end"].is_string(), "{answer}");
    answer
}

fn end_of(answer: &Value) -> String {
    answer["end"].as_str().unwrap_or_else(|| panic!("an end: {answer}")).to_owned()
}

/// Reads the stream from `from` (with `extra` query parameters) until the
/// events read so far satisfy `done`; returns them all and the last `end`.
async fn events_until(
    client: &Client,
    from: &str,
    extra: &str,
    done: impl Fn(&[Value]) -> bool,
) -> (Vec<Value>, String) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut seen = Vec::new();
    let mut from = from.to_owned();
    loop {
        let answer = events(client, &format!("from={from}&timeout=2000{extra}")).await;
        assert_eq!(answer["start"], json!(from), "{answer}");
        seen.extend(answer["chunk"].as_array().unwrap().iter().cloned());
        from = end_of(&answer);
        if done(&seen) {
            return (seen, from);
        }
        assert!(tokio::time::Instant::now() < deadline, "the stream never satisfied the wait: {seen:?}");
    }
}

fn has_event(events: &[Value], event_id: &str) -> bool {
    events.iter().any(|e| e["event_id"] == event_id)
}

async fn the_stream_brings_new_events_once_each(deployment: &Deployment) {
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    let carol = deployment.new_user().await;
    let room = create_room(&alice, json!({"preset": "private_chat"})).await;
    let carols = create_room(&carol, json!({"preset": "private_chat"})).await;

    // SyTest's first call: r0, the token in the query, no wait.
    let url = deployment
        .url(&format!("/_matrix/client/r0/events?access_token={}&timeout=0", alice.access_token.as_deref().unwrap()));
    let first = reqwest::get(url).await.unwrap();
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    assert!(first["chunk"].is_array() && first["start"].is_string(), "{first}");
    let start = end_of(&first);

    let secret = send_text(&carol, &carols, "not for alice").await;
    let mut sent = Vec::new();
    for n in 1..=3 {
        sent.push(send_text(&alice, &room, &format!("m{n}")).await);
    }
    let (seen, end) = events_until(&alice, &start, "", |seen| has_event(seen, &sent[2])).await;
    let messages: Vec<&Value> = seen.iter().filter(|e| e["type"] == "m.room.message").collect();
    let ids: Vec<&str> = messages.iter().map(|e| e["event_id"].as_str().unwrap()).collect();
    assert_eq!(ids, sent.iter().map(String::as_str).collect::<Vec<_>>(), "oldest first, once each: {seen:?}");
    assert!(messages.iter().all(|e| e["room_id"] == room && e["content"]["body"].is_string()), "{seen:?}");
    assert!(!has_event(&seen, &secret), "an event of a room alice is not in: {seen:?}");

    // Nothing new: an empty chunk, and the same position again.
    let quiet = events(&alice, &format!("from={end}&timeout=0")).await;
    assert_eq!(quiet["chunk"], json!([]), "{quiet}");
    assert_eq!(quiet["end"], json!(end), "{quiet}");

    // A long-poll wakes when a message arrives.
    let waiting = alice.clone();
    let path = format!("/events?from={end}&timeout=20000");
    let started = std::time::Instant::now();
    let poll = tokio::spawn(async move { waiting.get(&path).await });
    let woken_by = send_text(&alice, &room, "wake up").await;
    let answer = poll.await.unwrap().expect(200);
    assert!(started.elapsed() < Duration::from_secs(15), "woken, not timed out: {answer}");
    let mut seen: Vec<Value> = answer["chunk"].as_array().unwrap().clone();
    let mut end = end_of(&answer);
    if !has_event(&seen, &woken_by) {
        // Woken by something else first (e.g. a read of another instance): read on.
        let (more, later) = events_until(&alice, &end, "", |s| has_event(s, &woken_by)).await;
        seen.extend(more);
        end = later;
    }
    assert_eq!(seen.iter().filter(|e| e["event_id"] == woken_by).count(), 1, "{seen:?}");

    // An invite from another user, into a room alice is not in yet.
    let bobs = create_room(&bob, json!({"preset": "private_chat"})).await;
    invite(&bob, &bobs, &alice.user_id).await;
    let is_invite =
        |e: &Value| e["type"] == "m.room.member" && e["state_key"] == alice.user_id.as_str() && e["room_id"] == bobs;
    let (seen, end) = events_until(&alice, &end, "", |seen| seen.iter().any(is_invite)).await;
    let invites: Vec<&Value> = seen.iter().filter(|e| is_invite(e)).collect();
    assert_eq!(invites.len(), 1, "{seen:?}");
    assert_eq!(invites[0]["content"]["membership"], "invite");
    assert_eq!(invites[0]["sender"], bob.user_id.as_str());
    // Only the invite of bob's room: not its creation, which came before it.
    assert!(seen.iter().filter(|e| e["room_id"] == bobs).all(is_invite), "{seen:?}");

    // Peeking a world-readable room alice is not in, by its id.
    let open = create_room(&carol, json!({"preset": "public_chat"})).await;
    set_state(&carol, &open, "m.room.history_visibility", "", json!({"history_visibility": "world_readable"})).await;
    let peek = format!("&room_id={}", enc(&open));
    let public = send_text(&carol, &open, "for everyone").await;
    let (seen, _) = events_until(&alice, &end, &peek, |seen| has_event(seen, &public)).await;
    assert!(seen.iter().all(|e| e["room_id"] == open), "only the room peeked at: {seen:?}");
    // Not in the stream of her own rooms.
    let marker = send_text(&alice, &room, "after the peek").await;
    let (seen, _) = events_until(&alice, &end, "", |seen| has_event(seen, &marker)).await;
    assert!(!has_event(&seen, &public), "{seen:?}");
    // Carol's private room cannot be peeked at.
    alice.get(&format!("/events?timeout=0&room_id={}", enc(&carols))).await.expect_error(403, "M_FORBIDDEN");
}

/// More than an answer holds: the first stops at its 100th event, the next
/// goes on from there.
async fn a_long_stream_comes_in_answers_of_100(deployment: &Deployment) {
    let alice = deployment.new_user().await;
    let room = create_room(&alice, json!({"preset": "private_chat"})).await;
    let start = end_of(&events(&alice, "timeout=0").await);
    let mut sent = Vec::new();
    for n in 0..105 {
        sent.push(send_text(&alice, &room, &format!("n{n}")).await);
    }
    let first = events(&alice, &format!("from={start}&timeout=0")).await;
    let ids = |answer: &Value| -> Vec<String> {
        answer["chunk"].as_array().unwrap().iter().map(|e| e["event_id"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(ids(&first), sent[..100], "{first}");
    let second = events(&alice, &format!("from={}&timeout=0", end_of(&first))).await;
    assert_eq!(ids(&second), sent[100..], "{second}");
}

async fn bad_tokens_and_timeouts_are_refused(deployment: &Deployment) {
    let alice = deployment.new_user().await;
    alice.get("/events?from=garbage&timeout=0").await.expect_error(400, "M_INVALID_PARAM");
    alice.get("/events?from=s1_x&timeout=0").await.expect_error(400, "M_INVALID_PARAM");
    let answer = alice.get("/events?timeout=soon").await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    let answer = alice.get("/events?timeout=-5").await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    deployment.client().get("/events?timeout=0").await.expect_error(401, "M_MISSING_TOKEN");
}

#[tokio::test]
async fn the_monolith_streams_events() {
    let deployment = Deployment::start(Mode::Monolith).await;
    the_stream_brings_new_events_once_each(&deployment).await;
    a_long_stream_comes_in_answers_of_100(&deployment).await;
    bad_tokens_and_timeouts_are_refused(&deployment).await;
}

#[tokio::test]
async fn the_polylith_streams_events() {
    let deployment = Deployment::start(Mode::Polylith).await;
    the_stream_brings_new_events_once_each(&deployment).await;
    bad_tokens_and_timeouts_are_refused(&deployment).await;
}

/// As SyTest's federation tests wait for it: an invite from another server
/// in the stream, then the room's events once joined.
#[tokio::test]
async fn an_invite_over_federation_arrives_in_the_stream() {
    let ca = TestCa::new("legacy events CA");
    let (hs1, hs2) = tokio::join!(
        Deployment::start_with(Options::new(Mode::Monolith).federating(&ca)),
        Deployment::start_with(Options::new(Mode::Monolith).federating(&ca)),
    );
    let alice = hs1.new_user().await;
    let bob = hs2.new_user().await;
    let room = create_room(&alice, json!({"preset": "private_chat", "name": "Elsewhere"})).await;
    let start = end_of(&events(&bob, "timeout=0").await);
    invite(&alice, &room, &bob.user_id).await;
    let is_invite = |e: &Value| {
        e["type"] == "m.room.member" && e["state_key"] == bob.user_id.as_str() && e["content"]["membership"] == "invite"
    };
    let (seen, end) = events_until(&bob, &start, "", |seen| seen.iter().any(is_invite)).await;
    let invite = seen.iter().find(|e| is_invite(e)).unwrap();
    assert_eq!(invite["room_id"], room.as_str(), "{invite}");
    let stripped = invite["unsigned"]["invite_room_state"].as_array().unwrap_or_else(|| panic!("{invite}"));
    assert!(stripped.iter().any(|e| e["type"] == "m.room.name" && e["content"]["name"] == "Elsewhere"), "{invite}");

    join(&bob, &room).await;
    let hello = send_text(&alice, &room, "welcome").await;
    let (seen, _) = events_until(&bob, &end, "", |seen| seen.iter().any(|e| e["content"]["body"] == "welcome")).await;
    assert_eq!(seen.iter().filter(|e| e["event_id"] == hello).count(), 1, "{seen:?}");
    assert!(!seen.iter().any(is_invite), "the invite came once: {seen:?}");
}
