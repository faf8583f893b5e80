//! `userapi_profile_fields`: each local user's profile, one row per field
//! (`displayname`, `avatar_url`, and the extended fields of spec v1.16).
//! A change of display name or avatar goes out on `OutputProfileUpdate`,
//! numbered by `userapi_profile_changes`.

use common::{
    api::userapi::{OutputProfileUpdate, QueryProfileRequest, SetProfileFieldRequest},
    bus::{RemoteError, RemoteErrorKind},
    storage::{Outbox, now_ms},
};
use ruma::UserId;
use serde_json::{Map, Value};
use sqlx::AnyConnection;

use crate::{State, accounts};

/// The spec's limit on a whole profile, as JSON.
const MAX_PROFILE_BYTES: usize = 65_536;
const MAX_FIELD_NAME_BYTES: usize = 255;

pub(crate) async fn insert_initial(tx: &mut AnyConnection, user_id: &UserId, display_name: &str) -> anyhow::Result<()> {
    sqlx::query("INSERT INTO userapi_profile_fields (user_id, field, value) VALUES ($1, $2, $3)")
        .bind(user_id.as_str())
        .bind("displayname")
        .bind(Value::from(display_name).to_string())
        .execute(tx)
        .await?;
    Ok(())
}

async fn fields(tx: &mut AnyConnection, user_id: &UserId) -> anyhow::Result<Map<String, Value>> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT field, value FROM userapi_profile_fields WHERE user_id = $1")
            .bind(user_id.as_str())
            .fetch_all(tx)
            .await?;
    rows.into_iter().map(|(field, value)| Ok((field, serde_json::from_str(&value)?))).collect()
}

/// Queues the announcement of the user's current name and avatar.
async fn announce(tx: &mut AnyConnection, outbox: &Outbox, user_id: &UserId) -> anyhow::Result<()> {
    let (stream_pos,): (i64,) =
        sqlx::query_as("INSERT INTO userapi_profile_changes (user_id, changed_ts) VALUES ($1, $2) RETURNING id")
            .bind(user_id.as_str())
            .bind(now_ms())
            .fetch_one(&mut *tx)
            .await?;
    let profile = fields(tx, user_id).await?;
    let text = |field: &str| profile.get(field).and_then(Value::as_str).map(str::to_owned);
    let update = OutputProfileUpdate {
        user_id: user_id.to_owned(),
        displayname: text("displayname"),
        avatar_url: text("avatar_url"),
        stream_pos,
    };
    outbox.enqueue(tx, &update).await
}

/// Forgets the whole profile (deactivation with `erase`).
pub(crate) async fn erase(tx: &mut AnyConnection, outbox: &Outbox, user_id: &UserId) -> anyhow::Result<()> {
    sqlx::query("DELETE FROM userapi_profile_fields WHERE user_id = $1")
        .bind(user_id.as_str())
        .execute(&mut *tx)
        .await?;
    announce(tx, outbox, user_id).await
}

pub(crate) async fn query_profile(
    state: State,
    request: QueryProfileRequest,
) -> Result<Map<String, Value>, RemoteError> {
    let profile = fields(&mut *state.db.pool().acquire().await?, &request.user_id).await?;
    // An empty profile and no account look alike; tell them apart.
    if profile.is_empty() && !accounts::exists(&state.db, &request.user_id).await? {
        return Err(RemoteError::new(RemoteErrorKind::NotFound, "No such user"));
    }
    Ok(profile)
}

pub(crate) async fn set_profile_field(state: State, request: SetProfileFieldRequest) -> Result<(), RemoteError> {
    let bad = |why: &str| Err(RemoteError::new(RemoteErrorKind::BadRequest, why));
    if request.field.is_empty() || request.field.len() > MAX_FIELD_NAME_BYTES {
        return bad("A profile field name must be 1 to 255 bytes long");
    }
    accounts::ensure_active(&state.db, &request.user_id).await?;
    let mut tx = state.db.begin_read_write().await?;
    let mut profile = fields(&mut tx, &request.user_id).await?;
    match &request.value {
        Some(value) => profile.insert(request.field.clone(), value.clone()),
        None => profile.remove(&request.field),
    };
    if Value::Object(profile).to_string().len() > MAX_PROFILE_BYTES {
        return bad("The profile would be larger than 64 KiB");
    }
    sqlx::query("DELETE FROM userapi_profile_fields WHERE user_id = $1 AND field = $2")
        .bind(request.user_id.as_str())
        .bind(&request.field)
        .execute(&mut *tx)
        .await?;
    if let Some(value) = &request.value {
        sqlx::query("INSERT INTO userapi_profile_fields (user_id, field, value) VALUES ($1, $2, $3)")
            .bind(request.user_id.as_str())
            .bind(&request.field)
            .bind(value.to_string())
            .execute(&mut *tx)
            .await?;
    }
    let announced = matches!(request.field.as_str(), "displayname" | "avatar_url");
    if announced {
        announce(&mut tx, &state.outbox, &request.user_id).await?;
    }
    tx.commit().await?;
    if announced {
        crate::publish_now(&state.outbox).await;
    }
    Ok(())
}
