//! A client whose clientapi instance died in the middle of a send retries on
//! another instance and gets its answer within seconds — the same event,
//! once in the room — whether the dead instance had published the event or
//! not.

use std::time::{Duration, Instant};

use common::bus::Stream;
use serde_json::{Value, json};
use sqlx::{Connection, Executor};
use tests::{
    Deployment, Mode,
    client::{Client, enc},
};

/// The bound the spec of this behaviour promises a retrying client.
const RETRY_BOUND: Duration = Duration::from_secs(5);

async fn input_messages(deployment: &Deployment) -> u64 {
    let bus = deployment.bus().await;
    let mut stream = bus.jetstream().get_stream(bus.stream_name(Stream::InputRoomEvent)).await.unwrap();
    stream.info().await.unwrap().state.messages
}

fn bodies(history: &Value) -> Vec<String> {
    history["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "m.room.message")
        .map(|e| e["content"]["body"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Holds the roomserver's writes (not its reads) until dropped: the event
/// is published and taken, but no verdict can come.
async fn block_roomserver_writes(deployment: &Deployment) -> sqlx::AnyConnection {
    sqlx::any::install_default_drivers();
    let url = deployment.config.component_database("roomserver").expect("a roomserver database").to_owned();
    let mut conn = sqlx::AnyConnection::connect(&url).await.expect("the test reaches the roomserver's database");
    if url.starts_with("sqlite") {
        conn.execute("BEGIN IMMEDIATE").await.unwrap();
    } else {
        conn.execute("BEGIN").await.unwrap();
        conn.execute("LOCK TABLE roomserver_events IN EXCLUSIVE MODE").await.unwrap();
    }
    conn
}

/// A polylith, a user, and the path-encoded id of a room of theirs.
async fn polylith_with_a_room() -> (Deployment, Client, String) {
    let deployment = Deployment::start(Mode::Polylith).await;
    let alice = deployment.new_user().await;
    let room = alice.post("/createRoom", json!({"preset": "private_chat"})).await.expect(200);
    let room = enc(room["room_id"].as_str().unwrap());
    (deployment, alice, room)
}

#[tokio::test]
async fn a_retry_after_the_clientapi_died_is_answered_at_once() {
    let (mut deployment, alice, room) = polylith_with_a_room().await;
    let first = alice.at(&deployment.instance_url("clientapi-1"));
    let second = alice.at(&deployment.instance_url("clientapi-2"));

    // Published, then the instance dies before the verdict.
    let lock = block_roomserver_writes(&deployment).await;
    let path = format!("/rooms/{room}/send/m.room.message/published");
    let body = json!({"msgtype": "m.text", "body": "published"});
    let hanging = tokio::spawn({
        let (first, path, body) = (first.clone(), path.clone(), body.clone());
        async move { first.put(&path, body).await }
    });
    let started = Instant::now();
    while input_messages(&deployment).await == 0 {
        assert!(started.elapsed() < Duration::from_secs(30), "the send was never published");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    deployment.kill_instance("clientapi-1", libc::SIGKILL).await;
    hanging.abort();
    drop(lock);
    let started = Instant::now();
    let answer = second.put(&path, body.clone()).await.expect(200);
    let elapsed = started.elapsed();
    assert!(elapsed < RETRY_BOUND, "the retry took {elapsed:?}");
    let again = second.put(&path, body).await.expect(200);
    assert_eq!(again["event_id"], answer["event_id"], "a transaction is one event");
    let history = alice.get(&format!("/rooms/{room}/messages?dir=b&limit=20")).await.expect(200);
    assert_eq!(bodies(&history), vec!["published"], "{history}");
    assert_eq!(history["chunk"][0]["event_id"], answer["event_id"]);
}

#[tokio::test]
async fn a_retry_after_the_clientapi_died_before_publishing_sends_once() {
    let (mut deployment, alice, room) = polylith_with_a_room().await;
    let first = alice.at(&deployment.instance_url("clientapi-1"));
    let second = alice.at(&deployment.instance_url("clientapi-2"));

    // The roomserver does not answer the send's questions: nothing is built.
    let roomserver = deployment.pid_of("roomserver-1") as libc::pid_t;
    // SAFETY: signalling a process this deployment started.
    unsafe { libc::kill(roomserver, libc::SIGSTOP) };
    let path = format!("/rooms/{room}/send/m.room.message/unbuilt");
    let body = json!({"msgtype": "m.text", "body": "unbuilt"});
    let hanging = tokio::spawn({
        let (first, path, body) = (first.clone(), path.clone(), body.clone());
        async move { first.put(&path, body).await }
    });
    // Nothing observable marks the send's arrival at clientapi-1, and nothing
    // depends on it: whether it died holding the request or before, the
    // retry must be answered, and the event be in the room once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    deployment.kill_instance("clientapi-1", libc::SIGKILL).await;
    hanging.abort();
    // SAFETY: as above.
    unsafe { libc::kill(roomserver, libc::SIGCONT) };
    let started = Instant::now();
    let answer = second.put(&path, body).await.expect(200);
    let elapsed = started.elapsed();
    assert!(elapsed < RETRY_BOUND, "the retry took {elapsed:?}");
    let history = alice.get(&format!("/rooms/{room}/messages?dir=b&limit=20")).await.expect(200);
    assert_eq!(bodies(&history), vec!["unbuilt"], "{history}");
    assert_eq!(history["chunk"][0]["event_id"], answer["event_id"]);
}
