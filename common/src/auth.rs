//! Who is calling: access tokens, the hashes they are stored as, and a cache
//! of token owners that forgets a token the moment userapi revokes it.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use base64::Engine;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::{
    api::userapi::{QueryAccessToken, QueryAccessTokenRequest, RevokedTokens, TokenOwner, revoked_tokens_subject},
    bus::Bus,
    http::MatrixError,
    storage::now_ms,
};

/// A fresh secret of 256 random bits, printable, with a prefix saying what it is.
pub fn new_secret(prefix: &str) -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{prefix}_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// What a token is stored and looked up as. Tokens carry 256 random bits, so
/// a fast hash is enough: nothing can be guessed from it.
pub fn hash_token(token: &str) -> String {
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

/// A random string of `len` characters from `A-Z`, for device and session ids.
pub fn random_id(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    (0..len).map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char).collect()
}

/// How long an answer is reused. Revocations arrive at once; this only bounds
/// how long a revocation lost with a dropped NATS connection could go unseen,
/// and how stale a device's last-seen time may get.
const TTL: Duration = Duration::from_secs(60);
const MAX_ENTRIES: usize = 100_000;

/// Access token owners, asked of userapi and cached per process.
pub struct TokenCache {
    bus: Bus,
    entries: Mutex<HashMap<String, Entry>>,
    /// Bumped by every revocation, so that an answer fetched while a
    /// revocation arrived is not cached.
    generation: AtomicU64,
    /// The NATS connection the cache's contents were validated under.
    epoch: AtomicU64,
}

struct Entry {
    owner: TokenOwner,
    fetched: Instant,
    ip: Option<IpAddr>,
}

impl TokenCache {
    /// Subscribes to revocations before returning, so that nothing cached
    /// afterwards can miss one.
    pub async fn start(bus: Bus, shutdown: CancellationToken) -> anyhow::Result<Arc<Self>> {
        let subject = revoked_tokens_subject(bus.prefix());
        let mut subscription = bus.client().subscribe(subject).await?;
        let cache = Arc::new(Self {
            epoch: AtomicU64::new(bus.connection_epoch()),
            bus,
            entries: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
        });
        let listener = cache.clone();
        tokio::spawn(async move {
            loop {
                let msg = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    msg = subscription.next() => match msg {
                        Some(msg) => msg,
                        None => break,
                    },
                };
                match serde_json::from_slice::<RevokedTokens>(&msg.payload) {
                    Ok(revoked) => listener.forget(&revoked.token_hashes),
                    Err(e) => {
                        tracing::warn!(error = %e, "undecodable token revocation; forgetting every token");
                        listener.forget_all();
                    }
                }
            }
        });
        Ok(cache)
    }

    /// The bus the cache asks userapi on.
    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    fn forget(&self, hashes: &[String]) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        let mut entries = self.lock();
        for hash in hashes {
            entries.remove(hash);
        }
    }

    fn forget_all(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The owner of `token`; 401 M_UNKNOWN_TOKEN when there is none.
    pub async fn owner(&self, token: &str, ip: Option<IpAddr>) -> Result<TokenOwner, MatrixError> {
        let hash = hash_token(token);
        let epoch = self.bus.connection_epoch();
        if self.epoch.swap(epoch, Ordering::SeqCst) != epoch {
            // Revocations sent while we were disconnected never reached us.
            self.forget_all();
        }
        let cached = self
            .lock()
            .get(&hash)
            .and_then(|entry| (entry.fetched.elapsed() < TTL && entry.ip == ip).then(|| entry.owner.clone()));
        let owner = match cached {
            Some(owner) => owner,
            None => {
                let generation = self.generation.load(Ordering::SeqCst);
                let request = QueryAccessTokenRequest { token_hash: hash.clone(), ip: ip.map(|ip| ip.to_string()) };
                let owner = self.bus.call::<QueryAccessToken>(&request).await?;
                let mut entries = self.lock();
                if self.generation.load(Ordering::SeqCst) == generation {
                    if entries.len() >= MAX_ENTRIES {
                        entries.clear();
                    }
                    entries.insert(hash, Entry { owner: owner.clone(), fetched: Instant::now(), ip });
                }
                owner
            }
        };
        if owner.expires_at_ms.is_some_and(|expires| expires <= now_ms()) {
            return Err(MatrixError::unknown_token(true, "The access token has expired"));
        }
        Ok(owner)
    }
}
