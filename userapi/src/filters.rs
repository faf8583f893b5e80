//! `userapi_filters`: sync filters, immutable once created; the row id is
//! the filter id.

use common::{
    api::userapi::{CreateFilterRequest, QueryFilterRequest},
    bus::{RemoteError, RemoteErrorKind},
};
use serde_json::value::RawValue;

use crate::State;

pub(crate) async fn create_filter(state: State, request: CreateFilterRequest) -> Result<String, RemoteError> {
    let (id,): (i64,) = sqlx::query_as("INSERT INTO userapi_filters (user_id, filter) VALUES ($1, $2) RETURNING id")
        .bind(request.user_id.as_str())
        .bind(request.filter.get())
        .fetch_one(state.db.pool())
        .await?;
    Ok(id.to_string())
}

pub(crate) async fn query_filter(state: State, request: QueryFilterRequest) -> Result<Box<RawValue>, RemoteError> {
    let not_found = || RemoteError::new(RemoteErrorKind::NotFound, "No such filter");
    let id: i64 = request.filter_id.parse().map_err(|_| not_found())?;
    let row: Option<(String,)> = sqlx::query_as("SELECT filter FROM userapi_filters WHERE id = $1 AND user_id = $2")
        .bind(id)
        .bind(request.user_id.as_str())
        .fetch_optional(state.db.pool())
        .await?;
    let (filter,) = row.ok_or_else(not_found)?;
    Ok(RawValue::from_string(filter).map_err(anyhow::Error::from)?)
}
