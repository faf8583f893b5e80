//! `POST /rooms/{roomId}/report/{eventId}` and `POST /rooms/{roomId}/report`:
//! reports of content or rooms, kept in `clientapi_reports` for the server's
//! administrators.

use std::sync::Arc;

use axum::extract::State;
use common::{
    http::{MatrixError, Ruma, RumaResponse},
    storage::now_ms,
};
use ruma::{
    EventId, RoomId, UserId,
    api::client::room::{report_content, report_room},
};
use serde_json::Value;

use crate::{App, room_access, rooms};

/// The score spec v1.16 still allows on event reports: -100 (most offensive) to 0.
fn score(raw_body: &[u8]) -> Result<Option<i64>, MatrixError> {
    let body: Value = serde_json::from_slice(raw_body).unwrap_or_default();
    match body.get("score") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(score) if (-100..=0).contains(&score) => Ok(Some(score)),
            _ => Err(MatrixError::invalid_param("score must be an integer between -100 and 0")),
        },
        Some(_) => Err(MatrixError::bad_json("score must be an integer")),
    }
}

async fn store(
    app: &App,
    room_id: &RoomId,
    event_id: Option<&EventId>,
    reporter: &UserId,
    reason: Option<&str>,
    score: Option<i64>,
) -> Result<(), MatrixError> {
    sqlx::query(
        "INSERT INTO clientapi_reports (room_id, event_id, reporter, reason, score, received_ts)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(room_id.as_str())
    .bind(event_id.map(EventId::as_str))
    .bind(reporter.as_str())
    .bind(reason)
    .bind(score)
    .bind(now_ms())
    .execute(app.db.pool())
    .await
    .map_err(anyhow::Error::from)?;
    tracing::info!(%room_id, event_id = ?event_id, %reporter, "content reported");
    Ok(())
}

pub async fn report_event(
    State(app): State<Arc<App>>,
    request: Ruma<report_content::v3::Request>,
) -> Result<RumaResponse<report_content::v3::Response>, MatrixError> {
    let user_id = request.require_user()?.user_id.clone();
    let score = score(&request.raw_body)?;
    let report_content::v3::Request { room_id, event_id, reason, .. } = request.body;
    if !room_access::is_joined(&app, &room_id, &user_id).await?
        || !room_access::has_event(&app, &room_id, &event_id).await?
    {
        return Err(MatrixError::not_found("The event was not found or you are not joined to the room"));
    }
    store(&app, &room_id, Some(&event_id), &user_id, reason.as_deref(), score).await?;
    Ok(RumaResponse(report_content::v3::Response::new()))
}

pub async fn report_room(
    State(app): State<Arc<App>>,
    request: Ruma<report_room::v3::Request>,
) -> Result<RumaResponse<report_room::v3::Response>, MatrixError> {
    let user_id = request.require_user()?.user_id.clone();
    // ruma defaults a missing reason to ""; the spec requires the field.
    let body: Value = serde_json::from_slice(&request.raw_body).unwrap_or_default();
    if body.get("reason").is_none() {
        return Err(MatrixError::missing_param("reason is required (it may be empty)"));
    }
    let report_room::v3::Request { room_id, reason, .. } = request.body;
    // 404 for a room the roomserver does not know; the reporter need not be in it.
    rooms::room_version(&app, &room_id).await?;
    store(&app, &room_id, None, &user_id, Some(&reason), None).await?;
    Ok(RumaResponse(report_room::v3::Response::new()))
}
