//! `POST /_matrix/federation/v1/get_missing_events/{roomId}`: the events
//! between what a server in the room has and what it saw referenced.
//! `limit` (10), `min_depth` (0) and `earliest_events` may be left out; so
//! may `latest_events`, as Synapse allows, which asks for nothing.

use axum::extract::State;
use common::{
    api::roomserver::{QueryMissingEvents, QueryMissingEventsRequest},
    http::{MatrixError, Ruma, RumaResponse},
    pdu::Pdu,
};
use ruma::api::federation::event::get_missing_events::v1::{Request, Response};

use crate::{App, access};

/// Most events one request gets, whatever it asks for.
const MAX_MISSING: u32 = 100;

/// The lists ruma's type requires and servers leave out (ruma defaults
/// `limit` and `min_depth` itself).
pub fn body_defaults(body: &mut serde_json::Map<String, serde_json::Value>) {
    for field in ["earliest_events", "latest_events"] {
        body.entry(field).or_insert_with(|| serde_json::Value::Array(Vec::new()));
    }
}

pub async fn get_missing_events(
    State(app): State<App>,
    request: Ruma<Request>,
) -> Result<RumaResponse<Response>, MatrixError> {
    let origin = request.origin()?;
    let body = &request.body;
    access::check_in_room(&app, &body.room_id, origin).await?;
    if body.latest_events.is_empty() {
        return Ok(RumaResponse(Response::new(Vec::new())));
    }
    let limit = u32::try_from(body.limit).unwrap_or(MAX_MISSING).min(MAX_MISSING);
    let min_depth = u64::from(body.min_depth);
    let query = QueryMissingEventsRequest {
        room_id: body.room_id.clone(),
        earliest: body.earliest_events.clone(),
        latest: body.latest_events.clone(),
        limit,
        for_server: origin.to_owned(),
    };
    let events = app.rt.bus.call::<QueryMissingEvents>(&query).await?.events;
    let events = events
        .into_iter()
        .filter(|event| {
            Pdu::parse(event.event_id.clone(), event.event.clone()).is_ok_and(|pdu| pdu.depth() >= min_depth)
        })
        .map(|event| event.event)
        .collect();
    Ok(RumaResponse(Response::new(events)))
}
