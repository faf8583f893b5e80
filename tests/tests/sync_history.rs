//! Room history from syncapi: `/messages` back from a sync's `prev_batch` to
//! the room's creation and forwards again, filters and lazy loading, history
//! visibility, redactions, `/context`, relations and threads,
//! `/timestamp_to_event`, member lists equal to clientapi's, and an old token
//! in a big room answering a small page.

use std::time::Duration;

use serde_json::{Value, json};
use tests::{
    Deployment, Mode,
    client::{Client, enc},
};

async fn create_room(client: &Client, body: Value) -> String {
    client.post("/createRoom", body).await.expect(200)["room_id"].as_str().unwrap().to_owned()
}

async fn send(client: &Client, room: &str, content: Value) -> String {
    send_event(client, room, "m.room.message", content).await
}

async fn send_event(client: &Client, room: &str, event_type: &str, content: Value) -> String {
    let txn = format!("t{:016x}", rand::random::<u64>());
    let answer = client.put(&format!("/rooms/{room}/send/{event_type}/{txn}"), content).await.expect(200);
    answer["event_id"].as_str().unwrap().to_owned()
}

async fn text(client: &Client, room: &str, body: &str) -> String {
    send(client, room, json!({"msgtype": "m.text", "body": body})).await
}

/// Waits until syncapi serves `event_id` as the newest event `client` sees.
async fn settle(client: &Client, room: &str, event_id: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let answer = client.get(&format!("/rooms/{room}/messages?dir=b&limit=1")).await;
        if answer.status == 200 && answer.body["chunk"][0]["event_id"] == event_id {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "syncapi never served {event_id}: {}", answer.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ids(events: &Value) -> Vec<String> {
    events.as_array().unwrap().iter().map(|e| e["event_id"].as_str().unwrap().to_owned()).collect()
}

fn bodies(events: &Value) -> Vec<String> {
    events.as_array().unwrap().iter().filter_map(|e| e["content"]["body"].as_str().map(str::to_owned)).collect()
}

/// Every event from `from` on in direction `dir`, `limit` at a time, and the pages' sizes.
async fn paginate(client: &Client, room: &str, dir: &str, from: Option<&str>, limit: u32) -> (Vec<Value>, usize) {
    let mut events = Vec::new();
    let mut from = from.map(str::to_owned);
    let mut pages = 0;
    loop {
        let mut path = format!("/rooms/{room}/messages?dir={dir}&limit={limit}");
        if let Some(from) = &from {
            path.push_str(&format!("&from={}", enc(from)));
        }
        let page = client.get(&path).await.expect(200);
        assert!(page["chunk"].as_array().unwrap().len() <= limit as usize, "{page}");
        events.extend(page["chunk"].as_array().unwrap().iter().cloned());
        pages += 1;
        assert!(pages < 100, "pagination does not end");
        match page["end"].as_str() {
            Some(end) => from = Some(end.to_owned()),
            None => return (events, pages),
        }
    }
}

#[tokio::test]
async fn paginating_back_from_sync_to_the_creation_and_forwards_again() {
    paginating_back_and_forth(Mode::Polylith).await;
}

#[tokio::test]
async fn paginating_back_and_forth_in_the_monolith() {
    paginating_back_and_forth(Mode::Monolith).await;
}

async fn paginating_back_and_forth(mode: Mode) {
    let deployment = Deployment::start(mode).await;
    let alice = deployment.new_user().await;
    let room = create_room(&alice, json!({"preset": "public_chat", "name": "History"})).await;
    let mut last = String::new();
    for i in 0..25 {
        last = text(&alice, &room, &format!("m{i}")).await;
    }
    settle(&alice, &room, &last).await;

    let filter = json!({"room": {"timeline": {"limit": 5}}}).to_string();
    let sync = alice.get(&format!("/sync?filter={}", enc(&filter))).await.expect(200);
    let joined = &sync["rooms"]["join"][&room];
    assert_eq!(bodies(&joined["timeline"]["events"]), ["m20", "m21", "m22", "m23", "m24"], "{joined}");
    let prev_batch = joined["timeline"]["prev_batch"].as_str().unwrap();

    // Back from the timeline's start: every earlier event once, newest first, down to the creation.
    let (back, pages) = paginate(&alice, &room, "b", Some(prev_batch), 7).await;
    assert!(pages >= 4);
    let messages = bodies(&json!(back));
    let expected: Vec<String> = (0..20).rev().map(|i| format!("m{i}")).collect();
    assert_eq!(messages, expected);
    assert_eq!(back.last().unwrap()["type"], "m.room.create", "the room's first event ends the history");
    let timeline_ids = ids(&joined["timeline"]["events"]);
    assert!(back.iter().all(|e| !timeline_ids.contains(&e["event_id"].as_str().unwrap().to_owned())));
    assert!(back.iter().all(|e| e["room_id"] == room.as_str()));

    // Forwards without `from`: from the creation to the newest event.
    let (forward, _) = paginate(&alice, &room, "f", None, 9).await;
    assert_eq!(forward.first().unwrap()["type"], "m.room.create");
    let mut all_back: Vec<String> = ids(&json!(back));
    all_back.reverse();
    all_back.extend(timeline_ids);
    assert_eq!(ids(&json!(forward)), all_back, "forwards is backwards reversed, then the timeline");

    // Backwards without `from`: the newest first; the default limit is 10.
    let newest = alice.get(&format!("/rooms/{room}/messages?dir=b")).await.expect(200);
    assert_eq!(newest["chunk"].as_array().unwrap().len(), 10);
    assert_eq!(newest["chunk"][0]["event_id"], last.as_str());
    // `to` stops a page: from the newest back to the sync's prev_batch is the timeline.
    let to = alice.get(&format!("/rooms/{room}/messages?dir=b&limit=50&to={}", enc(prev_batch))).await.expect(200);
    assert_eq!(bodies(&to["chunk"]), ["m24", "m23", "m22", "m21", "m20"]);
    assert!(to.get("end").is_none(), "nothing more up to `to`: {to}");

    // Bad input is refused, never a server error.
    alice.get(&format!("/rooms/{room}/messages?dir=b&from=garbage")).await.expect_error(400, "M_INVALID_PARAM");
    alice.get(&format!("/rooms/{room}/messages?dir=sideways")).await.expect_error(400, "M_INVALID_PARAM");
    alice.get(&format!("/rooms/{room}/messages?dir=b&to=s1_-1")).await.expect_error(400, "M_INVALID_PARAM");
    let bad = alice.get(&format!("/rooms/{room}/messages?dir=b&filter=notjson")).await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    let bad = alice.get(&format!("/rooms/{room}/messages?dir=b&limit=-1")).await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    let huge = alice.get(&format!("/rooms/{room}/messages?dir=b&limit=100000")).await.expect(200);
    assert_eq!(huge["chunk"].as_array().unwrap().len(), forward.len(), "the whole room in one page");
}

#[tokio::test]
async fn filters_lazy_loading_visibility_and_redactions() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    let carol = deployment.new_user().await;
    let stranger = deployment.new_user().await;

    // "shared": a newcomer sees what was said before they joined.
    let shared = create_room(&alice, json!({"preset": "public_chat"})).await;
    text(&alice, &shared, "before bob").await;
    bob.post(&format!("/rooms/{shared}/join"), json!({})).await.expect(200);
    carol.post(&format!("/rooms/{shared}/join"), json!({})).await.expect(200);
    text(&bob, &shared, "bob speaks").await;
    let last = text(&carol, &shared, "carol speaks").await;
    settle(&alice, &shared, &last).await;
    let seen = bob.get(&format!("/rooms/{shared}/messages?dir=b&limit=50")).await.expect(200);
    assert_eq!(bodies(&seen["chunk"]), ["carol speaks", "bob speaks", "before bob"]);

    // Filters: types and senders; lazy loading gives the senders' member events only.
    let filter = json!({"types": ["m.room.message"], "not_senders": [carol.user_id], "lazy_load_members": true});
    let filtered = bob
        .get(&format!("/rooms/{shared}/messages?dir=b&limit=50&filter={}", enc(&filter.to_string())))
        .await
        .expect(200);
    assert_eq!(bodies(&filtered["chunk"]), ["bob speaks", "before bob"]);
    assert!(filtered["chunk"].as_array().unwrap().iter().all(|e| e["type"] == "m.room.message"));
    let mut members: Vec<&str> =
        filtered["state"].as_array().unwrap().iter().map(|e| e["state_key"].as_str().unwrap()).collect();
    members.sort();
    let mut senders = vec![alice.user_id.as_str(), bob.user_id.as_str()];
    senders.sort();
    assert_eq!(members, senders, "{filtered}");
    assert!(filtered["state"].as_array().unwrap().iter().all(|e| e["type"] == "m.room.member"));
    let unfiltered = bob.get(&format!("/rooms/{shared}/messages?dir=b&limit=50")).await.expect(200);
    assert!(unfiltered.get("state").is_none_or(|s| s.as_array().unwrap().is_empty()), "no lazy loading asked");
    // Messages of ignored users are left out.
    bob.put(
        &format!("/user/{}/account_data/m.ignored_user_list", enc(&bob.user_id)),
        json!({"ignored_users": {carol.user_id.clone(): {}}}),
    )
    .await
    .expect(200);
    let ignoring = bob.get(&format!("/rooms/{shared}/messages?dir=b&limit=50")).await.expect(200);
    assert_eq!(bodies(&ignoring["chunk"]), ["bob speaks", "before bob"]);
    assert!(ignoring["chunk"].as_array().unwrap().iter().any(|e| e["state_key"] == carol.user_id.as_str()));
    let wildcard = json!({"types": ["m.room.*"], "not_types": ["m.room.message"]});
    let state_only = bob
        .get(&format!("/rooms/{shared}/messages?dir=b&limit=50&filter={}", enc(&wildcard.to_string())))
        .await
        .expect(200);
    assert!(state_only["chunk"].as_array().unwrap().iter().all(|e| e["type"] != "m.room.message"));
    assert!(state_only["chunk"].as_array().unwrap().iter().any(|e| e["type"] == "m.room.create"));

    // "joined": a newcomer does not see what was said before they joined.
    let joined_only = create_room(
        &alice,
        json!({"preset": "public_chat", "initial_state": [
            {"type": "m.room.history_visibility", "state_key": "", "content": {"history_visibility": "joined"}}
        ]}),
    )
    .await;
    let secret = text(&alice, &joined_only, "before bob").await;
    bob.post(&format!("/rooms/{joined_only}/join"), json!({})).await.expect(200);
    let after = text(&alice, &joined_only, "after bob").await;
    settle(&alice, &joined_only, &after).await;
    let (seen, _) = paginate(&bob, &joined_only, "b", None, 3).await;
    assert_eq!(bodies(&json!(seen)), ["after bob"]);
    assert!(seen.iter().any(|e| e["type"] == "m.room.member" && e["state_key"] == bob.user_id.as_str()));
    assert!(seen.iter().all(|e| e["event_id"] != secret.as_str()));
    bob.get(&format!("/rooms/{joined_only}/context/{}", enc(&secret))).await.expect_error(404, "M_NOT_FOUND");
    let (alice_sees, _) = paginate(&alice, &joined_only, "b", None, 3).await;
    assert_eq!(bodies(&json!(alice_sees)), ["after bob", "before bob"]);

    // Never a member: 403, unless the room is world readable.
    stranger.get(&format!("/rooms/{shared}/messages?dir=b")).await.expect_error(403, "M_FORBIDDEN");
    stranger.get(&format!("/rooms/{joined_only}/messages?dir=f")).await.expect_error(403, "M_FORBIDDEN");
    let readable = create_room(
        &alice,
        json!({"preset": "public_chat", "initial_state": [
            {"type": "m.room.history_visibility", "state_key": "", "content": {"history_visibility": "world_readable"}}
        ]}),
    )
    .await;
    let open = text(&alice, &readable, "for everyone").await;
    settle(&alice, &readable, &open).await;
    let read = stranger.get(&format!("/rooms/{readable}/messages?dir=b")).await.expect(200);
    assert_eq!(bodies(&read["chunk"]), ["for everyone"]);

    // A member who left sees up to their leaving only.
    bob.post(&format!("/rooms/{shared}/leave"), json!({})).await.expect(200);
    let later = text(&alice, &shared, "after bob left").await;
    settle(&alice, &shared, &later).await;
    let left = bob.get(&format!("/rooms/{shared}/messages?dir=b&limit=50")).await.expect(200);
    assert_eq!(left["chunk"][0]["type"], "m.room.member", "{left}");
    assert_eq!(left["chunk"][0]["content"]["membership"], "leave");
    assert!(!bodies(&left["chunk"]).contains(&"after bob left".to_owned()));

    // Redacted events: pruned, with what redacted them.
    let doomed = text(&alice, &shared, "regrettable").await;
    let redaction =
        alice.put(&format!("/rooms/{shared}/redact/{}/r1", enc(&doomed)), json!({"reason": "oops"})).await.expect(200)
            ["event_id"]
            .as_str()
            .unwrap()
            .to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let pruned = loop {
        let page = alice.get(&format!("/rooms/{shared}/messages?dir=b&limit=5")).await.expect(200);
        let found = page["chunk"].as_array().unwrap().iter().find(|e| e["event_id"] == doomed.as_str()).cloned();
        if let Some(event) = found.filter(|e| e["unsigned"].get("redacted_because").is_some()) {
            break event;
        }
        assert!(tokio::time::Instant::now() < deadline, "never redacted: {page}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(pruned["content"], json!({}));
    assert_eq!(pruned["unsigned"]["redacted_because"]["event_id"], redaction.as_str());
    assert_eq!(pruned["unsigned"]["redacted_because"]["content"]["reason"], "oops");
}

#[tokio::test]
async fn context_around_an_event() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    let room = create_room(&alice, json!({"preset": "public_chat", "name": "Context"})).await;
    bob.post(&format!("/rooms/{room}/join"), json!({})).await.expect(200);
    let mut sent = Vec::new();
    for i in 0..9 {
        let sender = if i % 3 == 0 { &bob } else { &alice };
        sent.push(text(sender, &room, &format!("c{i}")).await);
    }
    settle(&alice, &room, &sent[8]).await;

    let context = alice.get(&format!("/rooms/{room}/context/{}?limit=4", enc(&sent[4]))).await.expect(200);
    assert_eq!(context["event"]["event_id"], sent[4].as_str());
    assert_eq!(bodies(&context["events_before"]), ["c3", "c2"], "newest first");
    assert_eq!(bodies(&context["events_after"]), ["c5", "c6"]);
    let state_types: Vec<&str> =
        context["state"].as_array().unwrap().iter().filter_map(|e| e["type"].as_str()).collect();
    assert!(state_types.contains(&"m.room.create") && state_types.contains(&"m.room.name"), "{context}");

    // The tokens go on from either end.
    let start = context["start"].as_str().unwrap();
    let older = alice.get(&format!("/rooms/{room}/messages?dir=b&limit=2&from={}", enc(start))).await.expect(200);
    assert_eq!(bodies(&older["chunk"]), ["c1", "c0"]);
    let end = context["end"].as_str().unwrap();
    let newer = alice.get(&format!("/rooms/{room}/messages?dir=f&limit=2&from={}", enc(end))).await.expect(200);
    assert_eq!(bodies(&newer["chunk"]), ["c7", "c8"]);

    // Lazy loading: the member events of the senders only; the filter applies around the event.
    let filter = json!({"lazy_load_members": true, "senders": [alice.user_id]});
    let lazy = alice
        .get(&format!("/rooms/{room}/context/{}?limit=4&filter={}", enc(&sent[3]), enc(&filter.to_string())))
        .await
        .expect(200);
    assert_eq!(lazy["event"]["content"]["body"], "c3", "the event itself is never filtered out");
    assert_eq!(bodies(&lazy["events_before"]), ["c2", "c1"]);
    assert_eq!(bodies(&lazy["events_after"]), ["c4", "c5"]);
    let members: Vec<&str> = lazy["state"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "m.room.member")
        .map(|e| e["state_key"].as_str().unwrap())
        .collect();
    assert_eq!(members, [alice.user_id.as_str()], "{lazy}");

    // Unknown events, events of other rooms and bad ids.
    alice.get(&format!("/rooms/{room}/context/{}", enc("$nothere"))).await.expect_error(404, "M_NOT_FOUND");
    let other = create_room(&alice, json!({})).await;
    let elsewhere = text(&alice, &other, "elsewhere").await;
    settle(&alice, &other, &elsewhere).await;
    alice.get(&format!("/rooms/{room}/context/{}", enc(&elsewhere))).await.expect_error(404, "M_NOT_FOUND");
    let stranger = deployment.new_user().await;
    stranger.get(&format!("/rooms/{other}/context/{}", enc(&elsewhere))).await.expect_error(403, "M_FORBIDDEN");
    let bad = alice.get(&format!("/rooms/{room}/context/{}?limit=x", enc(&sent[0]))).await;
    assert_eq!(bad.status, 400, "{}", bad.body);
}

fn thread_reply(root: &str, body: &str) -> Value {
    json!({"msgtype": "m.text", "body": body, "m.relates_to": {"rel_type": "m.thread", "event_id": root}})
}

#[tokio::test]
async fn relations_and_threads() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    let room = create_room(&alice, json!({"preset": "public_chat"})).await;
    bob.post(&format!("/rooms/{room}/join"), json!({})).await.expect(200);
    let root1 = text(&alice, &room, "root1").await;
    let root2 = text(&alice, &room, "root2").await;
    let r1a = send(&bob, &room, thread_reply(&root1, "r1a")).await;
    let r2a = send(&alice, &room, thread_reply(&root2, "r2a")).await;
    let r1b = send(&alice, &room, thread_reply(&root1, "r1b")).await;
    let reaction = send_event(
        &bob,
        &room,
        "m.reaction",
        json!({"m.relates_to": {"rel_type": "m.annotation", "event_id": root1, "key": "👍"}}),
    )
    .await;
    let edit = send(
        &alice,
        &room,
        json!({"msgtype": "m.text", "body": "* root1!", "m.new_content": {"msgtype": "m.text", "body": "root1!"},
               "m.relates_to": {"rel_type": "m.replace", "event_id": root1}}),
    )
    .await;
    // Relates to a reply, so to root1 only indirectly.
    let nested = send_event(
        &alice,
        &room,
        "m.reaction",
        json!({"m.relates_to": {"rel_type": "m.annotation", "event_id": r1a, "key": "🎉"}}),
    )
    .await;
    settle(&alice, &room, &nested).await;

    let rel = |path: &str| format!("/_matrix/client/v1/rooms/{room}/relations/{}{path}", enc(&root1));
    let all = alice.get(&rel("")).await.expect(200);
    assert_eq!(ids(&all["chunk"]), [edit.clone(), reaction.clone(), r1b.clone(), r1a.clone()], "newest first");
    assert!(all.get("next_batch").is_none());
    let threads_only = alice.get(&rel("/m.thread")).await.expect(200);
    assert_eq!(ids(&threads_only["chunk"]), [r1b.clone(), r1a.clone()]);
    let reactions = alice.get(&rel("/m.annotation/m.reaction")).await.expect(200);
    assert_eq!(ids(&reactions["chunk"]), [reaction.as_str()]);
    let none = alice.get(&rel("/m.annotation/m.room.message")).await.expect(200);
    assert!(none["chunk"].as_array().unwrap().is_empty());
    let forwards = alice.get(&rel("?dir=f")).await.expect(200);
    assert_eq!(ids(&forwards["chunk"]), [r1a.clone(), r1b.clone(), reaction.clone(), edit.clone()]);

    // Pages of two.
    let first = alice.get(&rel("?limit=2")).await.expect(200);
    assert_eq!(ids(&first["chunk"]), [edit.clone(), reaction.clone()]);
    let next = first["next_batch"].as_str().unwrap();
    let second = alice.get(&rel(&format!("?limit=2&from={}", enc(next)))).await.expect(200);
    assert_eq!(ids(&second["chunk"]), [r1b.clone(), r1a.clone()]);
    assert_eq!(second["prev_batch"], next);
    assert!(second.get("next_batch").is_none(), "{second}");

    // recurse=true: relations of relations too.
    let deep = alice.get(&rel("?recurse=true")).await.expect(200);
    assert_eq!(ids(&deep["chunk"])[0], nested);
    assert_eq!(deep["chunk"].as_array().unwrap().len(), 5);
    assert_eq!(deep["recursion_depth"], 3);
    assert!(all.get("recursion_depth").is_none());

    // A redacted relation is no relation any more.
    alice.put(&format!("/rooms/{room}/redact/{}/x1", enc(&reaction)), json!({})).await.expect(200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let left = alice.get(&rel("/m.annotation")).await.expect(200);
        if left["chunk"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the redacted reaction stays: {left}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    alice
        .get(&format!("/_matrix/client/v1/rooms/{room}/relations/{}", enc("$unknown")))
        .await
        .expect_error(404, "M_NOT_FOUND");
    alice.get(&rel("?from=nonsense")).await.expect_error(400, "M_INVALID_PARAM");

    // Threads: the latest active first, with their summaries.
    let threads = |query: &str| format!("/_matrix/client/v1/rooms/{room}/threads{query}");
    let listed = alice.get(&threads("")).await.expect(200);
    assert_eq!(ids(&listed["chunk"]), [root1.clone(), root2.clone()]);
    let summary = &listed["chunk"][0]["unsigned"]["m.relations"]["m.thread"];
    assert_eq!(summary["count"], 2, "{listed}");
    assert_eq!(summary["latest_event"]["event_id"], r1b.as_str());
    assert_eq!(summary["current_user_participated"], true);
    assert_eq!(listed["chunk"][1]["unsigned"]["m.relations"]["m.thread"]["latest_event"]["event_id"], r2a.as_str());
    let bobs = bob.get(&threads("?include=participated")).await.expect(200);
    assert_eq!(ids(&bobs["chunk"]), [root1.as_str()]);
    assert_eq!(bobs["chunk"][0]["unsigned"]["m.relations"]["m.thread"]["current_user_participated"], true);
    let page = alice.get(&threads("?limit=1")).await.expect(200);
    assert_eq!(ids(&page["chunk"]), [root1.as_str()]);
    let more = alice.get(&threads(&format!("?limit=1&from={}", enc(page["next_batch"].as_str().unwrap())))).await;
    let more = more.expect(200);
    assert_eq!(ids(&more["chunk"]), [root2.as_str()]);
    // A new reply to the older thread brings it to the front.
    let r2b = send(&bob, &room, thread_reply(&root2, "r2b")).await;
    settle(&alice, &room, &r2b).await;
    let relisted = alice.get(&threads("")).await.expect(200);
    assert_eq!(ids(&relisted["chunk"]), [root2.clone(), root1.clone()]);
    let bobs = bob.get(&threads("?include=participated")).await.expect(200);
    assert_eq!(ids(&bobs["chunk"]), [root2.clone(), root1.clone()]);
    let stranger = deployment.new_user().await;
    let private = create_room(&alice, json!({})).await;
    stranger.get(&format!("/_matrix/client/v1/rooms/{private}/threads")).await.expect_error(403, "M_FORBIDDEN");
}

#[tokio::test]
async fn timestamp_to_event_finds_the_nearest_visible_event() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    let room = create_room(
        &alice,
        json!({"preset": "public_chat", "initial_state": [
            {"type": "m.room.history_visibility", "state_key": "", "content": {"history_visibility": "joined"}}
        ]}),
    )
    .await;
    let mut sent = Vec::new();
    for i in 0..3 {
        sent.push(text(&alice, &room, &format!("t{i}")).await);
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    settle(&alice, &room, &sent[2]).await;
    let page = alice.get(&format!("/rooms/{room}/messages?dir=b&limit=3")).await.expect(200);
    let ts: Vec<i64> =
        page["chunk"].as_array().unwrap().iter().rev().map(|e| e["origin_server_ts"].as_i64().unwrap()).collect();
    let at = |ts: i64, dir: &str| format!("/_matrix/client/v1/rooms/{room}/timestamp_to_event?ts={ts}&dir={dir}");
    let found = alice.get(&at(ts[1], "f")).await.expect(200);
    assert_eq!(found["event_id"], sent[1].as_str());
    assert_eq!(found["origin_server_ts"], ts[1]);
    assert_eq!(alice.get(&at(ts[1], "b")).await.expect(200)["event_id"], sent[1].as_str());
    assert_eq!(alice.get(&at(ts[1] + 1, "b")).await.expect(200)["event_id"], sent[1].as_str());
    assert_eq!(alice.get(&at(ts[1] + 1, "f")).await.expect(200)["event_id"], sent[2].as_str());
    alice.get(&at(ts[2] + 3_600_000, "f")).await.expect_error(404, "M_NOT_FOUND");
    let create = alice.get(&at(0, "f")).await.expect(200);
    assert!(create["origin_server_ts"].as_i64().unwrap() <= ts[0]);
    alice
        .get(&format!("/_matrix/client/v1/rooms/{room}/timestamp_to_event?ts=1&dir=up"))
        .await
        .expect_error(400, "M_INVALID_PARAM");

    // Bob joined after: none of the messages before his joining are his to find.
    tokio::time::sleep(Duration::from_millis(30)).await;
    bob.post(&format!("/rooms/{room}/join"), json!({})).await.expect(200);
    let after = text(&alice, &room, "after").await;
    settle(&alice, &room, &after).await;
    // Only the room's setup, from before its visibility was "joined", is his to see then.
    let earlier = bob.get(&at(ts[2], "b")).await.expect(200);
    assert!(!sent.iter().any(|id| earlier["event_id"] == id.as_str()), "{earlier}");
    assert!(earlier["origin_server_ts"].as_i64().unwrap() < ts[0]);
    bob.get(&at(1, "b")).await.expect_error(404, "M_NOT_FOUND");
    let next = bob.get(&at(ts[0], "f")).await.expect(200);
    assert!(next["origin_server_ts"].as_i64().unwrap() > ts[2], "{next}");
    let stranger = deployment.new_user().await;
    stranger.get(&at(ts[0], "f")).await.expect_error(403, "M_FORBIDDEN");
}

/// `chunk` sorted by state key, for comparing member lists.
fn sorted_members(answer: &Value) -> Vec<Value> {
    let mut members = answer["chunk"].as_array().unwrap().clone();
    members.sort_by_key(|e| e["state_key"].as_str().unwrap().to_owned());
    members
}

#[tokio::test]
async fn member_lists_equal_clientapis() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    let carol = deployment.new_user().await;
    let dave = deployment.new_user().await;
    let stranger = deployment.new_user().await;
    alice
        .put(&format!("/profile/{}/displayname", enc(&alice.user_id)), json!({"displayname": "Alice"}))
        .await
        .expect(200);
    let room = create_room(&alice, json!({"preset": "public_chat"})).await;
    bob.post(&format!("/rooms/{room}/join"), json!({})).await.expect(200);
    let early = text(&alice, &room, "early").await;
    carol.post(&format!("/rooms/{room}/join"), json!({})).await.expect(200);
    bob.post(&format!("/rooms/{room}/leave"), json!({})).await.expect(200);
    alice.post(&format!("/rooms/{room}/invite"), json!({"user_id": dave.user_id})).await.expect(200);
    let last = text(&alice, &room, "last").await;
    settle(&alice, &room, &last).await;

    let clientapi = deployment.instance_url("clientapi-1");
    let syncapi = deployment.instance_url("syncapi-1");
    let queries = [
        String::new(),
        "?membership=join".into(),
        "?not_membership=leave".into(),
        "?membership=invite&not_membership=join".into(),
        format!("?at={}", enc(&early)),
    ];
    for who in [&alice, &bob, &carol, &stranger] {
        for query in &queries {
            let path = format!("/rooms/{room}/members{query}");
            let from_clientapi = who.at(&clientapi).get(&path).await;
            let from_syncapi = who.at(&syncapi).get(&path).await;
            assert_eq!(from_clientapi.status, from_syncapi.status, "{path} for {}", who.user_id);
            if from_clientapi.status == 200 {
                assert_eq!(sorted_members(&from_clientapi.body), sorted_members(&from_syncapi.body), "{path}");
            } else {
                assert_eq!(from_clientapi.errcode(), from_syncapi.errcode());
            }
        }
        let path = format!("/rooms/{room}/joined_members");
        let from_clientapi = who.at(&clientapi).get(&path).await;
        let from_syncapi = who.at(&syncapi).get(&path).await;
        assert_eq!((from_clientapi.status, &from_clientapi.body), (from_syncapi.status, &from_syncapi.body), "{path}");
    }
    // What the lists hold, not only that they agree.
    let members = alice.at(&syncapi).get(&format!("/rooms/{room}/members")).await.expect(200);
    let memberships: Vec<(String, String)> = sorted_members(&members)
        .iter()
        .map(|e| (e["state_key"].as_str().unwrap().to_owned(), e["content"]["membership"].as_str().unwrap().to_owned()))
        .collect();
    let mut expected = vec![
        (alice.user_id.clone(), "join".to_owned()),
        (bob.user_id.clone(), "leave".to_owned()),
        (carol.user_id.clone(), "join".to_owned()),
        (dave.user_id.clone(), "invite".to_owned()),
    ];
    expected.sort();
    assert_eq!(memberships, expected);
    let joined = alice.at(&syncapi).get(&format!("/rooms/{room}/joined_members")).await.expect(200);
    assert_eq!(joined["joined"][&alice.user_id]["display_name"], "Alice");
    // Bob, gone, sees the room as he left it: without dave's invite.
    let bobs = bob.at(&syncapi).get(&format!("/rooms/{room}/members")).await.expect(200);
    assert!(sorted_members(&bobs).iter().all(|e| e["state_key"] != dave.user_id.as_str()));
    // Only syncapi knows sync tokens: the members at the start of a timeline.
    let filter = json!({"room": {"timeline": {"limit": 1}}}).to_string();
    let sync = alice.get(&format!("/sync?filter={}", enc(&filter))).await.expect(200);
    let prev_batch = sync["rooms"]["join"][&room]["timeline"]["prev_batch"].as_str().unwrap().to_owned();
    let before_last =
        alice.at(&syncapi).get(&format!("/rooms/{room}/members?at={}", enc(&prev_batch))).await.expect(200);
    assert_eq!(sorted_members(&before_last), sorted_members(&members));
    alice.at(&syncapi).get(&format!("/rooms/{room}/members?at=s5_-1")).await.expect_error(400, "M_INVALID_PARAM");
}

#[tokio::test]
async fn an_old_token_in_a_big_room_answers_a_small_page() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let alice = deployment.new_user().await;
    let room = create_room(&alice, json!({"preset": "public_chat"})).await;
    for i in 0..5 {
        text(&alice, &room, &format!("old{i}")).await;
    }
    let settled = text(&alice, &room, "old5").await;
    settle(&alice, &room, &settled).await;
    let old_token = alice.get("/sync").await.expect(200)["next_batch"].as_str().unwrap().to_owned();
    let mut last = String::new();
    for i in 0..300 {
        last = text(&alice, &room, &format!("new{i}")).await;
    }
    settle(&alice, &room, &last).await;

    let back = alice.get(&format!("/rooms/{room}/messages?dir=b&limit=3&from={}", enc(&old_token))).await.expect(200);
    assert_eq!(bodies(&back["chunk"]), ["old5", "old4", "old3"]);
    assert!(back["end"].is_string());
    let forward =
        alice.get(&format!("/rooms/{room}/messages?dir=f&limit=3&from={}", enc(&old_token))).await.expect(200);
    assert_eq!(bodies(&forward["chunk"]), ["new0", "new1", "new2"]);
    let on = alice
        .get(&format!("/rooms/{room}/messages?dir=f&limit=2&from={}", enc(forward["end"].as_str().unwrap())))
        .await
        .expect(200);
    assert_eq!(bodies(&on["chunk"]), ["new3", "new4"]);
}
