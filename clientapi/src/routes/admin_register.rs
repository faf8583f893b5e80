//! `GET`/`POST /_synapse/admin/v1/register`: shared-secret registration as
//! Synapse and Dendrite serve it, so that their admin tools work here. The
//! caller proves it knows `clientapi.registration.shared_secret` with an
//! HMAC-SHA1 over a single-use nonce and the account's details.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Extension, Json,
    body::Body,
    extract::{ConnectInfo, State},
    http::HeaderMap,
};
use common::{
    api::userapi::{CreateAccount, CreateAccountRequest, NewSession},
    auth::random_id,
    http::{HttpContext, MatrixError, client_address, read_body},
    storage::now_ms,
};
use hmac::{Hmac, Mac};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use sha1::Sha1;

use crate::{App, ip_string};

/// How long a nonce may be used, as in Synapse.
const NONCE_LIFETIME_MS: i64 = 60_000;

fn secret(app: &App) -> Result<&str, MatrixError> {
    app.rt
        .config
        .clientapi
        .registration
        .shared_secret
        .as_deref()
        .ok_or_else(|| MatrixError::unknown(StatusCode::BAD_REQUEST, "Shared secret registration is not enabled"))
}

pub async fn nonce(State(app): State<Arc<App>>) -> Result<Json<Value>, MatrixError> {
    secret(&app)?;
    let now = now_ms();
    sqlx::query("DELETE FROM clientapi_registration_nonces WHERE created_ts < $1")
        .bind(now - NONCE_LIFETIME_MS)
        .execute(app.db.pool())
        .await
        .map_err(anyhow::Error::from)?;
    let nonce = random_id(32).to_lowercase();
    sqlx::query("INSERT INTO clientapi_registration_nonces (nonce, created_ts) VALUES ($1, $2)")
        .bind(&nonce)
        .bind(now)
        .execute(app.db.pool())
        .await
        .map_err(anyhow::Error::from)?;
    Ok(Json(json!({ "nonce": nonce })))
}

#[derive(Deserialize)]
struct Request {
    nonce: String,
    username: String,
    password: String,
    #[serde(default)]
    admin: bool,
    #[serde(default)]
    displayname: Option<String>,
    #[serde(default)]
    user_type: Option<String>,
    mac: String,
}

pub async fn register(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(ctx): Extension<Arc<HttpContext>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, MatrixError> {
    let secret = secret(&app)?;
    let body = read_body(body, ctx.max_body).await?;
    let body: Request =
        serde_json::from_slice(&body).map_err(|e| MatrixError::bad_json(format!("Invalid body: {e}")))?;
    let used: Option<(i64,)> =
        sqlx::query_as("DELETE FROM clientapi_registration_nonces WHERE nonce = $1 RETURNING created_ts")
            .bind(&body.nonce)
            .fetch_optional(app.db.pool())
            .await
            .map_err(anyhow::Error::from)?;
    if used.is_none_or(|(created,)| created < now_ms() - NONCE_LIFETIME_MS) {
        return Err(MatrixError::unknown(StatusCode::BAD_REQUEST, "Unrecognised nonce"));
    }
    let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).map_err(anyhow::Error::from)?;
    mac.update(body.nonce.as_bytes());
    mac.update(b"\0");
    mac.update(body.username.as_bytes());
    mac.update(b"\0");
    mac.update(body.password.as_bytes());
    mac.update(b"\0");
    mac.update(if body.admin { b"admin" as &[u8] } else { b"notadmin" });
    if let Some(user_type) = &body.user_type {
        mac.update(b"\0");
        mac.update(user_type.as_bytes());
    }
    let given = hex::decode(&body.mac).map_err(|_| MatrixError::forbidden("HMAC incorrect"))?;
    mac.verify_slice(&given).map_err(|_| MatrixError::forbidden("HMAC incorrect"))?;

    let request = CreateAccountRequest {
        localpart: Some(body.username),
        password: Some(body.password),
        guest: false,
        admin: body.admin,
        display_name: body.displayname,
        session: Some(NewSession { ip: ip_string(client_address(Some(peer), &headers)), ..Default::default() }),
    };
    let created = app.rt.bus.call::<CreateAccount>(&request).await?;
    let session = created.session.ok_or_else(|| MatrixError::internal("no session for a new admin account"))?;
    Ok(Json(json!({
        "user_id": created.user_id,
        "access_token": session.access_token,
        "device_id": session.device_id,
        "home_server": app.rt.config.global.server_name,
    })))
}
