//! Sync API: `/sync`, the deprecated `/events` stream, room history and the
//! projection of rooms it serves them from. The projection is fed only by
//! the streams (`consumers/`); every instance serves from the same tables and
//! wakes its own long-polls when another instance commits (`notifier.rs`).

mod backfill;
mod consumers;
mod filter;
mod format;
mod notifier;
pub mod presence;
mod routes;
mod storage;
mod sync;
mod token;
mod visibility;

use std::sync::Arc;

use common::{Runtime, Service, storage::Outbox};

use crate::{notifier::Notifier, storage::Store};

/// What every handler and consumer works with.
pub struct App {
    pub rt: Runtime,
    pub store: Store,
    pub notifier: Notifier,
    pub backfill_misses: backfill::Misses,
}

impl App {
    /// Wakes the long-polls of the local users among `users`, on every instance.
    pub async fn wake_local(&self, mut users: Vec<String>) {
        let suffix = format!(":{}", self.rt.config.global.server_name);
        users.retain(|u| u.ends_with(&suffix));
        users.sort();
        users.dedup();
        self.notifier.wake(users).await;
    }
}

pub async fn run(rt: Runtime) -> anyhow::Result<Service> {
    start(rt, false).await
}

/// As a process of its own, syncapi also answers the member lists (from its
/// projection), which clientapi answers in the monolith.
pub async fn run_alone(rt: Runtime) -> anyhow::Result<Service> {
    start(rt, true).await
}

async fn start(rt: Runtime, member_lists: bool) -> anyhow::Result<Service> {
    let db = rt.database("syncapi", storage::MIGRATIONS).await?;
    let notifier = Notifier::start(&rt).await?;
    rt.spawn("syncapi outbox relay", {
        let (outbox, shutdown) = (Outbox::new(db.clone(), rt.bus.clone(), "syncapi"), rt.shutdown.clone());
        async move {
            outbox.relay(shutdown).await;
            Ok(())
        }
    });
    let presence_routes = presence::routes(rt.clone(), db.clone());
    let app = Arc::new(App { rt, store: Store::new(db.clone()), notifier, backfill_misses: Default::default() });
    consumers::start(&app);
    let client_routes = routes::router(app, member_lists).merge(presence_routes);
    Ok(Service { name: "syncapi", client_routes, federation_routes: axum::Router::new(), db })
}
