//! Delivers the queued pushes to the pushers' gateways (the push gateway
//! API's `/_matrix/push/v1/notify`). Each pusher has its own task, taking
//! its pushes in order, so a slow or dead gateway holds back only its own
//! pushes. A push stays queued until its gateway accepts it, retried with
//! growing delays, and is dropped after about an hour of failures.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use common::{outbound::OutboundClient, storage::now_ms};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::Push;

/// A pusher: user id, app id, pushkey.
type PusherKey = (String, String, String);

/// How long one request to a gateway may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a push being sent is hidden from other instances; past it, a
/// push whose sender died is taken up again.
const LEASE_MS: i64 = 15_000;
/// Delays double from one second to ten minutes: 15 attempts span about an hour.
const MAX_ATTEMPTS: i64 = 15;

fn retry_delay_ms(attempts: i64) -> i64 {
    (1_000i64 << attempts.clamp(0, 10)).min(600_000)
}

pub(super) async fn run(push: Push, client: OutboundClient, shutdown: CancellationToken) {
    let busy: Arc<Mutex<HashSet<PusherKey>>> = Arc::default();
    loop {
        match due_pushers(&push).await {
            Ok(pushers) => {
                for key in pushers {
                    if !busy.lock().expect("not poisoned").insert(key.clone()) {
                        continue;
                    }
                    let (push, client, busy) = (push.clone(), client.clone(), busy.clone());
                    tokio::spawn(async move {
                        if let Err(e) = deliver(&push, &client, &key).await {
                            tracing::warn!(pusher = ?key, error = format!("{e:#}"), "cannot deliver pushes");
                        }
                        busy.lock().expect("not poisoned").remove(&key);
                    });
                }
            }
            Err(e) => tracing::warn!(error = format!("{e:#}"), "cannot read the push queue"),
        }
        // Pushes queued by another instance, and retries, are found by looking again.
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = push.queued.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

async fn due_pushers(push: &Push) -> anyhow::Result<Vec<PusherKey>> {
    Ok(sqlx::query_as("SELECT DISTINCT user_id, app_id, pushkey FROM userapi_push_queue WHERE next_attempt_ts <= $1")
        .bind(now_ms())
        .fetch_all(push.state.db.pool())
        .await?)
}

/// Sends the pusher's due pushes in order until none is due or one fails.
async fn deliver(push: &Push, client: &OutboundClient, key: &PusherKey) -> anyhow::Result<()> {
    let pool = push.state.db.pool();
    let (user_id, app_id, pushkey) = key;
    loop {
        let next: Option<(i64, String, String, i64, i64)> = sqlx::query_as(
            "SELECT id, notification, tweaks, attempts, next_attempt_ts FROM userapi_push_queue
             WHERE user_id = $1 AND app_id = $2 AND pushkey = $3 ORDER BY id LIMIT 1",
        )
        .bind(user_id)
        .bind(app_id)
        .bind(pushkey)
        .fetch_optional(pool)
        .await?;
        let Some((id, notification, tweaks, attempts, next_attempt_ts)) = next else { return Ok(()) };
        let now = now_ms();
        if next_attempt_ts > now {
            return Ok(());
        }
        let claimed =
            sqlx::query("UPDATE userapi_push_queue SET next_attempt_ts = $1 WHERE id = $2 AND next_attempt_ts = $3")
                .bind(now + LEASE_MS)
                .bind(id)
                .bind(next_attempt_ts)
                .execute(pool)
                .await?
                .rows_affected();
        if claimed == 0 {
            // Another instance is sending it.
            return Ok(());
        }
        let pusher: Option<(String, i64)> = sqlx::query_as(
            "SELECT data, created_ts FROM userapi_pushers WHERE user_id = $1 AND app_id = $2 AND pushkey = $3",
        )
        .bind(user_id)
        .bind(app_id)
        .bind(pushkey)
        .fetch_optional(pool)
        .await?;
        let Some((data, created_ts)) = pusher else {
            forget_pusher(push, key).await?;
            return Ok(());
        };
        let mut data: Map<String, Value> = serde_json::from_str(&data)?;
        let url = data.remove("url").and_then(|url| url.as_str().map(str::to_owned)).unwrap_or_default();
        let mut notification: Map<String, Value> = serde_json::from_str(&notification)?;
        if data.get("format").and_then(Value::as_str) == Some("event_id_only") {
            notification.retain(|field, _| matches!(field.as_str(), "event_id" | "room_id" | "counts" | "prio"));
        }
        let tweaks: Value = serde_json::from_str(&tweaks)?;
        notification.insert(
            "devices".into(),
            json!([{
                "app_id": app_id,
                "pushkey": pushkey,
                "pushkey_ts": created_ts / 1000,
                "data": data,
                "tweaks": tweaks,
            }]),
        );
        match send(client, &url, json!({ "notification": notification })).await {
            Ok(rejected) if rejected.iter().any(|k| k == pushkey) => {
                tracing::info!(user_id, app_id, "the push gateway rejected the pushkey; removing the pusher");
                sqlx::query("DELETE FROM userapi_pushers WHERE user_id = $1 AND app_id = $2 AND pushkey = $3")
                    .bind(user_id)
                    .bind(app_id)
                    .bind(pushkey)
                    .execute(pool)
                    .await?;
                forget_pusher(push, key).await?;
                return Ok(());
            }
            Ok(_) => {
                sqlx::query("DELETE FROM userapi_push_queue WHERE id = $1").bind(id).execute(pool).await?;
            }
            Err(e) if attempts + 1 >= MAX_ATTEMPTS => {
                tracing::warn!(
                    user_id,
                    app_id,
                    error = format!("{e:#}"),
                    "push gateway failing for an hour; push dropped"
                );
                sqlx::query("DELETE FROM userapi_push_queue WHERE id = $1").bind(id).execute(pool).await?;
            }
            Err(e) => {
                tracing::info!(user_id, app_id, error = format!("{e:#}"), attempts, "push failed; will retry");
                sqlx::query("UPDATE userapi_push_queue SET attempts = $1, next_attempt_ts = $2 WHERE id = $3")
                    .bind(attempts + 1)
                    .bind(now_ms() + retry_delay_ms(attempts))
                    .bind(id)
                    .execute(pool)
                    .await?;
                return Ok(());
            }
        }
    }
}

async fn forget_pusher(push: &Push, (user_id, app_id, pushkey): &PusherKey) -> anyhow::Result<()> {
    sqlx::query("DELETE FROM userapi_push_queue WHERE user_id = $1 AND app_id = $2 AND pushkey = $3")
        .bind(user_id)
        .bind(app_id)
        .bind(pushkey)
        .execute(push.state.db.pool())
        .await?;
    Ok(())
}

/// POSTs one notification; the gateway's `rejected` pushkeys.
async fn send(client: &OutboundClient, url: &str, body: Value) -> anyhow::Result<Vec<String>> {
    let request = client.client().post(url).timeout(REQUEST_TIMEOUT).json(&body).build()?;
    let response = client.execute(request).await?;
    let status = response.status();
    anyhow::ensure!(status.is_success(), "the gateway answered {status}");
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    Ok(answer["rejected"].as_array().into_iter().flatten().filter_map(|k| k.as_str().map(str::to_owned)).collect())
}
