//! Federation with Synapse, the reference homeserver, as the real peer (PyPI
//! `matrix-synapse`, installed by deploy/test.sh), both ways: a Synapse user
//! joins our room by its alias, one of ours joins a Synapse room by its
//! alias, invites go both ways and are accepted, and messages sent on either
//! side reach the other's `/sync`.

mod sync_support;

use serde_json::{Value, json};
use sync_support::{create_room, send_text, sync_until};
use tests::{
    Deployment, Mode, Options,
    client::{Client, PASSWORD, enc},
    synapse::Synapse,
    tls::TestCa,
};

async fn ours_and_synapse() -> (TestCa, Deployment, Synapse) {
    let ca = TestCa::new("federation test CA");
    let (ours, synapse) =
        tokio::join!(Deployment::start_with(Options::new(Mode::Monolith).federating(&ca)), Synapse::start(&ca));
    (ca, ours, synapse)
}

async fn synapse_user(synapse: &Synapse) -> Client {
    let localpart = format!("sam{:08x}", rand::random::<u32>());
    Client::new(&synapse.base_url).register(&localpart, PASSWORD).await
}

fn has_body(sync: &Value, room_id: &str, body: &str) -> bool {
    sync["rooms"]["join"].get(room_id).is_some_and(|room| sync_support::bodies(room).iter().any(|b| b == body))
}

fn invited(sync: &Value, room_id: &str) -> bool {
    sync["rooms"]["invite"].get(room_id).is_some()
}

#[tokio::test]
async fn a_synapse_user_joins_our_room_and_we_talk() {
    let (_ca, ours, synapse) = ours_and_synapse().await;
    let alice = ours.new_user().await;
    let sam = synapse_user(&synapse).await;
    let room_id = create_room(&alice, json!({"preset": "public_chat", "room_alias_name": "meeting"})).await;

    let alias = format!("#meeting:{}", ours.server_name);
    let joined = sam.post(&format!("/join/{}", enc(&alias)), json!({})).await;
    assert_eq!(joined.status, 200, "Synapse joins through us: {}\n{}", joined.body, synapse.log_tail());
    send_text(&alice, &room_id, "welcome, Synapse").await;
    sync_until(&sam, None, |sync| has_body(sync, &room_id, "welcome, Synapse")).await;
    send_text(&sam, &room_id, "thanks, Rust").await;
    sync_until(&alice, None, |sync| has_body(sync, &room_id, "thanks, Rust")).await;

    // An invite from us to a Synapse user, accepted on their side.
    let private = create_room(&alice, json!({"preset": "private_chat"})).await;
    alice.post(&format!("/rooms/{}/invite", enc(&private)), json!({"user_id": sam.user_id})).await.expect(200);
    sync_until(&sam, None, |sync| invited(sync, &private)).await;
    sam.post(&format!("/rooms/{}/join", enc(&private)), json!({})).await.expect(200);
    send_text(&sam, &private, "joined your private room").await;
    sync_until(&alice, None, |sync| has_body(sync, &private, "joined your private room")).await;
}

#[tokio::test]
async fn we_join_a_synapse_room_and_talk() {
    let (_ca, ours, synapse) = ours_and_synapse().await;
    let bob = ours.new_user().await;
    let sam = synapse_user(&synapse).await;
    let room_id = create_room(&sam, json!({"preset": "public_chat", "room_alias_name": "agora"})).await;

    let alias = format!("#agora:{}", synapse.server_name);
    let joined = bob.post(&format!("/join/{}", enc(&alias)), json!({})).await;
    assert_eq!(joined.status, 200, "we join through Synapse: {}\n{}", joined.body, synapse.log_tail());
    assert_eq!(joined.body["room_id"], room_id.as_str());
    send_text(&sam, &room_id, "hello from Synapse").await;
    sync_until(&bob, None, |sync| has_body(sync, &room_id, "hello from Synapse")).await;
    send_text(&bob, &room_id, "hello from us").await;
    sync_until(&sam, None, |sync| has_body(sync, &room_id, "hello from us")).await;

    // An invite from Synapse to one of ours, accepted here.
    let private = create_room(&sam, json!({"preset": "private_chat"})).await;
    sam.post(&format!("/rooms/{}/invite", enc(&private)), json!({"user_id": bob.user_id})).await.expect(200);
    sync_until(&bob, None, |sync| invited(sync, &private)).await;
    bob.post(&format!("/rooms/{}/join", enc(&private)), json!({})).await.expect(200);
    send_text(&bob, &private, "accepted your invite").await;
    sync_until(&sam, None, |sync| has_body(sync, &private, "accepted your invite")).await;
}
