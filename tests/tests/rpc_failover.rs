//! Two roomserver instances: questions are answered and rooms' input is
//! processed while one of them is killed.

use std::time::Duration;

use common::{
    api::roomserver::{QueryEvents, QueryEventsRequest},
    bus::{Bus, Stream},
};
use ruma::OwnedEventId;
use tests::{
    Deployment, Mode, Options,
    events::{create_event, input},
};

async fn publish_event(deployment: &Deployment, bus: &Bus) -> OwnedEventId {
    let (event_id, room_id, event) = create_event(&deployment.server_name, &deployment.signing_key());
    bus.publish(&input(&deployment.server_name, &room_id, event_id.clone(), &event)).await.unwrap();
    event_id
}

async fn wait_stored(bus: &Bus, ids: &[OwnedEventId]) {
    for _ in 0..600 {
        let response = bus.call::<QueryEvents>(&QueryEventsRequest { event_ids: ids.to_vec() }).await.unwrap();
        if response.events.len() == ids.len() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("events were not stored");
}

#[tokio::test]
async fn rpc_and_input_survive_a_killed_instance() {
    let mut deployment = Deployment::start_with(Options {
        instances: Some("roomserver=2 clientapi=1 syncapi=1 federationreceiver=1".into()),
        ..Options::new(Mode::Polylith)
    })
    .await;
    let bus = deployment.bus().await;
    let first = publish_event(&deployment, &bus).await;
    wait_stored(&bus, std::slice::from_ref(&first)).await;

    let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let asking = tokio::spawn({
        let (bus, first, answered) = (bus.clone(), first.clone(), answered.clone());
        async move {
            for i in 0..200 {
                let response = bus
                    .call::<QueryEvents>(&QueryEventsRequest { event_ids: vec![first.clone()] })
                    .await
                    .unwrap_or_else(|e| panic!("call {i} failed: {e}"));
                assert_eq!(response.events.len(), 1);
                answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    });
    // Kill one instance while the calls are flowing, not before or after.
    let load = || answered.load(std::sync::atomic::Ordering::SeqCst);
    while load() < 20 {
        assert!(!asking.is_finished(), "the asking task stopped early");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    deployment.kill_instance("roomserver-1", libc::SIGKILL).await;
    assert!(load() < 200, "the kill came after every call; the test proves nothing");
    asking.await.expect("every call was answered");

    // The survivor takes every room's input, on all partitions.
    let mut later = Vec::new();
    for _ in 0..3 * bus.partitions() {
        later.push(publish_event(&deployment, &bus).await);
    }
    wait_stored(&bus, &later).await;
    // Each input is acked just after its event is stored, so the queue
    // empties a moment after the last one shows.
    let mut input = bus.jetstream().get_stream(bus.stream_name(Stream::InputRoomEvent)).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left = input.info().await.unwrap().state.messages;
        if left == 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{left} inputs never acked");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
