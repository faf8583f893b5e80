//! `GET`/`POST /_matrix/federation/v1/publicRooms`: this server's public
//! room directory, for the users of other servers.

use axum::extract::State;
use common::{
    api::roomserver::{QueryPublicRooms, QueryPublicRoomsRequest},
    http::{MatrixError, Ruma, RumaResponse},
};
use ruma::{
    UInt,
    api::federation::directory::{get_public_rooms, get_public_rooms_filtered},
    directory::{PublicRoomsChunk, RoomNetwork},
};

use crate::App;

/// The page size when the asking server names none.
const DEFAULT_LIMIT: u32 = 100;

struct Page {
    chunk: Vec<PublicRoomsChunk>,
    next_batch: Option<String>,
    prev_batch: Option<String>,
    total: UInt,
}

async fn page(app: &App, request: QueryPublicRoomsRequest) -> Result<Page, MatrixError> {
    let response = app.rt.bus.call::<QueryPublicRooms>(&request).await?;
    let chunk = response
        .chunk
        .into_iter()
        .map(serde_json::from_value)
        .collect::<Result<_, _>>()
        .map_err(|e| MatrixError::internal(format!("a public room entry does not parse: {e}")))?;
    Ok(Page {
        chunk,
        next_batch: response.next_batch,
        prev_batch: response.prev_batch,
        total: UInt::new_saturating(response.total_room_count_estimate),
    })
}

fn limit(limit: Option<UInt>) -> u32 {
    limit.and_then(|n| u32::try_from(n).ok()).filter(|n| *n > 0).unwrap_or(DEFAULT_LIMIT)
}

pub async fn get_public_rooms(
    State(app): State<App>,
    request: Ruma<get_public_rooms::v1::Request>,
) -> Result<RumaResponse<get_public_rooms::v1::Response>, MatrixError> {
    let body = request.body;
    let query = QueryPublicRoomsRequest {
        limit: limit(body.limit),
        since: body.since,
        generic_search_term: None,
        room_types: Vec::new(),
    };
    let page = page(&app, query).await?;
    let mut response = get_public_rooms::v1::Response::new();
    response.chunk = page.chunk;
    response.next_batch = page.next_batch;
    response.prev_batch = page.prev_batch;
    response.total_room_count_estimate = Some(page.total);
    Ok(RumaResponse(response))
}

pub async fn get_public_rooms_filtered(
    State(app): State<App>,
    request: Ruma<get_public_rooms_filtered::v1::Request>,
) -> Result<RumaResponse<get_public_rooms_filtered::v1::Response>, MatrixError> {
    let body = request.body;
    let mut response = get_public_rooms_filtered::v1::Response::new();
    if let RoomNetwork::ThirdParty(_) = body.room_network {
        // No application service bridges a network here: its directory is empty.
        response.total_room_count_estimate = Some(UInt::MIN);
        return Ok(RumaResponse(response));
    }
    let query = QueryPublicRoomsRequest {
        limit: limit(body.limit),
        since: body.since,
        generic_search_term: body.filter.generic_search_term,
        room_types: body.filter.room_types.iter().map(|t| t.as_str().map(str::to_owned)).collect(),
    };
    let page = page(&app, query).await?;
    response.chunk = page.chunk;
    response.next_batch = page.next_batch;
    response.prev_batch = page.prev_batch;
    response.total_room_count_estimate = Some(page.total);
    Ok(RumaResponse(response))
}
