//! Accounts, devices, tokens, profiles, account data, push, user directory, E2EE keys.

use common::{Runtime, Service};

pub async fn run(rt: Runtime) -> anyhow::Result<Service> {
    let db = rt.database("userapi", &[]).await?;
    Ok(Service { name: "userapi", client_routes: axum::Router::new(), federation_routes: axum::Router::new(), db })
}
