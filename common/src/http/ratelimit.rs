//! Token buckets per client address (for the endpoints the spec marks as
//! rate limited) or per account (for logins).

use std::{
    collections::HashMap,
    hash::Hash,
    net::{IpAddr, SocketAddr},
    sync::Mutex,
    time::{Duration, Instant},
};

use http::HeaderMap;

pub struct RateLimiter<K> {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<K, Bucket>>,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Past this many tracked addresses, full buckets are forgotten.
const MAX_TRACKED: usize = 100_000;

impl<K: Hash + Eq> RateLimiter<K> {
    /// `None` when limits are off.
    pub fn new(enabled: bool, per_second: f64, burst: u32) -> Option<Self> {
        enabled.then(|| Self { per_second, burst: f64::from(burst), buckets: Mutex::new(HashMap::new()) })
    }

    /// Takes one token for the client; `Err(wait)` when none is left.
    pub fn take(&self, client: K) -> Result<(), Duration> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if buckets.len() >= MAX_TRACKED {
            let (per_second, burst) = (self.per_second, self.burst);
            buckets.retain(|_, b| b.tokens + now.duration_since(b.updated).as_secs_f64() * per_second < burst);
        }
        let bucket = buckets.entry(client).or_insert(Bucket { tokens: self.burst, updated: now });
        bucket.tokens =
            (bucket.tokens + now.duration_since(bucket.updated).as_secs_f64() * self.per_second).min(self.burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.per_second))
        }
    }
}

/// The address a request came from: the peer, or when the peer is a proxy
/// on this machine or network (nginx), the last address it appended to
/// X-Forwarded-For.
pub fn client_address(peer: Option<SocketAddr>, headers: &HeaderMap) -> Option<IpAddr> {
    let peer = peer?.ip();
    let proxied = match peer {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.is_unique_local(),
    };
    if proxied
        && let Some(forwarded) = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok())
        && let Some(last) = forwarded.rsplit(',').next()
        && let Ok(ip) = last.trim().parse()
    {
        return Some(ip);
    }
    Some(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_refusal_then_refill() {
        let limiter = RateLimiter::new(true, 1000.0, 3).unwrap();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..3 {
            assert!(limiter.take(ip).is_ok());
        }
        let wait = limiter.take(ip).unwrap_err();
        assert!(wait <= Duration::from_millis(1));
        assert!(limiter.take("192.0.2.2".parse().unwrap()).is_ok(), "other clients are unaffected");
        std::thread::sleep(wait + Duration::from_millis(2));
        assert!(limiter.take(ip).is_ok());
    }

    #[test]
    fn forwarded_address_is_trusted_only_from_a_local_proxy() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "203.0.113.9, 198.51.100.7".parse().unwrap());
        let local = Some("127.0.0.1:5000".parse().unwrap());
        let remote = Some("198.51.100.1:5000".parse().unwrap());
        assert_eq!(client_address(local, &headers), Some("198.51.100.7".parse().unwrap()));
        assert_eq!(client_address(remote, &headers), Some("198.51.100.1".parse().unwrap()));
    }
}
