//! The roomserver: consumes `InputRoomEvent` strictly in order per room,
//! stores events, and emits `OutputRoomEvent`.

mod consumers;
mod rpc;
mod storage;

use common::{Runtime, Service, storage::Outbox};

pub async fn run(rt: Runtime) -> anyhow::Result<Service> {
    let db = rt.database("roomserver", storage::MIGRATIONS).await?;
    let outbox = Outbox::new(db.clone(), rt.bus.clone(), "roomserver");
    let events = storage::Events::new(db.clone());
    rt.spawn("roomserver outbox relay", {
        let (outbox, shutdown) = (outbox.clone(), rt.shutdown.clone());
        async move {
            outbox.relay(shutdown).await;
            Ok(())
        }
    });
    consumers::input::start(&rt, events.clone(), outbox);
    rpc::start(&rt, events);
    Ok(Service { name: "roomserver", client_routes: axum::Router::new(), federation_routes: axum::Router::new(), db })
}
