//! Checks on a server key response (`/_matrix/key/v2/server`, or one entry
//! of a notary's answer): for the server asked about, with a
//! `valid_until_ts`, signed by the keys it lists, and, from a notary, by
//! the notary too.

use std::collections::BTreeMap;

use ruma::{
    CanonicalJsonObject, CanonicalJsonValue, ServerName, api::federation::discovery::ServerSigningKeys, serde::Base64,
    signatures::PublicKeyMap,
};

use crate::storage::SignedKeys;

/// A response signed by `server` with one of the keys it lists.
pub fn self_signed(response: &str, server: &ServerName) -> Result<(SignedKeys, CanonicalJsonObject), String> {
    let object: CanonicalJsonObject = serde_json::from_str(response).map_err(|e| format!("not a JSON object: {e}"))?;
    let keys: ServerSigningKeys = serde_json::from_str(response).map_err(|e| format!("not a key response: {e}"))?;
    if keys.server_name != server {
        return Err(format!("the response is for {}, not {server}", keys.server_name));
    }
    let current: BTreeMap<String, Base64> =
        keys.verify_keys.iter().map(|(id, key)| (id.to_string(), key.key.clone())).collect();
    signed_by(&object, server.as_str(), &current)?;
    let valid_until_ts = i64::try_from(u64::from(keys.valid_until_ts.get())).unwrap_or(i64::MAX);
    let old = keys
        .old_verify_keys
        .iter()
        .map(|(id, old)| {
            let expired_ts = i64::try_from(u64::from(old.expired_ts.get())).unwrap_or(i64::MAX);
            (id.to_string(), old.key.encode(), expired_ts)
        })
        .collect();
    let signed = SignedKeys {
        server_name: server.to_string(),
        current: current.iter().map(|(id, key)| (id.clone(), key.encode())).collect(),
        old,
        valid_until_ts,
        response: serde_json::to_string(&object).map_err(|e| e.to_string())?,
    };
    Ok((signed, object))
}

/// Whether `entity` signed `object` with at least one of `keys`, and every
/// signature it made with them is good. Other signers are left aside (ruma's
/// `verify_json` would want the keys of every one of them).
pub fn signed_by(object: &CanonicalJsonObject, entity: &str, keys: &BTreeMap<String, Base64>) -> Result<(), String> {
    let theirs = match object.get("signatures") {
        Some(CanonicalJsonValue::Object(signatures)) => signatures.get(entity).cloned(),
        _ => None,
    }
    .ok_or_else(|| format!("not signed by {entity}"))?;
    let mut alone = object.clone();
    alone.insert("signatures".to_owned(), CanonicalJsonValue::Object([(entity.to_owned(), theirs)].into()));
    let public_keys: PublicKeyMap = [(entity.to_owned(), keys.clone())].into();
    ruma::signatures::verify_json(&public_keys, &alone).map_err(|e| format!("bad signature of {entity}: {e}"))
}

#[cfg(test)]
mod tests {
    use common::keys::SigningKey;
    use serde_json::json;

    use super::*;

    fn response(server: &str, key: &SigningKey, signer: &SigningKey) -> String {
        let mut object: CanonicalJsonObject = serde_json::from_value(json!({
            "server_name": server,
            "verify_keys": { key.key_id(): { "key": key.public_key().encode() } },
            "old_verify_keys": { "ed25519:old": { "key": key.public_key().encode(), "expired_ts": 5 } },
            "valid_until_ts": 1000,
        }))
        .unwrap();
        signer.sign_json(server, &mut object).unwrap();
        serde_json::to_string(&object).unwrap()
    }

    #[test]
    fn a_self_signed_response_is_accepted() {
        let key = SigningKey::generate();
        let server = <&ServerName>::try_from("remote.example").unwrap();
        let (signed, object) = self_signed(&response("remote.example", &key, &key), server).unwrap();
        assert_eq!(signed.current, vec![(key.key_id(), key.public_key().encode())]);
        assert_eq!(signed.old, vec![("ed25519:old".to_owned(), key.public_key().encode(), 5)]);
        assert_eq!(signed.valid_until_ts, 1000);
        // A notary's signature beside the server's does not get in the way.
        let notary = SigningKey::generate();
        let mut cosigned = object.clone();
        notary.sign_json("notary.example", &mut cosigned).unwrap();
        self_signed(&serde_json::to_string(&cosigned).unwrap(), server).unwrap();
        let notary_keys = [(notary.key_id(), notary.public_key())].into();
        signed_by(&cosigned, "notary.example", &notary_keys).unwrap();
        assert!(signed_by(&object, "notary.example", &notary_keys).is_err(), "not signed by the notary");
    }

    #[test]
    fn bad_responses_are_refused() {
        let (key, other) = (SigningKey::generate(), SigningKey::generate());
        let server = <&ServerName>::try_from("remote.example").unwrap();
        let cases = [
            (response("remote.example", &key, &other), "bad signature"),
            (response("elsewhere.example", &key, &key), "not remote.example"),
            (r#"{"server_name":"remote.example","verify_keys":{}}"#.to_owned(), "not a key response"),
            ("[]".to_owned(), "not a JSON object"),
        ];
        for (text, expected) in cases {
            let err = self_signed(&text, server).unwrap_err();
            assert!(err.contains(expected), "{expected}: {err}");
        }
    }
}
