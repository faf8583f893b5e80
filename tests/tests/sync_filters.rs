//! Filters in a sync, inline or by id: the timeline's limit, types,
//! senders, rooms and contains_url; lazy-loaded members; include_leave; and
//! the account data, presence, ephemeral and state filters.

mod sync_support;

use std::collections::BTreeSet;

use serde_json::{Value, json};
use sync_support::*;
use tests::{Deployment, Mode, client::Client, client::enc};

fn types(events: &Value) -> Vec<String> {
    events.as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap().to_owned()).collect()
}

fn senders(events: &Value) -> BTreeSet<String> {
    events.as_array().unwrap().iter().map(|e| e["sender"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn timeline_filters_select_types_senders_and_urls() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    let room = create_room(&alice, json!({"preset": "public_chat"})).await;
    join(&bob, &room).await;
    let t0 = settled_token(&bob, None, &room).await;
    send_text(&alice, &room, "a1").await;
    send_text(&bob, &room, "b1").await;
    send(&alice, &room, "m.room.message", json!({"msgtype": "m.image", "body": "pic", "url": "mxc://example.org/pic"}))
        .await;
    send(&alice, &room, "test.custom", json!({"body": "custom"})).await;
    set_state(&alice, &room, "test.s", "", json!({"v": 1})).await;
    let last = send_text(&alice, &room, "a2").await;
    token_after(&bob, Some(&t0), &last).await;

    let timeline = |timeline_filter: Value| {
        let bob = bob.clone();
        let room = room.clone();
        let t0 = t0.clone();
        async move {
            let mut definition = json!({"limit": 50});
            definition.as_object_mut().unwrap().extend(timeline_filter.as_object().unwrap().clone());
            let answer =
                sync(&bob, &format!("since={t0}&filter={}", filter(json!({"room": {"timeline": definition}})))).await;
            // A room whose every new event is filtered out may be left out.
            match answer["rooms"]["join"].get(&room) {
                Some(entry) => entry["timeline"]["events"].clone(),
                None => json!([]),
            }
        }
    };

    let events = timeline(json!({"types": ["m.room.message"]})).await;
    assert_eq!(bodies(&json!({"timeline": {"events": events}})), ["a1", "b1", "pic", "a2"], "{events}");
    let events = timeline(json!({"types": ["test.*"]})).await;
    assert_eq!(types(&events), ["test.custom", "test.s"], "{events}");
    let events = timeline(json!({"not_types": ["m.room.message"]})).await;
    assert_eq!(types(&events), ["test.custom", "test.s"], "{events}");
    let events = timeline(json!({"types": ["m.room.*"], "not_types": ["m.room.message"]})).await;
    assert_eq!(types(&events), Vec::<String>::new(), "{events}");
    let events = timeline(json!({"senders": [bob.user_id]})).await;
    assert_eq!(bodies(&json!({"timeline": {"events": events}})), ["b1"], "{events}");
    assert_eq!(senders(&events), BTreeSet::from([bob.user_id.clone()]), "{events}");
    let events = timeline(json!({"not_senders": [bob.user_id]})).await;
    assert_eq!(senders(&events), BTreeSet::from([alice.user_id.clone()]), "{events}");
    assert_eq!(events.as_array().unwrap().len(), 5, "{events}");
    let events = timeline(json!({"contains_url": true})).await;
    assert_eq!(bodies(&json!({"timeline": {"events": events}})), ["pic"], "{events}");
    let events = timeline(json!({"contains_url": false})).await;
    assert_eq!(bodies(&json!({"timeline": {"events": events}})), ["a1", "b1", "custom", "a2"], "{events}");
}

/// The limit counts the events the filter lets through, not those it drops.
#[tokio::test]
async fn the_timeline_limit_counts_matching_events() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let alice = deployment.new_user().await;
    let room = create_room(&alice, json!({"preset": "private_chat"})).await;
    let t0 = settled_token(&alice, None, &room).await;
    for i in 1..=5 {
        send_text(&alice, &room, &format!("m{i}")).await;
    }
    let mut last = String::new();
    for i in 1..=6 {
        last = set_state(&alice, &room, &format!("test.s{i}"), "", json!({})).await;
    }
    token_after(&alice, Some(&t0), &last).await;

    let messages = |limit: u32| filter(json!({"room": {"timeline": {"limit": limit, "types": ["m.room.message"]}}}));
    for since in [format!("since={t0}&"), String::new()] {
        let answer = sync(&alice, &format!("{since}filter={}", messages(3))).await;
        let entry = &answer["rooms"]["join"][&room];
        assert_eq!(bodies(entry), ["m3", "m4", "m5"], "{answer}");
        assert_eq!(entry["timeline"]["limited"], true, "{answer}");
    }
    let answer = sync(&alice, &format!("since={t0}&filter={}", messages(5))).await;
    let entry = &answer["rooms"]["join"][&room];
    assert_eq!(bodies(entry), ["m1", "m2", "m3", "m4", "m5"], "{answer}");
    assert_eq!(entry["timeline"]["limited"], false, "every matching event is there: {answer}");
}

#[tokio::test]
async fn rooms_and_not_rooms_select_rooms() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let alice = deployment.new_user().await;
    let r1 = create_room(&alice, json!({})).await;
    let r2 = create_room(&alice, json!({})).await;
    let r3 = create_room(&alice, json!({})).await;
    for room in [&r1, &r2] {
        settled_token(&alice, None, room).await;
    }
    settled_token(&alice, None, &r3).await;

    let joined =
        |answer: &Value| -> BTreeSet<String> { answer["rooms"]["join"].as_object().unwrap().keys().cloned().collect() };
    let answer =
        sync(&alice, &format!("filter={}", filter(json!({"room": {"rooms": [r1, r2], "not_rooms": [r2]}})))).await;
    assert_eq!(joined(&answer), BTreeSet::from([r1.clone()]), "{answer}");
    let answer = sync(&alice, &format!("filter={}", filter(json!({"room": {"not_rooms": [r1]}})))).await;
    assert_eq!(joined(&answer), BTreeSet::from([r2.clone(), r3.clone()]), "{answer}");
    let answer = sync(&alice, &format!("filter={}", filter(json!({"room": {"rooms": []}})))).await;
    assert_eq!(joined(&answer), BTreeSet::new(), "{answer}");
}

#[tokio::test]
async fn lazy_loading_sends_the_members_of_senders_and_heroes_only() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let alice = deployment.new_user().await;
    let room = create_room(&alice, json!({"preset": "public_chat", "name": "Lazy"})).await;
    let mut members: Vec<Client> = Vec::new();
    for _ in 0..6 {
        let member = deployment.new_user().await;
        join(&member, &room).await;
        members.push(member);
    }
    let last = send_text(&members[0], &room, "from the first member").await;
    token_after(&alice, None, &last).await;

    let lazy = filter(json!({"room": {"state": {"lazy_load_members": true}, "timeline": {"limit": 1}}}));
    let answer = sync(&alice, &format!("filter={lazy}")).await;
    let entry = &answer["rooms"]["join"][&room];
    assert_eq!(timeline_ids(entry), vec![last.clone()], "{answer}");
    let loaded: BTreeSet<String> = of_type(&entry["state"]["events"], "m.room.member", None)
        .iter()
        .map(|e| e["state_key"].as_str().unwrap().to_owned())
        .collect();
    assert!(loaded.contains(&members[0].user_id), "the sender's member event: {answer}");
    let heroes: BTreeSet<String> = entry["summary"]["m.heroes"]
        .as_array()
        .map(|list| list.iter().map(|u| u.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default();
    for hero in &heroes {
        assert!(loaded.contains(hero), "heroes' member events must be included: {answer}");
    }
    for member in &loaded {
        assert!(
            *member == alice.user_id || *member == members[0].user_id || heroes.contains(member),
            "{member} neither sent anything shown nor is a hero: {answer}"
        );
    }
    assert!(!loaded.contains(&members[5].user_id), "the sixth member is neither sender nor hero: {answer}");

    // Without lazy loading: everyone's.
    let answer = sync(&alice, &format!("filter={}", filter(json!({"room": {"timeline": {"limit": 1}}})))).await;
    let all = of_type(&answer["rooms"]["join"][&room]["state"]["events"], "m.room.member", None);
    assert_eq!(all.len(), 7, "{answer}");
}

#[tokio::test]
async fn include_leave_adds_rooms_left_to_an_initial_sync() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    let room = create_room(&alice, json!({"preset": "public_chat"})).await;
    join(&bob, &room).await;
    let t0 = settled_token(&bob, None, &room).await;
    send_text(&alice, &room, "before").await;
    leave(&bob, &room).await;
    sync_until(&bob, Some(&t0), |r| r["rooms"]["leave"].get(&room).is_some()).await;
    let after = send_text(&alice, &room, "after").await;
    token_after(&alice, None, &after).await;

    let answer = sync(&bob, "").await;
    assert!(answer["rooms"]["leave"].get(&room).is_none(), "not without include_leave: {answer}");
    let answer = sync(&bob, &format!("filter={}", filter(json!({"room": {"include_leave": true}})))).await;
    let entry = &answer["rooms"]["leave"][&room];
    let last = entry["timeline"]["events"].as_array().unwrap_or_else(|| panic!("{answer}")).last().unwrap().clone();
    assert_eq!(last["state_key"], bob.user_id.as_str(), "{answer}");
    assert_eq!(last["content"]["membership"], "leave", "{answer}");
    assert!(bodies(entry).contains(&"before".to_owned()), "{answer}");
    assert!(!timeline_ids(entry).contains(&after), "{answer}");
    assert!(answer["rooms"]["join"].get(&room).is_none(), "{answer}");
}

fn presence_of<'a>(answer: &'a Value, user: &str) -> Option<&'a Value> {
    answer["presence"]["events"].as_array().unwrap().iter().find(|e| e["sender"] == user)
}

#[tokio::test]
async fn account_data_presence_ephemeral_and_state_filters_apply_inline_and_by_id() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    let room = create_room(&alice, json!({"preset": "public_chat", "name": "Filtered"})).await;
    join(&bob, &room).await;
    let message = send_text(&alice, &room, "read me").await;
    let user_data = |t: &str| format!("/user/{}/account_data/{t}", enc(&bob.user_id));
    let room_data = |t: &str| format!("/user/{}/rooms/{}/account_data/{t}", enc(&bob.user_id), enc(&room));
    bob.put(&user_data("test.one"), json!({"n": 1})).await.expect(200);
    bob.put(&user_data("test.two"), json!({"n": 2})).await.expect(200);
    bob.put(&room_data("test.r1"), json!({"n": 1})).await.expect(200);
    bob.put(&room_data("test.r2"), json!({"n": 2})).await.expect(200);
    alice.put(&format!("/presence/{}/status", enc(&alice.user_id)), json!({"presence": "online"})).await.expect(200);
    alice.post(&format!("/rooms/{}/receipt/m.read/{}", enc(&room), enc(&message)), json!({})).await.expect(200);
    alice
        .put(
            &format!("/rooms/{}/typing/{}", enc(&room), enc(&alice.user_id)),
            json!({"typing": true, "timeout": 30000}),
        )
        .await
        .expect(200);
    // Everything has arrived once an unfiltered sync has it all.
    sync_until(&bob, None, |r| {
        let entry = &r["rooms"]["join"][&room];
        r["account_data"]["events"].as_array().unwrap().len() >= 2
            && entry["account_data"]["events"].as_array().is_some_and(|e| e.len() == 2)
            && entry["ephemeral"]["events"].as_array().is_some_and(|e| e.len() == 2)
            && presence_of(r, &alice.user_id).is_some()
    })
    .await;

    let definition = json!({
        "account_data": {"types": ["test.one"]},
        "presence": {"not_senders": [alice.user_id]},
        "room": {
            "account_data": {"not_types": ["test.r1"]},
            "ephemeral": {"not_types": ["m.typing"]},
            "state": {"types": ["m.room.name"]},
            "timeline": {"limit": 1},
        },
    });
    let inline = sync(&bob, &format!("filter={}", filter(definition.clone()))).await;
    let check = |answer: &Value| {
        let entry = &answer["rooms"]["join"][&room];
        assert_eq!(types(&answer["account_data"]["events"]), ["test.one"], "{answer}");
        assert!(presence_of(answer, &alice.user_id).is_none(), "{answer}");
        assert_eq!(entry["account_data"]["events"], json!([{"type": "test.r2", "content": {"n": 2}}]), "{answer}");
        assert_eq!(types(&entry["ephemeral"]["events"]), ["m.receipt"], "{answer}");
        assert_eq!(types(&entry["state"]["events"]), ["m.room.name"], "{answer}");
    };
    check(&inline);

    // The same filter, uploaded: the same answer.
    let uploaded = bob.post(&format!("/user/{}/filter", enc(&bob.user_id)), definition).await.expect(200);
    let id = uploaded["filter_id"].as_str().unwrap();
    let by_id = sync(&bob, &format!("filter={}", enc(id))).await;
    check(&by_id);
    assert_eq!(without_ages(by_id), without_ages(inline));

    // The other way round.
    let definition = json!({
        "account_data": {"not_types": ["test.one"]},
        "presence": {"senders": [alice.user_id]},
        "room": {"ephemeral": {"types": ["m.typing"]}, "account_data": {"types": ["test.r1"]}, "timeline": {"limit": 1}},
    });
    let answer = sync(&bob, &format!("filter={}", filter(definition))).await;
    let entry = &answer["rooms"]["join"][&room];
    let global = types(&answer["account_data"]["events"]);
    assert!(global.contains(&"test.two".to_owned()) && !global.contains(&"test.one".to_owned()), "{answer}");
    assert_eq!(presence_of(&answer, &alice.user_id).unwrap()["content"]["presence"], "online", "{answer}");
    assert_eq!(entry["ephemeral"]["events"], json!([{"type": "m.typing", "content": {"user_ids": [alice.user_id]}}]));
    assert_eq!(entry["account_data"]["events"], json!([{"type": "test.r1", "content": {"n": 1}}]), "{answer}");
}
