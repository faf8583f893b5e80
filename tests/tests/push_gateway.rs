//! Push notifications end to end: a push gateway in the test records what
//! userapi POSTs, for one-to-one messages, mentions and muted rooms; slow,
//! rejecting and failing gateways; a userapi killed with pushes queued;
//! `GET /notifications` and the counts on `OutputNotificationData`; gateways
//! served over HTTPS, pushed to when `global.outbound_trusted_ca_files`
//! trusts their certificate's CA and never otherwise.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{Json, Router, extract::State, http::StatusCode, routing::post, serve::Listener};
use serde_json::{Value, json};
use tests::{
    Deployment, Mode, Options,
    client::{Client, enc},
    streams::read_until,
    tls::{HandshakeFailures, TestCa, TlsListener},
};

/// What the gateway does with a push for a pushkey (default: accept).
#[derive(Clone, Copy)]
enum Behaviour {
    Accept,
    Reject,
    Fail,
    NeverAnswer,
}

#[derive(Clone, Default)]
struct Gateway {
    /// Every notification POSTed, and whether it was accepted.
    received: Arc<Mutex<Vec<(Value, bool)>>>,
    behaviour: Arc<Mutex<HashMap<String, Behaviour>>>,
}

impl Gateway {
    /// Serves on loopback; returns the gateway and its notify URL.
    async fn start() -> (Gateway, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/_matrix/push/v1/notify", listener.local_addr().unwrap());
        (Gateway::serve(listener), url)
    }

    /// Serves HTTPS on loopback with the certificate of `ca` for 127.0.0.1;
    /// returns the gateway, its notify URL and the handshakes that failed.
    async fn start_https(ca: &TestCa) -> (Gateway, String, HandshakeFailures) {
        let listener = TlsListener::bind(ca.server_config(&["127.0.0.1"])).await;
        let url = format!("https://{}/_matrix/push/v1/notify", listener.local_addr().unwrap());
        let failures = listener.handshake_failures();
        (Gateway::serve(listener), url, failures)
    }

    fn serve<L: Listener<Addr: std::fmt::Debug>>(listener: L) -> Gateway {
        let gateway = Gateway::default();
        let app = Router::new().route("/_matrix/push/v1/notify", post(notify)).with_state(gateway.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        gateway
    }

    fn set(&self, pushkey: &str, behaviour: Behaviour) {
        self.behaviour.lock().unwrap().insert(pushkey.to_owned(), behaviour);
    }

    /// The notifications accepted so far for `pushkey`.
    fn accepted(&self, pushkey: &str) -> Vec<Value> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|(n, accepted)| *accepted && n["devices"][0]["pushkey"] == pushkey)
            .map(|(n, _)| n.clone())
            .collect()
    }

    fn attempts(&self, pushkey: &str) -> usize {
        self.received.lock().unwrap().iter().filter(|(n, _)| n["devices"][0]["pushkey"] == pushkey).count()
    }

    /// Waits for the push of `event_id` to `pushkey`.
    async fn push_of(&self, pushkey: &str, event_id: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            if let Some(found) = self.accepted(pushkey).into_iter().find(|n| n["event_id"] == event_id) {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "no push of {event_id} to {pushkey} within {within:?}; got {:#?}",
                self.received.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn notify(State(gateway): State<Gateway>, Json(body): Json<Value>) -> (StatusCode, Json<Value>) {
    let notification = body["notification"].clone();
    let pushkey = notification["devices"][0]["pushkey"].as_str().unwrap_or_default().to_owned();
    let behaviour = gateway.behaviour.lock().unwrap().get(&pushkey).copied().unwrap_or(Behaviour::Accept);
    gateway.received.lock().unwrap().push((notification, matches!(behaviour, Behaviour::Accept)));
    match behaviour {
        Behaviour::Accept => (StatusCode::OK, Json(json!({"rejected": []}))),
        Behaviour::Reject => (StatusCode::OK, Json(json!({"rejected": [pushkey]}))),
        Behaviour::Fail => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({}))),
        Behaviour::NeverAnswer => std::future::pending().await,
    }
}

async fn set_pusher(client: &Client, pushkey: &str, data: Value) {
    client
        .post(
            "/pushers/set",
            json!({
                "kind": "http",
                "app_id": "org.example.app",
                "pushkey": pushkey,
                "app_display_name": "Example",
                "device_display_name": "Phone",
                "lang": "en",
                "data": data,
            }),
        )
        .await
        .expect(200);
}

async fn public_room(creator: &Client, joiners: &[&Client]) -> String {
    let answer = creator.post("/createRoom", json!({"preset": "public_chat"})).await.expect(200);
    let room_id = answer["room_id"].as_str().unwrap().to_owned();
    for joiner in joiners {
        joiner.post(&format!("/join/{}", enc(&room_id)), json!({})).await.expect(200);
    }
    room_id
}

async fn send(client: &Client, room_id: &str, content: Value) -> String {
    let path = format!("/rooms/{}/send/m.room.message/{}", enc(room_id), rand::random::<u64>());
    client.put(&path, content).await.expect(200)["event_id"].as_str().unwrap().to_owned()
}

fn text(body: &str) -> Value {
    json!({"msgtype": "m.text", "body": body})
}

fn stream(deployment: &Deployment, name: &str) -> String {
    format!("{}_{name}", deployment.config.global.nats.stream_prefix)
}

fn localpart(user_id: &str) -> &str {
    user_id.trim_start_matches('@').split(':').next().unwrap()
}

/// The push of a one-to-one message (sound, no highlight, one unread) to a
/// pusher whose data is `{"custom": "kept"}`, without its `pushkey_ts`.
fn one_to_one_push(event_id: &str, room: &str, sender: &Client, body: &str, pushkey: &str) -> Value {
    json!({
        "event_id": event_id,
        "room_id": room,
        "type": "m.room.message",
        "sender": sender.user_id,
        "sender_display_name": localpart(&sender.user_id),
        "content": text(body),
        "prio": "high",
        "counts": {"unread": 1, "missed_calls": 0},
        "devices": [{
            "app_id": "org.example.app",
            "pushkey": pushkey,
            "pushkey_ts": null,
            "data": {"custom": "kept"},
            "tweaks": {"sound": "default"},
        }],
    })
}

#[tokio::test]
async fn message_mention_and_muted_room_payloads_then_notifications_read_after_receipt() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let (gateway, url) = Gateway::start().await;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    set_pusher(&bob, "bob-full", json!({"url": url, "custom": "kept"})).await;
    set_pusher(&bob, "bob-ids", json!({"url": url, "format": "event_id_only"})).await;
    let room = public_room(&alice, &[&bob]).await;

    // Two members: the one-to-one rule (sound, no highlight).
    let hello = send(&alice, &room, text("hello")).await;
    let mut full = gateway.push_of("bob-full", &hello, Duration::from_secs(20)).await;
    let pushkey_ts = full["devices"][0]["pushkey_ts"].take();
    assert!(pushkey_ts.as_u64().is_some_and(|ts| ts > 1_700_000_000), "seconds: {pushkey_ts}");
    assert_eq!(full, one_to_one_push(&hello, &room, &alice, "hello", "bob-full"));
    let mut ids = gateway.push_of("bob-ids", &hello, Duration::from_secs(5)).await;
    ids["devices"][0]["pushkey_ts"].take();
    assert_eq!(
        ids,
        json!({
            "event_id": hello,
            "room_id": room,
            "prio": "high",
            "counts": {"unread": 1, "missed_calls": 0},
            "devices": [{
                "app_id": "org.example.app",
                "pushkey": "bob-ids",
                "pushkey_ts": null,
                "data": {"format": "event_id_only"},
                "tweaks": {"sound": "default"},
            }],
        })
    );

    // A mention highlights.
    let mention_content = json!({"msgtype": "m.text", "body": "hey bob", "m.mentions": {"user_ids": [bob.user_id]}});
    let mention = send(&alice, &room, mention_content.clone()).await;
    let mut full = gateway.push_of("bob-full", &mention, Duration::from_secs(20)).await;
    full["devices"][0]["pushkey_ts"].take();
    assert_eq!(full["content"], mention_content);
    assert_eq!(full["counts"], json!({"unread": 2, "missed_calls": 0}));
    assert_eq!(full["prio"], "high");
    assert_eq!(full["devices"][0]["tweaks"], json!({"sound": "default", "highlight": true}));

    // Muted room: neither a push nor a notification.
    bob.put(&format!("/pushrules/global/room/{}", enc(&room)), json!({"actions": []})).await.expect(200);
    let muted = send(&alice, &room, text("shh")).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(gateway.received.lock().unwrap().iter().all(|(n, _)| n["event_id"] != muted), "no push for {muted}");

    // Newest first, unread; a receipt for the mention reads both.
    let listed = bob.get("/notifications").await.expect(200);
    let events: Vec<&Value> =
        listed["notifications"].as_array().unwrap().iter().map(|n| &n["event"]["event_id"]).collect();
    assert_eq!(events, [&json!(mention), &json!(hello)], "{listed:#}");
    let first = &listed["notifications"][0];
    assert_eq!(first["read"], false);
    assert_eq!(first["room_id"], room.as_str());
    assert_eq!(first["event"]["content"], mention_content);
    assert!(first["actions"].as_array().unwrap().contains(&json!({"set_tweak": "highlight"})), "{first}");
    assert!(first["ts"].as_u64().is_some());
    let highlights = bob.get("/notifications?only=highlight").await.expect(200);
    assert_eq!(highlights["notifications"].as_array().unwrap().len(), 1, "{highlights:#}");
    let page = bob.get("/notifications?limit=1").await.expect(200);
    let next = page["next_token"].as_str().expect("a next page").to_owned();
    let page2 = bob.get(&format!("/notifications?limit=1&from={}", enc(&next))).await.expect(200);
    assert_eq!(page2["notifications"][0]["event"]["event_id"], hello.as_str());

    // A redacted event is listed pruned.
    let redact = format!("/rooms/{}/redact/{}/{}", enc(&room), enc(&hello), rand::random::<u64>());
    alice.put(&redact, json!({})).await.expect(200);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let listed = bob.get("/notifications").await.expect(200);
        if listed["notifications"][1]["event"]["content"] == json!({}) {
            break;
        }
        assert!(Instant::now() < deadline, "still unredacted: {listed:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    bob.post(&format!("/rooms/{}/receipt/m.read/{}", enc(&room), enc(&mention)), json!({})).await.expect(200);
    let read = read_until(&deployment, &stream(&deployment, "OutputNotificationData"), "bob's counts at 0", |m| {
        m["user_id"] == bob.user_id.as_str() && m["notification_count"] == 0
    })
    .await;
    let counts: Vec<(u64, u64)> = read
        .iter()
        .filter(|m| m["user_id"] == bob.user_id.as_str() && m["room_id"] == room.as_str())
        .map(|m| (m["notification_count"].as_u64().unwrap(), m["highlight_count"].as_u64().unwrap()))
        .collect();
    assert_eq!(counts, [(1, 0), (2, 1), (0, 0)]);
    let listed = bob.get("/notifications").await.expect(200);
    let read: Vec<&Value> = listed["notifications"].as_array().unwrap().iter().map(|n| &n["read"]).collect();
    assert_eq!(read, [&json!(true), &json!(true)], "{listed:#}");
}

#[tokio::test]
async fn a_dead_gateway_delays_nobody_else_and_a_rejected_pushkey_loses_its_pusher() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let (gateway, url) = Gateway::start().await;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    let carol = deployment.new_user().await;
    gateway.set("carol-dead", Behaviour::NeverAnswer);
    gateway.set("bob-rejected", Behaviour::Reject);
    set_pusher(&carol, "carol-dead", json!({"url": url})).await;
    set_pusher(&bob, "bob-ok", json!({"url": url})).await;
    set_pusher(&bob, "bob-rejected", json!({"url": url})).await;
    let room = public_room(&alice, &[&bob, &carol]).await;

    let first = send(&alice, &room, text("one")).await;
    let push = gateway.push_of("bob-ok", &first, Duration::from_secs(20)).await;
    // Three members: the plain message rule, no tweaks.
    assert_eq!(push["prio"], "low");
    assert_eq!(push["devices"][0]["tweaks"], json!({}));
    for _ in 0..3 {
        let sent_at = Instant::now();
        let event = send(&alice, &room, text("more")).await;
        gateway.push_of("bob-ok", &event, Duration::from_secs(1) + sent_at.elapsed()).await;
    }
    assert!(gateway.attempts("carol-dead") >= 1, "carol's gateway was holding a push all along");

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pushers = bob.get("/pushers").await.expect(200);
        let keys: Vec<&Value> = pushers["pushers"].as_array().unwrap().iter().map(|p| &p["pushkey"]).collect();
        if keys == [&json!("bob-ok")] {
            break;
        }
        assert!(Instant::now() < deadline, "the rejected pusher is still there: {pushers:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(gateway.attempts("bob-rejected"), 1, "nothing more went to a rejected pushkey");
}

#[tokio::test]
async fn pushes_queued_when_userapi_is_killed_are_delivered_after_restart() {
    let mut deployment = Deployment::start(Mode::Polylith).await;
    let (gateway, url) = Gateway::start().await;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    set_pusher(&bob, "bob", json!({"url": url})).await;
    let room = public_room(&alice, &[&bob]).await;

    gateway.set("bob", Behaviour::Fail);
    let mut events = Vec::new();
    for i in 0..3 {
        events.push(send(&alice, &room, text(&format!("queued {i}"))).await);
    }
    // All three evaluated and queued, the first one failing at the gateway.
    read_until(&deployment, &stream(&deployment, "OutputNotificationData"), "bob's third notification", |m| {
        m["user_id"] == bob.user_id.as_str() && m["notification_count"] == 3
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while gateway.attempts("bob") == 0 {
        assert!(Instant::now() < deadline, "no attempt at the failing gateway");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    deployment.kill_instance("userapi-1", libc::SIGKILL).await;
    gateway.set("bob", Behaviour::Accept);
    deployment.start_instance("userapi").await;
    for event in &events {
        gateway.push_of("bob", event, Duration::from_secs(30)).await;
    }
    let delivered: Vec<Value> = gateway.accepted("bob").iter().map(|n| n["event_id"].clone()).collect();
    assert_eq!(delivered, events.iter().map(|e| json!(e)).collect::<Vec<_>>(), "each once, in order");
}

#[tokio::test]
async fn thread_counts_are_kept_apart_and_cleared_by_their_own_receipts() {
    let deployment = Deployment::start(Mode::Monolith).await;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    let room = public_room(&alice, &[&bob]).await;

    let root = send(&alice, &room, text("root")).await;
    let reply = send(
        &alice,
        &room,
        json!({
            "msgtype": "m.text",
            "body": "in the thread",
            "m.relates_to": {"rel_type": "m.thread", "event_id": root, "is_falling_back": true,
                             "m.in_reply_to": {"event_id": root}},
        }),
    )
    .await;
    let bobs = |m: &Value| m["user_id"] == bob.user_id.as_str() && m["room_id"] == room.as_str();
    let counts = stream(&deployment, "OutputNotificationData");
    read_until(&deployment, &counts, "bob's thread count", |m| bobs(m) && !m["threads"][&root].is_null()).await;

    // A receipt in the thread clears the thread only.
    let receipt = format!("/rooms/{}/receipt/m.read/{}", enc(&room), enc(&reply));
    bob.post(&receipt, json!({"thread_id": root})).await.expect(200);
    // The fully-read marker reads like an unthreaded receipt.
    bob.post(&format!("/rooms/{}/read_markers", enc(&room)), json!({"m.fully_read": root})).await.expect(200);
    let read = read_until(&deployment, &counts, "bob's counts at 0", |m| bobs(m) && m["notification_count"] == 0).await;
    let seen: Vec<(u64, Value)> = read
        .iter()
        .filter(|m| bobs(m))
        .map(|m| (m["notification_count"].as_u64().unwrap(), m["threads"].clone()))
        .collect();
    let one = json!({"notification_count": 1, "highlight_count": 0});
    assert_eq!(seen, [(1, json!({})), (1, json!({ root.clone(): one })), (1, json!({})), (0, json!({}))], "{read:#?}");
    let listed = bob.get("/notifications").await.expect(200);
    assert!(listed["notifications"].as_array().unwrap().iter().all(|n| n["read"] == true), "{listed:#}");
}

#[tokio::test]
async fn an_invite_notifies_the_invitee() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let (gateway, url) = Gateway::start().await;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    set_pusher(&bob, "bob", json!({"url": url})).await;
    let room = public_room(&alice, &[]).await;
    alice.post(&format!("/rooms/{}/invite", enc(&room)), json!({"user_id": bob.user_id})).await.expect(200);

    let deadline = Instant::now() + Duration::from_secs(20);
    let push = loop {
        if let Some(push) = gateway.accepted("bob").into_iter().find(|n| n["type"] == "m.room.member") {
            break push;
        }
        assert!(Instant::now() < deadline, "no push of the invite");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(push["content"]["membership"], "invite");
    assert_eq!(push["user_is_target"], true);
    assert_eq!(push["devices"][0]["tweaks"], json!({"sound": "default"}));
}

/// Bob has two pushers on HTTPS gateways, one with a certificate from a CA
/// that `outbound_trusted_ca_files` names, one from a CA it does not. The
/// first gets the push. The second gets nothing: the homeserver aborts each
/// handshake with it for the unknown CA, and keeps both the push queued (the
/// second aborted handshake is its retry) and the pusher.
async fn https_gateways_get_pushes_only_with_a_trusted_certificate(mode: Mode) {
    let trusted_ca = TestCa::new("trusted test CA");
    let untrusted_ca = TestCa::new("untrusted test CA");
    let ca_files = serde_json::to_string(&[trusted_ca.pem_path()]).unwrap();
    let deployment =
        Deployment::start_with(Options::new(mode).set("global.outbound_trusted_ca_files", &ca_files)).await;
    let (trusted, trusted_url, _) = Gateway::start_https(&trusted_ca).await;
    let (untrusted, untrusted_url, untrusted_failures) = Gateway::start_https(&untrusted_ca).await;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    set_pusher(&bob, "bob-untrusted", json!({"url": untrusted_url})).await;
    set_pusher(&bob, "bob-trusted", json!({"url": trusted_url, "custom": "kept"})).await;
    let room = public_room(&alice, &[&bob]).await;

    let hello = send(&alice, &room, text("hello over TLS")).await;
    let mut push = trusted.push_of("bob-trusted", &hello, Duration::from_secs(20)).await;
    let pushkey_ts = push["devices"][0]["pushkey_ts"].take();
    assert!(pushkey_ts.as_u64().is_some_and(|ts| ts > 1_700_000_000), "seconds: {pushkey_ts}");
    assert_eq!(push, one_to_one_push(&hello, &room, &alice, "hello over TLS", "bob-trusted"));

    // A failed first attempt is retried a second later.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let failures = untrusted_failures.lock().unwrap().clone();
        if failures.len() >= 2 {
            assert!(failures.iter().all(|f| f.contains("UnknownCA")), "the client refused the CA: {failures:#?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no retry reached the untrusted gateway; its failed handshakes: {failures:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(untrusted.attempts("bob-untrusted"), 0, "no notification went past an untrusted certificate");
    let pushers = bob.get("/pushers").await.expect(200);
    let mut keys: Vec<&str> =
        pushers["pushers"].as_array().unwrap().iter().map(|p| p["pushkey"].as_str().unwrap()).collect();
    keys.sort();
    assert_eq!(keys, ["bob-trusted", "bob-untrusted"], "a TLS failure is no rejection: {pushers:#}");
}

#[tokio::test]
async fn https_gateways_get_pushes_only_with_a_trusted_certificate_monolith() {
    https_gateways_get_pushes_only_with_a_trusted_certificate(Mode::Monolith).await;
}

#[tokio::test]
async fn https_gateways_get_pushes_only_with_a_trusted_certificate_polylith() {
    https_gateways_get_pushes_only_with_a_trusted_certificate(Mode::Polylith).await;
}
