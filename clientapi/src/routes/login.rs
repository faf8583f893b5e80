//! `GET`/`POST /login` and `POST /login/get_token`.

use std::{sync::Arc, time::Duration};

use axum::extract::State;
use common::{
    api::userapi::{
        Authenticate, AuthenticateRequest, ConsumeLoginToken, ConsumeLoginTokenRequest, CreateLoginToken,
        CreateLoginTokenRequest, CreateSession, CreateSessionRequest, NewSession,
    },
    http::{MatrixError, Ruma, RumaResponse},
};
use http::StatusCode;
use ruma::api::client::{
    session::{
        get_login_token,
        get_login_types::{
            self,
            v3::{LoginType, PasswordLoginType, TokenLoginType},
        },
        login::{
            self,
            v3::{DiscoveryInfo, LoginInfo},
        },
    },
    uiaa::UserIdentifier,
};

use crate::{
    App, ip_string,
    uia::{self, Operation, UiaError},
};

pub async fn get_login_types(_: Ruma<get_login_types::v3::Request>) -> RumaResponse<get_login_types::v3::Response> {
    let mut token = TokenLoginType::new();
    token.get_login_token = true;
    RumaResponse(get_login_types::v3::Response::new(vec![
        LoginType::Password(PasswordLoginType::new()),
        LoginType::Token(token),
    ]))
}

pub async fn login(
    State(app): State<Arc<App>>,
    request: Ruma<login::v3::Request>,
) -> Result<RumaResponse<login::v3::Response>, MatrixError> {
    let body = &request.body;
    let user_id = match &body.login_info {
        LoginInfo::Password(password) => {
            #[allow(deprecated)]
            let user = match (&password.identifier, &password.user) {
                (Some(UserIdentifier::Matrix(id)), _) => id.user.clone(),
                (None, Some(user)) => user.clone(),
                (Some(_), _) => {
                    return Err(MatrixError::unknown(
                        StatusCode::BAD_REQUEST,
                        "Only user identifiers (m.id.user) are supported",
                    ));
                }
                (None, None) => return Err(MatrixError::missing_param("No user to log in")),
            };
            app.check_login_rate(&user)?;
            let request = AuthenticateRequest { user, password: password.password.clone() };
            app.rt.bus.call::<Authenticate>(&request).await?.user_id
        }
        LoginInfo::Token(token) => {
            let request = ConsumeLoginTokenRequest { token: token.token.clone() };
            app.rt.bus.call::<ConsumeLoginToken>(&request).await?.user_id
        }
        _ => return Err(MatrixError::unknown(StatusCode::BAD_REQUEST, "Unsupported login type")),
    };
    let session = NewSession {
        device_id: body.device_id.clone(),
        display_name: body.initial_device_display_name.clone(),
        refreshable: body.refresh_token,
        ip: ip_string(request.client_ip),
    };
    let session = app.rt.bus.call::<CreateSession>(&CreateSessionRequest { user_id, session }).await?;
    let mut response = login::v3::Response::new(session.user_id, session.access_token, session.device_id);
    #[allow(deprecated)]
    {
        response.home_server = Some(app.rt.config.global.server_name.clone());
    }
    response.refresh_token = session.refresh_token;
    response.expires_in = session.expires_in_ms.map(Duration::from_millis);
    response.well_known =
        app.rt.config.global.public_base_url.clone().map(|url| DiscoveryInfo::new(login::v3::HomeserverInfo::new(url)));
    Ok(RumaResponse(response))
}

pub async fn get_login_token(
    State(app): State<Arc<App>>,
    request: Ruma<get_login_token::v1::Request>,
) -> Result<RumaResponse<get_login_token::v1::Response>, UiaError> {
    let user = request.require_user()?;
    uia::authenticate(
        &app,
        &Operation::login_token(),
        &uia::password_flows(),
        request.body.auth.as_ref(),
        Some(&user.user_id),
    )
    .await?;
    let token = app.rt.bus.call::<CreateLoginToken>(&CreateLoginTokenRequest { user_id: user.user_id.clone() }).await?;
    Ok(RumaResponse(get_login_token::v1::Response::new(Duration::from_millis(token.expires_in_ms), token.token)))
}
