//! `GET /_matrix/key/v2/server`: our signing key, signed by itself.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use common::{
    Runtime,
    http::{MatrixError, RumaResponse},
};
use ruma::{CanonicalJsonObject, api::federation::discovery::get_server_keys, serde::Raw};
use serde_json::json;

pub async fn get_server_keys(
    State(rt): State<Runtime>,
) -> Result<RumaResponse<get_server_keys::v2::Response>, MatrixError> {
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
    let raw = Raw::new(&object).map_err(MatrixError::internal)?.cast_unchecked();
    Ok(RumaResponse(get_server_keys::v2::Response::new(raw)))
}
