//! The client-server API, `/_matrix/client/*`, except what syncapi serves.

mod routes;

use common::{Runtime, Service};

pub async fn run(rt: Runtime) -> anyhow::Result<Service> {
    let db = rt.database("clientapi", &[]).await?;
    Ok(Service {
        name: "clientapi",
        client_routes: routes::router(rt),
        federation_routes: axum::Router::new(),
        db,
    })
}
