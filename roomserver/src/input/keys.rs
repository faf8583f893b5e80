//! The public keys that verify an event from elsewhere: this server's own,
//! and other servers' from federationsender, which fetches and caches them.

use common::{
    api::federationsender::{QueryServerKeys, QueryServerKeysRequest},
    bus::{Bus, HandlerError, RpcError},
};
use ruma::{
    CanonicalJsonObject, ServerName,
    room_version_rules::RoomVersionRules,
    signatures::{PublicKeyMap, PublicKeySet},
};

/// The keys of every server whose signature the event needs. Errors with
/// `Retry` while federationsender cannot be reached, `Reject` when a
/// server's keys cannot be had.
pub async fn for_event(
    bus: &Bus,
    own_name: &ServerName,
    own_keys: &PublicKeySet,
    object: &CanonicalJsonObject,
    rules: &RoomVersionRules,
) -> Result<PublicKeyMap, HandlerError> {
    let servers = ruma::signatures::required_server_signatures_to_verify_event(object, &rules.signatures)
        .map_err(|e| HandlerError::Reject(anyhow::anyhow!("cannot tell who must sign the event: {e}")))?;
    let valid_at_ts = match object.get("origin_server_ts") {
        Some(ruma::CanonicalJsonValue::Integer(ts)) => u64::try_from(i64::from(*ts)).unwrap_or_default(),
        _ => 0,
    };
    let mut keys = PublicKeyMap::new();
    for server in servers {
        if server == own_name {
            keys.insert(server.to_string(), own_keys.clone());
            continue;
        }
        let key_ids: Vec<String> = match object.get("signatures") {
            Some(ruma::CanonicalJsonValue::Object(signatures)) => match signatures.get(server.as_str()) {
                Some(ruma::CanonicalJsonValue::Object(by_key)) => by_key.keys().cloned().collect(),
                _ => Vec::new(),
            },
            _ => Vec::new(),
        };
        let request = QueryServerKeysRequest { server_name: server.to_owned(), key_ids, valid_at_ts };
        match bus.call::<QueryServerKeys>(&request).await {
            Ok(response) => {
                keys.insert(server.to_string(), response.keys);
            }
            Err(RpcError::Remote(e)) => {
                return Err(HandlerError::Reject(anyhow::anyhow!("no keys for {server}: {}", e.message)));
            }
            Err(e) => return Err(HandlerError::Retry(anyhow::anyhow!("cannot ask for {server}'s keys: {e}"))),
        }
    }
    Ok(keys)
}
