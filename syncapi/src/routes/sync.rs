//! `GET /sync`: initial and incremental syncs; with `timeout`, an empty
//! answer waits until something concerns the user (on any instance) or the
//! time is up.

use std::sync::Arc;

use axum::{Json, extract::State};
use common::{
    api::userapi::{QueryFilter, QueryFilterRequest},
    bus::{RemoteErrorKind, RpcError},
    http::{MatrixError, Ruma},
};
use ruma::api::client::{filter::FilterDefinition, sync::sync_events};
use serde_json::Value;

use crate::{App, notifier::MAX_TIMEOUT, sync::Request, token::Token};

pub async fn sync(
    State(app): State<Arc<App>>,
    request: Ruma<sync_events::v3::Request>,
) -> Result<Json<Value>, MatrixError> {
    let user = request.require_user()?.clone();
    let body = request.body;
    // `since=` and `filter=` with no value mean none, as Synapse takes them.
    let since = match &body.since {
        Some(token) if token.is_empty() => None,
        Some(token) => {
            Some(Token::parse_since(token).ok_or_else(|| MatrixError::invalid_param("Unknown since token"))?)
        }
        None => None,
    };
    let filter = match body.filter {
        None => FilterDefinition::default(),
        Some(sync_events::v3::Filter::FilterId(id)) if id.is_empty() => FilterDefinition::default(),
        Some(sync_events::v3::Filter::FilterDefinition(definition)) => definition,
        Some(sync_events::v3::Filter::FilterId(id)) => stored_filter(&app, &user.user_id, &id).await?,
        Some(_) => return Err(MatrixError::invalid_param("Unsupported filter")),
    };
    let sync = Request {
        user_id: user.user_id.clone(),
        device_id: user.device_id.clone(),
        since,
        filter,
        full_state: body.full_state,
        use_state_after: body.use_state_after,
    };
    crate::presence::set_from_sync(&app.store.db, &app.rt.bus, &user.user_id, body.set_presence.clone())
        .await
        .map_err(|e| MatrixError::internal(format!("{e:#}")))?;
    let deadline = tokio::time::Instant::now() + body.timeout.unwrap_or_default().min(MAX_TIMEOUT);
    let respond =
        || async { crate::sync::respond(&app, &sync).await.map_err(|e| MatrixError::internal(format!("{e:#}"))) };
    let response =
        app.notifier.poll(user.user_id.as_str(), deadline, respond, |r| !r.is_empty() || since.is_none()).await?;
    Ok(Json(response.into_json()))
}

async fn stored_filter(app: &App, user_id: &ruma::UserId, id: &str) -> Result<FilterDefinition, MatrixError> {
    let request = QueryFilterRequest { user_id: user_id.to_owned(), filter_id: id.to_owned() };
    let raw = match app.rt.bus.call::<QueryFilter>(&request).await {
        Ok(raw) => raw,
        Err(RpcError::Remote(e)) if e.kind == RemoteErrorKind::NotFound => {
            return Err(MatrixError::invalid_param("Unknown filter"));
        }
        Err(e) => return Err(e.into()),
    };
    serde_json::from_str(raw.get())
        .map_err(|e| MatrixError::invalid_param(format!("The stored filter is invalid: {e}")))
}
