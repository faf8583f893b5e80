//! Every outbound server-server request: queues, transactions, joins, queries.

use common::{Runtime, Service};

pub async fn run(rt: Runtime) -> anyhow::Result<Service> {
    let db = rt.database("federationsender", &[]).await?;
    Ok(Service {
        name: "federationsender",
        client_routes: axum::Router::new(),
        federation_routes: axum::Router::new(),
        db,
    })
}
