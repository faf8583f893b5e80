//! federationsender's contracts: the questions it answers by asking other
//! servers.

use std::collections::BTreeMap;

use ruma::{OwnedServerName, serde::Base64};
use serde::{Deserialize, Serialize};

use crate::rpc_method;

rpc_method!(
    /// The public signing keys of another server (fetched from it or a notary
    /// and cached), for checking the signatures on its events. NotFound when
    /// none of `key_ids` can be obtained.
    QueryServerKeys: "federationsender"."query_server_keys", retry = true, QueryServerKeysRequest => QueryServerKeysResponse
);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueryServerKeysRequest {
    pub server_name: OwnedServerName,
    pub key_ids: Vec<String>,
    /// Keys must be valid at this time (ms since the epoch): the event's
    /// `origin_server_ts` for room versions that enforce key validity.
    pub valid_at_ts: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueryServerKeysResponse {
    /// Key id → unpadded base64 public key.
    pub keys: BTreeMap<String, Base64>,
}
