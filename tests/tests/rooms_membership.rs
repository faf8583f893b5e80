//! Room membership over HTTP: joining, leaving, forgetting, invites, kicks,
//! bans and knocks with their errors, power levels and join rules (invite,
//! public, knock, restricted), who sends each member event, the member
//! lists, profile changes reaching every joined room, and deactivation
//! leaving rooms.
//!
//! Every scenario runs against the polylith (two clientapi instances behind
//! nginx) and the monolith. `/members` and `/joined_members` are asked of a
//! clientapi instance directly: nginx sends those paths to syncapi.

use std::time::Duration;

use serde_json::{Value, json};
use tests::{
    Deployment, Mode, Options,
    client::{Client, PASSWORD, enc},
};

/// Runs `scenario` as one test per deployment mode.
macro_rules! in_both_modes {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test]
            async fn polylith() {
                super::$scenario(tests::Mode::Polylith).await
            }

            #[tokio::test]
            async fn monolith() {
                super::$scenario(tests::Mode::Monolith).await
            }
        }
    )*};
}

in_both_modes!(
    joining_leaving_and_forgetting,
    invites_kicks_bans_and_power_levels,
    knocking,
    restricted_rooms_admit_members_of_the_allowed_rooms,
    member_lists,
    profile_changes_reach_every_joined_room,
    deactivation_leaves_rooms_and_rejects_invites,
    guests_join_rooms_open_to_guests,
);

fn localpart(user_id: &str) -> &str {
    user_id.trim_start_matches('@').split(':').next().unwrap()
}

async fn create_room(client: &Client, body: Value) -> String {
    let answer = client.post("/createRoom", body).await.expect(200);
    answer["room_id"].as_str().expect("a room id").to_owned()
}

fn join_rules(content: Value) -> Value {
    json!({"type": "m.room.join_rules", "state_key": "", "content": content})
}

async fn member_content(client: &Client, room_id: &str, user_id: &str) -> Value {
    client.get(&format!("/rooms/{}/state/m.room.member/{}", enc(room_id), enc(user_id))).await.expect(200)
}

/// The user's current member event, whole, as `/members` shows it to `viewer`.
async fn member_event(viewer: &Client, room_id: &str, user_id: &str) -> Value {
    let members = viewer.get(&format!("/rooms/{}/members", enc(room_id))).await.expect(200);
    members["chunk"]
        .as_array()
        .expect("a chunk")
        .iter()
        .find(|event| event["state_key"] == user_id)
        .unwrap_or_else(|| panic!("no member event of {user_id} in {members}"))
        .clone()
}

async fn joined_rooms(client: &Client) -> Vec<String> {
    let answer = client.get("/joined_rooms").await.expect(200);
    answer["joined_rooms"].as_array().expect("a list").iter().map(|r| r.as_str().unwrap().to_owned()).collect()
}

fn path(room_id: &str, action: &str) -> String {
    format!("/rooms/{}/{action}", enc(room_id))
}

/// Polls the user's member content in the room until `done` holds, for up to ten seconds.
async fn wait_for_member(client: &Client, room_id: &str, user_id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let answer = client.get(&format!("/rooms/{}/state/m.room.member/{}", enc(room_id), enc(user_id))).await;
        if answer.status == 200 && done(&answer.body) {
            return answer.body;
        }
        assert!(tokio::time::Instant::now() < deadline, "the member event did not change: {}", answer.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn joining_leaving_and_forgetting(mode: Mode) {
    let deployment = Deployment::start(mode).await;
    let server = &deployment.server_name;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    let charlie = deployment.new_user().await;
    let room = create_room(&alice, json!({"preset": "public_chat", "room_alias_name": "membership-lobby"})).await;

    // A public room: anyone may join, by id or by alias.
    let joined = bob.post(&path(&room, "join"), json!({})).await.expect(200);
    assert_eq!(joined, json!({"room_id": room}));
    let by_alias = charlie.post(&format!("/join/{}", enc(&format!("#membership-lobby:{server}"))), json!({})).await;
    assert_eq!(by_alias.expect(200), json!({"room_id": room}));
    assert_eq!(joined_rooms(&bob).await, vec![room.clone()]);
    let content = member_content(&alice, &room, &bob.user_id).await;
    assert_eq!(content["membership"], "join", "{content}");
    assert_eq!(content["displayname"], localpart(&bob.user_id), "the joiner's profile: {content}");

    // Joining again changes nothing, so it makes no event.
    let first = member_event(&alice, &room, &bob.user_id).await;
    assert_eq!(first["sender"], bob.user_id.as_str());
    bob.post(&format!("/join/{}", enc(&room)), json!({})).await.expect(200);
    let again = member_event(&alice, &room, &bob.user_id).await;
    assert_eq!(again["event_id"], first["event_id"], "a repeated join is not a new event");

    // Leaving, with a reason; the leave is the leaver's.
    charlie.post(&path(&room, "leave"), json!({"reason": "off to bed"})).await.expect(200);
    let left = member_event(&alice, &room, &charlie.user_id).await;
    assert_eq!(left["content"]["membership"], "leave", "{left}");
    assert_eq!(left["content"]["reason"], "off to bed", "{left}");
    assert_eq!(left["sender"], charlie.user_id.as_str(), "{left}");
    assert!(joined_rooms(&charlie).await.is_empty());
    // The same leave again is nothing new.
    charlie.post(&path(&room, "leave"), json!({"reason": "off to bed"})).await.expect(200);

    // Forgetting: only once left (400 M_UNKNOWN per the spec otherwise).
    bob.post(&path(&room, "forget"), json!({})).await.expect_error(400, "M_UNKNOWN");
    charlie.get(&format!("/rooms/{}/members", enc(&room))).await.expect(200);
    charlie.post(&path(&room, "forget"), json!({})).await.expect(200);
    assert!(joined_rooms(&charlie).await.is_empty());
    // What is forgotten is no longer readable.
    charlie.get(&format!("/rooms/{}/members", enc(&room))).await.expect_error(403, "M_FORBIDDEN");
    // Forgetting a room one was never in.
    let stranger = deployment.new_user().await;
    stranger.post(&path(&room, "forget"), json!({})).await.expect_error(404, "M_NOT_FOUND");
    // A forgotten room can be joined again.
    charlie.post(&path(&room, "join"), json!({})).await.expect(200);
    assert_eq!(joined_rooms(&charlie).await, vec![room.clone()]);

    // Unknown rooms, aliases of servers that cannot be reached, unknown local aliases.
    bob.post(&path(&format!("!nowhere:{server}"), "join"), json!({})).await.expect_error(404, "M_NOT_FOUND");
    bob.post(&format!("/join/{}", enc(&format!("!nowhere:{server}"))), json!({}))
        .await
        .expect_error(404, "M_NOT_FOUND");
    bob.post(&format!("/join/{}", enc("#somewhere:elsewhere.example")), json!({})).await.expect_error(502, "M_UNKNOWN");
    bob.post(&format!("/join/{}", enc(&format!("#no-such-alias:{server}"))), json!({}))
        .await
        .expect_error(404, "M_NOT_FOUND");
    bob.post(&path(&format!("!nowhere:{server}"), "leave"), json!({})).await.expect_error(404, "M_NOT_FOUND");
    // Leaving a room one is not in.
    let outsider = deployment.new_user().await;
    // In a public room inviting takes power 50 (createRoom's default); bob has 0.
    bob.post(&path(&room, "invite"), json!({"user_id": outsider.user_id})).await.expect_error(403, "M_FORBIDDEN");
    outsider.post(&path(&room, "leave"), json!({})).await.expect_error(403, "M_FORBIDDEN");

    // Malformed requests.
    bob.post("/rooms/not-a-room-id/join", json!({})).await.expect_error(400, "M_INVALID_PARAM");
    bob.post(&path(&room, "join"), json!({"reason": 5})).await.expect_error(400, "M_BAD_JSON");
    let not_json = reqwest::Client::new()
        .post(deployment.url(&format!("/_matrix/client/v3{}", path(&room, "leave"))))
        .bearer_auth(bob.access_token.as_deref().unwrap())
        .body("{not json")
        .send()
        .await
        .expect("an answer");
    assert_eq!(not_json.status(), 400);
    let body: Value = not_json.json().await.expect("a JSON error");
    assert_eq!(body["errcode"], "M_NOT_JSON", "{body}");
    deployment.client().post(&path(&room, "join"), json!({})).await.expect_error(401, "M_MISSING_TOKEN");
}

async fn invites_kicks_bans_and_power_levels(mode: Mode) {
    let deployment = Deployment::start(mode).await;
    let server = &deployment.server_name;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    let charlie = deployment.new_user().await;
    bob.put(&format!("/profile/{}/displayname", enc(&bob.user_id)), json!({"displayname": "Bob Builder"}))
        .await
        .expect(200);
    // private_chat: invite only.
    let room = create_room(&alice, json!({"preset": "private_chat"})).await;

    bob.post(&path(&room, "join"), json!({})).await.expect_error(403, "M_FORBIDDEN");
    // Only members invite.
    charlie.post(&path(&room, "invite"), json!({"user_id": bob.user_id})).await.expect_error(403, "M_FORBIDDEN");

    alice.post(&path(&room, "invite"), json!({"user_id": bob.user_id, "reason": "join us"})).await.expect(200);
    let invite = member_event(&alice, &room, &bob.user_id).await;
    assert_eq!(invite["sender"], alice.user_id.as_str(), "the inviter sends the invite: {invite}");
    assert_eq!(invite["content"]["membership"], "invite", "{invite}");
    assert_eq!(invite["content"]["reason"], "join us", "{invite}");
    assert_eq!(invite["content"]["displayname"], "Bob Builder", "the invitee's profile: {invite}");
    bob.post(&path(&room, "join"), json!({})).await.expect(200);
    assert_eq!(member_content(&alice, &room, &bob.user_id).await["membership"], "join");

    // Invite errors: a member, a bad id, an unknown user, a third-party id.
    alice.post(&path(&room, "invite"), json!({"user_id": bob.user_id})).await.expect_error(403, "M_FORBIDDEN");
    alice.post(&path(&room, "invite"), json!({"user_id": "not-a-user"})).await.expect_error(400, "M_INVALID_PARAM");
    alice.post(&path(&room, "invite"), json!({"user_id": 12})).await.expect_error(400, "M_BAD_JSON");
    alice
        .post(&path(&room, "invite"), json!({"user_id": format!("@nobody-at-all:{server}")}))
        .await
        .expect_error(404, "M_NOT_FOUND");
    let threepid =
        json!({"id_server": "id.example", "id_access_token": "t", "medium": "email", "address": "a@b.example"});
    alice.post(&path(&room, "invite"), threepid).await.expect_error(403, "M_THREEPID_DENIED");
    alice
        .post(&path(&format!("!nowhere:{server}"), "invite"), json!({"user_id": bob.user_id}))
        .await
        .expect_error(404, "M_NOT_FOUND");

    // Bob has power 0: he may not kick, ban or unban.
    alice.post(&path(&room, "invite"), json!({"user_id": charlie.user_id})).await.expect(200);
    charlie.post(&path(&room, "join"), json!({})).await.expect(200);
    bob.post(&path(&room, "kick"), json!({"user_id": charlie.user_id})).await.expect_error(403, "M_FORBIDDEN");
    bob.post(&path(&room, "kick"), json!({"user_id": alice.user_id})).await.expect_error(403, "M_FORBIDDEN");
    bob.post(&path(&room, "ban"), json!({"user_id": charlie.user_id})).await.expect_error(403, "M_FORBIDDEN");

    // Alice (100) kicks: the kick is hers, about charlie.
    alice.post(&path(&room, "kick"), json!({"user_id": charlie.user_id, "reason": "too loud"})).await.expect(200);
    let kick = member_event(&alice, &room, &charlie.user_id).await;
    assert_eq!(kick["sender"], alice.user_id.as_str(), "the kicker sends the kick: {kick}");
    assert_eq!(kick["state_key"], charlie.user_id.as_str());
    assert_eq!(kick["content"]["membership"], "leave");
    assert_eq!(kick["content"]["reason"], "too loud");
    // Kicked from an invite-only room: no way back without a new invite.
    charlie.post(&path(&room, "join"), json!({})).await.expect_error(403, "M_FORBIDDEN");
    // Only members can be kicked.
    alice.post(&path(&room, "kick"), json!({"user_id": charlie.user_id})).await.expect_error(403, "M_FORBIDDEN");
    alice.post(&path(&room, "kick"), json!({"user_id": "@"})).await.expect_error(400, "M_INVALID_PARAM");
    alice.post(&path(&room, "kick"), json!({})).await.expect_error(400, "M_BAD_JSON");

    // Bans: by alice, with a reason; a banned user can neither join nor be invited.
    alice.post(&path(&room, "ban"), json!({"user_id": charlie.user_id, "reason": "spam"})).await.expect(200);
    let ban = member_event(&alice, &room, &charlie.user_id).await;
    assert_eq!(ban["sender"], alice.user_id.as_str());
    assert_eq!(ban["content"], json!({"membership": "ban", "reason": "spam"}));
    charlie.post(&path(&room, "join"), json!({})).await.expect_error(403, "M_FORBIDDEN");
    alice.post(&path(&room, "invite"), json!({"user_id": charlie.user_id})).await.expect_error(403, "M_FORBIDDEN");
    bob.post(&path(&room, "unban"), json!({"user_id": charlie.user_id})).await.expect_error(403, "M_FORBIDDEN");
    alice.post(&path(&room, "unban"), json!({"user_id": charlie.user_id, "reason": "forgiven"})).await.expect(200);
    let unban = member_event(&alice, &room, &charlie.user_id).await;
    assert_eq!(unban["sender"], alice.user_id.as_str());
    assert_eq!(unban["content"], json!({"membership": "leave", "reason": "forgiven"}));
    // Unbanning someone who is not banned.
    alice.post(&path(&room, "unban"), json!({"user_id": bob.user_id})).await.expect_error(403, "M_BAD_STATE");
    // Banning a member removes them.
    alice.post(&path(&room, "ban"), json!({"user_id": bob.user_id})).await.expect(200);
    assert!(joined_rooms(&bob).await.is_empty());

    // A rejected invite is a leave by the invitee.
    let dave = deployment.new_user().await;
    alice.post(&path(&room, "invite"), json!({"user_id": dave.user_id})).await.expect(200);
    dave.post(&path(&room, "leave"), json!({})).await.expect(200);
    let rejected = member_event(&alice, &room, &dave.user_id).await;
    assert_eq!(
        (rejected["sender"].as_str(), rejected["content"]["membership"].as_str()),
        (Some(dave.user_id.as_str()), Some("leave"))
    );
}

async fn knocking(mode: Mode) {
    let deployment = Deployment::start(mode).await;
    let server = &deployment.server_name;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    let room = create_room(
        &alice,
        json!({"preset": "private_chat", "initial_state": [join_rules(json!({"join_rule": "knock"}))]}),
    )
    .await;

    // Knocking is not joining.
    bob.post(&path(&room, "join"), json!({})).await.expect_error(403, "M_FORBIDDEN");
    let knocked = bob.post(&format!("/knock/{}", enc(&room)), json!({"reason": "let me in"})).await.expect(200);
    assert_eq!(knocked, json!({"room_id": room}));
    let knock = member_event(&alice, &room, &bob.user_id).await;
    assert_eq!(knock["sender"], bob.user_id.as_str());
    assert_eq!(knock["content"]["membership"], "knock", "{knock}");
    assert_eq!(knock["content"]["reason"], "let me in", "{knock}");
    assert_eq!(knock["content"]["displayname"], localpart(&bob.user_id), "{knock}");
    bob.post(&path(&room, "join"), json!({})).await.expect_error(403, "M_FORBIDDEN");

    // An invite answers the knock; then bob may join.
    alice.post(&path(&room, "invite"), json!({"user_id": bob.user_id})).await.expect(200);
    bob.post(&path(&room, "join"), json!({})).await.expect(200);
    assert_eq!(joined_rooms(&bob).await, vec![room.clone()]);
    // A member cannot knock.
    bob.post(&format!("/knock/{}", enc(&room)), json!({})).await.expect_error(403, "M_FORBIDDEN");

    // A knock withdrawn is a leave.
    let carol = deployment.new_user().await;
    carol.post(&format!("/knock/{}", enc(&room)), json!({})).await.expect(200);
    carol.post(&path(&room, "leave"), json!({})).await.expect(200);
    assert_eq!(member_content(&alice, &room, &carol.user_id).await["membership"], "leave");

    // Rooms that take no knocks, unknown rooms, unknown aliases.
    let invite_only = create_room(&alice, json!({"preset": "private_chat"})).await;
    carol.post(&format!("/knock/{}", enc(&invite_only)), json!({})).await.expect_error(403, "M_FORBIDDEN");
    carol
        .post(&format!("/knock/{}", enc(&format!("!nowhere:{server}"))), json!({}))
        .await
        .expect_error(404, "M_NOT_FOUND");
    // The alias's server cannot be reached to resolve it.
    carol.post(&format!("/knock/{}", enc("#x:elsewhere.example")), json!({})).await.expect_error(502, "M_UNKNOWN");
    carol.post("/knock/not-a-room", json!({})).await.expect_error(400, "M_INVALID_PARAM");
}

async fn restricted_rooms_admit_members_of_the_allowed_rooms(mode: Mode) {
    let deployment = Deployment::start(mode).await;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    let charlie = deployment.new_user().await;
    let space = create_room(&alice, json!({"preset": "public_chat"})).await;
    let allow = json!([{"type": "m.room_membership", "room_id": space}]);
    let restricted = create_room(
        &alice,
        json!({
            "preset": "private_chat",
            "initial_state": [join_rules(json!({"join_rule": "restricted", "allow": allow}))],
        }),
    )
    .await;
    let knock_restricted = create_room(
        &alice,
        json!({
            "preset": "private_chat",
            "initial_state": [join_rules(json!({"join_rule": "knock_restricted", "allow": allow}))],
        }),
    )
    .await;

    // Charlie is in no allowed room.
    charlie.post(&path(&restricted, "join"), json!({})).await.expect_error(403, "M_FORBIDDEN");
    charlie.post(&path(&knock_restricted, "join"), json!({})).await.expect_error(403, "M_FORBIDDEN");
    // knock_restricted still takes knocks.
    charlie.post(&format!("/knock/{}", enc(&knock_restricted)), json!({})).await.expect(200);

    // Bob joins the allowed room, and then the restricted ones, vouched for by alice.
    bob.post(&path(&space, "join"), json!({})).await.expect(200);
    for room in [&restricted, &knock_restricted] {
        bob.post(&path(room, "join"), json!({})).await.expect(200);
        let join = member_event(&alice, room, &bob.user_id).await;
        assert_eq!(join["sender"], bob.user_id.as_str());
        assert_eq!(join["content"]["membership"], "join", "{join}");
        assert_eq!(join["content"]["join_authorised_via_users_server"], alice.user_id.as_str(), "{join}");
    }

    // An invited user needs no vouching.
    alice.post(&path(&restricted, "invite"), json!({"user_id": charlie.user_id})).await.expect(200);
    charlie.post(&path(&restricted, "join"), json!({})).await.expect(200);
    let join = member_event(&alice, &restricted, &charlie.user_id).await;
    assert!(join["content"].get("join_authorised_via_users_server").is_none(), "{join}");
}

async fn member_lists(mode: Mode) {
    let deployment = Deployment::start(mode).await;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    let charlie = deployment.new_user().await;
    let outsider = deployment.new_user().await;
    let avatar = format!("mxc://{}/bob", deployment.server_name);
    bob.put(&format!("/profile/{}/avatar_url", enc(&bob.user_id)), json!({"avatar_url": avatar})).await.expect(200);
    let room = create_room(&alice, json!({"preset": "public_chat"})).await;
    let alice_join = member_event(&alice, &room, &alice.user_id).await;
    bob.post(&path(&room, "join"), json!({})).await.expect(200);
    charlie.post(&path(&room, "join"), json!({})).await.expect(200);
    let dave = deployment.new_user().await;
    alice.post(&path(&room, "invite"), json!({"user_id": dave.user_id})).await.expect(200);
    charlie.post(&path(&room, "leave"), json!({})).await.expect(200);

    let members_of = |query: &str| {
        let alice = alice.clone();
        let url = format!("/rooms/{}/members{query}", enc(&room));
        async move {
            let answer = alice.get(&url).await.expect(200);
            let mut members: Vec<(String, String)> = answer["chunk"]
                .as_array()
                .expect("a chunk")
                .iter()
                .map(|event| {
                    assert_eq!(event["type"], "m.room.member", "{event}");
                    assert!(event["event_id"].is_string() && event["sender"].is_string(), "{event}");
                    (
                        event["state_key"].as_str().unwrap().to_owned(),
                        event["content"]["membership"].as_str().unwrap().to_owned(),
                    )
                })
                .collect();
            members.sort();
            members
        }
    };
    let pair = |client: &Client, membership: &str| (client.user_id.clone(), membership.to_owned());
    let mut all = vec![pair(&alice, "join"), pair(&bob, "join"), pair(&charlie, "leave"), pair(&dave, "invite")];
    all.sort();
    assert_eq!(members_of("").await, all);
    let mut joined = vec![pair(&alice, "join"), pair(&bob, "join")];
    joined.sort();
    assert_eq!(members_of("?membership=join").await, joined);
    let mut not_left = vec![pair(&alice, "join"), pair(&bob, "join"), pair(&dave, "invite")];
    not_left.sort();
    assert_eq!(members_of("?not_membership=leave").await, not_left);
    // Together: either condition.
    let mut either = vec![pair(&alice, "join"), pair(&bob, "join"), pair(&charlie, "leave")];
    either.sort();
    assert_eq!(members_of("?membership=leave&not_membership=invite").await, either);
    // At alice's join only alice was there.
    let at = format!("?at={}", enc(alice_join["event_id"].as_str().unwrap()));
    assert_eq!(members_of(&at).await, vec![pair(&alice, "join")]);

    // Charlie left: he sees the members as they were then, not who came later.
    let erin = deployment.new_user().await;
    erin.post(&path(&room, "join"), json!({})).await.expect(200);
    let seen_by_charlie = charlie.get(&format!("/rooms/{}/members", enc(&room))).await;
    let seen: Vec<String> = seen_by_charlie.expect(200)["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["state_key"].as_str().unwrap().to_owned())
        .collect();
    assert!(seen.contains(&charlie.user_id) && seen.contains(&bob.user_id), "{seen:?}");
    assert!(!seen.contains(&erin.user_id), "erin came after charlie left: {seen:?}");

    // Who has never been in the room sees nothing; an invitee neither.
    for client in [&outsider, &dave] {
        client.get(&format!("/rooms/{}/members", enc(&room))).await.expect_error(403, "M_FORBIDDEN");
        client.get(&format!("/rooms/{}/joined_members", enc(&room))).await.expect_error(403, "M_FORBIDDEN");
    }
    // A past member cannot list the joined members.
    charlie.get(&format!("/rooms/{}/joined_members", enc(&room))).await.expect_error(403, "M_FORBIDDEN");

    // joined_members: joined members only, with their profiles.
    let answer = alice.get(&format!("/rooms/{}/joined_members", enc(&room))).await.expect(200);
    let joined = answer["joined"].as_object().expect("a map");
    let mut names: Vec<&String> = joined.keys().collect();
    names.sort();
    let mut expected = vec![&alice.user_id, &bob.user_id, &erin.user_id];
    expected.sort();
    assert_eq!(names, expected, "{answer}");
    assert_eq!(joined[&bob.user_id], json!({"display_name": localpart(&bob.user_id), "avatar_url": avatar}));
    assert_eq!(joined[&erin.user_id], json!({"display_name": localpart(&erin.user_id)}));

    // joined_rooms.
    let other = create_room(&bob, json!({"preset": "public_chat"})).await;
    let mut bobs = joined_rooms(&bob).await;
    bobs.sort();
    let mut expected = vec![room.clone(), other];
    expected.sort();
    assert_eq!(bobs, expected);
    assert!(joined_rooms(&dave).await.is_empty(), "an invite is not a joined room");
    assert!(joined_rooms(&outsider).await.is_empty());
}

async fn profile_changes_reach_every_joined_room(mode: Mode) {
    let deployment = Deployment::start(mode).await;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    let first = create_room(&bob, json!({"preset": "public_chat"})).await;
    let second = create_room(&bob, json!({"preset": "public_chat"})).await;
    let left = create_room(&bob, json!({"preset": "public_chat"})).await;
    for room in [&first, &second, &left] {
        alice.post(&path(room, "join"), json!({"reason": "hello"})).await.expect(200);
    }
    alice.post(&path(&left, "leave"), json!({})).await.expect(200);
    let left_before = member_event(&bob, &left, &alice.user_id).await;

    alice
        .put(&format!("/profile/{}/displayname", enc(&alice.user_id)), json!({"displayname": "Alice L."}))
        .await
        .expect(200);
    let avatar = format!("mxc://{}/new-avatar", deployment.server_name);
    alice.put(&format!("/profile/{}/avatar_url", enc(&alice.user_id)), json!({"avatar_url": avatar})).await.expect(200);
    for room in [&first, &second] {
        let content = wait_for_member(&bob, room, &alice.user_id, |c| c["avatar_url"] == avatar.as_str()).await;
        assert_eq!(content["displayname"], "Alice L.", "{content}");
        assert_eq!(content["membership"], "join", "{content}");
        assert_eq!(content["reason"], "hello", "the rest of the join is kept: {content}");
        let event = member_event(&bob, room, &alice.user_id).await;
        assert_eq!(event["sender"], alice.user_id.as_str());
    }
    // A room she left keeps her leave.
    let left_after = member_event(&bob, &left, &alice.user_id).await;
    assert_eq!(left_after["event_id"], left_before["event_id"]);

    // Removing the display name removes it from the member events too.
    alice.delete(&format!("/profile/{}/displayname", enc(&alice.user_id)), json!({})).await.expect(200);
    for room in [&first, &second] {
        let content = wait_for_member(&bob, room, &alice.user_id, |c| c.get("displayname").is_none()).await;
        assert_eq!(content["avatar_url"], avatar.as_str(), "{content}");
    }
}

async fn deactivation_leaves_rooms_and_rejects_invites(mode: Mode) {
    let deployment = Deployment::start(mode).await;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    let joined = create_room(&alice, json!({"preset": "public_chat"})).await;
    let invited = create_room(&alice, json!({"preset": "private_chat"})).await;
    bob.post(&path(&joined, "join"), json!({})).await.expect(200);
    alice.post(&path(&invited, "invite"), json!({"user_id": bob.user_id})).await.expect(200);

    let done = bob.post("/account/deactivate", json!({"auth": bob.password_auth(PASSWORD, None)})).await.expect(200);
    assert_eq!(done, json!({"id_server_unbind_result": "no-support"}));
    for room in [&joined, &invited] {
        let event = member_event(&alice, room, &bob.user_id).await;
        assert_eq!(event["content"]["membership"], "leave", "{event}");
        assert_eq!(event["sender"], bob.user_id.as_str(), "{event}");
    }
    let members = alice.get(&format!("/rooms/{}/joined_members", enc(&joined))).await;
    assert!(members.expect(200)["joined"].get(&bob.user_id).is_none());
}

async fn guests_join_rooms_open_to_guests(mode: Mode) {
    let deployment = Deployment::start_with(Options::new(mode).set("clientapi.registration.guests", "true")).await;
    let alice = deployment.new_user().await;
    let registered = deployment.client().post("/register?kind=guest", json!({})).await.expect(200);
    let guest = deployment.client().logged_in(&registered);
    // public_chat forbids guests; private_chat lets them join once invited.
    let public = create_room(&alice, json!({"preset": "public_chat"})).await;
    guest.post(&path(&public, "join"), json!({})).await.expect_error(403, "M_GUEST_ACCESS_FORBIDDEN");
    let private = create_room(&alice, json!({"preset": "private_chat"})).await;
    alice.post(&path(&private, "invite"), json!({"user_id": guest.user_id})).await.expect(200);
    guest.post(&format!("/join/{}", enc(&private)), json!({})).await.expect(200);
    let members = guest.get(&format!("/rooms/{}/joined_members", enc(&private))).await;
    assert!(members.expect(200)["joined"].get(&guest.user_id).is_some());
    // What guests may not do.
    guest
        .post(&path(&private, "kick"), json!({"user_id": alice.user_id}))
        .await
        .expect_error(403, "M_GUEST_ACCESS_FORBIDDEN");
    guest.post(&path(&private, "leave"), json!({})).await.expect(200);
}
