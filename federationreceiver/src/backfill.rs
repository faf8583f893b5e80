//! The history of a room from before this server joined it, fetched from
//! the other servers in the room (`/backfill`) when a reader pages back to
//! the start of what is here.

use common::{
    api::{
        federationreceiver::PerformBackfillRequest,
        roomserver::{InputKind, InputVerdict, QueryJoinedServers, QueryJoinedServersRequest},
    },
    bus::{RemoteError, RemoteErrorKind},
    federation,
    pdu::{self, Pdu},
};
use ruma::{OwnedEventId, api::federation::backfill::get_backfill};

use crate::{
    App,
    fetch::{Source, VERDICT_PATIENCE},
    membership,
};

/// Servers asked in turn before giving up: one that answers is enough.
const MAX_SERVERS: usize = 5;

/// Most events asked for at once.
const MAX_LIMIT: u32 = 100;

/// Fetches up to `limit` events before `from` and has the roomserver take
/// them as history; returns how many it accepted.
pub async fn perform(app: &App, request: &PerformBackfillRequest) -> Result<usize, RemoteError> {
    let room_id = &request.room_id;
    let version = membership::room_version(app, room_id)
        .await
        .map_err(|_| RemoteError::new(RemoteErrorKind::NotFound, "the room is unknown here"))?;
    let own = &app.rt.config.global.server_name;
    let servers = app
        .rt
        .bus
        .call::<QueryJoinedServers>(&QueryJoinedServersRequest { room_id: room_id.clone() })
        .await
        .map_err(anyhow::Error::from)?;
    let limit = request.limit.clamp(1, MAX_LIMIT);
    for server in servers.servers.iter().filter(|s| *s != own).take(MAX_SERVERS) {
        let ask = get_backfill::v1::Request::new(room_id.clone(), request.from.clone(), limit.into());
        let answer = match federation::request(&app.rt.bus, server, ask).await {
            Ok(answer) => answer,
            Err(e) => {
                tracing::debug!(%server, %room_id, error = %e, "backfill failed");
                continue;
            }
        };
        // Events of another room are the roomserver's to refuse (it knows
        // where a version 12 create event, which names no room, belongs).
        let mut events: Vec<Pdu> = answer.pdus.iter().filter_map(|json| pdu::received(json, &version).ok()).collect();
        if events.is_empty() {
            continue;
        }
        tracing::debug!(%server, %room_id, events = events.len(), "backfilled");
        let source = Source { app, origin: server, room_id, version: &version };
        return take(&source, &mut events).await.map_err(|e| RemoteError::new(RemoteErrorKind::Unreachable, e));
    }
    Ok(0)
}

/// The auth events the batch needs first (as outliers), then the batch,
/// newest first: each event goes below everything readers have of the room.
async fn take(source: &Source<'_>, events: &mut [Pdu]) -> Result<usize, String> {
    let auth: Vec<OwnedEventId> = events.iter().flat_map(|event| event.auth_ids().to_vec()).collect();
    source.store_outliers(&auth, events).await?;
    events.sort_by_key(|event| std::cmp::Reverse(event.depth()));
    let inputs = events.iter().map(|event| source.input(event, InputKind::Historical, None)).collect();
    let verdicts =
        source.app.rt.bus.submit(inputs, VERDICT_PATIENCE).await.map_err(|e| format!("not processed: {e}"))?;
    Ok(verdicts.iter().filter(|v| matches!(v, InputVerdict::Accepted { .. })).count())
}
