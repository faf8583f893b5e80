//! The roomserver's authorisation and state: forks resolved to the answers
//! the state resolution algorithm gives, whatever order the branches arrive
//! in; rejected and soft-failed events kept out of the room; outliers,
//! historical events, missing prev events with a given state, duplicates,
//! redactions (also of events that arrive after their redaction), and the
//! adds/removes that `OutputRoomEvent` carries.

use common::api::roomserver::{
    InputKind, InputVerdict, QueryEvents, QueryEventsRequest, QueryMembership, QueryMembershipRequest,
    QueryStateAtEvent, QueryStateAtEventRequest,
};
use ruma::{OwnedEventId, RoomVersionId};
use serde_json::{Value, json};
use tests::{Deployment, Mode, events::Dag, streams::read_until};

struct Room {
    dag: Dag,
    alice: String,
    bob: String,
    create: OwnedEventId,
    alice_join: OwnedEventId,
    power: OwnedEventId,
    join_rules: OwnedEventId,
    bob_join: OwnedEventId,
    topic: OwnedEventId,
}

impl Room {
    /// Auth events as the room version wants them: v12 rooms name their
    /// create event by the room id instead.
    fn auth<'a>(&'a self, ids: &[&'a OwnedEventId]) -> Vec<&'a OwnedEventId> {
        let v12 = self.dag.version.rules().unwrap().authorization.room_create_event_id_as_room_id;
        ids.iter().copied().filter(|id| !(v12 && **id == self.create)).collect()
    }
}

/// Power levels where alice (the creator) rules and `bob` has `bob_level`.
fn power_levels(version: &RoomVersionId, alice: &str, bob: &str, bob_level: Option<i64>) -> Value {
    let mut users = serde_json::Map::new();
    // Room version 12 creators have unlimited power and are not listed.
    if !version.rules().unwrap().authorization.explicitly_privilege_room_creators {
        users.insert(alice.to_owned(), json!(100));
    }
    if let Some(level) = bob_level {
        users.insert(bob.to_owned(), json!(level));
    }
    json!({ "users": users, "users_default": 0, "events_default": 0, "state_default": 50, "ban": 50, "kick": 50,
            "redact": 50, "invite": 0 })
}

/// create, alice joins, power levels (bob 50), public join rules, bob joins, a topic.
async fn room(deployment: &Deployment, version: RoomVersionId) -> Room {
    let alice = format!("@alice:{}", deployment.server_name);
    let bob = format!("@bob:{}", deployment.server_name);
    let (mut dag, create) = Dag::create(deployment, version.clone(), &alice).await;
    let v12 = version.rules().unwrap().authorization.room_create_event_id_as_room_id;
    let auth = |ids: &[&OwnedEventId]| -> Vec<OwnedEventId> {
        ids.iter().filter(|id| !(v12 && ***id == create)).map(|id| (*id).clone()).collect()
    };
    let join = json!({"membership": "join"});
    let a = auth(&[&create]);
    let alice_join = dag
        .accepted(&alice, "m.room.member", Some(&alice), join.clone(), &[&create], &a.iter().collect::<Vec<_>>())
        .await;
    let a = auth(&[&create, &alice_join]);
    let levels = power_levels(&version, &alice, &bob, Some(50));
    let power = dag
        .accepted(&alice, "m.room.power_levels", Some(""), levels, &[&alice_join], &a.iter().collect::<Vec<_>>())
        .await;
    let a = auth(&[&create, &alice_join, &power]);
    let rules = json!({"join_rule": "public"});
    let join_rules =
        dag.accepted(&alice, "m.room.join_rules", Some(""), rules, &[&power], &a.iter().collect::<Vec<_>>()).await;
    let a = auth(&[&create, &power, &join_rules]);
    let bob_join =
        dag.accepted(&bob, "m.room.member", Some(&bob), join, &[&join_rules], &a.iter().collect::<Vec<_>>()).await;
    let a = auth(&[&create, &alice_join, &power]);
    let topic = json!({"topic": "original"});
    let topic =
        dag.accepted(&alice, "m.room.topic", Some(""), topic, &[&bob_join], &a.iter().collect::<Vec<_>>()).await;
    Room { dag, alice, bob, create, alice_join, power, join_rules, bob_join, topic }
}

fn output_stream(deployment: &Deployment) -> String {
    format!("{}_OutputRoomEvent", deployment.config.global.nats.stream_prefix)
}

fn key(t: &str, k: &str) -> (String, String) {
    (t.to_owned(), k.to_owned())
}

/// Alice demotes bob while bob, still a moderator on his branch, changes the
/// topic. State resolution applies the power change first, so bob's topic
/// loses: the answer is the demotion and the original topic, whichever
/// branch arrived first — and a merge event settles the room on it.
async fn topic_against_demotion(version: RoomVersionId, demotion_first: bool) {
    let deployment = Deployment::start(Mode::Polylith).await;
    let mut room = room(&deployment, version.clone()).await;
    let (alice, bob) = (room.alice.clone(), room.bob.clone());

    let a = room.auth(&[&room.create, &room.alice_join, &room.power]).into_iter().cloned().collect::<Vec<_>>();
    let demotion = room.dag.build(
        &alice,
        "m.room.power_levels",
        Some(""),
        power_levels(&version, &alice, &bob, None),
        &[&room.topic],
        &a.iter().collect::<Vec<_>>(),
    );
    let a = room.auth(&[&room.create, &room.bob_join, &room.power]).into_iter().cloned().collect::<Vec<_>>();
    let bobs_topic = room.dag.build(
        &bob,
        "m.room.topic",
        Some(""),
        json!({"topic": "bob's"}),
        &[&room.topic],
        &a.iter().collect::<Vec<_>>(),
    );

    if demotion_first {
        assert_eq!(
            room.dag.input(&demotion, InputKind::New, None).await,
            InputVerdict::Accepted { event_id: demotion.event_id.clone() }
        );
        // Allowed by the state before it, refused by the room's current state.
        let verdict = room.dag.input(&bobs_topic, InputKind::New, None).await;
        assert!(matches!(verdict, InputVerdict::SoftFailed { .. }), "{verdict:?}");
    } else {
        assert_eq!(
            room.dag.input(&bobs_topic, InputKind::New, None).await,
            InputVerdict::Accepted { event_id: bobs_topic.event_id.clone() }
        );
        assert_eq!(
            room.dag.input(&demotion, InputKind::New, None).await,
            InputVerdict::Accepted { event_id: demotion.event_id.clone() }
        );
    }
    let state = room.dag.current_state().await;
    assert_eq!(state[&key("m.room.power_levels", "")], demotion.event_id);
    assert_eq!(state[&key("m.room.topic", "")], room.topic, "bob's topic loses to the demotion");

    // A merge over both branches comes to the same answer.
    let a = room.auth(&[&room.create, &room.alice_join, &demotion.event_id]).into_iter().cloned().collect::<Vec<_>>();
    let merge = room
        .dag
        .accepted(
            &alice,
            "m.room.message",
            None,
            json!({"msgtype": "m.text", "body": "merged"}),
            &[&demotion.event_id, &bobs_topic.event_id],
            &a.iter().collect::<Vec<_>>(),
        )
        .await;
    let bus = deployment.bus().await;
    let at_merge = bus
        .call::<QueryStateAtEvent>(&QueryStateAtEventRequest {
            room_id: room.dag.room_id.clone(),
            event_id: merge.clone(),
            after: true,
            filter: None,
        })
        .await
        .expect("the state at the merge");
    let ids: Vec<&OwnedEventId> = at_merge.state.iter().map(|e| &e.event_id).collect();
    assert!(ids.contains(&&room.topic) && ids.contains(&&demotion.event_id), "{ids:?}");
    assert!(!ids.contains(&&bobs_topic.event_id));
    let state = room.dag.current_state().await;
    assert_eq!(state[&key("m.room.topic", "")], room.topic);
}

#[tokio::test]
async fn a_demotion_beats_a_concurrent_topic_in_v10_whichever_arrives_first() {
    topic_against_demotion(RoomVersionId::V10, true).await;
    topic_against_demotion(RoomVersionId::V10, false).await;
}

#[tokio::test]
async fn a_demotion_beats_a_concurrent_topic_in_v12_whichever_arrives_first() {
    topic_against_demotion(RoomVersionId::V12, true).await;
    topic_against_demotion(RoomVersionId::V12, false).await;
}

/// Events the rules forbid are rejected and never served; duplicates keep
/// their first verdict; the output says what entered and left the state.
#[tokio::test]
async fn forbidden_events_are_rejected_and_outputs_carry_the_state_change() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let mut room = room(&deployment, RoomVersionId::V10).await;
    let (alice, bob) = (room.alice.clone(), room.bob.clone());
    let charlie = format!("@charlie:{}", deployment.server_name);
    let bus = deployment.bus().await;

    // Charlie never joined: his message is rejected against its auth events.
    let a = room.auth(&[&room.create, &room.power]).into_iter().cloned().collect::<Vec<_>>();
    let (intruder, verdict) = room
        .dag
        .send(&charlie, "m.room.message", None, json!({"body": "hi"}), &[&room.topic], &a.iter().collect::<Vec<_>>())
        .await;
    assert!(matches!(verdict, InputVerdict::Rejected { .. }), "{verdict:?}");
    let stored = bus.call::<QueryEvents>(&QueryEventsRequest { event_ids: vec![intruder.clone()] }).await.unwrap();
    assert!(stored.events.is_empty(), "rejected events are never served");

    // Auth events that are not the ones the rules select: rejected.
    let a = room.auth(&[&room.create, &room.power, &room.join_rules]).into_iter().cloned().collect::<Vec<_>>();
    let (_, verdict) = room
        .dag
        .send(&alice, "m.room.message", None, json!({"body": "hi"}), &[&room.topic], &a.iter().collect::<Vec<_>>())
        .await;
    assert!(matches!(verdict, InputVerdict::Rejected { .. }), "wrong auth events: {verdict:?}");

    // Bob (50) may not set power levels (state_default 50 but changing his own level up is refused).
    let a = room.auth(&[&room.create, &room.bob_join, &room.power]).into_iter().cloned().collect::<Vec<_>>();
    let mut levels = power_levels(&RoomVersionId::V10, &alice, &bob, Some(100));
    levels["users"][&bob] = json!(100);
    let (_, verdict) = room
        .dag
        .send(&bob, "m.room.power_levels", Some(""), levels, &[&room.topic], &a.iter().collect::<Vec<_>>())
        .await;
    assert!(matches!(verdict, InputVerdict::Rejected { .. }), "bob cannot raise himself: {verdict:?}");

    // Alice bans bob: the output adds the ban and removes bob's join.
    let a = room
        .auth(&[&room.create, &room.alice_join, &room.power, &room.bob_join])
        .into_iter()
        .cloned()
        .collect::<Vec<_>>();
    let ban_event = room.dag.build(
        &alice,
        "m.room.member",
        Some(&bob),
        json!({"membership": "ban", "reason": "spam"}),
        &[&room.topic],
        &a.iter().collect::<Vec<_>>(),
    );
    let ban = ban_event.event_id.clone();
    assert_eq!(
        room.dag.input(&ban_event, InputKind::New, None).await,
        InputVerdict::Accepted { event_id: ban.clone() }
    );
    // The same event again: the same verdict, and nothing new comes out.
    assert_eq!(
        room.dag.input(&ban_event, InputKind::New, None).await,
        InputVerdict::Accepted { event_id: ban.clone() }
    );
    let stream = output_stream(&deployment);
    let seen =
        read_until(&deployment, &stream, "for the ban", |m| m["new_room_event"]["event_id"] == ban.as_str()).await;
    let output = &seen.last().unwrap()["new_room_event"];
    assert_eq!(output["adds_state_event_ids"], json!([ban]));
    assert_eq!(output["removes_state_event_ids"], json!([room.bob_join]));
    assert_eq!(output["latest_event_ids"], json!([ban]));
    let orderings: Vec<i64> = seen
        .iter()
        .filter(|m| m["new_room_event"]["room_id"] == room.dag.room_id.as_str())
        .map(|m| m["new_room_event"]["stream_ordering"].as_i64().unwrap())
        .collect();
    assert_eq!(orderings, (1..=orderings.len() as i64).collect::<Vec<_>>(), "one linear order, no gaps");
    let membership = bus
        .call::<QueryMembership>(&QueryMembershipRequest {
            room_id: room.dag.room_id.clone(),
            user_id: bob.as_str().try_into().unwrap(),
        })
        .await
        .unwrap();
    assert_eq!(membership.membership.as_deref(), Some("ban"));

    // Bob, banned, cannot rejoin.
    let a = room.auth(&[&room.create, &room.power, &room.join_rules, &ban]).into_iter().cloned().collect::<Vec<_>>();
    let (_, verdict) = room
        .dag
        .send(&bob, "m.room.member", Some(&bob), json!({"membership": "join"}), &[&ban], &a.iter().collect::<Vec<_>>())
        .await;
    assert!(matches!(verdict, InputVerdict::Rejected { .. }), "{verdict:?}");
}

/// Outliers are stored without state; an event whose prev events are unknown
/// is placed with the state it is given; historical events leave the current
/// state alone.
#[tokio::test]
async fn outliers_given_state_and_historical_events() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let mut room = room(&deployment, RoomVersionId::V10).await;
    let alice = room.alice.clone();
    let bus = deployment.bus().await;

    // An outlier: stored and servable, but not part of the room's state.
    let a = room.auth(&[&room.create, &room.alice_join, &room.power]).into_iter().cloned().collect::<Vec<_>>();
    let name = room.dag.build(
        &alice,
        "m.room.name",
        Some(""),
        json!({"name": "outlier"}),
        &[&room.topic],
        &a.iter().collect::<Vec<_>>(),
    );
    assert_eq!(
        room.dag.input(&name, InputKind::Outlier, None).await,
        InputVerdict::Accepted { event_id: name.event_id.clone() }
    );
    assert!(!room.dag.current_state().await.contains_key(&key("m.room.name", "")));
    let stored = bus.call::<QueryEvents>(&QueryEventsRequest { event_ids: vec![name.event_id.clone()] }).await.unwrap();
    assert_eq!(stored.events.len(), 1);
    let at = bus
        .call::<QueryStateAtEvent>(&QueryStateAtEventRequest {
            room_id: room.dag.room_id.clone(),
            event_id: name.event_id.clone(),
            after: true,
            filter: None,
        })
        .await;
    assert!(at.is_err(), "an outlier has no state");

    // An event after an unknown prev event, with the state before it given.
    let unknown_prev = room.dag.build(
        &alice,
        "m.room.message",
        None,
        json!({"body": "never sent"}),
        &[&room.topic],
        &a.iter().collect::<Vec<_>>(),
    );
    let a2 = room.auth(&[&room.create, &room.alice_join, &room.power]).into_iter().cloned().collect::<Vec<_>>();
    let after_gap = room.dag.build(
        &alice,
        "m.room.message",
        None,
        json!({"body": "after a gap"}),
        &[&unknown_prev.event_id],
        &a2.iter().collect::<Vec<_>>(),
    );
    let verdict = room.dag.input(&after_gap, InputKind::New, None).await;
    assert!(matches!(verdict, InputVerdict::Rejected { .. }), "no state to place it: {verdict:?}");
    let after_gap = room.dag.build(
        &alice,
        "m.room.message",
        None,
        json!({"body": "after a gap, with state"}),
        &[&unknown_prev.event_id],
        &a2.iter().collect::<Vec<_>>(),
    );
    let state: Vec<OwnedEventId> = room.dag.current_state().await.into_values().collect();
    assert_eq!(
        room.dag.input(&after_gap, InputKind::New, Some(state)).await,
        InputVerdict::Accepted { event_id: after_gap.event_id.clone() }
    );

    // A historical event: stored with its state, the current state untouched.
    let before = room.dag.current_state().await;
    let old_topic = room.dag.build(
        &alice,
        "m.room.topic",
        Some(""),
        json!({"topic": "old"}),
        &[&room.power],
        &a.iter().collect::<Vec<_>>(),
    );
    assert_eq!(
        room.dag.input(&old_topic, InputKind::Historical, None).await,
        InputVerdict::Accepted { event_id: old_topic.event_id.clone() }
    );
    assert_eq!(room.dag.current_state().await, before);
}

/// A redaction prunes its target in what is served; one that arrives before
/// its target is applied when the target comes.
#[tokio::test]
async fn redactions_prune_their_targets_even_out_of_order() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let mut room = room(&deployment, RoomVersionId::V11).await;
    let (alice, bob) = (room.alice.clone(), room.bob.clone());
    let bus = deployment.bus().await;
    let bob_auth = room.auth(&[&room.create, &room.bob_join, &room.power]).into_iter().cloned().collect::<Vec<_>>();
    let alice_auth = room.auth(&[&room.create, &room.alice_join, &room.power]).into_iter().cloned().collect::<Vec<_>>();

    let message = room
        .dag
        .accepted(
            &bob,
            "m.room.message",
            None,
            json!({"msgtype": "m.text", "body": "secret"}),
            &[&room.topic],
            &bob_auth.iter().collect::<Vec<_>>(),
        )
        .await;
    let alice_refs: Vec<&OwnedEventId> = alice_auth.iter().collect();
    let redaction = room.dag.redaction(&alice, &message, &[&message], &alice_refs);
    assert_eq!(
        room.dag.input(&redaction, InputKind::New, None).await,
        InputVerdict::Accepted { event_id: redaction.event_id.clone() }
    );
    let stored = bus.call::<QueryEvents>(&QueryEventsRequest { event_ids: vec![message.clone()] }).await.unwrap();
    let event: Value = serde_json::from_str(stored.events[0].event.get()).unwrap();
    assert!(stored.events[0].redacted);
    assert_eq!(event["content"], json!({}), "the content is pruned: {event}");
    let stream = output_stream(&deployment);
    read_until(&deployment, &stream, "for the redaction", |m| {
        m["redacted_event"]["redacted_event_id"] == message.as_str()
    })
    .await;

    // The redaction first, its target after: applied on arrival.
    let target = room.dag.build(
        &bob,
        "m.room.message",
        None,
        json!({"body": "late"}),
        &[&redaction.event_id],
        &bob_auth.iter().collect::<Vec<_>>(),
    );
    let early = room.dag.redaction(&alice, &target.event_id, &[&redaction.event_id], &alice_refs);
    assert_eq!(
        room.dag.input(&early, InputKind::New, None).await,
        InputVerdict::Accepted { event_id: early.event_id.clone() }
    );
    assert_eq!(
        room.dag.input(&target, InputKind::New, None).await,
        InputVerdict::Accepted { event_id: target.event_id.clone() }
    );
    let stored =
        bus.call::<QueryEvents>(&QueryEventsRequest { event_ids: vec![target.event_id.clone()] }).await.unwrap();
    assert!(stored.events[0].redacted, "the late target is redacted on arrival");
}

/// An event that came from elsewhere has its signatures and hashes checked:
/// a forged signature is rejected, and content that does not match its hash
/// is stored pruned to what the signatures cover.
#[tokio::test]
async fn events_from_elsewhere_have_their_signatures_and_hashes_checked() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let mut room = room(&deployment, RoomVersionId::V10).await;
    let bob = room.bob.clone();
    let bus = deployment.bus().await;
    let auth = room.auth(&[&room.create, &room.bob_join, &room.power]).into_iter().cloned().collect::<Vec<_>>();
    let auth: Vec<&OwnedEventId> = auth.iter().collect();
    let remote = "relay.example";

    // Signed as it should be: accepted from any origin.
    let fine = room.dag.build(&bob, "m.room.message", None, json!({"body": "fine"}), &[&room.topic], &auth);
    assert_eq!(
        room.dag.input_from(remote, &fine, InputKind::New, None).await,
        InputVerdict::Accepted { event_id: fine.event_id.clone() }
    );

    // A signature that does not verify.
    let mut forged = room.dag.build(&bob, "m.room.message", None, json!({"body": "forged"}), &[&fine.event_id], &auth);
    let server = deployment.server_name.clone();
    let signatures = forged.object.get_mut("signatures").unwrap();
    let ruma::CanonicalJsonValue::Object(signatures) = signatures else { panic!("signatures") };
    let ruma::CanonicalJsonValue::Object(ours) = signatures.get_mut(&server).unwrap() else { panic!("ours") };
    for value in ours.values_mut() {
        *value = ruma::CanonicalJsonValue::String("AAAA".repeat(22));
    }
    let verdict = room.dag.input_from(remote, &forged, InputKind::New, None).await;
    assert!(matches!(verdict, InputVerdict::Rejected { .. }), "{verdict:?}");

    // Content changed after hashing: the signatures (over the redacted form)
    // still hold, the hash does not, so the event is kept pruned.
    let mut tampered =
        room.dag.build(&bob, "m.room.message", None, json!({"body": "honest"}), &[&fine.event_id], &auth);
    tampered.object.insert(
        "content".into(),
        ruma::CanonicalJsonValue::Object(
            [("body".to_owned(), ruma::CanonicalJsonValue::String("tampered".into()))].into_iter().collect(),
        ),
    );
    assert_eq!(
        room.dag.input_from(remote, &tampered, InputKind::New, None).await,
        InputVerdict::Accepted { event_id: tampered.event_id.clone() }
    );
    let stored =
        bus.call::<QueryEvents>(&QueryEventsRequest { event_ids: vec![tampered.event_id.clone()] }).await.unwrap();
    let event: Value = serde_json::from_str(stored.events[0].event.get()).unwrap();
    assert_eq!(event["content"], json!({}), "{event}");
}

/// Inviting a local user is announced with the room's stripped state, and
/// the invite is retired when the invitee joins.
#[tokio::test]
async fn invites_are_announced_and_retired() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let mut room = room(&deployment, RoomVersionId::V10).await;
    let alice = room.alice.clone();
    let charlie = format!("@charlie:{}", deployment.server_name);
    let a = room
        .auth(&[&room.create, &room.alice_join, &room.power, &room.join_rules])
        .into_iter()
        .cloned()
        .collect::<Vec<_>>();
    let invite = room
        .dag
        .accepted(
            &alice,
            "m.room.member",
            Some(&charlie),
            json!({"membership": "invite"}),
            &[&room.topic],
            &a.iter().collect::<Vec<_>>(),
        )
        .await;
    let stream = output_stream(&deployment);
    let seen =
        read_until(&deployment, &stream, "for the invite", |m| m["new_invite_event"]["event_id"] == invite.as_str())
            .await;
    let announced = &seen.last().unwrap()["new_invite_event"];
    assert_eq!(announced["target_user_id"], charlie);
    let stripped: Vec<(&str, &str)> = announced["invite_room_state"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["type"].as_str().unwrap(), e["state_key"].as_str().unwrap()))
        .collect();
    assert!(stripped.contains(&("m.room.create", "")), "{stripped:?}");
    assert!(stripped.contains(&("m.room.join_rules", "")), "{stripped:?}");
    assert!(stripped.contains(&("m.room.topic", "")), "{stripped:?}");
    assert!(stripped.contains(&("m.room.member", alice.as_str())), "the inviter: {stripped:?}");
    assert!(announced["invite_room_state"][0].get("event_id").is_none(), "stripped events carry no ids");

    let a = room.auth(&[&room.create, &room.power, &room.join_rules, &invite]).into_iter().cloned().collect::<Vec<_>>();
    let join = room
        .dag
        .accepted(
            &charlie,
            "m.room.member",
            Some(&charlie),
            json!({"membership": "join"}),
            &[&invite],
            &a.iter().collect::<Vec<_>>(),
        )
        .await;
    let seen = read_until(&deployment, &stream, "for the retired invite", |m| {
        m["retire_invite_event"]["invite_event_id"] == invite.as_str()
    })
    .await;
    let retired = &seen.last().unwrap()["retire_invite_event"];
    assert_eq!(retired["retired_by_event_id"], join.as_str());
    assert_eq!(retired["membership"], "join");
}

/// The questions federation will ask: the auth chain of events, the state
/// before an event, history backwards from a point, and what lies between
/// two sets of events.
#[tokio::test]
async fn auth_chains_backfill_and_missing_events() {
    use common::api::roomserver::{
        QueryAuthChain, QueryAuthChainRequest, QueryBackfill, QueryBackfillRequest, QueryMissingEvents,
        QueryMissingEventsRequest,
    };
    let deployment = Deployment::start(Mode::Polylith).await;
    let mut room = room(&deployment, RoomVersionId::V10).await;
    let bob = room.bob.clone();
    let bus = deployment.bus().await;
    let auth = room.auth(&[&room.create, &room.bob_join, &room.power]).into_iter().cloned().collect::<Vec<_>>();
    let auth: Vec<&OwnedEventId> = auth.iter().collect();
    let mut messages = Vec::new();
    let mut prev = room.topic.clone();
    for n in 0..5 {
        let id =
            room.dag.accepted(&bob, "m.room.message", None, json!({"body": format!("{n}")}), &[&prev], &auth).await;
        messages.push(id.clone());
        prev = id;
    }
    let ids = |events: &[common::api::roomserver::StoredEvent]| -> Vec<OwnedEventId> {
        events.iter().map(|e| e.event_id.clone()).collect()
    };

    // Bob's message is authorised by the create event, the power levels and
    // his join, whose own chain adds the join rules and alice's join.
    let chain =
        bus.call::<QueryAuthChain>(&QueryAuthChainRequest { event_ids: vec![messages[0].clone()] }).await.unwrap();
    let mut chain = ids(&chain.events);
    chain.sort();
    let mut expected = vec![
        room.create.clone(),
        room.power.clone(),
        room.bob_join.clone(),
        room.join_rules.clone(),
        room.alice_join.clone(),
    ];
    expected.sort();
    assert_eq!(chain, expected);

    // The state before an event leaves the event itself out.
    let before = bus
        .call::<QueryStateAtEvent>(&QueryStateAtEventRequest {
            room_id: room.dag.room_id.clone(),
            event_id: room.topic.clone(),
            after: false,
            filter: None,
        })
        .await
        .unwrap();
    assert!(!ids(&before.state).contains(&room.topic));
    assert_eq!(before.state.len(), 5, "create, two joins, power levels, join rules");

    // Backfill from the last message: it and the ones before, newest first.
    let backfill = bus
        .call::<QueryBackfill>(&QueryBackfillRequest {
            room_id: room.dag.room_id.clone(),
            from: vec![messages[4].clone()],
            limit: 3,
            for_server: "remote.example".try_into().unwrap(),
        })
        .await
        .unwrap();
    assert_eq!(ids(&backfill.events), vec![messages[4].clone(), messages[3].clone(), messages[2].clone()]);

    // Between the first message and the last: the three in between, oldest first.
    let missing = bus
        .call::<QueryMissingEvents>(&QueryMissingEventsRequest {
            room_id: room.dag.room_id.clone(),
            earliest: vec![messages[0].clone()],
            latest: vec![messages[4].clone()],
            limit: 10,
            for_server: "remote.example".try_into().unwrap(),
        })
        .await
        .unwrap();
    assert_eq!(ids(&missing.events), messages[1..4].to_vec());
}
