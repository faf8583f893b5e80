//! One module per path that syncapi serves.

mod sync;
// The deprecated event stream
mod events;
// Room history
mod context;
mod history;
mod joined_members;
mod members;
mod messages;
mod relations;
mod threads;
mod timestamp_to_event;

use std::sync::Arc;

use axum::{
    Router,
    extract::{Request, State},
    middleware::{self, Next},
    response::Response,
};
use common::{bus::Stream, http::RumaRouter};
use ruma::api::client::{
    context::get_context,
    membership::{get_member_events, joined_members as joined_members_api},
    message::get_message_events,
    relations::{
        get_relating_events, get_relating_events_with_rel_type, get_relating_events_with_rel_type_and_event_type,
    },
    room::get_event_by_timestamp,
    sync::sync_events,
    threads::get_threads,
};

use crate::{
    App,
    consumers::{HISTORY_FENCE, SYNC_FENCE},
};

/// `member_lists`: also `/members` and `/joined_members`, which clientapi
/// answers in the monolith (one router cannot hold two handlers for a path).
pub fn router(app: Arc<App>, member_lists: bool) -> Router {
    let sync = Router::new()
        .ruma_guest::<sync_events::v3::Request, _, _>(sync::sync)
        .route_layer(middleware::from_fn_with_state((app.clone(), SYNC_FENCE), fence));
    let history = Router::new()
        // It reads room events only, as the history does.
        .ruma_guest::<events::v3::Request, _, _>(events::events)
        .ruma_guest::<get_message_events::v3::Request, _, _>(messages::messages)
        .ruma_guest::<get_context::v3::Request, _, _>(context::context)
        .ruma::<get_relating_events::v1::Request, _, _>(relations::relations)
        .ruma::<get_relating_events_with_rel_type::v1::Request, _, _>(relations::relations_of_type)
        .ruma::<get_relating_events_with_rel_type_and_event_type::v1::Request, _, _>(
            relations::relations_of_type_and_event_type,
        )
        .ruma::<get_threads::v1::Request, _, _>(threads::threads)
        .ruma::<get_event_by_timestamp::v1::Request, _, _>(timestamp_to_event::timestamp_to_event);
    let history = if member_lists {
        history
            .ruma_guest::<get_member_events::v3::Request, _, _>(members::get_member_events)
            .ruma_guest::<joined_members_api::v3::Request, _, _>(joined_members::joined_members)
    } else {
        history
    };
    let history = history.route_layer(middleware::from_fn_with_state((app.clone(), HISTORY_FENCE), fence));
    sync.merge(history).with_state(app)
}

/// The consumers a route's reads wait for.
type Fence = &'static [(Stream, &'static str)];

/// A client reads its own writes: what was answered before the request came
/// is applied before it is served, on whichever instance.
async fn fence(State((app, consumers)): State<(Arc<App>, Fence)>, request: Request, next: Next) -> Response {
    app.rt.bus.fence(consumers).await;
    next.run(request).await
}
