//! Filters (stored per user, read back as sent, malformed ones refused) and
//! `/capabilities`, sharing one deployment.

use serde_json::{Value, json};
use tests::{Deployment, Mode, client::enc};

/// Every field of `sent` comes back unchanged in `got` (which may add defaults).
#[track_caller]
fn assert_kept(sent: &Value, got: &Value, at: &str) {
    match sent {
        Value::Object(fields) => {
            for (key, value) in fields {
                let inner = got.get(key).unwrap_or_else(|| panic!("{at}.{key} was not kept: {got}"));
                assert_kept(value, inner, &format!("{at}.{key}"));
            }
        }
        _ => assert_eq!(sent, got, "{at} changed"),
    }
}

async fn filters_round_trip(deployment: &Deployment) {
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    let server = &deployment.server_name;
    let filters = format!("/user/{}/filter", enc(&alice.user_id));

    let definition = json!({
        "event_fields": ["type", "content", "sender"],
        "event_format": "client",
        "presence": {"types": ["m.presence"], "not_senders": [format!("@spam:{server}")]},
        "account_data": {"types": ["m.direct"], "limit": 5},
        "room": {
            "rooms": [format!("!one:{server}"), format!("!two:{server}")],
            "include_leave": true,
            "timeline": {"limit": 10, "types": ["m.room.message"], "not_senders": [format!("@spam:{server}")], "contains_url": false},
            "state": {"types": ["m.room.*"], "lazy_load_members": true},
            "ephemeral": {"types": ["m.receipt", "m.typing"], "not_rooms": [format!("!two:{server}")]},
        },
    });
    let created = alice.post(&filters, definition.clone()).await.expect(200);
    let id = created["filter_id"].as_str().unwrap_or_else(|| panic!("no filter_id: {created}")).to_owned();
    assert!(!id.is_empty() && !id.starts_with('{'), "a filter id cannot start with {{ (inline filters do): {id:?}");
    let stored = alice.get(&format!("{filters}/{}", enc(&id))).await.expect(200);
    assert_kept(&definition, &stored, "filter");

    // A second, different filter is another one; both stay readable.
    let other = json!({"room": {"timeline": {"limit": 1}}, "presence": {"types": []}});
    let created = alice.post(&filters, other.clone()).await.expect(200);
    let other_id = created["filter_id"].as_str().unwrap_or_else(|| panic!("no filter_id: {created}")).to_owned();
    assert_ne!(id, other_id, "two different filters share an id");
    assert_kept(&other, &alice.get(&format!("{filters}/{}", enc(&other_id))).await.expect(200), "second filter");
    assert_kept(&definition, &alice.get(&format!("{filters}/{}", enc(&id))).await.expect(200), "first filter");

    // Unknown ids, and filters are per user.
    alice.get(&format!("{filters}/987654321")).await.expect_error(404, "M_NOT_FOUND");
    let bobs = format!("/user/{}/filter", enc(&bob.user_id));
    bob.get(&format!("{bobs}/{}", enc(&id))).await.expect_error(404, "M_NOT_FOUND");
    bob.get(&format!("{filters}/{}", enc(&id))).await.expect_error(403, "M_FORBIDDEN");
    bob.post(&filters, json!({"room": {"timeline": {"limit": 3}}})).await.expect_error(403, "M_FORBIDDEN");

    // Malformed definitions.
    for bad in [
        json!({"room": {"timeline": {"limit": "ten"}}}),
        json!({"room": {"timeline": {"limit": -1}}}),
        json!({"event_format": "xml"}),
        json!({"room": {"rooms": "!one:example.org"}}),
    ] {
        let answer = alice.post(&filters, bad.clone()).await;
        assert_eq!((answer.status, answer.errcode()), (400, "M_BAD_JSON"), "{bad} was not refused: {}", answer.body);
    }
}

async fn capabilities_are_advertised(deployment: &Deployment) {
    deployment.client().get("/capabilities").await.expect_error(401, "M_MISSING_TOKEN");

    let alice = deployment.new_user().await;
    let body = alice.get("/capabilities").await.expect(200);
    let capabilities = &body["capabilities"];
    for (name, enabled) in [
        ("m.change_password", true),
        ("m.set_displayname", true),
        ("m.set_avatar_url", true),
        ("m.3pid_changes", false),
        ("m.get_login_token", true),
        ("m.profile_fields", true),
    ] {
        assert_eq!(capabilities[name]["enabled"], enabled, "{name}: {body}");
    }

    let versions = &capabilities["m.room_versions"];
    let available = versions["available"].as_object().unwrap_or_else(|| panic!("m.room_versions.available: {body}"));
    for version in 1..=12 {
        assert_eq!(available.get(&version.to_string()), Some(&json!("stable")), "room version {version}: {body}");
    }
    let default = versions["default"].as_str().unwrap_or_else(|| panic!("m.room_versions.default: {body}"));
    assert_eq!(
        available.get(default),
        Some(&json!("stable")),
        "the default room version {default} is available and stable"
    );
}

#[tokio::test]
async fn filters_round_trip_and_capabilities_are_advertised() {
    let deployment = Deployment::start(Mode::Polylith).await;
    filters_round_trip(&deployment).await;
    capabilities_are_advertised(&deployment).await;
}
