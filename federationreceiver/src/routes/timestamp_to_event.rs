//! `GET /_matrix/federation/v1/timestamp_to_event/{roomId}?ts=&dir=`: the
//! event nearest a time, at or after it (`dir=f`) or at or before it
//! (`dir=b`), to a server in the room. Answered from the roomserver's
//! events: syncapi's timeline is per user, and a server reads as the room's
//! member it is.

use axum::extract::State;
use common::{
    api::roomserver::{QueryEventByTimestamp, QueryEventByTimestampRequest},
    bus::{RemoteErrorKind, RpcError},
    http::{MatrixError, Ruma, RumaResponse},
};
use ruma::{
    MilliSecondsSinceUnixEpoch, UInt,
    api::{
        Direction,
        federation::event::get_event_by_timestamp::v1::{Request, Response},
    },
};

use crate::{App, access};

pub async fn timestamp_to_event(
    State(app): State<App>,
    request: Ruma<Request>,
) -> Result<RumaResponse<Response>, MatrixError> {
    let origin = request.origin()?;
    let body = &request.body;
    access::check_in_room(&app, &body.room_id, origin).await?;
    let backward = body.dir == Direction::Backward;
    let query = QueryEventByTimestampRequest { room_id: body.room_id.clone(), ts: u64::from(body.ts.get()), backward };
    let found = match app.rt.bus.call::<QueryEventByTimestamp>(&query).await {
        Ok(found) => found,
        Err(RpcError::Remote(e)) if e.kind == RemoteErrorKind::NotFound => {
            let side = if backward { "at or before" } else { "at or after" };
            return Err(MatrixError::not_found(format!("No event found {side} {}", body.ts.get())));
        }
        Err(e) => return Err(e.into()),
    };
    let ts = UInt::try_from(found.origin_server_ts).map_err(MatrixError::internal)?;
    Ok(RumaResponse(Response::new(found.event_id, MilliSecondsSinceUnixEpoch(ts))))
}
