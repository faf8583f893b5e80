//! `/devices`: listing (with where and when each device was last used),
//! reading, renaming, and deleting behind user-interactive auth, which ends
//! the deleted devices' sessions. Another user's devices are invisible.

use serde_json::{Value, json};
use tests::{
    Deployment, Mode,
    client::{Client, PASSWORD, enc},
};

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

/// Logs `user` in on one more device, named `name`.
async fn new_device(deployment: &Deployment, user: &Client, name: &str) -> Client {
    let answer = deployment
        .client()
        .post(
            "/login",
            json!({
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": user.user_id},
                "password": PASSWORD,
                "initial_device_display_name": name,
            }),
        )
        .await
        .expect(200);
    Client::new(&deployment.base_url).logged_in(&answer)
}

/// The devices `GET /devices` lists, by id.
async fn device_list(client: &Client) -> Vec<Value> {
    let body = client.get("/devices").await.expect(200);
    body["devices"].as_array().unwrap_or_else(|| panic!("no devices list: {body}")).clone()
}

fn ids(devices: &[Value]) -> Vec<&str> {
    let mut ids: Vec<&str> = devices.iter().map(|d| d["device_id"].as_str().expect("a device_id")).collect();
    ids.sort();
    ids
}

/// A UIA 401 asking for the password stage, with all four keys; returns the session.
#[track_caller]
fn password_challenge(body: &Value) -> String {
    assert_eq!(body["flows"], json!([{"stages": ["m.login.password"]}]), "{body}");
    assert!(body["params"].is_object(), "params: {body}");
    assert_eq!(body["completed"], json!([]), "{body}");
    body["session"].as_str().unwrap_or_else(|| panic!("no session: {body}")).to_owned()
}

/// The session's token is refused within a second (revocations reach every instance asynchronously).
async fn assert_token_dead(session: &Client, what: &str) {
    let answer = session.whoami_until_refused(std::time::Duration::from_secs(1)).await;
    assert_eq!((answer.status, answer.errcode()), (401, "M_UNKNOWN_TOKEN"), "{what}: {}", answer.body);
}

async fn listing_and_renaming(deployment: &Deployment) {
    let started = now_ms();
    let alice = deployment.new_user().await;
    let phone = new_device(deployment, &alice, "second phone").await;
    let bob = deployment.new_user().await;
    // Each session makes a request over HTTP, so each device has been seen.
    for client in [&alice, &phone, &bob] {
        client.get("/account/whoami").await.expect(200);
    }

    // Last-seen may be recorded in the background: wait (with a deadline) until both devices have it.
    let mut devices = device_list(&alice).await;
    for _ in 0..100 {
        if devices.iter().all(|d| d["last_seen_ts"].is_u64()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        devices = device_list(&alice).await;
    }
    let mut expected = vec![alice.device_id.as_str(), phone.device_id.as_str()];
    expected.sort();
    assert_eq!(ids(&devices), expected, "exactly alice's two devices, not bob's: {devices:?}");
    for device in &devices {
        // What is known is given; nothing is ever null (the spec's schema).
        for key in ["device_id", "display_name", "last_seen_ip", "last_seen_ts"] {
            assert!(device.get(key).is_none_or(|v| !v.is_null()), "{key} is null in {device}");
        }
        assert_eq!(device["last_seen_ip"], "127.0.0.1", "{device}");
        let seen = device["last_seen_ts"].as_u64().unwrap_or_else(|| panic!("last_seen_ts: {device}"));
        // Milliseconds since the epoch, taken during this test (one minute of slack for clock granularity).
        assert!(
            seen + 60_000 >= started && seen <= now_ms() + 60_000,
            "last_seen_ts {seen} is not in ms around now: {device}"
        );
    }

    // One device.
    let one = alice.get(&format!("/devices/{}", enc(&phone.device_id))).await.expect(200);
    assert_eq!(one["device_id"], phone.device_id.as_str(), "{one}");
    assert_eq!(one["display_name"], "second phone", "initial_device_display_name is the name: {one}");
    assert_eq!(one["last_seen_ip"], "127.0.0.1", "{one}");
    assert!(one["last_seen_ts"].is_u64(), "{one}");
    alice.get("/devices/NOSUCHDEVICE").await.expect_error(404, "M_NOT_FOUND");
    alice.get(&format!("/devices/{}", enc(&bob.device_id))).await.expect_error(404, "M_NOT_FOUND");

    // Renaming.
    let path = format!("/devices/{}", enc(&alice.device_id));
    assert_eq!(alice.put(&path, json!({"display_name": "laptop"})).await.expect(200), json!({}));
    assert_eq!(alice.get(&path).await.expect(200)["display_name"], "laptop");
    let listed = device_list(&alice).await;
    let renamed = listed.iter().find(|d| d["device_id"] == alice.device_id.as_str()).expect("alice's device is listed");
    assert_eq!(renamed["display_name"], "laptop", "{renamed}");
    let untouched = listed.iter().find(|d| d["device_id"] == phone.device_id.as_str()).expect("the phone is listed");
    assert_eq!(untouched["display_name"], "second phone", "only the renamed device changes: {untouched}");
    // A device that is not alice's, whether unknown or bob's, cannot be renamed.
    alice.put("/devices/NOSUCHDEVICE", json!({"display_name": "x"})).await.expect_error(404, "M_NOT_FOUND");
    let bobs = format!("/devices/{}", enc(&bob.device_id));
    alice.put(&bobs, json!({"display_name": "hijacked"})).await.expect_error(404, "M_NOT_FOUND");
    assert_ne!(bob.get(&bobs).await.expect(200)["display_name"], "hijacked");
}

async fn deleting_with_uia(deployment: &Deployment) {
    let alice = deployment.new_user().await;
    let second = new_device(deployment, &alice, "second").await;
    let third = new_device(deployment, &alice, "third").await;
    let fourth = new_device(deployment, &alice, "fourth").await;
    let bob = deployment.new_user().await;

    // DELETE /devices/{id}: first the challenge, and nothing is deleted yet.
    let path = format!("/devices/{}", enc(&second.device_id));
    let challenge = alice.delete(&path, json!({})).await.expect(401);
    let session = password_challenge(&challenge);
    second.get("/account/whoami").await.expect(200);

    // A wrong password fails the stage (M_FORBIDDEN, still a UIA body); an unknown session is refused.
    let wrong = alice.delete(&path, json!({"auth": alice.password_auth("wrong password", Some(&session))})).await;
    let wrong = wrong.expect_error(401, "M_FORBIDDEN");
    assert!(
        wrong["flows"].is_array() && wrong["session"].is_string(),
        "a failed stage still answers with UIA: {wrong}"
    );
    alice
        .delete(&path, json!({"auth": alice.password_auth(PASSWORD, Some("no-such-session"))}))
        .await
        .expect_error(400, "M_INVALID_PARAM");
    second.get("/account/whoami").await.expect(200);

    // The password stage deletes it, and its token stops working.
    let done = alice.delete(&path, json!({"auth": alice.password_auth(PASSWORD, Some(&session))})).await;
    assert_eq!(done.expect(200), json!({}));
    assert_token_dead(&second, "the deleted device's token").await;
    alice.get(&path).await.expect_error(404, "M_NOT_FOUND");
    let mut left = vec![alice.device_id.as_str(), third.device_id.as_str(), fourth.device_id.as_str()];
    left.sort();
    assert_eq!(ids(&device_list(&alice).await), left);

    // POST /delete_devices: the same dance for several at once.
    let batch = json!([third.device_id, fourth.device_id]);
    let challenge = alice.post("/delete_devices", json!({"devices": batch})).await.expect(401);
    let session = password_challenge(&challenge);
    third.get("/account/whoami").await.expect(200);
    let done = alice
        .post("/delete_devices", json!({"devices": batch, "auth": alice.password_auth(PASSWORD, Some(&session))}))
        .await;
    assert_eq!(done.expect(200), json!({}));
    assert_token_dead(&third, "a deleted device's token").await;
    assert_token_dead(&fourth, "a deleted device's token").await;
    assert_eq!(alice.get("/account/whoami").await.expect(200)["device_id"], alice.device_id.as_str());
    assert_eq!(ids(&device_list(&alice).await), vec![alice.device_id.as_str()]);

    // Bob's device in alice's list is not hers: nothing of bob's is deleted
    // (the spec answers 200 for devices that are not there).
    let challenge = alice.post("/delete_devices", json!({"devices": [bob.device_id]})).await.expect(401);
    let session = password_challenge(&challenge);
    alice
        .post(
            "/delete_devices",
            json!({"devices": [bob.device_id], "auth": alice.password_auth(PASSWORD, Some(&session))}),
        )
        .await
        .expect(200);
    bob.get("/account/whoami").await.expect(200);
    assert_eq!(ids(&device_list(&bob).await), vec![bob.device_id.as_str()]);
}

#[tokio::test]
async fn devices_are_listed_renamed_and_deleted_behind_uia() {
    let deployment = Deployment::start(Mode::Polylith).await;
    listing_and_renaming(&deployment).await;
    deleting_with_uia(&deployment).await;
}
