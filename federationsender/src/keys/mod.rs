//! Other servers' signing keys: answered from `federationsender_server_keys`
//! while they hold, else fetched from the server itself
//! (`/_matrix/key/v2/server`) and then from the configured notaries
//! (`/_matrix/key/v2/query`), each answer checked before it is kept.
//!
//! Two things live in memory only, per instance: the keys that could not be
//! had, which are not looked for again for [`MISSING_FOR`], and the fetches
//! under way, which concurrent questions about the same server share.

mod verify;

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use common::{
    api::federationsender::{FederationRequest, QueryNotaryKeysRequest},
    bus::{RemoteError, RemoteErrorKind},
    storage::now_ms,
};
use futures::{
    FutureExt,
    future::{BoxFuture, Shared},
};
use ruma::{OwnedServerName, ServerName, api::federation::discovery::ServerSigningKeys, serde::Base64};
use serde_json::value::RawValue;

use crate::{
    client::FederationClient,
    storage::{ServerKeys, SignedKeys, StoredKey},
};

/// How long a key that could not be had is not looked for again.
pub const MISSING_FOR: Duration = Duration::from_secs(60);
/// One key request: short, since the asker's RPC attempt is short too (it
/// asks again, and joins the fetch under way).
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Most key ids, or servers, one question may name.
const MAX_PER_QUERY: usize = 100;
/// Stands for "any key" where a question names none.
const ANY_KEY: &str = "*";

type Fetch = Shared<BoxFuture<'static, Vec<String>>>;

#[derive(Clone)]
pub struct KeyRing {
    inner: Arc<Inner>,
}

struct Inner {
    own_name: OwnedServerName,
    own_key: (String, Base64),
    client: FederationClient,
    store: ServerKeys,
    notaries: Vec<OwnedServerName>,
    /// (server, key id) → when it was last looked for in vain, and why.
    missing: Mutex<HashMap<(OwnedServerName, String), (Instant, String)>>,
    /// Server → the fetch under way; what it yields is why it fell short.
    fetches: Mutex<HashMap<OwnedServerName, Fetch>>,
}

fn bad_request(message: impl Into<String>) -> RemoteError {
    RemoteError::new(RemoteErrorKind::BadRequest, message)
}

/// The keys among `stored` that answer for `key_ids` at `ts` (any key when
/// `key_ids` is empty).
fn usable(stored: &[StoredKey], key_ids: &[String], ts: i64) -> BTreeMap<String, Base64> {
    stored
        .iter()
        .filter(|key| key.valid_at(ts) && (key_ids.is_empty() || key_ids.contains(&key.key_id)))
        .filter_map(|key| Some((key.key_id.clone(), Base64::parse(&key.public_key).ok()?)))
        .collect()
}

impl KeyRing {
    pub fn new(
        own_name: OwnedServerName,
        own_key: (String, Base64),
        client: FederationClient,
        store: ServerKeys,
        notaries: Vec<OwnedServerName>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                own_name,
                own_key,
                client,
                store,
                notaries,
                missing: Default::default(),
                fetches: Default::default(),
            }),
        }
    }

    /// `server`'s keys among `key_ids` (any, when empty) valid at
    /// `valid_at_ts`; NotFound when none can be had.
    pub async fn server_keys(
        &self,
        server: &ServerName,
        key_ids: &[String],
        valid_at_ts: u64,
    ) -> Result<BTreeMap<String, Base64>, RemoteError> {
        if key_ids.len() > MAX_PER_QUERY {
            return Err(bad_request(format!("at most {MAX_PER_QUERY} key ids per query")));
        }
        let ts = i64::try_from(valid_at_ts).unwrap_or(i64::MAX);
        if server == self.inner.own_name {
            let (id, key) = &self.inner.own_key;
            let found: BTreeMap<_, _> =
                (key_ids.is_empty() || key_ids.contains(id)).then(|| (id.clone(), key.clone())).into_iter().collect();
            return self.found_or_not(server, key_ids, found, Vec::new());
        }
        let found = usable(&self.inner.store.keys_of(server.as_str()).await?, key_ids, ts);
        let wanted: Vec<String> = if key_ids.is_empty() {
            if found.is_empty() { vec![ANY_KEY.to_owned()] } else { Vec::new() }
        } else {
            key_ids.iter().filter(|id| !found.contains_key(*id)).cloned().collect()
        };
        if wanted.is_empty() {
            return Ok(found);
        }
        let mut earlier = Vec::new();
        let lookable: Vec<String> = wanted
            .into_iter()
            .filter(|id| match self.recently_missing(server, id) {
                Some(why) => {
                    earlier.push(format!("looked for in vain a moment ago ({why})"));
                    false
                }
                None => true,
            })
            .collect();
        if lookable.is_empty() {
            return self.found_or_not(server, key_ids, found, earlier);
        }
        let problems = self.fetch(server, &lookable).await;
        let found = usable(&self.inner.store.keys_of(server.as_str()).await?, key_ids, ts);
        let still_missing: Vec<&String> = if key_ids.is_empty() {
            if found.is_empty() { lookable.iter().collect() } else { Vec::new() }
        } else {
            lookable.iter().filter(|id| !found.contains_key(*id)).collect()
        };
        if !still_missing.is_empty() {
            let now = Instant::now();
            let mut missing = self.inner.missing.lock().expect("not poisoned");
            missing.retain(|_, (at, _)| now.duration_since(*at) < MISSING_FOR);
            for id in still_missing {
                missing.insert((server.to_owned(), id.clone()), (now, problems.join("; ")));
            }
        }
        self.found_or_not(server, key_ids, found, problems)
    }

    fn found_or_not(
        &self,
        server: &ServerName,
        key_ids: &[String],
        found: BTreeMap<String, Base64>,
        problems: Vec<String>,
    ) -> Result<BTreeMap<String, Base64>, RemoteError> {
        if !found.is_empty() {
            return Ok(found);
        }
        let which = if key_ids.is_empty() { "no key".to_owned() } else { format!("none of {key_ids:?}") };
        let why = if problems.is_empty() { String::new() } else { format!(": {}", problems.join("; ")) };
        Err(RemoteError::new(RemoteErrorKind::NotFound, format!("{which} of {server} can be had{why}")))
    }

    /// Why `key_id` could not be had, if that was less than [`MISSING_FOR`] ago.
    fn recently_missing(&self, server: &ServerName, key_id: &str) -> Option<String> {
        let missing = self.inner.missing.lock().expect("not poisoned");
        let (at, why) = missing.get(&(server.to_owned(), key_id.to_owned()))?;
        (at.elapsed() < MISSING_FOR).then(|| why.clone())
    }

    /// Fetches `server`'s keys, or joins the fetch under way; returns what
    /// went wrong. The first asker's `wanted` decides whether notaries are
    /// asked too.
    async fn fetch(&self, server: &ServerName, wanted: &[String]) -> Vec<String> {
        let fetch = {
            let mut fetches = self.inner.fetches.lock().expect("not poisoned");
            fetches
                .entry(server.to_owned())
                .or_insert_with(|| {
                    let (ring, server, wanted) = (self.clone(), server.to_owned(), wanted.to_vec());
                    async move {
                        let problems = ring.fetch_now(&server, &wanted).await;
                        ring.inner.fetches.lock().expect("not poisoned").remove(&server);
                        problems
                    }
                    .boxed()
                    .shared()
                })
                .clone()
        };
        fetch.await
    }

    async fn fetch_now(&self, server: &ServerName, wanted: &[String]) -> Vec<String> {
        let mut problems = Vec::new();
        let mut got = match self.fetch_direct(server).await {
            Ok(ids) => ids,
            Err(e) => {
                problems.push(e);
                Vec::new()
            }
        };
        for notary in &self.inner.notaries {
            let enough = if wanted.iter().any(|id| id == ANY_KEY) {
                !got.is_empty()
            } else {
                wanted.iter().all(|id| got.contains(id))
            };
            if enough {
                break;
            }
            if notary == server || *notary == self.inner.own_name {
                continue;
            }
            match self.fetch_via_notary(notary, server).await {
                Ok(ids) => got.extend(ids),
                Err(e) => problems.push(format!("notary {notary}: {e}")),
            }
        }
        if !problems.is_empty() {
            tracing::info!(%server, problems = problems.join("; "), "cannot fetch all of a server's keys");
        }
        problems
    }

    /// `GET /_matrix/key/v2/server` of `server`, checked and stored; the key
    /// ids it listed.
    async fn fetch_direct(&self, server: &ServerName) -> Result<Vec<String>, String> {
        let body = self.ask(server, "GET", "/_matrix/key/v2/server", None).await?;
        let (signed, _) = verify::self_signed(&body, server)?;
        self.save(&signed).await?;
        Ok(key_ids(&signed))
    }

    /// `POST /_matrix/key/v2/query` to `notary` about `server`: each answer
    /// must be signed by `server` and by the notary, whose keys come from
    /// the notary itself.
    async fn fetch_via_notary(&self, notary: &ServerName, server: &ServerName) -> Result<Vec<String>, String> {
        let notary_keys =
            usable(&self.inner.store.keys_of(notary.as_str()).await.map_err(|e| e.to_string())?, &[], now_ms());
        let notary_keys = if notary_keys.is_empty() {
            self.fetch_direct(notary).await.map_err(|e| format!("cannot get the notary's own keys: {e}"))?;
            usable(&self.inner.store.keys_of(notary.as_str()).await.map_err(|e| e.to_string())?, &[], now_ms())
        } else {
            notary_keys
        };
        let question = serde_json::json!({ "server_keys": { server.as_str(): {} } });
        let question = RawValue::from_string(question.to_string()).map_err(|e| e.to_string())?;
        let body = self.ask(notary, "POST", "/_matrix/key/v2/query", Some(question)).await?;
        #[derive(serde::Deserialize)]
        struct Answer {
            server_keys: Vec<Box<RawValue>>,
        }
        let answer: Answer = serde_json::from_str(&body).map_err(|e| format!("unreadable answer: {e}"))?;
        let mut got = Vec::new();
        let mut problems = Vec::new();
        for entry in answer.server_keys {
            let checked = verify::self_signed(entry.get(), server).and_then(|(signed, object)| {
                verify::signed_by(&object, notary.as_str(), &notary_keys).map(|()| signed)
            });
            match checked {
                Ok(signed) => {
                    self.save(&signed).await?;
                    got.extend(key_ids(&signed));
                }
                Err(e) => problems.push(e),
            }
        }
        if got.is_empty() {
            let why = if problems.is_empty() { "no answer about it".to_owned() } else { problems.join("; ") };
            return Err(why);
        }
        Ok(got)
    }

    async fn save(&self, signed: &SignedKeys) -> Result<(), String> {
        self.inner.store.save(signed).await.map_err(|e| {
            tracing::error!(error = %e, server = signed.server_name, "cannot store server keys");
            format!("cannot store the keys: {e}")
        })
    }

    /// The body of a 200 answer.
    async fn ask(
        &self,
        server: &ServerName,
        method: &str,
        uri: &str,
        body: Option<Box<RawValue>>,
    ) -> Result<String, String> {
        let request = FederationRequest {
            destination: server.to_owned(),
            method: method.to_owned(),
            uri: uri.to_owned(),
            body,
            timeout_ms: Some(FETCH_TIMEOUT.as_millis() as u64),
        };
        let response = self.inner.client.send(&request).await.map_err(|e| e.to_string())?;
        if response.status != 200 {
            let start: String = response.body.chars().take(200).collect();
            return Err(format!("{uri} answered {}: {start}", response.status));
        }
        Ok(response.body)
    }

    /// What our notary endpoints serve about other servers: for each, its
    /// latest response, fetched again when it expires before the asker
    /// needs, when it is past half its lifetime (as the spec asks of
    /// notaries), or when it lacks a key asked for. When the server cannot
    /// be reached the last response is served all the same, so that old
    /// signatures can still be checked.
    pub async fn notary_keys(&self, request: &QueryNotaryKeysRequest) -> Result<Vec<Box<RawValue>>, RemoteError> {
        if request.server_keys.len() > MAX_PER_QUERY {
            return Err(bad_request(format!("at most {MAX_PER_QUERY} servers per query")));
        }
        let servers: Vec<&ServerName> =
            request.server_keys.keys().map(|s| s.as_ref()).filter(|s| *s != self.inner.own_name).collect();
        let names: Vec<&str> = servers.iter().map(|s| s.as_str()).collect();
        let mut cached = self.inner.store.responses_of(&names).await?;
        let now = now_ms();
        let stale: Vec<&ServerName> = servers
            .iter()
            .copied()
            .filter(|server| {
                let criteria = &request.server_keys[*server];
                let minimum = criteria.values().flatten().max().map(|&ts| i64::try_from(ts).unwrap_or(i64::MAX));
                let minimum = minimum.unwrap_or(now);
                match cached.get(server.as_str()) {
                    None => true,
                    Some(held) => {
                        let half_life = held.fetched_ts + (held.valid_until_ts - held.fetched_ts) / 2;
                        held.valid_until_ts < minimum
                            || now >= half_life
                            || !criteria.keys().all(|id| lists_key(&held.response, id))
                    }
                }
            })
            .collect();
        let refetch = stale.iter().filter(|server| self.recently_missing(server, ANY_KEY).is_none());
        let fetches = refetch.map(|server| async move {
            let problems = self.fetch(server, &[ANY_KEY.to_owned()]).await;
            if !problems.is_empty() {
                let mut missing = self.inner.missing.lock().expect("not poisoned");
                missing.insert(((*server).to_owned(), ANY_KEY.to_owned()), (Instant::now(), problems.join("; ")));
            }
        });
        futures::future::join_all(fetches).await;
        if !stale.is_empty() {
            let names: Vec<&str> = stale.iter().map(|s| s.as_str()).collect();
            cached.extend(self.inner.store.responses_of(&names).await?);
        }
        let mut answers = Vec::new();
        for server in servers {
            if let Some(held) = cached.remove(server.as_str()) {
                answers
                    .push(RawValue::from_string(held.response).map_err(|e| RemoteError::from(anyhow::Error::from(e)))?);
            }
        }
        Ok(answers)
    }
}

fn key_ids(signed: &SignedKeys) -> Vec<String> {
    signed.current.iter().map(|(id, _)| id.clone()).chain(signed.old.iter().map(|(id, ..)| id.clone())).collect()
}

/// Whether a stored response lists `key_id`, current or old.
fn lists_key(response: &str, key_id: &str) -> bool {
    serde_json::from_str::<ServerSigningKeys>(response).is_ok_and(|keys| {
        keys.verify_keys.keys().any(|id| id.as_str() == key_id)
            || keys.old_verify_keys.keys().any(|id| id.as_str() == key_id)
    })
}
