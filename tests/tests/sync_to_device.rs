//! To-device messages in a sync: delivered to the device (or every device)
//! they were sent to, in order, and deleted only once the device has come back
//! with a later token, so a response that is lost loses no message.

mod sync_support;

use std::time::Duration;

use serde_json::{Value, json};
use sync_support::*;
use tests::{Deployment, Mode, client::Client, client::PASSWORD, client::enc};

async fn send_to_device(sender: &Client, event_type: &str, messages: Value) {
    let path = format!("/sendToDevice/{}/t{:016x}", enc(event_type), rand::random::<u64>());
    sender.put(&path, json!({ "messages": messages })).await.expect(200);
}

fn to_device(answer: &Value) -> Vec<Value> {
    answer["to_device"]["events"].as_array().unwrap_or_else(|| panic!("a to_device section: {answer}")).clone()
}

/// Syncs from `since` (which acknowledges nothing new) until `count` messages are waiting.
async fn waiting(client: &Client, since: &str, count: usize) -> Value {
    for _ in 0..100 {
        let answer = sync(client, &format!("since={since}&timeout=2000")).await;
        if to_device(&answer).len() >= count {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{count} to-device messages never arrived");
}

#[tokio::test]
async fn to_device_messages_reach_their_devices_in_order() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    let phone = deployment.client().login(&bob.user_id, PASSWORD).await;
    let t_bob = next_batch(&sync(&bob, "").await);
    let t_phone = next_batch(&sync(&phone, "").await);

    send_to_device(&alice, "m.test", json!({bob.user_id.as_str(): {bob.device_id.as_str(): {"n": 1}}})).await;
    send_to_device(&alice, "m.test", json!({bob.user_id.as_str(): {"*": {"n": 2}}})).await;
    send_to_device(&alice, "m.other", json!({bob.user_id.as_str(): {phone.device_id.as_str(): {"n": 3}}})).await;

    let answer = waiting(&bob, &t_bob, 2).await;
    assert_eq!(
        to_device(&answer),
        vec![
            json!({"sender": alice.user_id, "type": "m.test", "content": {"n": 1}}),
            json!({"sender": alice.user_id, "type": "m.test", "content": {"n": 2}}),
        ],
        "{answer}"
    );
    let answer = waiting(&phone, &t_phone, 2).await;
    assert_eq!(
        to_device(&answer),
        vec![
            json!({"sender": alice.user_id, "type": "m.test", "content": {"n": 2}}),
            json!({"sender": alice.user_id, "type": "m.other", "content": {"n": 3}}),
        ],
        "{answer}"
    );
    let after = sync(&phone, &format!("since={}", next_batch(&answer))).await;
    assert_eq!(to_device(&after), Vec::<Value>::new(), "{after}");
}

#[tokio::test]
async fn a_dropped_response_loses_no_to_device_message() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    let t0 = next_batch(&sync(&bob, "").await);
    for n in 1..=3 {
        send_to_device(&alice, "m.test", json!({bob.user_id.as_str(): {bob.device_id.as_str(): {"n": n}}})).await;
    }
    let expected: Vec<Value> =
        (1..=3).map(|n| json!({"sender": alice.user_id, "type": "m.test", "content": {"n": n}})).collect();

    // The response from one instance is lost on its way…
    let one = bob.at(&deployment.instance_url("syncapi-1"));
    let two = bob.at(&deployment.instance_url("syncapi-2"));
    let dropped = waiting(&one, &t0, 3).await;
    assert_eq!(to_device(&dropped), expected, "{dropped}");
    // …so the client asks again with the old token, of the other instance: the same messages.
    let again = sync(&two, &format!("since={t0}")).await;
    assert_eq!(to_device(&again), expected, "{again}");
    let again = sync(&one, &format!("since={t0}")).await;
    assert_eq!(to_device(&again), expected, "{again}");
    let t1 = next_batch(&again);

    // Coming back with the newer token acknowledges them: gone, also for the old token.
    let next = sync(&two, &format!("since={t1}")).await;
    assert_eq!(to_device(&next), Vec::<Value>::new(), "{next}");
    let old = sync(&one, &format!("since={t0}")).await;
    assert_eq!(to_device(&old), Vec::<Value>::new(), "{old}");

    // A new message after that comes once.
    send_to_device(&alice, "m.test", json!({bob.user_id.as_str(): {bob.device_id.as_str(): {"n": 4}}})).await;
    let answer = waiting(&bob, &next_batch(&next), 1).await;
    assert_eq!(
        to_device(&answer),
        vec![json!({"sender": alice.user_id, "type": "m.test", "content": {"n": 4}})],
        "{answer}"
    );
}
