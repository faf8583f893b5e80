//! A redaction redacts only an event of its own room: one that another
//! server sends in a room naming an event of another room leaves that event
//! whole, and a client asking to redact an event of another room is refused
//! with 400. The other server is a fake in the test process that joined
//! two rooms of ours.

mod federation_support;
mod sync_support;

use federation_support::{Scene, json_of};
use serde_json::{Value, json};
use sync_support::{create_room, send_text, sync_until};
use tests::client::enc;

fn timeline_has(sync: &Value, room_id: &str, body: &str) -> bool {
    sync["rooms"]["join"][room_id]["timeline"]["events"]
        .as_array()
        .is_some_and(|events| events.iter().any(|e| e["content"]["body"] == body))
}

#[tokio::test]
async fn a_redaction_in_another_room_redacts_nothing() {
    let scene = Scene::start().await;
    let first = federation_support::Joined {
        room_id: scene.room_id.clone(),
        auth: scene.auth.clone(),
        latest: scene.latest.clone(),
        answer: Value::Null,
    };
    let other_room = create_room(&scene.alice, json!({"preset": "public_chat", "room_version": "10"})).await;
    let mut second = scene.join(&other_room).await;

    let message = scene.event_in(&first, "m.room.message", json!({"msgtype": "m.text", "body": "keep me"}), None);
    let (status, body) = scene.send("t1", vec![json_of(&message)], None).await;
    assert_eq!(status, 200, "{body}");
    sync_until(&scene.alice, None, |sync| timeline_has(sync, &scene.room_id, "keep me")).await;

    let redaction = scene.event_in(&second, "m.room.redaction", json!({}), Some(&message.event_id));
    second.latest = redaction.event_id.clone();
    let sentinel = scene.event_in(&second, "m.room.message", json!({"msgtype": "m.text", "body": "sentinel"}), None);
    let (status, body) = scene.send("t2", vec![json_of(&redaction), json_of(&sentinel)], None).await;
    assert_eq!(status, 200, "{body}");
    let sync = sync_until(&scene.alice, None, |sync| timeline_has(sync, &other_room, "sentinel")).await;
    let timeline = &sync["rooms"]["join"][&other_room]["timeline"]["events"];
    assert!(
        !timeline.as_array().into_iter().flatten().any(|e| e["event_id"] == redaction.event_id.as_str()),
        "the redaction itself is refused: {timeline}"
    );

    let path = format!("/rooms/{}/event/{}", enc(&scene.room_id), enc(message.event_id.as_str()));
    let kept = scene.alice.get(&path).await.expect(200);
    assert_eq!(kept["content"]["body"], "keep me", "{kept}");
    assert!(kept["unsigned"].get("redacted_because").is_none(), "{kept}");
    let served = scene.served(&message.event_id).await.expect("the message is served");
    assert_eq!(served["content"]["body"], "keep me", "{served}");

    // A client cannot even ask.
    let alices = send_text(&scene.alice, &scene.room_id, "alice's own").await;
    let path = format!("/rooms/{}/redact/{}/r1", enc(&other_room), enc(&alices));
    scene.alice.put(&path, json!({})).await.expect_error(400, "M_INVALID_PARAM");
}
