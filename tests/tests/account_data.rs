//! Account data, global and per room: stored and read back by its owner
//! only, server-controlled types refused, and every change published on
//! `OutputClientData`.

use serde_json::{Value, json};
use tests::{Deployment, Mode, client::enc, streams::read_until};

#[tokio::test]
async fn account_data_is_stored_per_user_and_room_and_published() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    let server = &deployment.server_name;
    let user = format!("/user/{}", enc(&alice.user_id));
    let room_id = format!("!somewhere:{server}");
    let other_room = format!("!elsewhere:{server}");
    let room = format!("{user}/rooms/{}", enc(&room_id));

    // Global.
    let global = format!("{user}/account_data/org.example.settings");
    alice.get(&global).await.expect_error(404, "M_NOT_FOUND");
    let first = json!({"theme": "dark", "sizes": [1, 2, 3], "nested": {"on": true, "none": null}});
    assert_eq!(alice.put(&global, first.clone()).await.expect(200), json!({}));
    assert_eq!(alice.get(&global).await.expect(200), first);
    let second = json!({"theme": "light"});
    assert_eq!(alice.put(&global, second.clone()).await.expect(200), json!({}));
    assert_eq!(alice.get(&global).await.expect(200), second, "a PUT replaces the whole object");
    alice.get(&format!("{user}/account_data/org.example.other")).await.expect_error(404, "M_NOT_FOUND");

    // Someone else's: neither readable nor writable.
    bob.get(&global).await.expect_error(403, "M_FORBIDDEN");
    bob.put(&format!("{user}/account_data/org.example.hijack"), json!({"x": 1})).await.expect_error(403, "M_FORBIDDEN");
    alice.get(&format!("{user}/account_data/org.example.hijack")).await.expect_error(404, "M_NOT_FOUND");

    // Types the server controls.
    for kind in ["m.fully_read", "m.push_rules"] {
        alice.put(&format!("{user}/account_data/{kind}"), json!({"x": 1})).await.expect_error(405, "M_BAD_JSON");
    }
    alice
        .put(&format!("{room}/account_data/m.fully_read"), json!({"event_id": format!("$event:{server}")}))
        .await
        .expect_error(405, "M_BAD_JSON");

    // Per room: separate from global data and from other rooms.
    let tagged = format!("{room}/account_data/org.example.room_note");
    alice.get(&tagged).await.expect_error(404, "M_NOT_FOUND");
    let note = json!({"note": "the blue room", "pinned": true});
    assert_eq!(alice.put(&tagged, note.clone()).await.expect(200), json!({}));
    assert_eq!(alice.get(&tagged).await.expect(200), note);
    alice.get(&format!("{user}/account_data/org.example.room_note")).await.expect_error(404, "M_NOT_FOUND");
    alice
        .get(&format!("{user}/rooms/{}/account_data/org.example.room_note", enc(&other_room)))
        .await
        .expect_error(404, "M_NOT_FOUND");
    bob.get(&tagged).await.expect_error(403, "M_FORBIDDEN");
    bob.put(&tagged, json!({"note": "bob was here"})).await.expect_error(403, "M_FORBIDDEN");
    assert_eq!(alice.get(&tagged).await.expect(200), note);

    // Malformed room ids.
    for bad in ["not-a-room-id", "@alice:example.org"] {
        let path = format!("{user}/rooms/{}/account_data/org.example.room_note", enc(bad));
        alice.get(&path).await.expect_error(400, "M_INVALID_PARAM");
        alice.put(&path, json!({"x": 1})).await.expect_error(400, "M_INVALID_PARAM");
    }

    // Published, in order: the global change, then the room one; bob's
    // refused write (made before the room one) is not.
    let stream = format!("{}_OutputClientData", deployment.config.global.nats.stream_prefix);
    let is_alice = |m: &Value| m["user_id"] == alice.user_id.as_str();
    let read = read_until(&deployment, &stream, "for alice's room note", |m| {
        is_alice(m) && m["room_id"] == room_id.as_str() && m["data_type"] == "org.example.room_note"
    })
    .await;
    let global_change = read
        .iter()
        .find(|m| is_alice(m) && m["data_type"] == "org.example.settings")
        .unwrap_or_else(|| panic!("no message for alice's global settings before her room note: {read:#?}"));
    assert!(
        global_change.get("room_id").is_none_or(|r| r.is_null() || r == ""),
        "a global change names no room: {global_change}"
    );
    for message in [global_change, read.last().unwrap()] {
        assert!(message["stream_pos"].is_u64(), "stream_pos: {message}");
    }
    assert!(
        !read.iter().any(|m| m["data_type"] == "org.example.hijack"),
        "bob's refused write was published: {read:#?}"
    );
}
