//! `/pushrules/`: the account's push rules, the spec's defaults until the
//! account changes them. They are kept as `m.push_rules` account data
//! (`{"global": ruleset}`), so clients see them in `/sync` and userapi's push
//! evaluation reads them. An edit rewrites the whole ruleset: two devices
//! editing at the same instant is last-writer-wins.

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::{Path, State},
    routing::any,
};
use common::{
    api::userapi::{QueryAccountData, QueryAccountDataRequest, SetAccountData, SetAccountDataRequest},
    bus::{RemoteErrorKind, RpcError},
    http::{MatrixError, Ruma, RumaResponse},
};
use ruma::{
    UserId,
    api::client::push::{
        PushRule, delete_pushrule, get_pushrule, get_pushrule_actions, get_pushrule_enabled, get_pushrules_all,
        get_pushrules_global_scope, set_pushrule, set_pushrule_actions, set_pushrule_enabled,
    },
    push::{AnyPushRuleRef, InsertPushRuleError, RemovePushRuleError, RuleKind, Ruleset},
};

use serde_json::{Value, json};

use crate::App;

async fn ruleset(app: &App, user_id: &UserId) -> Result<Ruleset, MatrixError> {
    let request =
        QueryAccountDataRequest { user_id: user_id.to_owned(), room_id: None, data_type: "m.push_rules".to_owned() };
    match app.rt.bus.call::<QueryAccountData>(&request).await {
        Ok(raw) => {
            #[derive(serde::Deserialize)]
            struct Stored {
                global: Ruleset,
            }
            let stored: Stored = serde_json::from_str(raw.get()).map_err(MatrixError::internal)?;
            Ok(common::push::with_current_defaults(stored.global, user_id))
        }
        Err(RpcError::Remote(e)) if e.kind == RemoteErrorKind::NotFound => Ok(common::push::server_default(user_id)),
        Err(e) => Err(e.into()),
    }
}

fn ruleset_json(ruleset: &Ruleset) -> Result<Value, MatrixError> {
    Ok(common::push::ruleset_json(ruleset))
}

pub async fn get_all(
    State(app): State<Arc<App>>,
    request: Ruma<get_pushrules_all::v3::Request>,
) -> Result<Json<Value>, MatrixError> {
    let user = request.require_user()?;
    Ok(Json(json!({ "global": ruleset_json(&ruleset(&app, &user.user_id).await?)? })))
}

pub async fn get_global(
    State(app): State<Arc<App>>,
    request: Ruma<get_pushrules_global_scope::v3::Request>,
) -> Result<Json<Value>, MatrixError> {
    let user = request.require_user()?;
    Ok(Json(ruleset_json(&ruleset(&app, &user.user_id).await?)?))
}

async fn save(app: &App, user_id: &UserId, ruleset: &Ruleset) -> Result<(), MatrixError> {
    let content =
        serde_json::value::to_raw_value(&json!({ "global": ruleset_json(ruleset)? })).map_err(MatrixError::internal)?;
    let request = SetAccountDataRequest {
        user_id: user_id.to_owned(),
        room_id: None,
        data_type: "m.push_rules".to_owned(),
        content,
    };
    app.rt.bus.call::<SetAccountData>(&request).await?;
    Ok(())
}

/// The kinds the spec defines; ruma parses any other path segment as a custom kind.
fn known_kind(kind: &RuleKind) -> Result<(), MatrixError> {
    match kind {
        RuleKind::Override | RuleKind::Underride | RuleKind::Sender | RuleKind::Room | RuleKind::Content => Ok(()),
        _ => Err(MatrixError::invalid_param(format!("Unknown push rule kind {kind}"))),
    }
}

fn rule_not_found() -> MatrixError {
    MatrixError::not_found("No push rule of this kind with this id")
}

fn find<'a>(ruleset: &'a Ruleset, kind: &RuleKind, rule_id: &str) -> Result<AnyPushRuleRef<'a>, MatrixError> {
    known_kind(kind)?;
    ruleset.get(kind.clone(), rule_id).ok_or_else(rule_not_found)
}

pub async fn get_rule(
    State(app): State<Arc<App>>,
    request: Ruma<get_pushrule::v3::Request>,
) -> Result<RumaResponse<get_pushrule::v3::Response>, MatrixError> {
    let user = request.require_user()?;
    let ruleset = ruleset(&app, &user.user_id).await?;
    let rule = find(&ruleset, &request.body.kind, &request.body.rule_id)?;
    Ok(RumaResponse(get_pushrule::v3::Response::new(PushRule::from(rule.to_owned()))))
}

pub async fn set_rule(
    State(app): State<Arc<App>>,
    request: Ruma<set_pushrule::v3::Request>,
) -> Result<RumaResponse<set_pushrule::v3::Response>, MatrixError> {
    let user = request.require_user()?.clone();
    let set_pushrule::v3::Request { rule, before, after, .. } = request.body;
    let mut ruleset = ruleset(&app, &user.user_id).await?;
    // ruma's insert moves an existing rule one place too far when it moves it
    // down the list; placed anew, it lands where the spec says, keeping its
    // enabled flag as a replaced rule does.
    let (kind, rule_id) = (rule.kind(), rule.rule_id().to_owned());
    let mut disabled = false;
    if (before.is_some() || after.is_some())
        && let Some(existing) = ruleset.get(kind.clone(), &rule_id)
        && !existing.is_server_default()
    {
        disabled = !existing.enabled();
        ruleset.remove(kind.clone(), &rule_id).map_err(MatrixError::internal)?;
    }
    ruleset.insert(rule, after.as_deref(), before.as_deref()).map_err(|e| match e {
        InsertPushRuleError::UnknownRuleId => MatrixError::not_found("The before or after rule does not exist"),
        InsertPushRuleError::ServerDefaultRuleId => {
            MatrixError::invalid_param("Rule ids starting with '.' are reserved for server-default rules")
        }
        e => MatrixError::invalid_param(e.to_string()),
    })?;
    if disabled {
        ruleset.set_enabled(kind, &rule_id, false).map_err(MatrixError::internal)?;
    }
    save(&app, &user.user_id, &ruleset).await?;
    Ok(RumaResponse(set_pushrule::v3::Response::new()))
}

pub async fn delete_rule(
    State(app): State<Arc<App>>,
    request: Ruma<delete_pushrule::v3::Request>,
) -> Result<RumaResponse<delete_pushrule::v3::Response>, MatrixError> {
    let user = request.require_user()?;
    known_kind(&request.body.kind)?;
    let mut ruleset = ruleset(&app, &user.user_id).await?;
    ruleset.remove(request.body.kind.clone(), &request.body.rule_id).map_err(|e| match e {
        RemovePushRuleError::ServerDefault => MatrixError::invalid_param("Server-default rules cannot be deleted"),
        _ => rule_not_found(),
    })?;
    save(&app, &user.user_id, &ruleset).await?;
    Ok(RumaResponse(delete_pushrule::v3::Response::new()))
}

pub async fn get_enabled(
    State(app): State<Arc<App>>,
    request: Ruma<get_pushrule_enabled::v3::Request>,
) -> Result<RumaResponse<get_pushrule_enabled::v3::Response>, MatrixError> {
    let user = request.require_user()?;
    let ruleset = ruleset(&app, &user.user_id).await?;
    let rule = find(&ruleset, &request.body.kind, &request.body.rule_id)?;
    Ok(RumaResponse(get_pushrule_enabled::v3::Response::new(rule.enabled())))
}

pub async fn set_enabled(
    State(app): State<Arc<App>>,
    request: Ruma<set_pushrule_enabled::v3::Request>,
) -> Result<RumaResponse<set_pushrule_enabled::v3::Response>, MatrixError> {
    let user = request.require_user()?.clone();
    let set_pushrule_enabled::v3::Request { kind, rule_id, enabled, .. } = request.body;
    known_kind(&kind)?;
    let mut ruleset = ruleset(&app, &user.user_id).await?;
    ruleset.set_enabled(kind, &rule_id, enabled).map_err(|_| rule_not_found())?;
    save(&app, &user.user_id, &ruleset).await?;
    Ok(RumaResponse(set_pushrule_enabled::v3::Response::new()))
}

pub async fn get_actions(
    State(app): State<Arc<App>>,
    request: Ruma<get_pushrule_actions::v3::Request>,
) -> Result<RumaResponse<get_pushrule_actions::v3::Response>, MatrixError> {
    let user = request.require_user()?;
    let ruleset = ruleset(&app, &user.user_id).await?;
    let rule = find(&ruleset, &request.body.kind, &request.body.rule_id)?;
    Ok(RumaResponse(get_pushrule_actions::v3::Response::new(rule.actions().to_vec())))
}

pub async fn set_actions(
    State(app): State<Arc<App>>,
    request: Ruma<set_pushrule_actions::v3::Request>,
) -> Result<RumaResponse<set_pushrule_actions::v3::Response>, MatrixError> {
    let user = request.require_user()?.clone();
    let set_pushrule_actions::v3::Request { kind, rule_id, actions, .. } = request.body;
    known_kind(&kind)?;
    let mut ruleset = ruleset(&app, &user.user_id).await?;
    ruleset.set_actions(kind, &rule_id, actions).map_err(|_| rule_not_found())?;
    save(&app, &user.user_id, &ruleset).await?;
    Ok(RumaResponse(set_pushrule_actions::v3::Response::new()))
}

/// ruma's push rule paths spell out `global`, the only scope there is; any
/// other scope gets the spec's 400 rather than "unrecognized endpoint".
pub fn other_scope_routes() -> Router<Arc<App>> {
    async fn refuse(Path(params): Path<Vec<(String, String)>>) -> MatrixError {
        match params.iter().find(|(name, _)| name == "scope") {
            Some((_, scope)) if scope != "global" => {
                MatrixError::invalid_param(format!("Unknown push rule scope {scope}; the only scope is global"))
            }
            _ => MatrixError::unrecognized(),
        }
    }
    let mut router = Router::new();
    for version in ["r0", "v3"] {
        for tail in ["", "{kind}/{rule_id}", "{kind}/{rule_id}/{attr}"] {
            router = router.route(&format!("/_matrix/client/{version}/pushrules/{{scope}}/{tail}"), any(refuse));
        }
    }
    router
}
