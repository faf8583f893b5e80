//! Devices and their tokens. `userapi_devices` holds one access token per
//! device (as a hash), and a refresh token when the client asked for one;
//! `userapi_login_tokens` holds single-use tokens for `m.login.token`.
//! Whenever a token stops working, every instance caching it hears at once.

use common::{
    api::userapi::{
        Authenticated, ConsumeLoginTokenRequest, CreateLoginTokenRequest, CreateSessionRequest, DeleteDevicesRequest,
        Device, DeviceSelection, LoginToken, NewSession, QueryAccessTokenRequest, QueryDevicesRequest,
        RefreshSessionRequest, RevokedTokens, Session, TokenOwner, UpdateDeviceRequest, revoked_tokens_subject,
    },
    auth::{hash_token, new_secret, random_id},
    bus::{Bus, RemoteError, RemoteErrorKind},
    config::UserApi,
    storage::now_ms,
};
use ruma::{OwnedDeviceId, UserId};
use sqlx::{AnyConnection, AssertSqlSafe};

use crate::State;

/// Fresh tokens for a device: the plaintexts to hand out, and what is stored.
struct Tokens {
    access: String,
    refresh: Option<String>,
    expires_ts: Option<i64>,
    expires_in_ms: Option<u64>,
}

impl Tokens {
    fn new(refreshable: bool, config: &UserApi) -> Self {
        let lifetime = config.refreshable_token_lifetime_ms;
        Self {
            access: new_secret("mat"),
            refresh: refreshable.then(|| new_secret("mrt")),
            expires_ts: refreshable.then(|| now_ms() + lifetime as i64),
            expires_in_ms: refreshable.then_some(lifetime),
        }
    }

    fn into_session(self, user_id: &UserId, device_id: OwnedDeviceId) -> Session {
        Session {
            user_id: user_id.to_owned(),
            device_id,
            access_token: self.access,
            refresh_token: self.refresh,
            expires_in_ms: self.expires_in_ms,
        }
    }
}

/// Logs a device in within the caller's transaction: a known `device_id`
/// gets new tokens (the old hash is returned, to announce as revoked),
/// otherwise a device is created.
pub(crate) async fn log_in(
    tx: &mut AnyConnection,
    user_id: &UserId,
    new: &NewSession,
    config: &UserApi,
) -> anyhow::Result<(Session, Option<String>)> {
    let tokens = Tokens::new(new.refreshable, config);
    let access_hash = hash_token(&tokens.access);
    let refresh_hash = tokens.refresh.as_deref().map(hash_token);
    let now = now_ms();
    if let Some(device_id) = &new.device_id {
        let old: Option<(String,)> =
            sqlx::query_as("SELECT access_token_hash FROM userapi_devices WHERE user_id = $1 AND device_id = $2")
                .bind(user_id.as_str())
                .bind(device_id.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        if let Some((old_hash,)) = old {
            sqlx::query(
                "UPDATE userapi_devices SET access_token_hash = $1, refresh_token_hash = $2, access_expires_ts = $3,
                 last_seen_ip = $4, last_seen_ts = $5 WHERE user_id = $6 AND device_id = $7",
            )
            .bind(&access_hash)
            .bind(&refresh_hash)
            .bind(tokens.expires_ts)
            .bind(&new.ip)
            .bind(now)
            .bind(user_id.as_str())
            .bind(device_id.as_str())
            .execute(&mut *tx)
            .await?;
            return Ok((tokens.into_session(user_id, device_id.clone()), Some(old_hash)));
        }
    }
    let device_id: OwnedDeviceId = new.device_id.clone().unwrap_or_else(|| random_id(10).into());
    sqlx::query(
        "INSERT INTO userapi_devices (user_id, device_id, display_name, access_token_hash, refresh_token_hash,
         access_expires_ts, last_seen_ip, last_seen_ts, created_ts) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
    )
    .bind(user_id.as_str())
    .bind(device_id.as_str())
    .bind(&new.display_name)
    .bind(&access_hash)
    .bind(&refresh_hash)
    .bind(tokens.expires_ts)
    .bind(&new.ip)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok((tokens.into_session(user_id, device_id), None))
}

/// Tells every instance caching tokens to drop these; called after the commit.
pub(crate) async fn announce_revoked(bus: &Bus, token_hashes: Vec<String>) {
    if token_hashes.is_empty() {
        return;
    }
    let payload = match serde_json::to_vec(&RevokedTokens { token_hashes }) {
        Ok(payload) => payload,
        Err(e) => return tracing::error!(error = %e, "cannot encode a token revocation"),
    };
    let client = bus.client();
    if let Err(e) = client.publish(revoked_tokens_subject(bus.prefix()), payload.into()).await {
        tracing::warn!(error = %e, "cannot announce revoked tokens; caches drop them within a minute");
    }
    let _ = client.flush().await;
}

/// Deletes devices within the caller's transaction; returns their token hashes.
pub(crate) async fn delete_devices_in(
    tx: &mut AnyConnection,
    user_id: &UserId,
    devices: &DeviceSelection,
) -> anyhow::Result<Vec<String>> {
    // Chosen among the user's own devices, so that however many ids a client
    // names, the statement only ever lists devices that exist.
    let owned: Vec<(String, String)> =
        sqlx::query_as("SELECT device_id, access_token_hash FROM userapi_devices WHERE user_id = $1")
            .bind(user_id.as_str())
            .fetch_all(&mut *tx)
            .await?;
    let doomed: Vec<(String, String)> = owned
        .into_iter()
        .filter(|(id, _)| match devices {
            DeviceSelection::All { except } => except.as_ref().is_none_or(|e| e.as_str() != id),
            DeviceSelection::Only(list) => list.iter().any(|d| d.as_str() == id),
        })
        .collect();
    if doomed.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders: Vec<String> = (0..doomed.len()).map(|i| format!("${}", i + 2)).collect();
    let delete =
        format!("DELETE FROM userapi_devices WHERE user_id = $1 AND device_id IN ({})", placeholders.join(", "));
    let mut query = sqlx::query(AssertSqlSafe(delete)).bind(user_id.as_str());
    for (id, _) in &doomed {
        query = query.bind(id.as_str());
    }
    query.execute(&mut *tx).await?;
    let device_ids: Vec<&str> = doomed.iter().map(|(id, _)| id.as_str()).collect();
    crate::pushers::delete_for_devices(tx, user_id, &device_ids).await?;
    Ok(doomed.into_iter().map(|(_, hash)| hash).collect())
}

pub(crate) async fn query_access_token(
    state: State,
    request: QueryAccessTokenRequest,
) -> Result<TokenOwner, RemoteError> {
    let row: Option<(String, String, Option<i64>, i64)> = sqlx::query_as(
        "SELECT d.user_id, d.device_id, d.access_expires_ts, a.is_guest FROM userapi_devices d
         JOIN userapi_accounts a ON a.user_id = d.user_id WHERE d.access_token_hash = $1",
    )
    .bind(&request.token_hash)
    .fetch_optional(state.db.pool())
    .await?;
    let Some((user_id, device_id, expires_at_ms, is_guest)) = row else {
        return Err(RemoteError::new(RemoteErrorKind::UnknownToken { soft: false }, "Unknown access token"));
    };
    let now = now_ms();
    if expires_at_ms.is_some_and(|expires| expires <= now) {
        return Err(RemoteError::new(RemoteErrorKind::UnknownToken { soft: true }, "The access token has expired"));
    }
    sqlx::query("UPDATE userapi_devices SET last_seen_ip = $1, last_seen_ts = $2 WHERE access_token_hash = $3")
        .bind(&request.ip)
        .bind(now)
        .bind(&request.token_hash)
        .execute(state.db.pool())
        .await?;
    Ok(TokenOwner {
        user_id: user_id.try_into().map_err(anyhow::Error::from)?,
        device_id: device_id.into(),
        is_guest: is_guest != 0,
        expires_at_ms,
    })
}

pub(crate) async fn create_session(state: State, request: CreateSessionRequest) -> Result<Session, RemoteError> {
    let mut tx = state.db.begin_read_write().await?;
    let (session, replaced) = log_in(&mut tx, &request.user_id, &request.session, &state.config.userapi).await?;
    tx.commit().await?;
    announce_revoked(&state.bus, replaced.into_iter().collect()).await;
    Ok(session)
}

pub(crate) async fn refresh_session(state: State, request: RefreshSessionRequest) -> Result<Session, RemoteError> {
    let refresh_hash = hash_token(&request.refresh_token);
    let unknown = || RemoteError::new(RemoteErrorKind::UnknownToken { soft: false }, "Unknown refresh token");
    let row: Option<(String, String, String)> = sqlx::query_as(
        "SELECT user_id, device_id, access_token_hash FROM userapi_devices WHERE refresh_token_hash = $1",
    )
    .bind(&refresh_hash)
    .fetch_optional(state.db.pool())
    .await?;
    let (user_id, device_id, old_access_hash) = row.ok_or_else(unknown)?;
    let tokens = Tokens::new(true, &state.config.userapi);
    // Conditional on the old refresh token, so that of two concurrent
    // refreshes only one wins.
    let updated = sqlx::query(
        "UPDATE userapi_devices SET access_token_hash = $1, refresh_token_hash = $2, access_expires_ts = $3
         WHERE refresh_token_hash = $4",
    )
    .bind(hash_token(&tokens.access))
    .bind(tokens.refresh.as_deref().map(hash_token))
    .bind(tokens.expires_ts)
    .bind(&refresh_hash)
    .execute(state.db.pool())
    .await?;
    if updated.rows_affected() != 1 {
        return Err(unknown());
    }
    announce_revoked(&state.bus, vec![old_access_hash]).await;
    let user_id: ruma::OwnedUserId = user_id.try_into().map_err(anyhow::Error::from)?;
    Ok(tokens.into_session(&user_id, device_id.into()))
}

pub(crate) async fn create_login_token(
    state: State,
    request: CreateLoginTokenRequest,
) -> Result<LoginToken, RemoteError> {
    let token = new_secret("mlt");
    let lifetime = state.config.userapi.login_token_lifetime_ms;
    let now = now_ms();
    sqlx::query("DELETE FROM userapi_login_tokens WHERE expires_ts < $1").bind(now).execute(state.db.pool()).await?;
    sqlx::query("INSERT INTO userapi_login_tokens (token_hash, user_id, expires_ts) VALUES ($1, $2, $3)")
        .bind(hash_token(&token))
        .bind(request.user_id.as_str())
        .bind(now + lifetime as i64)
        .execute(state.db.pool())
        .await?;
    Ok(LoginToken { token, expires_in_ms: lifetime })
}

pub(crate) async fn consume_login_token(
    state: State,
    request: ConsumeLoginTokenRequest,
) -> Result<Authenticated, RemoteError> {
    let invalid = || RemoteError::new(RemoteErrorKind::Forbidden, "Invalid or expired login token");
    let row: Option<(String, i64)> =
        sqlx::query_as("DELETE FROM userapi_login_tokens WHERE token_hash = $1 RETURNING user_id, expires_ts")
            .bind(hash_token(&request.token))
            .fetch_optional(state.db.pool())
            .await?;
    let (user_id, expires_ts) = row.ok_or_else(invalid)?;
    if expires_ts <= now_ms() {
        return Err(invalid());
    }
    let user_id: ruma::OwnedUserId = user_id.try_into().map_err(anyhow::Error::from)?;
    crate::accounts::ensure_active(&state.db, &user_id).await?;
    Ok(Authenticated { user_id })
}

pub(crate) async fn delete_devices(state: State, request: DeleteDevicesRequest) -> Result<(), RemoteError> {
    let mut tx = state.db.begin_read_write().await?;
    let hashes = delete_devices_in(&mut tx, &request.user_id, &request.devices).await?;
    tx.commit().await?;
    announce_revoked(&state.bus, hashes).await;
    Ok(())
}

pub(crate) async fn query_devices(state: State, request: QueryDevicesRequest) -> Result<Vec<Device>, RemoteError> {
    type Row = (String, Option<String>, Option<String>, Option<i64>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT device_id, display_name, last_seen_ip, last_seen_ts FROM userapi_devices
         WHERE user_id = $1 ORDER BY device_id",
    )
    .bind(request.user_id.as_str())
    .fetch_all(state.db.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(device_id, display_name, last_seen_ip, last_seen_ts)| Device {
            device_id: device_id.into(),
            display_name,
            last_seen_ip,
            last_seen_ts,
        })
        .collect())
}

pub(crate) async fn update_device(state: State, request: UpdateDeviceRequest) -> Result<(), RemoteError> {
    let updated = sqlx::query("UPDATE userapi_devices SET display_name = $1 WHERE user_id = $2 AND device_id = $3")
        .bind(&request.display_name)
        .bind(request.user_id.as_str())
        .bind(request.device_id.as_str())
        .execute(state.db.pool())
        .await?;
    if updated.rows_affected() == 0 {
        return Err(RemoteError::new(RemoteErrorKind::NotFound, "No such device"));
    }
    Ok(())
}
