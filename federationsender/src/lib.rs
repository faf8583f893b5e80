//! Every outbound server-server request: queues, transactions, joins, queries.

mod consumers;
mod queue;

use common::{Runtime, Service, storage::Migration};

const MIGRATIONS: &[Migration] =
    &[Migration { version: 2, name: "delivery queues", sql: include_str!("queue/migrations/0002_queue.sql") }];

pub async fn run(rt: Runtime) -> anyhow::Result<Service> {
    let db = rt.database("federationsender", MIGRATIONS).await?;
    let store = queue::storage::QueueStore::new(db.clone());
    let queues = queue::Queues::start(&rt, store.clone());
    consumers::room_events::start(&rt, store, queues);
    Ok(Service {
        name: "federationsender",
        client_routes: axum::Router::new(),
        federation_routes: axum::Router::new(),
        db,
    })
}
