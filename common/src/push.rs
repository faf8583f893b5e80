//! Push rules as clients see them.

use std::sync::LazyLock;

use ruma::{
    UserId,
    push::{ConditionalPushRule, PatternedPushRule, Ruleset},
};
use serde_json::{Value, json};

/// The ruleset with every kind listed, empty ones too: ruma leaves those
/// out, Synapse and the spec's examples list all five, and clients index them.
pub fn ruleset_json(ruleset: &Ruleset) -> Value {
    let mut json = serde_json::to_value(ruleset).expect("a ruleset serialises");
    if let Some(kinds) = json.as_object_mut() {
        for kind in ["override", "content", "room", "sender", "underride"] {
            kinds.entry(kind).or_insert_with(|| Value::Array(Vec::new()));
        }
    }
    json
}

/// The `m.push_rules` account data of an account that never changed its rules.
pub fn default_push_rules(user_id: &UserId) -> Value {
    serde_json::json!({ "global": ruleset_json(&server_default(user_id)) })
}

/// The spec's predefined rules, with the three that v1.7 deprecated in favour
/// of `m.mentions` and that ruma no longer lists: clients still expect them
/// (matrix-js-sdk warns when they are missing), and they still match events
/// without `m.mentions`, which ruma's evaluation already takes care of.
pub fn server_default(user_id: &UserId) -> Ruleset {
    let [contains_display_name, roomnotif] = LEGACY_OVERRIDES.clone();
    let mut rules = Ruleset::server_default(user_id);
    insert_override_after(&mut rules, ".m.rule.is_user_mention", contains_display_name);
    insert_override_after(&mut rules, ".m.rule.is_room_mention", roomnotif);
    let contains_user_name = json!({
        "rule_id": ".m.rule.contains_user_name",
        "default": true,
        "enabled": true,
        "pattern": user_id.localpart(),
        "actions": ["notify", {"set_tweak": "sound", "value": "default"}, {"set_tweak": "highlight"}],
    });
    rules.content.insert(serde_json::from_value::<PatternedPushRule>(contains_user_name).expect("a valid push rule"));
    rules
}

/// `.m.rule.contains_display_name` and `.m.rule.roomnotif`, the same for
/// everyone: built once, since push evaluation asks for the defaults of
/// every member for every event.
static LEGACY_OVERRIDES: LazyLock<[ConditionalPushRule; 2]> = LazyLock::new(|| {
    let rules = json!([
        {
            "rule_id": ".m.rule.contains_display_name",
            "default": true,
            "enabled": true,
            "conditions": [{"kind": "contains_display_name"}],
            "actions": ["notify", {"set_tweak": "sound", "value": "default"}, {"set_tweak": "highlight"}],
        },
        {
            "rule_id": ".m.rule.roomnotif",
            "default": true,
            "enabled": true,
            "conditions": [
                {"kind": "event_match", "key": "content.body", "pattern": "@room"},
                {"kind": "sender_notification_permission", "key": "room"},
            ],
            "actions": ["notify", {"set_tweak": "highlight"}],
        },
    ]);
    serde_json::from_value(rules).expect("valid push rules")
});

/// Places an override `rule` right after `anchor` (last when there is no such rule).
fn insert_override_after(rules: &mut Ruleset, anchor: &str, rule: ConditionalPushRule) {
    let overrides = &mut rules.override_;
    let at = overrides.iter().position(|r| r.rule_id == anchor).map_or(overrides.len(), |i| i + 1);
    overrides.shift_insert(at, rule);
}

/// A stored ruleset with the server's defaults as they are now: a default
/// rule added since the account last changed its rules appears, one no
/// longer predefined goes, and the user's own rules and choices stay.
pub fn with_current_defaults(mut stored: Ruleset, user_id: &UserId) -> Ruleset {
    stored.update_with_server_default(server_default(user_id));
    stored
}
