//! Delivery to a server that is away: the events our users send while it is
//! down wait in its queue and all reach it once it is back (it contacts us,
//! and is retried at once), and a federationsender killed with such a queue
//! pending loses none of it: another instance takes the destination over.

mod sync_support;

use serde_json::json;
use sync_support::{create_room, send_text, sync_until};
use tests::{
    Deployment, Mode, Options,
    client::{Client, enc},
    tls::TestCa,
};

/// alice of `hs1` makes a room that bob of `hs2` joins.
async fn shared_room(hs1: &Deployment, hs2: &Deployment) -> (Client, Client, String) {
    let alice = hs1.new_user().await;
    let bob = hs2.new_user().await;
    let room_id = create_room(&alice, json!({"preset": "public_chat"})).await;
    let via = enc(&hs1.server_name);
    bob.post(&format!("/join/{}?via={via}", enc(&room_id)), json!({})).await.expect(200);
    sync_until(&alice, None, |sync| sync["rooms"]["join"].get(&room_id).is_some()).await;
    (alice, bob, room_id)
}

/// Waits until bob's server has `expected` (in order) as the room's latest
/// messages from alice.
async fn bob_has(bob: &Client, room_id: &str, expected: &[String]) {
    let last = expected.last().expect("something expected").clone();
    sync_until(bob, None, |sync| {
        sync["rooms"]["join"].get(room_id).is_some_and(|room| sync_support::bodies(room).contains(&last))
    })
    .await;
    let page = bob.get(&format!("/rooms/{}/messages?dir=b&limit=50", enc(room_id))).await.expect(200);
    let mut bodies: Vec<String> = page["chunk"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|event| event["content"]["body"].as_str())
        .filter(|body| body.starts_with("while away"))
        .map(str::to_owned)
        .collect();
    bodies.reverse();
    assert_eq!(bodies, expected, "every message sent while bob's server was away, once and in order: {page}");
}

#[tokio::test]
async fn a_server_that_was_down_gets_every_message_once_back() {
    let ca = TestCa::new("federation test CA");
    let (hs1, mut hs2) = tokio::join!(
        Deployment::start_with(Options::new(Mode::Monolith).federating(&ca)),
        Deployment::start_with(Options::new(Mode::Monolith).federating(&ca)),
    );
    let (alice, bob, room_id) = shared_room(&hs1, &hs2).await;

    hs2.terminate_monolith().await;
    let expected: Vec<String> = (1..=5).map(|i| format!("while away {i}")).collect();
    for body in &expected {
        send_text(&alice, &room_id, body).await;
    }
    hs2.restart_monolith().await;
    // Bob's server speaks first: hs1 hears from it and retries at once
    // rather than when its backoff ends.
    send_text(&bob, &room_id, "I am back").await;
    bob_has(&bob, &room_id, &expected).await;
}

#[tokio::test]
async fn a_killed_federationsender_loses_nothing_of_its_queue() {
    let ca = TestCa::new("federation test CA");
    let (mut hs1, mut hs2) = tokio::join!(
        Deployment::start_with(Options::new(Mode::Polylith).federating(&ca)),
        Deployment::start_with(Options::new(Mode::Monolith).federating(&ca)),
    );
    let (alice, bob, room_id) = shared_room(&hs1, &hs2).await;

    hs2.terminate_monolith().await;
    let expected: Vec<String> = (1..=3).map(|i| format!("while away {i}")).collect();
    for body in &expected {
        send_text(&alice, &room_id, body).await;
    }
    hs1.kill_instance("federationsender-1", libc::SIGKILL).await;
    hs1.start_instance("federationsender").await;
    hs2.restart_monolith().await;
    send_text(&bob, &room_id, "I am back").await;
    bob_has(&bob, &room_id, &expected).await;
}
