//! A room's history from before our server joined it: paging back with
//! `/messages` past the join fetches the older events from the room's other
//! servers (`/backfill`), in order, down to the room's creation, as far as
//! the room's history visibility lets the reader see. With another of our
//! servers (the polylith) and with Synapse as the room's server.

mod sync_support;

use serde_json::{Value, json};
use sync_support::{create_room, send_text, sync_until};
use tests::{
    Deployment, Mode, Options,
    client::{Client, PASSWORD, enc},
    synapse::Synapse,
    tls::TestCa,
};

/// Every event `client` can page back through in the room, newest first,
/// ten at a time, until the server gives no `end`.
async fn page_back(client: &Client, room_id: &str) -> Vec<Value> {
    let mut events = Vec::new();
    let mut from: Option<String> = None;
    for _ in 0..50 {
        let query = match &from {
            Some(from) => format!("dir=b&limit=10&from={}", enc(from)),
            None => "dir=b&limit=10".to_owned(),
        };
        let page = client.get(&format!("/rooms/{}/messages?{query}", enc(room_id))).await.expect(200);
        events.extend(page["chunk"].as_array().cloned().unwrap_or_default());
        match page["end"].as_str() {
            Some(end) => from = Some(end.to_owned()),
            None => return events,
        }
    }
    panic!("paging back never ended: {} events so far", events.len());
}

fn bodies(events: &[Value]) -> Vec<String> {
    events.iter().filter_map(|e| e["content"]["body"].as_str().map(str::to_owned)).collect()
}

fn joined(sync: &Value, room_id: &str) -> bool {
    sync["rooms"]["join"].get(room_id).is_some()
}

#[tokio::test]
async fn paging_back_past_our_join_fetches_the_older_history_in_order() {
    let ca = TestCa::new("federation test CA");
    let (hs1, hs2) = tokio::join!(
        Deployment::start_with(Options::new(Mode::Polylith).federating(&ca)),
        Deployment::start_with(Options::new(Mode::Monolith).federating(&ca)),
    );
    let (alice, carol) = (hs1.new_user().await, hs1.new_user().await);
    let bob = hs2.new_user().await;
    let room_id = create_room(&alice, json!({"preset": "public_chat", "room_alias_name": "archive"})).await;
    let mut sent = Vec::new();
    for i in 0..25 {
        let body = format!("before the join {i}");
        send_text(&alice, &room_id, &body).await;
        sent.push(body);
        if i == 10 {
            // A member who has left by the time bob joins.
            carol.post(&format!("/rooms/{}/join", enc(&room_id)), json!({})).await.expect(200);
            send_text(&carol, &room_id, "carol was here").await;
            sent.push("carol was here".to_owned());
            carol.post(&format!("/rooms/{}/leave", enc(&room_id)), json!({})).await.expect(200);
        }
    }

    let alias = format!("#archive:{}", hs1.server_name);
    bob.post(&format!("/join/{}", enc(&alias)), json!({})).await.expect(200);
    let first = sync_until(&bob, None, |sync| joined(sync, &room_id)).await;
    send_text(&alice, &room_id, "after the join").await;
    let next = sync_support::next_batch(&first);
    let sync = sync_until(&bob, Some(&next), |sync| {
        sync["rooms"]["join"][&room_id]["timeline"]["events"]
            .as_array()
            .is_some_and(|events| events.iter().any(|e| e["content"]["body"] == "after the join"))
    })
    .await;
    // The history stays history: an incremental sync does not bring it.
    let timeline = bodies(sync["rooms"]["join"][&room_id]["timeline"]["events"].as_array().unwrap());
    assert_eq!(timeline, vec!["after the join".to_owned()], "{sync}");

    let events = page_back(&bob, &room_id).await;
    let mut expected: Vec<String> = sent.iter().rev().cloned().collect();
    expected.insert(0, "after the join".to_owned());
    assert_eq!(bodies(&events), expected, "every message, newest first, once each");
    assert_eq!(events.last().map(|e| e["type"].clone()), Some(json!("m.room.create")), "down to the room's creation");
    let carol_joins =
        events.iter().filter(|e| e["type"] == "m.room.member" && e["state_key"] == carol.user_id.as_str()).count();
    assert_eq!(carol_joins, 2, "carol's join and leave are in the history");

    let later = sync_support::sync(&bob, &format!("since={}&timeout=0", enc(&sync_support::next_batch(&sync)))).await;
    assert!(later["rooms"]["join"].get(&room_id).is_none(), "paging back brings nothing new to sync: {later}");

    // A second reader pages through what is now stored here.
    let dave = hs2.new_user().await;
    dave.post(&format!("/rooms/{}/join", enc(&room_id)), json!({})).await.expect(200);
    let again = page_back(&dave, &room_id).await;
    assert!(bodies(&again).ends_with(&sent.iter().rev().cloned().collect::<Vec<_>>()), "{:?}", bodies(&again));
}

/// The room's server judges each event by the visibility in force when it
/// was sent: history from while it was `joined` comes pruned to a server
/// that had nobody in the room then, even after the room opened it up.
#[tokio::test]
async fn history_hidden_from_our_server_when_it_was_sent_comes_pruned() {
    let ca = TestCa::new("federation test CA");
    let (hs1, hs2) = tokio::join!(
        Deployment::start_with(Options::new(Mode::Monolith).federating(&ca)),
        Deployment::start_with(Options::new(Mode::Monolith).federating(&ca)),
    );
    let alice = hs1.new_user().await;
    let bob = hs2.new_user().await;
    let room_id = create_room(
        &alice,
        json!({
            "preset": "public_chat",
            "room_alias_name": "private-past",
            "initial_state": [{"type": "m.room.history_visibility", "state_key": "", "content": {"history_visibility": "joined"}}],
        }),
    )
    .await;
    for i in 0..5 {
        send_text(&alice, &room_id, &format!("not for later members {i}")).await;
    }
    bob.post(&format!("/join/{}", enc(&format!("#private-past:{}", hs1.server_name))), json!({})).await.expect(200);
    sync_until(&bob, None, |sync| joined(sync, &room_id)).await;
    let path = format!("/rooms/{}/state/m.room.history_visibility/", enc(&room_id));
    alice.put(&path, json!({"history_visibility": "shared"})).await.expect(200);
    send_text(&alice, &room_id, "for members").await;
    sync_until(&bob, None, |sync| {
        sync["rooms"]["join"][&room_id]["timeline"]["events"]
            .as_array()
            .is_some_and(|events| events.iter().any(|e| e["content"]["body"] == "for members"))
    })
    .await;

    let events = page_back(&bob, &room_id).await;
    assert_eq!(bodies(&events), vec!["for members".to_owned()], "no hidden message arrives whole");
    let pruned = events.iter().filter(|e| e["type"] == "m.room.message" && e["content"] == json!({})).count();
    assert_eq!(pruned, 5, "the hidden messages are there, pruned: {events:?}");
}

#[tokio::test]
async fn history_of_a_synapse_room_before_we_joined() {
    let ca = TestCa::new("federation test CA");
    let (ours, synapse) =
        tokio::join!(Deployment::start_with(Options::new(Mode::Monolith).federating(&ca)), Synapse::start(&ca));
    let sam = Client::new(&synapse.base_url).register(&format!("sam{:08x}", rand::random::<u32>()), PASSWORD).await;
    let bob = ours.new_user().await;
    let room_id = create_room(&sam, json!({"preset": "public_chat", "room_alias_name": "old-times"})).await;
    let sent: Vec<String> = (0..15).map(|i| format!("synapse history {i}")).collect();
    for body in &sent {
        send_text(&sam, &room_id, body).await;
    }
    let joined_answer =
        bob.post(&format!("/join/{}", enc(&format!("#old-times:{}", synapse.server_name))), json!({})).await;
    assert_eq!(joined_answer.status, 200, "{}\n{}", joined_answer.body, synapse.log_tail());
    sync_until(&bob, None, |sync| joined(sync, &room_id)).await;

    let events = page_back(&bob, &room_id).await;
    assert_eq!(bodies(&events), sent.iter().rev().cloned().collect::<Vec<_>>(), "{}", synapse.log_tail());
    let oldest: Vec<&Value> = events.iter().rev().take(3).collect();
    assert_eq!(events.last().map(|e| e["type"].clone()), Some(json!("m.room.create")), "{oldest:?}");
}
