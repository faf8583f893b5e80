//! The room directory: local aliases (who may create and delete them, and
//! every error), whether a room is published, and `/publicRooms` — paged,
//! filtered, counted, and following the rooms' names, topics and members.

use std::time::Duration;

use serde_json::{Value, json};
use tests::{
    Deployment, Mode,
    client::{Client, enc},
    streams::read_until,
};

async fn create_room(client: &Client, body: Value) -> String {
    let answer = client.post("/createRoom", body).await.expect(200);
    answer["room_id"].as_str().unwrap_or_else(|| panic!("a room id: {answer}")).to_owned()
}

async fn join(client: &Client, room_id: &str) {
    client.post(&format!("/rooms/{}/join", enc(room_id)), json!({})).await.expect(200);
}

fn alias_path(alias: &str) -> String {
    format!("/directory/room/{}", enc(alias))
}

/// Polls `/publicRooms` (POST with `body`) until `wanted` holds for the
/// answer; the directory follows the rooms asynchronously.
async fn public_rooms_until(client: &Client, body: Value, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let answer = client.post("/publicRooms", body.clone()).await.expect(200);
        if wanted(&answer) {
            return answer;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("the directory never showed {what}: {answer:#}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn entry<'a>(page: &'a Value, room_id: &str) -> Option<&'a Value> {
    page["chunk"].as_array()?.iter().find(|room| room["room_id"] == room_id)
}

fn sorted(mut ids: Vec<&str>) -> Vec<&str> {
    ids.sort();
    ids
}

fn room_ids(page: &Value) -> Vec<&str> {
    page["chunk"].as_array().into_iter().flatten().filter_map(|room| room["room_id"].as_str()).collect()
}

#[tokio::test]
async fn aliases_are_created_resolved_listed_and_deleted_by_those_allowed() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let server = &deployment.server_name;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    let carol = deployment.new_user().await;
    let room = create_room(&alice, json!({"preset": "public_chat"})).await;
    join(&bob, &room).await;

    // Alice names the room; anyone (even without a token) resolves the alias.
    let lobby = format!("#lobby:{server}");
    assert_eq!(alice.put(&alias_path(&lobby), json!({"room_id": room})).await.expect(200), json!({}));
    let resolved = deployment.client().get(&alias_path(&lobby)).await.expect(200);
    assert_eq!(resolved["room_id"], room.as_str(), "{resolved}");
    assert_eq!(resolved["servers"], json!([server]), "{resolved}");

    // The same alias again, even for the same room: 409.
    alice.put(&alias_path(&lobby), json!({"room_id": room})).await.expect_error(409, "M_UNKNOWN");
    // Another server's alias, an unknown room, a malformed alias, a non-member.
    alice
        .put(&alias_path("#elsewhere:other.example"), json!({"room_id": room}))
        .await
        .expect_error(400, "M_INVALID_PARAM");
    alice
        .put(&alias_path(&format!("#ghost:{server}")), json!({"room_id": format!("!nowhere:{server}")}))
        .await
        .expect_error(404, "M_NOT_FOUND");
    alice.put("/directory/room/no-hash-sign", json!({"room_id": room})).await.expect_error(400, "M_INVALID_PARAM");
    alice.put(&alias_path(&format!("#nobody:{server}")), json!({})).await.expect_error(400, "M_BAD_JSON");
    carol
        .put(&alias_path(&format!("#carols:{server}")), json!({"room_id": room}))
        .await
        .expect_error(403, "M_FORBIDDEN");
    deployment
        .client()
        .put(&alias_path(&format!("#anon:{server}")), json!({"room_id": room}))
        .await
        .expect_error(401, "M_MISSING_TOKEN");
    // Unknown aliases here; aliases of a server that cannot be reached (as
    // Synapse answers: the alias may well exist).
    alice.get(&alias_path(&format!("#ghost:{server}"))).await.expect_error(404, "M_NOT_FOUND");
    alice.get(&alias_path("#elsewhere:other.example")).await.expect_error(502, "M_UNKNOWN");

    // Bob, a member without power, adds his own alias.
    let bobs = format!("#bobs-corner:{server}");
    bob.put(&alias_path(&bobs), json!({"room_id": room})).await.expect(200);

    // The room's aliases: for members only.
    let aliases = alice.get(&format!("/rooms/{}/aliases", enc(&room))).await.expect(200);
    let listed: Vec<&str> = aliases["aliases"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert_eq!(sorted(listed), sorted(vec![bobs.as_str(), lobby.as_str()]), "{aliases}");
    carol.get(&format!("/rooms/{}/aliases", enc(&room))).await.expect_error(403, "M_FORBIDDEN");
    carol.get(&format!("/rooms/{}/aliases", enc(&format!("!nowhere:{server}")))).await.expect_error(403, "M_FORBIDDEN");

    // Deleting: not an outsider, not a member without power over someone
    // else's alias; the alias's creator and the room's moderators may.
    carol.delete(&alias_path(&lobby), json!({})).await.expect_error(403, "M_FORBIDDEN");
    bob.delete(&alias_path(&lobby), json!({})).await.expect_error(403, "M_FORBIDDEN");
    alice.delete(&alias_path(&bobs), json!({})).await.expect(200);
    alice.get(&alias_path(&bobs)).await.expect_error(404, "M_NOT_FOUND");
    let again = format!("#bobs-again:{server}");
    bob.put(&alias_path(&again), json!({"room_id": room})).await.expect(200);
    bob.delete(&alias_path(&again), json!({})).await.expect(200);
    bob.delete(&alias_path(&again), json!({})).await.expect_error(404, "M_NOT_FOUND");
    alice.delete(&alias_path("#elsewhere:other.example"), json!({})).await.expect_error(400, "M_INVALID_PARAM");
    let aliases = bob.get(&format!("/rooms/{}/aliases", enc(&room))).await.expect(200);
    assert_eq!(aliases["aliases"], json!([lobby]), "{aliases}");

    // Deleting the room's canonical alias takes it out of the room's event too.
    let canonical = format!("/rooms/{}/state/m.room.canonical_alias", enc(&room));
    alice.put(&canonical, json!({"alias": lobby, "alt_aliases": [lobby]})).await.expect(200);
    alice.delete(&alias_path(&lobby), json!({})).await.expect(200);
    assert_eq!(alice.get(&canonical).await.expect(200), json!({"alt_aliases": []}));

    // A deleted alias can be taken again, for another room.
    let other = create_room(&bob, json!({})).await;
    bob.put(&alias_path(&lobby), json!({"room_id": other})).await.expect(200);
    assert_eq!(carol.get(&alias_path(&lobby)).await.expect(200)["room_id"], other.as_str());
}

#[tokio::test]
async fn rooms_are_published_by_their_moderators() {
    publishing(Mode::Polylith).await;
}

#[tokio::test]
async fn rooms_are_published_in_the_monolith() {
    publishing(Mode::Monolith).await;
}

async fn publishing(mode: Mode) {
    let deployment = Deployment::start(mode).await;
    let server = &deployment.server_name;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    let room = create_room(&alice, json!({"preset": "public_chat", "name": "Town square"})).await;
    let list = format!("/directory/list/room/{}", enc(&room));

    assert_eq!(deployment.client().get(&list).await.expect(200), json!({"visibility": "private"}));
    let unknown = format!("/directory/list/room/{}", enc(&format!("!nowhere:{server}")));
    alice.get(&unknown).await.expect_error(404, "M_NOT_FOUND");
    alice.put(&unknown, json!({"visibility": "public"})).await.expect_error(404, "M_NOT_FOUND");

    // Neither an outsider nor a member without power may publish it.
    bob.put(&list, json!({"visibility": "public"})).await.expect_error(403, "M_FORBIDDEN");
    join(&bob, &room).await;
    bob.put(&list, json!({"visibility": "public"})).await.expect_error(403, "M_FORBIDDEN");
    alice.put(&list, json!({"visibility": "secret"})).await.expect_error(400, "M_INVALID_PARAM");
    alice.put(&list, json!({})).await.expect_error(400, "M_BAD_JSON");

    assert_eq!(alice.put(&list, json!({"visibility": "public"})).await.expect(200), json!({}));
    assert_eq!(bob.get(&list).await.expect(200), json!({"visibility": "public"}));
    // Publishing twice changes nothing.
    alice.put(&list, json!({"visibility": "public"})).await.expect(200);
    let page = public_rooms_until(&bob, json!({}), "the published room", |page| entry(page, &room).is_some()).await;
    assert_eq!(room_ids(&page), vec![room.as_str()], "{page}");

    alice.put(&list, json!({"visibility": "private"})).await.expect(200);
    assert_eq!(bob.get(&list).await.expect(200), json!({"visibility": "private"}));
    let page = bob.get("/publicRooms").await.expect(200);
    assert_eq!(page["chunk"], json!([]), "{page}");
    assert_eq!(page["total_room_count_estimate"], 0, "{page}");

    // createRoom publishes a room asked to be public, under the alias it names.
    let created = create_room(
        &alice,
        json!({"preset": "public_chat", "visibility": "public", "room_alias_name": "square", "name": "Square"}),
    )
    .await;
    let alias = format!("#square:{server}");
    assert_eq!(alice.get(&alias_path(&alias)).await.expect(200)["room_id"], created.as_str());
    let list = format!("/directory/list/room/{}", enc(&created));
    assert_eq!(alice.get(&list).await.expect(200), json!({"visibility": "public"}));
    let page = public_rooms_until(&bob, json!({}), "the room created public", |page| {
        entry(page, &created).is_some_and(|room| room["canonical_alias"] == alias.as_str())
    })
    .await;
    assert_eq!(entry(&page, &created).unwrap()["name"], "Square", "{page}");
}

#[tokio::test]
async fn public_rooms_are_paged_filtered_and_follow_the_rooms() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let server = &deployment.server_name;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    let carol = deployment.new_user().await;

    // Three rooms of three, two and one members, a space, and a published
    // room nobody can join or read (not listed).
    let big = create_room(&alice, json!({"preset": "public_chat", "name": "Big Hall", "topic": "Everyone"})).await;
    let middle = create_room(&alice, json!({"preset": "public_chat", "name": "Middle room"})).await;
    let small = create_room(&alice, json!({"preset": "public_chat", "topic": "A quiet LOBBY"})).await;
    let space = create_room(
        &alice,
        json!({"preset": "public_chat", "name": "A space", "creation_content": {"type": "m.space"}}),
    )
    .await;
    let hidden = create_room(&alice, json!({"preset": "private_chat", "name": "Hidden"})).await;
    for (who, room) in [(&bob, &big), (&carol, &big), (&bob, &middle)] {
        join(who, room).await;
    }
    for room in [&big, &middle, &small, &space, &hidden] {
        alice.put(&format!("/directory/list/room/{}", enc(room)), json!({"visibility": "public"})).await.expect(200);
    }
    let all = public_rooms_until(&alice, json!({"limit": 10}), "every joinable room with its members", |page| {
        room_ids(page).len() == 4 && entry(page, &big).is_some_and(|room| room["num_joined_members"] == 3)
    })
    .await;
    assert_eq!(all["total_room_count_estimate"], 4, "{all}");
    assert!(entry(&all, &hidden).is_none(), "an invite-only room is not listed: {all}");
    let summary = entry(&all, &big).unwrap();
    assert_eq!(summary["name"], "Big Hall", "{summary}");
    assert_eq!(summary["topic"], "Everyone", "{summary}");
    // A public join rule may go without saying.
    assert!(summary.get("join_rule").is_none_or(|rule| rule == "public"), "{summary}");
    assert_eq!(summary["world_readable"], false, "{summary}");
    assert_eq!(summary["guest_can_join"], false, "{summary}");
    assert!(summary.get("room_type").is_none(), "{summary}");
    assert_eq!(entry(&all, &space).unwrap()["room_type"], "m.space", "{all}");
    // Largest first (rooms of the same size in the database's order of room ids).
    assert_eq!(room_ids(&all)[..2], [big.as_str(), middle.as_str()], "{all}");
    let ones = room_ids(&all)[2..].to_vec();
    assert_eq!(sorted(ones.clone()), sorted(vec![small.as_str(), space.as_str()]), "{all}");

    // Pages of two, forwards and back; GET needs no token.
    let anonymous = deployment.client();
    let first = anonymous.get("/publicRooms?limit=2").await.expect(200);
    assert_eq!(room_ids(&first), vec![big.as_str(), middle.as_str()], "{first}");
    assert!(first.get("prev_batch").is_none(), "the first page has nothing before it: {first}");
    assert_eq!(first["total_room_count_estimate"], 4, "{first}");
    let next = first["next_batch"].as_str().expect("a next_batch");
    let second = anonymous.get(&format!("/publicRooms?limit=2&since={}", enc(next))).await.expect(200);
    assert_eq!(room_ids(&second), ones, "{second}");
    assert!(second.get("next_batch").is_none(), "the last page: {second}");
    let prev = second["prev_batch"].as_str().expect("a prev_batch");
    let back = anonymous.get(&format!("/publicRooms?limit=2&since={}", enc(prev))).await.expect(200);
    assert_eq!(room_ids(&back), room_ids(&first), "{back}");
    // POST pages the same way.
    let posted = alice.post("/publicRooms", json!({"limit": 2, "since": next})).await.expect(200);
    assert_eq!(room_ids(&posted), ones, "{posted}");
    anonymous.get("/publicRooms?since=garbage").await.expect_error(400, "M_INVALID_PARAM");
    anonymous.get("/publicRooms?limit=-1").await.expect_error(400, "M_INVALID_PARAM");
    anonymous.get(&format!("/publicRooms?server={server}")).await.expect(200);
    // A server that cannot be reached.
    anonymous.get("/publicRooms?server=other.example").await.expect_error(502, "M_UNKNOWN");
    deployment.client().post("/publicRooms", json!({})).await.expect_error(401, "M_MISSING_TOKEN");

    // Filters: a case-insensitive search over name, topic, alias and room id; room types.
    let found = alice.post("/publicRooms", json!({"filter": {"generic_search_term": "lobby"}})).await.expect(200);
    assert_eq!(room_ids(&found), vec![small.as_str()], "{found}");
    assert_eq!(found["total_room_count_estimate"], 1, "{found}");
    let found = alice.post("/publicRooms", json!({"filter": {"generic_search_term": "HALL"}})).await.expect(200);
    assert_eq!(room_ids(&found), vec![big.as_str()], "{found}");
    let found = alice.post("/publicRooms", json!({"filter": {"generic_search_term": "%"}})).await.expect(200);
    assert_eq!(room_ids(&found), Vec::<&str>::new(), "wildcards match literally: {found}");
    let found = alice.post("/publicRooms", json!({"filter": {"room_types": ["m.space"]}})).await.expect(200);
    assert_eq!(room_ids(&found), vec![space.as_str()], "{found}");
    let found = alice.post("/publicRooms", json!({"filter": {"room_types": [null]}})).await.expect(200);
    assert_eq!(room_ids(&found).len(), 3, "{found}");
    assert!(entry(&found, &space).is_none(), "{found}");
    let found = alice
        .post("/publicRooms", json!({"include_all_networks": true, "filter": {"room_types": [null, "m.space"]}}))
        .await
        .expect(200);
    assert_eq!(room_ids(&found).len(), 4, "{found}");
    let found = alice.post("/publicRooms", json!({"third_party_instance_id": "irc-libera"})).await.expect(200);
    assert_eq!(found["chunk"], json!([]), "no bridged networks here: {found}");

    // Summaries follow the rooms: a new name, topic, canonical alias, history visibility, members leaving.
    let state = |room: &str, kind: &str| format!("/rooms/{}/state/{kind}", enc(room));
    alice.put(&state(&middle, "m.room.name"), json!({"name": "Renamed"})).await.expect(200);
    let topic = alice.put(&state(&middle, "m.room.topic"), json!({"topic": "Fresh topic"})).await.expect(200);
    let topic_event = topic["event_id"].as_str().unwrap_or_else(|| panic!("an event id: {topic}")).to_owned();
    let alias = format!("#middle:{server}");
    alice.put(&alias_path(&alias), json!({"room_id": middle})).await.expect(200);
    alice.put(&state(&middle, "m.room.canonical_alias"), json!({"alias": alias})).await.expect(200);
    alice
        .put(&state(&middle, "m.room.history_visibility"), json!({"history_visibility": "world_readable"}))
        .await
        .expect(200);
    alice.put(&state(&middle, "m.room.guest_access"), json!({"guest_access": "can_join"})).await.expect(200);
    public_rooms_until(&alice, json!({}), "the middle room's new summary", |page| {
        entry(page, &middle).is_some_and(|room| {
            room["name"] == "Renamed"
                && room["topic"] == "Fresh topic"
                && room["canonical_alias"] == alias.as_str()
                && room["world_readable"] == true
                && room["guest_can_join"] == true
        })
    })
    .await;
    let found = alice.post("/publicRooms", json!({"filter": {"generic_search_term": "#MIDDLE"}})).await.expect(200);
    assert_eq!(room_ids(&found), vec![middle.as_str()], "the canonical alias is searched: {found}");

    // The directory's copy survives a redelivered message: the room's first
    // name, published again, is older than what the directory has applied.
    let prefix = &deployment.config.global.nats.stream_prefix;
    let first_name = |m: &Value| {
        let event = &m["new_room_event"]["event"];
        event["type"] == "m.room.name"
            && event["room_id"] == middle.as_str()
            && event["content"]["name"] == "Middle room"
    };
    let read =
        read_until(&deployment, &format!("{prefix}_OutputRoomEvent"), "the middle room's first name", first_name).await;
    let payload = serde_json::to_vec(read.last().unwrap()).unwrap();
    let bus = deployment.bus().await;
    // Without a message id, so that JetStream keeps the copy.
    let ack = bus.jetstream().publish(format!("{prefix}.OutputRoomEvent"), payload.into()).await.expect("published");
    ack.await.expect("stored");

    // A redacted topic is no topic; seeing it means the copy before it was handled too.
    alice.put(&format!("/rooms/{}/redact/{}/redaction1", enc(&middle), enc(&topic_event)), json!({})).await.expect(200);
    public_rooms_until(&alice, json!({}), "the middle room without its topic, still renamed", |page| {
        entry(page, &middle).is_some_and(|room| room.get("topic").is_none() && room["name"] == "Renamed")
    })
    .await;

    for who in [&bob, &carol] {
        who.post(&format!("/rooms/{}/leave", enc(&big)), json!({})).await.expect(200);
    }
    let page = public_rooms_until(&alice, json!({}), "the big room down to one member", |page| {
        entry(page, &big).is_some_and(|room| room["num_joined_members"] == 1)
    })
    .await;
    assert_eq!(room_ids(&page)[0], middle.as_str(), "the largest room is first: {page}");

    // Made invite-only, the room leaves the listing (it stays published).
    alice.put(&state(&small, "m.room.join_rules"), json!({"join_rule": "invite"})).await.expect(200);
    public_rooms_until(&alice, json!({}), "the small room gone", |page| entry(page, &small).is_none()).await;
    assert_eq!(
        alice.get(&format!("/directory/list/room/{}", enc(&small))).await.expect(200),
        json!({"visibility": "public"})
    );
}
