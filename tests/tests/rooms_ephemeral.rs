//! Typing notifications, read receipts and read markers (published for sync,
//! the fully-read marker kept as room account data), and reports of events
//! and rooms — with every error a client can provoke.

use serde_json::{Value, json};
use tests::{
    Deployment, Mode,
    client::{Client, enc},
    streams::read_until,
};

async fn create_room(client: &Client) -> String {
    let answer = client.post("/createRoom", json!({"preset": "public_chat"})).await.expect(200);
    answer["room_id"].as_str().unwrap_or_else(|| panic!("a room id: {answer}")).to_owned()
}

async fn send_message(client: &Client, room_id: &str, txn: &str) -> String {
    let path = format!("/rooms/{}/send/m.room.message/{txn}", enc(room_id));
    let answer = client.put(&path, json!({"msgtype": "m.text", "body": txn})).await.expect(200);
    answer["event_id"].as_str().unwrap_or_else(|| panic!("an event id: {answer}")).to_owned()
}

/// A row of `clientapi_reports`: event id, reporter, reason, score.
type Report = (Option<String>, String, Option<String>, Option<i64>);

fn stream(deployment: &Deployment, name: &str) -> String {
    format!("{}_{name}", deployment.config.global.nats.stream_prefix)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

#[tokio::test]
async fn typing_is_published_for_joined_members_only() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    let room = create_room(&alice).await;
    let typing = |user: &str| format!("/rooms/{}/typing/{}", enc(&room), enc(user));

    let before = now_ms();
    // An hour asked; the server keeps it to 30 seconds.
    assert_eq!(
        alice.put(&typing(&alice.user_id), json!({"typing": true, "timeout": 3_600_000})).await.expect(200),
        json!({})
    );
    alice.put(&typing(&alice.user_id), json!({"typing": false})).await.expect(200);
    let stream = stream(&deployment, "OutputTypingEvent");
    let read = read_until(&deployment, &stream, "alice stopping", |m| m["typing"] == false).await;
    let started = read.iter().find(|m| m["typing"] == true).unwrap_or_else(|| panic!("alice typing: {read:#?}"));
    assert_eq!(started["room_id"], room.as_str(), "{started}");
    assert_eq!(started["user_id"], alice.user_id.as_str(), "{started}");
    let expires = started["expires_ts"].as_u64().unwrap();
    assert!(expires >= before + 29_000 && expires <= now_ms() + 30_000, "capped at 30 s: {started}");

    // Not for someone else, not outside the room, not without a timeout.
    alice.put(&typing(&bob.user_id), json!({"typing": true, "timeout": 1000})).await.expect_error(403, "M_FORBIDDEN");
    bob.put(&typing(&bob.user_id), json!({"typing": true, "timeout": 1000})).await.expect_error(403, "M_FORBIDDEN");
    let nowhere = format!("!nowhere:{}", deployment.server_name);
    bob.put(&format!("/rooms/{}/typing/{}", enc(&nowhere), enc(&bob.user_id)), json!({"typing": false}))
        .await
        .expect_error(403, "M_FORBIDDEN");
    alice.put(&typing(&alice.user_id), json!({"typing": true})).await.expect_error(400, "M_BAD_JSON");
    alice.put(&typing(&alice.user_id), json!({})).await.expect_error(400, "M_BAD_JSON");
    deployment
        .client()
        .put(&typing(&alice.user_id), json!({"typing": false}))
        .await
        .expect_error(401, "M_MISSING_TOKEN");

    // Once joined, bob may.
    bob.post(&format!("/rooms/{}/join", enc(&room)), json!({})).await.expect(200);
    bob.put(&typing(&bob.user_id), json!({"typing": true, "timeout": 5000})).await.expect(200);
    read_until(&deployment, &stream, "bob typing", |m| m["user_id"] == bob.user_id.as_str() && m["typing"] == true)
        .await;
}

#[tokio::test]
async fn receipts_and_read_markers_are_published_and_kept() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    let room = create_room(&alice).await;
    let first = send_message(&alice, &room, "first").await;
    let second = send_message(&alice, &room, "second").await;
    let receipt = |kind: &str, event: &str| format!("/rooms/{}/receipt/{kind}/{}", enc(&room), enc(event));
    let receipts = stream(&deployment, "OutputReceiptEvent");
    let is = |m: &Value, kind: &str, event: &str| {
        m["room_id"] == room.as_str()
            && m["user_id"] == alice.user_id.as_str()
            && m["receipt_type"] == kind
            && m["event_id"] == event
    };

    // m.read, unthreaded; m.read.private in the main timeline.
    assert_eq!(alice.post(&receipt("m.read", &first), json!({})).await.expect(200), json!({}));
    alice.post(&receipt("m.read.private", &first), json!({"thread_id": "main"})).await.expect(200);
    let read = read_until(&deployment, &receipts, "alice's private receipt", |m| is(m, "m.read.private", &first)).await;
    let public = read.iter().find(|m| is(m, "m.read", &first)).unwrap_or_else(|| panic!("the m.read: {read:#?}"));
    assert!(public.get("thread_id").is_none(), "unthreaded: {public}");
    assert!(public["ts"].as_u64().is_some_and(|ts| ts > 0), "{public}");
    assert_eq!(read.last().unwrap()["thread_id"], "main", "{read:#?}");
    // A receipt in a thread.
    alice.post(&receipt("m.read", &second), json!({"thread_id": first})).await.expect(200);
    let read = read_until(&deployment, &receipts, "alice's threaded receipt", |m| is(m, "m.read", &second)).await;
    assert_eq!(read.last().unwrap()["thread_id"], first.as_str(), "{read:#?}");

    // m.fully_read is room account data, not a receipt.
    let fully_read = format!("/user/{}/rooms/{}/account_data/m.fully_read", enc(&alice.user_id), enc(&room));
    alice.get(&fully_read).await.expect_error(404, "M_NOT_FOUND");
    alice.post(&receipt("m.fully_read", &first), json!({})).await.expect(200);
    assert_eq!(alice.get(&fully_read).await.expect(200), json!({"event_id": first}));

    // Errors: a thread on m.fully_read, a bad thread id, an unknown type,
    // unknown events, rooms the caller is not in.
    alice
        .post(&receipt("m.fully_read", &second), json!({"thread_id": "main"}))
        .await
        .expect_error(400, "M_INVALID_PARAM");
    alice.post(&receipt("m.read", &second), json!({"thread_id": ""})).await.expect_error(400, "M_INVALID_PARAM");
    alice
        .post(&receipt("m.read", &second), json!({"thread_id": "a-thread"}))
        .await
        .expect_error(400, "M_INVALID_PARAM");
    alice.post(&receipt("m.unknown", &second), json!({})).await.expect_error(400, "M_INVALID_PARAM");
    let ghost = format!("$ghost:{}", deployment.server_name);
    alice.post(&receipt("m.read", &ghost), json!({})).await.expect_error(404, "M_NOT_FOUND");
    alice.post(&receipt("m.fully_read", &ghost), json!({})).await.expect_error(404, "M_NOT_FOUND");
    bob.post(&receipt("m.read", &first), json!({})).await.expect_error(403, "M_FORBIDDEN");
    // An event of another room is unknown in this one.
    let other_room = create_room(&alice).await;
    let elsewhere = send_message(&alice, &other_room, "elsewhere").await;
    alice.post(&receipt("m.read", &elsewhere), json!({})).await.expect_error(404, "M_NOT_FOUND");
    deployment.client().post(&receipt("m.read", &first), json!({})).await.expect_error(401, "M_MISSING_TOKEN");
    assert_eq!(
        alice.get(&fully_read).await.expect(200),
        json!({"event_id": first}),
        "the refused requests changed nothing"
    );

    // read_markers: all three at once.
    let markers = format!("/rooms/{}/read_markers", enc(&room));
    let body = json!({"m.fully_read": second, "m.read": second, "m.read.private": second});
    assert_eq!(alice.post(&markers, body).await.expect(200), json!({}));
    let read =
        read_until(&deployment, &receipts, "the private receipt of read_markers", |m| is(m, "m.read.private", &second))
            .await;
    assert!(read.iter().any(|m| is(m, "m.read", &second) && m.get("thread_id").is_none()), "{read:#?}");
    assert_eq!(alice.get(&fully_read).await.expect(200), json!({"event_id": second}));
    // Nothing at all is a no-op; an unknown event or a non-member is refused, and nothing moves.
    alice.post(&markers, json!({})).await.expect(200);
    alice.post(&markers, json!({"m.fully_read": first, "m.read": ghost})).await.expect_error(404, "M_NOT_FOUND");
    bob.post(&markers, json!({"m.fully_read": first})).await.expect_error(403, "M_FORBIDDEN");
    alice.post(&markers, json!({"m.fully_read": "not-an-event-id"})).await.expect_error(400, "M_BAD_JSON");
    assert_eq!(alice.get(&fully_read).await.expect(200), json!({"event_id": second}));
    // The server owns m.fully_read: clients cannot write it as plain account data.
    let answer = alice.put(&fully_read, json!({"event_id": first})).await;
    assert_eq!(answer.status, 405, "{}", answer.body);

    // Bob joins; his receipts are his.
    bob.post(&format!("/rooms/{}/join", enc(&room)), json!({})).await.expect(200);
    bob.post(&receipt("m.read", &second), json!({})).await.expect(200);
    read_until(&deployment, &receipts, "bob's receipt", |m| {
        m["user_id"] == bob.user_id.as_str() && m["event_id"] == second.as_str()
    })
    .await;
}

#[tokio::test]
async fn events_and_rooms_are_reported() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    let carol = deployment.new_user().await;
    let room = create_room(&alice).await;
    bob.post(&format!("/rooms/{}/join", enc(&room)), json!({})).await.expect(200);
    let rude = send_message(&alice, &room, "rude").await;
    let report = |event: &str| format!("/rooms/{}/report/{}", enc(&room), enc(event));

    assert_eq!(bob.post(&report(&rude), json!({"reason": "rude", "score": -100})).await.expect(200), json!({}));
    bob.post(&report(&rude), json!({})).await.expect(200);
    // A score out of range or of the wrong type; a reason that is not a string.
    bob.post(&report(&rude), json!({"score": -101})).await.expect_error(400, "M_INVALID_PARAM");
    bob.post(&report(&rude), json!({"score": 5})).await.expect_error(400, "M_INVALID_PARAM");
    bob.post(&report(&rude), json!({"score": "bad"})).await.expect_error(400, "M_BAD_JSON");
    bob.post(&report(&rude), json!({"reason": 7})).await.expect_error(400, "M_BAD_JSON");
    // Unknown events, and rooms the reporter is not in, look the same.
    let ghost = format!("$ghost:{}", deployment.server_name);
    bob.post(&report(&ghost), json!({"reason": "?"})).await.expect_error(404, "M_NOT_FOUND");
    carol.post(&report(&rude), json!({"reason": "nosy"})).await.expect_error(404, "M_NOT_FOUND");
    deployment.client().post(&report(&rude), json!({})).await.expect_error(401, "M_MISSING_TOKEN");

    // Rooms: the reporter need not be in it; the reason is required (possibly empty).
    let room_report = format!("/rooms/{}/report", enc(&room));
    assert_eq!(carol.post(&room_report, json!({"reason": "spam room"})).await.expect(200), json!({}));
    carol.post(&room_report, json!({"reason": ""})).await.expect(200);
    carol.post(&room_report, json!({})).await.expect_error(400, "M_MISSING_PARAM");
    let nowhere = format!("/rooms/{}/report", enc(&format!("!nowhere:{}", deployment.server_name)));
    carol.post(&nowhere, json!({"reason": "?"})).await.expect_error(404, "M_NOT_FOUND");

    // What the administrators find.
    let url = deployment.config.component_database("clientapi").expect("clientapi's database").to_owned();
    let db = common::storage::Db::connect(&url).await.expect("the clientapi database opens");
    let rows: Vec<Report> = sqlx::query_as(
        "SELECT event_id, reporter, reason, score FROM clientapi_reports WHERE room_id = $1 ORDER BY id",
    )
    .bind(room.as_str())
    .fetch_all(db.pool())
    .await
    .expect("the reports");
    assert_eq!(
        rows,
        vec![
            (Some(rude.clone()), bob.user_id.clone(), Some("rude".to_owned()), Some(-100)),
            (Some(rude.clone()), bob.user_id.clone(), None, None),
            (None, carol.user_id.clone(), Some("spam room".to_owned()), None),
            (None, carol.user_id.clone(), Some(String::new()), None),
        ]
    );
}
