//! A client reads its own writes: once a write is answered, the writer's
//! next read — at once, on either instance of each reader — reflects it.
//! Every scenario is repeated, alternating the instances, so that a race
//! between the answer and the readers' consumers would show.

use serde_json::{Value, json};
use tests::{
    Deployment, Mode,
    client::{Client, enc},
};

const ROUNDS: usize = 8;

/// Writers and readers, each with two instances to alternate between.
struct Instances {
    clientapi: [String; 2],
    syncapi: [String; 2],
}

impl Instances {
    fn of(deployment: &Deployment) -> Self {
        Self {
            clientapi: [deployment.instance_url("clientapi-1"), deployment.instance_url("clientapi-2")],
            syncapi: [deployment.instance_url("syncapi-1"), deployment.instance_url("syncapi-2")],
        }
    }

    /// The writer of round `n`, and the reader: the other clientapi's
    /// neighbour syncapi, so a write and its read never share an instance.
    fn writer(&self, client: &Client, n: usize) -> Client {
        client.at(&self.clientapi[n % 2])
    }

    fn reader(&self, client: &Client, n: usize) -> Client {
        client.at(&self.syncapi[(n + 1) % 2])
    }
}

async fn token(reader: &Client) -> String {
    reader.get("/sync?timeout=0").await.expect(200)["next_batch"].as_str().unwrap().to_owned()
}

async fn sync_since(reader: &Client, since: &str) -> Value {
    reader.get(&format!("/sync?since={since}&timeout=0")).await.expect(200)
}

fn timeline_ids(answer: &Value, section: &str, room: &str) -> Vec<String> {
    answer["rooms"][section][room]["timeline"]["events"]
        .as_array()
        .map(|events| events.iter().filter_map(|e| e["event_id"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

/// A private room of `creator`'s: its id, and the id encoded for a path.
async fn private_room(creator: &Client) -> (String, String) {
    let room = creator.post("/createRoom", json!({"preset": "private_chat"})).await.expect(200);
    let room = room["room_id"].as_str().unwrap().to_owned();
    let encoded = enc(&room);
    (room, encoded)
}

fn event_id(answer: &Value) -> String {
    answer["event_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn sends_state_and_redactions_are_read_at_once_on_every_instance() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let at = Instances::of(&deployment);
    let alice = deployment.new_user().await;
    let (room, encoded) = private_room(&alice).await;

    for n in 0..ROUNDS {
        let (writer, reader) = (at.writer(&alice, n), at.reader(&alice, n));
        let since = token(&reader).await;

        let sent = writer
            .put(&format!("/rooms/{encoded}/send/m.room.message/ryw-{n}"), json!({"msgtype": "m.text", "body": "hi"}))
            .await
            .expect(200);
        let sent = event_id(&sent);
        let answer = sync_since(&reader, &since).await;
        assert_eq!(timeline_ids(&answer, "join", &room), vec![sent.clone()], "round {n}: the send, in {answer}");
        let other = at.reader(&alice, n + 1);
        let history = other.get(&format!("/rooms/{encoded}/messages?dir=b&limit=1")).await.expect(200);
        assert_eq!(history["chunk"][0]["event_id"], sent.as_str(), "round {n}: /messages on the other syncapi");
        let event = at.writer(&alice, n + 1).get(&format!("/rooms/{encoded}/event/{}", enc(&sent))).await;
        assert_eq!(event.expect(200)["event_id"], sent.as_str(), "round {n}: /event on the other clientapi");

        let topic = format!("topic {n}");
        let state = writer.put(&format!("/rooms/{encoded}/state/m.room.topic/"), json!({"topic": topic})).await;
        let state = event_id(&state.expect(200));
        let answer = sync_since(&reader, &since).await;
        assert_eq!(timeline_ids(&answer, "join", &room), vec![sent.clone(), state], "round {n}: the state event");
        let current = at.writer(&alice, n + 1).get(&format!("/rooms/{encoded}/state/m.room.topic/")).await;
        let current = current.expect(200);
        assert_eq!(current["topic"], topic.as_str(), "round {n}: /state");

        let redaction = writer
            .put(&format!("/rooms/{encoded}/redact/{}/ryw-redact-{n}", enc(&sent)), json!({"reason": "oops"}))
            .await
            .expect(200);
        let redaction = event_id(&redaction);
        let answer = sync_since(&reader, &since).await;
        let events = answer["rooms"]["join"][&room]["timeline"]["events"].as_array().unwrap();
        let message = events.iter().find(|e| e["event_id"] == sent.as_str()).unwrap();
        assert_eq!(message["content"], json!({}), "round {n}: the message is redacted in {answer}");
        assert!(events.iter().any(|e| e["event_id"] == redaction.as_str()), "round {n}: the redaction, in {answer}");
    }
}

#[tokio::test]
async fn memberships_are_read_at_once_on_every_instance() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let at = Instances::of(&deployment);
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    let (room, encoded) = private_room(&alice).await;
    let membership_of_bob = |members: &Value| -> Option<String> {
        members["chunk"].as_array()?.iter().find(|m| m["state_key"] == bob.user_id.as_str())?["content"]["membership"]
            .as_str()
            .map(str::to_owned)
    };

    for n in 0..ROUNDS {
        let since = token(&at.reader(&bob, n)).await;
        at.writer(&alice, n)
            .post(&format!("/rooms/{encoded}/invite"), json!({"user_id": bob.user_id}))
            .await
            .expect(200);
        let answer = sync_since(&at.reader(&bob, n), &since).await;
        assert!(answer["rooms"]["invite"].get(&room).is_some(), "round {n}: the invite, in {answer}");

        let since = token(&at.reader(&bob, n + 1)).await;
        at.writer(&bob, n + 1).post(&format!("/rooms/{encoded}/join"), json!({})).await.expect(200);
        let answer = sync_since(&at.reader(&bob, n + 1), &since).await;
        assert!(answer["rooms"]["join"].get(&room).is_some(), "round {n}: the join, in {answer}");
        let members = at.reader(&alice, n).get(&format!("/rooms/{encoded}/members")).await.expect(200);
        assert_eq!(membership_of_bob(&members).as_deref(), Some("join"), "round {n}: /members after the join");

        let since = token(&at.reader(&bob, n)).await;
        if n % 2 == 0 {
            let kick = json!({"user_id": bob.user_id, "reason": "round"});
            at.writer(&alice, n).post(&format!("/rooms/{encoded}/kick"), kick).await.expect(200);
        } else {
            at.writer(&bob, n).post(&format!("/rooms/{encoded}/leave"), json!({})).await.expect(200);
        }
        let answer = sync_since(&at.reader(&bob, n), &since).await;
        assert!(answer["rooms"]["leave"].get(&room).is_some(), "round {n}: the kick or leave, in {answer}");
        let members = at.reader(&alice, n + 1).get(&format!("/rooms/{encoded}/members")).await.expect(200);
        assert_eq!(membership_of_bob(&members).as_deref(), Some("leave"), "round {n}: /members after leaving");
    }
}

#[tokio::test]
async fn account_data_and_receipts_are_read_at_once_on_every_instance() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let at = Instances::of(&deployment);
    let alice = deployment.new_user().await;
    let (room, encoded) = private_room(&alice).await;
    let user = enc(&alice.user_id);

    for n in 0..ROUNDS {
        let (writer, reader) = (at.writer(&alice, n), at.reader(&alice, n));
        let since = token(&reader).await;
        writer.put(&format!("/user/{user}/account_data/org.example.ryw"), json!({"round": n})).await.expect(200);
        let answer = sync_since(&reader, &since).await;
        let global = answer["account_data"]["events"].as_array().cloned().unwrap_or_default();
        assert!(
            global.iter().any(|e| e["type"] == "org.example.ryw" && e["content"]["round"] == n),
            "round {n}: the account data, in {answer}"
        );

        let sent = writer
            .put(&format!("/rooms/{encoded}/send/m.room.message/ryw-{n}"), json!({"msgtype": "m.text", "body": "hi"}))
            .await
            .expect(200);
        let sent = event_id(&sent);
        let since = token(&reader).await;
        writer.post(&format!("/rooms/{encoded}/receipt/m.read/{}", enc(&sent)), json!({})).await.expect(200);
        let answer = sync_since(&reader, &since).await;
        let ephemeral = answer["rooms"]["join"][&room]["ephemeral"]["events"].as_array().cloned().unwrap_or_default();
        assert!(
            ephemeral.iter().any(|e| e["type"] == "m.receipt" && e["content"].get(&sent).is_some()),
            "round {n}: the receipt, in {answer}"
        );
    }
}
