//! `GET /rooms/{roomId}/threads`: thread roots, the most recently active
//! thread first, each with its thread summary.

use std::sync::Arc;

use axum::{Json, extract::State};
use common::http::{MatrixError, Ruma};
use ruma::api::client::threads::get_threads::{self, v1::IncludeThreads};
use serde_json::{Value, json};

use super::history::Reader;
use super::history::{self, Source, parse_token, token_at};
use crate::{App, format, storage::history::Page, token::Token};

/// Roots per page unless the client asks otherwise, and at most.
const DEFAULT_LIMIT: u64 = 5;
const MAX_LIMIT: u64 = 1000;
/// Most roots one request looks at (most may be invisible to the reader);
/// past it the page ends early, with a token to go on from.
const MAX_EXAMINED: usize = 1000;

pub async fn threads(
    State(app): State<Arc<App>>,
    request: Ruma<get_threads::v1::Request>,
) -> Result<Json<Value>, MatrixError> {
    let user = request.require_user()?;
    let body = &request.body;
    let room_id = body.room_id.as_str();
    let reader = history::reader(&app, &body.room_id, &user.user_id).await?;
    let now = Token { positions: app.store.positions().await?, presence: 0 };
    let from = body.from.as_deref().map(parse_token).transpose()?.unwrap_or(now);
    let limit = body.limit.map_or(DEFAULT_LIMIT, u64::from).min(MAX_LIMIT) as usize;
    let participant = matches!(body.include, IncludeThreads::Participated).then_some(user.user_id.as_str());

    let mut chunk = Vec::new();
    let mut cursor = from.positions.events;
    let mut more = true;
    let mut examined = 0;
    while chunk.len() < limit && more && examined < MAX_EXAMINED {
        let batch = (limit - chunk.len() + 1) as i64;
        let roots = app.store.thread_roots(room_id, participant, cursor, batch).await?;
        more = roots.len() as i64 == batch;
        for (root_id, latest) in roots {
            if chunk.len() == limit {
                more = true;
                break;
            }
            cursor = latest - 1;
            examined += 1;
            if let Some(root) = thread_root(&app, &reader, room_id, &root_id, user).await? {
                chunk.push(root);
            }
        }
    }
    let mut answer = json!({ "chunk": chunk });
    if more {
        answer["next_batch"] = json!(token_at(&from, cursor));
    }
    Ok(Json(answer))
}

/// The root with its `m.thread` summary, if the viewer may see it and a reply.
async fn thread_root(
    app: &App,
    reader: &Reader,
    room_id: &str,
    root_id: &str,
    user: &common::api::userapi::TokenOwner,
) -> anyhow::Result<Option<Value>> {
    let Some(root) = app.store.room_event(root_id).await?.filter(|e| e.room_id == room_id && reader.may_see(e)) else {
        return Ok(None);
    };
    let source = Source::Relations { room_id, parent: root_id, depth: 1, rel_type: Some("m.thread"), event_type: None };
    let page = Page { backward: true, cursor: i64::MAX, bound: crate::storage::history::START, limit: 0 };
    let latest = history::scan(&app.store, &source, page, 1, |e| reader.may_see(e)).await?;
    let Some(latest) = latest.events.first() else { return Ok(None) };
    let (count, replied) = app.store.thread_counts(root_id, user.user_id.as_str()).await?;
    let device = Some(user.device_id.as_str());
    let mut event = format::client_event(&root, device, true)?;
    event["unsigned"]["m.relations"]["m.thread"] = json!({
        "latest_event": format::client_event(latest, device, true)?,
        "count": count,
        "current_user_participated": replied || root.sender == user.user_id.as_str(),
    });
    Ok(Some(event))
}
