//! Push rules: the spec's defaults for a new account, every
//! `/pushrules/global/{kind}/{ruleId}` endpoint (with `before`/`after`,
//! `enabled` and `actions`) and its errors, and changes showing up as
//! `m.push_rules` account data in `/sync`.

use serde_json::{Value, json};
use tests::{
    Deployment, Mode,
    client::{Client, enc},
};

fn ids(rules: &Value) -> Vec<String> {
    rules.as_array().expect("a rule list").iter().map(|r| r["rule_id"].as_str().unwrap().to_owned()).collect()
}

async fn override_ids(client: &Client) -> Vec<String> {
    ids(&client.get("/pushrules/global/").await.expect(200)["override"])
}

#[tokio::test]
async fn a_new_account_has_the_default_rules() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let alice = deployment.new_user().await;

    let all = alice.get("/pushrules/").await.expect(200);
    let global = &all["global"];
    for kind in ["override", "content", "room", "sender", "underride"] {
        assert!(global[kind].is_array(), "{kind} is a list: {all}");
    }
    assert_eq!(alice.get("/pushrules/global/").await.expect(200), *global);
    let overrides = ids(&global["override"]);
    assert_eq!(overrides[0], ".m.rule.master", "the master rule comes first: {overrides:?}");
    for id in [".m.rule.suppress_notices", ".m.rule.invite_for_me", ".m.rule.member_event", ".m.rule.is_room_mention"] {
        assert!(overrides.contains(&id.to_owned()), "{id} in {overrides:?}");
    }
    let underrides = ids(&global["underride"]);
    for id in [".m.rule.call", ".m.rule.encrypted_room_one_to_one", ".m.rule.room_one_to_one", ".m.rule.message"] {
        assert!(underrides.contains(&id.to_owned()), "{id} in {underrides:?}");
    }
    assert!(global["room"].as_array().unwrap().is_empty() && global["sender"].as_array().unwrap().is_empty());

    let master = alice.get("/pushrules/global/override/.m.rule.master").await.expect(200);
    assert_eq!((master["rule_id"].as_str(), master["default"].as_bool()), (Some(".m.rule.master"), Some(true)));
    assert_eq!(master["enabled"], false, "{master}");
    assert_eq!(
        alice.get("/pushrules/global/override/.m.rule.master/enabled").await.expect(200),
        json!({"enabled": false})
    );
    let message = alice.get("/pushrules/global/underride/.m.rule.message/actions").await.expect(200);
    assert_eq!(message, json!({"actions": ["notify"]}));

    // The endpoints need an access token.
    deployment.client().get("/pushrules/").await.expect_error(401, "M_MISSING_TOKEN");
    deployment.client().get("/pushrules/global/override/.m.rule.master").await.expect_error(401, "M_MISSING_TOKEN");
    deployment
        .client()
        .put("/pushrules/global/room/!r:example.org", json!({"actions": []}))
        .await
        .expect_error(401, "M_MISSING_TOKEN");
}

#[tokio::test]
async fn rules_are_created_ordered_changed_and_deleted() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    let server = &deployment.server_name;
    let before_changes = alice.get("/sync").await.expect(200)["next_batch"].as_str().unwrap().to_owned();

    // Each kind, with its own body.
    let room = format!("!quiet:{server}");
    let room_rule = format!("/pushrules/global/room/{}", enc(&room));
    assert_eq!(alice.put(&room_rule, json!({"actions": []})).await.expect(200), json!({}));
    let rule = alice.get(&room_rule).await.expect(200);
    assert_eq!(
        (rule["rule_id"].as_str(), rule["enabled"].as_bool(), rule["default"].as_bool()),
        (Some(room.as_str()), Some(true), Some(false)),
        "{rule}"
    );
    assert_eq!(rule["actions"], json!([]));
    let sender = format!("@loud:{server}");
    let sender_rule = format!("/pushrules/global/sender/{}", enc(&sender));
    alice
        .put(&sender_rule, json!({"actions": ["notify", {"set_tweak": "sound", "value": "default"}]}))
        .await
        .expect(200);
    assert_eq!(
        alice.get(&format!("{sender_rule}/actions")).await.expect(200)["actions"],
        json!(["notify", {"set_tweak": "sound", "value": "default"}])
    );
    alice.put("/pushrules/global/content/cakes", json!({"actions": ["notify"], "pattern": "cake*"})).await.expect(200);
    assert_eq!(alice.get("/pushrules/global/content/cakes").await.expect(200)["pattern"], "cake*");
    alice
        .put(
            "/pushrules/global/underride/late",
            json!({"actions": ["notify"], "conditions": [{"kind": "event_match", "key": "type", "pattern": "m.room.message"}]}),
        )
        .await
        .expect(200);
    let late = alice.get("/pushrules/global/underride/late").await.expect(200);
    assert_eq!(late["conditions"][0]["pattern"], "m.room.message", "{late}");
    assert_eq!(ids(&alice.get("/pushrules/global/").await.expect(200)["underride"])[0], "late");

    // Ordering among override rules: new ones go right after the master
    // rule, `after` and `before` place them.
    let cond = json!({"actions": [], "conditions": []});
    alice.put("/pushrules/global/override/a", cond.clone()).await.expect(200);
    alice.put("/pushrules/global/override/b", cond.clone()).await.expect(200);
    alice.put("/pushrules/global/override/c?after=a", cond.clone()).await.expect(200);
    alice.put("/pushrules/global/override/d?before=b", cond.clone()).await.expect(200);
    assert_eq!(override_ids(&alice).await[..5], [".m.rule.master", "d", "b", "a", "c"]);
    // Replacing a rule without before/after keeps its place.
    alice.put("/pushrules/global/override/b", json!({"actions": ["notify"], "conditions": []})).await.expect(200);
    assert_eq!(override_ids(&alice).await[..5], [".m.rule.master", "d", "b", "a", "c"]);
    assert_eq!(alice.get("/pushrules/global/override/b/actions").await.expect(200)["actions"], json!(["notify"]));
    // Moving an existing one.
    alice.put("/pushrules/global/override/d?after=c", cond.clone()).await.expect(200);
    assert_eq!(override_ids(&alice).await[..5], [".m.rule.master", "b", "a", "c", "d"]);

    // before/after naming a rule that does not exist; relative to a default rule.
    alice.put("/pushrules/global/override/e?before=nope", cond.clone()).await.expect_error(404, "M_NOT_FOUND");
    alice.put("/pushrules/global/override/e?after=nope", cond.clone()).await.expect_error(404, "M_NOT_FOUND");
    alice
        .put("/pushrules/global/override/e?after=.m.rule.master", cond.clone())
        .await
        .expect_error(400, "M_INVALID_PARAM");
    alice.get("/pushrules/global/override/e").await.expect_error(404, "M_NOT_FOUND");

    // Server-default rules cannot be created or deleted...
    alice.put("/pushrules/global/override/.m.rule.mine", cond.clone()).await.expect_error(400, "M_INVALID_PARAM");
    alice.put("/pushrules/global/override/.m.rule.master", cond.clone()).await.expect_error(400, "M_INVALID_PARAM");
    alice.delete("/pushrules/global/override/.m.rule.master", json!({})).await.expect_error(400, "M_INVALID_PARAM");
    // ... but they can be enabled, disabled and given other actions.
    let master = "/pushrules/global/override/.m.rule.master";
    alice.put(&format!("{master}/enabled"), json!({"enabled": true})).await.expect(200);
    assert_eq!(alice.get(&format!("{master}/enabled")).await.expect(200), json!({"enabled": true}));
    assert_eq!(alice.get(master).await.expect(200)["enabled"], true);
    alice.put(&format!("{master}/enabled"), json!({"enabled": false})).await.expect(200);
    assert_eq!(alice.get(master).await.expect(200)["enabled"], false);
    let message = "/pushrules/global/underride/.m.rule.message";
    alice.put(&format!("{message}/actions"), json!({"actions": []})).await.expect(200);
    assert_eq!(alice.get(&format!("{message}/actions")).await.expect(200), json!({"actions": []}));
    // A user rule keeps its enabled flag when replaced.
    alice.put(&format!("{room_rule}/enabled"), json!({"enabled": false})).await.expect(200);
    alice.put(&room_rule, json!({"actions": ["notify"]})).await.expect(200);
    assert_eq!(alice.get(&room_rule).await.expect(200)["enabled"], false);

    // Deleting a user rule.
    assert_eq!(alice.delete("/pushrules/global/override/a", json!({})).await.expect(200), json!({}));
    alice.get("/pushrules/global/override/a").await.expect_error(404, "M_NOT_FOUND");
    alice.delete("/pushrules/global/override/a", json!({})).await.expect_error(404, "M_NOT_FOUND");
    assert_eq!(override_ids(&alice).await[..4], [".m.rule.master", "b", "c", "d"]);

    // Another user's rules are their own.
    bob.get(&room_rule).await.expect_error(404, "M_NOT_FOUND");
    assert_eq!(bob.get(&format!("{message}/actions")).await.expect(200), json!({"actions": ["notify"]}));

    // Clients see the rules as m.push_rules account data, in /sync and directly;
    // writing it directly stays refused.
    let sync = alice.get(&format!("/sync?since={before_changes}&timeout=10000")).await.expect(200);
    let events = sync["account_data"]["events"].as_array().cloned().unwrap_or_default();
    let push_rules = events.iter().find(|e| e["type"] == "m.push_rules").unwrap_or_else(|| panic!("{sync}"));
    let rules = alice.get("/pushrules/").await.expect(200);
    assert_eq!(push_rules["content"], rules, "the /sync copy is the current ruleset");
    assert_eq!(ids(&push_rules["content"]["global"]["room"]), [room]);
    let account_data = format!("/user/{}/account_data/m.push_rules", enc(&alice.user_id));
    assert_eq!(alice.get(&account_data).await.expect(200), rules);
    alice.put(&account_data, json!({"global": {}})).await.expect_error(405, "M_BAD_JSON");
}

#[tokio::test]
async fn bad_requests_are_refused() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let alice = deployment.new_user().await;
    let unchanged = alice.get("/pushrules/").await.expect(200);

    // Unknown rules, for every endpoint.
    for path in ["/pushrules/global/override/nope", "/pushrules/global/content/nope", "/pushrules/global/room/nope"] {
        alice.get(path).await.expect_error(404, "M_NOT_FOUND");
        alice.get(&format!("{path}/enabled")).await.expect_error(404, "M_NOT_FOUND");
        alice.get(&format!("{path}/actions")).await.expect_error(404, "M_NOT_FOUND");
        alice.put(&format!("{path}/enabled"), json!({"enabled": true})).await.expect_error(404, "M_NOT_FOUND");
        alice.put(&format!("{path}/actions"), json!({"actions": []})).await.expect_error(404, "M_NOT_FOUND");
        alice.delete(path, json!({})).await.expect_error(404, "M_NOT_FOUND");
    }
    // A default rule exists only under its own kind.
    alice.get("/pushrules/global/underride/.m.rule.master").await.expect_error(404, "M_NOT_FOUND");

    // Scopes other than global; kinds that do not exist.
    alice.get("/pushrules/device/override/.m.rule.master").await.expect_error(400, "M_INVALID_PARAM");
    alice.get("/pushrules/device/override/.m.rule.master/enabled").await.expect_error(400, "M_INVALID_PARAM");
    alice
        .put("/pushrules/device/override/x", json!({"actions": [], "conditions": []}))
        .await
        .expect_error(400, "M_INVALID_PARAM");
    alice.delete("/pushrules/device/override/x", json!({})).await.expect_error(400, "M_INVALID_PARAM");
    alice.get("/pushrules/device/").await.expect_error(400, "M_INVALID_PARAM");
    alice.get("/pushrules/global/nonsense/x").await.expect_error(400, "M_INVALID_PARAM");
    alice.get("/pushrules/global/nonsense/x/actions").await.expect_error(400, "M_INVALID_PARAM");
    alice.delete("/pushrules/global/nonsense/x", json!({})).await.expect_error(400, "M_INVALID_PARAM");
    assert_eq!(alice.put("/pushrules/global/nonsense/x", json!({"actions": []})).await.status, 400);

    // Bodies.
    let bad_bodies = [
        ("/pushrules/global/content/cakes", json!({"actions": ["notify"]})), // no pattern
        ("/pushrules/global/room/!r:example.org", json!({})),                // no actions
        ("/pushrules/global/room/!r:example.org", json!({"actions": "notify"})),
        ("/pushrules/global/override/x", json!({"actions": [], "conditions": "all"})),
        ("/pushrules/global/override/.m.rule.master/enabled", json!({"enabled": "yes"})),
        ("/pushrules/global/override/.m.rule.master/enabled", json!({})),
        ("/pushrules/global/override/.m.rule.master/actions", json!({"actions": {"notify": true}})),
        ("/pushrules/global/override/.m.rule.master/actions", json!({})),
    ];
    for (path, body) in bad_bodies {
        let answer = alice.put(path, body.clone()).await;
        assert_eq!(answer.status, 400, "{path} with {body}: {}", answer.body);
        assert!(["M_BAD_JSON", "M_INVALID_PARAM"].contains(&answer.errcode()), "{path} with {body}: {}", answer.body);
    }
    // Room and sender rule ids must be room and user ids.
    alice.put("/pushrules/global/room/not-a-room", json!({"actions": []})).await.expect_error(400, "M_INVALID_PARAM");
    alice.put("/pushrules/global/sender/not-a-user", json!({"actions": []})).await.expect_error(400, "M_INVALID_PARAM");
    // A rule id with a slash or backslash.
    alice
        .put(&format!("/pushrules/global/override/{}", enc("a\\b")), json!({"actions": [], "conditions": []}))
        .await
        .expect_error(400, "M_INVALID_PARAM");

    assert_eq!(alice.get("/pushrules/").await.expect(200), unchanged, "nothing refused was stored");
}
