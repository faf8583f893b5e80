//! Send-to-device messages (published on `OutputSendToDeviceEvent` once per
//! transaction id, whichever clientapi instance a retry reaches) and presence
//! (`GET`/`PUT /presence/{userId}/status`, published on `OutputPresenceEvent`),
//! with every error a client can provoke.

use serde_json::{Value, json};
use tests::{
    Deployment, Mode, Options,
    client::{Client, enc},
    streams::read_until,
};

fn stream(deployment: &Deployment, name: &str) -> String {
    format!("{}_{name}", deployment.config.global.nats.stream_prefix)
}

fn send_path(event_type: &str, txn: &str) -> String {
    format!("/sendToDevice/{}/{}", enc(event_type), enc(txn))
}

/// The messages on `OutputSendToDeviceEvent` up to the one whose content says `marker`.
async fn messages_until(deployment: &Deployment, marker: &str) -> Vec<Value> {
    let stream = stream(deployment, "OutputSendToDeviceEvent");
    read_until(deployment, &stream, marker, |m| m["content"]["marker"] == marker).await
}

#[tokio::test]
async fn to_device_messages_are_published_once_per_transaction() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    let bob_phone = deployment.client().login(&bob.user_id, tests::client::PASSWORD).await;
    let remote = "@someone:elsewhere.example";

    let body = json!({"messages": {
        bob.user_id.as_str(): {
            bob.device_id.as_str(): {"marker": "first", "to": "one device"},
            "*": {"marker": "first", "to": "all"},
        },
        remote: {"DEVICE": {"marker": "first", "to": "remote"}},
    }});
    assert_eq!(alice.put(&send_path("m.example.ping", "txn1"), body.clone()).await.expect(200), json!({}));
    // The same transaction again, to this instance and straight to the other one.
    alice.put(&send_path("m.example.ping", "txn1"), body.clone()).await.expect(200);
    for instance in ["clientapi-1", "clientapi-2"] {
        alice
            .at(&deployment.instance_url(instance))
            .put(&send_path("m.example.ping", "txn1"), body.clone())
            .await
            .expect(200);
    }
    // The same transaction id from another device is another transaction.
    let sent_by_bob = json!({"messages": {alice.user_id.as_str(): {alice.device_id.as_str(): {"marker": "from bob"}}}});
    bob_phone.put(&send_path("m.example.ping", "txn1"), sent_by_bob).await.expect(200);
    let sentinel = json!({"messages": {bob.user_id.as_str(): {bob_phone.device_id.as_str(): {"marker": "last"}}}});
    alice.put(&send_path("m.example.ping", "txn2"), sentinel).await.expect(200);

    let read = messages_until(&deployment, "last").await;
    let first: Vec<&Value> = read.iter().filter(|m| m["content"]["marker"] == "first").collect();
    assert_eq!(first.len(), 2, "one message per local target, published once, the remote one left out: {read:#?}");
    let to_device = first.iter().find(|m| m["device_id"] == bob.device_id.as_str()).expect("the one-device message");
    assert_eq!(to_device["sender"], alice.user_id.as_str());
    assert_eq!(to_device["user_id"], bob.user_id.as_str());
    assert_eq!(to_device["event_type"], "m.example.ping");
    assert_eq!(to_device["content"], json!({"marker": "first", "to": "one device"}));
    let to_all = first.iter().find(|m| m["content"]["to"] == "all").expect("the all-devices message");
    assert!(to_all.get("device_id").is_none_or(Value::is_null), "all devices: no device id: {to_all}");
    assert_ne!(to_device["message_id"], to_all["message_id"], "message ids are unique per target");
    let from_bob: Vec<&Value> = read.iter().filter(|m| m["content"]["marker"] == "from bob").collect();
    assert_eq!(from_bob.len(), 1, "{read:#?}");
    assert_eq!(from_bob[0]["sender"], bob.user_id.as_str());

    // The transaction is remembered in clientapi's table, not only by JetStream's duplicate window.
    let url = deployment.config.component_database("clientapi").expect("clientapi's database").to_owned();
    let db = common::storage::Db::connect(&url).await.expect("the clientapi database opens");
    let txns: Vec<(String, String)> =
        sqlx::query_as("SELECT device_id, txn_id FROM clientapi_to_device_txns WHERE user_id = $1 ORDER BY txn_id")
            .bind(alice.user_id.as_str())
            .fetch_all(db.pool())
            .await
            .expect("the transactions");
    assert_eq!(txns, vec![(alice.device_id.clone(), "txn1".to_owned()), (alice.device_id.clone(), "txn2".to_owned())]);
}

#[tokio::test]
async fn to_device_requests_the_spec_does_not_allow_are_refused() {
    let deployment =
        Deployment::start_with(Options::new(Mode::Polylith).set("clientapi.registration.guests", "true")).await;
    let alice = deployment.new_user().await;
    let path = send_path("m.example.ping", "bad");
    let to_alice = |content: Value| json!({"messages": {alice.user_id.as_str(): {alice.device_id.as_str(): content}}});

    alice.put(&path, json!({})).await.expect_error(400, "M_BAD_JSON");
    alice.put(&path, json!({"messages": {"not a user id": {"D": {}}}})).await.expect_error(400, "M_BAD_JSON");
    alice.put(&path, json!({"messages": []})).await.expect_error(400, "M_BAD_JSON");
    alice.put(&path, to_alice(json!("a string"))).await.expect_error(400, "M_BAD_JSON");
    alice.put(&path, to_alice(json!([1, 2]))).await.expect_error(400, "M_BAD_JSON");
    let huge = "x".repeat(70_000);
    alice.put(&path, to_alice(json!({"huge": huge}))).await.expect_error(413, "M_TOO_LARGE");
    deployment.client().put(&path, to_alice(json!({}))).await.expect_error(401, "M_MISSING_TOKEN");
    // A refused request did not use up its transaction id.
    alice.put(&path, to_alice(json!({"marker": "after refusals"}))).await.expect(200);
    // Nobody to send to is fine.
    alice.put(&send_path("m.example.ping", "empty"), json!({"messages": {}})).await.expect(200);

    // Guests may send to devices.
    let guest = deployment.client().post("/register?kind=guest", json!({})).await.expect(200);
    let guest = Client::new(&deployment.base_url).logged_in(&guest);
    guest.put(&send_path("m.example.ping", "g1"), to_alice(json!({"marker": "from a guest"}))).await.expect(200);
    let read = messages_until(&deployment, "from a guest").await;
    assert_eq!(read.last().unwrap()["sender"], guest.user_id.as_str());
    assert!(read.iter().any(|m| m["content"]["marker"] == "after refusals"), "{read:#?}");
}

fn status_path(user_id: &str) -> String {
    format!("/presence/{}/status", enc(user_id))
}

async fn presence_test(mode: Mode) {
    let deployment = Deployment::start(mode).await;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;

    // Nothing said yet: offline.
    assert_eq!(bob.get(&status_path(&alice.user_id)).await.expect(200), json!({"presence": "offline"}));

    let set = json!({"presence": "online", "status_msg": "at my desk"});
    assert_eq!(alice.put(&status_path(&alice.user_id), set).await.expect(200), json!({}));
    let shown = bob.get(&status_path(&alice.user_id)).await.expect(200);
    assert_eq!(shown["presence"], "online", "{shown}");
    assert_eq!(shown["status_msg"], "at my desk", "{shown}");
    assert_eq!(shown["currently_active"], true, "{shown}");
    assert!(shown["last_active_ago"].as_u64().is_some_and(|ago| ago < 60_000), "{shown}");

    let stream = stream(&deployment, "OutputPresenceEvent");
    let read = read_until(&deployment, &stream, "alice online", |m| m["user_id"] == alice.user_id.as_str()).await;
    let published = read.last().unwrap();
    assert_eq!(published["presence"], "online", "{published}");
    assert_eq!(published["status_msg"], "at my desk", "{published}");
    assert_eq!(published["currently_active"], true, "{published}");

    // Away, without a status message: the old one is gone.
    alice.put(&status_path(&alice.user_id), json!({"presence": "unavailable"})).await.expect(200);
    let shown = alice.get(&status_path(&alice.user_id)).await.expect(200);
    assert_eq!(shown["presence"], "unavailable", "{shown}");
    assert!(shown.get("status_msg").is_none_or(Value::is_null), "{shown}");
    assert_eq!(shown["currently_active"], false, "{shown}");
    read_until(&deployment, &stream, "alice away", |m| {
        m["user_id"] == alice.user_id.as_str() && m["presence"] == "unavailable"
    })
    .await;

    // Only for oneself, only the spec's states, a bounded status message.
    bob.put(&status_path(&alice.user_id), json!({"presence": "offline"})).await.expect_error(403, "M_FORBIDDEN");
    alice.put(&status_path(&alice.user_id), json!({"presence": "busy"})).await.expect_error(400, "M_INVALID_PARAM");
    alice.put(&status_path(&alice.user_id), json!({"status_msg": "no state"})).await.expect_error(400, "M_BAD_JSON");
    let long = json!({"presence": "online", "status_msg": "x".repeat(1025)});
    alice.put(&status_path(&alice.user_id), long).await.expect_error(400, "M_INVALID_PARAM");
    deployment.client().get(&status_path(&alice.user_id)).await.expect_error(401, "M_MISSING_TOKEN");
    // Nobody by that name, here or (until federation) elsewhere.
    let nobody = format!("@nobody:{}", deployment.server_name);
    alice.get(&status_path(&nobody)).await.expect_error(404, "M_NOT_FOUND");
    alice.get(&status_path("@someone:elsewhere.example")).await.expect_error(404, "M_NOT_FOUND");
    alice.get("/presence/not-a-user/status").await.expect_error(400, "M_INVALID_PARAM");
    let shown = bob.get(&status_path(&alice.user_id)).await.expect(200);
    assert_eq!(shown["presence"], "unavailable", "refused changes changed nothing: {shown}");
}

#[tokio::test]
async fn presence_is_set_by_its_user_read_by_others_and_published() {
    presence_test(Mode::Polylith).await;
}

#[tokio::test]
async fn presence_works_in_the_monolith() {
    presence_test(Mode::Monolith).await;
}
