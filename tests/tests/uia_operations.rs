//! A user-interactive-auth session completes only the operation it was
//! started for: the same kind of request with the same meaningful fields
//! (which devices to delete), by the same user. Any other use is 403
//! M_FORBIDDEN and leaves the session as it was, so the operation it was
//! made for still completes with it.

use serde_json::{Value, json};
use tests::{
    Deployment, Mode,
    client::{Client, PASSWORD, enc},
};

async fn second_device(deployment: &Deployment, user: &Client) -> Client {
    deployment.client().login(&user.user_id, PASSWORD).await
}

#[track_caller]
fn session_of(challenge: &Value) -> String {
    challenge["session"].as_str().unwrap_or_else(|| panic!("no UIA session: {challenge}")).to_owned()
}

/// The device's token still works.
async fn assert_alive(device: &Client, what: &str) {
    let answer = device.get("/account/whoami").await;
    assert_eq!(answer.status, 200, "{what} must still work: {}", answer.body);
}

async fn deleting_another_device(deployment: &Deployment) {
    let alice = deployment.new_user().await;
    let a = second_device(deployment, &alice).await;
    let b = second_device(deployment, &alice).await;
    let path_a = format!("/devices/{}", enc(&a.device_id));
    let path_b = format!("/devices/{}", enc(&b.device_id));

    // Started to delete A, offered to delete B: refused, B lives on.
    let session = session_of(&alice.delete(&path_a, json!({})).await.expect(401));
    let auth = alice.password_auth(PASSWORD, Some(&session));
    alice.delete(&path_b, json!({ "auth": auth })).await.expect_error(403, "M_FORBIDDEN");
    assert_alive(&b, "device B").await;
    // Nor through the batch endpoint with B added.
    let both = json!({ "devices": [a.device_id, b.device_id], "auth": auth });
    alice.post("/delete_devices", both).await.expect_error(403, "M_FORBIDDEN");
    assert_alive(&a, "device A").await;
    assert_alive(&b, "device B").await;

    // The session was not used up: it still deletes A, and only A.
    assert_eq!(alice.delete(&path_a, json!({ "auth": auth })).await.expect(200), json!({}));
    let refused = a.whoami_until_refused(std::time::Duration::from_secs(1)).await;
    assert_eq!(refused.status, 401, "device A's token after its deletion: {}", refused.body);
    assert_alive(&b, "device B").await;
}

async fn same_devices_in_another_order(deployment: &Deployment) {
    let alice = deployment.new_user().await;
    let a = second_device(deployment, &alice).await;
    let b = second_device(deployment, &alice).await;
    let first = json!({ "devices": [a.device_id, b.device_id] });
    let session = session_of(&alice.post("/delete_devices", first).await.expect(401));
    let auth = alice.password_auth(PASSWORD, Some(&session));
    let reordered = json!({ "devices": [b.device_id, a.device_id], "auth": auth });
    assert_eq!(alice.post("/delete_devices", reordered).await.expect(200), json!({}));
}

async fn another_kind_of_operation(deployment: &Deployment) {
    let alice = deployment.new_user().await;
    // A session started to change the password cannot deactivate the account.
    let change = json!({ "new_password": "another long passphrase" });
    let session = session_of(&alice.post("/account/password", change).await.expect(401));
    let auth = alice.password_auth(PASSWORD, Some(&session));
    alice.post("/account/deactivate", json!({ "auth": auth })).await.expect_error(403, "M_FORBIDDEN");
    assert_alive(&alice, "the account").await;
    // Nor change it with other meaningful fields (logging out the other devices).
    let other = json!({ "new_password": "another long passphrase", "logout_devices": false, "auth": auth });
    alice.post("/account/password", other).await.expect_error(403, "M_FORBIDDEN");
    // It still changes the password it was started for.
    let change = json!({ "new_password": "another long passphrase", "auth": auth });
    assert_eq!(alice.post("/account/password", change).await.expect(200), json!({}));
    deployment.client().login(&alice.user_id, "another long passphrase").await;
}

async fn another_user(deployment: &Deployment) {
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    let path = format!("/devices/{}", enc(&bob.device_id));
    let session = session_of(&bob.delete(&path, json!({})).await.expect(401));
    // Alice, with her own password, cannot complete bob's session.
    let auth = alice.password_auth(PASSWORD, Some(&session));
    let own = format!("/devices/{}", enc(&alice.device_id));
    alice.delete(&own, json!({ "auth": auth })).await.expect_error(403, "M_FORBIDDEN");
    assert_alive(&alice, "alice's device").await;
    // Nor can bob authenticate his own operation with alice's credentials (403, not a stage to retry).
    let auth = alice.password_auth(PASSWORD, Some(&session));
    let refused = bob.delete(&path, json!({ "auth": auth })).await.expect_error(403, "M_FORBIDDEN");
    assert!(refused.get("flows").is_none(), "a plain 403, not a UIA challenge: {refused}");
    // Bob's own operation goes through with it.
    let auth = bob.password_auth(PASSWORD, Some(&session));
    assert_eq!(bob.delete(&path, json!({ "auth": auth })).await.expect(200), json!({}));
}

async fn all(deployment: &Deployment) {
    deleting_another_device(deployment).await;
    same_devices_in_another_order(deployment).await;
    another_kind_of_operation(deployment).await;
    another_user(deployment).await;
}

#[tokio::test]
async fn uia_sessions_are_bound_to_their_operation_monolith() {
    all(&Deployment::start(Mode::Monolith).await).await;
}

#[tokio::test]
async fn uia_sessions_are_bound_to_their_operation_polylith() {
    all(&Deployment::start(Mode::Polylith).await).await;
}
