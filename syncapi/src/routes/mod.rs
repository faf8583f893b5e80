//! One module per path that syncapi serves.

mod sync;

use std::sync::Arc;

use axum::Router;
use common::http::RumaRouter;
use ruma::api::client::sync::sync_events;

use crate::App;

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        // Sync
        .ruma_guest::<sync_events::v3::Request, _, _>(sync::sync)
        .with_state(app)
}
