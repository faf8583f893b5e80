//! Sessions: GET/POST /login (passwords and login tokens), access tokens
//! and their revocation on every clientapi instance, /logout, /refresh and
//! expiring tokens, whoami, /account/password, /account/deactivate, and
//! the rate limits on logins and registrations.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tests::{
    Deployment, Mode, Options,
    client::{Answer, Client, PASSWORD, enc},
};

/// How soon a revoked token must be refused everywhere.
const REVOCATION: Duration = Duration::from_secs(1);
const CLIENTAPIS: [&str; 2] = ["clientapi-1", "clientapi-2"];

fn localpart(user_id: &str) -> &str {
    user_id.trim_start_matches('@').split(':').next().unwrap()
}

fn password_login(user: &str, password: &str) -> Value {
    json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user}, "password": password})
}

/// `body` with more fields.
fn with(mut body: Value, extra: Value) -> Value {
    for (key, value) in extra.as_object().expect("an object") {
        body[key] = value.clone();
    }
    body
}

fn session(deployment: &Deployment, answer: &Value) -> Client {
    Client::new(&deployment.base_url).logged_in(answer)
}

/// Uses the token on every clientapi instance, so each has it cached: a
/// later refusal then proves the revocation reached them.
async fn warm(deployment: &Deployment, client: &Client) {
    for instance in CLIENTAPIS {
        client.at(&deployment.instance_url(instance)).get("/account/whoami").await.expect(200);
    }
}

/// Polls whoami with the token on every clientapi instance until it is
/// refused or `REVOCATION` has passed since the call, and returns the last
/// answer of each.
async fn refused_everywhere(deployment: &Deployment, client: &Client) -> Vec<(&'static str, Answer)> {
    let deadline = Instant::now() + REVOCATION;
    let mut answers = Vec::new();
    for instance in CLIENTAPIS {
        let left = deadline.saturating_duration_since(Instant::now());
        answers.push((instance, client.at(&deployment.instance_url(instance)).whoami_until_refused(left).await));
    }
    answers
}

/// The token is refused on every instance within a second, as unknown (not soft-logged-out).
async fn assert_logged_out(deployment: &Deployment, client: &Client) {
    for (instance, answer) in refused_everywhere(deployment, client).await {
        assert_eq!((answer.status, answer.errcode()), (401, "M_UNKNOWN_TOKEN"), "{instance}: {}", answer.body);
        assert!(!answer.body["soft_logout"].as_bool().unwrap_or(false), "{instance}: {}", answer.body);
    }
}

async fn device_ids(client: &Client) -> Vec<String> {
    let body = client.get("/devices").await.expect(200);
    body["devices"]
        .as_array()
        .expect("a devices list")
        .iter()
        .map(|d| d["device_id"].as_str().unwrap().to_owned())
        .collect()
}

// ---- Logins and tokens ----

async fn password_logins(deployment: &Deployment) {
    let client = deployment.client();
    let body = client.get("/login").await.expect(200);
    let flows = body["flows"].as_array().expect("a flows list");
    assert_eq!(flows.len(), 2, "{body}");
    assert!(flows.contains(&json!({"type": "m.login.password"})), "{body}");
    assert!(flows.contains(&json!({"type": "m.login.token", "get_login_token": true})), "{body}");

    let user = deployment.new_user().await;
    let local = localpart(&user.user_id).to_owned();
    let upper_id = format!("@{}:{}", local.to_uppercase(), deployment.server_name);
    let ways = [
        ("localpart", password_login(&local, PASSWORD)),
        ("full user id", password_login(&user.user_id, PASSWORD)),
        ("legacy user field", json!({"type": "m.login.password", "user": local, "password": PASSWORD})),
        ("uppercase localpart", password_login(&local.to_uppercase(), PASSWORD)),
        ("uppercase full user id", password_login(&upper_id, PASSWORD)),
    ];
    for (way, request) in ways {
        let answer = client.post("/login", request).await;
        assert_eq!(answer.status, 200, "{way}: {}", answer.body);
        let body = answer.body;
        assert_eq!(body["user_id"], user.user_id, "{way}: {body}");
        assert_eq!(body["home_server"], deployment.server_name, "{way}: {body}");
        let device = body["device_id"].as_str().expect("a device id");
        assert_ne!(device, user.device_id, "{way}: a new device");
        let whoami = session(deployment, &body).get("/account/whoami").await.expect(200);
        assert_eq!(whoami, json!({"user_id": user.user_id, "device_id": device, "is_guest": false}), "{way}");
    }

    let refusals = [
        ("wrong password", password_login(&local, "wrong password")),
        ("legacy field, wrong password", json!({"type": "m.login.password", "user": local, "password": "nope"})),
        ("unknown user", password_login("nobody-here", PASSWORD)),
        ("unknown user id", password_login(&format!("@nobody-here:{}", deployment.server_name), PASSWORD)),
    ];
    for (why, request) in refusals {
        let answer = client.post("/login", request).await;
        assert_eq!((answer.status, answer.errcode()), (403, "M_FORBIDDEN"), "{why}: {}", answer.body);
    }
    client.post("/login", json!({"type": "m.login.bogus", "password": PASSWORD})).await.expect_error(400, "M_UNKNOWN");

    // Logging in to an existing device replaces its token and keeps its name.
    let named = with(
        password_login(&local, PASSWORD),
        json!({"device_id": "REUSED", "initial_device_display_name": "First name"}),
    );
    let first = client.post("/login", named).await.expect(200);
    assert_eq!(first["device_id"], "REUSED", "{first}");
    let first = session(deployment, &first);
    warm(deployment, &first).await;
    let renamed = with(
        password_login(&local, PASSWORD),
        json!({"device_id": "REUSED", "initial_device_display_name": "Second name"}),
    );
    let second = client.post("/login", renamed).await.expect(200);
    assert_eq!(second["device_id"], "REUSED", "{second}");
    let second = session(deployment, &second);
    assert_ne!(first.access_token, second.access_token);
    assert_logged_out(deployment, &first).await;
    assert_eq!(second.get("/account/whoami").await.expect(200)["device_id"], "REUSED");
    let devices = second.get("/devices").await.expect(200);
    let reused: Vec<&Value> =
        devices["devices"].as_array().unwrap().iter().filter(|d| d["device_id"] == "REUSED").collect();
    assert_eq!(reused.len(), 1, "{devices}");
    assert_eq!(reused[0]["display_name"], "First name", "{devices}");
}

async fn access_tokens(deployment: &Deployment) {
    let user = deployment.new_user().await;
    let anonymous = deployment.client();
    anonymous.get("/account/whoami").await.expect_error(401, "M_MISSING_TOKEN");
    let mut stranger = deployment.client();
    stranger.access_token = Some("syt_not_a_token".into());
    stranger.get("/account/whoami").await.expect_error(401, "M_UNKNOWN_TOKEN");

    let whoami = user.get("/account/whoami").await.expect(200);
    assert_eq!(whoami, json!({"user_id": user.user_id, "device_id": user.device_id, "is_guest": false}));
    let token = user.access_token.clone().unwrap();
    let by_query = anonymous.get(&format!("/account/whoami?access_token={}", enc(&token))).await.expect(200);
    assert_eq!(by_query["user_id"], user.user_id);
    anonymous.get("/account/whoami?access_token=syt_not_a_token").await.expect_error(401, "M_UNKNOWN_TOKEN");
}

/// Refresh tokens rotate: the old access and refresh tokens stop working.
async fn refresh_tokens(deployment: &Deployment) {
    let user = deployment.new_user().await;
    let client = deployment.client();
    let lifetime = deployment.config.userapi.refreshable_token_lifetime_ms;
    let body = client
        .post("/login", with(password_login(&user.user_id, PASSWORD), json!({"refresh_token": true})))
        .await
        .expect(200);
    let first_refresh = body["refresh_token"].as_str().expect("a refresh token").to_owned();
    assert!(body["expires_in_ms"].as_u64().is_some_and(|ms| ms > 0 && ms <= lifetime), "{body}");
    let old = session(deployment, &body);
    warm(deployment, &old).await;

    let renewed = client.post("/refresh", json!({"refresh_token": first_refresh})).await.expect(200);
    let access = renewed["access_token"].as_str().expect("an access token");
    let second_refresh = renewed["refresh_token"].as_str().expect("a refresh token").to_owned();
    assert!(renewed["expires_in_ms"].as_u64().is_some_and(|ms| ms > 0 && ms <= lifetime), "{renewed}");
    assert_ne!(old.access_token.as_deref(), Some(access));
    assert_ne!(first_refresh, second_refresh);
    for (instance, answer) in refused_everywhere(deployment, &old).await {
        assert_eq!((answer.status, answer.errcode()), (401, "M_UNKNOWN_TOKEN"), "{instance}: {}", answer.body);
    }
    let mut new = old.clone();
    new.access_token = Some(access.to_owned());
    assert_eq!(new.get("/account/whoami").await.expect(200)["device_id"], old.device_id.as_str(), "the same device");
    // The new access token has been used: the old refresh token is gone (spec and contract agree here).
    client.post("/refresh", json!({"refresh_token": first_refresh})).await.expect_error(401, "M_UNKNOWN_TOKEN");
    client.post("/refresh", json!({"refresh_token": "not_a_refresh_token"})).await.expect_error(401, "M_UNKNOWN_TOKEN");
    let third = client.post("/refresh", json!({"refresh_token": second_refresh})).await.expect(200);
    assert!(third["access_token"].is_string() && third["refresh_token"].is_string(), "{third}");
}

/// POST /login/get_token behind UIA, then a single-use m.login.token login.
async fn login_tokens(deployment: &Deployment) {
    let user = deployment.new_user().await;
    let client = deployment.client();
    let get_token = "/_matrix/client/v1/login/get_token";
    client.post(get_token, json!({})).await.expect_error(401, "M_MISSING_TOKEN");
    let challenge = user.post(get_token, json!({})).await.expect(401);
    assert_eq!(challenge["flows"], json!([{"stages": ["m.login.password"]}]), "{challenge}");
    let uia = challenge["session"].as_str().expect("a UIA session");
    let wrong = user.post(get_token, json!({"auth": user.password_auth("wrong password", Some(uia))})).await;
    assert_eq!((wrong.status, wrong.errcode()), (401, "M_FORBIDDEN"), "{}", wrong.body);
    assert_eq!(wrong.body["flows"], json!([{"stages": ["m.login.password"]}]), "{}", wrong.body);

    let granted = user.post(get_token, json!({"auth": user.password_auth(PASSWORD, Some(uia))})).await.expect(200);
    let token = granted["login_token"].as_str().expect("a login token");
    let lifetime = deployment.config.userapi.login_token_lifetime_ms;
    assert!(granted["expires_in_ms"].as_u64().is_some_and(|ms| ms > 0 && ms <= lifetime), "{granted}");

    let login = json!({"type": "m.login.token", "token": token});
    let body = client.post("/login", login.clone()).await.expect(200);
    assert_eq!(body["user_id"], user.user_id, "{body}");
    assert_ne!(body["device_id"], user.device_id.as_str(), "a new device");
    assert_eq!(session(deployment, &body).get("/account/whoami").await.expect(200)["user_id"], user.user_id);
    client.post("/login", login).await.expect_error(403, "M_FORBIDDEN");
    client
        .post("/login", json!({"type": "m.login.token", "token": "not_a_login_token"}))
        .await
        .expect_error(403, "M_FORBIDDEN");
}

#[tokio::test]
async fn logins_access_tokens_refresh_and_login_tokens() {
    let deployment = Deployment::start(Mode::Polylith).await;
    password_logins(&deployment).await;
    access_tokens(&deployment).await;
    refresh_tokens(&deployment).await;
    login_tokens(&deployment).await;
}

// ---- Logout ----

#[tokio::test]
async fn logout_is_seen_by_every_clientapi_instance() {
    let deployment = Deployment::start_with(Options {
        instances: Some("userapi=2 roomserver=1 syncapi=1 federationsender=1 federationreceiver=1 clientapi=2".into()),
        ..Options::new(Mode::Polylith)
    })
    .await;
    let user = deployment.new_user().await;
    let second = deployment.client().login(&user.user_id, PASSWORD).await;
    let third = deployment.client().login(&user.user_id, PASSWORD).await;

    warm(&deployment, &second).await;
    assert_eq!(second.post("/logout", json!({})).await.expect(200), json!({}));
    assert_logged_out(&deployment, &second).await;
    second.post("/logout", json!({})).await.expect_error(401, "M_UNKNOWN_TOKEN");
    let devices = device_ids(&user).await;
    assert!(!devices.contains(&second.device_id), "the device is deleted: {devices:?}");
    assert!(devices.contains(&user.device_id) && devices.contains(&third.device_id), "{devices:?}");
    for other in [&user, &third] {
        other.get("/account/whoami").await.expect(200);
    }

    // Every token of the user, the caller's included, and (spec) every device.
    warm(&deployment, &user).await;
    warm(&deployment, &third).await;
    assert_eq!(third.post("/logout/all", json!({})).await.expect(200), json!({}));
    assert_logged_out(&deployment, &user).await;
    assert_logged_out(&deployment, &third).await;
    let fresh = deployment.client().login(&user.user_id, PASSWORD).await;
    assert_eq!(device_ids(&fresh).await, vec![fresh.device_id.clone()]);
}

// ---- Expiring access tokens ----

#[tokio::test]
async fn refreshable_access_token_expires_into_a_soft_logout() {
    let lifetime = Duration::from_millis(2500);
    let deployment = Deployment::start_with(
        Options::new(Mode::Polylith).set("userapi.refreshable_token_lifetime_ms", &lifetime.as_millis().to_string()),
    )
    .await;
    let user = deployment.new_user().await;
    let client = deployment.client();
    let issued = Instant::now();
    let body = client
        .post("/login", with(password_login(&user.user_id, PASSWORD), json!({"refresh_token": true})))
        .await
        .expect(200);
    assert!(body["expires_in_ms"].as_u64().is_some_and(|ms| ms > 0 && ms <= lifetime.as_millis() as u64), "{body}");
    let refresh = body["refresh_token"].as_str().expect("a refresh token").to_owned();
    let expiring = session(&deployment, &body);

    let deadline = issued + lifetime + Duration::from_secs(10);
    let answer = loop {
        let answer = expiring.get("/account/whoami").await;
        if answer.status != 200 || Instant::now() >= deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The server issued the token after `issued`: it must not die sooner than its lifetime.
    assert!(issued.elapsed() >= lifetime - Duration::from_millis(100), "expired early: {}", answer.body);
    answer.expect_error(401, "M_UNKNOWN_TOKEN");
    for instance in CLIENTAPIS {
        let answer = expiring.at(&deployment.instance_url(instance)).get("/account/whoami").await;
        let body = answer.expect_error(401, "M_UNKNOWN_TOKEN");
        assert_eq!(body["soft_logout"], true, "{instance}: {body}");
    }
    // Tokens issued without a refresh token do not expire.
    user.get("/account/whoami").await.expect(200);

    // A soft-logged-out client refreshes and carries on, on the same device.
    let renewed = client.post("/refresh", json!({"refresh_token": refresh})).await.expect(200);
    assert!(
        renewed["expires_in_ms"].as_u64().is_some_and(|ms| ms > 0 && ms <= lifetime.as_millis() as u64),
        "{renewed}"
    );
    let mut new = expiring.clone();
    new.access_token = Some(renewed["access_token"].as_str().expect("an access token").to_owned());
    assert_eq!(new.get("/account/whoami").await.expect(200)["device_id"], expiring.device_id.as_str());
}

// ---- Password and deactivation ----

const SECOND: &str = "second password";
const THIRD: &str = "third password";

async fn login_status(deployment: &Deployment, user: &str, password: &str) -> Answer {
    deployment.client().post("/login", password_login(user, password)).await
}

#[track_caller]
fn assert_password_uia(body: &Value) -> String {
    assert_eq!(body["flows"], json!([{"stages": ["m.login.password"]}]), "{body}");
    assert!(body["params"].is_object(), "{body}");
    assert!(body["completed"].is_array(), "{body}");
    body["session"].as_str().expect("a UIA session").to_owned()
}

async fn change_password(deployment: &Deployment) {
    let user = deployment.new_user().await;
    let other = deployment.client().login(&user.user_id, PASSWORD).await;
    let path = "/account/password";

    let challenge = user.post(path, json!({"new_password": SECOND, "logout_devices": false})).await.expect(401);
    let uia = assert_password_uia(&challenge);
    let wrong = user
        .post(path, json!({"new_password": SECOND, "logout_devices": false, "auth": user.password_auth("wrong password", Some(&uia))}))
        .await;
    assert_eq!((wrong.status, wrong.errcode()), (401, "M_FORBIDDEN"), "{}", wrong.body);
    assert_password_uia(&wrong.body);
    user.post(
        path,
        json!({"new_password": "short", "logout_devices": false, "auth": user.password_auth(PASSWORD, None)}),
    )
    .await
    .expect_error(400, "M_WEAK_PASSWORD");
    login_status(deployment, &user.user_id, PASSWORD).await.expect(200);

    // Without logging out the other devices.
    let done = user
        .post(
            path,
            json!({"new_password": SECOND, "logout_devices": false, "auth": user.password_auth(PASSWORD, Some(&uia))}),
        )
        .await
        .expect(200);
    assert_eq!(done, json!({}));
    login_status(deployment, &user.user_id, PASSWORD).await.expect_error(403, "M_FORBIDDEN");
    login_status(deployment, &user.user_id, SECOND).await.expect(200);
    other.get("/account/whoami").await.expect(200);

    // logout_devices defaults to true: every other device goes, the caller's stays.
    warm(deployment, &other).await;
    let done =
        user.post(path, json!({"new_password": THIRD, "auth": user.password_auth(SECOND, None)})).await.expect(200);
    assert_eq!(done, json!({}));
    assert_logged_out(deployment, &other).await;
    user.get("/account/whoami").await.expect(200);
    assert_eq!(device_ids(&user).await, vec![user.device_id.clone()], "the other devices are revoked (spec)");
    login_status(deployment, &user.user_id, SECOND).await.expect_error(403, "M_FORBIDDEN");
    login_status(deployment, &user.user_id, THIRD).await.expect(200);
}

async fn deactivate(deployment: &Deployment) {
    let observer = deployment.new_user().await;
    let user = deployment.new_user().await;
    let other = deployment.client().login(&user.user_id, PASSWORD).await;
    let path = "/account/deactivate";

    let challenge = user.post(path, json!({})).await.expect(401);
    let uia = assert_password_uia(&challenge);
    let wrong = user.post(path, json!({"auth": user.password_auth("wrong password", Some(&uia))})).await;
    assert_eq!((wrong.status, wrong.errcode()), (401, "M_FORBIDDEN"), "{}", wrong.body);
    user.get("/account/whoami").await.expect(200);

    warm(deployment, &user).await;
    warm(deployment, &other).await;
    let done = user.post(path, json!({"auth": user.password_auth(PASSWORD, Some(&uia))})).await.expect(200);
    assert_eq!(done, json!({"id_server_unbind_result": "no-support"}));
    assert_logged_out(deployment, &user).await;
    assert_logged_out(deployment, &other).await;
    login_status(deployment, &user.user_id, PASSWORD).await.expect_error(403, "M_USER_DEACTIVATED");
    login_status(deployment, localpart(&user.user_id), PASSWORD).await.expect_error(403, "M_USER_DEACTIVATED");
    let local = localpart(&user.user_id);
    let again = deployment.client().post("/register", json!({"username": local, "password": PASSWORD})).await;
    again.expect_error(400, "M_USER_IN_USE");
    deployment.client().get(&format!("/register/available?username={local}")).await.expect_error(400, "M_USER_IN_USE");

    // erase: the profile is emptied.
    let erased = deployment.new_user().await;
    let displayname = format!("/profile/{}/displayname", erased.user_id);
    erased.put(&displayname, json!({"displayname": "To Be Erased"})).await.expect(200);
    assert_eq!(observer.get(&displayname).await.expect(200)["displayname"], "To Be Erased");
    let done =
        erased.post(path, json!({"erase": true, "auth": erased.password_auth(PASSWORD, None)})).await.expect(200);
    assert_eq!(done, json!({"id_server_unbind_result": "no-support"}));
    observer.get(&displayname).await.expect_error(404, "M_NOT_FOUND");
}

#[tokio::test]
async fn password_change_and_deactivation() {
    let deployment = Deployment::start(Mode::Polylith).await;
    change_password(&deployment).await;
    deactivate(&deployment).await;
}

// ---- Rate limits ----

/// A POST as if from `address`: the monolith trusts X-Forwarded-For from loopback.
async fn post_from(deployment: &Deployment, address: &str, path: &str, body: Value) -> Answer {
    let response = reqwest::Client::new()
        .post(deployment.url(&format!("/_matrix/client/v3{path}")))
        .header("X-Forwarded-For", address)
        .json(&body)
        .send()
        .await
        .expect("the server answers");
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("a body");
    Answer { status, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) }
}

#[track_caller]
fn assert_limited(answer: Answer, what: &str) {
    assert_eq!((answer.status, answer.errcode()), (429, "M_LIMIT_EXCEEDED"), "{what}: {}", answer.body);
    assert!(answer.body["retry_after_ms"].as_u64().is_some_and(|ms| ms > 0), "{what}: {}", answer.body);
}

/// Registers in one request, without a session (so no login is counted for the account).
async fn register_from(deployment: &Deployment, address: &str, localpart: &str) -> Answer {
    let body =
        json!({"username": localpart, "password": PASSWORD, "inhibit_login": true, "auth": {"type": "m.login.dummy"}});
    post_from(deployment, address, "/register", body).await
}

#[tokio::test]
async fn logins_and_registrations_are_rate_limited() {
    // Buckets that do not refill during the test.
    let deployment = Deployment::start_with(
        Options::new(Mode::Monolith)
            .set("global.rate_limits.enabled", "true")
            .set("global.rate_limits.per_second", "0.001")
            .set("global.rate_limits.burst", "3")
            .set("global.rate_limits.account_per_second", "0.001")
            .set("global.rate_limits.account_burst", "2"),
    )
    .await;
    let name = |i: usize| format!("limited{i}x{:06x}", rand::random::<u32>() >> 8);

    // Per address, registrations: three, then 429; another address is unaffected.
    let mut accounts = Vec::new();
    for i in 0..3 {
        let localpart = name(i);
        register_from(&deployment, "198.51.100.1", &localpart).await.expect(200);
        accounts.push(localpart);
    }
    assert_limited(register_from(&deployment, "198.51.100.1", &name(3)).await, "fourth registration");
    let localpart = name(4);
    register_from(&deployment, "198.51.100.2", &localpart).await.expect(200);
    accounts.push(localpart);

    // Per address, logins (each account only once, under its own limit).
    for account in &accounts[..3] {
        post_from(&deployment, "198.51.100.3", "/login", password_login(account, PASSWORD)).await.expect(200);
    }
    let fourth = post_from(&deployment, "198.51.100.3", "/login", password_login(&accounts[3], PASSWORD)).await;
    assert_limited(fourth, "fourth login from one address");
    post_from(&deployment, "198.51.100.4", "/login", password_login(&accounts[3], PASSWORD)).await.expect(200);

    // Per account, whatever the address: two, then 429; other accounts are unaffected.
    let target = name(5);
    register_from(&deployment, "198.51.100.5", &target).await.expect(200);
    for address in ["203.0.113.1", "203.0.113.2"] {
        post_from(&deployment, address, "/login", password_login(&target, PASSWORD)).await.expect(200);
    }
    let third = post_from(&deployment, "203.0.113.3", "/login", password_login(&target, PASSWORD)).await;
    assert_limited(third, "third login of one account");
    post_from(&deployment, "203.0.113.4", "/login", password_login(&accounts[0], PASSWORD)).await.expect(200);
}
