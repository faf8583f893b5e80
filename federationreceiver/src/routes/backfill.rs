//! `GET /_matrix/federation/v1/backfill/{roomId}?v=&limit=`: the events
//! before the given ones, to a server in the room filling its history.

use axum::extract::State;
use common::{
    api::roomserver::{QueryBackfill, QueryBackfillRequest},
    http::{MatrixError, Ruma, RumaResponse},
};
use ruma::{
    MilliSecondsSinceUnixEpoch,
    api::federation::backfill::get_backfill::v1::{Request, Response},
};

use crate::{App, access};

/// Most events one backfill request gets, whatever it asks for.
const MAX_BACKFILL: u32 = 100;

pub async fn get_backfill(
    State(app): State<App>,
    request: Ruma<Request>,
) -> Result<RumaResponse<Response>, MatrixError> {
    let origin = request.origin()?;
    let body = &request.body;
    access::check_in_room(&app, &body.room_id, origin).await?;
    let limit = u32::try_from(body.limit).unwrap_or(MAX_BACKFILL).min(MAX_BACKFILL);
    let query = QueryBackfillRequest {
        room_id: body.room_id.clone(),
        from: body.v.clone(),
        limit,
        for_server: origin.to_owned(),
    };
    let events = app.rt.bus.call::<QueryBackfill>(&query).await?.events;
    Ok(RumaResponse(Response::new(
        app.rt.config.global.server_name.clone(),
        MilliSecondsSinceUnixEpoch::now(),
        events.into_iter().map(|event| event.event).collect(),
    )))
}
