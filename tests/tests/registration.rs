//! Account creation: POST /register with user-interactive authentication,
//! its username and password rules and session options; guests;
//! registration tokens; /register/available; shared-secret registration
//! (`/_synapse/admin/v1/register`) and `homeserver create-account`.

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha1::Sha1;
use tests::{
    Deployment, Mode, Options, bin_dir,
    client::{Answer, Client, enc},
};

/// Meets the policy of the open deployment below (10 characters, a digit).
const GOOD: &str = "registration-pass-1";

fn name(prefix: &str) -> String {
    format!("{prefix}{:08x}", rand::random::<u32>())
}

fn user_id(deployment: &Deployment, localpart: &str) -> String {
    format!("@{localpart}:{}", deployment.server_name)
}

async fn available(client: &Client, username: &str) -> Answer {
    client.get(&format!("/register/available?username={}", enc(username))).await
}

/// Asserts the UIA 401 shape: all four keys, with the given flows and completed stages.
#[track_caller]
fn assert_uia(answer: Answer, stages: &[&str], completed: &[&str]) -> Value {
    let body = answer.expect(401);
    assert_eq!(body["flows"], json!([{ "stages": stages }]), "{body}");
    assert!(body["params"].is_object(), "params is an object: {body}");
    assert!(body["session"].as_str().is_some_and(|s| !s.is_empty()), "a session id: {body}");
    assert_eq!(body["completed"], json!(completed), "{body}");
    body
}

fn session_of(body: &Value) -> String {
    body["session"].as_str().expect("a UIA session").to_owned()
}

/// The user's devices, by id, with their display names.
async fn devices(client: &Client) -> Vec<(String, Option<String>)> {
    let body = client.get("/devices").await.expect(200);
    body["devices"]
        .as_array()
        .expect("a devices list")
        .iter()
        .map(|d| (d["device_id"].as_str().unwrap().to_owned(), d["display_name"].as_str().map(str::to_owned)))
        .collect()
}

// ---- Open registration ----

/// The dummy flow, in two requests and in one, across instances; its
/// failures; and the 401 body clients rely on.
async fn dummy_stage(deployment: &Deployment) {
    let client = deployment.client();
    let localpart = name("uia");
    let first = client.post("/register", json!({"username": localpart, "password": GOOD})).await;
    let first = assert_uia(first, &["m.login.dummy"], &[]);

    // The session lives in shared storage: another instance completes it.
    let one = client.at(&deployment.instance_url("clientapi-1"));
    let two = client.at(&deployment.instance_url("clientapi-2"));
    let started = one.post("/register", json!({"username": localpart, "password": GOOD})).await;
    let session = session_of(&assert_uia(started, &["m.login.dummy"], &[]));
    let done = two
        .post(
            "/register",
            json!({"username": localpart, "password": GOOD, "auth": {"type": "m.login.dummy", "session": session}}),
        )
        .await
        .expect(200);
    assert_eq!(done["user_id"], user_id(deployment, &localpart), "{done}");
    assert!(done["access_token"].as_str().is_some_and(|t| !t.is_empty()), "{done}");
    assert!(done["device_id"].as_str().is_some_and(|d| !d.is_empty()), "{done}");
    // The first session's username is now taken: checked before UIA.
    let late = client
        .post(
            "/register",
            json!({"username": localpart, "password": GOOD,
                   "auth": {"type": "m.login.dummy", "session": session_of(&first)}}),
        )
        .await;
    late.expect_error(400, "M_USER_IN_USE");

    let unknown = client
        .post(
            "/register",
            json!({"username": name("uia"), "password": GOOD,
                   "auth": {"type": "m.login.dummy", "session": "no-such-session"}}),
        )
        .await;
    unknown.expect_error(400, "M_INVALID_PARAM");

    // An auth without a session starts one and is processed at once (matrix-nio).
    let quick = name("nio");
    let body = client
        .post("/register", json!({"username": quick, "password": GOOD, "auth": {"type": "m.login.dummy"}}))
        .await
        .expect(200);
    assert_eq!(body["user_id"], user_id(deployment, &quick), "{body}");
    let session = Client::new(&deployment.base_url).logged_in(&body);
    let whoami = session.get("/account/whoami").await.expect(200);
    assert_eq!(whoami["user_id"], user_id(deployment, &quick));
    assert_eq!(whoami["is_guest"], false, "{whoami}");

    // A new account's display name is its localpart.
    let displayname = client.get(&format!("/profile/{}/displayname", user_id(deployment, &quick))).await.expect(200);
    assert_eq!(displayname["displayname"], quick, "{displayname}");

    // Without a username the server picks one (spec: MUST generate).
    let generated =
        client.post("/register", json!({"password": GOOD, "auth": {"type": "m.login.dummy"}})).await.expect(200);
    let id = generated["user_id"].as_str().expect("a user id");
    assert!(id.starts_with('@') && id.ends_with(&format!(":{}", deployment.server_name)), "{generated}");
}

/// Username and password checks come before UIA, in the contract's order.
async fn username_and_password_rules(deployment: &Deployment) {
    let client = deployment.client();
    let max_len = 255 - "@:".len() - deployment.server_name.len();
    let invalid = [
        "".to_owned(),
        "has space".into(),
        "semi;colon".into(),
        "colon:inside".into(),
        "at@sign".into(),
        "émile".into(),
        "1234567".into(),
        "_reserved".into(),
        "x".repeat(max_len + 1),
    ];
    for username in &invalid {
        let answer = client.post("/register", json!({"username": username, "password": GOOD})).await;
        assert_eq!(
            (answer.status, answer.errcode()),
            (400, "M_INVALID_USERNAME"),
            "register {username:?}: {}",
            answer.body
        );
        let answer = available(&client, username).await;
        assert_eq!(
            (answer.status, answer.errcode()),
            (400, "M_INVALID_USERNAME"),
            "available {username:?}: {}",
            answer.body
        );
    }

    // Every allowed character, and the longest allowed user id (255 bytes).
    let odd = format!("{}.b_c=d-e/f+g", name("a"));
    let body = client
        .post("/register", json!({"username": odd, "password": GOOD, "auth": {"type": "m.login.dummy"}}))
        .await
        .expect(200);
    assert_eq!(body["user_id"], user_id(deployment, &odd), "{body}");
    let longest = format!("{}{}", name("long"), "y".repeat(max_len - 12));
    assert_eq!(user_id(deployment, &longest).len(), 255);
    assert_eq!(available(&client, &longest).await.expect(200), json!({"available": true}));
    let body = client
        .post("/register", json!({"username": longest, "password": GOOD, "auth": {"type": "m.login.dummy"}}))
        .await
        .expect(200);
    assert_eq!(body["user_id"], user_id(deployment, &longest), "{body}");

    // The username is lowercased first.
    let mixed = name("MixedCase");
    let body = client
        .post("/register", json!({"username": mixed, "password": GOOD, "auth": {"type": "m.login.dummy"}}))
        .await
        .expect(200);
    let lower = mixed.to_lowercase();
    assert_eq!(body["user_id"], user_id(deployment, &lower), "{body}");
    for taken in [lower.clone(), mixed.clone()] {
        client.post("/register", json!({"username": taken, "password": GOOD})).await.expect_error(400, "M_USER_IN_USE");
        available(&client, &taken).await.expect_error(400, "M_USER_IN_USE");
    }
    assert_eq!(available(&client, &name("free")).await.expect(200), json!({"available": true}));

    // The order: username validity, then taken, then a password, then its strength.
    client.post("/register", json!({"username": "bad name"})).await.expect_error(400, "M_INVALID_USERNAME");
    client.post("/register", json!({"username": lower, "password": "weak"})).await.expect_error(400, "M_USER_IN_USE");
    client.post("/register", json!({"username": name("nopass")})).await.expect_error(400, "M_MISSING_PARAM");
    client
        .post("/register", json!({"username": name("nopass"), "auth": {"type": "m.login.dummy"}}))
        .await
        .expect_error(400, "M_MISSING_PARAM");
    // The policy here: at least 10 characters, with a digit.
    for weak in ["short1", "no digits in this one"] {
        let answer = client.post("/register", json!({"username": name("weak"), "password": weak})).await;
        assert_eq!((answer.status, answer.errcode()), (400, "M_WEAK_PASSWORD"), "{weak:?}: {}", answer.body);
        let answer = client
            .post("/register", json!({"username": name("weak"), "password": weak, "auth": {"type": "m.login.dummy"}}))
            .await;
        assert_eq!((answer.status, answer.errcode()), (400, "M_WEAK_PASSWORD"), "{weak:?}: {}", answer.body);
    }
}

/// device_id, initial_device_display_name, inhibit_login and refresh_token.
async fn session_options(deployment: &Deployment) {
    let client = deployment.client();
    let localpart = name("dev");
    let body = client
        .post(
            "/register",
            json!({"username": localpart, "password": GOOD, "device_id": "MYPHONE",
                   "initial_device_display_name": "My Phone", "auth": {"type": "m.login.dummy"}}),
        )
        .await
        .expect(200);
    assert_eq!(body["device_id"], "MYPHONE", "{body}");
    assert!(body.get("refresh_token").is_none(), "no refresh token unless asked: {body}");
    let session = Client::new(&deployment.base_url).logged_in(&body);
    assert_eq!(devices(&session).await, vec![("MYPHONE".to_owned(), Some("My Phone".to_owned()))]);

    // inhibit_login: an account, no session and no device.
    let inhibited = name("inhibit");
    let body = client
        .post(
            "/register",
            json!({"username": inhibited, "password": GOOD, "inhibit_login": true, "auth": {"type": "m.login.dummy"}}),
        )
        .await
        .expect(200);
    assert_eq!(body["user_id"], user_id(deployment, &inhibited), "{body}");
    assert!(body.get("access_token").is_none() && body.get("device_id").is_none(), "{body}");
    let later = client.login(&inhibited, GOOD).await;
    assert_eq!(devices(&later).await.len(), 1, "only the device of the later login");

    // refresh_token: a refresh token and an expiring access token, which /refresh renews.
    let body = client
        .post(
            "/register",
            json!({"username": name("refresh"), "password": GOOD, "refresh_token": true, "auth": {"type": "m.login.dummy"}}),
        )
        .await
        .expect(200);
    let refresh = body["refresh_token"].as_str().expect("a refresh token");
    assert!(body["expires_in_ms"].as_u64().is_some_and(|ms| ms > 0), "{body}");
    let session = Client::new(&deployment.base_url).logged_in(&body);
    session.get("/account/whoami").await.expect(200);
    let renewed = client.post("/refresh", json!({"refresh_token": refresh})).await.expect(200);
    assert!(renewed["access_token"].as_str().is_some_and(|t| !t.is_empty()), "{renewed}");
}

/// Guests, enabled here: no UIA, numeric ids, and only the endpoints the spec opens to them.
async fn guests(deployment: &Deployment) {
    let client = deployment.client();
    let first = client.post("/register?kind=guest", json!({})).await.expect(200);
    let second = client.post("/register?kind=guest", json!({})).await.expect(200);
    assert_ne!(first["user_id"], second["user_id"]);
    let guest = Client::new(&deployment.base_url).logged_in(&first);
    let localpart = guest.user_id.trim_start_matches('@').split(':').next().unwrap().to_owned();
    assert!(!localpart.is_empty() && localpart.bytes().all(|b| b.is_ascii_digit()), "numeric: {first}");
    assert_eq!(guest.user_id, user_id(deployment, &localpart));
    assert!(guest.access_token.is_some() && !guest.device_id.is_empty(), "{first}");

    let whoami = guest.get("/account/whoami").await.expect(200);
    assert_eq!(whoami, json!({"user_id": guest.user_id, "device_id": guest.device_id, "is_guest": true}));
    let listed = devices(&guest).await;
    assert!(listed.iter().any(|(id, _)| *id == guest.device_id), "{listed:?}");
    guest.put(&format!("/profile/{}/displayname", guest.user_id), json!({"displayname": "Visitor"})).await.expect(200);

    guest
        .post("/account/password", json!({"new_password": GOOD, "logout_devices": false}))
        .await
        .expect_error(403, "M_GUEST_ACCESS_FORBIDDEN");
    guest.post("/delete_devices", json!({"devices": []})).await.expect_error(403, "M_GUEST_ACCESS_FORBIDDEN");

    // Upgrading the guest: its own localpart, its token, a password.
    let token = guest.access_token.clone().unwrap();
    let upgrade = |username: &str, token: &str| json!({"username": username, "password": GOOD, "guest_access_token": token, "auth": {"type": "m.login.dummy"}});
    let other = client.post("/register?kind=guest", json!({})).await.expect(200);
    client
        .post("/register", upgrade(&localpart, other["access_token"].as_str().unwrap()))
        .await
        .expect_error(400, "M_INVALID_PARAM");
    let member = client.register(&name("member"), GOOD).await;
    client
        .post("/register", upgrade(&localpart, member.access_token.as_deref().unwrap()))
        .await
        .expect_error(403, "M_FORBIDDEN");
    client.post("/register", upgrade(&localpart, "not-a-token")).await.expect_error(401, "M_UNKNOWN_TOKEN");
    let upgraded = client.post("/register", upgrade(&localpart, &token)).await.expect(200);
    assert_eq!(upgraded["user_id"], guest.user_id.as_str(), "the account keeps its user id: {upgraded}");
    // Instances that cached the guest's token hear of the change within a second.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
    let whoami = loop {
        let whoami = guest.get("/account/whoami").await.expect(200);
        if whoami["is_guest"] == false || tokio::time::Instant::now() >= deadline {
            break whoami;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(whoami["is_guest"], false, "the guest's own token now belongs to a full account: {whoami}");
    let full = Client::new(&deployment.base_url).logged_in(&upgraded);
    assert_eq!(full.get("/account/whoami").await.expect(200)["is_guest"], false);
    client.login(&guest.user_id, GOOD).await;
    full.post("/account/password", json!({"new_password": GOOD})).await.expect(401);
    client.post("/register", upgrade(&localpart, &token)).await.expect_error(403, "M_FORBIDDEN");
}

#[tokio::test]
async fn open_registration_uia_rules_options_and_guests() {
    let deployment = Deployment::start_with(
        Options::new(Mode::Polylith)
            .set("clientapi.registration.guests", "true")
            .set("userapi.password_policy.min_length", "10")
            .set("userapi.password_policy.require_digit", "true"),
    )
    .await;
    dummy_stage(&deployment).await;
    username_and_password_rules(&deployment).await;
    session_options(&deployment).await;
    guests(&deployment).await;
    // Open registration without tokens: the validity check is refused (contract).
    deployment
        .client()
        .get("/_matrix/client/v1/register/m.login.registration_token/validity?token=x")
        .await
        .expect_error(403, "M_FORBIDDEN");
}

// ---- Registration tokens ----

#[tokio::test]
async fn registration_tokens_gate_registration() {
    let deployment = Deployment::start_with(
        Options::new(Mode::Polylith)
            .set("clientapi.registration.open", "false")
            .set("clientapi.registration.tokens", r#"["tok1"]"#)
            .set("clientapi.registration.shared_secret", "null"),
    )
    .await;
    let client = deployment.client();
    let validity = "/_matrix/client/v1/register/m.login.registration_token/validity";
    assert_eq!(client.get(&format!("{validity}?token=tok1")).await.expect(200), json!({"valid": true}));
    assert_eq!(client.get(&format!("{validity}?token=tok2")).await.expect(200), json!({"valid": false}));

    let localpart = name("tok");
    assert_eq!(available(&client, &localpart).await.expect(200), json!({"available": true}));
    let first = client.post("/register", json!({"username": localpart, "password": "token password"})).await;
    let session = session_of(&assert_uia(first, &["m.login.registration_token"], &[]));

    // A wrong token: the stage fails, nothing completed.
    let wrong = client
        .post(
            "/register",
            json!({"username": localpart, "password": "token password",
                   "auth": {"type": "m.login.registration_token", "token": "tok2", "session": session}}),
        )
        .await;
    assert_eq!(wrong.errcode(), "M_FORBIDDEN", "{}", wrong.body);
    assert_uia(wrong, &["m.login.registration_token"], &[]);
    // The dummy stage is not a way around the token (in a session of its own,
    // so that whatever it does to a session does not touch the one above).
    let dummy = client
        .post(
            "/register",
            json!({"username": localpart, "password": "token password", "auth": {"type": "m.login.dummy"}}),
        )
        .await;
    // The contract does not say how; the spec's UIA rules allow 401 (stage not enough) or 400.
    assert!(matches!(dummy.status, 400 | 401), "{}", dummy.body);
    assert_eq!(available(&client, &localpart).await.expect(200), json!({"available": true}));

    let done = client
        .post(
            "/register",
            json!({"username": localpart, "password": "token password",
                   "auth": {"type": "m.login.registration_token", "token": "tok1", "session": session}}),
        )
        .await
        .expect(200);
    assert_eq!(done["user_id"], user_id(&deployment, &localpart), "{done}");
    available(&client, &localpart).await.expect_error(400, "M_USER_IN_USE");
    client.login(&localpart, "token password").await;

    // The token is not used up, and works in one request without a session.
    let again = name("tok");
    let body = client
        .post(
            "/register",
            json!({"username": again, "password": "token password",
                   "auth": {"type": "m.login.registration_token", "token": "tok1"}}),
        )
        .await
        .expect(200);
    assert_eq!(body["user_id"], user_id(&deployment, &again), "{body}");

    // Guests are not enabled here.
    client.post("/register?kind=guest", json!({})).await.expect_error(403, "M_FORBIDDEN");

    // Without a shared secret in the config, shared-secret registration is off.
    let nonce = match client.get("/_synapse/admin/v1/register").await {
        Answer { status: 200, body } => body["nonce"].as_str().unwrap_or("nonce").to_owned(),
        _ => "nonce".to_owned(),
    };
    let username = name("secret");
    let answer = client
        .post(
            "/_synapse/admin/v1/register",
            json!({"nonce": nonce, "username": username, "password": "token password", "admin": false,
                   "mac": registration_mac("", &nonce, &username, "token password", false)}),
        )
        .await;
    answer.expect_error(400, "M_UNKNOWN");
    assert_eq!(available(&client, &username).await.expect(200), json!({"available": true}));
}

// ---- Closed registration: shared secret and the command line ----

fn registration_mac(secret: &str, nonce: &str, username: &str, password: &str, admin: bool) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    for part in [nonce, "\0", username, "\0", password, "\0", if admin { "admin" } else { "notadmin" }] {
        mac.update(part.as_bytes());
    }
    hex::encode(mac.finalize().into_bytes())
}

async fn nonce(client: &Client) -> String {
    let body = client.get("/_synapse/admin/v1/register").await.expect(200);
    body["nonce"].as_str().filter(|n| !n.is_empty()).expect("a nonce").to_owned()
}

async fn shared_secret_registration(deployment: &Deployment) {
    let client = deployment.client();
    let secret =
        deployment.config.clientapi.registration.shared_secret.clone().expect("generate-config writes a secret");
    let register = |nonce: &str, username: &str, password: &str, admin: bool, mac: String| {
        let body = json!({"nonce": nonce, "username": username, "password": password, "admin": admin,
                          "displayname": "Made By Admin", "mac": mac});
        let client = client.clone();
        async move { client.post("/_synapse/admin/v1/register", body).await }
    };

    let username = name("shared");
    let password = "shared password";
    let first = nonce(&client).await;
    let body =
        register(&first, &username, password, false, registration_mac(&secret, &first, &username, password, false))
            .await
            .expect(200);
    assert_eq!(body["user_id"], user_id(deployment, &username), "{body}");
    assert_eq!(body["home_server"], deployment.server_name, "{body}");
    assert!(body["device_id"].as_str().is_some_and(|d| !d.is_empty()), "{body}");
    let session = Client::new(&deployment.base_url).logged_in(&body);
    let whoami = session.get("/account/whoami").await.expect(200);
    assert_eq!(whoami["user_id"], user_id(deployment, &username));
    let displayname = client.get(&format!("/profile/{}/displayname", user_id(deployment, &username))).await.expect(200);
    assert_eq!(displayname["displayname"], "Made By Admin");
    client.login(&username, password).await;

    // A nonce works once; an unknown one never.
    let other = name("shared");
    register(&first, &other, password, false, registration_mac(&secret, &first, &other, password, false))
        .await
        .expect_error(400, "M_UNKNOWN");
    register(
        "made-up-nonce",
        &other,
        password,
        false,
        registration_mac(&secret, "made-up-nonce", &other, password, false),
    )
    .await
    .expect_error(400, "M_UNKNOWN");

    // A wrong mac: the wrong secret, or a mac over other fields (admin claimed, notadmin signed).
    let fresh = nonce(&client).await;
    register(&fresh, &other, password, false, registration_mac("not the secret", &fresh, &other, password, false))
        .await
        .expect_error(403, "M_FORBIDDEN");
    let fresh = nonce(&client).await;
    register(&fresh, &other, password, true, registration_mac(&secret, &fresh, &other, password, false))
        .await
        .expect_error(403, "M_FORBIDDEN");
    let refused = client
        .post("/login", json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": other}, "password": password}))
        .await;
    refused.expect_error(403, "M_FORBIDDEN");

    // A taken username.
    let fresh = nonce(&client).await;
    register(&fresh, &username, password, false, registration_mac(&secret, &fresh, &username, password, false))
        .await
        .expect_error(400, "M_USER_IN_USE");

    // An admin, with the nonce fetched from one instance and used on the other.
    let one = client.at(&deployment.instance_url("clientapi-1"));
    let two = client.at(&deployment.instance_url("clientapi-2"));
    let admin = name("admin");
    let fresh = nonce(&one).await;
    let body = two
        .post(
            "/_synapse/admin/v1/register",
            json!({"nonce": fresh, "username": admin, "password": password, "admin": true,
                   "mac": registration_mac(&secret, &fresh, &admin, password, true)}),
        )
        .await
        .expect(200);
    assert_eq!(body["user_id"], user_id(deployment, &admin), "{body}");
    client.login(&admin, password).await;
}

async fn create_account(deployment: &Deployment, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(bin_dir().join("homeserver"))
        .arg("create-account")
        .arg("--config")
        .arg(&deployment.config_path)
        .args(args)
        .output()
        .await
        .expect("homeserver create-account runs")
}

async fn command_line_accounts(deployment: &Deployment) {
    let username = name("cli");
    let output = create_account(deployment, &["--username", &username, "--password", "cli password"]).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "stdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains(&user_id(deployment, &username)), "prints the user id: {stdout}");
    let session = deployment.client().login(&username, "cli password").await;
    assert_eq!(session.user_id, user_id(deployment, &username));

    let again = create_account(deployment, &["--username", &username, "--password", "other password"]).await;
    assert_eq!(again.status.code(), Some(1), "an existing username");
    assert!(!again.stderr.is_empty(), "says why on stderr");
    deployment.client().login(&username, "cli password").await;

    let admin = name("cliadmin");
    let output = create_account(deployment, &["--username", &admin, "--password", "cli password", "--admin"]).await;
    assert_eq!(output.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains(&user_id(deployment, &admin)));
    deployment.client().login(&admin, "cli password").await;

    let invalid = create_account(deployment, &["--username", "not valid", "--password", "cli password"]).await;
    assert_eq!(invalid.status.code(), Some(1), "an invalid username");
}

#[tokio::test]
async fn closed_registration_admits_only_shared_secret_and_cli_accounts() {
    let deployment =
        Deployment::start_with(Options::new(Mode::Polylith).set("clientapi.registration.open", "false")).await;
    let client = deployment.client();
    let localpart = name("closed");
    client
        .post("/register", json!({"username": localpart, "password": "closed password"}))
        .await
        .expect_error(403, "M_FORBIDDEN");
    client
        .post(
            "/register",
            json!({"username": localpart, "password": "closed password", "auth": {"type": "m.login.dummy"}}),
        )
        .await
        .expect_error(403, "M_FORBIDDEN");
    client.post("/register?kind=guest", json!({})).await.expect_error(403, "M_FORBIDDEN");
    available(&client, &localpart).await.expect_error(403, "M_FORBIDDEN");
    client
        .get("/_matrix/client/v1/register/m.login.registration_token/validity?token=tok1")
        .await
        .expect_error(403, "M_FORBIDDEN");

    shared_secret_registration(&deployment).await;
    command_line_accounts(&deployment).await;
}
