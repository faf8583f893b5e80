//! A fake remote homeserver for federation scenarios, in the test process:
//! HTTPS on loopback with a certificate of the test's CA (see `tls.rs`),
//! named `localhost:<port>`. It serves `/_matrix/key/v2/server` signed with
//! a key of its own (or whatever the scenario makes it serve), counting the
//! fetches, and records every other request, answering what the scenario
//! set for its path (404 `M_UNRECOGNIZED` otherwise).

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::get,
};
use common::keys::SigningKey;
use ruma::CanonicalJsonObject;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::tls::{TestCa, TlsListener};

/// One request the fake received, as it arrived.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: Method,
    /// Path and query.
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    /// The request as `http::Request`, for ruma's X-Matrix checks.
    pub fn http_request(&self) -> axum::http::Request<Vec<u8>> {
        axum::http::Request::builder()
            .method(self.method.clone())
            .uri(&self.uri)
            .body(self.body.to_vec())
            .expect("a request that arrived can be rebuilt")
    }
}

#[derive(Default)]
struct Shared {
    key_fetches: AtomicUsize,
    /// What `/_matrix/key/v2/server` serves; None: a fresh signed response.
    keys: Mutex<Option<Value>>,
    replies: Mutex<HashMap<String, (u16, Value)>>,
    answerers: Mutex<Vec<(String, Answerer)>>,
    recorded: Mutex<Vec<Recorded>>,
}

/// Works out the answer to a request from the request.
pub type Answerer = Arc<dyn Fn(&Recorded) -> (u16, Value) + Send + Sync>;

/// Whether `pattern` (a path, or a prefix ending in `*`) covers `path`.
fn covers(pattern: &str, path: &str) -> bool {
    pattern == path || pattern.strip_suffix('*').is_some_and(|prefix| path.starts_with(prefix))
}

pub struct RemoteServer {
    /// `localhost:<port>`.
    pub server_name: String,
    pub key: Arc<SigningKey>,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_millis() as u64
}

impl RemoteServer {
    /// Starts serving, with a certificate from `ca` for localhost and 127.0.0.1.
    pub async fn start(ca: &TestCa) -> RemoteServer {
        let listener = TlsListener::bind(ca.server_config(&["localhost", "127.0.0.1"])).await;
        let port = axum::serve::Listener::local_addr(&listener).expect("a bound address").port();
        let server_name = format!("localhost:{port}");
        let key = Arc::new(SigningKey::generate());
        let shared = Arc::new(Shared::default());
        let state = (shared.clone(), server_name.clone(), key.clone());
        let router = Router::new().route("/_matrix/key/v2/server", get(server_keys)).fallback(record).with_state(state);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        RemoteServer { server_name, key, shared, task }
    }

    /// How many times `/_matrix/key/v2/server` was fetched.
    pub fn key_fetches(&self) -> usize {
        self.shared.key_fetches.load(Ordering::SeqCst)
    }

    /// Serves `body` as `/_matrix/key/v2/server` from now on.
    pub fn serve_keys(&self, body: Value) {
        *self.shared.keys.lock().expect("not poisoned") = Some(body);
    }

    /// A key response for `server_name` listing `key` (valid for a day)
    /// and `old` keys (key id, key, expired_ts), signed by `signer`.
    pub fn key_response(
        server_name: &str,
        key: &SigningKey,
        old: &[(&str, &SigningKey, u64)],
        signer: &SigningKey,
    ) -> Value {
        let old: serde_json::Map<String, Value> = old
            .iter()
            .map(|(id, key, expired_ts)| {
                (id.to_string(), json!({ "key": key.public_key().encode(), "expired_ts": expired_ts }))
            })
            .collect();
        let mut object: CanonicalJsonObject = serde_json::from_value(json!({
            "server_name": server_name,
            "verify_keys": { key.key_id(): { "key": key.public_key().encode() } },
            "old_verify_keys": old,
            "valid_until_ts": now_ms() + Duration::from_secs(24 * 3600).as_millis() as u64,
        }))
        .expect("a JSON object");
        signer.sign_json(server_name, &mut object).expect("signs");
        serde_json::to_value(object).expect("JSON")
    }

    /// Answers `status` and `body` to requests for `path` (without query);
    /// a `path` ending in `*` stands for every path it begins.
    pub fn reply(&self, path: &str, status: u16, body: Value) {
        self.shared.replies.lock().expect("not poisoned").insert(path.to_owned(), (status, body));
    }

    /// Answers requests for `path` (a `*` at the end: every path it begins)
    /// with what `answer` makes of each, before any [`RemoteServer::reply`].
    pub fn answer_with(&self, path: &str, answer: impl Fn(&Recorded) -> (u16, Value) + Send + Sync + 'static) {
        self.shared.answerers.lock().expect("not poisoned").push((path.to_owned(), Arc::new(answer)));
    }

    /// Every request but key fetches, in order of arrival.
    pub fn recorded(&self) -> Vec<Recorded> {
        self.shared.recorded.lock().expect("not poisoned").clone()
    }
}

impl Drop for RemoteServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type AppState = (Arc<Shared>, String, Arc<SigningKey>);

async fn server_keys(State((shared, server_name, key)): State<AppState>) -> Json<Value> {
    shared.key_fetches.fetch_add(1, Ordering::SeqCst);
    let served = shared.keys.lock().expect("not poisoned").clone();
    Json(served.unwrap_or_else(|| RemoteServer::key_response(&server_name, &key, &[], &key)))
}

async fn record(
    State((shared, ..)): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path_and_query = uri.path_and_query().map(|pq| pq.as_str().to_owned()).unwrap_or_else(|| "/".into());
    let request = Recorded { method, uri: path_and_query, headers, body };
    shared.recorded.lock().expect("not poisoned").push(request.clone());
    let answerer = {
        let answerers = shared.answerers.lock().expect("not poisoned");
        answerers.iter().find(|(pattern, _)| covers(pattern, uri.path())).map(|(_, answer)| answer.clone())
    };
    let reply = match answerer {
        Some(answer) => Some(answer(&request)),
        None => {
            let replies = shared.replies.lock().expect("not poisoned");
            replies.get(uri.path()).cloned().or_else(|| {
                replies.iter().find(|(pattern, _)| covers(pattern, uri.path())).map(|(_, reply)| reply.clone())
            })
        }
    };
    let (status, body) = reply.unwrap_or((404, json!({ "errcode": "M_UNRECOGNIZED", "error": "nothing here" })));
    (StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), Json(body)).into_response()
}

impl RemoteServer {
    /// Sends a request to `destination` as this server would: signed with
    /// X-Matrix by its key (`key` overrides it, to forge a signature).
    /// Returns the status and the JSON body (`null` when not JSON).
    #[allow(clippy::too_many_arguments)]
    pub async fn request(
        &self,
        http: &reqwest::Client,
        base_url: &str,
        destination: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
        key: Option<&SigningKey>,
    ) -> (u16, Value) {
        use ruma::api::federation::authentication::{XMatrix, XMatrixSigningInput};
        let bytes = body.map(|b| serde_json::to_vec(b).expect("JSON")).unwrap_or_default();
        let signed =
            axum::http::Request::builder().method(method.clone()).uri(path).body(bytes.clone()).expect("a request");
        let signer = key.unwrap_or(&self.key);
        let input = XMatrixSigningInput::new(
            self.server_name.as_str().try_into().expect("a server name"),
            destination.try_into().expect("a server name"),
            signer.pair(),
        );
        let authorization = XMatrix::sign_http_request(&signed, input).expect("signs").to_string();
        let mut request = http.request(method, format!("{base_url}{path}")).header("Authorization", authorization);
        if body.is_some() {
            request = request.header("Content-Type", "application/json").body(bytes);
        }
        let response = request.send().await.expect("the request reaches the server");
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }
}

impl RemoteServer {
    /// Like [`RemoteServer::request`], for a body canonical JSON cannot
    /// hold (a float): signed over the body as JSON with sorted keys, the
    /// way a server that does not check its JSON would sign it (by `key`
    /// when given, to forge the signature).
    #[allow(clippy::too_many_arguments)]
    pub async fn request_non_canonical(
        &self,
        http: &reqwest::Client,
        base_url: &str,
        destination: &str,
        method: Method,
        path: &str,
        body: &Value,
        key: Option<&SigningKey>,
    ) -> (u16, Value) {
        use ruma::signatures::KeyPair;
        // serde_json's maps are sorted by key (no `preserve_order` here).
        let signed = json!({
            "content": body,
            "destination": destination,
            "method": method.as_str(),
            "origin": self.server_name,
            "uri": path,
        });
        let signature = key.unwrap_or(&self.key).pair().sign(signed.to_string().as_bytes());
        let authorization = format!(
            "X-Matrix origin=\"{}\",destination=\"{destination}\",key=\"{}\",sig=\"{}\"",
            self.server_name,
            self.key.key_id(),
            signature.base64()
        );
        let response = http
            .request(method, format!("{base_url}{path}"))
            .header("Authorization", authorization)
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("the request reaches the server");
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }
}
