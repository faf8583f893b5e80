//! `POST /register`, `GET /register/available` and
//! `GET /register/m.login.registration_token/validity`.

use std::sync::Arc;

use axum::{Json, extract::State};
use common::{
    api::userapi::{
        CheckRegistration, CheckRegistrationRequest, CreateAccount, CreateAccountRequest, NewSession, UpgradeGuest,
        UpgradeGuestRequest,
    },
    http::{MatrixError, Ruma, RumaResponse},
};
use ruma::{
    OwnedUserId,
    api::client::{
        account::{
            check_registration_token_validity, get_username_availability,
            register::{self, RegistrationKind},
        },
        uiaa::AuthType,
    },
};
use serde_json::{Value, json};

use crate::{
    App, ip_string,
    uia::{self, Operation, UiaError},
};

fn closed() -> MatrixError {
    MatrixError::forbidden("Registration is not enabled on this server")
}

pub async fn register(
    State(app): State<Arc<App>>,
    request: Ruma<register::v3::Request>,
) -> Result<Json<Value>, UiaError> {
    let config = &app.rt.config.clientapi.registration;
    let body = &request.body;
    let guest = body.kind == RegistrationKind::Guest;
    if guest && !config.guests {
        return Err(MatrixError::forbidden("Guest accounts are not enabled on this server").into());
    }
    let upgrading = match (&body.guest_access_token, guest) {
        (Some(token), false) => Some(guest_to_upgrade(&app, token, body.username.as_deref(), &request).await?),
        _ => None,
    };
    if !guest {
        if !config.enabled() {
            return Err(closed().into());
        }
        // Username problems first, then the password's, before any UIA stage.
        let localpart = if upgrading.is_some() { None } else { body.username.as_ref().map(|u| u.to_lowercase()) };
        let check = CheckRegistrationRequest { localpart, password: body.password.clone() };
        app.rt.bus.call::<CheckRegistration>(&check).await?;
        if body.password.is_none() {
            return Err(MatrixError::missing_param("A password is needed").into());
        }
        let flows = if config.tokens.is_empty() {
            vec![vec![AuthType::Dummy]]
        } else {
            vec![vec![AuthType::RegistrationToken]]
        };
        uia::authenticate(&app, &Operation::register(), &flows, body.auth.as_ref(), None).await?;
    }
    let session = (!body.inhibit_login).then(|| NewSession {
        // Guests have no say in their device.
        device_id: if guest { None } else { body.device_id.clone() },
        display_name: body.initial_device_display_name.clone(),
        refreshable: body.refresh_token,
        ip: ip_string(request.client_ip),
    });
    let created = match (upgrading, &body.password) {
        (Some(user_id), Some(password)) => {
            let upgrade = UpgradeGuestRequest { user_id, password: password.clone(), session };
            app.rt.bus.call::<UpgradeGuest>(&upgrade).await?
        }
        _ => {
            let create = CreateAccountRequest {
                localpart: if guest { None } else { body.username.clone() },
                password: if guest { None } else { body.password.clone() },
                guest,
                admin: false,
                display_name: None,
                session,
            };
            app.rt.bus.call::<CreateAccount>(&create).await?
        }
    };
    // Written out by hand: ruma would send `"device_id": null` with inhibit_login.
    let mut response = json!({ "user_id": created.user_id });
    if let Some(session) = created.session {
        response["access_token"] = json!(session.access_token);
        response["device_id"] = json!(session.device_id);
        if let Some(refresh_token) = session.refresh_token {
            response["refresh_token"] = json!(refresh_token);
        }
        if let Some(expires_in_ms) = session.expires_in_ms {
            response["expires_in_ms"] = json!(expires_in_ms);
        }
    }
    Ok(Json(response))
}

/// The guest account a registration with `guest_access_token` upgrades; the
/// spec has the client name the guest's own localpart as the username.
async fn guest_to_upgrade(
    app: &App,
    token: &str,
    username: Option<&str>,
    request: &Ruma<register::v3::Request>,
) -> Result<OwnedUserId, MatrixError> {
    let owner = app.rt.tokens.owner(token, request.client_ip).await?;
    if !owner.is_guest {
        return Err(MatrixError::forbidden("guest_access_token is not a guest's"));
    }
    if username != Some(owner.user_id.localpart()) {
        return Err(MatrixError::invalid_param("username must be the guest account's localpart"));
    }
    Ok(owner.user_id)
}

pub async fn available(
    State(app): State<Arc<App>>,
    request: Ruma<get_username_availability::v3::Request>,
) -> Result<RumaResponse<get_username_availability::v3::Response>, MatrixError> {
    if !app.rt.config.clientapi.registration.enabled() {
        return Err(closed());
    }
    let check = CheckRegistrationRequest { localpart: Some(request.body.username.to_lowercase()), password: None };
    app.rt.bus.call::<CheckRegistration>(&check).await?;
    Ok(RumaResponse(get_username_availability::v3::Response::new(true)))
}

pub async fn token_validity(
    State(app): State<Arc<App>>,
    request: Ruma<check_registration_token_validity::v1::Request>,
) -> Result<RumaResponse<check_registration_token_validity::v1::Response>, MatrixError> {
    let tokens = &app.rt.config.clientapi.registration.tokens;
    if tokens.is_empty() {
        return Err(MatrixError::forbidden("Registration tokens are not used on this server"));
    }
    let valid = tokens.iter().any(|t| t == &request.body.token);
    Ok(RumaResponse(check_registration_token_validity::v1::Response::new(valid)))
}
