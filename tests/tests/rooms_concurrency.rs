//! Many writers, one room: concurrent senders on both clientapi instances
//! give one history in which every event appears once, and a roomserver
//! killed while sends are in flight loses none of the sends it accepted.

use std::{collections::HashMap, time::Duration};

use serde_json::{Value, json};
use tests::{Deployment, Mode, client::Client};

/// Every `new_room_event` of `room_id` on the output stream, in stream order.
async fn room_outputs(deployment: &Deployment, room_id: &str) -> Vec<Value> {
    use async_nats::jetstream::consumer::{DeliverPolicy, pull::OrderedConfig};
    use futures::StreamExt;
    let bus = deployment.bus().await;
    let stream_name = format!("{}_OutputRoomEvent", deployment.config.global.nats.stream_prefix);
    let mut stream = bus.jetstream().get_stream(&stream_name).await.expect("the output stream");
    let last = stream.info().await.expect("stream info").state.last_sequence;
    let consumer = stream
        .create_consumer(OrderedConfig { deliver_policy: DeliverPolicy::All, ..Default::default() })
        .await
        .expect("a consumer");
    let mut messages = consumer.messages().await.expect("messages");
    let mut found = Vec::new();
    while let Ok(Some(Ok(message))) = tokio::time::timeout(Duration::from_secs(5), messages.next()).await {
        let value: Value = serde_json::from_slice(&message.payload).expect("JSON");
        if value["new_room_event"]["room_id"] == room_id {
            found.push(value["new_room_event"].clone());
        }
        if message.info().expect("info").stream_sequence >= last {
            break;
        }
    }
    found
}

/// The room's outputs once they include every id in `expected`.
async fn outputs_including(deployment: &Deployment, room_id: &str, expected: &[String]) -> Vec<Value> {
    for _ in 0..60 {
        let outputs = room_outputs(deployment, room_id).await;
        let ids: Vec<&str> = outputs.iter().filter_map(|o| o["event_id"].as_str()).collect();
        if expected.iter().all(|e| ids.contains(&e.as_str())) {
            return outputs;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("not every accepted event came out of the roomserver");
}

fn assert_one_history(outputs: &[Value]) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for output in outputs {
        *seen.entry(output["event_id"].as_str().unwrap()).or_default() += 1;
    }
    let repeated: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(repeated.is_empty(), "events that came out more than once: {repeated:?}");
    let orderings: Vec<i64> = outputs.iter().map(|o| o["stream_ordering"].as_i64().unwrap()).collect();
    assert_eq!(orderings, (1..=outputs.len() as i64).collect::<Vec<_>>(), "one order, without gaps");
}

async fn public_room_with_members(deployment: &Deployment, members: usize) -> (String, Vec<Client>) {
    let creator = deployment.new_user().await;
    let room = creator.post("/createRoom", json!({"preset": "public_chat"})).await.expect(200);
    let room_id = room["room_id"].as_str().unwrap().to_owned();
    let mut clients = vec![creator];
    for _ in 1..members {
        let user = deployment.new_user().await;
        user.post(&format!("/rooms/{room_id}/join"), json!({})).await.expect(200);
        clients.push(user);
    }
    (room_id, clients)
}

#[tokio::test]
async fn twenty_concurrent_senders_give_one_history_with_every_event_once() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let (room_id, clients) = public_room_with_members(&deployment, 20).await;
    // Half the senders on each clientapi instance.
    let instances = [deployment.instance_url("clientapi-1"), deployment.instance_url("clientapi-2")];
    let mut sends = Vec::new();
    for (i, client) in clients.iter().enumerate() {
        let client = client.at(&instances[i % 2]);
        let room_id = room_id.clone();
        sends.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for n in 0..5 {
                let path = format!("/rooms/{room_id}/send/m.room.message/txn-{n}");
                let body = json!({"msgtype": "m.text", "body": format!("{i}.{n}")});
                // As a client would: a 504 (no verdict yet) is retried with the
                // same transaction id, which must give the same event, once.
                let mut answer = client.put(&path, body.clone()).await;
                for _ in 0..5 {
                    if answer.status != 504 {
                        break;
                    }
                    answer = client.put(&path, body.clone()).await;
                }
                ids.push(answer.expect(200)["event_id"].as_str().unwrap().to_owned());
            }
            ids
        }));
    }
    let mut sent = Vec::new();
    for send in sends {
        sent.extend(send.await.expect("the sender finishes"));
    }
    assert_eq!(sent.len(), 100);
    let outputs = outputs_including(&deployment, &room_id, &sent).await;
    assert_one_history(&outputs);
    // The room ends on one history: the next event joins every branch.
    let last = clients[0].put(&format!("/rooms/{room_id}/send/m.room.message/final"), json!({"body": "end"})).await;
    let last_id = last.expect(200)["event_id"].as_str().unwrap().to_owned();
    let outputs = outputs_including(&deployment, &room_id, std::slice::from_ref(&last_id)).await;
    assert_eq!(outputs.last().unwrap()["latest_event_ids"], json!([last_id]));
}

#[tokio::test]
async fn a_killed_roomserver_loses_no_accepted_send() {
    let mut deployment = Deployment::start(Mode::Polylith).await;
    let (room_id, clients) = public_room_with_members(&deployment, 4).await;
    let mut sends = Vec::new();
    for i in 0..100 {
        let client = clients[i % clients.len()].at(&deployment.base_url);
        let path = format!("/rooms/{room_id}/send/m.room.message/burst-{i}");
        sends.push(tokio::spawn(async move { client.put(&path, json!({"body": format!("{i}")})).await }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    deployment.kill_instance("roomserver-1", libc::SIGKILL).await;
    deployment.start_instance("roomserver").await;
    let mut accepted = Vec::new();
    for send in sends {
        let answer = send.await.expect("the send finishes");
        // A send may time out while no roomserver runs; every 200 must hold.
        if answer.status == 200 {
            accepted.push(answer.body["event_id"].as_str().unwrap().to_owned());
        } else {
            assert!(answer.status > 500, "a failure is a 5xx that is not a crash: {}: {}", answer.status, answer.body);
        }
    }
    assert!(!accepted.is_empty());
    let outputs = outputs_including(&deployment, &room_id, &accepted).await;
    assert_one_history(&outputs);
}
