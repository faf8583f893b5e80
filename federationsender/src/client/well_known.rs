//! `GET https://<host>/.well-known/matrix/server`, as the spec asks: 30x
//! followed (a few hops, HTTPS only, each address checked like any other),
//! the answer kept as its Cache-Control or Expires says, within bounds.

use std::time::{Duration, SystemTime};

use common::outbound::OutboundClient;
use futures::future::BoxFuture;
use http::{HeaderMap, header};
use ruma::OwnedServerName;

use super::discovery::{WellKnown, WellKnownSource};

/// How long an answer is kept when it says nothing (the spec's default).
const DEFAULT_KEEP: Duration = Duration::from_secs(24 * 3600);
/// At most this long, whatever it says (the spec's recommended maximum).
const MAX_KEEP: Duration = Duration::from_secs(48 * 3600);
/// At least this long, so a `max-age=0` does not cost a fetch per request.
const MIN_KEEP: Duration = Duration::from_secs(5 * 60);
/// How long an error or an unusable answer is kept before asking again.
const ERROR_KEEP: Duration = Duration::from_secs(3600);
/// Redirects followed before giving up (a loop ends here too).
const MAX_REDIRECTS: usize = 5;
/// The whole fetch, redirects included.
const TIMEOUT: Duration = Duration::from_secs(10);
/// A delegation is one short JSON object.
const MAX_BODY: usize = 64 * 1024;

pub struct HttpWellKnown {
    pub client: OutboundClient,
}

impl WellKnownSource for HttpWellKnown {
    fn fetch<'a>(&'a self, host: &'a str) -> BoxFuture<'a, WellKnown> {
        Box::pin(async move {
            match tokio::time::timeout(TIMEOUT, self.delegation(host)).await {
                Ok(Ok((server, keep))) => {
                    tracing::debug!(host, %server, "well-known delegation");
                    WellKnown { server: Some(server), keep }
                }
                Ok(Err(why)) => {
                    tracing::debug!(host, why, "no well-known delegation");
                    WellKnown { server: None, keep: ERROR_KEEP }
                }
                Err(_) => WellKnown { server: None, keep: ERROR_KEEP },
            }
        })
    }
}

impl HttpWellKnown {
    async fn delegation(&self, host: &str) -> Result<(OwnedServerName, Duration), String> {
        let mut url = reqwest::Url::parse(&format!("https://{host}/.well-known/matrix/server"))
            .map_err(|e| format!("bad URL: {e}"))?;
        for _ in 0..=MAX_REDIRECTS {
            let request = self.client.client().get(url.clone()).build().map_err(|e| e.to_string())?;
            let mut response = self.client.execute(request).await.map_err(|e| format!("{e:#}"))?;
            let status = response.status();
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| format!("{status} without a Location"))?;
                url = url.join(location).map_err(|e| format!("bad Location {location:?}: {e}"))?;
                if url.scheme() != "https" {
                    return Err(format!("redirected to {url}, which is not HTTPS"));
                }
                continue;
            }
            if status != reqwest::StatusCode::OK {
                return Err(format!("answered {status}"));
            }
            let keep = keep_for(response.headers(), SystemTime::now());
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
                if body.len() + chunk.len() > MAX_BODY {
                    return Err("the answer is too large".to_owned());
                }
                body.extend_from_slice(&chunk);
            }
            return parse(&body).map(|server| (server, keep));
        }
        Err("too many redirects".to_owned())
    }
}

fn parse(body: &[u8]) -> Result<OwnedServerName, String> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let server = value.get("m.server").and_then(|v| v.as_str()).ok_or("no m.server string")?;
    OwnedServerName::try_from(server).map_err(|e| format!("m.server {server:?} is not a server name: {e}"))
}

/// How long a successful answer may be kept: `max-age` (`no-store` and
/// `no-cache` count as 0), else `Expires`, else the default, within bounds.
fn keep_for(headers: &HeaderMap, now: SystemTime) -> Duration {
    let cache_control = headers.get_all(header::CACHE_CONTROL).iter().filter_map(|v| v.to_str().ok());
    let mut max_age = None;
    for directive in cache_control.flat_map(|v| v.split(',')).map(str::trim) {
        let directive = directive.to_ascii_lowercase();
        if directive == "no-store" || directive == "no-cache" {
            max_age = Some(Duration::ZERO);
        } else if let Some(seconds) = directive.strip_prefix("max-age=")
            && let Ok(seconds) = seconds.trim_matches('"').parse::<u64>()
            && max_age.is_none()
        {
            max_age = Some(Duration::from_secs(seconds));
        }
    }
    let expires = || {
        let text = headers.get(header::EXPIRES)?.to_str().ok()?;
        // An unreadable Expires means already expired (RFC 9111, 5.3).
        let at = httpdate::parse_http_date(text).unwrap_or(now);
        Some(at.duration_since(now).unwrap_or_default())
    };
    max_age.or_else(expires).unwrap_or(DEFAULT_KEEP).clamp(MIN_KEEP, MAX_KEEP)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name.clone(), value.parse().unwrap());
        }
        map
    }

    #[test]
    fn cache_lifetime_follows_the_headers_within_bounds() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let hours = |h: u64| Duration::from_secs(h * 3600);
        assert_eq!(keep_for(&headers(&[]), now), hours(24));
        assert_eq!(keep_for(&headers(&[(header::CACHE_CONTROL, "public, max-age=7200")]), now), hours(2));
        assert_eq!(keep_for(&headers(&[(header::CACHE_CONTROL, "max-age=999999999")]), now), hours(48));
        assert_eq!(keep_for(&headers(&[(header::CACHE_CONTROL, "no-store")]), now), MIN_KEEP);
        let in_three_hours = httpdate::fmt_http_date(now + hours(3));
        assert_eq!(keep_for(&headers(&[(header::EXPIRES, in_three_hours.as_str())]), now), hours(3));
        assert_eq!(keep_for(&headers(&[(header::EXPIRES, "garbage")]), now), MIN_KEEP);
        let both = [(header::CACHE_CONTROL, "max-age=3600"), (header::EXPIRES, in_three_hours.as_str())];
        assert_eq!(keep_for(&headers(&both), now), hours(1), "max-age wins over Expires");
    }

    #[test]
    fn delegations_must_name_a_server() {
        assert_eq!(parse(br#"{"m.server": "matrix.example.org:443"}"#).unwrap().as_str(), "matrix.example.org:443");
        for bad in [&b"not json"[..], br#"{}"#, br#"{"m.server": 1}"#, br#"{"m.server": "bad name!"}"#] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
