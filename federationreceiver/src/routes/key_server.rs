//! Our signing keys: `GET /_matrix/key/v2/server` (signed by themselves), and
//! the notary endpoints `/_matrix/key/v2/query`, which for now know our own
//! server only: other servers' keys come with outbound key fetching.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use common::{
    Runtime,
    http::{MatrixError, Ruma, RumaResponse},
};
use ruma::{
    CanonicalJsonObject,
    api::federation::discovery::{get_remote_server_keys, get_remote_server_keys_batch, get_server_keys},
    serde::Raw,
};
use serde_json::json;

pub async fn get_server_keys(
    State(rt): State<Runtime>,
) -> Result<RumaResponse<get_server_keys::v2::Response>, MatrixError> {
    Ok(RumaResponse(get_server_keys::v2::Response::new(own_keys(&rt)?.cast_unchecked())))
}

/// `POST /_matrix/key/v2/query`.
pub async fn query_keys_batch(
    State(rt): State<Runtime>,
    Ruma { body: request, .. }: Ruma<get_remote_server_keys_batch::v2::Request>,
) -> Result<RumaResponse<get_remote_server_keys_batch::v2::Response>, MatrixError> {
    let wanted = request.server_keys.contains_key(&rt.config.global.server_name);
    let keys = if wanted { vec![own_keys(&rt)?.cast_unchecked()] } else { Vec::new() };
    Ok(RumaResponse(get_remote_server_keys_batch::v2::Response::new(keys)))
}

/// `GET /_matrix/key/v2/query/{serverName}`.
pub async fn query_keys(
    State(rt): State<Runtime>,
    Ruma { body: request, .. }: Ruma<get_remote_server_keys::v2::Request>,
) -> Result<RumaResponse<get_remote_server_keys::v2::Response>, MatrixError> {
    let wanted = request.server_name == rt.config.global.server_name;
    let keys = if wanted { vec![own_keys(&rt)?.cast_unchecked()] } else { Vec::new() };
    Ok(RumaResponse(get_remote_server_keys::v2::Response::new(keys)))
}

/// Our current key, valid for the configured period from now, self-signed.
fn own_keys(rt: &Runtime) -> Result<Raw<CanonicalJsonObject>, MatrixError> {
    let valid_until = SystemTime::now() + Duration::from_secs(rt.config.global.key_validity_hours * 3600);
    let valid_until_ts = valid_until.duration_since(UNIX_EPOCH).map_err(MatrixError::internal)?.as_millis() as u64;
    let server_name = rt.config.global.server_name.as_str();
    let keys = json!({
        "server_name": server_name,
        "verify_keys": { rt.key.key_id(): { "key": rt.key.public_key().encode() } },
        "old_verify_keys": {},
        "valid_until_ts": valid_until_ts,
    });
    let mut object: CanonicalJsonObject = serde_json::from_value(keys).map_err(MatrixError::internal)?;
    rt.key.sign_json(server_name, &mut object)?;
    Raw::new(&object).map_err(MatrixError::internal)
}
