//! `InputRoomEvent` → roomserver → `OutputRoomEvent`: nothing published is
//! lost when the consumer dies, and each event comes out exactly once.

use std::{collections::HashSet, time::Duration};

use common::{
    api::roomserver::{InputRoomEvent, OutputRoomEvent, QueryEvents, QueryEventsRequest},
    bus::{Bus, Stream, StreamMessage},
};
use ruma::OwnedEventId;
use tests::{
    Deployment, Mode, Options,
    events::{self, create_event},
};

const MINIMAL: &str = "roomserver=1 clientapi=1 syncapi=1 federationreceiver=1";

fn new_room(deployment: &Deployment) -> InputRoomEvent {
    let (event_id, room_id, event) = create_event(&deployment.server_name, &deployment.signing_key());
    events::input(&deployment.server_name, &room_id, event_id, &event)
}

async fn publish_under_new_id(bus: &Bus, msg: &InputRoomEvent) {
    use async_nats::jetstream::message::PublishMessage;
    let payload = serde_json::to_vec(msg).unwrap();
    let id = format!("{}-retry-{}", msg.msg_id(), rand::random::<u32>());
    let ack = bus
        .jetstream()
        .send_publish(bus.subject_for(msg), PublishMessage::build().payload(payload.into()).message_id(id))
        .await
        .unwrap();
    ack.await.unwrap();
}

/// Every event id on the output stream, in order, duplicates included.
async fn outputs(bus: &Bus) -> Vec<OwnedEventId> {
    let mut stream = bus.jetstream().get_stream(bus.stream_name(Stream::OutputRoomEvent)).await.unwrap();
    let state = stream.info().await.unwrap().state.clone();
    let mut ids = Vec::new();
    if state.messages == 0 {
        return ids;
    }
    for seq in state.first_sequence..=state.last_sequence {
        let message = stream.get_raw_message(seq).await.unwrap();
        if let OutputRoomEvent::NewRoomEvent(event) = serde_json::from_slice(&message.payload).unwrap() {
            ids.push(event.event_id);
        }
    }
    ids
}

async fn pending_input(bus: &Bus) -> u64 {
    let mut stream = bus.jetstream().get_stream(bus.stream_name(Stream::InputRoomEvent)).await.unwrap();
    stream.info().await.unwrap().state.messages
}

/// Waits until the roomserver has acked every input and `expected` outputs exist.
async fn wait_processed(deployment: &Deployment, bus: &Bus, expected: usize) -> Vec<OwnedEventId> {
    for _ in 0..600 {
        let out = outputs(bus).await;
        if pending_input(bus).await == 0 && out.len() >= expected {
            return out;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "the roomserver did not process its input: {} pending, {} outputs\n{}",
        pending_input(bus).await,
        outputs(bus).await.len(),
        deployment.log_tail("roomserver-1.log")
    );
}

fn assert_exactly_once(out: &[OwnedEventId], published: &[OwnedEventId]) {
    let distinct: HashSet<_> = out.iter().collect();
    assert_eq!(distinct.len(), out.len(), "an event was output twice");
    let expected: HashSet<_> = published.iter().collect();
    assert_eq!(distinct, expected, "outputs differ from inputs");
}

#[tokio::test]
async fn input_survives_a_killed_roomserver_and_is_processed_once() {
    let mut deployment =
        Deployment::start_with(Options { instances: Some(MINIMAL.into()), ..Options::new(Mode::Polylith) }).await;
    let bus = deployment.bus().await;

    // Published while no roomserver runs: it waits in the stream.
    deployment.kill_instance("roomserver-1", libc::SIGKILL).await;
    let mut published = Vec::new();
    let mut first = Vec::new();
    for _ in 0..20 {
        let msg = new_room(&deployment);
        bus.publish(&msg).await.unwrap();
        published.push(msg.event_id.clone());
        // The same fact again: JetStream drops it by its Nats-Msg-Id.
        bus.publish(&msg).await.unwrap();
        first.push(msg);
    }
    // The same events under other message ids, as a publisher retrying after
    // the duplicate window would send them: the roomserver itself must dedupe.
    for msg in &first[..5] {
        publish_under_new_id(&bus, msg).await;
    }
    assert_eq!(pending_input(&bus).await, 25, "20 events, 5 republished under new ids");
    assert_eq!(outputs(&bus).await.len(), 0, "nothing is processed while the roomserver is down");

    deployment.start_instance("roomserver").await;
    let out = wait_processed(&deployment, &bus, published.len()).await;
    assert_exactly_once(&out, &published);

    // Killed in the middle of a burst: what it held is redelivered to the
    // next instance, and still comes out once.
    for _ in 0..60 {
        let msg = new_room(&deployment);
        bus.publish(&msg).await.unwrap();
        published.push(msg.event_id.clone());
    }
    let mut waited = 0;
    while outputs(&bus).await.len() < 30 {
        assert!(waited < 600, "the burst is not being processed");
        waited += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    deployment.kill_instance("roomserver-extra1", libc::SIGKILL).await;
    deployment.start_instance("roomserver").await;
    let out = wait_processed(&deployment, &bus, published.len()).await;
    assert_exactly_once(&out, &published);

    // And the roomserver can tell what it stored.
    let stored = bus
        .call::<QueryEvents>(&QueryEventsRequest { event_ids: published.clone() })
        .await
        .expect("the roomserver answers");
    assert_eq!(stored.events.len(), published.len());
}

/// One room's events come out in the order they went in, and a poison
/// message (undecodable, or an event whose id does not match) is dropped
/// without holding up the events behind it.
#[tokio::test]
async fn a_room_is_processed_in_order_past_poison_messages() {
    use async_nats::jetstream::message::PublishMessage;
    use common::bus::partition_of;

    let deployment = Deployment::start(Mode::Monolith).await;
    let bus = deployment.bus().await;
    let key = deployment.signing_key();
    let room_id: ruma::OwnedRoomId = format!("!ordered:{}", deployment.server_name).try_into().unwrap();
    let partition = bus.partition_subject(Stream::InputRoomEvent, partition_of(room_id.as_str(), bus.partitions()));
    let mut expected = Vec::new();
    for n in 0..30 {
        let (event_id, event) = events::event_in_room(&deployment.server_name, &key, &room_id, n);
        let msg = events::input(&deployment.server_name, &room_id, event_id.clone(), &event);
        match n {
            10 => {
                let ack = bus
                    .jetstream()
                    .send_publish(
                        partition.clone(),
                        PublishMessage::build().payload("not json".into()).message_id("poison"),
                    )
                    .await
                    .unwrap();
                ack.await.unwrap();
            }
            20 => {
                let forged = InputRoomEvent { event_id: "$forged".try_into().unwrap(), ..msg.clone() };
                bus.publish(&forged).await.unwrap();
            }
            _ => {}
        }
        bus.publish(&msg).await.unwrap();
        expected.push(event_id);
    }
    let out = wait_processed(&deployment, &bus, expected.len()).await;
    assert_eq!(out, expected, "one room's events in publish order, without the poison");
}
