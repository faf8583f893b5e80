//! Inbound server-server API: `/_matrix/federation/*` and `/_matrix/key/*`.
//! Every request is signed (X-Matrix, checked by the extractor); events from
//! other servers are checked and their gaps filled here, before they reach
//! the roomserver, so that it never waits on the network.

mod access;
mod backfill;
mod fetch;
mod incoming;
mod membership;
mod routes;
mod rpc;
mod storage;

use common::{Runtime, Service};

#[derive(Clone)]
pub struct App {
    pub rt: Runtime,
    pub store: storage::Store,
}

pub async fn run(rt: Runtime) -> anyhow::Result<Service> {
    let db = rt.database("federationreceiver", storage::MIGRATIONS).await?;
    let app = App { rt: rt.clone(), store: storage::Store::new(db.clone()) };
    storage::start_expiry(&app);
    rpc::start(&app);
    Ok(Service {
        name: "federationreceiver",
        client_routes: axum::Router::new(),
        federation_routes: routes::router(app),
        db,
    })
}
