//! Rooms shared between two of our servers, each with its own server name
//! and TLS certificate from a throwaway CA: joining a room of the other
//! server by its alias, messages both ways seen in each side's `/sync`,
//! invites of the other server's users (accepted and rejected), leaving,
//! knocking, and the other server's profiles, aliases and public rooms
//! looked up through ours. One server is the polylith, the other the
//! monolith, so both deployments federate.

mod sync_support;

use serde_json::{Value, json};
use sync_support::{create_room, send_text, sync_until};
use tests::{
    Deployment, Mode, Options,
    client::{Client, enc},
    tls::TestCa,
};

async fn two_servers(first: Mode) -> (TestCa, Deployment, Deployment) {
    let ca = TestCa::new("federation test CA");
    let (hs1, hs2) = tokio::join!(
        Deployment::start_with(Options::new(first).federating(&ca)),
        Deployment::start_with(Options::new(Mode::Monolith).federating(&ca)),
    );
    (ca, hs1, hs2)
}

fn joined_room<'a>(sync: &'a Value, room_id: &str) -> Option<&'a Value> {
    sync["rooms"]["join"].get(room_id)
}

fn has_body(sync: &Value, room_id: &str, body: &str) -> bool {
    joined_room(sync, room_id).is_some_and(|room| sync_support::bodies(room).iter().any(|b| b == body))
}

fn has_member(sync: &Value, room_id: &str, user_id: &str, membership: &str) -> bool {
    joined_room(sync, room_id).is_some_and(|room| {
        room["timeline"]["events"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(room["state"]["events"].as_array().into_iter().flatten())
            .any(|event| {
                event["type"] == "m.room.member"
                    && event["state_key"] == user_id
                    && event["content"]["membership"] == membership
            })
    })
}

async fn set_name(client: &Client, name: &str) {
    let path = format!("/profile/{}/displayname", enc(&client.user_id));
    client.put(&path, json!({"displayname": name})).await.expect(200);
}

#[tokio::test]
async fn join_by_alias_and_talk_both_ways() {
    let (_ca, hs1, hs2) = two_servers(Mode::Polylith).await;
    let alice = hs1.new_user().await;
    let bob = hs2.new_user().await;
    let room_id = create_room(&alice, json!({"preset": "public_chat", "room_alias_name": "lobby"})).await;
    let alias = format!("#lobby:{}", hs1.server_name);

    let joined = bob.post(&format!("/join/{}", enc(&alias)), json!({})).await.expect(200);
    assert_eq!(joined["room_id"], room_id.as_str(), "{joined}");
    let sync = sync_until(&bob, None, |sync| joined_room(sync, &room_id).is_some()).await;
    assert!(has_member(&sync, &room_id, &alice.user_id, "join"), "bob sees alice in the room: {sync}");

    send_text(&alice, &room_id, "hello from the first server").await;
    sync_until(&bob, None, |sync| has_body(sync, &room_id, "hello from the first server")).await;
    send_text(&bob, &room_id, "hello from the second server").await;
    sync_until(&alice, None, |sync| has_body(sync, &room_id, "hello from the second server")).await;
    let initial = sync_support::sync(&alice, "").await;
    assert!(has_member(&initial, &room_id, &bob.user_id, "join"), "alice sees bob's join: {initial}");

    // Both servers hold the same state: bob's server lists alice's room members.
    let members = bob.get(&format!("/rooms/{}/joined_members", enc(&room_id))).await.expect(200);
    assert!(
        members["joined"].get(&alice.user_id).is_some() && members["joined"].get(&bob.user_id).is_some(),
        "{members}"
    );

    bob.post(&format!("/rooms/{}/leave", enc(&room_id)), json!({})).await.expect(200);
    sync_until(&alice, None, |sync| has_member(sync, &room_id, &bob.user_id, "leave")).await;
}

#[tokio::test]
async fn invites_across_servers_accepted_and_rejected() {
    let (_ca, hs1, hs2) = two_servers(Mode::Monolith).await;
    let alice = hs1.new_user().await;
    let (bob, carol) = (hs2.new_user().await, hs2.new_user().await);
    let room_id = create_room(&alice, json!({"preset": "private_chat", "name": "secret plans"})).await;

    for invitee in [&bob, &carol] {
        alice.post(&format!("/rooms/{}/invite", enc(&room_id)), json!({"user_id": invitee.user_id})).await.expect(200);
        let sync = sync_until(invitee, None, |sync| sync["rooms"]["invite"].get(&room_id).is_some()).await;
        let invite_state = &sync["rooms"]["invite"][&room_id]["invite_state"]["events"];
        assert!(
            invite_state
                .as_array()
                .into_iter()
                .flatten()
                .any(|e| e["type"] == "m.room.name" && e["content"]["name"] == "secret plans"),
            "the invitee sees the room's name: {sync}"
        );
    }

    bob.post(&format!("/rooms/{}/join", enc(&room_id)), json!({})).await.expect(200);
    sync_until(&alice, None, |sync| has_member(sync, &room_id, &bob.user_id, "join")).await;
    send_text(&bob, &room_id, "thanks for the invite").await;
    sync_until(&alice, None, |sync| has_body(sync, &room_id, "thanks for the invite")).await;

    // Carol's server is in the room (bob joined), but carol is only invited:
    // her rejection is an ordinary leave.
    carol.post(&format!("/rooms/{}/leave", enc(&room_id)), json!({})).await.expect(200);
    sync_until(&alice, None, |sync| has_member(sync, &room_id, &carol.user_id, "leave")).await;
    let sync = sync_until(&carol, None, |sync| {
        sync["rooms"]["leave"].get(&room_id).is_some() || sync["rooms"]["invite"].get(&room_id).is_none()
    })
    .await;
    assert!(sync["rooms"]["invite"].get(&room_id).is_none(), "carol's invite is gone: {sync}");
}

#[tokio::test]
async fn rejecting_an_invite_to_a_room_no_local_user_is_in() {
    let (_ca, hs1, hs2) = two_servers(Mode::Monolith).await;
    let alice = hs1.new_user().await;
    let bob = hs2.new_user().await;
    let room_id = create_room(&alice, json!({"preset": "private_chat"})).await;
    alice.post(&format!("/rooms/{}/invite", enc(&room_id)), json!({"user_id": bob.user_id})).await.expect(200);
    let invited = sync_until(&bob, None, |sync| sync["rooms"]["invite"].get(&room_id).is_some()).await;
    // Rejected through alice's server (make_leave, send_leave).
    bob.post(&format!("/rooms/{}/leave", enc(&room_id)), json!({})).await.expect(200);
    sync_until(&alice, None, |sync| has_member(sync, &room_id, &bob.user_id, "leave")).await;
    sync_until(&bob, None, |sync| sync["rooms"]["invite"].get(&room_id).is_none()).await;
    // The rejection reaches bob's devices as a leave, as in any room.
    let since = sync_support::next_batch(&invited);
    let left = sync_until(&bob, Some(&since), |sync| sync["rooms"]["leave"].get(&room_id).is_some()).await;
    let timeline = &left["rooms"]["leave"][&room_id]["timeline"]["events"];
    assert!(
        timeline.as_array().into_iter().flatten().any(|e| e["type"] == "m.room.member"
            && e["state_key"] == bob.user_id.as_str()
            && e["content"]["membership"] == "leave"),
        "{left}"
    );
}

#[tokio::test]
async fn an_invite_from_a_server_that_is_gone_is_still_declined() {
    let (_ca, mut hs1, hs2) = two_servers(Mode::Monolith).await;
    let alice = hs1.new_user().await;
    let bob = hs2.new_user().await;
    let room_id = create_room(&alice, json!({"preset": "private_chat"})).await;
    alice.post(&format!("/rooms/{}/invite", enc(&room_id)), json!({"user_id": bob.user_id})).await.expect(200);
    let invited = sync_until(&bob, None, |sync| sync["rooms"]["invite"].get(&room_id).is_some()).await;
    hs1.terminate_monolith().await;

    // Declined here alone: nobody can be told.
    bob.post(&format!("/rooms/{}/leave", enc(&room_id)), json!({})).await.expect(200);
    sync_until(&bob, None, |sync| sync["rooms"]["invite"].get(&room_id).is_none()).await;
    let since = sync_support::next_batch(&invited);
    sync_until(&bob, Some(&since), |sync| sync["rooms"]["leave"].get(&room_id).is_some()).await;
    let membership = bob.get(&format!("/rooms/{}/members", enc(&room_id))).await;
    assert_ne!(membership.status, 200, "bob was never in the room: {}", membership.body);
}

#[tokio::test]
async fn knocking_on_a_room_of_another_server() {
    let (_ca, hs1, hs2) = two_servers(Mode::Monolith).await;
    let alice = hs1.new_user().await;
    let bob = hs2.new_user().await;
    let room_id = create_room(&alice, json!({"preset": "private_chat", "room_version": "10"})).await;
    let path = format!("/rooms/{}/state/m.room.join_rules/", enc(&room_id));
    alice.put(&path, json!({"join_rule": "knock"})).await.expect(200);

    let via = enc(&hs1.server_name);
    bob.post(&format!("/knock/{}?via={via}", enc(&room_id)), json!({"reason": "let me in"})).await.expect(200);
    sync_until(&alice, None, |sync| has_member(sync, &room_id, &bob.user_id, "knock")).await;
    alice.post(&format!("/rooms/{}/invite", enc(&room_id)), json!({"user_id": bob.user_id})).await.expect(200);
    sync_until(&bob, None, |sync| sync["rooms"]["invite"].get(&room_id).is_some()).await;
    bob.post(&format!("/rooms/{}/join", enc(&room_id)), json!({})).await.expect(200);
    sync_until(&alice, None, |sync| has_member(sync, &room_id, &bob.user_id, "join")).await;
}

#[tokio::test]
async fn profiles_aliases_and_public_rooms_of_the_other_server() {
    let (_ca, hs1, hs2) = two_servers(Mode::Polylith).await;
    let alice = hs1.new_user().await;
    let bob = hs2.new_user().await;
    set_name(&alice, "Alice of the first server").await;
    let room_id =
        create_room(&alice, json!({"preset": "public_chat", "room_alias_name": "town-square", "visibility": "public", "name": "Town square"}))
            .await;

    let profile = bob.get(&format!("/profile/{}", enc(&alice.user_id))).await.expect(200);
    assert_eq!(profile["displayname"], "Alice of the first server", "{profile}");
    let name = bob.get(&format!("/profile/{}/displayname", enc(&alice.user_id))).await.expect(200);
    assert_eq!(name["displayname"], "Alice of the first server", "{name}");
    let nobody = format!("@nobody:{}", hs1.server_name);
    bob.get(&format!("/profile/{}", enc(&nobody))).await.expect_error(404, "M_NOT_FOUND");

    let alias = format!("#town-square:{}", hs1.server_name);
    let found = bob.get(&format!("/directory/room/{}", enc(&alias))).await.expect(200);
    assert_eq!(found["room_id"], room_id.as_str(), "{found}");
    assert!(found["servers"].as_array().is_some_and(|s| s.iter().any(|s| s == hs1.server_name.as_str())), "{found}");
    let missing = format!("#no-such-room:{}", hs1.server_name);
    bob.get(&format!("/directory/room/{}", enc(&missing))).await.expect_error(404, "M_NOT_FOUND");

    let rooms = bob.get(&format!("/publicRooms?server={}", enc(&hs1.server_name))).await.expect(200);
    assert!(
        rooms["chunk"]
            .as_array()
            .is_some_and(|c| c.iter().any(|r| r["room_id"] == room_id.as_str() && r["name"] == "Town square")),
        "{rooms}"
    );
    let filtered = bob
        .post(
            &format!("/publicRooms?server={}", enc(&hs1.server_name)),
            json!({"filter": {"generic_search_term": "square"}}),
        )
        .await
        .expect(200);
    assert_eq!(filtered["chunk"].as_array().map(Vec::len), Some(1), "{filtered}");
}

#[tokio::test]
async fn a_restricted_room_admits_members_of_the_allowed_room_from_another_server() {
    let (_ca, hs1, hs2) = two_servers(Mode::Monolith).await;
    let alice = hs1.new_user().await;
    let (bob, carol) = (hs2.new_user().await, hs2.new_user().await);
    let lobby = create_room(&alice, json!({"preset": "public_chat", "room_alias_name": "members-lobby"})).await;
    let restricted = create_room(
        &alice,
        json!({
            "room_version": "10",
            "preset": "private_chat",
            "initial_state": [{
                "type": "m.room.join_rules",
                "state_key": "",
                "content": {"join_rule": "restricted", "allow": [{"type": "m.room_membership", "room_id": lobby}]},
            }],
        }),
    )
    .await;
    let via = format!("server_name={}", enc(&hs1.server_name));

    // Carol is in no allowed room: the resident server refuses her.
    let refused = carol.post(&format!("/join/{}?{via}", enc(&restricted)), json!({})).await;
    assert_eq!((refused.status, refused.errcode()), (403, "M_FORBIDDEN"), "{}", refused.body);

    bob.post(&format!("/join/{}", enc(&format!("#members-lobby:{}", hs1.server_name))), json!({})).await.expect(200);
    sync_until(&alice, None, |sync| has_member(sync, &lobby, &bob.user_id, "join")).await;
    bob.post(&format!("/join/{}?{via}", enc(&restricted)), json!({})).await.expect(200);
    let sync = sync_until(&alice, None, |sync| has_member(sync, &restricted, &bob.user_id, "join")).await;
    let join = sync["rooms"]["join"][&restricted]["timeline"]["events"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["type"] == "m.room.member" && e["state_key"] == bob.user_id.as_str())
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        join["content"]["join_authorised_via_users_server"],
        alice.user_id.as_str(),
        "the join names who let bob in: {join}"
    );
    send_text(&bob, &restricted, "let in by the lobby").await;
    sync_until(&alice, None, |sync| has_body(sync, &restricted, "let in by the lobby")).await;
}
