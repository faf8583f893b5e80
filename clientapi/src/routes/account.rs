//! `GET /account/whoami`, `POST /account/password`, `POST /account/deactivate`.

use std::sync::Arc;

use axum::{Json, extract::State};
use common::{
    api::userapi::{
        CheckRegistration, CheckRegistrationRequest, Deactivate, DeactivateRequest, SetPassword, SetPasswordRequest,
    },
    http::{MatrixError, Ruma, RumaResponse},
};
use ruma::api::client::account::{ThirdPartyIdRemovalStatus, change_password, deactivate, whoami};
use serde_json::{Value, json};

use crate::{
    App, membership,
    uia::{self, Operation, UiaError},
};

/// `is_guest` is sent even when false, which ruma would leave out.
pub async fn whoami(request: Ruma<whoami::v3::Request>) -> Result<Json<Value>, MatrixError> {
    let user = request.require_user()?;
    Ok(Json(json!({ "user_id": user.user_id, "device_id": user.device_id, "is_guest": user.is_guest })))
}

pub async fn change_password(
    State(app): State<Arc<App>>,
    request: Ruma<change_password::v3::Request>,
) -> Result<RumaResponse<change_password::v3::Response>, UiaError> {
    let user = request.require_user()?;
    // A weak password is refused before the client is asked to authenticate.
    let check = CheckRegistrationRequest { localpart: None, password: Some(request.body.new_password.clone()) };
    app.rt.bus.call::<CheckRegistration>(&check).await?;
    let auth = request.body.auth.as_ref();
    let operation = Operation::change_password(request.body.logout_devices);
    uia::authenticate(&app, &operation, &uia::password_flows(), auth, Some(&user.user_id)).await?;
    let set = SetPasswordRequest {
        user_id: user.user_id.clone(),
        password: request.body.new_password.clone(),
        logout_devices: request.body.logout_devices,
        except_device: Some(user.device_id.clone()),
    };
    app.rt.bus.call::<SetPassword>(&set).await?;
    Ok(RumaResponse(change_password::v3::Response::new()))
}

pub async fn deactivate(
    State(app): State<Arc<App>>,
    request: Ruma<deactivate::v3::Request>,
) -> Result<RumaResponse<deactivate::v3::Response>, UiaError> {
    let user = request.require_user()?;
    let auth = request.body.auth.as_ref();
    let operation = Operation::deactivate(request.body.erase);
    uia::authenticate(&app, &operation, &uia::password_flows(), auth, Some(&user.user_id)).await?;
    let deactivate = DeactivateRequest { user_id: user.user_id.clone(), erase: request.body.erase };
    app.rt.bus.call::<Deactivate>(&deactivate).await?;
    membership::leave_everything(&app, &user.user_id).await;
    // No identity server bindings are ever made here.
    Ok(RumaResponse(deactivate::v3::Response::new(ThirdPartyIdRemovalStatus::NoSupport)))
}
