//! `GET /pushrules/` and `GET /pushrules/global/`: the account's push rules,
//! the spec's defaults until the account changes them (kept as `m.push_rules`
//! account data, which the push work of issue 6 edits and evaluates).

use std::sync::Arc;

use axum::extract::State;
use common::{
    api::userapi::{QueryAccountData, QueryAccountDataRequest},
    bus::{RemoteErrorKind, RpcError},
    http::{MatrixError, Ruma, RumaResponse},
};
use ruma::{
    UserId,
    api::client::push::{get_pushrules_all, get_pushrules_global_scope},
    push::Ruleset,
};

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
            Ok(stored.global)
        }
        Err(RpcError::Remote(e)) if e.kind == RemoteErrorKind::NotFound => Ok(Ruleset::server_default(user_id)),
        Err(e) => Err(e.into()),
    }
}

pub async fn get_all(
    State(app): State<Arc<App>>,
    request: Ruma<get_pushrules_all::v3::Request>,
) -> Result<RumaResponse<get_pushrules_all::v3::Response>, MatrixError> {
    let user = request.require_user()?;
    Ok(RumaResponse(get_pushrules_all::v3::Response::new(ruleset(&app, &user.user_id).await?)))
}

pub async fn get_global(
    State(app): State<Arc<App>>,
    request: Ruma<get_pushrules_global_scope::v3::Request>,
) -> Result<RumaResponse<get_pushrules_global_scope::v3::Response>, MatrixError> {
    let user = request.require_user()?;
    Ok(RumaResponse(get_pushrules_global_scope::v3::Response::new(ruleset(&app, &user.user_id).await?)))
}
