//! Creating rooms and sending events over HTTP: `/createRoom` with each
//! preset and option, `/send` and its transaction ids (also across two
//! clientapi instances), state in and out, single events and who may see
//! them, redactions, room upgrades, and the errors of each.

use serde_json::{Value, json};
use tests::{
    Deployment, Mode,
    client::{Client, enc},
};

async fn create_room(client: &Client, body: Value) -> String {
    let answer = client.post("/createRoom", body).await.expect(200);
    answer["room_id"].as_str().expect("a room id").to_owned()
}

fn state_path(room_id: &str, event_type: &str, state_key: &str) -> String {
    format!("/rooms/{}/state/{event_type}/{}", enc(room_id), enc(state_key))
}

async fn state(client: &Client, room_id: &str, event_type: &str, state_key: &str) -> Value {
    client.get(&state_path(room_id, event_type, state_key)).await.expect(200)
}

async fn send(client: &Client, room_id: &str, txn: &str, content: Value) -> String {
    let answer = client.put(&format!("/rooms/{}/send/m.room.message/{txn}", enc(room_id)), content).await;
    answer.expect(200)["event_id"].as_str().expect("an event id").to_owned()
}

async fn join(client: &Client, room_id: &str) {
    client.post(&format!("/rooms/{}/join", enc(room_id)), json!({})).await.expect(200);
}

fn text(body: &str) -> Value {
    json!({"msgtype": "m.text", "body": body})
}

async fn create_room_presets_and_options(mode: Mode) {
    let deployment = Deployment::start(mode).await;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    let server = &deployment.server_name;

    // A public room with every option.
    let room = create_room(
        &alice,
        json!({
            "visibility": "public",
            "preset": "public_chat",
            "room_alias_name": "pub",
            "name": "The Pub",
            "topic": "All about happy hour",
            "creation_content": {"m.federate": false, "creator": "@mallory:example.org", "room_version": "1"},
            "initial_state": [{"type": "org.example.custom", "state_key": "k", "content": {"v": 1}}],
            "power_level_content_override": {"kick": 60},
        }),
    )
    .await;
    assert!(room.starts_with('!') && room.ends_with(&format!(":{server}")), "{room}");
    let create = state(&alice, &room, "m.room.create", "").await;
    assert_eq!(create["creator"], alice.user_id.as_str(), "the server sets the creator: {create}");
    assert_eq!(create["room_version"], deployment.config.roomserver.default_room_version.as_str());
    assert_eq!(create["m.federate"], false);
    assert_eq!(state(&alice, &room, "m.room.join_rules", "").await, json!({"join_rule": "public"}));
    assert_eq!(state(&alice, &room, "m.room.history_visibility", "").await["history_visibility"], "shared");
    assert_eq!(state(&alice, &room, "m.room.guest_access", "").await["guest_access"], "forbidden");
    assert_eq!(state(&alice, &room, "m.room.name", "").await["name"], "The Pub");
    let topic = state(&alice, &room, "m.room.topic", "").await;
    assert_eq!(topic["topic"], "All about happy hour");
    assert_eq!(topic["m.topic"]["m.text"][0]["mimetype"], "text/plain");
    assert_eq!(state(&alice, &room, "m.room.canonical_alias", "").await["alias"], format!("#pub:{server}"));
    assert_eq!(state(&alice, &room, "org.example.custom", "k").await, json!({"v": 1}));
    let levels = state(&alice, &room, "m.room.power_levels", "").await;
    assert_eq!(levels["kick"], 60, "the override applies: {levels}");
    assert_eq!(levels["users"][&alice.user_id], 100);
    assert_eq!(levels["invite"], 50);
    let member = state(&alice, &room, "m.room.member", &alice.user_id).await;
    assert_eq!(member["membership"], "join");
    // The whole state, in client format.
    let all = alice.get(&format!("/rooms/{}/state", enc(&room))).await.expect(200);
    let all = all.as_array().expect("a list of events");
    for kind in ["m.room.create", "m.room.member", "m.room.power_levels", "m.room.join_rules", "m.room.name"] {
        let event = all.iter().find(|e| e["type"] == kind).unwrap_or_else(|| panic!("no {kind} in {all:?}"));
        assert_eq!(event["room_id"], room.as_str());
        assert!(event["event_id"].as_str().is_some_and(|id| id.starts_with('$')), "{event}");
        assert!(event.get("auth_events").is_none() && event.get("hashes").is_none(), "client format: {event}");
    }
    // Published in the directory, as asked.
    let listed = alice.get(&format!("/directory/list/room/{}", enc(&room))).await.expect(200);
    assert_eq!(listed["visibility"], "public");
    // The alias is taken now.
    alice.post("/createRoom", json!({"room_alias_name": "pub"})).await.expect_error(400, "M_ROOM_IN_USE");
    alice.post("/createRoom", json!({"room_alias_name": "bad:alias"})).await.expect_error(400, "M_INVALID_PARAM");
    alice.post("/createRoom", json!({"room_alias_name": "has space"})).await.expect_error(400, "M_INVALID_PARAM");

    // private_chat with an invite: invite-only, guests may join, anyone may invite.
    let private = create_room(
        &alice,
        json!({"preset": "private_chat", "invite": [bob.user_id], "is_direct": true, "name": "DM"}),
    )
    .await;
    assert_eq!(state(&alice, &private, "m.room.join_rules", "").await["join_rule"], "invite");
    assert_eq!(state(&alice, &private, "m.room.guest_access", "").await["guest_access"], "can_join");
    assert_eq!(state(&alice, &private, "m.room.history_visibility", "").await["history_visibility"], "shared");
    let invite = state(&alice, &private, "m.room.member", &bob.user_id).await;
    assert_eq!((&invite["membership"], &invite["is_direct"]), (&json!("invite"), &json!(true)), "{invite}");
    let levels = state(&alice, &private, "m.room.power_levels", "").await;
    assert_eq!(levels["invite"], 0);
    assert!(levels["users"].get(&bob.user_id).is_none(), "only the creator is privileged: {levels}");

    // trusted_private_chat: invitees get the creator's power.
    let trusted = create_room(&alice, json!({"preset": "trusted_private_chat", "invite": [bob.user_id]})).await;
    let levels = state(&alice, &trusted, "m.room.power_levels", "").await;
    assert_eq!(levels["users"][&bob.user_id], 100, "{levels}");

    // Without a preset, visibility decides: private → private_chat, and not published.
    let default = create_room(&alice, json!({})).await;
    let listed = alice.get(&format!("/directory/list/room/{}", enc(&default))).await.expect(200);
    assert_eq!(listed["visibility"], "private");
    assert_eq!(state(&alice, &default, "m.room.join_rules", "").await["join_rule"], "invite");
    assert_eq!(state(&alice, &default, "m.room.create", "").await["room_version"], "10");

    // initial_state takes precedence over the preset, name over initial_state.
    let room = create_room(
        &alice,
        json!({
            "preset": "public_chat",
            "name": "Given name",
            "room_version": "9",
            "initial_state": [
                {"type": "m.room.join_rules", "content": {"join_rule": "invite"}},
                {"type": "m.room.name", "state_key": "", "content": {"name": "Overridden"}},
                {"type": "m.room.power_levels", "content": {"users": {alice.user_id.clone(): 100}, "ban": 77}},
            ],
        }),
    )
    .await;
    assert_eq!(state(&alice, &room, "m.room.join_rules", "").await["join_rule"], "invite");
    assert_eq!(state(&alice, &room, "m.room.name", "").await["name"], "Given name");
    assert_eq!(state(&alice, &room, "m.room.power_levels", "").await["ban"], 77);
    assert_eq!(state(&alice, &room, "m.room.create", "").await["room_version"], "9");

    // Errors.
    alice.post("/createRoom", json!({"room_version": "99"})).await.expect_error(400, "M_UNSUPPORTED_ROOM_VERSION");
    alice.post("/createRoom", json!({"preset": "bogus_chat"})).await.expect_error(400, "M_INVALID_PARAM");
    alice.post("/createRoom", json!({"invite": ["not-a-user"]})).await.expect_error(400, "M_BAD_JSON");
    alice.post("/createRoom", json!({"initial_state": [{"type": "x.y"}]})).await.expect_error(400, "M_BAD_JSON");
    alice.post("/createRoom", json!({"initial_state": [{"content": {}}]})).await.expect_error(400, "M_BAD_JSON");
    alice
        .post("/createRoom", json!({"initial_state": [{"type": "m.room.create", "content": {}}]}))
        .await
        .expect_error(400, "M_INVALID_PARAM");
    alice.post("/createRoom", json!({"creation_content": []})).await.expect_error(400, "M_BAD_JSON");
    alice
        .post("/createRoom", json!({"name": "float", "initial_state": [{"type": "x.y", "content": {"f": 1.5}}]}))
        .await
        .expect_error(400, "M_BAD_JSON");
    // A member event for someone else is not the creator's to send.
    alice
        .post(
            "/createRoom",
            json!({"initial_state": [{"type": "m.room.member", "state_key": bob.user_id, "content": {"membership": "join"}}]}),
        )
        .await
        .expect_error(403, "M_FORBIDDEN");
    let not_json = reqwest::Client::new()
        .post(format!("{}/_matrix/client/v3/createRoom", deployment.base_url))
        .bearer_auth(alice.access_token.as_deref().unwrap())
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);
    deployment.client().post("/createRoom", json!({})).await.expect_error(401, "M_MISSING_TOKEN");
}

async fn room_version_12_rooms(mode: Mode) {
    let deployment = Deployment::start(mode).await;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;

    let room =
        create_room(&alice, json!({"room_version": "12", "preset": "trusted_private_chat", "invite": [bob.user_id]}))
            .await;
    assert!(room.starts_with('!') && !room.contains(':'), "a room id from the create event's hash: {room}");
    let create = alice.get(&format!("{}?format=event", state_path(&room, "m.room.create", ""))).await.expect(200);
    assert_eq!(create["event_id"].as_str().unwrap()[1..], room[1..], "the room id is the create event's: {create}");
    assert_eq!(create["sender"], alice.user_id.as_str());
    assert_eq!(create["content"]["room_version"], "12");
    assert_eq!(create["content"]["additional_creators"], json!([bob.user_id]), "{create}");
    assert!(create["content"].get("creator").is_none(), "{create}");
    let levels = state(&alice, &room, "m.room.power_levels", "").await;
    assert!(levels["users"].get(&alice.user_id).is_none(), "creators are not listed: {levels}");
    assert!(levels["users"].get(&bob.user_id).is_none(), "creators are not listed: {levels}");
    assert_eq!(levels["events"]["m.room.tombstone"], 150);

    let all = alice.get(&format!("/rooms/{}/state", enc(&room))).await.expect(200);
    let create = all.as_array().unwrap().iter().find(|e| e["type"] == "m.room.create").expect("a create event").clone();
    assert_eq!(create["room_id"], room.as_str(), "{create}");

    let event_id = send(&alice, &room, "v12", text("hello")).await;
    let event = alice.get(&format!("/rooms/{}/event/{}", enc(&room), enc(&event_id))).await.expect(200);
    assert_eq!(event["content"]["body"], "hello");
    assert_eq!(event["room_id"], room.as_str());

    alice
        .post("/createRoom", json!({"room_version": "12", "creation_content": {"additional_creators": ["nobody"]}}))
        .await
        .expect_error(400, "M_INVALID_PARAM");
    // Creators cannot be listed in the power levels.
    alice
        .post(
            "/createRoom",
            json!({"room_version": "12", "power_level_content_override": {"users": {alice.user_id.clone(): 100}}}),
        )
        .await
        .expect_error(403, "M_FORBIDDEN");
}

async fn send_and_transaction_ids(mode: Mode) {
    let deployment = Deployment::start(mode).await;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    let room = create_room(&alice, json!({"preset": "public_chat"})).await;

    let first = send(&alice, &room, "txn1", text("one")).await;
    let event = alice.get(&format!("/rooms/{}/event/{}", enc(&room), enc(&first))).await.expect(200);
    assert_eq!((&event["sender"], &event["content"]["body"]), (&json!(alice.user_id), &json!("one")), "{event}");
    assert_eq!(event["type"], "m.room.message");
    // A repeat is the same event; another txn id is another event.
    assert_eq!(send(&alice, &room, "txn1", text("one again")).await, first);
    let second = send(&alice, &room, "txn2", text("two")).await;
    assert_ne!(second, first);
    // Transaction ids belong to a device.
    let other_device = deployment.client().login(&alice.user_id, tests::client::PASSWORD).await;
    assert_ne!(send(&other_device, &room, "txn1", text("one")).await, first);

    // The same transaction on both clientapi instances, one after the other and at once.
    let (one, two) = match mode {
        Mode::Polylith => {
            (alice.at(&deployment.instance_url("clientapi-1")), alice.at(&deployment.instance_url("clientapi-2")))
        }
        Mode::Monolith => (alice.clone(), alice.clone()),
    };
    let id = send(&one, &room, "across", text("across")).await;
    assert_eq!(send(&two, &room, "across", text("across")).await, id);
    for n in 0..3 {
        let txn = format!("race{n}");
        let (a, b) = tokio::join!(send(&one, &room, &txn, text("race")), send(&two, &room, &txn, text("race")));
        assert_eq!(a, b, "concurrent repeats of {txn} answer the same event");
    }

    // A refused event leaves nothing behind: the retry after joining is sent.
    let path = format!("/rooms/{}/send/m.room.message/retry", enc(&room));
    bob.put(&path, text("too early")).await.expect_error(403, "M_FORBIDDEN");
    bob.put(&path, text("too early")).await.expect_error(403, "M_FORBIDDEN");
    join(&bob, &room).await;
    let retried = send(&bob, &room, "retry", text("now")).await;
    let event = alice.get(&format!("/rooms/{}/event/{}", enc(&room), enc(&retried))).await.expect(200);
    assert_eq!(event["content"]["body"], "now");

    // Errors.
    let server = &deployment.server_name;
    alice
        .put(&format!("/rooms/{}/send/m.room.message/t", enc(&format!("!unknown:{server}"))), text("x"))
        .await
        .expect_error(404, "M_NOT_FOUND");
    alice.put("/rooms/not-a-room/send/m.room.message/t", text("x")).await.expect_error(400, "M_INVALID_PARAM");
    let big = "x".repeat(70_000);
    alice
        .put(&format!("/rooms/{}/send/m.room.message/big", enc(&room)), text(&big))
        .await
        .expect_error(413, "M_TOO_LARGE");
    // Just under the body limit of the content, but over the limit once an event.
    let edge = "x".repeat(65_400);
    alice
        .put(&format!("/rooms/{}/send/m.room.message/edge", enc(&room)), text(&edge))
        .await
        .expect_error(413, "M_TOO_LARGE");
    alice
        .put(&format!("/rooms/{}/send/m.room.message/arr", enc(&room)), json!([1]))
        .await
        .expect_error(400, "M_BAD_JSON");
    alice
        .put(&format!("/rooms/{}/send/m.room.message/float", enc(&room)), json!({"body": 1.5}))
        .await
        .expect_error(400, "M_BAD_JSON");
    let not_json = reqwest::Client::new()
        .put(format!("{}/_matrix/client/v3/rooms/{}/send/m.room.message/nj", deployment.base_url, enc(&room)))
        .bearer_auth(alice.access_token.as_deref().unwrap())
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);
    deployment
        .client()
        .put(&format!("/rooms/{}/send/m.room.message/anon", enc(&room)), text("x"))
        .await
        .expect_error(401, "M_MISSING_TOKEN");

    // Odd events are refused as the spec says, never with a server error.
    alice.put(&format!("/rooms/{}/send/m.room.create/c", enc(&room)), json!({})).await.expect_error(403, "M_FORBIDDEN");
    alice
        .put(&state_path(&room, "m.room.create", ""), json!({"room_version": "10"}))
        .await
        .expect_error(403, "M_FORBIDDEN");
    for (path, body) in [
        (format!("/rooms/{}/send/m.room.redaction/r", enc(&room)), json!({})),
        (format!("/rooms/{}/send/m.room.redaction/r2", enc(&room)), json!({"redacts": 5})),
        (state_path(&room, "m.room.member", "not-a-user"), json!({"membership": "join"})),
        (state_path(&room, "m.room.member", &bob.user_id), json!({"membership": "sideways"})),
        (state_path(&room, "m.room.member", &alice.user_id), json!({})),
        (state_path(&room, "m.room.power_levels", ""), json!({"users": {"not-a-user": 5}, "ban": "many"})),
        (state_path(&room, "m.room.join_rules", ""), json!({"join_rule": 7})),
    ] {
        let answer = alice.put(&path, body.clone()).await;
        assert!((400..500).contains(&answer.status) || answer.status == 200, "{path} {body}: {answer:?}");
    }
    for path in ["/rooms/bad/event/$x", "/rooms/bad/state", "/rooms/bad/redact/$x/t"] {
        let answer = if path.contains("redact") { alice.put(path, json!({})).await } else { alice.get(path).await };
        answer.expect_error(400, "M_INVALID_PARAM");
    }
    alice.post("/rooms/bad/upgrade", json!({"new_version": "11"})).await.expect_error(400, "M_INVALID_PARAM");

    // Not enough power to talk.
    let quiet =
        create_room(&alice, json!({"preset": "public_chat", "power_level_content_override": {"events_default": 50}}))
            .await;
    join(&bob, &quiet).await;
    bob.put(&format!("/rooms/{}/send/m.room.message/q", enc(&quiet)), text("hi"))
        .await
        .expect_error(403, "M_FORBIDDEN");
    send(&alice, &quiet, "q", text("I may")).await;
}

async fn room_state_in_and_out(mode: Mode) {
    let deployment = Deployment::start(mode).await;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    let carol = deployment.new_user().await;
    let server = &deployment.server_name;
    let room = create_room(&alice, json!({"preset": "public_chat", "name": "Before"})).await;

    // Empty state keys: with the slash, without it, and percent-encoded as nothing.
    let put = alice.put(&format!("/rooms/{}/state/m.room.name", enc(&room)), json!({"name": "One"})).await;
    assert!(put.expect(200)["event_id"].as_str().is_some());
    assert_eq!(alice.get(&format!("/rooms/{}/state/m.room.name", enc(&room))).await.expect(200)["name"], "One");
    alice.put(&format!("/rooms/{}/state/m.room.name/", enc(&room)), json!({"name": "Two"})).await.expect(200);
    assert_eq!(alice.get(&format!("/rooms/{}/state/m.room.name/", enc(&room))).await.expect(200)["name"], "Two");
    let event = alice.get(&format!("/rooms/{}/state/m.room.name/?format=event", enc(&room))).await.expect(200);
    assert_eq!((&event["state_key"], &event["sender"]), (&json!(""), &json!(alice.user_id)), "{event}");
    assert_eq!(event["content"]["name"], "Two");

    // State keys of users: one's own, never another's.
    let mine = state_path(&room, "org.example.profile", &alice.user_id);
    alice.put(&mine, json!({"colour": "red"})).await.expect(200);
    assert_eq!(alice.get(&mine).await.expect(200), json!({"colour": "red"}));
    alice
        .put(&state_path(&room, "org.example.profile", &bob.user_id), json!({"colour": "blue"}))
        .await
        .expect_error(403, "M_FORBIDDEN");

    // Missing state, unknown and malformed rooms, bad bodies.
    alice.get(&state_path(&room, "m.room.topic", "")).await.expect_error(404, "M_NOT_FOUND");
    alice.get(&state_path(&room, "org.example.profile", &bob.user_id)).await.expect_error(404, "M_NOT_FOUND");
    let unknown = format!("!nowhere:{server}");
    alice.get(&state_path(&unknown, "m.room.name", "")).await.expect_error(403, "M_FORBIDDEN");
    alice.get(&format!("/rooms/{}/state", enc(&unknown))).await.expect_error(403, "M_FORBIDDEN");
    alice.put(&state_path(&unknown, "m.room.name", ""), json!({"name": "x"})).await.expect_error(404, "M_NOT_FOUND");
    alice.get("/rooms/nonsense/state").await.expect_error(400, "M_INVALID_PARAM");
    alice.put(&state_path(&room, "m.room.name", ""), json!("a string")).await.expect_error(400, "M_BAD_JSON");
    alice
        .put(&state_path(&room, "m.room.canonical_alias", ""), json!({"alias": format!("#missing:{server}")}))
        .await
        .expect_error(400, "M_BAD_ALIAS");
    alice
        .put(&state_path(&room, "m.room.canonical_alias", ""), json!({"alias": "not an alias"}))
        .await
        .expect_error(400, "M_INVALID_PARAM");
    alice
        .put(&state_path(&room, "org.example.big", ""), json!({"data": "y".repeat(70_000)}))
        .await
        .expect_error(413, "M_TOO_LARGE");

    // Those never in the room see nothing; members without power change nothing.
    carol.get(&format!("/rooms/{}/state", enc(&room))).await.expect_error(403, "M_FORBIDDEN");
    carol.get(&state_path(&room, "m.room.name", "")).await.expect_error(403, "M_FORBIDDEN");
    carol.put(&state_path(&room, "m.room.name", ""), json!({"name": "x"})).await.expect_error(403, "M_FORBIDDEN");
    join(&bob, &room).await;
    bob.put(&state_path(&room, "m.room.name", ""), json!({"name": "Bob's"})).await.expect_error(403, "M_FORBIDDEN");
    bob.put(&state_path(&room, "m.room.power_levels", ""), json!({"users": {bob.user_id.clone(): 100}}))
        .await
        .expect_error(403, "M_FORBIDDEN");
    assert_eq!(state(&bob, &room, "m.room.name", "").await["name"], "Two");

    // Who left sees the room as it was when they left.
    bob.post(&format!("/rooms/{}/leave", enc(&room)), json!({})).await.expect(200);
    alice.put(&state_path(&room, "m.room.name", ""), json!({"name": "After"})).await.expect(200);
    assert_eq!(state(&bob, &room, "m.room.name", "").await["name"], "Two");
    let all = bob.get(&format!("/rooms/{}/state", enc(&room))).await.expect(200);
    let name = all.as_array().unwrap().iter().find(|e| e["type"] == "m.room.name").expect("a name").clone();
    assert_eq!(name["content"]["name"], "Two");
    let member = all
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "m.room.member" && e["state_key"] == bob.user_id.as_str())
        .expect("bob's member event")
        .clone();
    assert_eq!(member["content"]["membership"], "leave");
    assert_eq!(state(&alice, &room, "m.room.name", "").await["name"], "After");
    // Once forgotten, not even that.
    bob.post(&format!("/rooms/{}/forget", enc(&room)), json!({})).await.expect(200);
    bob.get(&format!("/rooms/{}/state", enc(&room))).await.expect_error(403, "M_FORBIDDEN");
    bob.get(&state_path(&room, "m.room.name", "")).await.expect_error(403, "M_FORBIDDEN");
}

async fn single_events_and_redactions(mode: Mode) {
    let deployment = Deployment::start(mode).await;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    let carol = deployment.new_user().await;
    let room = create_room(
        &alice,
        json!({"preset": "public_chat", "initial_state": [
            {"type": "m.room.history_visibility", "content": {"history_visibility": "joined"}}
        ]}),
    )
    .await;
    let event_path = |room: &str, id: &str| format!("/rooms/{}/event/{}", enc(room), enc(id));

    let early = send(&alice, &room, "early", text("before bob")).await;
    join(&bob, &room).await;
    let later = send(&alice, &room, "later", text("after bob")).await;
    assert_eq!(alice.get(&event_path(&room, &early)).await.expect(200)["content"]["body"], "before bob");
    // History visibility "joined": what was sent before bob joined stays hidden.
    bob.get(&event_path(&room, &early)).await.expect_error(404, "M_NOT_FOUND");
    assert_eq!(bob.get(&event_path(&room, &later)).await.expect(200)["content"]["body"], "after bob");
    carol.get(&event_path(&room, &later)).await.expect_error(404, "M_NOT_FOUND");
    alice.get(&event_path(&room, "$unknownevent")).await.expect_error(404, "M_NOT_FOUND");
    let other = create_room(&alice, json!({})).await;
    alice.get(&event_path(&other, &later)).await.expect_error(404, "M_NOT_FOUND");
    alice.get(&format!("/rooms/{}/event/not-an-event-id", enc(&room))).await.expect_error(400, "M_INVALID_PARAM");

    // Redactions: one's own events, others' only with the power to.
    let bobs = send(&bob, &room, "b1", text("bob's")).await;
    let redact_path = |id: &str, txn: &str| format!("/rooms/{}/redact/{}/{txn}", enc(&room), enc(id));
    bob.put(&redact_path(&later, "r1"), json!({})).await.expect_error(403, "M_FORBIDDEN");
    let own = bob.put(&redact_path(&bobs, "r2"), json!({"reason": "typo"})).await.expect(200);
    let own = own["event_id"].as_str().unwrap().to_owned();
    assert_eq!(bob.put(&redact_path(&bobs, "r2"), json!({"reason": "typo"})).await.expect(200)["event_id"], own);
    let redaction = alice.get(&event_path(&room, &own)).await.expect(200);
    assert_eq!(redaction["type"], "m.room.redaction");
    assert_eq!(redaction["content"]["reason"], "typo");
    let bobs2 = send(&bob, &room, "b2", text("another")).await;
    alice.put(&redact_path(&bobs2, "r3"), json!({})).await.expect(200);
    alice.put(&redact_path("$nosuchevent", "r4"), json!({})).await.expect_error(404, "M_NOT_FOUND");
    alice.put(&redact_path(&later, "r5"), json!({"reason": 5})).await.expect_error(400, "M_BAD_JSON");
    carol.put(&redact_path(&later, "r6"), json!({})).await.expect_error(403, "M_FORBIDDEN");
    // Redacted events are served pruned.
    let pruned = alice.get(&event_path(&room, &bobs)).await.expect(200);
    assert_eq!(pruned["content"], json!({}), "{pruned}");

    // History visibility "shared": who joined after an event sees it, also
    // once they left, but nothing sent after they left.
    let shared = create_room(&alice, json!({"preset": "public_chat"})).await;
    let before = send(&alice, &shared, "s1", text("before carol")).await;
    join(&carol, &shared).await;
    assert_eq!(carol.get(&event_path(&shared, &before)).await.expect(200)["content"]["body"], "before carol");
    carol.post(&format!("/rooms/{}/leave", enc(&shared)), json!({})).await.expect(200);
    let after = send(&alice, &shared, "s2", text("after carol")).await;
    assert_eq!(carol.get(&event_path(&shared, &before)).await.expect(200)["content"]["body"], "before carol");
    carol.get(&event_path(&shared, &after)).await.expect_error(404, "M_NOT_FOUND");
    // Her own leave event she sees.
    let leave = alice.get(&format!("{}?format=event", state_path(&shared, "m.room.member", &carol.user_id))).await;
    let leave = leave.expect(200)["event_id"].as_str().unwrap().to_owned();
    assert_eq!(carol.get(&event_path(&shared, &leave)).await.expect(200)["content"]["membership"], "leave");

    // An event of another room is not this room's to redact (400, as Synapse).
    let elsewhere = send(&alice, &other, "e", text("elsewhere")).await;
    alice.put(&redact_path(&elsewhere, "r7"), json!({})).await.expect_error(400, "M_INVALID_PARAM");
}

async fn room_upgrades(mode: Mode) {
    let deployment = Deployment::start(mode).await;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    let server = &deployment.server_name;
    let room = create_room(
        &alice,
        json!({
            "preset": "public_chat",
            "room_alias_name": "upgrademe",
            "name": "Old name",
            "topic": "Old topic",
            "room_version": "10",
            "initial_state": [
                {"type": "m.room.history_visibility", "content": {"history_visibility": "world_readable"}},
                {"type": "m.room.pinned_events", "content": {"pinned": []}},
                {"type": "m.room.avatar", "content": {"url": format!("mxc://{server}/avatar")}},
            ],
            "power_level_content_override": {"users": {alice.user_id.clone(): 100, bob.user_id.clone(): 10}},
        }),
    )
    .await;
    join(&bob, &room).await;
    let upgrade_path = format!("/rooms/{}/upgrade", enc(&room));

    alice.post(&upgrade_path, json!({"new_version": "99"})).await.expect_error(400, "M_UNSUPPORTED_ROOM_VERSION");
    bob.post(&upgrade_path, json!({"new_version": "11"})).await.expect_error(403, "M_FORBIDDEN");
    alice.post(&upgrade_path, json!({})).await.expect_error(400, "M_BAD_JSON");
    alice
        .post(&format!("/rooms/{}/upgrade", enc(&format!("!gone:{server}"))), json!({"new_version": "11"}))
        .await
        .expect_error(404, "M_NOT_FOUND");

    let answer = alice.post(&upgrade_path, json!({"new_version": "11"})).await.expect(200);
    let new_room = answer["replacement_room"].as_str().expect("a replacement room").to_owned();
    assert_ne!(new_room, room);
    let create = state(&alice, &new_room, "m.room.create", "").await;
    assert_eq!(create["predecessor"]["room_id"], room.as_str(), "{create}");
    assert_eq!(create["room_version"], "11");
    assert_eq!(state(&alice, &new_room, "m.room.name", "").await["name"], "Old name");
    assert_eq!(state(&alice, &new_room, "m.room.topic", "").await["topic"], "Old topic");
    assert_eq!(state(&alice, &new_room, "m.room.join_rules", "").await["join_rule"], "public");
    assert_eq!(state(&alice, &new_room, "m.room.history_visibility", "").await["history_visibility"], "world_readable");
    assert_eq!(state(&alice, &new_room, "m.room.pinned_events", "").await, json!({"pinned": []}));
    assert_eq!(state(&alice, &new_room, "m.room.avatar", "").await["url"], format!("mxc://{server}/avatar"));
    assert_eq!(state(&alice, &new_room, "m.room.canonical_alias", "").await["alias"], format!("#upgrademe:{server}"));
    let levels = state(&alice, &new_room, "m.room.power_levels", "").await;
    assert_eq!(levels["users"][&bob.user_id], 10, "{levels}");
    // The alias moved.
    let resolved = alice.get(&format!("/directory/room/{}", enc(&format!("#upgrademe:{server}")))).await.expect(200);
    assert_eq!(resolved["room_id"], new_room.as_str());
    // The old room points to the new one, and is quiet.
    let tombstone = state(&alice, &room, "m.room.tombstone", "").await;
    assert_eq!(tombstone["replacement_room"], new_room.as_str());
    let old_levels = state(&alice, &room, "m.room.power_levels", "").await;
    assert!(old_levels["events_default"].as_i64().unwrap() >= 50, "{old_levels}");
    assert!(old_levels["invite"].as_i64().unwrap() >= 50, "{old_levels}");
    bob.put(&format!("/rooms/{}/send/m.room.message/late", enc(&room)), text("hello?"))
        .await
        .expect_error(403, "M_FORBIDDEN");

    // To room version 12: the upgrader is a creator and not listed.
    let answer = alice
        .post(
            &format!("/rooms/{}/upgrade", enc(&new_room)),
            json!({"new_version": "12", "additional_creators": [bob.user_id]}),
        )
        .await
        .expect(200);
    let v12 = answer["replacement_room"].as_str().unwrap().to_owned();
    assert!(!v12.contains(':'), "{v12}");
    let create = state(&alice, &v12, "m.room.create", "").await;
    assert_eq!(create["additional_creators"], json!([bob.user_id]));
    let levels = state(&alice, &v12, "m.room.power_levels", "").await;
    assert!(levels["users"].get(&alice.user_id).is_none() && levels["users"].get(&bob.user_id).is_none(), "{levels}");
    assert_eq!(state(&alice, &v12, "m.room.name", "").await["name"], "Old name");

    // Back to a version without privileged creators: the creators are listed.
    let answer = alice.post(&format!("/rooms/{}/upgrade", enc(&v12)), json!({"new_version": "11"})).await.expect(200);
    let v11 = answer["replacement_room"].as_str().unwrap().to_owned();
    let levels = state(&alice, &v11, "m.room.power_levels", "").await;
    assert!(levels["users"][&alice.user_id].as_i64().unwrap() >= 100, "{levels}");
    assert!(levels["users"][&bob.user_id].as_i64().unwrap() >= 100, "{levels}");
    assert_eq!(state(&alice, &v11, "m.room.create", "").await["predecessor"]["room_id"], v12.as_str());
}

#[tokio::test]
async fn create_room_presets_and_options_polylith() {
    create_room_presets_and_options(Mode::Polylith).await;
}

#[tokio::test]
async fn create_room_presets_and_options_monolith() {
    create_room_presets_and_options(Mode::Monolith).await;
}

#[tokio::test]
async fn room_version_12_rooms_polylith() {
    room_version_12_rooms(Mode::Polylith).await;
}

#[tokio::test]
async fn room_version_12_rooms_monolith() {
    room_version_12_rooms(Mode::Monolith).await;
}

#[tokio::test]
async fn send_and_transaction_ids_polylith() {
    send_and_transaction_ids(Mode::Polylith).await;
}

#[tokio::test]
async fn send_and_transaction_ids_monolith() {
    send_and_transaction_ids(Mode::Monolith).await;
}

#[tokio::test]
async fn room_state_in_and_out_polylith() {
    room_state_in_and_out(Mode::Polylith).await;
}

#[tokio::test]
async fn room_state_in_and_out_monolith() {
    room_state_in_and_out(Mode::Monolith).await;
}

#[tokio::test]
async fn single_events_and_redactions_polylith() {
    single_events_and_redactions(Mode::Polylith).await;
}

#[tokio::test]
async fn single_events_and_redactions_monolith() {
    single_events_and_redactions(Mode::Monolith).await;
}

#[tokio::test]
async fn room_upgrades_polylith() {
    room_upgrades(Mode::Polylith).await;
}

#[tokio::test]
async fn room_upgrades_monolith() {
    room_upgrades(Mode::Monolith).await;
}
