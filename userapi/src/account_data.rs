//! `userapi_account_data`: per-user (and per-room) JSON documents. Each write
//! takes a new row id, which is the change's stream position on
//! `OutputClientData`, so that sync can ask for what changed after a point.

use common::{
    api::userapi::{OutputClientData, QueryAccountDataRequest, SetAccountDataRequest},
    bus::{RemoteError, RemoteErrorKind},
};
use serde_json::value::RawValue;

use crate::State;

/// Global account data is stored with this room id.
const GLOBAL: &str = "";

pub(crate) async fn query_account_data(
    state: State,
    request: QueryAccountDataRequest,
) -> Result<Box<RawValue>, RemoteError> {
    let room = request.room_id.as_ref().map_or(GLOBAL, |r| r.as_str());
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT content FROM userapi_account_data WHERE user_id = $1 AND room_id = $2 AND data_type = $3",
    )
    .bind(request.user_id.as_str())
    .bind(room)
    .bind(&request.data_type)
    .fetch_optional(state.db.pool())
    .await?;
    let (content,) = row.ok_or_else(|| RemoteError::new(RemoteErrorKind::NotFound, "No account data of this type"))?;
    Ok(RawValue::from_string(content).map_err(anyhow::Error::from)?)
}

pub(crate) async fn set_account_data(state: State, request: SetAccountDataRequest) -> Result<(), RemoteError> {
    let room = request.room_id.as_ref().map_or(GLOBAL, |r| r.as_str());
    let mut tx = state.db.begin_read_write().await?;
    sqlx::query("DELETE FROM userapi_account_data WHERE user_id = $1 AND room_id = $2 AND data_type = $3")
        .bind(request.user_id.as_str())
        .bind(room)
        .bind(&request.data_type)
        .execute(&mut *tx)
        .await?;
    let (stream_pos,): (i64,) = sqlx::query_as(
        "INSERT INTO userapi_account_data (user_id, room_id, data_type, content) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(request.user_id.as_str())
    .bind(room)
    .bind(&request.data_type)
    .bind(request.content.get())
    .fetch_one(&mut *tx)
    .await?;
    let change = OutputClientData {
        user_id: request.user_id,
        room_id: request.room_id,
        data_type: request.data_type,
        stream_pos,
    };
    state.outbox.enqueue(&mut tx, &change).await?;
    tx.commit().await?;
    crate::publish_now(&state.outbox).await;
    Ok(())
}
