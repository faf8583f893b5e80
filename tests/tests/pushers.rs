//! Pushers: `POST /pushers/set` creates, replaces, appends and deletes them,
//! `GET /pushers` lists them; every field is checked; a pusher goes with the
//! device that set it and with the account.

use common::api::userapi::{QueryPushers, QueryPushersRequest};
use serde_json::{Value, json};
use tests::{
    Deployment, Mode,
    client::{Client, PASSWORD, enc},
};

const URL: &str = "https://push.example.org/_matrix/push/v1/notify";

fn pusher(app_id: &str, pushkey: &str) -> Value {
    json!({
        "kind": "http",
        "app_id": app_id,
        "pushkey": pushkey,
        "app_display_name": "Example",
        "device_display_name": "Phone",
        "profile_tag": "tag",
        "lang": "en",
        "data": {"url": URL, "format": "event_id_only", "org.example.custom": [1, 2]},
    })
}

async fn pushers(client: &Client) -> Vec<Value> {
    client.get("/pushers").await.expect(200)["pushers"].as_array().expect("a list").clone()
}

fn keys(list: &[Value]) -> Vec<(String, String)> {
    let mut keys: Vec<_> = list
        .iter()
        .map(|p| (p["app_id"].as_str().unwrap().to_owned(), p["pushkey"].as_str().unwrap().to_owned()))
        .collect();
    keys.sort();
    keys
}

fn pair(app_id: &str, pushkey: &str) -> (String, String) {
    (app_id.to_owned(), pushkey.to_owned())
}

#[tokio::test]
async fn pushers_are_set_replaced_appended_and_deleted() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    assert!(pushers(&alice).await.is_empty());
    deployment.client().get("/pushers").await.expect_error(401, "M_MISSING_TOKEN");

    // Created as sent, custom data included.
    assert_eq!(alice.post("/pushers/set", pusher("org.example.app", "key1")).await.expect(200), json!({}));
    let list = pushers(&alice).await;
    let mut expected = pusher("org.example.app", "key1");
    expected.as_object_mut().unwrap().remove("append");
    assert_eq!(list, [expected], "the pusher as set");

    // The same app_id + pushkey replaces it.
    let mut renamed = pusher("org.example.app", "key1");
    renamed["device_display_name"] = json!("Renamed phone");
    renamed["data"] = json!({"url": URL});
    renamed.as_object_mut().unwrap().remove("profile_tag");
    alice.post("/pushers/set", renamed.clone()).await.expect(200);
    assert_eq!(pushers(&alice).await, [renamed]);

    // Another pushkey is another pusher; no format means full events.
    alice.post("/pushers/set", pusher("org.example.app", "key2")).await.expect(200);
    assert_eq!(keys(&pushers(&alice).await), [pair("org.example.app", "key1"), pair("org.example.app", "key2")]);

    // The same pushkey for another user: with append, both keep it...
    let mut appended = pusher("org.example.app", "key1");
    appended["append"] = json!(true);
    bob.post("/pushers/set", appended).await.expect(200);
    assert_eq!(keys(&pushers(&bob).await), [pair("org.example.app", "key1")]);
    assert_eq!(keys(&pushers(&alice).await).len(), 2);
    // ... without, it is taken from everyone else.
    bob.post("/pushers/set", pusher("org.example.app", "key2")).await.expect(200);
    assert_eq!(keys(&pushers(&alice).await), [pair("org.example.app", "key1")]);
    assert_eq!(keys(&pushers(&bob).await), [pair("org.example.app", "key1"), pair("org.example.app", "key2")]);

    // Deleting with kind null: only the caller's.
    let delete = json!({"kind": null, "app_id": "org.example.app", "pushkey": "key1"});
    assert_eq!(bob.post("/pushers/set", delete.clone()).await.expect(200), json!({}));
    assert_eq!(keys(&pushers(&bob).await), [pair("org.example.app", "key2")]);
    assert_eq!(keys(&pushers(&alice).await), [pair("org.example.app", "key1")]);
    // Deleting what is not there is no error.
    bob.post("/pushers/set", delete).await.expect(200);
    assert_eq!(keys(&pushers(&bob).await).len(), 1);
}

#[tokio::test]
async fn invalid_pushers_are_refused() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let alice = deployment.new_user().await;

    let with = |change: &dyn Fn(&mut Value)| {
        let mut body = pusher("org.example.app", "key");
        change(&mut body);
        body
    };
    let cases = [
        ("no kind", with(&|b| drop(b.as_object_mut().unwrap().remove("kind")))),
        ("no app_id", with(&|b| drop(b.as_object_mut().unwrap().remove("app_id")))),
        ("no pushkey", with(&|b| drop(b.as_object_mut().unwrap().remove("pushkey")))),
        ("no app_display_name", with(&|b| drop(b.as_object_mut().unwrap().remove("app_display_name")))),
        ("no device_display_name", with(&|b| drop(b.as_object_mut().unwrap().remove("device_display_name")))),
        ("no lang", with(&|b| drop(b.as_object_mut().unwrap().remove("lang")))),
        ("no data", with(&|b| drop(b.as_object_mut().unwrap().remove("data")))),
        ("no url", with(&|b| b["data"] = json!({"format": "event_id_only"}))),
        ("url not a string", with(&|b| b["data"]["url"] = json!(7))),
        ("url with another path", with(&|b| b["data"]["url"] = json!("https://push.example.org/notify"))),
        ("url not http", with(&|b| b["data"]["url"] = json!("ftp://push.example.org/_matrix/push/v1/notify"))),
        ("url without host", with(&|b| b["data"]["url"] = json!("https:///_matrix/push/v1/notify"))),
        ("unknown format", with(&|b| b["data"]["format"] = json!("full"))),
        ("app_id too long", with(&|b| b["app_id"] = json!("a".repeat(65)))),
        ("pushkey too long", with(&|b| b["pushkey"] = json!("k".repeat(513)))),
        ("unknown kind", with(&|b| b["kind"] = json!("carrier-pigeon"))),
        ("email without email sending", {
            let mut b = with(&|b| b["kind"] = json!("email"));
            b["app_id"] = json!("m.email");
            b["pushkey"] = json!("alice@example.org");
            b["data"] = json!({});
            b
        }),
        ("append not a boolean", with(&|b| b["append"] = json!("yes"))),
        ("lang not a string", with(&|b| b["lang"] = json!(1))),
    ];
    for (what, body) in cases {
        let answer = alice.post("/pushers/set", body.clone()).await;
        assert_eq!(answer.status, 400, "{what}: {body} → {}", answer.body);
        assert!(
            ["M_BAD_JSON", "M_INVALID_PARAM", "M_MISSING_PARAM", "M_NOT_JSON"].contains(&answer.errcode()),
            "{what}: {}",
            answer.body
        );
    }
    // The errors the spec names where the body is well-formed JSON.
    let bad_url = with(&|b| b["data"]["url"] = json!("https://push.example.org/notify"));
    alice.post("/pushers/set", bad_url).await.expect_error(400, "M_INVALID_PARAM");
    let long_app = with(&|b| b["app_id"] = json!("a".repeat(65)));
    alice.post("/pushers/set", long_app).await.expect_error(400, "M_INVALID_PARAM");
    assert!(pushers(&alice).await.is_empty(), "nothing refused was stored");

    // The limits themselves are allowed, as is a plain-http gateway.
    let at_limits = with(&|b| {
        b["app_id"] = json!("a".repeat(64));
        b["pushkey"] = json!("k".repeat(512));
        b["data"]["url"] = json!("http://10.0.0.1:5000/_matrix/push/v1/notify");
    });
    alice.post("/pushers/set", at_limits).await.expect(200);
    assert_eq!(pushers(&alice).await.len(), 1);
}

#[tokio::test]
async fn pushers_go_with_their_device_and_account() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let alice = deployment.new_user().await;
    let phone = deployment.client().login(&alice.user_id, PASSWORD).await;
    alice.post("/pushers/set", pusher("org.example.app", "laptop")).await.expect(200);
    phone.post("/pushers/set", pusher("org.example.app", "phone")).await.expect(200);
    assert_eq!(keys(&pushers(&alice).await).len(), 2, "one user's pushers, whichever device set them");

    // Deleting the phone deletes its pusher only.
    let path = format!("/devices/{}", enc(&phone.device_id));
    let session = alice.delete(&path, json!({})).await.expect(401)["session"].as_str().unwrap().to_owned();
    alice.delete(&path, json!({"auth": alice.password_auth(PASSWORD, Some(&session))})).await.expect(200);
    assert_eq!(keys(&pushers(&alice).await), [pair("org.example.app", "laptop")]);

    // Deactivation deletes the rest.
    let bus = deployment.bus().await;
    let query = QueryPushersRequest { user_id: alice.user_id.parse().unwrap() };
    assert_eq!(bus.call::<QueryPushers>(&query).await.expect("userapi answers").len(), 1);
    alice.post("/account/deactivate", json!({"auth": alice.password_auth(PASSWORD, None)})).await.expect(200);
    assert!(bus.call::<QueryPushers>(&query).await.expect("userapi answers").is_empty());
}

#[tokio::test]
async fn notifications_parameters_are_checked() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let alice = deployment.new_user().await;
    deployment.client().get("/notifications").await.expect_error(401, "M_MISSING_TOKEN");

    // Nothing has notified a new account.
    for path in ["/notifications", "/notifications?limit=5", "/notifications?only=highlight", "/notifications?limit=0"]
    {
        let answer = alice.get(path).await.expect(200);
        assert_eq!(answer["notifications"], json!([]), "{path}: {answer}");
        assert!(answer.get("next_token").is_none(), "{path}: no further page: {answer}");
    }

    alice.get("/notifications?only=everything").await.expect_error(400, "M_INVALID_PARAM");
    alice.get("/notifications?limit=many").await.expect_error(400, "M_INVALID_PARAM");
    alice.get("/notifications?limit=-1").await.expect_error(400, "M_INVALID_PARAM");
    alice.get("/notifications?from=not-a-token").await.expect_error(400, "M_INVALID_PARAM");
}
