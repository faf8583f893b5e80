//! Inbound server-server API: `/_matrix/federation/*` and `/_matrix/key/*`.

mod routes;

use common::{Runtime, Service};

pub async fn run(rt: Runtime) -> anyhow::Result<Service> {
    let db = rt.database("federationreceiver", &[]).await?;
    Ok(Service {
        name: "federationreceiver",
        client_routes: axum::Router::new(),
        federation_routes: routes::router(rt),
        db,
    })
}
