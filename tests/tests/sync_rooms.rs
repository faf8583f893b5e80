//! The rooms of a sync: a newly joined room with its full state (and a
//! duplicate join sending nothing again), rooms left, kicked and banned from,
//! knocks, invites with their stripped state, the summary and the unread
//! notification counts.

mod sync_support;

use serde_json::{Value, json};
use sync_support::*;
use tests::{Deployment, Mode, client::PASSWORD, client::enc};

#[tokio::test]
async fn a_newly_joined_room_has_its_full_state_and_a_duplicate_join_sends_none_again() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    let room = create_room(&alice, json!({"preset": "public_chat", "name": "Full", "topic": "All of it"})).await;
    set_state(&alice, &room, "test.s", "k", json!({"v": 1})).await;
    for i in 0..15 {
        send_text(&alice, &room, &format!("m{i}")).await;
    }
    let t0 = next_batch(&sync(&bob, "").await);
    join(&bob, &room).await;
    sync_until(&bob, Some(&t0), |r| r["rooms"]["join"].get(&room).is_some()).await;

    let answer = sync(&bob, &format!("since={t0}")).await;
    let entry = &answer["rooms"]["join"][&room];
    let timeline = &entry["timeline"]["events"];
    assert_eq!(timeline.as_array().unwrap().len(), 10, "the default limit: {answer}");
    assert_eq!(entry["timeline"]["limited"], true, "{answer}");
    let last = timeline.as_array().unwrap().last().unwrap();
    assert_eq!((&last["type"], &last["state_key"]), (&json!("m.room.member"), &json!(bob.user_id)), "{answer}");
    let in_timeline = timeline_ids(entry);
    let in_state = state_ids(entry);
    assert!(in_state.iter().all(|id| !in_timeline.contains(id)), "state is before the timeline: {answer}");
    // Every current state event is in the state or the timeline.
    let current = alice.get(&format!("/rooms/{}/state", enc(&room))).await.expect(200);
    for event in current.as_array().unwrap() {
        let id = event["event_id"].as_str().unwrap().to_owned();
        assert!(in_state.contains(&id) || in_timeline.contains(&id), "{event} missing from {answer}");
    }
    let name = of_type(&entry["state"]["events"], "m.room.name", Some(""));
    assert_eq!(name.len(), 1, "{answer}");
    assert_eq!(name[0]["content"], json!({"name": "Full"}), "{answer}");
    assert!(answer["rooms"]["invite"].get(&room).is_none() && answer["rooms"]["leave"].get(&room).is_none());
    let t1 = next_batch(&answer);

    // Joining again changes nothing: no state is sent again.
    join(&bob, &room).await;
    let marker = send_text(&alice, &room, "after the second join").await;
    token_after(&bob, Some(&t1), &marker).await;
    let answer = sync(&bob, &format!("since={t1}")).await;
    let entry = &answer["rooms"]["join"][&room];
    assert_eq!(state_ids(entry), Vec::<String>::new(), "{answer}");
    assert_eq!(entry["timeline"]["limited"], false, "{answer}");
    let timeline = &entry["timeline"]["events"];
    assert!(of_type(timeline, "m.room.create", None).is_empty(), "{answer}");
    assert!(of_type(timeline, "m.room.name", None).is_empty(), "{answer}");
    assert_eq!(timeline_ids(entry).last(), Some(&marker), "{answer}");
}

#[tokio::test]
async fn rooms_left_kicked_and_banned_from_are_in_leave_up_to_the_leave() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    let carol = deployment.new_user().await;
    let dave = deployment.new_user().await;
    let room = create_room(&alice, json!({"preset": "public_chat"})).await;
    let mut tokens = Vec::new();
    for user in [&bob, &carol, &dave] {
        join(user, &room).await;
    }
    for user in [&bob, &carol, &dave] {
        tokens.push(settled_token(user, None, &room).await);
    }
    let before = send_text(&alice, &room, "before").await;
    leave(&bob, &room).await;
    let path = |action: &str| format!("/rooms/{}/{action}", enc(&room));
    alice.post(&path("kick"), json!({"user_id": carol.user_id, "reason": "out"})).await.expect(200);
    alice.post(&path("ban"), json!({"user_id": dave.user_id, "reason": "bye"})).await.expect(200);
    let after = send_text(&alice, &room, "after").await;
    token_after(&alice, None, &after).await;

    let cases =
        [(&bob, "leave", &bob, None), (&carol, "leave", &alice, Some("out")), (&dave, "ban", &alice, Some("bye"))];
    for ((user, membership, sender, reason), since) in cases.into_iter().zip(&tokens) {
        let answer = sync(user, &format!("since={since}")).await;
        assert!(answer["rooms"]["join"].get(&room).is_none(), "{answer}");
        let entry = &answer["rooms"]["leave"][&room];
        let ids = timeline_ids(entry);
        assert!(ids.contains(&before), "what happened before the leave: {answer}");
        assert!(!ids.contains(&after), "nothing after the leave: {answer}");
        let last = entry["timeline"]["events"].as_array().unwrap().last().unwrap();
        assert_eq!(last["type"], "m.room.member", "{answer}");
        assert_eq!(last["state_key"], user.user_id.as_str(), "{answer}");
        assert_eq!(last["content"]["membership"], membership, "{answer}");
        assert_eq!(last["sender"], sender.user_id.as_str(), "{answer}");
        assert_eq!(last["content"]["reason"].as_str(), reason, "{answer}");
        assert!(entry["state"]["events"].is_array(), "{answer}");
        assert!(!state_ids(entry).contains(&after), "{answer}");

        // Once told, not again, and nothing of the room afterwards.
        let later = sync(user, &format!("since={}", next_batch(&answer))).await;
        for section in ["join", "leave", "invite"] {
            assert!(later["rooms"][section].get(&room).is_none(), "{later}");
        }
    }
}

#[tokio::test]
async fn a_knock_is_in_the_knock_section_with_knock_state() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let alice = deployment.new_user().await;
    let eve = deployment.new_user().await;
    let room = create_room(
        &alice,
        json!({
            "preset": "private_chat",
            "name": "Knock here",
            "initial_state": [{"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "knock"}}],
        }),
    )
    .await;
    let t0 = next_batch(&sync(&eve, "").await);
    eve.post(&format!("/knock/{}", enc(&room)), json!({"reason": "let me in"})).await.expect(200);
    let answer = sync_until(&eve, Some(&t0), |r| r["rooms"]["knock"].get(&room).is_some()).await;
    let state = &answer["rooms"]["knock"][&room]["knock_state"]["events"];
    let member = of_type(state, "m.room.member", Some(&eve.user_id));
    assert_eq!(member.len(), 1, "{answer}");
    assert_eq!(member[0]["content"]["membership"], "knock", "{answer}");
    assert_eq!(member[0]["sender"], eve.user_id.as_str(), "{answer}");
    let rules = of_type(state, "m.room.join_rules", Some(""));
    assert_eq!(rules.len(), 1, "{answer}");
    assert_eq!(rules[0]["content"]["join_rule"], "knock", "{answer}");
    let name = of_type(state, "m.room.name", Some(""));
    assert_eq!(
        name.first().map(|e| (*e).clone()),
        Some(
            json!({"type": "m.room.name", "state_key": "", "content": {"name": "Knock here"}, "sender": alice.user_id})
        ),
        "{answer}"
    );
    assert_eq!(of_type(state, "m.room.create", Some("")).len(), 1, "{answer}");
    for section in ["join", "invite", "leave"] {
        assert!(answer["rooms"][section].get(&room).is_none(), "{answer}");
    }
    // Not again in the next sync.
    let later = sync(&eve, &format!("since={}", next_batch(&answer))).await;
    assert!(later["rooms"]["knock"].get(&room).is_none(), "{later}");

    // Alice sees the knock in her timeline; inviting eve moves the room to eve's invites.
    let seen = sync_until(&alice, None, |r| {
        of_type(&r["rooms"]["join"][&room]["timeline"]["events"], "m.room.member", Some(&eve.user_id)).len() == 1
    })
    .await;
    let knock = of_type(&seen["rooms"]["join"][&room]["timeline"]["events"], "m.room.member", Some(&eve.user_id))[0];
    assert_eq!(knock["content"]["membership"], "knock", "{seen}");
    invite(&alice, &room, &eve.user_id).await;
    let invited = sync_until(&eve, Some(&next_batch(&later)), |r| r["rooms"]["invite"].get(&room).is_some()).await;
    assert!(invited["rooms"]["knock"].get(&room).is_none(), "{invited}");
}

#[tokio::test]
async fn an_invite_carries_stripped_invite_state() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    let room = create_room(&alice, json!({"preset": "private_chat", "name": "Invite here"})).await;
    let t0 = next_batch(&sync(&bob, "").await);
    invite(&alice, &room, &bob.user_id).await;
    let answer = sync_until(&bob, Some(&t0), |r| r["rooms"]["invite"].get(&room).is_some()).await;
    let state = &answer["rooms"]["invite"][&room]["invite_state"]["events"];
    let name = of_type(state, "m.room.name", Some(""));
    assert_eq!(
        name.first().map(|e| (*e).clone()),
        Some(
            json!({"type": "m.room.name", "state_key": "", "content": {"name": "Invite here"}, "sender": alice.user_id})
        ),
        "{answer}"
    );
    assert_eq!(of_type(state, "m.room.create", Some("")).len(), 1, "{answer}");
    assert_eq!(of_type(state, "m.room.join_rules", Some("")).len(), 1, "{answer}");
    let member = of_type(state, "m.room.member", Some(&bob.user_id));
    assert_eq!(member.len(), 1, "{answer}");
    assert_eq!(member[0]["content"]["membership"], "invite", "{answer}");
    assert_eq!(member[0]["sender"], alice.user_id.as_str(), "{answer}");
    assert!(answer["rooms"]["join"].get(&room).is_none(), "{answer}");
    let t1 = next_batch(&answer);
    let again = sync(&bob, &format!("since={t1}")).await;
    assert!(again["rooms"]["invite"].get(&room).is_none(), "an invite is told once (since {t1}): {again}");

    join(&bob, &room).await;
    let joined = sync_until(&bob, Some(&t1), |r| r["rooms"]["join"].get(&room).is_some()).await;
    assert!(joined["rooms"]["invite"].get(&room).is_none(), "{joined}");
    let entry = &joined["rooms"]["join"][&room];
    let creates = of_type(&entry["state"]["events"], "m.room.create", Some("")).len()
        + of_type(&entry["timeline"]["events"], "m.room.create", Some("")).len();
    assert_eq!(creates, 1, "the full state on joining: {joined}");
}

#[tokio::test]
async fn the_summary_names_heroes_in_stream_order_and_counts_members() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let alice = deployment.new_user().await;
    let suffix = format!("{:08x}", rand::random::<u32>());
    // Stream order is the opposite of alphabetical order.
    let zed = deployment.client().register(&format!("zz{suffix}"), PASSWORD).await;
    let amy = deployment.client().register(&format!("aa{suffix}"), PASSWORD).await;
    let room = create_room(&alice, json!({"preset": "private_chat"})).await;
    invite(&alice, &room, &zed.user_id).await;
    join(&zed, &room).await;
    invite(&alice, &room, &amy.user_id).await;
    let token = settled_token(&alice, None, &room).await;

    let answer = sync(&alice, "").await;
    let summary = &answer["rooms"]["join"][&room]["summary"];
    assert_eq!(
        summary,
        &json!({"m.heroes": [zed.user_id, amy.user_id], "m.joined_member_count": 2, "m.invited_member_count": 1}),
        "{answer}"
    );
    let answer = sync(&zed, "").await;
    assert_eq!(
        answer["rooms"]["join"][&room]["summary"]["m.heroes"],
        json!([alice.user_id, amy.user_id]),
        "never the syncing user: {answer}"
    );

    // A change of members sends the new counts.
    join(&amy, &room).await;
    let answer = sync_until(&alice, Some(&token), |r| {
        of_type(&r["rooms"]["join"][&room]["timeline"]["events"], "m.room.member", Some(&amy.user_id))
            .iter()
            .any(|e| e["content"]["membership"] == "join")
    })
    .await;
    let summary = &answer["rooms"]["join"][&room]["summary"];
    assert_eq!(summary["m.joined_member_count"], 3, "{answer}");
    assert_eq!(summary["m.invited_member_count"], 0, "{answer}");
}

fn counts(answer: &Value, room: &str) -> (Value, Value) {
    let unread = &answer["rooms"]["join"][room]["unread_notifications"];
    (unread["notification_count"].clone(), unread["highlight_count"].clone())
}

#[tokio::test]
async fn unread_notifications_are_present() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let alice = deployment.new_user().await;
    let room = create_room(&alice, json!({"preset": "private_chat"})).await;
    let answer = sync_until(&alice, None, |r| r["rooms"]["join"].get(&room).is_some()).await;
    let (notifications, highlights) = counts(&answer, &room);
    assert!(notifications.is_u64() && highlights.is_u64(), "{answer}");
    assert_eq!((notifications, highlights), (json!(0), json!(0)), "nothing from others: {answer}");
}

/// Default push rules: a message from the other member of a one-to-one room notifies; a read receipt clears it.
#[tokio::test]
async fn unread_notifications_count_messages_until_read() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    let room = create_room(&alice, json!({"preset": "private_chat"})).await;
    invite(&alice, &room, &bob.user_id).await;
    join(&bob, &room).await;
    let t0 = settled_token(&bob, None, &room).await;
    send_text(&alice, &room, "one").await;
    let second = send_text(&alice, &room, "two").await;
    token_after(&bob, Some(&t0), &second).await;
    // Counting may lag the message a little: poll until it settles or time runs out.
    let mut answer = sync(&bob, "").await;
    for _ in 0..50 {
        if counts(&answer, &room).0 == json!(2) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        answer = sync(&bob, "").await;
    }
    assert_eq!(counts(&answer, &room), (json!(2), json!(0)), "{answer}");

    bob.post(&format!("/rooms/{}/receipt/m.read/{}", enc(&room), enc(&second)), json!({})).await.expect(200);
    for _ in 0..50 {
        if counts(&answer, &room).0 == json!(0) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        answer = sync(&bob, "").await;
    }
    assert_eq!(counts(&answer, &room), (json!(0), json!(0)), "{answer}");
}
