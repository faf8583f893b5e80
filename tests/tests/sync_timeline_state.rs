//! The timeline and the state at its start: the seed's worked example
//! (`since=14&limit=5`, `since=9&limit=5`, full state), `limited` true exactly
//! when events were left out, `prev_batch` usable with `/messages`, and an
//! incremental sync from an old token that is still right.

mod sync_support;

use serde_json::{Value, json};
use sync_support::*;
use tests::{Deployment, Mode, client::Client, client::enc};

/// The worked example's room: its events (1-based, `ids[0]` unused) and the
/// token after each.
struct Example {
    room_id: String,
    ids: Vec<String>,
    after: Vec<String>,
}

/// [A, B, C, D, 1, 2, 3, D', 4, D'', 5, B', D''', D'''', 6]: letters are
/// state events (primes: new values of the same key), numbers messages.
async fn build_example(alice: &Client) -> Example {
    let room_id = create_room(alice, json!({"preset": "private_chat"})).await;
    let steps: [(&str, &str); 15] = [
        ("test.a", "A"),
        ("test.b", "B"),
        ("test.c", "C"),
        ("test.d", "D"),
        ("", "1"),
        ("", "2"),
        ("", "3"),
        ("test.d", "D'"),
        ("", "4"),
        ("test.d", "D''"),
        ("", "5"),
        ("test.b", "B'"),
        ("test.d", "D'''"),
        ("test.d", "D''''"),
        ("", "6"),
    ];
    let mut ids = vec![String::new()];
    let mut after = vec![String::new()];
    let mut token: Option<String> = None;
    for (state_type, value) in steps {
        let id = if state_type.is_empty() {
            send_text(alice, &room_id, value).await
        } else {
            set_state(alice, &room_id, state_type, "", json!({"v": value})).await
        };
        let next = token_after(alice, token.as_deref(), &id).await;
        ids.push(id);
        after.push(next.clone());
        token = Some(next);
    }
    Example { room_id, ids, after }
}

fn limit(n: u32) -> String {
    filter(json!({"room": {"timeline": {"limit": n}}}))
}

fn range(ids: &[String], from: usize, to: usize) -> Vec<String> {
    ids[from..=to].to_vec()
}

async fn worked_example(mode: Mode) {
    let deployment = Deployment::start(mode).await;
    let alice = deployment.new_user().await;
    let Example { room_id, ids, after } = build_example(&alice).await;

    // since=14&limit=5: only 6, nothing in the state.
    let answer = sync(&alice, &format!("since={}&filter={}", after[14], limit(5))).await;
    let room = &answer["rooms"]["join"][&room_id];
    assert_eq!(timeline_ids(room), range(&ids, 15, 15), "{answer}");
    assert_eq!(state_ids(room), Vec::<String>::new(), "{answer}");
    assert_eq!(room["timeline"]["limited"], false, "{answer}");

    // since=9&limit=5: [5, B', D''', D'''', 6] and the state [D''] (what changed in (9, 11)).
    let answer = sync(&alice, &format!("since={}&filter={}", after[9], limit(5))).await;
    let room = &answer["rooms"]["join"][&room_id];
    assert_eq!(timeline_ids(room), range(&ids, 11, 15), "{answer}");
    assert_eq!(state_ids(room), vec![ids[10].clone()], "{answer}");
    assert_eq!(room["state"]["events"][0]["content"], json!({"v": "D''"}), "{answer}");
    assert_eq!(room["timeline"]["limited"], true, "D'' was left out: {answer}");

    // The same with full_state: the whole state at the start of the timeline, [A, B, C, D''] of ours.
    let answer = sync(&alice, &format!("since={}&full_state=true&filter={}", after[9], limit(5))).await;
    let room = &answer["rooms"]["join"][&room_id];
    assert_eq!(timeline_ids(room), range(&ids, 11, 15), "{answer}");
    let state = &room["state"]["events"];
    let ours: Vec<String> = state
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"].as_str().is_some_and(|t| t.starts_with("test.")))
        .map(|e| e["event_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(sorted(ours), sorted(vec![ids[1].clone(), ids[2].clone(), ids[3].clone(), ids[10].clone()]), "{answer}");
    assert_eq!(of_type(state, "m.room.create", Some("")).len(), 1, "{answer}");
    assert_eq!(of_type(state, "m.room.member", Some(&alice.user_id)).len(), 1, "{answer}");
    assert_eq!(of_type(state, "m.room.power_levels", Some("")).len(), 1, "{answer}");
    let timeline = timeline_ids(room);
    assert!(state_ids(room).iter().all(|id| !timeline.contains(id)), "the state is before the timeline: {answer}");

    // full_state with nothing new: the room is there with its whole current state, [A, B', C, D''''] of ours.
    let answer = sync(&alice, &format!("since={}&full_state=true&filter={}", after[15], limit(5))).await;
    let room = &answer["rooms"]["join"][&room_id];
    assert_eq!(timeline_ids(room), Vec::<String>::new(), "{answer}");
    let ours: Vec<String> = room["state"]["events"]
        .as_array()
        .unwrap_or_else(|| panic!("the room with full_state: {answer}"))
        .iter()
        .filter(|e| e["type"].as_str().is_some_and(|t| t.starts_with("test.")))
        .map(|e| e["event_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        sorted(ours),
        sorted(vec![ids[1].clone(), ids[12].clone(), ids[3].clone(), ids[14].clone()]),
        "{answer}"
    );

    // An initial sync gives the same timeline, and the full state at its start.
    let answer = sync(&alice, &format!("filter={}", limit(5))).await;
    let room = &answer["rooms"]["join"][&room_id];
    assert_eq!(timeline_ids(room), range(&ids, 11, 15), "{answer}");
    assert_eq!(room["timeline"]["limited"], true, "{answer}");
    let test_state: Vec<&Value> = room["state"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"].as_str().is_some_and(|t| t.starts_with("test.")))
        .collect();
    let values: Vec<(String, String)> = test_state
        .iter()
        .map(|e| (e["type"].as_str().unwrap().to_owned(), e["content"]["v"].as_str().unwrap().to_owned()))
        .collect();
    let mut values = values;
    values.sort();
    assert_eq!(
        values,
        [("test.a", "A"), ("test.b", "B"), ("test.c", "C"), ("test.d", "D''")]
            .map(|(t, v)| (t.to_owned(), v.to_owned()))
            .to_vec(),
        "{answer}"
    );
}

#[tokio::test]
async fn worked_example_polylith() {
    worked_example(Mode::Polylith).await;
}

#[tokio::test]
async fn worked_example_monolith() {
    worked_example(Mode::Monolith).await;
}

/// `limited` is true exactly when events of the range were left out.
#[tokio::test]
async fn limited_is_true_exactly_when_events_were_left_out() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let alice = deployment.new_user().await;
    let Example { room_id, ids, after } = build_example(&alice).await;

    // (10, 15]: exactly 5 events, limit 5: all of them, not limited, no state.
    let answer = sync(&alice, &format!("since={}&filter={}", after[10], limit(5))).await;
    let room = &answer["rooms"]["join"][&room_id];
    assert_eq!(timeline_ids(room), range(&ids, 11, 15), "{answer}");
    assert_eq!(room["timeline"]["limited"], false, "nothing was left out: {answer}");
    assert_eq!(state_ids(room), Vec::<String>::new(), "{answer}");

    // (9, 15]: 6 events, limit 6: the same.
    let answer = sync(&alice, &format!("since={}&filter={}", after[9], limit(6))).await;
    let room = &answer["rooms"]["join"][&room_id];
    assert_eq!(timeline_ids(room), range(&ids, 10, 15), "{answer}");
    assert_eq!(room["timeline"]["limited"], false, "nothing was left out: {answer}");
    assert_eq!(state_ids(room), Vec::<String>::new(), "{answer}");

    // (8, 15] with limit 6: event 9 is left out.
    let answer = sync(&alice, &format!("since={}&filter={}", after[8], limit(6))).await;
    let room = &answer["rooms"]["join"][&room_id];
    assert_eq!(timeline_ids(room), range(&ids, 10, 15), "{answer}");
    assert_eq!(room["timeline"]["limited"], true, "event 9 was left out: {answer}");
    // Event 9 is a message: no state changed before the timeline.
    assert_eq!(state_ids(room), Vec::<String>::new(), "{answer}");

    // (3, 15] with limit 1: test.d changed from D to D'''' and test.b from B to B' before the timeline;
    // the state sent is their values at its start.
    let answer = sync(&alice, &format!("since={}&filter={}", after[3], limit(1))).await;
    let room = &answer["rooms"]["join"][&room_id];
    assert_eq!(timeline_ids(room), range(&ids, 15, 15), "{answer}");
    assert_eq!(room["timeline"]["limited"], true, "{answer}");
    assert_eq!(sorted(state_ids(room)), sorted(vec![ids[12].clone(), ids[14].clone()]), "{answer}");

    // A sync with nothing new in the room leaves the room out.
    let answer = sync(&alice, &format!("since={}&filter={}", after[15], limit(5))).await;
    assert!(answer["rooms"]["join"].get(&room_id).is_none(), "{answer}");
}

/// `prev_batch` is a `/messages` token: back from it come the events just before the timeline.
#[tokio::test]
async fn prev_batch_paginates_back_with_messages() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let alice = deployment.new_user().await;
    let Example { room_id, ids, after } = build_example(&alice).await;

    let answer = sync(&alice, &format!("since={}&filter={}", after[9], limit(5))).await;
    let prev_batch = answer["rooms"]["join"][&room_id]["timeline"]["prev_batch"].as_str().unwrap().to_owned();
    let messages =
        |from: &str, dir: &str| format!("/rooms/{}/messages?dir={dir}&limit=3&from={}", enc(&room_id), enc(from));

    let page = alice.get(&messages(&prev_batch, "b")).await.expect(200);
    assert_eq!(ids_of(&page["chunk"]), vec![ids[10].clone(), ids[9].clone(), ids[8].clone()], "{page}");
    let end = page["end"].as_str().unwrap_or_else(|| panic!("more to come: {page}")).to_owned();
    let page = alice.get(&messages(&end, "b")).await.expect(200);
    assert_eq!(ids_of(&page["chunk"]), vec![ids[7].clone(), ids[6].clone(), ids[5].clone()], "{page}");

    // Forwards from prev_batch: the timeline itself.
    let page = alice.get(&messages(&prev_batch, "f")).await.expect(200);
    assert_eq!(ids_of(&page["chunk"]), range(&ids, 11, 13), "{page}");
}

/// An incremental sync from an old token: every room's timeline, `limited` and state at the timeline's start.
#[tokio::test]
async fn an_old_since_token_gives_correct_results() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    let busy = create_room(&alice, json!({"preset": "public_chat"})).await;
    let quiet = create_room(&alice, json!({"preset": "public_chat"})).await;
    join(&bob, &busy).await;
    join(&bob, &quiet).await;
    let old = settled_token(&bob, None, &quiet).await;

    let x1 = set_state(&alice, &busy, "test.x", "", json!({"v": 1})).await;
    for i in 0..12 {
        send_text(&alice, &busy, &format!("early {i}")).await;
    }
    let x2 = set_state(&alice, &busy, "test.x", "", json!({"v": 2})).await;
    let y1 = set_state(&alice, &busy, "test.y", "key", json!({"v": 1})).await;
    for i in 0..12 {
        send_text(&alice, &busy, &format!("middle {i}")).await;
    }
    let x3 = set_state(&alice, &busy, "test.x", "", json!({"v": 3})).await;
    let mut last = Vec::new();
    for i in 0..4 {
        last.push(send_text(&alice, &busy, &format!("late {i}")).await);
    }
    let quiet_messages = vec![
        send_text(&alice, &quiet, "q1").await,
        send_text(&alice, &quiet, "q2").await,
        send_text(&alice, &quiet, "q3").await,
    ];
    let invited_to = create_room(&alice, json!({"preset": "private_chat"})).await;
    invite(&alice, &invited_to, &bob.user_id).await;
    // Everything has reached syncapi once bob sees the last message and the invite.
    sync_until(&bob, Some(&old), |r| r["rooms"]["invite"].get(&invited_to).is_some()).await;
    token_after(&bob, Some(&old), &last[3]).await;

    let answer = sync(&bob, &format!("since={old}&filter={}", limit(5))).await;
    let room = &answer["rooms"]["join"][&busy];
    let mut expected = vec![x3.clone()];
    expected.extend(last.iter().cloned());
    assert_eq!(timeline_ids(room), expected, "{answer}");
    assert_eq!(room["timeline"]["limited"], true, "{answer}");
    assert_eq!(sorted(state_ids(room)), sorted(vec![x2.clone(), y1.clone()]), "the state before x3: {answer}");
    assert!(!state_ids(room).contains(&x1), "{answer}");

    let room = &answer["rooms"]["join"][&quiet];
    assert_eq!(timeline_ids(room), quiet_messages, "{answer}");
    assert_eq!(room["timeline"]["limited"], false, "{answer}");
    assert_eq!(state_ids(room), Vec::<String>::new(), "{answer}");
    let invited = &answer["rooms"]["invite"][&invited_to];
    assert!(invited["invite_state"]["events"].is_array(), "{answer}");
}
