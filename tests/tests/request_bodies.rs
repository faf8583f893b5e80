//! Every route of the client-server API takes whatever body a client sends
//! without a 5xx: `{}`, no body (with and without a Content-Type), `null`,
//! `[]`, a string, invalid UTF-8, text that is not JSON, a large body under
//! `global.max_request_bytes` and one over it (declared and chunked). Every
//! 4xx is a Matrix error, the keep-alive connection serves the next request
//! (or the answer said `Connection: close`), invalid UTF-8 is 400 M_NOT_JSON,
//! and an event or account data that is not a JSON object is refused and
//! never stored. All failures are collected, so one run lists every route.

use std::{
    collections::{BTreeMap, HashSet},
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use futures::{StreamExt, stream};
use serde_json::{Value, json};
use tests::{
    Deployment, Mode, Options,
    client::{Client, enc},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{
        TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
    time::timeout,
};

/// `global.max_request_bytes` of the deployments: the least the config allows,
/// so that the oversized bodies stay small and the run fast.
const MAX_BODY: usize = 65_536;
/// A body a little under the limit, which every route must read or skip cleanly.
const LARGE: usize = 60_000;
/// A body well over the limit.
const OVERSIZED: usize = 100_000;
/// Requests in flight at once: enough to finish in seconds on two cores.
const CONCURRENCY: usize = 8;
/// On SQLite, one at a time: concurrent room writes there can still stall a
/// send for 30 s (the roomserver meets "database is locked" and an answer
/// never comes; issue 12's stalls), which this scenario is not about.
const SQLITE_CONCURRENCY: usize = 1;
/// How long the server may take to answer one request, however busy.
const ANSWER_WITHIN: Duration = Duration::from_secs(30);
/// How long syncapi may take to show what was accepted.
const PATIENCE: Duration = Duration::from_secs(30);

/// What the spec says a route takes as its body.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Takes {
    Json,
    /// Any bytes (media uploads).
    Bytes,
    No,
}
use Takes::{Bytes, Json, No};

type Route = (&'static str, &'static str, Takes);

// Every operation of the Matrix spec's client-server OpenAPI bundle (built
// from matrix-org/matrix-spec after v1.16), written out by a one-off script:
// for each path and method, whether its requestBody is application/json.
const SPEC_ROUTES: &[Route] = &[
    ("GET", "/.well-known/matrix/client", No),
    ("GET", "/.well-known/matrix/policy_server", No),
    ("GET", "/.well-known/matrix/support", No),
    ("GET", "/_matrix/client/v1/admin/lock/{userId}", No),
    ("PUT", "/_matrix/client/v1/admin/lock/{userId}", Json),
    ("GET", "/_matrix/client/v1/admin/suspend/{userId}", No),
    ("PUT", "/_matrix/client/v1/admin/suspend/{userId}", Json),
    ("POST", "/_matrix/client/v1/appservice/{appserviceId}/ping", Json),
    ("GET", "/_matrix/client/v1/auth_metadata", No),
    ("POST", "/_matrix/client/v1/login/get_token", Json),
    ("GET", "/_matrix/client/v1/media/config", No),
    ("GET", "/_matrix/client/v1/media/download/{serverName}/{mediaId}", No),
    ("GET", "/_matrix/client/v1/media/download/{serverName}/{mediaId}/{fileName}", No),
    ("GET", "/_matrix/client/v1/media/preview_url", No),
    ("GET", "/_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}", No),
    ("GET", "/_matrix/client/v1/mutual_rooms", No),
    ("GET", "/_matrix/client/v1/register/m.login.registration_token/validity", No),
    ("GET", "/_matrix/client/v1/room_summary/{roomIdOrAlias}", No),
    ("GET", "/_matrix/client/v1/rooms/{roomId}/hierarchy", No),
    ("GET", "/_matrix/client/v1/rooms/{roomId}/relations/{eventId}", No),
    ("GET", "/_matrix/client/v1/rooms/{roomId}/relations/{eventId}/{relType}", No),
    ("GET", "/_matrix/client/v1/rooms/{roomId}/relations/{eventId}/{relType}/{eventType}", No),
    ("GET", "/_matrix/client/v1/rooms/{roomId}/threads", No),
    ("GET", "/_matrix/client/v1/rooms/{roomId}/timestamp_to_event", No),
    ("GET", "/_matrix/client/v3/account/3pid", No),
    ("POST", "/_matrix/client/v3/account/3pid", Json),
    ("POST", "/_matrix/client/v3/account/3pid/add", Json),
    ("POST", "/_matrix/client/v3/account/3pid/bind", Json),
    ("POST", "/_matrix/client/v3/account/3pid/delete", Json),
    ("POST", "/_matrix/client/v3/account/3pid/email/requestToken", Json),
    ("POST", "/_matrix/client/v3/account/3pid/msisdn/requestToken", Json),
    ("POST", "/_matrix/client/v3/account/3pid/unbind", Json),
    ("POST", "/_matrix/client/v3/account/deactivate", Json),
    ("POST", "/_matrix/client/v3/account/password", Json),
    ("POST", "/_matrix/client/v3/account/password/email/requestToken", Json),
    ("POST", "/_matrix/client/v3/account/password/msisdn/requestToken", Json),
    ("GET", "/_matrix/client/v3/account/whoami", No),
    ("GET", "/_matrix/client/v3/admin/whois/{userId}", No),
    ("GET", "/_matrix/client/v3/capabilities", No),
    ("POST", "/_matrix/client/v3/createRoom", Json),
    ("POST", "/_matrix/client/v3/delete_devices", Json),
    ("GET", "/_matrix/client/v3/devices", No),
    ("GET", "/_matrix/client/v3/devices/{deviceId}", No),
    ("PUT", "/_matrix/client/v3/devices/{deviceId}", Json),
    ("DELETE", "/_matrix/client/v3/devices/{deviceId}", Json),
    ("PUT", "/_matrix/client/v3/directory/list/appservice/{networkId}/{roomId}", Json),
    ("GET", "/_matrix/client/v3/directory/list/room/{roomId}", No),
    ("PUT", "/_matrix/client/v3/directory/list/room/{roomId}", Json),
    ("GET", "/_matrix/client/v3/directory/room/{roomAlias}", No),
    ("PUT", "/_matrix/client/v3/directory/room/{roomAlias}", Json),
    ("DELETE", "/_matrix/client/v3/directory/room/{roomAlias}", No),
    ("GET", "/_matrix/client/v3/events", No),
    ("GET", "/_matrix/client/v3/events/{eventId}", No),
    ("GET", "/_matrix/client/v3/initialSync", No),
    ("POST", "/_matrix/client/v3/join/{roomIdOrAlias}", Json),
    ("GET", "/_matrix/client/v3/joined_rooms", No),
    ("GET", "/_matrix/client/v3/keys/changes", No),
    ("POST", "/_matrix/client/v3/keys/claim", Json),
    ("POST", "/_matrix/client/v3/keys/device_signing/upload", Json),
    ("POST", "/_matrix/client/v3/keys/query", Json),
    ("POST", "/_matrix/client/v3/keys/signatures/upload", Json),
    ("POST", "/_matrix/client/v3/keys/upload", Json),
    ("POST", "/_matrix/client/v3/knock/{roomIdOrAlias}", Json),
    ("GET", "/_matrix/client/v3/login", No),
    ("POST", "/_matrix/client/v3/login", Json),
    ("GET", "/_matrix/client/v3/login/sso/redirect", No),
    ("GET", "/_matrix/client/v3/login/sso/redirect/{idpId}", No),
    ("POST", "/_matrix/client/v3/logout", No),
    ("POST", "/_matrix/client/v3/logout/all", No),
    ("GET", "/_matrix/client/v3/notifications", No),
    ("GET", "/_matrix/client/v3/presence/{userId}/status", No),
    ("PUT", "/_matrix/client/v3/presence/{userId}/status", Json),
    ("GET", "/_matrix/client/v3/profile/{userId}", No),
    ("GET", "/_matrix/client/v3/profile/{userId}/{keyName}", No),
    ("PUT", "/_matrix/client/v3/profile/{userId}/{keyName}", Json),
    ("DELETE", "/_matrix/client/v3/profile/{userId}/{keyName}", No),
    ("GET", "/_matrix/client/v3/publicRooms", No),
    ("POST", "/_matrix/client/v3/publicRooms", Json),
    ("GET", "/_matrix/client/v3/pushers", No),
    ("POST", "/_matrix/client/v3/pushers/set", Json),
    ("GET", "/_matrix/client/v3/pushrules/", No),
    ("GET", "/_matrix/client/v3/pushrules/global/", No),
    ("GET", "/_matrix/client/v3/pushrules/global/{kind}/{ruleId}", No),
    ("PUT", "/_matrix/client/v3/pushrules/global/{kind}/{ruleId}", Json),
    ("DELETE", "/_matrix/client/v3/pushrules/global/{kind}/{ruleId}", No),
    ("GET", "/_matrix/client/v3/pushrules/global/{kind}/{ruleId}/actions", No),
    ("PUT", "/_matrix/client/v3/pushrules/global/{kind}/{ruleId}/actions", Json),
    ("GET", "/_matrix/client/v3/pushrules/global/{kind}/{ruleId}/enabled", No),
    ("PUT", "/_matrix/client/v3/pushrules/global/{kind}/{ruleId}/enabled", Json),
    ("POST", "/_matrix/client/v3/refresh", Json),
    ("POST", "/_matrix/client/v3/register", Json),
    ("GET", "/_matrix/client/v3/register/available", No),
    ("POST", "/_matrix/client/v3/register/email/requestToken", Json),
    ("POST", "/_matrix/client/v3/register/msisdn/requestToken", Json),
    ("GET", "/_matrix/client/v3/room_keys/keys", No),
    ("PUT", "/_matrix/client/v3/room_keys/keys", Json),
    ("DELETE", "/_matrix/client/v3/room_keys/keys", No),
    ("GET", "/_matrix/client/v3/room_keys/keys/{roomId}", No),
    ("PUT", "/_matrix/client/v3/room_keys/keys/{roomId}", Json),
    ("DELETE", "/_matrix/client/v3/room_keys/keys/{roomId}", No),
    ("GET", "/_matrix/client/v3/room_keys/keys/{roomId}/{sessionId}", No),
    ("PUT", "/_matrix/client/v3/room_keys/keys/{roomId}/{sessionId}", Json),
    ("DELETE", "/_matrix/client/v3/room_keys/keys/{roomId}/{sessionId}", No),
    ("GET", "/_matrix/client/v3/room_keys/version", No),
    ("POST", "/_matrix/client/v3/room_keys/version", Json),
    ("GET", "/_matrix/client/v3/room_keys/version/{version}", No),
    ("PUT", "/_matrix/client/v3/room_keys/version/{version}", Json),
    ("DELETE", "/_matrix/client/v3/room_keys/version/{version}", No),
    ("GET", "/_matrix/client/v3/rooms/{roomId}/aliases", No),
    ("POST", "/_matrix/client/v3/rooms/{roomId}/ban", Json),
    ("GET", "/_matrix/client/v3/rooms/{roomId}/context/{eventId}", No),
    ("GET", "/_matrix/client/v3/rooms/{roomId}/event/{eventId}", No),
    ("POST", "/_matrix/client/v3/rooms/{roomId}/forget", No),
    ("GET", "/_matrix/client/v3/rooms/{roomId}/initialSync", No),
    ("POST", "/_matrix/client/v3/rooms/{roomId}/invite", Json),
    ("POST", "/_matrix/client/v3/rooms/{roomId}/join", Json),
    ("GET", "/_matrix/client/v3/rooms/{roomId}/joined_members", No),
    ("POST", "/_matrix/client/v3/rooms/{roomId}/kick", Json),
    ("POST", "/_matrix/client/v3/rooms/{roomId}/leave", Json),
    ("GET", "/_matrix/client/v3/rooms/{roomId}/members", No),
    ("GET", "/_matrix/client/v3/rooms/{roomId}/messages", No),
    ("POST", "/_matrix/client/v3/rooms/{roomId}/read_markers", Json),
    ("POST", "/_matrix/client/v3/rooms/{roomId}/receipt/{receiptType}/{eventId}", Json),
    ("PUT", "/_matrix/client/v3/rooms/{roomId}/redact/{eventId}/{txnId}", Json),
    ("POST", "/_matrix/client/v3/rooms/{roomId}/report", Json),
    ("POST", "/_matrix/client/v3/rooms/{roomId}/report/{eventId}", Json),
    ("PUT", "/_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}", Json),
    ("GET", "/_matrix/client/v3/rooms/{roomId}/state", No),
    ("GET", "/_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}", No),
    ("PUT", "/_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}", Json),
    ("PUT", "/_matrix/client/v3/rooms/{roomId}/typing/{userId}", Json),
    ("POST", "/_matrix/client/v3/rooms/{roomId}/unban", Json),
    ("POST", "/_matrix/client/v3/rooms/{roomId}/upgrade", Json),
    ("POST", "/_matrix/client/v3/search", Json),
    ("PUT", "/_matrix/client/v3/sendToDevice/{eventType}/{txnId}", Json),
    ("GET", "/_matrix/client/v3/sync", No),
    ("GET", "/_matrix/client/v3/thirdparty/location", No),
    ("GET", "/_matrix/client/v3/thirdparty/location/{protocol}", No),
    ("GET", "/_matrix/client/v3/thirdparty/protocol/{protocol}", No),
    ("GET", "/_matrix/client/v3/thirdparty/protocols", No),
    ("GET", "/_matrix/client/v3/thirdparty/user", No),
    ("GET", "/_matrix/client/v3/thirdparty/user/{protocol}", No),
    ("GET", "/_matrix/client/v3/user/{userId}/account_data/{type}", No),
    ("PUT", "/_matrix/client/v3/user/{userId}/account_data/{type}", Json),
    ("POST", "/_matrix/client/v3/user/{userId}/filter", Json),
    ("GET", "/_matrix/client/v3/user/{userId}/filter/{filterId}", No),
    ("POST", "/_matrix/client/v3/user/{userId}/openid/request_token", Json),
    ("GET", "/_matrix/client/v3/user/{userId}/rooms/{roomId}/account_data/{type}", No),
    ("PUT", "/_matrix/client/v3/user/{userId}/rooms/{roomId}/account_data/{type}", Json),
    ("GET", "/_matrix/client/v3/user/{userId}/rooms/{roomId}/tags", No),
    ("PUT", "/_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag}", Json),
    ("DELETE", "/_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag}", No),
    ("POST", "/_matrix/client/v3/user_directory/search", Json),
    ("POST", "/_matrix/client/v3/users/{userId}/report", Json),
    ("GET", "/_matrix/client/v3/voip/turnServer", No),
    ("GET", "/_matrix/client/versions", No),
    ("POST", "/_matrix/media/v1/create", No),
    ("GET", "/_matrix/media/v3/config", No),
    ("GET", "/_matrix/media/v3/download/{serverName}/{mediaId}", No),
    ("GET", "/_matrix/media/v3/download/{serverName}/{mediaId}/{fileName}", No),
    ("GET", "/_matrix/media/v3/preview_url", No),
    ("GET", "/_matrix/media/v3/thumbnail/{serverName}/{mediaId}", No),
    ("POST", "/_matrix/media/v3/upload", Bytes),
    ("PUT", "/_matrix/media/v3/upload/{serverName}/{mediaId}", Bytes),
];

/// Legacy `r0` forms that clients still send.
const LEGACY_ROUTES: &[Route] = &[
    ("GET", "/_matrix/client/r0/login", No),
    ("POST", "/_matrix/client/r0/login", Json),
    ("POST", "/_matrix/client/r0/register", Json),
    ("POST", "/_matrix/client/r0/logout", No),
    ("GET", "/_matrix/client/r0/account/whoami", No),
    ("GET", "/_matrix/client/r0/sync", No),
    ("POST", "/_matrix/client/r0/createRoom", Json),
    ("POST", "/_matrix/client/r0/join/{roomIdOrAlias}", Json),
    ("PUT", "/_matrix/client/r0/rooms/{roomId}/send/{eventType}/{txnId}", Json),
    ("PUT", "/_matrix/client/r0/rooms/{roomId}/state/{eventType}/{stateKey}", Json),
    ("GET", "/_matrix/client/r0/rooms/{roomId}/messages", No),
    ("PUT", "/_matrix/client/r0/user/{userId}/account_data/{type}", Json),
    ("PUT", "/_matrix/client/r0/profile/{userId}/{keyName}", Json),
];

/// Paths no table lists that clients send too: the empty state key without
/// its slash, unknown endpoints, and a method the path does not serve.
const OTHER_ROUTES: &[Route] = &[
    ("PUT", "/_matrix/client/v3/rooms/{roomId}/state/{eventType}", Json),
    ("GET", "/_matrix/client/v3/rooms/{roomId}/state/{eventType}", No),
    ("POST", "/_matrix/client/v3/no/such/endpoint", No),
    ("PUT", "/_matrix/client/unstable/org.example.nothing", No),
    ("POST", "/nothing/at/all", No),
    ("DELETE", "/_matrix/client/versions", No),
    ("POST", "/_matrix/client/versions", No),
];

/// Routes that end the session, the account or a device whatever the body:
/// each request to them is sent by an account of its own.
fn spends_the_session(method: &str, template: &str) -> bool {
    template.ends_with("/logout")
        || template.ends_with("/logout/all")
        || template.ends_with("/account/deactivate")
        || template.ends_with("/account/password")
        || template.ends_with("/delete_devices")
        || (method == "DELETE" && template.ends_with("/devices/{deviceId}"))
}

/// The bodies every route is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    EmptyObject,
    Empty,
    EmptyUntyped,
    Null,
    Array,
    String,
    InvalidUtf8,
    NotJson,
    Large,
    Oversized,
    OversizedChunked,
}

impl Kind {
    const ALL: [Kind; 11] = [
        Kind::EmptyObject,
        Kind::Empty,
        Kind::EmptyUntyped,
        Kind::Null,
        Kind::Array,
        Kind::String,
        Kind::InvalidUtf8,
        Kind::NotJson,
        Kind::Large,
        Kind::Oversized,
        Kind::OversizedChunked,
    ];
    /// What is also sent without an access token, to reach the 401 paths with a body.
    const TOKENLESS: [Kind; 4] = [Kind::NotJson, Kind::Large, Kind::Oversized, Kind::OversizedChunked];
    /// What no event content or account data may be made of.
    const NOT_AN_OBJECT: [Kind; 7] =
        [Kind::Empty, Kind::EmptyUntyped, Kind::Null, Kind::Array, Kind::String, Kind::InvalidUtf8, Kind::NotJson];

    fn name(self) -> &'static str {
        match self {
            Kind::EmptyObject => "{}",
            Kind::Empty => "empty body",
            Kind::EmptyUntyped => "empty body, no Content-Type",
            Kind::Null => "null",
            Kind::Array => "[]",
            Kind::String => "\"a string\"",
            Kind::InvalidUtf8 => "invalid UTF-8",
            Kind::NotJson => "not JSON",
            Kind::Large => "60 KB object",
            Kind::Oversized => "100 KB, over the limit",
            Kind::OversizedChunked => "100 KB chunked, over the limit",
        }
    }

    fn bytes(self) -> Vec<u8> {
        match self {
            Kind::EmptyObject => b"{}".to_vec(),
            Kind::Empty | Kind::EmptyUntyped => Vec::new(),
            Kind::Null => b"null".to_vec(),
            Kind::Array => b"[]".to_vec(),
            Kind::String => b"\"a string\"".to_vec(),
            Kind::InvalidUtf8 => b"{\"a\":\"\xff\xfe\"}".to_vec(),
            Kind::NotJson => b"this is not JSON".to_vec(),
            Kind::Large => padded(LARGE),
            Kind::Oversized | Kind::OversizedChunked => padded(OVERSIZED),
        }
    }

    fn oversized(self) -> bool {
        matches!(self, Kind::Oversized | Kind::OversizedChunked)
    }
}

/// A JSON object of exactly `size` bytes.
fn padded(size: usize) -> Vec<u8> {
    let mut body = b"{\"padding\":\"".to_vec();
    body.resize(size - 2, b'x');
    body.extend_from_slice(b"\"}");
    body
}

// ---- One request and the next on the same connection ----

/// An answer as read off the wire.
struct Reply {
    status: u16,
    /// The answer said `Connection: close`, or ended with the connection.
    closes: bool,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    fn errcode(&self) -> String {
        self.json().and_then(|v| v["errcode"].as_str().map(str::to_owned)).unwrap_or_default()
    }

    /// A Matrix error, or the 401 of user-interactive auth (which has no errcode).
    fn is_matrix_error(&self) -> bool {
        self.json().is_some_and(|v| {
            v["errcode"].as_str().is_some_and(|c| !c.is_empty()) || (self.status == 401 && v["flows"].is_array())
        })
    }

    fn text(&self) -> String {
        short(&String::from_utf8_lossy(&self.body))
    }
}

/// `text` on one line, cut to a length that keeps a report of hundreds of lines readable.
fn short(text: &str) -> String {
    let line: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if line.chars().count() > 300 { format!("{}…", line.chars().take(300).collect::<String>()) } else { line }
}

/// The read side of a connection, with what was read and not yet parsed.
struct Incoming {
    half: OwnedReadHalf,
    buf: Vec<u8>,
}

impl Incoming {
    async fn fill(&mut self) -> Result<(), String> {
        let mut chunk = [0u8; 16384];
        match self.half.read(&mut chunk).await {
            Ok(0) => Err("the connection was closed".into()),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(e) => Err(format!("reading failed ({e})")),
        }
    }

    async fn line(&mut self) -> Result<String, String> {
        loop {
            if let Some(at) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..at]).into_owned();
                self.buf.drain(..at + 2);
                return Ok(line);
            }
            self.fill().await?;
        }
    }

    async fn exactly(&mut self, n: usize) -> Result<Vec<u8>, String> {
        while self.buf.len() < n {
            self.fill().await.map_err(|e| format!("{e} in the middle of the answer's body"))?;
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// Reads one whole answer.
    async fn reply(&mut self) -> Result<Reply, String> {
        loop {
            let end = loop {
                if let Some(at) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break at;
                }
                let before = self.buf.is_empty();
                self.fill().await.map_err(|e| {
                    if before {
                        format!("{e} before any answer")
                    } else {
                        format!("{e} in the middle of the answer's head")
                    }
                })?;
            };
            let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
            self.buf.drain(..end + 4);
            let mut lines = head.split("\r\n");
            let status: u16 = lines
                .next()
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|code| code.parse().ok())
                .ok_or_else(|| format!("not an HTTP answer: {head:?}"))?;
            if (100..200).contains(&status) {
                continue;
            }
            let headers: Vec<(String, String)> = lines
                .filter_map(|line| line.split_once(':'))
                .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_ascii_lowercase()))
                .collect();
            let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
            let mut closes = header("connection").is_some_and(|v| v.contains("close"));
            let body = if status == 204 || status == 304 {
                Vec::new()
            } else if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
                let mut body = Vec::new();
                loop {
                    let size = self.line().await?;
                    let size = usize::from_str_radix(size.split(';').next().unwrap_or_default().trim(), 16)
                        .map_err(|_| format!("bad chunk size {size:?}"))?;
                    if size == 0 {
                        while !self.line().await?.is_empty() {}
                        break body;
                    }
                    body.extend(self.exactly(size).await?);
                    self.line().await?;
                }
            } else if let Some(length) = header("content-length") {
                let length = length.parse().map_err(|_| format!("bad Content-Length {length:?}"))?;
                self.exactly(length).await?
            } else {
                // No length: the body ends with the connection.
                closes = true;
                while self.fill().await.is_ok() {}
                std::mem::take(&mut self.buf)
            };
            return Ok(Reply { status, closes, body });
        }
    }
}

/// A request as it goes on the wire.
struct Request {
    method: &'static str,
    path: String,
    token: Option<String>,
    kind: Kind,
}

async fn write_request(writer: &mut OwnedWriteHalf, host: &str, request: &Request) -> std::io::Result<()> {
    let body = request.kind.bytes();
    let chunked = request.kind == Kind::OversizedChunked;
    let mut head = format!("{} {} HTTP/1.1\r\nHost: {host}\r\n", request.method, request.path);
    if let Some(token) = &request.token {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    if request.kind != Kind::EmptyUntyped {
        head.push_str("Content-Type: application/json\r\n");
    }
    if chunked {
        head.push_str("Transfer-Encoding: chunked\r\n\r\n");
    } else {
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    }
    writer.write_all(head.as_bytes()).await?;
    for piece in body.chunks(16384) {
        if chunked {
            writer.write_all(format!("{:x}\r\n", piece.len()).as_bytes()).await?;
        }
        writer.write_all(piece).await?;
        if chunked {
            writer.write_all(b"\r\n").await?;
        }
    }
    if chunked {
        writer.write_all(b"0\r\n\r\n").await?;
    }
    writer.flush().await
}

/// Sends `request` on a new connection, reading the answer while still
/// sending (a server may answer before it has read the body), then sends
/// `GET /_matrix/client/versions` on the same connection unless the answer
/// said `Connection: close`. Returns the first answer, if one came whole, and
/// what went wrong with the connection, if anything.
async fn exchange(host: &str, request: Request) -> (Option<Reply>, Result<(), String>) {
    let stream = match TcpStream::connect(host).await {
        Ok(stream) => stream,
        Err(e) => return (None, Err(format!("cannot connect ({e})"))),
    };
    let (reader, mut writer) = stream.into_split();
    let mut incoming = Incoming { half: reader, buf: Vec::new() };
    let owned_host = host.to_owned();
    let mut sending = tokio::spawn(async move {
        let sent = write_request(&mut writer, &owned_host, &request).await;
        (writer, sent)
    });
    let first = match timeout(ANSWER_WITHIN, incoming.reply()).await {
        Ok(Ok(reply)) => reply,
        Ok(Err(e)) => {
            let sent = match timeout(Duration::from_secs(1), &mut sending).await {
                Ok(Ok((_, Ok(())))) => "the request was sent whole".to_owned(),
                Ok(Ok((_, Err(e)))) => format!("sending failed too ({e})"),
                _ => "the request was still being sent".to_owned(),
            };
            sending.abort();
            return (None, Err(format!("{e}; {sent}")));
        }
        Err(_) => {
            sending.abort();
            return (None, Err(format!("no answer within {ANSWER_WITHIN:?}")));
        }
    };
    if first.closes {
        sending.abort();
        return (Some(first), Ok(()));
    }
    let mut writer = match timeout(Duration::from_secs(5), &mut sending).await {
        Ok(Ok((writer, Ok(())))) => writer,
        Ok(Ok((_, Err(e)))) => {
            return (
                Some(first),
                Err(format!("the rest of the body could not be sent ({e}), yet the answer kept the connection alive")),
            );
        }
        Ok(Err(e)) => panic!("the sending task failed: {e}"),
        Err(_) => {
            sending.abort();
            return (Some(first), Err("the server stopped reading the body, yet kept the connection alive".to_owned()));
        }
    };
    let next = format!("GET /_matrix/client/versions HTTP/1.1\r\nHost: {host}\r\n\r\n");
    if let Err(e) = writer.write_all(next.as_bytes()).await {
        return (Some(first), Err(format!("the next request could not be sent on the connection ({e})")));
    }
    let outcome = match timeout(ANSWER_WITHIN, incoming.reply()).await {
        Ok(Ok(reply)) if reply.status == 200 => Ok(()),
        Ok(Ok(reply)) => Err(format!("the next request on the connection got {} {}", reply.status, reply.text())),
        Ok(Err(e)) => Err(format!("the next request on the connection got no answer: {e}")),
        Err(_) => Err(format!("the next request on the connection got no answer within {ANSWER_WITHIN:?}")),
    };
    (Some(first), outcome)
}

// ---- What the paths are filled with ----

/// The accounts, rooms and ids the paths are filled with, made first.
struct World {
    host: String,
    server_name: String,
    user: Client,
    other: Client,
    room: String,
    /// A public room for the routes that leave, forget, join, knock or upgrade.
    scratch: String,
    alias: String,
    event: String,
    /// The event the redact routes name.
    redact_target: String,
    filter: String,
    backup: String,
    media: String,
    since: String,
    txn: AtomicU64,
}

impl World {
    async fn set_up(deployment: &Deployment) -> World {
        let user = deployment.new_user().await;
        let other = deployment.new_user().await;
        let room = user
            .post(
                "/createRoom",
                json!({"preset": "private_chat", "room_alias_name": "bodies", "invite": [other.user_id]}),
            )
            .await
            .expect(200)["room_id"]
            .as_str()
            .expect("a room_id")
            .to_owned();
        other.post(&format!("/rooms/{}/join", enc(&room)), json!({})).await.expect(200);
        let scratch = user.post("/createRoom", json!({"preset": "public_chat"})).await.expect(200)["room_id"]
            .as_str()
            .expect("a room_id")
            .to_owned();
        let mut events = Vec::new();
        for (txn, body) in [("setup1", "hello"), ("setup2", "to redact")] {
            let path = format!("/rooms/{}/send/m.room.message/{txn}", enc(&room));
            let sent = user.put(&path, json!({"msgtype": "m.text", "body": body})).await.expect(200);
            events.push(sent["event_id"].as_str().expect("an event_id").to_owned());
        }
        let [event, redact_target] = <[String; 2]>::try_from(events).expect("two events");
        let filter = user
            .post(&format!("/user/{}/filter", enc(&user.user_id)), json!({"room": {"timeline": {"limit": 5}}}))
            .await
            .expect(200)["filter_id"]
            .as_str()
            .expect("a filter_id")
            .to_owned();
        user.put("/pushrules/global/override/org.example.rule", json!({"actions": [], "conditions": []}))
            .await
            .expect(200);
        // Key backup and media may not be served (404): then any id does.
        let backup = user
            .post(
                "/room_keys/version",
                json!({"algorithm": "m.megolm_backup.v1.curve25519-aes-sha2", "auth_data": {"public_key": "abcdefg"}}),
            )
            .await;
        let backup = backup.body["version"].as_str().unwrap_or("1").to_owned();
        let media = user.post("/_matrix/media/v3/upload", json!({"some": "file"})).await;
        let media = media.body["content_uri"]
            .as_str()
            .and_then(|uri| uri.rsplit('/').next())
            .unwrap_or("bodiesmedia")
            .to_owned();
        let since =
            user.get("/sync?timeout=0").await.expect(200)["next_batch"].as_str().expect("a next_batch").to_owned();
        World {
            host: deployment.base_url.trim_start_matches("http://").to_owned(),
            server_name: deployment.server_name.clone(),
            alias: format!("#bodies:{}", deployment.server_name),
            user,
            other,
            room,
            scratch,
            event,
            redact_target,
            filter,
            backup,
            media,
            since,
            txn: AtomicU64::new(0),
        }
    }

    /// `template` with its parameters filled in for `session`, and the query
    /// a route needs to get past its own checks.
    fn path(&self, template: &str, session: &Client) -> String {
        let mut path = String::new();
        let mut rest = template;
        while let Some(start) = rest.find('{') {
            let end = start + rest[start..].find('}').expect("a closing brace");
            path.push_str(&rest[..start]);
            path.push_str(&enc(&self.value(template, &rest[start + 1..end], session)));
            rest = &rest[end + 1..];
        }
        path.push_str(rest);
        if let Some(query) = self.query(template) {
            path.push('?');
            path.push_str(&query);
        }
        path
    }

    fn value(&self, template: &str, name: &str, session: &Client) -> String {
        let to_scratch = ["/leave", "/forget", "/upgrade", "/join"].iter().any(|end| template.ends_with(end));
        match name {
            "userId" if template.contains("/admin/") || template.contains("/users/") => self.other.user_id.clone(),
            "userId" => session.user_id.clone(),
            "roomId" if to_scratch => self.scratch.clone(),
            "roomId" => self.room.clone(),
            "roomIdOrAlias" if template.contains("room_summary") => self.alias.clone(),
            "roomIdOrAlias" => self.scratch.clone(),
            "eventId" if template.contains("/redact/") => self.redact_target.clone(),
            "eventId" => self.event.clone(),
            "deviceId" => session.device_id.clone(),
            "roomAlias" => self.alias.clone(),
            "eventType" if template.contains("/send/") => "m.room.message".into(),
            "eventType" if template.contains("/state/") => "org.example.state".into(),
            "eventType" if template.contains("/sendToDevice/") => "org.example.to_device".into(),
            "eventType" => "m.reaction".into(),
            "stateKey" => "k".into(),
            "txnId" => format!("bodies{}", self.txn.fetch_add(1, Ordering::Relaxed)),
            "type" => "org.example.bodies".into(),
            "filterId" => self.filter.clone(),
            "kind" => "override".into(),
            "ruleId" => "org.example.rule".into(),
            "receiptType" => "m.read".into(),
            "relType" => "m.annotation".into(),
            "tag" => "u.bodies".into(),
            "keyName" => "displayname".into(),
            "protocol" | "networkId" => "irc".into(),
            "idpId" => "oidc".into(),
            "appserviceId" => "bodies".into(),
            "serverName" => self.server_name.clone(),
            "mediaId" => self.media.clone(),
            "fileName" => "file.txt".into(),
            "sessionId" => "session1".into(),
            "version" => self.backup.clone(),
            other => panic!("no value for the path parameter {other} of {template}"),
        }
    }

    fn query(&self, template: &str) -> Option<String> {
        let ends = |end: &str| template.ends_with(end);
        Some(if ends("/sync") || ends("/events") {
            "timeout=0".into()
        } else if ends("/messages") {
            "dir=b&limit=5".into()
        } else if ends("/timestamp_to_event") {
            "ts=0&dir=f".into()
        } else if ends("/mutual_rooms") {
            format!("user_id={}", enc(&self.other.user_id))
        } else if ends("/register/available") {
            "username=bodiesfree".into()
        } else if ends("/validity") {
            "token=bodies".into()
        } else if ends("/keys/changes") {
            format!("from={0}&to={0}", enc(&self.since))
        } else if template.contains("/room_keys/keys") {
            format!("version={}", enc(&self.backup))
        } else if template.contains("/login/sso/redirect") {
            "redirectUrl=http%3A%2F%2F127.0.0.1%2F".into()
        } else if template.contains("/thumbnail/") {
            "width=32&height=32".into()
        } else {
            return None;
        })
    }
}

// ---- The checks ----

/// One request of the sweep and what came of it.
struct Record {
    route: Route,
    kind: Kind,
    token: bool,
    path: String,
    reply: Option<Reply>,
    connection: Result<(), String>,
}

impl Record {
    fn what(&self) -> String {
        let token = if self.token { "" } else { ", no token" };
        format!("{} {} [{}{token}]", self.route.0, self.path, self.kind.name())
    }
}

/// Failures by cause, each with the request and the answer.
#[derive(Default)]
struct Failures(BTreeMap<String, Vec<String>>);

impl Failures {
    fn add(&mut self, cause: impl Into<String>, detail: String) {
        self.0.entry(cause.into()).or_default().push(short(&detail));
    }

    fn count(&self) -> usize {
        self.0.values().map(Vec::len).sum()
    }

    fn report(&self) -> String {
        let mut text = String::new();
        for (cause, details) in &self.0 {
            text.push_str(&format!("\n== {cause} ({})\n", details.len()));
            for detail in details {
                text.push_str(&format!("  {detail}\n"));
            }
        }
        text
    }
}

/// A new account for one request that spends it, or why none could be made
/// (the server may be failing by then: that is a finding, not a panic).
async fn spendable_account(deployment: &Deployment) -> Result<Client, String> {
    let client = deployment.client();
    let (username, password) = (format!("spent{:08x}", rand::random::<u32>()), "spendable account password");
    let first = client.post("/register", json!({"username": username, "password": password})).await;
    let Some(session) = first.body["session"].as_str() else {
        return Err(format!("POST /register → {} {}", first.status, first.body));
    };
    let auth = json!({"type": "m.login.dummy", "session": session});
    let answer = client.post("/register", json!({"username": username, "password": password, "auth": auth})).await;
    if answer.status != 200 {
        return Err(format!("POST /register with its session → {} {}", answer.status, answer.body));
    }
    Ok(Client::new(&deployment.base_url).logged_in(&answer.body))
}

async fn send_one(deployment: &Deployment, world: &World, route: Route, kind: Kind, token: bool) -> Record {
    let (method, template, _) = route;
    let session = if token && spends_the_session(method, template) {
        match spendable_account(deployment).await {
            Ok(session) => session,
            Err(e) => {
                let problem = format!("no account to send it with: {e}");
                return Record { route, kind, token, path: template.to_owned(), reply: None, connection: Err(problem) };
            }
        }
    } else {
        world.user.clone()
    };
    let path = world.path(template, &session);
    let request =
        Request { method, path: path.clone(), token: if token { session.access_token.clone() } else { None }, kind };
    let (reply, connection) = exchange(&world.host, request).await;
    Record { route, kind, token, path, reply, connection }
}

fn judge(records: &[Record], failures: &mut Failures) {
    // The routes this server serves: `{}` with a token is not M_UNRECOGNIZED.
    let served: HashSet<(&str, &str)> = records
        .iter()
        .filter(|r| r.kind == Kind::EmptyObject && r.token)
        .filter(|r| r.reply.as_ref().is_some_and(|reply| reply.errcode() != "M_UNRECOGNIZED"))
        .map(|r| (r.route.0, r.route.1))
        .collect();
    for record in records {
        let what = record.what();
        let Some(reply) = &record.reply else {
            let problem = record.connection.as_ref().err().cloned().unwrap_or_default();
            failures.add("no whole answer", format!("{what}: {problem}"));
            continue;
        };
        let answer = format!("{} {}", reply.status, reply.text());
        if reply.status >= 500 {
            failures.add(format!("{} answer", reply.status), format!("{what} → {answer}"));
        } else if reply.status >= 400 && !reply.is_matrix_error() {
            failures.add("4xx that is not a Matrix error (JSON with an errcode)", format!("{what} → {answer}"));
        }
        if record.kind == Kind::Large && reply.status == 413 {
            failures.add("413 for a body under the limit", format!("{what} → {answer}"));
        }
        let (_, template, takes) = record.route;
        if record.token && served.contains(&(record.route.0, template)) {
            if takes == Json
                && record.kind == Kind::InvalidUtf8
                && (reply.status, reply.errcode().as_str()) != (400, "M_NOT_JSON")
            {
                failures.add("invalid UTF-8 not answered 400 M_NOT_JSON", format!("{what} → {answer}"));
            }
            if takes != No && record.kind.oversized() && reply.status != 413 {
                failures.add("a body over the limit not answered 413", format!("{what} → {answer}"));
            }
        }
        if let Err(problem) = &record.connection {
            failures.add(
                format!("the connection did not survive a {} answer", reply.status),
                format!("{what} → {}: {problem}", reply.status),
            );
        }
    }
}

/// Sends event contents and account data that are not JSON objects to a
/// room of their own, and checks that each was refused as bad JSON and that
/// nothing of them shows in the room or the account data.
async fn refused_bodies_are_not_stored(world: &World, failures: &mut Failures) {
    let user = &world.user;
    let room = user.post("/createRoom", json!({"preset": "private_chat"})).await.expect(200)["room_id"]
        .as_str()
        .expect("a room_id")
        .to_owned();
    let (room_path, user_path) = (enc(&room), enc(&user.user_id));
    for kind in Kind::NOT_AN_OBJECT {
        let txn = world.txn.fetch_add(1, Ordering::Relaxed);
        let targets = [
            ("PUT", format!("/_matrix/client/v3/rooms/{room_path}/send/m.room.message/refused{txn}")),
            ("PUT", format!("/_matrix/client/v3/rooms/{room_path}/state/m.room.topic/")),
            ("PUT", format!("/_matrix/client/v3/rooms/{room_path}/state/org.example.refused/k")),
            ("PUT", format!("/_matrix/client/v3/user/{user_path}/account_data/org.example.refused")),
            ("PUT", format!("/_matrix/client/v3/user/{user_path}/rooms/{room_path}/account_data/org.example.refused")),
        ];
        for (method, path) in targets {
            let record = Record {
                route: (method, "", Json),
                kind,
                token: true,
                path: path.clone(),
                reply: None,
                connection: Ok(()),
            };
            let request = Request { method, path, token: user.access_token.clone(), kind };
            let (reply, connection) = exchange(&world.host, request).await;
            let record = Record { reply, connection, ..record };
            let what = record.what();
            if let Some(reply) = &record.reply {
                let errcode = reply.errcode();
                let fine = match kind {
                    Kind::InvalidUtf8 | Kind::NotJson => errcode == "M_NOT_JSON",
                    _ => errcode == "M_NOT_JSON" || errcode == "M_BAD_JSON",
                };
                if reply.status != 400 || !fine {
                    failures.add(
                        "not an object, yet not 400 M_NOT_JSON (not JSON) or M_BAD_JSON (JSON, not an object)",
                        format!("{what} → {} {}", reply.status, reply.text()),
                    );
                }
            }
            judge(std::slice::from_ref(&record), failures);
        }
    }

    // What comes after the refused requests, to wait for before looking.
    user.put(
        &format!("/rooms/{room_path}/send/m.room.message/sentinel"),
        json!({"msgtype": "m.text", "body": "sentinel"}),
    )
    .await
    .expect(200);
    user.put(&format!("/user/{user_path}/account_data/org.example.sentinel"), json!({"done": true})).await.expect(200);
    user.put(&format!("/user/{user_path}/rooms/{room_path}/account_data/org.example.sentinel"), json!({"done": true}))
        .await
        .expect(200);
    let stored = "a refused body was stored";
    let refused_type = |t: &str| t == "m.room.topic" || t == "org.example.refused";

    let deadline = Instant::now() + PATIENCE;
    let chunk = loop {
        let answer = user.get(&format!("/rooms/{room_path}/messages?dir=b&limit=100")).await;
        let chunk = answer.body["chunk"].as_array().cloned().unwrap_or_default();
        if chunk.iter().any(|e| e["content"]["body"] == "sentinel") {
            break chunk;
        }
        assert!(Instant::now() < deadline, "the sentinel never showed in /messages: {}", answer.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for event in &chunk {
        let kind = event["type"].as_str().unwrap_or_default();
        if (kind == "m.room.message" && event["content"]["body"] != "sentinel") || refused_type(kind) {
            failures.add(stored, format!("/messages of the room shows {event}"));
        }
    }
    let state = user.get(&format!("/rooms/{room_path}/state")).await.expect(200);
    for event in state.as_array().into_iter().flatten() {
        if refused_type(event["type"].as_str().unwrap_or_default()) {
            failures.add(stored, format!("the room's state holds {event}"));
        }
    }
    for path in [
        format!("/rooms/{room_path}/state/m.room.topic/"),
        format!("/rooms/{room_path}/state/org.example.refused/k"),
        format!("/user/{user_path}/account_data/org.example.refused"),
        format!("/user/{user_path}/rooms/{room_path}/account_data/org.example.refused"),
    ] {
        let answer = user.get(&path).await;
        if answer.status != 404 {
            failures.add(stored, format!("GET {path} → {} {}", answer.status, answer.body));
        }
    }

    let deadline = Instant::now() + PATIENCE;
    let of_type = |list: &Value, kind: &str| {
        list["events"].as_array().and_then(|l| l.iter().find(|e| e["type"] == kind)).cloned()
    };
    loop {
        let sync = user.get("/sync?timeout=0").await.expect(200);
        let (global, in_room) = (&sync["account_data"], &sync["rooms"]["join"][&room]["account_data"]);
        if of_type(global, "org.example.sentinel").is_some() && of_type(in_room, "org.example.sentinel").is_some() {
            if let Some(event) = of_type(global, "org.example.refused") {
                failures.add(stored, format!("/sync's account data shows {event}"));
            }
            if let Some(event) = of_type(in_room, "org.example.refused") {
                failures.add(stored, format!("/sync's room account data shows {event}"));
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the sentinel account data never showed in /sync: {}",
            short(&sync.to_string())
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn every_route_takes_every_body(mode: Mode) {
    let options = Options::new(mode)
        .set("global.max_request_bytes", &MAX_BODY.to_string())
        .set("global.rate_limits.enabled", "false");
    let deployment = Deployment::start_with(options).await;
    let world = World::set_up(&deployment).await;
    let started = Instant::now();
    let mut failures = Failures::default();
    // First, while nothing else has happened to the deployment.
    refused_bodies_are_not_stored(&world, &mut failures).await;

    // One body on every route, then the next: what one body breaks shows up
    // after what the bodies before it found.
    let routes = || SPEC_ROUTES.iter().chain(LEGACY_ROUTES).chain(OTHER_ROUTES).copied();
    let with_token = Kind::ALL.into_iter().map(|kind| (kind, true));
    let jobs: Vec<(Route, Kind, bool)> = with_token
        .chain(Kind::TOKENLESS.into_iter().map(|kind| (kind, false)))
        .flat_map(|(kind, token)| routes().map(move |route| (route, kind, token)))
        .collect();
    let records: Vec<Record> = stream::iter(jobs)
        .map(|(route, kind, token)| send_one(&deployment, &world, route, kind, token))
        .buffer_unordered(if deployment.config.global.database.is_some() { CONCURRENCY } else { SQLITE_CONCURRENCY })
        .collect()
        .await;
    judge(&records, &mut failures);

    eprintln!("{} requests in {:.1?}", records.len(), started.elapsed());
    assert!(failures.count() == 0, "{} failures on the {mode:?}:{}", failures.count(), failures.report());
}

#[tokio::test]
async fn monolith_takes_every_body_on_every_route() {
    every_route_takes_every_body(Mode::Monolith).await;
}

#[tokio::test]
async fn polylith_takes_every_body_on_every_route() {
    every_route_takes_every_body(Mode::Polylith).await;
}
