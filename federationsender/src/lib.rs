//! Every outbound server-server request: discovery, signing and sending
//! (`client/`), other servers' keys (`keys/`), the questions other
//! components ask about them (`rpc.rs`), and the delivery of our events to
//! the servers in their rooms (`consumers/` fills the queues of `queue/`).

pub mod client;
mod consumers;
pub mod keys;
mod queue;
mod rpc;
mod storage;

use common::{Runtime, Service};

pub async fn run(rt: Runtime) -> anyhow::Result<Service> {
    let db = rt.database("federationsender", storage::MIGRATIONS).await?;
    let client = client::FederationClient::new(&rt)?;
    let global = &rt.config.global;
    let keys = keys::KeyRing::new(
        global.server_name.clone(),
        (rt.key.key_id(), rt.key.public_key()),
        client.clone(),
        storage::ServerKeys::new(db.clone()),
        global.trusted_key_servers.clone(),
    );
    // The server says how large a message may be; NATS's default if it has not.
    let max_payload = match rt.bus.client().server_info().max_payload {
        0 => client::MAX_RESPONSE_BYTES,
        given => given,
    };
    rpc::start(&rt, &rpc::Handlers { client: client.clone(), keys, max_payload });
    let store = storage::QueueStore::new(db.clone());
    let queues = queue::Queues::start(&rt, store.clone(), client);
    consumers::room_events::start(&rt, store, queues);
    Ok(Service {
        name: "federationsender",
        client_routes: axum::Router::new(),
        federation_routes: axum::Router::new(),
        db,
    })
}
