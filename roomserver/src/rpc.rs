//! The questions the roomserver answers.

use common::{
    Runtime,
    api::roomserver::{QueryEvents, QueryEventsRequest, QueryEventsResponse},
    bus::{RemoteError, RemoteErrorKind, serve},
};

use crate::storage::Events;

/// Most ids a single query may ask for.
const MAX_EVENTS_PER_QUERY: usize = 1000;

pub fn start(rt: &Runtime, events: Events) {
    let (bus, shutdown) = (rt.bus.clone(), rt.shutdown.clone());
    rt.spawn(
        "roomserver query_events",
        serve::<QueryEvents, _, _>(bus, shutdown, move |request| {
            let events = events.clone();
            async move { query_events(&events, request).await }
        }),
    );
}

async fn query_events(events: &Events, request: QueryEventsRequest) -> Result<QueryEventsResponse, RemoteError> {
    if request.event_ids.len() > MAX_EVENTS_PER_QUERY {
        return Err(RemoteError::new(
            RemoteErrorKind::BadRequest,
            format!("at most {MAX_EVENTS_PER_QUERY} events per query"),
        ));
    }
    let ids: Vec<&str> = request.event_ids.iter().map(|id| id.as_str()).collect();
    Ok(QueryEventsResponse { events: events.get_many(&ids).await? })
}
