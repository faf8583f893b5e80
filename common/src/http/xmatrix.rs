//! Who is calling on the server-server API: the `X-Matrix` signature every
//! federation request carries, checked against the origin's keys (asked of
//! federationsender, which fetches and caches them), and a rate limit per
//! origin so one server cannot take every worker.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use ruma::{
    OwnedServerName, ServerName,
    api::federation::authentication::XMatrix,
    signatures::{PublicKeyMap, PublicKeySet},
};

use super::{MatrixError, RateLimiter};
use crate::{
    api::federationsender::{HeardFrom, QueryServerKeys, QueryServerKeysRequest, heard_from_subject},
    bus::{Bus, RpcError},
    storage::now_ms,
};

/// Requests per second each origin may make, and how many at once: a
/// server catching up sends transactions back to back, and its joins and
/// backfills come in bursts.
const ORIGIN_PER_SECOND: f64 = 50.0;
const ORIGIN_BURST: u32 = 200;

/// How long a key the origin's requests were checked with is reused without
/// asking federationsender again. Keys are long-lived and federationsender
/// caches them for their validity; this only saves the round trip.
const KEY_REUSE: Duration = Duration::from_secs(300);

/// How often federationsender hears that a given server contacted us.
const ANNOUNCE_EVERY: Duration = Duration::from_secs(10);
const MAX_KEYS: usize = 10_000;

pub struct ServerAuth {
    server_name: OwnedServerName,
    bus: Bus,
    keys: Mutex<HashMap<(OwnedServerName, String), (ruma::serde::Base64, Instant)>>,
    limiter: Option<RateLimiter<OwnedServerName>>,
    announced: Mutex<HashMap<OwnedServerName, Instant>>,
}

fn unauthorized(message: impl Into<String>) -> MatrixError {
    MatrixError::new(http::StatusCode::UNAUTHORIZED, ruma::api::error::ErrorKind::Unauthorized, message)
}

impl ServerAuth {
    pub fn new(server_name: OwnedServerName, bus: Bus, rate_limited: bool) -> Self {
        Self {
            server_name,
            bus,
            keys: Mutex::new(HashMap::new()),
            limiter: RateLimiter::new(rate_limited, ORIGIN_PER_SECOND, ORIGIN_BURST),
            announced: Mutex::new(HashMap::new()),
        }
    }

    /// The origin of a signed request; 401 M_UNAUTHORIZED unless the
    /// signature holds for this server as destination. A body that is not
    /// canonical JSON (a float, an integer out of range) is 400 M_BAD_JSON
    /// whatever its signature, as the spec asks of every endpoint but
    /// `/send`, which discards the bad PDUs and keeps the rest: there
    /// (`non_canonical_ok`) the signature is checked over the body as sent,
    /// keys sorted and without whitespace.
    pub async fn verify(
        &self,
        request: &http::Request<&[u8]>,
        non_canonical_ok: bool,
    ) -> Result<OwnedServerName, MatrixError> {
        let x_matrix = XMatrix::extract_from_http_headers(request.headers()).map_err(|e| {
            // A header that is there but cannot be read (an origin that is no
            // server name) is the sender's mistake, as Synapse answers it.
            let message = format!("Missing or malformed X-Matrix authorization: {e}");
            match request.headers().get(http::header::AUTHORIZATION) {
                Some(_) => {
                    MatrixError::new(http::StatusCode::BAD_REQUEST, ruma::api::error::ErrorKind::Unauthorized, message)
                }
                None => unauthorized(message),
            }
        })?;
        if x_matrix.destination.as_deref().is_some_and(|destination| destination != self.server_name) {
            return Err(unauthorized("The request is for another destination"));
        }
        if x_matrix.origin == self.server_name {
            return Err(unauthorized("The request claims to come from this server"));
        }
        if let Some(limiter) = &self.limiter {
            limiter.take(x_matrix.origin.clone()).map_err(MatrixError::limit_exceeded)?;
        }
        let non_canonical = match classify_body(request.body())? {
            Body::Canonical => None,
            Body::NotCanonical(_) if !non_canonical_ok => {
                return Err(MatrixError::bad_json("The body is not canonical JSON (floats are not allowed)"));
            }
            Body::NotCanonical(content) => Some(content),
        };
        let key = self.key(&x_matrix.origin, x_matrix.key.as_str()).await?;
        match non_canonical {
            None => {
                let keys = PublicKeyMap::from([(
                    x_matrix.origin.to_string(),
                    PublicKeySet::from([(x_matrix.key.to_string(), key)]),
                )]);
                x_matrix
                    .verify_http_request(request, &self.server_name, &keys)
                    .map_err(|e| unauthorized(format!("Invalid X-Matrix signature: {e}")))?;
            }
            Some(content) => {
                let signed = serde_json::json!({
                    "content": content,
                    "destination": self.server_name.as_str(),
                    "method": request.method().as_str(),
                    "origin": x_matrix.origin.as_str(),
                    "uri": request.uri().path_and_query().map(|pq| pq.as_str()).unwrap_or("/"),
                });
                // serde_json's maps are sorted (no `preserve_order`), and it
                // writes no whitespace and the shortest escapes: canonical
                // JSON but for the numbers, which stay as they came.
                let text = serde_json::to_string(&signed).map_err(MatrixError::internal)?;
                ruma::signatures::verify_canonical_json_bytes(
                    &ruma::signatures::SigningKeyAlgorithm::Ed25519,
                    key.as_bytes(),
                    x_matrix.sig.as_bytes(),
                    text.as_bytes(),
                )
                .map_err(|e| unauthorized(format!("Invalid X-Matrix signature: {e}")))?;
            }
        }
        self.announce(&x_matrix.origin).await;
        Ok(x_matrix.origin)
    }

    /// Tells federationsender the origin is up, at most every
    /// [`ANNOUNCE_EVERY`] per origin.
    async fn announce(&self, origin: &ServerName) {
        {
            let mut announced = self.announced.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if announced.get(origin).is_some_and(|at| at.elapsed() < ANNOUNCE_EVERY) {
                return;
            }
            if announced.len() >= MAX_KEYS {
                announced.clear();
            }
            announced.insert(origin.to_owned(), Instant::now());
        }
        let notice = HeardFrom { server_name: origin.to_owned() };
        if let Ok(payload) = serde_json::to_vec(&notice) {
            let subject = heard_from_subject(self.bus.prefix());
            if let Err(e) = self.bus.client().publish(subject, payload.into()).await {
                tracing::debug!(error = %e, "cannot say a server was heard from");
            }
        }
    }

    async fn key(&self, origin: &ServerName, key_id: &str) -> Result<ruma::serde::Base64, MatrixError> {
        let cache_key = (origin.to_owned(), key_id.to_owned());
        if let Some((key, fetched)) = self.lock().get(&cache_key)
            && fetched.elapsed() < KEY_REUSE
        {
            return Ok(key.clone());
        }
        let request = QueryServerKeysRequest {
            server_name: origin.to_owned(),
            key_ids: vec![key_id.to_owned()],
            valid_at_ts: now_ms() as u64,
        };
        let key = match self.bus.call::<QueryServerKeys>(&request).await {
            Ok(mut response) => response.keys.remove(key_id),
            Err(RpcError::Remote(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let key = key.ok_or_else(|| unauthorized(format!("The key {key_id} of {origin} cannot be obtained")))?;
        let mut keys = self.lock();
        if keys.len() >= MAX_KEYS {
            keys.clear();
        }
        keys.insert(cache_key, (key.clone(), Instant::now()));
        Ok(key)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(OwnedServerName, String), (ruma::serde::Base64, Instant)>> {
        self.keys.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What a signed request's body is, for checking its signature.
enum Body {
    /// Empty, or canonical JSON: ruma checks the signature.
    Canonical,
    /// JSON that canonical JSON cannot hold.
    NotCanonical(serde_json::Value),
}

fn classify_body(body: &[u8]) -> Result<Body, MatrixError> {
    if body.is_empty() || serde_json::from_slice::<ruma::CanonicalJsonValue>(body).is_ok() {
        return Ok(Body::Canonical);
    }
    serde_json::from_slice(body)
        .map(Body::NotCanonical)
        .map_err(|_| MatrixError::not_json("The body is not valid JSON"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn serde_json_writes_canonical_json_where_that_can_hold_it() {
        let text = r#"{"b": [1, "\u00e9\n"], "a": {"z": null, "\u00e9": true, "y": -3}}"#;
        let value: serde_json::Value = serde_json::from_str(text).unwrap();
        let canonical: ruma::CanonicalJsonValue = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_string(&value).unwrap(), canonical.to_string());
        let float = serde_json::to_string(&serde_json::json!({"v": 1.1, "a": 1})).unwrap();
        assert_eq!(float, r#"{"a":1,"v":1.1}"#);
    }
}
