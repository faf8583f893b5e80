//! Requests a client gets wrong are answered with the spec's 4xx and a
//! message it can act on, never a 500, and answers keep to the spec's schema:
//! a login without `type`, an unknown membership filter, a profile key
//! outside the grammar, an empty `filter=`, a weak password; devices without
//! a name have no `display_name` (never null); the default push rules include
//! the legacy mention rules clients still expect, and they notify.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tests::{
    Deployment, Mode,
    client::{Client, enc},
};

/// How long a notification may take to be evaluated and recorded.
const PATIENCE: Duration = Duration::from_secs(10);

async fn login_without_type(deployment: &Deployment) {
    let client = deployment.client();
    for body in [
        json!({}),
        json!({"identifier": {"type": "m.id.user", "user": "alice"}, "password": "secret"}),
        json!({"user": "alice", "password": "secret"}),
    ] {
        let answer = client.post("/login", body.clone()).await;
        assert_eq!(answer.status, 400, "login {body}: {}", answer.body);
        assert!(["M_BAD_JSON", "M_UNKNOWN"].contains(&answer.errcode()), "login {body}: {}", answer.body);
    }
    // The server is still there and well.
    client.get("/login").await.expect(200);
}

async fn unknown_membership_filter(deployment: &Deployment, alice: &Client, room: &str) {
    let members = format!("/rooms/{}/members", enc(room));
    for query in ["membership=junk", "not_membership=junk", "membership=join&not_membership=JOIN"] {
        alice.get(&format!("{members}?{query}")).await.expect_error(400, "M_INVALID_PARAM");
    }
    let joined = alice.get(&format!("{members}?membership=join")).await.expect(200);
    assert_eq!(joined["chunk"].as_array().map(Vec::len), Some(1), "{joined}");
    // syncapi answers the same path from its projection, alike.
    if deployment.mode == Mode::Polylith {
        let syncapi = alice.at(&deployment.instance_url("syncapi-1"));
        syncapi.get(&format!("{members}?membership=junk")).await.expect_error(400, "M_INVALID_PARAM");
        syncapi.get(&format!("{members}?membership=join")).await.expect(200);
    }
}

async fn profile_keys_outside_the_grammar(alice: &Client) {
    let me = format!("/profile/{}", enc(&alice.user_id));
    for key in ["nodots", "Org.example.upper", "org..example", "org.example.", "9org.example", "org.exa-mple"] {
        let path = format!("{me}/{}", enc(key));
        alice.put(&path, json!({ key: "value" })).await.expect_error(400, "M_INVALID_PARAM");
        alice.get(&path).await.expect_error(400, "M_INVALID_PARAM");
        alice.delete(&path, json!({})).await.expect_error(400, "M_INVALID_PARAM");
    }
    let long = format!("org.example.{}", "a".repeat(250));
    alice.put(&format!("{me}/{long}"), json!({ long.clone(): "value" })).await.expect_error(400, "M_INVALID_PARAM");
    // Keys within it still work.
    let custom = format!("{me}/org.example.colour_2");
    alice.put(&custom, json!({"org.example.colour_2": "blue"})).await.expect(200);
    assert_eq!(alice.get(&custom).await.expect(200), json!({"org.example.colour_2": "blue"}));
}

async fn empty_filter_is_no_filter(alice: &Client, room: &str) {
    let messages = format!("/rooms/{}/messages?dir=b&filter=&limit=5", enc(room));
    let page = alice.get(&messages).await.expect(200);
    assert!(page["chunk"].as_array().is_some_and(|c| !c.is_empty()), "{page}");
    let synced = alice.get("/sync?filter=&timeout=0").await.expect(200);
    assert!(synced["next_batch"].is_string(), "{synced}");
}

async fn unnamed_devices_have_no_null_name(alice: &Client) {
    // The harness registers without initial_device_display_name.
    let device = alice.get(&format!("/devices/{}", enc(&alice.device_id))).await.expect(200);
    assert!(device.get("display_name").is_none(), "an unnamed device has no display_name key: {device}");
    let listed = alice.get("/devices").await.expect(200);
    for device in listed["devices"].as_array().expect("a devices list") {
        let nulls: Vec<&String> =
            device.as_object().unwrap().iter().filter(|(_, v)| v.is_null()).map(|(k, _)| k).collect();
        assert!(nulls.is_empty(), "null fields {nulls:?} in {device}");
    }
}

async fn weak_password_says_the_rule(deployment: &Deployment) {
    let answer = deployment.client().post("/register", json!({"username": "shortpw", "password": "short"})).await;
    let body = answer.expect_error(400, "M_WEAK_PASSWORD");
    assert!(body["error"].as_str().is_some_and(|e| e.contains("at least 8 characters")), "{body}");
}

fn rule_ids(rules: &Value) -> Vec<&str> {
    rules.as_array().into_iter().flatten().filter_map(|r| r["rule_id"].as_str()).collect()
}

async fn legacy_mention_rules(alice: &Client, bob: &Client, room: &str) {
    let rules = bob.get("/pushrules/").await.expect(200);
    let overrides = rule_ids(&rules["global"]["override"]);
    let position = |id: &str| overrides.iter().position(|r| *r == id).unwrap_or_else(|| panic!("{id}: {overrides:?}"));
    // In the spec's order: each right after the rule that replaced it.
    assert_eq!(position(".m.rule.contains_display_name"), position(".m.rule.is_user_mention") + 1, "{overrides:?}");
    assert_eq!(position(".m.rule.roomnotif"), position(".m.rule.is_room_mention") + 1, "{overrides:?}");
    let content = &rules["global"]["content"];
    let localpart = bob.user_id.trim_start_matches('@').split(':').next().unwrap();
    assert_eq!(rule_ids(content), vec![".m.rule.contains_user_name"], "{content}");
    assert_eq!(content[0]["pattern"], localpart, "{content}");
    let one = bob.get("/pushrules/global/override/.m.rule.contains_display_name").await.expect(200);
    assert_eq!(one["conditions"], json!([{"kind": "contains_display_name"}]), "{one}");

    // They notify: a message naming bob, by his user name or his display
    // name, without m.mentions, highlights for him.
    let said = say(alice, room, &format!("{localpart}: are you there?")).await;
    wait_for_highlight(bob, &said).await;
    let me = format!("/profile/{}/displayname", enc(&bob.user_id));
    bob.put(&me, json!({"displayname": "Bobby Tables"})).await.expect(200);
    // The name reaches the room's member event (what push evaluation reads) a moment later.
    let member = format!("/rooms/{}/state/m.room.member/{}", enc(room), enc(&bob.user_id));
    let deadline = Instant::now() + PATIENCE;
    while alice.get(&member).await.expect(200)["displayname"] != "Bobby Tables" {
        assert!(Instant::now() < deadline, "bob's member event never took his new name");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let said = say(alice, room, "and you, Bobby Tables?").await;
    wait_for_highlight(bob, &said).await;
}

async fn say(sender: &Client, room: &str, body: &str) -> String {
    let txn = format!("/rooms/{}/send/m.room.message/say{}", enc(room), rand::random::<u32>());
    let sent = sender.put(&txn, json!({"msgtype": "m.text", "body": body})).await.expect(200);
    sent["event_id"].as_str().expect("an event id").to_owned()
}

async fn wait_for_highlight(user: &Client, event_id: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let highlights = user.get("/notifications?only=highlight").await.expect(200);
        if highlights["notifications"].as_array().into_iter().flatten().any(|n| n["event"]["event_id"] == event_id) {
            return;
        }
        assert!(Instant::now() < deadline, "no highlight for {event_id}: {highlights}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn all(deployment: &Deployment) {
    login_without_type(deployment).await;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    let room = alice.post("/createRoom", json!({"preset": "public_chat"})).await.expect(200);
    let room = room["room_id"].as_str().unwrap().to_owned();
    let txn = format!("/rooms/{}/send/m.room.message/first", enc(&room));
    alice.put(&txn, json!({"msgtype": "m.text", "body": "hello"})).await.expect(200);
    unknown_membership_filter(deployment, &alice, &room).await;
    profile_keys_outside_the_grammar(&alice).await;
    empty_filter_is_no_filter(&alice, &room).await;
    unnamed_devices_have_no_null_name(&alice).await;
    weak_password_says_the_rule(deployment).await;
    bob.post(&format!("/join/{}", enc(&room)), json!({})).await.expect(200);
    legacy_mention_rules(&alice, &bob, &room).await;
}

#[tokio::test]
async fn client_mistakes_are_4xx_and_answers_keep_the_schema_monolith() {
    all(&Deployment::start(Mode::Monolith).await).await;
}

#[tokio::test]
async fn client_mistakes_are_4xx_and_answers_keep_the_schema_polylith() {
    all(&Deployment::start(Mode::Polylith).await).await;
}
