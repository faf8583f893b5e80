//! Push rules as clients see them.

use ruma::{UserId, push::Ruleset};
use serde_json::Value;

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
    serde_json::json!({ "global": ruleset_json(&Ruleset::server_default(user_id)) })
}
