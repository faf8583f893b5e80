//! `GET`/`POST /publicRooms`: this server's public room directory, one page
//! at a time, or (`?server=`) another server's, asked of it.

use std::sync::Arc;

use axum::extract::State;
use common::{
    api::roomserver::{QueryPublicRooms, QueryPublicRoomsRequest, QueryPublicRoomsResponse},
    federation,
    http::{MatrixError, Ruma, RumaResponse},
};
use ruma::{
    ServerName, UInt,
    api::{
        client::directory::{get_public_rooms, get_public_rooms_filtered},
        federation::directory as federation_rooms,
    },
    directory::{PublicRoomsChunk, RoomNetwork},
};

use crate::App;

/// The page size when the client names none.
const DEFAULT_LIMIT: u32 = 100;

/// The server whose directory is asked for, when it is not this one.
fn remote<'a>(app: &App, server: Option<&'a ServerName>) -> Option<&'a ServerName> {
    server.filter(|server| **server != app.rt.config.global.server_name)
}

fn limit(limit: Option<UInt>) -> u32 {
    match limit.map(u64::from) {
        None | Some(0) => DEFAULT_LIMIT,
        Some(n) => u32::try_from(n).unwrap_or(u32::MAX),
    }
}

/// The page and its tokens, as both endpoints answer.
struct Page {
    chunk: Vec<PublicRoomsChunk>,
    next_batch: Option<String>,
    prev_batch: Option<String>,
    total: UInt,
}

async fn page(app: &App, request: QueryPublicRoomsRequest) -> Result<Page, MatrixError> {
    let QueryPublicRoomsResponse { chunk, next_batch, prev_batch, total_room_count_estimate } =
        app.rt.bus.call::<QueryPublicRooms>(&request).await?;
    let chunk = chunk
        .into_iter()
        .map(serde_json::from_value)
        .collect::<Result<_, _>>()
        .map_err(|e| MatrixError::internal(format!("a public room entry does not parse: {e}")))?;
    Ok(Page { chunk, next_batch, prev_batch, total: UInt::new_saturating(total_room_count_estimate) })
}

pub async fn get_public_rooms(
    State(app): State<Arc<App>>,
    request: Ruma<get_public_rooms::v3::Request>,
) -> Result<RumaResponse<get_public_rooms::v3::Response>, MatrixError> {
    let body = request.body;
    if let Some(server) = remote(&app, body.server.as_deref()) {
        let mut ask = federation_rooms::get_public_rooms::v1::Request::new();
        (ask.limit, ask.since) = (body.limit, body.since);
        let theirs = federation::request(&app.rt.bus, server, ask).await?;
        let mut response = get_public_rooms::v3::Response::new(theirs.chunk);
        (response.next_batch, response.prev_batch) = (theirs.next_batch, theirs.prev_batch);
        response.total_room_count_estimate = theirs.total_room_count_estimate;
        return Ok(RumaResponse(response));
    }
    let request = QueryPublicRoomsRequest {
        limit: limit(body.limit),
        since: body.since,
        generic_search_term: None,
        room_types: Vec::new(),
    };
    let page = page(&app, request).await?;
    let mut response = get_public_rooms::v3::Response::new(page.chunk);
    response.next_batch = page.next_batch;
    response.prev_batch = page.prev_batch;
    response.total_room_count_estimate = Some(page.total);
    Ok(RumaResponse(response))
}

pub async fn get_public_rooms_filtered(
    State(app): State<Arc<App>>,
    request: Ruma<get_public_rooms_filtered::v3::Request>,
) -> Result<RumaResponse<get_public_rooms_filtered::v3::Response>, MatrixError> {
    let body = request.body;
    let mut response = get_public_rooms_filtered::v3::Response::new();
    if let Some(server) = remote(&app, body.server.as_deref()) {
        let mut ask = federation_rooms::get_public_rooms_filtered::v1::Request::new();
        (ask.limit, ask.since, ask.filter, ask.room_network) = (body.limit, body.since, body.filter, body.room_network);
        let theirs = federation::request(&app.rt.bus, server, ask).await?;
        (response.chunk, response.next_batch, response.prev_batch) =
            (theirs.chunk, theirs.next_batch, theirs.prev_batch);
        response.total_room_count_estimate = theirs.total_room_count_estimate;
        return Ok(RumaResponse(response));
    }
    if let RoomNetwork::ThirdParty(_) = body.room_network {
        // No application service bridges a network here: its directory is empty.
        response.total_room_count_estimate = Some(UInt::MIN);
        return Ok(RumaResponse(response));
    }
    let request = QueryPublicRoomsRequest {
        limit: limit(body.limit),
        since: body.since,
        generic_search_term: body.filter.generic_search_term,
        room_types: body.filter.room_types.iter().map(|t| t.as_str().map(str::to_owned)).collect(),
    };
    let page = page(&app, request).await?;
    response.chunk = page.chunk;
    response.next_batch = page.next_batch;
    response.prev_batch = page.prev_batch;
    response.total_room_count_estimate = Some(page.total);
    Ok(RumaResponse(response))
}
