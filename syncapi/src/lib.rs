//! Sync API: /sync, room history and the projection of rooms it serves them from.

use common::{Runtime, Service};

pub async fn run(rt: Runtime) -> anyhow::Result<Service> {
    let db = rt.database("syncapi", &[]).await?;
    Ok(Service { name: "syncapi", client_routes: axum::Router::new(), federation_routes: axum::Router::new(), db })
}
