//! `userapi_pushers`: where a user's notifications are pushed. Each pusher
//! belongs to the device whose access token set it, so it goes with that
//! device (and with the account on deactivation).

use common::{
    api::userapi::{PusherJson, QueryPushersRequest, SetPusherRequest},
    bus::{RemoteError, RemoteErrorKind},
    storage::now_ms,
};
use ruma::UserId;
use serde_json::{Value, json};
use sqlx::{AnyConnection, AssertSqlSafe};

use crate::State;

pub(crate) async fn query_pushers(state: State, request: QueryPushersRequest) -> Result<Vec<PusherJson>, RemoteError> {
    type Row = (String, String, String, String, String, Option<String>, String, String);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT kind, app_id, pushkey, app_display_name, device_display_name, profile_tag, lang, data
         FROM userapi_pushers WHERE user_id = $1 ORDER BY created_ts, app_id, pushkey",
    )
    .bind(request.user_id.as_str())
    .fetch_all(state.db.pool())
    .await?;
    rows.into_iter()
        .map(|(kind, app_id, pushkey, app_display_name, device_display_name, profile_tag, lang, data)| {
            let data: Value = serde_json::from_str(&data).map_err(anyhow::Error::from)?;
            let mut pusher = json!({
                "kind": kind,
                "app_id": app_id,
                "pushkey": pushkey,
                "app_display_name": app_display_name,
                "device_display_name": device_display_name,
                "lang": lang,
                "data": data,
            });
            if let Some(tag) = profile_tag {
                pusher["profile_tag"] = Value::String(tag);
            }
            Ok(pusher)
        })
        .collect()
}

fn field<'a>(pusher: &'a Value, name: &str) -> Result<&'a str, RemoteError> {
    pusher
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| RemoteError::new(RemoteErrorKind::BadRequest, format!("Pusher field {name} is missing")))
}

pub(crate) async fn set_pusher(state: State, request: SetPusherRequest) -> Result<(), RemoteError> {
    let pusher = &request.pusher;
    let (app_id, pushkey) = (field(pusher, "app_id")?, field(pusher, "pushkey")?);
    let user = request.user_id.as_str();
    let mut tx = state.db.begin_read_write().await?;
    sqlx::query("DELETE FROM userapi_pushers WHERE app_id = $1 AND pushkey = $2 AND user_id = $3")
        .bind(app_id)
        .bind(pushkey)
        .bind(user)
        .execute(&mut *tx)
        .await?;
    if let Some(kind) = pusher.get("kind").and_then(Value::as_str) {
        // Without `append`, a pushkey reaches one user only: a phone that
        // changed hands stops getting the previous user's notifications.
        if !pusher.get("append").and_then(Value::as_bool).unwrap_or(false) {
            sqlx::query("DELETE FROM userapi_pushers WHERE app_id = $1 AND pushkey = $2 AND user_id <> $3")
                .bind(app_id)
                .bind(pushkey)
                .bind(user)
                .execute(&mut *tx)
                .await?;
        }
        let data = pusher.get("data").cloned().unwrap_or_else(|| json!({}));
        sqlx::query(
            "INSERT INTO userapi_pushers (user_id, device_id, kind, app_id, pushkey, app_display_name,
             device_display_name, profile_tag, lang, data, created_ts)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(user)
        .bind(request.device_id.as_str())
        .bind(kind)
        .bind(app_id)
        .bind(pushkey)
        .bind(field(pusher, "app_display_name")?)
        .bind(field(pusher, "device_display_name")?)
        .bind(pusher.get("profile_tag").and_then(Value::as_str))
        .bind(field(pusher, "lang")?)
        .bind(data.to_string())
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Removes the pushers set through these devices' access tokens.
pub(crate) async fn delete_for_devices(
    tx: &mut AnyConnection,
    user_id: &UserId,
    device_ids: &[&str],
) -> anyhow::Result<()> {
    if device_ids.is_empty() {
        return Ok(());
    }
    let placeholders: Vec<String> = (0..device_ids.len()).map(|i| format!("${}", i + 2)).collect();
    let delete =
        format!("DELETE FROM userapi_pushers WHERE user_id = $1 AND device_id IN ({})", placeholders.join(", "));
    let mut query = sqlx::query(AssertSqlSafe(delete)).bind(user_id.as_str());
    for id in device_ids {
        query = query.bind(*id);
    }
    query.execute(&mut *tx).await?;
    Ok(())
}

/// Removes every pusher of a user, whichever device set it.
pub(crate) async fn delete_all(tx: &mut AnyConnection, user_id: &UserId) -> anyhow::Result<()> {
    sqlx::query("DELETE FROM userapi_pushers WHERE user_id = $1").bind(user_id.as_str()).execute(&mut *tx).await?;
    Ok(())
}
