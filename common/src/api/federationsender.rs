//! federationsender's contracts: the questions it answers by asking other
//! servers. It is the only component that makes requests to other servers;
//! the others ask it, typed, through [`crate::federation::request`].

use std::collections::BTreeMap;

use ruma::{OwnedServerName, serde::Base64};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::rpc_method;

/// Core NATS subject on which federationreceiver says it heard from a server
/// (a signed request came in): a destination federationsender was backing
/// off from is up again, and is retried at once. Fire and forget: a lost
/// notice only leaves the destination to its backoff.
pub fn heard_from_subject(prefix: &str) -> String {
    format!("{prefix}.federation.heard_from")
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HeardFrom {
    pub server_name: OwnedServerName,
}

// ---- Questions ----

rpc_method!(
    /// The public signing keys of another server (fetched from it or a notary
    /// and cached), for checking the signatures on its events and requests.
    /// NotFound when none of `key_ids` can be obtained.
    QueryServerKeys: "federationsender"."query_server_keys", retry = true, QueryServerKeysRequest => QueryServerKeysResponse
);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueryServerKeysRequest {
    pub server_name: OwnedServerName,
    pub key_ids: Vec<String>,
    /// Keys must be valid at this time (ms since the epoch): the event's
    /// `origin_server_ts` for room versions that enforce key validity, now
    /// for a request's signature.
    pub valid_at_ts: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueryServerKeysResponse {
    /// Key id → unpadded base64 public key.
    pub keys: BTreeMap<String, Base64>,
}

rpc_method!(
    /// What our notary endpoints (`/_matrix/key/v2/query`) serve about other
    /// servers: their key responses as they signed them, fetched when not
    /// cached or not valid long enough. federationreceiver adds our signature.
    QueryNotaryKeys: "federationsender"."query_notary_keys", retry = true, QueryNotaryKeysRequest => QueryNotaryKeysResponse
);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueryNotaryKeysRequest {
    /// Server → key ids wanted (empty: all) → `minimum_valid_until_ts`.
    pub server_keys: BTreeMap<OwnedServerName, BTreeMap<String, Option<u64>>>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueryNotaryKeysResponse {
    /// `/_matrix/key/v2/server` responses, each signed by its server.
    pub server_keys: Vec<Box<RawValue>>,
}

rpc_method!(
    /// One request to another server: discovered, signed with X-Matrix, sent
    /// over verified TLS. The answer comes back as the server gave it,
    /// whatever its status; `Unreachable` when no answer could be had (the
    /// server cannot be found or reached, refused as private, timed out).
    /// Not retried: the request may not be idempotent.
    SendFederationRequest: "federationsender"."send_federation_request", retry = false,
    FederationRequest => FederationResponse
);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FederationRequest {
    pub destination: OwnedServerName,
    pub method: String,
    /// Path and query, as signed: `/_matrix/federation/v1/...?...`.
    pub uri: String,
    /// The JSON body, for methods that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Box<RawValue>>,
    /// How long to wait for the answer; the default suits most requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FederationResponse {
    pub status: u16,
    /// The body as received (JSON for every federation endpoint).
    pub body: String,
}
