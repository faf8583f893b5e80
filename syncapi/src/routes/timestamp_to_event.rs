//! `GET /rooms/{roomId}/timestamp_to_event`: the event nearest a time, at
//! or after it (`dir=f`) or at or before it (`dir=b`), that the caller may see.

use std::sync::Arc;

use axum::{Json, extract::State};
use common::http::{MatrixError, Ruma};
use ruma::api::{Direction, client::room::get_event_by_timestamp};
use serde_json::{Value, json};

use super::history;
use crate::App;

/// Events read at a time, and at most per request, looking for a visible one.
const BATCH: i64 = 50;
const MAX_SCANNED: usize = 5000;

pub async fn timestamp_to_event(
    State(app): State<Arc<App>>,
    request: Ruma<get_event_by_timestamp::v1::Request>,
) -> Result<Json<Value>, MatrixError> {
    let user = request.require_user()?;
    let body = &request.body;
    let reader = history::reader(&app, &body.room_id, &user.user_id).await?;
    let backward = body.dir == Direction::Backward;
    let ts = i64::from(body.ts.get());
    let mut seen = None;
    let mut scanned = 0;
    while scanned < MAX_SCANNED {
        let events = app.store.events_by_ts(body.room_id.as_str(), backward, ts, seen, BATCH).await?;
        let exhausted = (events.len() as i64) < BATCH;
        for (event_ts, event) in events {
            if reader.may_see(&event) {
                return Ok(Json(json!({ "event_id": event.event_id, "origin_server_ts": event_ts })));
            }
            seen = Some((event_ts, event.pos));
            scanned += 1;
        }
        if exhausted {
            break;
        }
    }
    Err(MatrixError::not_found(format!(
        "No event found {} {ts}",
        if backward { "at or before" } else { "at or after" }
    )))
}
