//! Who sees what in a sync: `m.room.history_visibility` (world_readable,
//! shared, invited, joined) as it was when each event was sent, users on
//! `m.ignored_user_list` hidden, and redacted events served redacted.

mod sync_support;

use serde_json::json;
use sync_support::*;
use tests::{Deployment, Mode, client::Client, client::enc};

async fn set_visibility(alice: &Client, room: &str, visibility: &str) {
    set_state(alice, room, "m.room.history_visibility", "", json!({"history_visibility": visibility})).await;
}

async fn history_visibility_is_honoured(mode: Mode) {
    let deployment = Deployment::start(mode).await;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    let room = create_room(&alice, json!({"preset": "private_chat"})).await;

    set_visibility(&alice, &room, "world_readable").await;
    send_text(&alice, &room, "world readable").await;
    set_visibility(&alice, &room, "shared").await;
    send_text(&alice, &room, "shared").await;
    set_visibility(&alice, &room, "invited").await;
    send_text(&alice, &room, "invited, before the invite").await;
    let t0 = settled_token(&bob, None, &create_room(&bob, json!({})).await).await;
    invite(&alice, &room, &bob.user_id).await;
    send_text(&alice, &room, "invited, after the invite").await;
    set_visibility(&alice, &room, "joined").await;
    send_text(&alice, &room, "joined, before the join").await;
    join(&bob, &room).await;
    let last = send_text(&alice, &room, "joined, after the join").await;
    token_after(&bob, Some(&t0), &last).await;

    let expected = ["world readable", "shared", "invited, after the invite", "joined, after the join"];
    let wide = filter(json!({"room": {"timeline": {"limit": 100}}}));
    // The incremental sync in which bob joined…
    let answer = sync(&bob, &format!("since={t0}&filter={wide}")).await;
    let shown: Vec<String> = bodies(&answer["rooms"]["join"][&room]);
    assert_eq!(shown, expected, "{answer}");
    // …and an initial sync.
    let answer = sync(&bob, &format!("filter={wide}")).await;
    assert_eq!(bodies(&answer["rooms"]["join"][&room]), expected, "{answer}");
    // Alice, joined throughout, sees everything.
    let answer = sync(&alice, &format!("filter={wide}")).await;
    assert_eq!(
        bodies(&answer["rooms"]["join"][&room]),
        [
            "world readable",
            "shared",
            "invited, before the invite",
            "invited, after the invite",
            "joined, before the join",
            "joined, after the join"
        ],
        "{answer}"
    );
}

#[tokio::test]
async fn history_visibility_is_honoured_polylith() {
    history_visibility_is_honoured(Mode::Polylith).await;
}

#[tokio::test]
async fn history_visibility_is_honoured_monolith() {
    history_visibility_is_honoured(Mode::Monolith).await;
}

/// "joined": what was said while a member left is not shown when they come back.
#[tokio::test]
async fn joined_visibility_hides_what_was_said_while_away() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    let room = create_room(&alice, json!({"preset": "public_chat"})).await;
    set_visibility(&alice, &room, "joined").await;
    join(&bob, &room).await;
    send_text(&alice, &room, "while bob is here").await;
    let t0 = settled_token(&bob, None, &room).await;
    leave(&bob, &room).await;
    send_text(&alice, &room, "while bob is away").await;
    join(&bob, &room).await;
    let last = send_text(&alice, &room, "bob is back").await;
    token_after(&bob, Some(&t0), &last).await;

    let wide = filter(json!({"room": {"timeline": {"limit": 100}}}));
    let answer = sync(&bob, &format!("filter={wide}")).await;
    assert_eq!(bodies(&answer["rooms"]["join"][&room]), ["while bob is here", "settle", "bob is back"], "{answer}");
    let answer = sync(&bob, &format!("since={t0}&filter={wide}")).await;
    assert_eq!(bodies(&answer["rooms"]["join"][&room]), ["bob is back"], "{answer}");
}

#[tokio::test]
async fn ignored_users_are_hidden() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    let carol = deployment.new_user().await;
    let room =
        create_room(&alice, json!({"preset": "public_chat", "power_level_content_override": {"state_default": 0}}))
            .await;
    join(&bob, &room).await;
    join(&carol, &room).await;
    let t0 = settled_token(&bob, None, &room).await;

    let ignore = format!("/user/{}/account_data/m.ignored_user_list", enc(&bob.user_id));
    bob.put(&ignore, json!({"ignored_users": {carol.user_id.as_str(): {}}})).await.expect(200);
    let told = sync_until(&bob, Some(&t0), |r| {
        r["account_data"]["events"].as_array().unwrap().iter().any(|e| e["type"] == "m.ignored_user_list")
    })
    .await;
    let t1 = next_batch(&told);

    send_text(&carol, &room, "from carol").await;
    let topic = set_state(&carol, &room, "m.room.topic", "", json!({"topic": "set by carol"})).await;
    let typing = format!("/rooms/{}/typing/{}", enc(&room), enc(&carol.user_id));
    carol.put(&typing, json!({"typing": true, "timeout": 20000})).await.expect(200);
    let from_alice = send_text(&alice, &room, "from alice").await;
    carol.post(&format!("/rooms/{}/receipt/m.read/{}", enc(&room), enc(&from_alice)), json!({})).await.expect(200);
    let other = create_room(&carol, json!({"preset": "private_chat"})).await;
    invite(&carol, &other, &bob.user_id).await;
    let last = send_text(&alice, &room, "last").await;
    // Wait for carol's invite and receipt to reach syncapi, as alice sees the receipt.
    sync_until(&alice, None, |r| {
        r["rooms"]["join"][&room]["ephemeral"]["events"]
            .as_array()
            .is_some_and(|list| list.iter().any(|e| e["content"][&from_alice]["m.read"].get(&carol.user_id).is_some()))
    })
    .await;
    token_after(&bob, Some(&t1), &last).await;

    for query in [format!("since={t1}"), String::new()] {
        let answer = sync(&bob, &query).await;
        let entry = &answer["rooms"]["join"][&room];
        let shown = bodies(entry);
        assert!(!shown.contains(&"from carol".to_owned()), "{answer}");
        assert!(shown.contains(&"from alice".to_owned()), "{answer}");
        // State events of ignored users still come.
        if !query.is_empty() {
            assert!(timeline_ids(entry).contains(&topic), "{answer}");
        }
        for event in entry["ephemeral"]["events"].as_array().unwrap() {
            assert!(!event.to_string().contains(&carol.user_id), "no typing or receipts of carol: {answer}");
        }
        assert!(answer["rooms"]["invite"].get(&other).is_none(), "no invites from carol: {answer}");
    }

    // Not ignored any more: carol's new messages come again.
    bob.put(&ignore, json!({"ignored_users": {}})).await.expect(200);
    let again = send_text(&carol, &room, "carol again").await;
    let answer = sync_until(&bob, Some(&t1), |r| timeline_ids(&r["rooms"]["join"][&room]).contains(&again)).await;
    assert!(bodies(&answer["rooms"]["join"][&room]).contains(&"carol again".to_owned()), "{answer}");
}

#[tokio::test]
async fn redacted_events_are_sent_redacted() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    let room = create_room(&alice, json!({"preset": "public_chat"})).await;
    join(&bob, &room).await;
    let t0 = settled_token(&bob, None, &room).await;
    let secret = send_text(&alice, &room, "oops, a secret").await;
    let redaction = alice
        .put(&format!("/rooms/{}/redact/{}/r1", enc(&room), enc(&secret)), json!({"reason": "leaked"}))
        .await
        .expect(200)["event_id"]
        .as_str()
        .unwrap()
        .to_owned();
    token_after(&bob, Some(&t0), &redaction).await;

    let check = |answer: &serde_json::Value| {
        let events = answer["rooms"]["join"][&room]["timeline"]["events"].as_array().unwrap().clone();
        let redacted = events.iter().find(|e| e["event_id"] == secret.as_str());
        let Some(redacted) = redacted else { return Err(format!("no redacted event: {answer}")) };
        if redacted["content"] != json!({}) {
            return Err(format!("content not pruned: {redacted}"));
        }
        let because = &redacted["unsigned"]["redacted_because"];
        if because["event_id"] != redaction.as_str() || because["type"] != "m.room.redaction" {
            return Err(format!("no redacted_because: {redacted}"));
        }
        if because["content"]["reason"] != "leaked" || because["sender"] != alice.user_id.as_str() {
            return Err(format!("redacted_because: {because}"));
        }
        if !events.iter().any(|e| e["event_id"] == redaction.as_str()) {
            return Err(format!("the redaction itself is in the timeline: {answer}"));
        }
        Ok(())
    };
    // The redaction of the event applies asynchronously: wait for it a bounded time.
    let mut last = Err(String::new());
    for _ in 0..50 {
        for query in [format!("since={t0}"), String::new()] {
            last = check(&sync(&bob, &query).await);
            if last.is_err() {
                break;
            }
        }
        if last.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    if let Err(e) = last {
        panic!("{e}");
    }
    assert!(!sync(&bob, "").await.to_string().contains("oops, a secret"));
}

/// Hidden events do not take the places of those shown: the limit counts what the user gets.
#[tokio::test]
async fn ignored_users_do_not_use_up_the_timeline_limit() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    let carol = deployment.new_user().await;
    let room = create_room(&alice, json!({"preset": "public_chat"})).await;
    join(&bob, &room).await;
    join(&carol, &room).await;
    let ignore = format!("/user/{}/account_data/m.ignored_user_list", enc(&bob.user_id));
    bob.put(&ignore, json!({"ignored_users": {carol.user_id.as_str(): {}}})).await.expect(200);
    let t0 = settled_token(&bob, None, &room).await;
    for body in ["a1", "a2", "a3"] {
        send_text(&alice, &room, body).await;
    }
    let mut last = String::new();
    for i in 0..6 {
        last = send_text(&carol, &room, &format!("c{i}")).await;
    }
    token_after(&alice, None, &last).await;

    let limit = filter(json!({"room": {"timeline": {"limit": 3}}}));
    for query in [format!("since={t0}&filter={limit}"), format!("filter={limit}")] {
        let answer = sync(&bob, &query).await;
        let entry = answer["rooms"]["join"]
            .get(&room)
            .unwrap_or_else(|| panic!("{query}: no room, though alice's messages are new: {answer}"));
        assert_eq!(bodies(entry), ["a1", "a2", "a3"], "{query}: {answer}");
    }
}
