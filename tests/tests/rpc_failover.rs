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

    let asking = tokio::spawn({
        let bus = bus.clone();
        let first = first.clone();
        async move {
            for i in 0..200 {
                let response = bus
                    .call::<QueryEvents>(&QueryEventsRequest { event_ids: vec![first.clone()] })
                    .await
                    .unwrap_or_else(|e| panic!("call {i} failed: {e}"));
                assert_eq!(response.events.len(), 1);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    deployment.kill_instance("roomserver-1", libc::SIGKILL).await;
    asking.await.expect("every call was answered");

    // The survivor takes every room's input, on all partitions.
    let mut later = Vec::new();
    for _ in 0..3 * bus.partitions() {
        later.push(publish_event(&deployment, &bus).await);
    }
    wait_stored(&bus, &later).await;
    let mut input = bus.jetstream().get_stream(bus.stream_name(Stream::InputRoomEvent)).await.unwrap();
    assert_eq!(input.info().await.unwrap().state.messages, 0);
}
