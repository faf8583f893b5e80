//! Signing keys: `GET /_matrix/key/v2/server` (ours, signed by ourselves),
//! and the notary endpoints `GET /_matrix/key/v2/query/{serverName}`, the
//! deprecated `GET /_matrix/key/v2/query/{serverName}/{keyId}` and
//! `POST /_matrix/key/v2/query`, which answer ours and, from
//! federationsender (`QueryNotaryKeys`), other servers' as they signed them,
//! each co-signed by us.

use std::{
    collections::BTreeMap,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::extract::State;
use common::{
    Runtime,
    api::federationsender::{QueryNotaryKeys, QueryNotaryKeysRequest},
    http::{MatrixError, Ruma, RumaResponse},
};
use ruma::{
    CanonicalJsonObject, OwnedServerName,
    api::federation::discovery::{
        ServerSigningKeys, get_remote_server_keys, get_remote_server_keys_batch, get_server_keys,
    },
    serde::Raw,
};
use serde_json::json;

/// How long a notary question may take: federationsender may have to fetch
/// from several servers, each within its own time limit.
const NOTARY_TIMEOUT: Duration = Duration::from_secs(30);

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
    let wanted = request
        .server_keys
        .into_iter()
        .map(|(server, criteria)| {
            let criteria = criteria
                .into_iter()
                .map(|(key_id, c)| (key_id.to_string(), c.minimum_valid_until_ts.map(|ts| u64::from(ts.get()))))
                .collect();
            (server, criteria)
        })
        .collect();
    Ok(RumaResponse(get_remote_server_keys_batch::v2::Response::new(notary_answer(&rt, wanted).await?)))
}

/// `GET /_matrix/key/v2/query/{serverName}`. Its `minimum_valid_until_ts`
/// is not passed on: `QueryNotaryKeys` carries a minimum per key id only,
/// and this asks for every key, so federationsender's default (now) holds.
pub async fn query_keys(
    State(rt): State<Runtime>,
    Ruma { body: request, .. }: Ruma<get_remote_server_keys::v2::Request>,
) -> Result<RumaResponse<get_remote_server_keys::v2::Response>, MatrixError> {
    let wanted = BTreeMap::from([(request.server_name, BTreeMap::new())]);
    Ok(RumaResponse(get_remote_server_keys::v2::Response::new(notary_answer(&rt, wanted).await?)))
}

/// `GET /_matrix/key/v2/query/{serverName}/{keyId}`, which the spec dropped
/// and older servers still ask: the same answer as without the key id, but
/// fetched again from the server when the key is not among those held. The
/// server's response is not cut down to the one key: it is served as the
/// server signed it.
pub async fn query_key_by_id(
    State(rt): State<Runtime>,
    axum::extract::Path((server_name, key_id)): axum::extract::Path<(String, String)>,
) -> Result<RumaResponse<get_remote_server_keys::v2::Response>, MatrixError> {
    let server_name = OwnedServerName::try_from(server_name)
        .map_err(|e| MatrixError::invalid_param(format!("Invalid server name: {e}")))?;
    let wanted = BTreeMap::from([(server_name, BTreeMap::from([(key_id, None)]))]);
    Ok(RumaResponse(get_remote_server_keys::v2::Response::new(notary_answer(&rt, wanted).await?)))
}

/// Our own keys if asked, and the other servers' from federationsender,
/// each signed by us as well.
async fn notary_answer(
    rt: &Runtime,
    mut wanted: BTreeMap<OwnedServerName, BTreeMap<String, Option<u64>>>,
) -> Result<Vec<Raw<ServerSigningKeys>>, MatrixError> {
    let own_name = &rt.config.global.server_name;
    let mut answers = Vec::new();
    if wanted.remove(own_name).is_some() {
        answers.push(own_keys(rt)?.cast_unchecked());
    }
    if wanted.is_empty() {
        return Ok(answers);
    }
    let request = QueryNotaryKeysRequest { server_keys: wanted };
    let response = rt.bus.call_within::<QueryNotaryKeys>(&request, NOTARY_TIMEOUT).await?;
    for keys in response.server_keys {
        let mut object: CanonicalJsonObject = serde_json::from_str(keys.get()).map_err(MatrixError::internal)?;
        rt.key.sign_json(own_name.as_str(), &mut object)?;
        answers.push(Raw::new(&object).map_err(MatrixError::internal)?.cast_unchecked());
    }
    Ok(answers)
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
