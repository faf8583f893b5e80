//! A bare client-server API client for scenarios: JSON in, status and JSON
//! out, with the access token of whoever it is logged in as.

use reqwest::Method;
use serde_json::{Value, json};

use crate::Deployment;

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base_url: String,
    pub access_token: Option<String>,
    pub user_id: String,
    pub device_id: String,
}

/// What the server answered: the status and the body (`Value::Null` when not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    pub fn errcode(&self) -> &str {
        self.body["errcode"].as_str().unwrap_or_default()
    }

    /// Panics with the whole answer unless the status is `status`.
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(self.status, status, "unexpected answer: {}", self.body);
        self.body
    }

    /// Panics unless the answer is `status` with `errcode`.
    #[track_caller]
    pub fn expect_error(self, status: u16, errcode: &str) -> Value {
        assert_eq!((self.status, self.errcode()), (status, errcode), "unexpected answer: {}", self.body);
        self.body
    }
}

impl Client {
    pub fn new(base_url: &str) -> Self {
        crate::tls::install_default_provider();
        Self {
            http: reqwest::Client::new(),
            base_url: base_url.trim_end_matches('/').to_owned(),
            access_token: None,
            user_id: String::new(),
            device_id: String::new(),
        }
    }

    /// The same session, sent to another address (one instance, bypassing nginx).
    pub fn at(&self, base_url: &str) -> Self {
        Self { base_url: base_url.trim_end_matches('/').to_owned(), ..self.clone() }
    }

    /// Sends a request to `/_matrix/client/v3{path}` (or `path` as it is when
    /// it starts with `/_`), with the access token when there is one.
    pub async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let url = if path.starts_with("/_") {
            format!("{}{path}", self.base_url)
        } else {
            format!("{}/_matrix/client/v3{path}", self.base_url)
        };
        let mut request = self.http.request(method, url);
        if let Some(token) = &self.access_token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        let bytes = response.bytes().await.expect("a body");
        Answer { status, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.send(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Answer {
        self.send(Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str, body: Value) -> Answer {
        self.send(Method::DELETE, path, Some(body)).await
    }

    /// Takes the session a `/register` or `/login` answer carries.
    pub fn logged_in(mut self, answer: &Value) -> Self {
        self.access_token = answer["access_token"].as_str().map(str::to_owned);
        self.user_id = answer["user_id"].as_str().unwrap_or_default().to_owned();
        self.device_id = answer["device_id"].as_str().unwrap_or_default().to_owned();
        self
    }

    /// Registers `localpart` with the dummy stage and returns its session.
    pub async fn register(&self, localpart: &str, password: &str) -> Client {
        let first = self.post("/register", json!({"username": localpart, "password": password})).await;
        let session = first.expect(401)["session"].as_str().expect("a UIA session").to_owned();
        let answer = self
            .post(
                "/register",
                json!({
                    "username": localpart,
                    "password": password,
                    "auth": {"type": "m.login.dummy", "session": session},
                }),
            )
            .await
            .expect(200);
        Client::new(&self.base_url).logged_in(&answer)
    }

    /// Logs `user` in with a password and returns the new session.
    pub async fn login(&self, user: &str, password: &str) -> Client {
        let answer = self
            .post(
                "/login",
                json!({
                    "type": "m.login.password",
                    "identifier": {"type": "m.id.user", "user": user},
                    "password": password,
                }),
            )
            .await
            .expect(200);
        Client::new(&self.base_url).logged_in(&answer)
    }

    /// Polls `GET /account/whoami` with this session's token until it is
    /// refused or `within` has passed, and returns the last answer: a revoked
    /// token must stop working on every instance within a bound, not at once.
    pub async fn whoami_until_refused(&self, within: std::time::Duration) -> Answer {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let answer = self.get("/account/whoami").await;
            if answer.status != 200 || tokio::time::Instant::now() >= deadline {
                return answer;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// The `auth` object of a UIA password stage for this user.
    pub fn password_auth(&self, password: &str, session: Option<&str>) -> Value {
        let mut auth = json!({
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": self.user_id},
            "password": password,
        });
        if let Some(session) = session {
            auth["session"] = json!(session);
        }
        auth
    }
}

impl Deployment {
    /// A client of this deployment, not logged in.
    pub fn client(&self) -> Client {
        Client::new(&self.base_url)
    }

    /// A new account (registered through the API) with a random localpart.
    pub async fn new_user(&self) -> Client {
        let localpart = format!("user{:08x}", rand::random::<u32>());
        self.client().register(&localpart, PASSWORD).await
    }
}

/// The password of accounts made by [`Deployment::new_user`].
pub const PASSWORD: &str = "correct horse battery staple";

/// Percent-encodes a path segment or query value as clients do (`@` → `%40`).
pub fn enc(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
