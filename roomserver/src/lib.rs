//! The roomserver: consumes `InputRoomEvent` strictly in order per room,
//! authorises each event, works out the room's state, and emits
//! `OutputRoomEvent`; answers questions about rooms over RPC.

mod consumers;
mod directory;
mod input;
mod rpc;
mod storage;
mod visibility;

use common::{Runtime, Service, storage::Outbox};

pub async fn run(rt: Runtime) -> anyhow::Result<Service> {
    let db = rt.database("roomserver", storage::MIGRATIONS).await?;
    let outbox = Outbox::new(db.clone(), rt.bus.clone(), "roomserver");
    let store = storage::Store::new(db.clone());
    rt.spawn("roomserver outbox relay", {
        let (outbox, shutdown) = (outbox.clone(), rt.shutdown.clone());
        async move {
            outbox.relay(shutdown).await;
            Ok(())
        }
    });
    consumers::input::start(&rt, store.clone(), outbox);
    rpc::start(&rt, &store);
    directory::start(&rt, db.clone());
    Ok(Service { name: "roomserver", client_routes: axum::Router::new(), federation_routes: axum::Router::new(), db })
}
